//! A mapping compiled against the canonical schemas, applied to raw records.
//!
//! Loading checks everything that can be checked before the first row: every field is a
//! property of the event type's schema, every required property is mapped, every lookup exists,
//! conversions have valid options. Deploying also checks the source columns against the
//! connector's discovered table ([`Mapping::check_source`]). Applying converts each field, then
//! validates the event against its schema; every problem is reported with the JSON pointer of the
//! field, the source column and the value.

use std::borrow::Cow;
use std::sync::Arc;

use ledgerbridge_config::{ConfigError, ConfigPath, Issue};
use ring::hmac;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as J};

use crate::catalog::{CanonicalSchema, Catalog, Violation};
use crate::coerce::{self, Options};
use crate::spec::{self, Condition, Conversion, FieldSpec, Lookup, MappingSpec, RouteAction, Test};

/// Keyed pseudonyms of personal identifiers: `psn:` + hex HMAC-SHA256(key, `<namespace>:<value>`);
/// the namespace is the field name, or the one the mapping gives (`person`, `account`) so one
/// identifier has one pseudonym across fields and tables.
#[derive(Debug, Clone)]
pub struct Pseudonymiser {
    key: hmac::Key,
}

impl Pseudonymiser {
    /// A pseudonymiser with the consortium's key.
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// The pseudonym of `value` in `namespace`.
    #[must_use]
    pub fn pseudonym(&self, namespace: &str, value: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(namespace.as_bytes());
        ctx.update(b":");
        ctx.update(value.as_bytes());
        let mut out = String::with_capacity(68);
        out.push_str("psn:");
        push_hex(&mut out, ctx.sign().as_ref());
        out
    }
}

/// Where a raw record came from (the raw record's `source` block).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Connector.
    pub connector: String,
    /// Table, or file directory.
    pub table: String,
    /// Source primary key as text.
    pub key: String,
    /// Source position.
    pub position: String,
    /// Extraction time, milliseconds since the epoch.
    pub extracted_at: i64,
}

/// A canonical event ready to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalEvent {
    /// Deterministic id.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// Schema version.
    pub schema_version: u32,
    /// Ledger channel.
    pub channel: String,
    /// The whole envelope (`event_id`, `event_type`, `schema_version`, `mapping`, `subject`,
    /// `source`, `data`).
    pub json: J,
}

/// What applying a mapping to a record gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An event, valid against its schema.
    Event(CanonicalEvent),
    /// A route skipped the record.
    Skipped,
    /// Conversion or validation errors: the record goes to the quarantine.
    Failed(Vec<Violation>),
}

#[derive(Debug)]
struct Field {
    name: String,
    from: Vec<String>,
    value: Option<J>,
    conversion: Conversion,
    format: Option<String>,
    offset: Option<chrono::FixedOffset>,
    scale: Option<u32>,
    implied_decimals: Option<u32>,
    trim: bool,
    join: Option<String>,
    split: Option<(String, usize)>,
    lookup: Option<Lookup>,
    pseudonymise: Option<String>,
    default: Option<J>,
    optional: bool,
}

#[derive(Debug)]
struct Target {
    schema: Arc<CanonicalSchema>,
    fields: Vec<Field>,
}

/// A mapping ready to apply.
#[derive(Debug)]
pub struct Mapping {
    /// The file, read.
    pub spec: MappingSpec,
    default: Target,
    routes: Vec<(Condition, Option<Target>)>,
}

/// Reads and compiles a mapping file against the catalog.
///
/// # Errors
/// Every problem of the file and of its fit with the canonical schema, each with its line.
pub fn load(text: &str, source_name: &str, catalog: &Catalog) -> Result<Mapping, ConfigError> {
    let (spec, spans) = spec::parse_with_spans(text, source_name)?;
    Mapping::compile(spec, catalog).map_err(|mut issues| {
        for issue in &mut issues {
            issue.position = spans.position(text, &issue.path);
        }
        issues.sort_by_key(|i| i.position.map_or((usize::MAX, 0), |p| (p.line, p.column)));
        ConfigError {
            source_name: source_name.to_owned(),
            issues,
        }
    })
}

