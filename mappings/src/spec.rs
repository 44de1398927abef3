//! Mapping files (TOML, see `mappings/README.md`): read into a [`MappingSpec`], with every
//! mistake reported at once with its path and line, the way configuration files are.

use std::collections::BTreeMap;

use ledgerbridge_config::{ConfigError, ConfigPath, Issue, Segment};
use serde_json::{Map, Value as J};

/// How a source value is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// Text as read (numbers and booleans as their text).
    String,
    /// A whole number (from a number or its text).
    Integer,
    /// A floating-point number.
    Number,
    /// An exact decimal, as text with `scale` digits after the point.
    Decimal,
    /// `Y`/`N`, `1`/`0`, `true`/`false`.
    Boolean,
    /// Korean won as text with separators (`1,250,000원`) to a whole number.
    Krw,
    /// A date (`format`, default `%Y%m%d`, then ISO) to `YYYY-MM-DD`.
    Date,
    /// A local date-time (`format`, `timezone`) to RFC 3339 UTC.
    Timestamp,
}

impl Conversion {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "integer" => Self::Integer,
            "number" => Self::Number,
            "decimal" => Self::Decimal,
            "boolean" => Self::Boolean,
            "krw" => Self::Krw,
            "date" => Self::Date,
            "timestamp" => Self::Timestamp,
            _ => return None,
        })
    }
}

/// One field of the event's `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// Field name in `data`.
    pub name: String,
    /// Source columns (several are joined with `join`); empty for a constant.
    pub from: Vec<String>,
    /// A constant value.
    pub value: Option<J>,
    /// Conversion.
    pub conversion: Conversion,
    /// Date or time format (chrono syntax).
    pub format: Option<String>,
    /// Time zone of legacy local times (IANA name or `+09:00`).
    pub timezone: Option<String>,
    /// Digits after the point of a decimal.
    pub scale: Option<u32>,
    /// A decimal written as a whole number with this many implied decimals (`125` with 2 is
    /// `1.25`).
    pub implied_decimals: Option<u32>,
    /// Trim spaces around text (default true).
    pub trim: bool,
    /// Separator used to join several source columns.
    pub join: Option<String>,
    /// Split the value on this separator and take `part`.
    pub split: Option<(String, usize)>,
    /// A code table to look the value up in.
    pub lookup: Option<String>,
    /// Replace the value by its keyed pseudonym, in this namespace: values pseudonymised in one
    /// namespace (e.g. `account`, `person`) get the same pseudonym whatever the field.
    pub pseudonymise: Option<String>,
    /// Used when the source value is null or missing.
    pub default: Option<J>,
    /// Left out of the event when the source value is null or missing.
    pub optional: bool,
    /// Where it is written in the file.
    pub path: ConfigPath,
}

/// A code table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lookup {
    /// Legacy code → canonical value.
    pub entries: BTreeMap<String, J>,
    /// For codes not in the table; without it they are errors.
    pub default: Option<J>,
}

/// A condition on a source column.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// Equal to the value (compared as text).
    Equals(J),
    /// Not equal.
    NotEquals(J),
    /// One of the values.
    In(Vec<J>),
    /// Null or missing.
    IsNull,
    /// Present and not null.
    NotNull,
}

/// `when = { field = …, <test> }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Source column.
    pub field: String,
    /// The test.
    pub test: Test,
}

/// What a route does with the rows it matches.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteAction {
    /// Produce nothing (a header or trailer record, a row of no interest).
    Skip,
    /// Produce an event of another type with its own fields.
    Event {
        /// The event type.
        event_type: String,
        /// Its schema version (default the latest).
        schema_version: Option<u32>,
        /// Its fields.
        fields: Vec<FieldSpec>,
    },
}

/// A conditional route, tried in file order before the default.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// When it applies.
    pub when: Condition,
    /// What it does.
    pub action: RouteAction,
    /// Where it is written.
    pub path: ConfigPath,
}

