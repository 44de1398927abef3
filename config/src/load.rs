//! Reading a configuration file and reporting **every** problem in it at once, each with its
//! dotted path and line.
//!
//! Three passes, so that one mistake never hides another:
//! 1. TOML syntax (`toml_edit`, which keeps the byte span of every key and value);
//! 2. structure, against the JSON Schema generated from the types in [`crate::model`]
//!    (unknown fields, wrong types, missing values, malformed durations, addresses and secret
//!    references) — the validator reports all violations, not the first;
//! 3. meaning: rules between fields (a `postgres` store needs `[store.postgres]`, …).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use serde_json::{Map, Value};
use toml_edit::{Item, Table};

use crate::model::{BusBackend, Config, StoreBackend};
use crate::secret::{SecretError, SecretSource, parse_reference};

/// One step of a path into the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array position.
    Index(usize),
}

/// A path into the configuration, shown as TOML readers write it: `store.postgres.url`,
/// `bus.kafka.properties."ssl.ca.location"`, `items[2]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ConfigPath(pub Vec<Segment>);

impl ConfigPath {
    /// The path one step further down.
    #[must_use]
    pub fn child(&self, seg: Segment) -> Self {
        let mut v = self.0.clone();
        v.push(seg);
        Self(v)
    }

    /// The path to `key` in this table.
    #[must_use]
    pub fn key(&self, key: &str) -> Self {
        self.child(Segment::Key(key.to_owned()))
    }

    /// Builds a path from dotted keys (no array positions), for rules written in code.
    #[must_use]
    pub fn of(keys: &[&str]) -> Self {
        Self(keys.iter().map(|k| Segment::Key((*k).to_owned())).collect())
    }
}

impl fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let bare = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if bare {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Line and column (both from 1) in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line number, from 1.
    pub line: usize,
    /// Column number in characters, from 1.
    pub column: usize,
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where in the configuration.
    pub path: ConfigPath,
    /// Where in the file, when the path (or its nearest parent) is written in it.
    pub position: Option<Position>,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(
                f,
                "line {}:{}: {}: {}",
                p.line, p.column, self.path, self.message
            ),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// A configuration that could not be used, with every reason.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `<inline>`).
    pub source_name: String,
    /// Every problem found, in file order.
    pub issues: Vec<Issue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        writeln!(
            f,
            "{}: {n} error{}",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            writeln!(f, "  {issue}")?;
        }
        Ok(())
    }
}

/// A valid configuration and the warnings worth showing (e.g. a secret whose variable is unset
/// on this machine, or a section that the chosen backend ignores).
#[derive(Debug)]
pub struct Loaded {
    /// The configuration, defaults applied.
    pub config: Config,
    /// Not errors, but worth a look.
    pub warnings: Vec<Issue>,
}

/// Reads and validates a configuration file.
///
/// # Errors
/// A [`ConfigError`] listing every problem, or a single issue when the file cannot be read.
pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&text, &name),
        Err(e) => Err(ConfigError {
            source_name: name,
            issues: vec![Issue {
                path: ConfigPath::default(),
                position: None,
                message: format!("cannot read the file: {e}"),
            }],
        }),
    }
}

/// Parses and validates configuration text; `source_name` names it in messages.
///
/// # Errors
/// A [`ConfigError`] listing every problem found.
pub fn load_str(text: &str, source_name: &str) -> Result<Loaded, ConfigError> {
    let fail = |issues: Vec<Issue>| ConfigError {
        source_name: source_name.to_owned(),
        issues,
    };
    let (instance, spans) = toml_document(text, source_name)?;

    let mut issues: Vec<Issue> = validator()
        .iter_errors(&instance)
        .flat_map(|e| schema_issues(&e))
        .collect();
    if issues.is_empty() {
        match serde_json::from_value::<Config>(instance) {
            Ok(config) => {
                let mut warnings = Vec::new();
                semantic_checks(&config, &mut issues, &mut warnings);
                if issues.is_empty() {
                    for w in &mut warnings {
                        w.position = spans.position(text, &w.path);
                    }
                    return Ok(Loaded { config, warnings });
                }
            }
            Err(e) => issues.push(Issue {
                path: ConfigPath::default(),
                position: None,
                message: e.to_string(),
            }),
        }
    }
    for issue in &mut issues {
        issue.position = spans.position(text, &issue.path);
    }
    issues.sort_by_key(|i| i.position.map_or((usize::MAX, 0), |p| (p.line, p.column)));
    Err(fail(issues))
}