fn issue(path: &ConfigPath, message: impl Into<String>) -> Issue {
    Issue {
        path: path.clone(),
        position: None,
        message: message.into(),
    }
}

fn compile_target(
    event_type: &str,
    version: Option<u32>,
    fields: &[FieldSpec],
    spec: &MappingSpec,
    catalog: &Catalog,
    at: &ConfigPath,
    issues: &mut Vec<Issue>,
) -> Option<Target> {
    let Some(schema) = catalog.get(event_type, version) else {
        let known = catalog.event_types().join(", ");
        issues.push(issue(
            at,
            match version {
                Some(v) => format!(
                    "no canonical schema `{event_type}` version {v} (known event types: {known})"
                ),
                None => format!("no canonical schema `{event_type}` (known: {known})"),
            },
        ));
        return None;
    };
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        if !schema.properties.contains(&f.name) {
            issues.push(issue(
                &f.path,
                format!(
                    "`{}` is not a field of {event_type} v{}; its fields are: {}",
                    f.name,
                    schema.version,
                    schema
                        .properties
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let lookup = f.lookup.as_ref().and_then(|l| spec.lookups.get(l).cloned());
        out.push(Field {
            name: f.name.clone(),
            from: f.from.clone(),
            value: f.value.clone(),
            conversion: f.conversion,
            format: f.format.clone(),
            offset: f.timezone.as_deref().and_then(coerce::parse_offset),
            scale: f.scale,
            implied_decimals: f.implied_decimals,
            trim: f.trim,
            join: f.join.clone(),
            split: f.split.clone(),
            lookup,
            pseudonymise: f.pseudonymise.clone(),
            default: f.default.clone(),
            optional: f.optional,
        });
    }
    for required in &schema.required {
        match fields.iter().find(|f| &f.name == required) {
            None => issues.push(issue(
                at,
                format!(
                    "{event_type} v{} requires `{required}`, which is not mapped",
                    schema.version
                ),
            )),
            Some(f) if f.optional => issues.push(issue(
                &f.path.key("optional"),
                format!("`{required}` is required by {event_type}: it cannot be optional"),
            )),
            Some(_) => {}
        }
    }
    Some(Target {
        schema,
        fields: out,
    })
}

impl Mapping {
    /// Compiles a read mapping file against the catalog.
    ///
    /// # Errors
    /// Every problem, with its path (no positions: [`load`] adds them).
    pub fn compile(spec: MappingSpec, catalog: &Catalog) -> Result<Self, Vec<Issue>> {
        let mut issues = Vec::new();
        let root = ConfigPath::default();
        let default = compile_target(
            &spec.event_type,
            spec.schema_version,
            &spec.fields,
            &spec,
            catalog,
            &root.key("mapping").key("event_type"),
            &mut issues,
        );
        let mut routes = Vec::new();
        for r in &spec.routes {
            match &r.action {
                RouteAction::Skip => routes.push((r.when.clone(), None)),
                RouteAction::Event {
                    event_type,
                    schema_version,
                    fields,
                } => {
                    if let Some(t) = compile_target(
                        event_type,
                        *schema_version,
                        fields,
                        &spec,
                        catalog,
                        &r.path.key("event_type"),
                        &mut issues,
                    ) {
                        routes.push((r.when.clone(), Some(t)));
                    }
                }
            }
        }
        match default {
            Some(default) if issues.is_empty() => Ok(Self {
                spec,
                default,
                routes,
            }),
            _ => Err(issues),
        }
    }

    /// The event types this mapping can produce, with their schemas.
    #[must_use]
    pub fn schemas(&self) -> Vec<Arc<CanonicalSchema>> {
        std::iter::once(&self.default)
            .chain(self.routes.iter().filter_map(|(_, t)| t.as_ref()))
            .map(|t| Arc::clone(&t.schema))
            .collect()
    }

    /// Checks the source columns the mapping reads against the connector's discovered table,
    /// before any row flows: each missing column is an issue at its place in the file.
    #[must_use]
    pub fn check_source(&self, columns: &[String]) -> Vec<Issue> {
        self.spec
            .source_columns()
            .into_iter()
            .filter(|(c, _)| !columns.iter().any(|have| have == c))
            .map(|(c, path)| {
                issue(
                    path,
                    format!(
                        "the source `{}`/`{}` has no column `{c}`; it has: {}",
                        self.spec.connector,
                        self.spec.table,
                        columns.join(", ")
                    ),
                )
            })
            .collect()
    }

    /// Applies the mapping to one raw record.
    #[must_use]
    pub fn apply(&self, row: &Map<String, J>, source: &Source, p: &Pseudonymiser) -> Outcome {
        let target = match self.routes.iter().find(|(c, _)| matches(c, row)) {
            Some((_, None)) => return Outcome::Skipped,
            Some((_, Some(t))) => t,
            None => &self.default,
        };
        let mut data = Map::with_capacity(target.fields.len());
        let mut errors = Vec::new();
        for f in &target.fields {
            match field_value(f, row, p) {
                Ok(Some(v)) => {
                    data.insert(f.name.clone(), v);
                }
                Ok(None) => {}
                Err(message) => errors.push(Violation {
                    pointer: format!("/data/{}", f.name),
                    message,
                }),
            }
        }
        if !errors.is_empty() {
            return Outcome::Failed(errors);
        }
        let data = J::Object(data);
        let violations = target.schema.violations(&data);
        if !violations.is_empty() {
            return Outcome::Failed(violations);
        }
        let schema = &target.schema;
        let event_id = event_id(schema, &data);
        let subject = schema
            .subject
            .as_ref()
            .and_then(|s| data.get(s))
            .cloned()
            .unwrap_or(J::Null);
        let mut mapping = Map::with_capacity(2);
        mapping.insert("name".into(), J::String(self.spec.name.clone()));
        mapping.insert("version".into(), J::from(self.spec.version));
        let mut src = Map::with_capacity(5);
        src.insert("connector".into(), J::String(source.connector.clone()));
        src.insert("table".into(), J::String(source.table.clone()));
        src.insert("key".into(), J::String(source.key.clone()));
        src.insert("position".into(), J::String(source.position.clone()));
        src.insert("extracted_at".into(), J::from(source.extracted_at));
        let mut envelope = Map::with_capacity(7);
        envelope.insert("event_id".into(), J::String(event_id.clone()));
        envelope.insert("event_type".into(), J::String(schema.event_type.clone()));
        envelope.insert("schema_version".into(), J::from(schema.version));
        envelope.insert("mapping".into(), J::Object(mapping));
        envelope.insert("subject".into(), subject);
        envelope.insert("source".into(), J::Object(src));
        envelope.insert("data".into(), data);
        let json = J::Object(envelope);
        Outcome::Event(CanonicalEvent {
            event_id,
            event_type: schema.event_type.clone(),
            schema_version: schema.version,
            channel: schema.channel.clone(),
            json,
        })
    }
}

/// `<event_type>:` + hex SHA-256 of the event type and the business key values.
fn event_id(schema: &CanonicalSchema, data: &J) -> String {
    let values: Vec<String> = schema
        .key
        .iter()
        .map(|k| match data.get(k) {
            Some(J::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        })
        .collect();
    event_id_for(&schema.event_type, values.iter().map(String::as_str))
}

/// The event id of an event type's business key values (as text, in the schema's key order):
/// what provenance look-ups by business key use.
#[must_use]
pub fn event_id_for<'a>(event_type: &str, key: impl IntoIterator<Item = &'a str>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(event_type.as_bytes());
    for k in key {
        ctx.update(b"\0");
        ctx.update(k.as_bytes());
    }
    let mut id = String::with_capacity(event_type.len() + 65);
    id.push_str(event_type);
    id.push(':');
    push_hex(&mut id, ctx.finish().as_ref());
    id
}

/// Lower-case hex of `bytes`, appended (on the hot path: no formatting machinery).
fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

fn as_text(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn matches(c: &Condition, row: &Map<String, J>) -> bool {
    let v = row.get(&c.field).filter(|v| !v.is_null());
    let same = |want: &J| v.is_some_and(|v| as_text(v).trim() == as_text(want).trim());
    match &c.test {
        Test::Equals(want) => same(want),
        Test::NotEquals(want) => !same(want),
        Test::In(list) => list.iter().any(same),
        Test::IsNull => v.is_none(),
        Test::NotNull => v.is_some(),
    }
}

/// The value of one field, `Ok(None)` when it is optional and absent.
fn field_value(f: &Field, row: &Map<String, J>, p: &Pseudonymiser) -> Result<Option<J>, String> {
    // Borrowed from the row until a new value has to be made (the hot path allocates little).
    let raw: Option<Cow<'_, J>> = if let Some(v) = &f.value {
        Some(Cow::Borrowed(v))
    } else if f.from.len() == 1 {
        row.get(&f.from[0])
            .filter(|v| !v.is_null())
            .map(Cow::Borrowed)
    } else {
        // Several columns joined; a missing one counts as missing.
        let parts: Option<Vec<String>> = f
            .from
            .iter()
            .map(|c| {
                row.get(c).filter(|v| !v.is_null()).map(|v| {
                    let t = as_text(v);
                    if f.trim { t.trim().to_owned() } else { t }
                })
            })
            .collect();
        parts.map(|p| Cow::Owned(J::String(p.join(f.join.as_deref().unwrap_or("")))))
    };
    let source = || match f.from.as_slice() {
        [] => "the constant".to_owned(),
        [one] => format!("`{one}`"),
        many => format!("`{}`", many.join("` + `")),
    };
    let mut v = match raw {
        Some(c) if f.trim && matches!(&*c, J::String(s) if s.trim().is_empty()) => None,
        other => other,
    };
    if let (Some(c), Some((sep, part))) = (&v, &f.split)
        && let J::String(s) = &**c
    {
        let piece = s
            .split(sep.as_str())
            .nth(*part)
            .map(|x| Cow::Owned(J::String(x.to_owned())));
        if piece.is_none() {
            return Err(format!(
                "{} = {s:?} has no part {part} when split on {sep:?}",
                source()
            ));
        }
        v = piece;
    }
    if f.trim
        && let Some(c) = &v
        && let J::String(s) = &**c
        && s.trim().len() != s.len()
    {
        v = Some(Cow::Owned(J::String(s.trim().to_owned())));
    }
    let Some(v) = v else {
        return match (&f.default, f.optional) {
            (Some(d), _) => Ok(Some(d.clone())),
            (None, true) => Ok(None),
            (None, false) => Err(format!("{} is missing or empty", source())),
        };
    };
    let v: Cow<'_, J> = match &f.lookup {
        Some(table) => {
            let found = match &*v {
                J::String(code) => table.entries.get(code.trim()),
                other => table.entries.get(&other.to_string()),
            };
            match found.or(table.default.as_ref()) {
                Some(mapped) => Cow::Borrowed(mapped),
                None => {
                    return Err(format!(
                        "{} = {:?} is not in the code table (codes: {})",
                        source(),
                        as_text(&v),
                        table.entries.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        None => v,
    };
    let options = Options {
        format: f.format.as_deref(),
        offset: f.offset,
        scale: f.scale,
        implied_decimals: f.implied_decimals,
    };
    let converted = if f.lookup.is_some() && f.conversion == Conversion::String {
        v.into_owned()
    } else {
        coerce::convert(f.conversion, &v, options)
            .map_err(|e| format!("{} = {}: {e}", source(), v))?
    };
    if let Some(namespace) = &f.pseudonymise {
        return Ok(Some(J::String(
            p.pseudonym(namespace, &as_text(&converted)),
        )));
    }
    Ok(Some(converted))
}