/// A mapping file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingSpec {
    /// Unique name.
    pub name: String,
    /// Version (a new one for every change).
    pub version: u32,
    /// Source connector.
    pub connector: String,
    /// Source table or stream (`*`: every stream of the connector).
    pub table: String,
    /// Canonical event type.
    pub event_type: String,
    /// Schema version; `None` for the latest.
    pub schema_version: Option<u32>,
    /// The fields of `data`.
    pub fields: Vec<FieldSpec>,
    /// Code tables.
    pub lookups: BTreeMap<String, Lookup>,
    /// Conditional routes.
    pub routes: Vec<Route>,
}

/// Collects every problem of a file.
struct Reader {
    issues: Vec<Issue>,
}

impl Reader {
    fn error(&mut self, path: &ConfigPath, message: impl Into<String>) {
        self.issues.push(Issue {
            path: path.clone(),
            position: None,
            message: message.into(),
        });
    }

    fn table<'a>(&mut self, v: &'a J, path: &ConfigPath) -> Option<&'a Map<String, J>> {
        match v.as_object() {
            Some(m) => Some(m),
            None => {
                self.error(path, "expected a table");
                None
            }
        }
    }

    fn unknown(&mut self, m: &Map<String, J>, path: &ConfigPath, known: &[&str]) {
        for key in m.keys() {
            if !known.contains(&key.as_str()) {
                self.error(
                    &path.key(key),
                    format!("unknown key; expected one of: {}", known.join(", ")),
                );
            }
        }
    }

    fn string(&mut self, m: &Map<String, J>, key: &str, path: &ConfigPath) -> Option<String> {
        match m.get(key) {
            Some(J::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                self.error(&path.key(key), "expected a non-empty string");
                None
            }
            None => None,
        }
    }

    fn required_string(
        &mut self,
        m: &Map<String, J>,
        key: &str,
        path: &ConfigPath,
    ) -> Option<String> {
        let s = self.string(m, key, path);
        if s.is_none() && !m.contains_key(key) {
            self.error(&path.key(key), "missing");
        }
        s
    }

    fn number(&mut self, m: &Map<String, J>, key: &str, path: &ConfigPath) -> Option<u32> {
        match m.get(key) {
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    self.error(&path.key(key), "expected a whole number of at least 1");
                    None
                }
            },
            None => None,
        }
    }

    fn bool(&mut self, m: &Map<String, J>, key: &str, path: &ConfigPath) -> Option<bool> {
        match m.get(key) {
            Some(J::Bool(b)) => Some(*b),
            Some(_) => {
                self.error(&path.key(key), "expected true or false");
                None
            }
            None => None,
        }
    }
}

const FIELD_KEYS: &[&str] = &[
    "from",
    "value",
    "as",
    "format",
    "timezone",
    "scale",
    "implied_decimals",
    "trim",
    "join",
    "split",
    "part",
    "lookup",
    "pseudonymise",
    "default",
    "optional",
];

fn is_name(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
}