/// Parses a TOML document into JSON, keeping where every key is written, for files other than
/// the configuration that report errors the same way (mapping files).
///
/// # Errors
/// Text that is not TOML, with the position of the problem.
pub fn toml_document(text: &str, source_name: &str) -> Result<(Value, Spans), ConfigError> {
    let doc = toml_edit::Document::parse(text).map_err(|e| ConfigError {
        source_name: source_name.to_owned(),
        issues: vec![Issue {
            path: ConfigPath::default(),
            position: e.span().map(|s| position_of(text, s.start)),
            message: format!("not valid TOML: {}", e.message()),
        }],
    })?;
    let mut spans = Spans::default();
    let instance = table_to_json(doc.as_table(), &ConfigPath::default(), &mut spans);
    Ok((instance, spans))
}

/// Byte spans of every key and value seen while converting the document.
#[derive(Debug, Default)]
pub struct Spans(HashMap<ConfigPath, Range<usize>>);

impl Spans {
    /// The position of `path`, or of its nearest ancestor written in the file (a missing field
    /// is reported at the table that should hold it).
    #[must_use]
    pub fn position(&self, text: &str, path: &ConfigPath) -> Option<Position> {
        let mut p = path.clone();
        loop {
            if let Some(span) = self.0.get(&p) {
                return Some(position_of(text, span.start));
            }
            p.0.pop()?;
        }
    }
}

fn position_of(text: &str, offset: usize) -> Position {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Position { line, column }
}

fn table_to_json(table: &Table, path: &ConfigPath, spans: &mut Spans) -> Value {
    let mut map = Map::new();
    for (key, item) in table.iter() {
        let child = path.key(key);
        let key_span = table.key(key).and_then(toml_edit::Key::span);
        if let Some(span) = key_span.or_else(|| item.span()) {
            spans.0.insert(child.clone(), span);
        }
        map.insert(key.to_owned(), item_to_json(item, &child, spans));
    }
    Value::Object(map)
}

fn item_to_json(item: &Item, path: &ConfigPath, spans: &mut Spans) -> Value {
    match item {
        Item::None => Value::Null,
        Item::Value(v) => value_to_json(v, path, spans),
        Item::Table(t) => table_to_json(t, path, spans),
        Item::ArrayOfTables(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, t)| {
                    let child = path.child(Segment::Index(i));
                    if let Some(span) = t.span() {
                        spans.0.insert(child.clone(), span);
                    }
                    table_to_json(t, &child, spans)
                })
                .collect(),
        ),
    }
}

fn value_to_json(value: &toml_edit::Value, path: &ConfigPath, spans: &mut Spans) -> Value {
    use toml_edit::Value as V;
    match value {
        V::String(s) => Value::String(s.value().clone()),
        V::Integer(i) => Value::from(*i.value()),
        V::Float(f) => serde_json::Number::from_f64(*f.value()).map_or(Value::Null, Value::Number),
        V::Boolean(b) => Value::Bool(*b.value()),
        V::Datetime(d) => Value::String(d.value().to_string()),
        V::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| {
                    let child = path.child(Segment::Index(i));
                    if let Some(span) = v.span() {
                        spans.0.insert(child.clone(), span);
                    }
                    value_to_json(v, &child, spans)
                })
                .collect(),
        ),
        V::InlineTable(t) => {
            let mut map = Map::new();
            for (key, v) in t.iter() {
                let child = path.key(key);
                let span = t
                    .key(key)
                    .and_then(toml_edit::Key::span)
                    .or_else(|| v.span());
                if let Some(span) = span {
                    spans.0.insert(child.clone(), span);
                }
                map.insert(key.to_owned(), value_to_json(v, &child, spans));
            }
            Value::Object(map)
        }
    }
}