fn read_field(r: &mut Reader, name: &str, v: &J, path: &ConfigPath) -> Option<FieldSpec> {
    if !is_name(name, &['_']) {
        r.error(path, "field names are snake_case: a-z, 0-9 and _");
    }
    let mut f = FieldSpec {
        name: name.to_owned(),
        from: Vec::new(),
        value: None,
        conversion: Conversion::String,
        format: None,
        timezone: None,
        scale: None,
        implied_decimals: None,
        trim: true,
        join: None,
        split: None,
        lookup: None,
        pseudonymise: None,
        default: None,
        optional: false,
        path: path.clone(),
    };
    let m = match v {
        J::String(column) => {
            f.from = vec![column.clone()];
            return Some(f);
        }
        J::Object(m) => m,
        _ => {
            r.error(
                path,
                "expected a source column name or a table such as { from = \"col\" }",
            );
            return None;
        }
    };
    r.unknown(m, path, FIELD_KEYS);
    match m.get("from") {
        Some(J::String(s)) if !s.is_empty() => f.from = vec![s.clone()],
        Some(J::Array(a))
            if !a.is_empty() && a.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty())) =>
        {
            f.from = a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect();
        }
        Some(_) => r.error(
            &path.key("from"),
            "expected a column name or a list of column names",
        ),
        None => {}
    }
    f.value = m.get("value").cloned();
    match (f.from.is_empty(), f.value.is_some()) {
        (true, false) => r.error(
            path,
            "needs `from` (a source column) or `value` (a constant)",
        ),
        (false, true) => r.error(
            &path.key("value"),
            "give either `from` or `value`, not both",
        ),
        _ => {}
    }
    if let Some(name) = r.string(m, "as", path) {
        match Conversion::parse(&name) {
            Some(c) => f.conversion = c,
            None => r.error(
                &path.key("as"),
                format!("`{name}` is not a conversion: string, integer, number, decimal, boolean, krw, date, timestamp"),
            ),
        }
    }
    f.format = r.string(m, "format", path);
    if f.format.is_some() && !matches!(f.conversion, Conversion::Date | Conversion::Timestamp) {
        r.error(
            &path.key("format"),
            "only for `as = \"date\"` or `as = \"timestamp\"`",
        );
    }
    f.timezone = r.string(m, "timezone", path);
    if let Some(tz) = &f.timezone {
        if f.conversion != Conversion::Timestamp {
            r.error(&path.key("timezone"), "only for `as = \"timestamp\"`");
        } else if crate::coerce::parse_offset(tz).is_none() {
            r.error(
                &path.key("timezone"),
                format!(
                    "`{tz}` is not a UTC offset such as +09:00 or a known zone (Asia/Seoul, UTC)"
                ),
            );
        }
    }
    f.scale = match m.get("scale") {
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n <= 18 => Some(n),
            _ => {
                r.error(&path.key("scale"), "expected a whole number from 0 to 18");
                None
            }
        },
        None => None,
    };
    if f.scale.is_some() && f.conversion != Conversion::Decimal {
        r.error(&path.key("scale"), "only for `as = \"decimal\"`");
    }
    f.implied_decimals = match m.get("implied_decimals") {
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (1..=18).contains(&n) && f.conversion == Conversion::Decimal => Some(n),
            Some(_) if f.conversion != Conversion::Decimal => {
                r.error(&path.key("implied_decimals"), "only for `as = \"decimal\"`");
                None
            }
            _ => {
                r.error(
                    &path.key("implied_decimals"),
                    "expected a whole number from 1 to 18",
                );
                None
            }
        },
        None => None,
    };
    if let Some(t) = r.bool(m, "trim", path) {
        f.trim = t;
    }
    f.join = match m.get("join") {
        Some(J::String(s)) => Some(s.clone()),
        Some(_) => {
            r.error(&path.key("join"), "expected a string");
            None
        }
        None => None,
    };
    if f.from.len() > 1 && f.join.is_none() {
        f.join = Some(String::new());
    }
    match (m.get("split"), m.get("part")) {
        (Some(J::String(sep)), part) if !sep.is_empty() => {
            let part = match part {
                None => Some(0),
                Some(p) => p.as_u64().and_then(|n| usize::try_from(n).ok()),
            };
            match part {
                Some(p) => f.split = Some((sep.clone(), p)),
                None => r.error(
                    &path.key("part"),
                    "expected a whole number (0 is the first part)",
                ),
            }
        }
        (Some(_), _) => r.error(&path.key("split"), "expected a non-empty separator"),
        (None, Some(_)) => r.error(&path.key("part"), "only with `split`"),
        (None, None) => {}
    }
    f.lookup = r.string(m, "lookup", path);
    f.pseudonymise = match m.get("pseudonymise") {
        None | Some(J::Bool(false)) => None,
        Some(J::Bool(true)) => Some(name.to_owned()),
        Some(J::String(ns)) if is_name(ns, &['_', '-']) => Some(ns.clone()),
        Some(_) => {
            r.error(
                &path.key("pseudonymise"),
                "expected true (the field name is the namespace) or a namespace such as \"person\" or \"account\"",
            );
            None
        }
    };
    f.default = m.get("default").cloned();
    f.optional = r.bool(m, "optional", path).unwrap_or(false);
    Some(f)
}

fn read_fields(r: &mut Reader, v: Option<&J>, path: &ConfigPath) -> Vec<FieldSpec> {
    let Some(v) = v else {
        r.error(path, "missing: every field of the event's data");
        return Vec::new();
    };
    let Some(m) = r.table(v, path) else {
        return Vec::new();
    };
    m.iter()
        .filter_map(|(name, v)| read_field(r, name, v, &path.key(name)))
        .collect()
}

fn read_condition(r: &mut Reader, v: Option<&J>, path: &ConfigPath) -> Option<Condition> {
    let Some(v) = v else {
        r.error(
            path,
            "missing: a condition such as { field = \"rec_type\", equals = \"T\" }",
        );
        return None;
    };
    let m = r.table(v, path)?;
    r.unknown(
        m,
        path,
        &["field", "equals", "not_equals", "in", "is_null", "not_null"],
    );
    let field = r.required_string(m, "field", path)?;
    let tests: Vec<Test> = [
        m.get("equals").map(|v| Test::Equals(v.clone())),
        m.get("not_equals").map(|v| Test::NotEquals(v.clone())),
        m.get("in").map(|v| match v {
            J::Array(a) => Test::In(a.clone()),
            other => Test::In(vec![other.clone()]),
        }),
        (m.get("is_null") == Some(&J::Bool(true))).then_some(Test::IsNull),
        (m.get("not_null") == Some(&J::Bool(true))).then_some(Test::NotNull),
    ]
    .into_iter()
    .flatten()
    .collect();
    match <[Test; 1]>::try_from(tests) {
        Ok([test]) => Some(Condition { field, test }),
        Err(_) => {
            r.error(
                path,
                "give exactly one test: equals, not_equals, in, is_null = true or not_null = true",
            );
            None
        }
    }
}

fn read_lookups(r: &mut Reader, v: Option<&J>, path: &ConfigPath) -> BTreeMap<String, Lookup> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return out };
    let Some(m) = r.table(v, path) else {
        return out;
    };
    for (name, table) in m {
        let p = path.key(name);
        let Some(entries) = r.table(table, &p) else {
            continue;
        };
        let mut lookup = Lookup::default();
        for (code, value) in entries {
            if code == "default" {
                lookup.default = Some(value.clone());
            } else {
                lookup.entries.insert(code.clone(), value.clone());
            }
        }
        if lookup.entries.is_empty() {
            r.error(&p, "a code table needs at least one code");
        }
        out.insert(name.clone(), lookup);
    }
    out
}

/// Reads a mapping file.
///
/// # Errors
/// Every problem, each with its path and line ([`ConfigError`]'s display lists them).
pub fn parse(text: &str, source_name: &str) -> Result<MappingSpec, ConfigError> {
    parse_with_spans(text, source_name).map(|(spec, _)| spec)
}

/// Reads a mapping file and keeps where each key is written, to place later errors.
///
/// # Errors
/// As [`parse`].
pub fn parse_with_spans(
    text: &str,
    source_name: &str,
) -> Result<(MappingSpec, ledgerbridge_config::Spans), ConfigError> {
    let (doc, spans) = ledgerbridge_config::toml_document(text, source_name)?;
    let mut r = Reader { issues: Vec::new() };
    let spec = read(&mut r, &doc);
    if r.issues.is_empty()
        && let Some(spec) = spec
    {
        return Ok((spec, spans));
    }
    for issue in &mut r.issues {
        issue.position = spans.position(text, &issue.path);
    }
    r.issues
        .sort_by_key(|i| i.position.map_or((usize::MAX, 0), |p| (p.line, p.column)));
    Err(ConfigError {
        source_name: source_name.to_owned(),
        issues: r.issues,
    })
}