/// The JSON Schema of [`Config`], as `ledgerbridge config schema` prints it.
#[must_use]
pub fn json_schema() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    generator.into_root_schema_for::<Config>().to_value()
}

/// A custom string format: its name, its check, and the hint shown when a value fails it.
type Format = (&'static str, fn(&str) -> bool, &'static str);

/// Custom string formats.
const FORMATS: &[Format] = &[
    (
        "duration",
        |s| humantime::parse_duration(s).is_ok(),
        "expected a duration such as `500ms`, `10s` or `1h 30m`",
    ),
    (
        "socket-addr",
        |s| s.parse::<SocketAddr>().is_ok(),
        "expected an IP address and port such as `127.0.0.1:8080`",
    ),
    (
        "secret-ref",
        |s| parse_reference(s).is_ok(),
        "expected a secret reference, `${ENV_VAR}` or `file:/path/to/file`, never the secret itself",
    ),
    (
        "http-url",
        |s| url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
        "expected a URL such as `http://registry:8081`",
    ),
    (
        "postgres-url",
        |s| url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "postgres" | "postgresql")),
        "expected a URL such as `postgres://user@host:5432/database`",
    ),
];

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let mut options = jsonschema::options().should_validate_formats(true);
        for (name, check, _) in FORMATS {
            options = options.with_format(*name, *check);
        }
        #[allow(clippy::expect_used)] // the schema is generated from our own types at build time
        options
            .build(&json_schema())
            .expect("the generated configuration schema compiles")
    })
}

fn instance_path(e: &jsonschema::ValidationError<'_>) -> ConfigPath {
    ConfigPath(
        e.instance_path()
            .iter()
            .map(|seg| match seg {
                LocationSegment::Property(p) => Segment::Key(p.to_string()),
                LocationSegment::Index(i) => Segment::Index(i),
            })
            .collect(),
    )
}

fn is_secret_field(path: &ConfigPath) -> bool {
    matches!(path.0.last(), Some(Segment::Key(k)) if k.contains("password") || k.contains("secret"))
}

fn schema_issues(e: &jsonschema::ValidationError<'_>) -> Vec<Issue> {
    let path = instance_path(e);
    let issue = |path: ConfigPath, message: String| Issue {
        path,
        position: None,
        message,
    };
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|key| issue(path.key(key), "unknown field".to_owned()))
            .collect(),
        ValidationErrorKind::Required { property } => {
            let name = property
                .as_str()
                .map_or_else(|| property.to_string(), str::to_owned);
            vec![issue(path.key(&name), "missing required field".to_owned())]
        }
        // `Option<Table>` fields are `anyOf: [table, null]`; TOML has no null, so the errors
        // worth showing are those of the one branch that is not the null type.
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let branches: Vec<&Vec<jsonschema::ValidationError<'static>>> = context
                .iter()
                .filter(|branch| !is_only_type_mismatch_at(branch, &path))
                .collect();
            match branches.as_slice() {
                [only] => only.iter().flat_map(schema_issues).collect(),
                _ => vec![issue(path, e.to_string())],
            }
        }
        ValidationErrorKind::Format { format } => {
            let hint = FORMATS
                .iter()
                .find(|(name, _, _)| name == format)
                .map_or("has the wrong format", |(_, _, hint)| hint);
            vec![issue(path, hint.to_owned())]
        }
        _ if is_secret_field(&path) => vec![issue(path, e.masked().to_string())],
        _ => vec![issue(path, e.to_string())],
    }
}

fn is_only_type_mismatch_at(errors: &[jsonschema::ValidationError<'_>], path: &ConfigPath) -> bool {
    matches!(errors, [e] if matches!(e.kind(), ValidationErrorKind::Type { .. }) && instance_path(e) == *path)
}

fn semantic_checks(config: &Config, errors: &mut Vec<Issue>, warnings: &mut Vec<Issue>) {
    let mut error = |keys: &[&str], message: String| {
        errors.push(Issue {
            path: ConfigPath::of(keys),
            position: None,
            message,
        });
    };
    match (config.store.backend, &config.store.postgres) {
        (StoreBackend::Postgres, None) => error(
            &["store", "backend"],
            "`postgres` needs a [store.postgres] table with at least `url`".to_owned(),
        ),
        (StoreBackend::Sqlite, Some(_)) => warnings.push(Issue {
            path: ConfigPath::of(&["store", "postgres"]),
            position: None,
            message: "ignored while store.backend = \"sqlite\"".to_owned(),
        }),
        _ => {}
    }
    if let Some(pg) = &config.store.postgres
        && let Ok(url) = url::Url::parse(&pg.url)
    {
        if url.password().is_some() {
            error(
                &["store", "postgres", "url"],
                "the URL contains a password: remove it and set `password` to a secret reference such as \"${LEDGERBRIDGE_PG_PASSWORD}\"".to_owned(),
            );
        }
        if url.path().trim_start_matches('/').is_empty() {
            error(
                &["store", "postgres", "url"],
                "the URL names no database: add `/DATABASE` after the host".to_owned(),
            );
        }
    }
    match (config.bus.backend, &config.bus.kafka) {
        (BusBackend::Kafka, None) => error(
            &["bus", "backend"],
            "`kafka` needs a [bus.kafka] table with at least `bootstrap_servers`".to_owned(),
        ),
        (BusBackend::Embedded, Some(_)) => warnings.push(Issue {
            path: ConfigPath::of(&["bus", "kafka"]),
            position: None,
            message: "ignored while bus.backend = \"embedded\"".to_owned(),
        }),
        _ => {}
    }
    if let Some(kafka) = &config.bus.kafka {
        if kafka.security_protocol.uses_sasl() {
            for (field, given) in [
                ("sasl_mechanism", kafka.sasl_mechanism.is_some()),
                ("sasl_username", kafka.sasl_username.is_some()),
                ("sasl_password", kafka.sasl_password.is_some()),
            ] {
                if !given {
                    error(
                        &["bus", "kafka", field],
                        format!(
                            "required when security_protocol = \"{}\"",
                            kafka.security_protocol.as_librdkafka()
                        ),
                    );
                }
            }
        }
        if let Some(m) = &kafka.sasl_mechanism
            && !matches!(m.as_str(), "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512")
        {
            error(
                &["bus", "kafka", "sasl_mechanism"],
                format!("`{m}` is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
            );
        }
        for key in kafka.properties.keys() {
            if key.contains("password") || key.contains("secret") || key.ends_with(".key.pem") {
                error(
                    &["bus", "kafka", "properties", key],
                    "secrets do not belong in properties: use sasl_password (a secret reference)"
                        .to_owned(),
                );
            }
        }
        for server in kafka.bootstrap_servers.split(',') {
            let server = server.trim();
            let valid = server
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                error(
                    &["bus", "kafka", "bootstrap_servers"],
                    format!("`{server}` is not `host:port`"),
                );
            }
        }
    }
    for (i, channel) in config.ledger.channels.iter().enumerate() {
        if !channel_name_ok(channel) {
            errors.push(Issue {
                path: ConfigPath(vec![
                    Segment::Key("ledger".into()),
                    Segment::Key("channels".into()),
                    Segment::Index(i),
                ]),
                position: None,
                message: format!(
                    "`{channel}` is not a channel name: use 1 to 32 of a-z, 0-9 and -"
                ),
            });
        }
    }
    connector_checks(config, errors);
    monitoring_checks(config, errors);
    let secrets = [
        (
            ConfigPath::of(&["store", "postgres", "password"]),
            config
                .store
                .postgres
                .as_ref()
                .and_then(|p| p.password.as_ref()),
        ),
        (
            ConfigPath::of(&["bus", "kafka", "sasl_password"]),
            config
                .bus
                .kafka
                .as_ref()
                .and_then(|k| k.sasl_password.as_ref()),
        ),
        (
            ConfigPath::of(&["monitoring", "email", "password"]),
            config
                .monitoring
                .email
                .as_ref()
                .and_then(|e| e.password.as_ref()),
        ),
        (
            ConfigPath::of(&["monitoring", "webhook", "secret"]),
            config
                .monitoring
                .webhook
                .as_ref()
                .and_then(|w| w.secret.as_ref()),
        ),
    ];
    for (path, secret) in secrets {
        if let Some(secret) = secret
            && let Err(e) = secret.resolve()
        {
            let message = match (&e, secret.source()) {
                (SecretError::MissingEnv(_), Ok(SecretSource::Env(_))) => {
                    format!("{e}; set it before starting the node")
                }
                _ => e.to_string(),
            };
            warnings.push(Issue {
                path,
                position: None,
                message,
            });
        }
    }
}

fn monitoring_checks(config: &Config, errors: &mut Vec<Issue>) {
    let m = &config.monitoring;
    let mut error = |keys: Vec<Segment>, message: String| {
        let mut path = vec![Segment::Key("monitoring".into())];
        path.extend(keys);
        errors.push(Issue {
            path: ConfigPath(path),
            position: None,
            message,
        });
    };
    let key = |k: &str| Segment::Key(k.to_owned());
    if !channel_name_ok(&m.channel) {
        error(
            vec![key("channel")],
            format!(
                "`{}` is not a channel name: use 1 to 32 of a-z, 0-9 and -",
                m.channel
            ),
        );
    }
    let mut names = std::collections::HashSet::new();
    for (i, a) in m.audits.iter().enumerate() {
        if !names.insert(a.name.as_str()) {
            error(
                vec![key("audits"), Segment::Index(i), key("name")],
                format!("a second audit is called `{}`", a.name),
            );
        }
        if let Err(e) = a.schedule.parse::<cron::Schedule>() {
            error(
                vec![key("audits"), Segment::Index(i), key("schedule")],
                format!(
                    "`{}` is not a cron expression (sec min hour day month weekday): {e}",
                    a.schedule
                ),
            );
        }
    }
    let http = |u: &str| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    for (i, p) in m.peers.iter().enumerate() {
        if !http(p) {
            error(
                vec![key("peers"), Segment::Index(i)],
                format!("`{p}` is not an http(s) URL"),
            );
        }
    }
    if let Some(w) = &m.webhook
        && !http(&w.url)
    {
        error(
            vec![key("webhook"), key("url")],
            format!("`{}` is not an http(s) URL", w.url),
        );
    }
    if let Some(ca) = &m.tls_ca_file
        && let Err(e) = std::fs::read(ca)
    {
        error(
            vec![key("tls_ca_file")],
            format!("cannot read {}: {e}", ca.display()),
        );
    }
    if let Some(e) = &m.email {
        let smtp_ok = url::Url::parse(&e.smtp_url).is_ok_and(|u| {
            let tls = u
                .query_pairs()
                .find(|(k, _)| k == "tls")
                .map(|(_, v)| v.into_owned());
            u.host_str().is_some()
                && matches!(
                    (u.scheme(), tls.as_deref()),
                    ("smtp", None | Some("required" | "opportunistic")) | ("smtps", None)
                )
        });
        if !smtp_ok {
            error(
                vec![key("email"), key("smtp_url")],
                format!(
                    "`{}` is not an SMTP relay URL: smtp://host:587?tls=required (STARTTLS), \
                     smtps://host (TLS), smtp://host:25?tls=opportunistic or smtp://host:25 (plain)",
                    e.smtp_url
                ),
            );
        }
        if e.recipients.is_empty() {
            error(
                vec![key("email"), key("recipients")],
                "name at least one recipient".into(),
            );
        }
    }
}

/// The ledger's channel names: 1 to 32 of a-z, 0-9 and `-`.
fn channel_name_ok(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn connector_checks(config: &Config, errors: &mut Vec<Issue>) {
    use crate::connectors::ConnectorKind;
    let mut seen = std::collections::HashSet::new();
    for (i, c) in config.connectors.iter().enumerate() {
        let at = |keys: &[&str]| {
            let mut path = vec![Segment::Key("connectors".into()), Segment::Index(i)];
            path.extend(keys.iter().map(|k| Segment::Key((*k).to_owned())));
            ConfigPath(path)
        };
        let mut error = |keys: &[&str], message: String| {
            errors.push(Issue {
                path: at(keys),
                position: None,
                message,
            });
        };
        if !seen.insert(c.name.as_str()) {
            error(
                &["name"],
                format!("a second connector is called `{}`", c.name),
            );
        }
        if let Some(schedule) = &c.schedule
            && let Err(e) = schedule.parse::<cron::Schedule>()
        {
            error(
                &["schedule"],
                format!(
                    "`{schedule}` is not a cron expression (sec min hour day month weekday): {e}"
                ),
            );
        }
        match c.kind {
            ConnectorKind::Postgres | ConnectorKind::Mariadb | ConnectorKind::Sqlite => {
                if c.files.is_some() {
                    error(
                        &["files"],
                        format!("not used by a `{}` connector", c.kind.name()),
                    );
                }
                let Some(db) = &c.database else {
                    error(
                        &["type"],
                        format!(
                            "a `{}` connector needs a `database` table with `url` and `tables`",
                            c.kind.name()
                        ),
                    );
                    continue;
                };
                let schemes: &[&str] = match c.kind {
                    ConnectorKind::Postgres => &["postgres", "postgresql"],
                    ConnectorKind::Sqlite => &["sqlite"],
                    _ => &["mysql", "mariadb"],
                };
                match url::Url::parse(&db.url) {
                    Ok(u) if !schemes.contains(&u.scheme()) => error(
                        &["database", "url"],
                        format!("a `{}` connector needs a {}:// URL", c.kind.name(), schemes[0]),
                    ),
                    Ok(u) if u.password().is_some() => error(
                        &["database", "url"],
                        "the URL contains a password: remove it and set `password` to a secret reference".to_owned(),
                    ),
                    Ok(_) => {}
                    Err(e) => error(&["database", "url"], format!("not a URL: {e}")),
                }
            }
            ConnectorKind::Files => {
                if c.database.is_some() {
                    error(&["database"], "not used by a `files` connector".to_owned());
                }
                let Some(files) = &c.files else {
                    error(
                        &["type"],
                        "a `files` connector needs a `files` table with `dir` and `format`"
                            .to_owned(),
                    );
                    continue;
                };
                if files.delimiter.chars().count() != 1 {
                    error(
                        &["files", "delimiter"],
                        "must be exactly one character".to_owned(),
                    );
                }
                if files.format == crate::connectors::FileFormat::FixedWidth {
                    if files.columns.is_empty() {
                        error(
                            &["files", "columns"],
                            "a fixed-width layout needs its columns".to_owned(),
                        );
                    }
                    for (j, col) in files.columns.iter().enumerate() {
                        if col.start.is_none() || col.width.is_none_or(|w| w == 0) {
                            errors.push(Issue {
                                path: ConfigPath(vec![
                                    Segment::Key("connectors".into()),
                                    Segment::Index(i),
                                    Segment::Key("files".into()),
                                    Segment::Key("columns".into()),
                                    Segment::Index(j),
                                ]),
                                position: None,
                                message: format!(
                                    "fixed-width column `{}` needs `start` and a non-zero `width`",
                                    col.name
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
}