fn read(r: &mut Reader, doc: &J) -> Option<MappingSpec> {
    let root = ConfigPath::default();
    let top = r.table(doc, &root)?;
    r.unknown(top, &root, &["mapping", "fields", "lookups", "routes"]);
    let mp = root.key("mapping");
    let Some(mapping) = top.get("mapping").and_then(|m| r.table(m, &mp)) else {
        if !top.contains_key("mapping") {
            r.error(
                &mp,
                "missing: [mapping] with name, version, source and event_type",
            );
        }
        read_fields(r, top.get("fields"), &root.key("fields"));
        return None;
    };
    r.unknown(
        mapping,
        &mp,
        &["name", "version", "source", "event_type", "schema_version"],
    );
    let name = r.required_string(mapping, "name", &mp);
    if let Some(n) = &name
        && !is_name(n, &['-'])
    {
        r.error(&mp.key("name"), "mapping names use a-z, 0-9 and -");
    }
    let version = r.number(mapping, "version", &mp);
    if version.is_none() && !mapping.contains_key("version") {
        r.error(
            &mp.key("version"),
            "missing: a version number, 1 for the first",
        );
    }
    let sp = mp.key("source");
    let (connector, table) = match mapping.get("source").and_then(|s| r.table(s, &sp)) {
        Some(s) => {
            r.unknown(s, &sp, &["connector", "table"]);
            (
                r.required_string(s, "connector", &sp),
                r.required_string(s, "table", &sp),
            )
        }
        None => {
            if !mapping.contains_key("source") {
                r.error(&sp, "missing: { connector = \"…\", table = \"…\" }");
            }
            (None, None)
        }
    };
    let event_type = r.required_string(mapping, "event_type", &mp);
    let schema_version = r.number(mapping, "schema_version", &mp);
    let fields = read_fields(r, top.get("fields"), &root.key("fields"));
    let lookups = read_lookups(r, top.get("lookups"), &root.key("lookups"));
    let mut routes = Vec::new();
    if let Some(v) = top.get("routes") {
        let rp = root.key("routes");
        match v.as_array() {
            None => r.error(&rp, "expected [[routes]] tables"),
            Some(list) => {
                for (i, route) in list.iter().enumerate() {
                    let p = rp.child(Segment::Index(i));
                    let Some(m) = r.table(route, &p) else {
                        continue;
                    };
                    r.unknown(
                        m,
                        &p,
                        &["when", "action", "event_type", "schema_version", "fields"],
                    );
                    let when = read_condition(r, m.get("when"), &p.key("when"));
                    let action = match (
                        r.string(m, "action", &p).as_deref(),
                        r.string(m, "event_type", &p),
                    ) {
                        (Some("skip"), None) => Some(RouteAction::Skip),
                        (None, Some(event_type)) => Some(RouteAction::Event {
                            event_type,
                            schema_version: r.number(m, "schema_version", &p),
                            fields: read_fields(r, m.get("fields"), &p.key("fields")),
                        }),
                        (Some(other), None) => {
                            r.error(&p.key("action"), format!("`{other}` is not an action: the only action is \"skip\"; give event_type to route"));
                            None
                        }
                        _ => {
                            r.error(&p, "give either action = \"skip\" or event_type with its [routes.fields]");
                            None
                        }
                    };
                    if let (Some(when), Some(action)) = (when, action) {
                        routes.push(Route {
                            when,
                            action,
                            path: p,
                        });
                    }
                }
            }
        }
    }
    for f in fields
        .iter()
        .chain(routes.iter().flat_map(|r| match &r.action {
            RouteAction::Event { fields, .. } => fields.as_slice(),
            RouteAction::Skip => &[],
        }))
    {
        if let Some(l) = &f.lookup
            && !lookups.contains_key(l)
        {
            r.error(
                &f.path.key("lookup"),
                format!("no [lookups.{l}] table in this file"),
            );
        }
    }
    Some(MappingSpec {
        name: name?,
        version: version?,
        connector: connector?,
        table: table?,
        event_type: event_type?,
        schema_version,
        fields,
        lookups,
        routes,
    })
}

impl MappingSpec {
    /// Every source column the mapping reads (fields, routes' fields and conditions).
    #[must_use]
    pub fn source_columns(&self) -> Vec<(&str, &ConfigPath)> {
        let route_fields = self.routes.iter().flat_map(|r| match &r.action {
            RouteAction::Event { fields, .. } => fields.as_slice(),
            RouteAction::Skip => &[],
        });
        let mut out: Vec<(&str, &ConfigPath)> = self
            .fields
            .iter()
            .chain(route_fields)
            .flat_map(|f| f.from.iter().map(move |c| (c.as_str(), &f.path)))
            .collect();
        out.extend(self.routes.iter().map(|r| (r.when.field.as_str(), &r.path)));
        out
    }
}
