//! Avro schemas of the canonical topics, derived from the canonical JSON Schemas, and canonical
//! events framed the Confluent way (byte 0, the 4-byte big-endian schema id, the Avro datum).
//!
//! A canonical event (see `README.md` in this folder) becomes
//!
//! ```text
//! record ledgerbridge.canonical.<event_type, `.` and `-` → `_`>
//!   event_id:       string
//!   event_type:     string
//!   schema_version: int
//!   mapping:        record ledgerbridge.Mapping { name: string, version: int }
//!   subject:        ["null", string]
//!   source:         record ledgerbridge.Source { connector, table, key, position: string,
//!                                                extracted_at: long timestamp-millis }
//!   data:           record <full name>.data, derived from the JSON Schema
//! ```
//!
//! `ledgerbridge.Source` is the same record as in the raw topics' schemas.
//!
//! ## JSON Schema → Avro, for `data`
//!
//! | JSON Schema                               | Avro                                    |
//! |-------------------------------------------|-----------------------------------------|
//! | `string`, `format: date`                  | `int`, logical type `date`              |
//! | `string`, `format: date-time`             | `long`, logical type `timestamp-micros` |
//! | any other `string` (decimals, enums, …)   | `string`                                |
//! | `integer`                                 | `long`                                  |
//! | `number` (or `integer` and `number`)      | `double`                                |
//! | `boolean`                                 | `boolean`                               |
//! | `object` with `properties`                | `record`, named by its path             |
//! | `array` with `items`                      | `array`                                 |
//!
//! Enums stay Avro strings, not Avro enums, so a new enum value does not break Avro readers (it
//! may still break consumers: see [`crate::compat`]). A property that is not `required`, or whose
//! type includes `"null"`, is `["null", T]` with `"default": null`. A record's full name is its
//! path: `data` of `customs.declaration` is `ledgerbridge.canonical.customs_declaration.data`,
//! its property `consignee` `….data.consignee`, the items of an array `lines` `….data.lines.item`;
//! names therefore never collide and stay the same from one schema version to the next.
//! `title`/`description` become the Avro `doc`.
//!
//! Validation keywords that do not change the shape (`pattern`, `minimum`, `maxLength`, `enum`,
//! `const`, `dependentRequired`, …), annotations and `x-…` extensions are accepted and left out
//! of the Avro schema. So are the conjunctive applicators `allOf`, `not`, `if`/`then`/`else` and
//! `dependentSchemas`: a value must satisfy them *and* the schema's own `type`/`properties`, so they
//! only narrow what the derived type already holds (e.g. "`released_on` is required when `status`
//! is `released`"). Anything else (`oneOf`, `anyOf`, `$ref`, `$defs`, `patternProperties`,
//! `additionalProperties` with a schema, `prefixItems`, a union of several non-null types, …) is
//! refused with the JSON pointer of the keyword: the canonical schemas are plain records.
//!
//! ## Values
//!
//! [`encode`] takes the JSON envelope with `data` valid against its JSON Schema: dates as
//! `YYYY-MM-DD`, date-times RFC 3339 (any offset; at most microsecond precision, since that is
//! what `timestamp-micros` holds). A property the schema does not declare is an error rather than
//! silently dropped. A missing optional property and an explicit `null` are both encoded as
//! null. [`decode`] gives the JSON back: dates as `YYYY-MM-DD`, date-times as RFC 3339 in UTC
//! with `Z` and 0, 3 or 6 fraction digits (which is what the mapping engine writes, so its events
//! round-trip exactly), an optional property that is null is left out (as the mapping engine
//! leaves it out), a required nullable one is `null`, `number`s come back as floats.

mod codec;
pub(crate) mod raw;
mod transcode;

pub use transcode::Transcoded;

use apache_avro::Schema;
#[cfg(test)]
use apache_avro::types::Value as Avro;
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat};
use ledgerbridge_registry::framing;
use serde_json::{Map, Value as Json, json};

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// Fields of the envelope, in order.
const ENVELOPE: [&str; 7] = [
    "event_id",
    "event_type",
    "schema_version",
    "mapping",
    "subject",
    "source",
    "data",
];

/// Keywords that do not change the shape of a value: accepted, not reflected in Avro.
const SHAPELESS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "contentEncoding",
    "contentMediaType",
    "dependentRequired",
    // Conjunctive applicators: they only narrow what `type`/`properties` admit.
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
];

/// Keywords that shape the Avro type.
const SHAPING: &[&str] = &[
    "type",
    "format",
    "enum",
    "const",
    "properties",
    "required",
    "items",
    "additionalProperties",
];

/// What failed while deriving a schema, encoding or decoding an event.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// The canonical JSON Schema is malformed for derivation (no `type`, no `x-ledgerbridge`, …).
    #[error("canonical schema, {}: {reason}", at(pointer))]
    Schema {
        /// JSON pointer into the JSON Schema.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
    /// A JSON Schema construct that has no Avro form.
    #[error("canonical schema, {}: {construct} has no Avro form", at(pointer))]
    Unsupported {
        /// JSON pointer of the keyword in the JSON Schema.
        pointer: String,
        /// The construct.
        construct: String,
    },
    /// A property name that is not an Avro name.
    #[error(
        "canonical schema, {}: property `{name}` is not an Avro name (ASCII letters, digits and `_`, not starting with a digit); canonical property names are snake_case",
        at(pointer)
    )]
    NotAnAvroName {
        /// JSON pointer of the property in the JSON Schema.
        pointer: String,
        /// The property name.
        name: String,
    },
    /// apache-avro or the encoder refused the derived schema (a bug in the derivation).
    #[error("the Avro schema derived for `{event_type}` is refused: {error}")]
    Derived {
        /// Event type.
        event_type: String,
        /// What the parser said.
        error: String,
    },
    /// A value of the event does not fit the schema.
    #[error("event, {}: {reason}", at(pointer))]
    Value {
        /// JSON pointer into the event.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
    /// The Avro encoder refused the event (a bug in the encoder: the plan checks values first).
    #[error("could not encode the event in Avro: {0}")]
    Encode(String),
    /// The bytes are not a Confluent-framed record.
    #[error("not a Confluent-framed Avro record: {0}")]
    Frame(String),
    /// The Avro datum cannot be read with the schema.
    #[error("cannot read the Avro datum with the schema of `{event_type}`: {error}")]
    Decode {
        /// Event type of the schema used.
        event_type: String,
        /// What the decoder said.
        error: String,
    },
    /// A decoded value that has no JSON form under the schema.
    #[error("decoded record, {}: {reason}", at(pointer))]
    Decoded {
        /// JSON pointer into the event.
        pointer: String,
        /// What is wrong.
        reason: String,
    },
}

fn at(pointer: &str) -> String {
    if pointer.is_empty() {
        "at the root".to_owned()
    } else {
        format!("at `{pointer}`")
    }
}

/// The Avro form of one canonical schema version, ready to encode and decode with.
#[derive(Debug, Clone)]
pub struct CanonicalAvro {
    /// Parsed schema.
    pub schema: Schema,
    /// Its JSON text, as registered.
    pub text: String,
    /// Full name of the top record, `ledgerbridge.canonical.<event type>`.
    pub full_name: String,
    /// Registry subject: `canonical.<event_type>-value`.
    pub subject: String,
    /// Event type (`x-ledgerbridge.event_type`).
    pub event_type: String,
    /// Schema version (`x-ledgerbridge.version`).
    pub version: i32,
    data: RecordPlan,
    #[cfg(test)]
    names: Names,
    /// The schema compiled for the encoder and decoder (`codec`).
    fast: framing::Compiled,
}

/// Field names of the envelope, allocated once and cloned into every record (of the reference
/// encoder the tests compare with).
#[cfg(test)]
#[derive(Debug, Clone)]
struct Names {
    envelope: [String; 7],
    mapping: [String; 2],
    source: [String; 5],
}

/// How the values of one record are converted.
#[derive(Debug, Clone)]
struct RecordPlan {
    fields: Vec<FieldPlan>,
}

#[derive(Debug, Clone)]
struct FieldPlan {
    name: String,
    required: bool,
    ty: TypePlan,
}

#[derive(Debug, Clone)]
struct TypePlan {
    /// Avro `["null", T]`.
    nullable: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    String,
    Date,
    DateTime,
    Long,
    Double,
    Boolean,
    Record(RecordPlan),
    Array(Box<TypePlan>),
}

/// Escapes one JSON pointer token (RFC 6901 §3).
pub(crate) fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn schema_error(pointer: &str, reason: impl Into<String>) -> AvroError {
    AvroError::Schema {
        pointer: pointer.to_owned(),
        reason: reason.into(),
    }
}

/// Derives the Avro schema of the canonical event envelope whose `data` `json_schema` describes.
///
/// # Errors
/// The JSON Schema has no `x-ledgerbridge.event_type`/`version`, is not an object schema, uses a
/// construct with no Avro form or a property name that is not an Avro name: the error names the
/// JSON pointer in the JSON Schema.
pub fn canonical_schema(json_schema: &Json) -> Result<CanonicalAvro, AvroError> {
    let ext = json_schema
        .get("x-ledgerbridge")
        .and_then(Json::as_object)
        .ok_or_else(|| schema_error("/x-ledgerbridge", "missing (an object)"))?;
    let event_type = ext
        .get("event_type")
        .and_then(Json::as_str)
        .ok_or_else(|| schema_error("/x-ledgerbridge/event_type", "missing (a string)"))?;
    let version = ext
        .get("version")
        .and_then(Json::as_i64)
        .and_then(|v| i32::try_from(v).ok())
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            schema_error(
                "/x-ledgerbridge/version",
                "missing or not a positive integer",
            )
        })?;
    let name = event_type.replace(['.', '-'], "_");
    if !is_avro_name(&name) {
        return Err(schema_error(
            "/x-ledgerbridge/event_type",
            format!("`{event_type}` does not make an Avro name (`{name}`)"),
        ));
    }
    let full_name = format!("ledgerbridge.canonical.{name}");
    let (data_plan, data_type) = derive_type(json_schema, "", &format!("{full_name}.data"))?;
    let Kind::Record(data) = data_plan.kind else {
        return Err(schema_error("/type", "the data of an event is an object"));
    };
    if data_plan.nullable {
        return Err(schema_error("/type", "the data of an event cannot be null"));
    }
    let schema = json!({
        "type": "record",
        "name": name,
        "namespace": "ledgerbridge.canonical",
        "doc": format!("Canonical `{event_type}` events, schema version {version}"),
        "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "event_type", "type": "string"},
            {"name": "schema_version", "type": "int"},
            {"name": "mapping", "type": {
                "type": "record", "name": "Mapping", "namespace": "ledgerbridge",
                "fields": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "int"}
                ]
            }},
            {"name": "subject", "type": ["null", "string"], "default": null},
            {"name": "source", "type": {
                "type": "record", "name": "Source", "namespace": "ledgerbridge",
                "fields": [
                    {"name": "connector", "type": "string"},
                    {"name": "table", "type": "string"},
                    {"name": "key", "type": "string"},
                    {"name": "position", "type": "string"},
                    {"name": "extracted_at", "type": {"type": "long", "logicalType": "timestamp-millis"}}
                ]
            }},
            {"name": "data", "type": data_type}
        ]
    });
    let text = schema.to_string();
    let parsed = Schema::parse_str(&text).map_err(|error| AvroError::Derived {
        event_type: event_type.to_owned(),
        error: error.to_string(),
    })?;
    let fast = framing::Compiled::parse(&text).map_err(|error| AvroError::Derived {
        event_type: event_type.to_owned(),
        error,
    })?;
    Ok(CanonicalAvro {
        fast,
        schema: parsed,
        text,
        full_name,
        subject: format!("canonical.{event_type}-value"),
        event_type: event_type.to_owned(),
        version,
        data,
        #[cfg(test)]
        names: Names {
            envelope: ENVELOPE.map(str::to_owned),
            mapping: ["name", "version"].map(str::to_owned),
            source: ["connector", "table", "key", "position", "extracted_at"].map(str::to_owned),
        },
    })
}

/// The JSON types a schema admits, without `null`, and whether it admits `null`.
fn json_types(schema: &Map<String, Json>, pointer: &str) -> Result<(Vec<String>, bool), AvroError> {
    let mut types = Vec::new();
    let mut null = false;
    match schema.get("type") {
        Some(Json::String(t)) => types.push(t.clone()),
        Some(Json::Array(ts)) => {
            for (i, t) in ts.iter().enumerate() {
                let t = t.as_str().ok_or_else(|| {
                    schema_error(&format!("{pointer}/type/{i}"), "a type name is a string")
                })?;
                types.push(t.to_owned());
            }
        }
        Some(_) => {
            return Err(schema_error(
                &format!("{pointer}/type"),
                "a string or an array of strings",
            ));
        }
        None => {
            // No `type`: inferred from `enum`/`const`.
            let values: Vec<&Json> = match (schema.get("enum"), schema.get("const")) {
                (Some(Json::Array(vs)), _) => vs.iter().collect(),
                (_, Some(v)) => vec![v],
                _ => {
                    return Err(schema_error(
                        pointer,
                        "no `type` (nor `enum`/`const` to infer it from): Avro needs one type per field",
                    ));
                }
            };
            for v in values {
                let t = match v {
                    Json::Null => "null",
                    Json::Bool(_) => "boolean",
                    Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
                    Json::Number(_) => "number",
                    Json::String(_) => "string",
                    Json::Array(_) | Json::Object(_) => {
                        return Err(AvroError::Unsupported {
                            pointer: pointer.to_owned(),
                            construct: "an enum of objects or arrays without `type`".to_owned(),
                        });
                    }
                };
                if !types.iter().any(|x| x == t) {
                    types.push(t.to_owned());
                }
            }
        }
    }
    types.retain(|t| {
        let is_null = t == "null";
        null |= is_null;
        !is_null
    });
    if types.len() == 2
        && types.iter().any(|t| t == "integer")
        && types.iter().any(|t| t == "number")
    {
        types.retain(|t| t == "number");
    }
    Ok((types, null))
}

/// Derives the plan and Avro type (without the null union) of one JSON Schema; `full_name` names
/// the record if it is an object.
fn derive_type(
    schema: &Json,
    pointer: &str,
    full_name: &str,
) -> Result<(TypePlan, Json), AvroError> {
    let Some(obj) = schema.as_object() else {
        return Err(match schema {
            Json::Bool(_) => AvroError::Unsupported {
                pointer: pointer.to_owned(),
                construct: "a boolean schema (any value or none)".to_owned(),
            },
            _ => schema_error(pointer, "a schema is an object"),
        });
    };
    for key in obj.keys() {
        if !(SHAPING.contains(&key.as_str())
            || SHAPELESS.contains(&key.as_str())
            || key.starts_with("x-"))
        {
            return Err(AvroError::Unsupported {
                pointer: format!("{pointer}/{}", escape(key)),
                construct: format!("keyword `{key}`"),
            });
        }
    }
    let (types, nullable) = json_types(obj, pointer)?;
    let [t] = types.as_slice() else {
        return Err(if types.is_empty() {
            schema_error(&format!("{pointer}/type"), "only `null`: nothing to carry")
        } else {
            AvroError::Unsupported {
                pointer: format!("{pointer}/type"),
                construct: format!("a union of types {}", types.join(", ")),
            }
        });
    };
    let (kind, avro) = match t.as_str() {
        "string" => match obj.get("format").and_then(Json::as_str) {
            Some("date") => (Kind::Date, json!({"type": "int", "logicalType": "date"})),
            Some("date-time") => (
                Kind::DateTime,
                json!({"type": "long", "logicalType": "timestamp-micros"}),
            ),
            _ => (Kind::String, json!("string")),
        },
        "integer" => (Kind::Long, json!("long")),
        "number" => (Kind::Double, json!("double")),
        "boolean" => (Kind::Boolean, json!("boolean")),
        "object" => derive_record(obj, pointer, full_name)?,
        "array" => {
            let items = obj.get("items").ok_or_else(|| {
                schema_error(
                    pointer,
                    "an array without `items`: Avro needs the item type",
                )
            })?;
            let (item, avro) = derive_type(
                items,
                &format!("{pointer}/items"),
                &format!("{full_name}.item"),
            )?;
            let avro = if item.nullable {
                json!(["null", avro])
            } else {
                avro
            };
            (
                Kind::Array(Box::new(item)),
                json!({"type": "array", "items": avro}),
            )
        }
        other => {
            return Err(schema_error(
                &format!("{pointer}/type"),
                format!("unknown type `{other}`"),
            ));
        }
    };
    Ok((TypePlan { nullable, kind }, avro))
}

fn derive_record(
    obj: &Map<String, Json>,
    pointer: &str,
    full_name: &str,
) -> Result<(Kind, Json), AvroError> {
    match obj.get("additionalProperties") {
        None | Some(Json::Bool(_)) => {}
        Some(Json::Object(o)) if o.is_empty() => {}
        Some(_) => {
            return Err(AvroError::Unsupported {
                pointer: format!("{pointer}/additionalProperties"),
                construct: "a schema for undeclared properties (a map)".to_owned(),
            });
        }
    }
    let empty = Map::new();
    let properties = match obj.get("properties") {
        None => &empty,
        Some(Json::Object(p)) => p,
        Some(_) => {
            return Err(schema_error(
                &format!("{pointer}/properties"),
                "an object of schemas",
            ));
        }
    };
    if properties.is_empty() {
        return Err(AvroError::Unsupported {
            pointer: pointer.to_owned(),
            construct: "an object without declared `properties`".to_owned(),
        });
    }
    let required: Vec<&str> = match obj.get("required") {
        None => Vec::new(),
        Some(Json::Array(r)) => r.iter().filter_map(Json::as_str).collect(),
        Some(_) => {
            return Err(schema_error(
                &format!("{pointer}/required"),
                "an array of property names",
            ));
        }
    };
    let (namespace, name) = full_name.rsplit_once('.').unwrap_or(("", full_name));
    let mut fields = Vec::with_capacity(properties.len());
    let mut avro_fields = Vec::with_capacity(properties.len());
    for (prop, sub) in properties {
        let prop_pointer = format!("{pointer}/properties/{}", escape(prop));
        if !is_avro_name(prop) {
            return Err(AvroError::NotAnAvroName {
                pointer: prop_pointer,
                name: prop.clone(),
            });
        }
        let (mut ty, avro) = derive_type(sub, &prop_pointer, &format!("{full_name}.{prop}"))?;
        let is_required = required.contains(&prop.as_str());
        ty.nullable |= !is_required;
        let mut field = json!({"name": prop});
        if ty.nullable {
            field["type"] = json!(["null", avro]);
            field["default"] = Json::Null;
        } else {
            field["type"] = avro;
        }
        if let Some(doc) = sub
            .get("description")
            .or_else(|| sub.get("title"))
            .and_then(Json::as_str)
        {
            field["doc"] = json!(doc);
        }
        avro_fields.push(field);
        fields.push(FieldPlan {
            name: prop.clone(),
            required: is_required,
            ty,
        });
    }
    let mut record = json!({
        "type": "record",
        "name": name,
        "namespace": namespace,
        "fields": avro_fields,
    });
    if let Some(doc) = obj
        .get("description")
        .or_else(|| obj.get("title"))
        .and_then(Json::as_str)
    {
        record["doc"] = json!(doc);
    }
    Ok((Kind::Record(RecordPlan { fields }), record))
}

/// Where a value is in the event: a JSON pointer built only when an error needs it.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

const ROOT: Path<'static> = Path {
    parent: None,
    step: Step::Root,
};

impl<'a> Path<'a> {
    fn key(&'a self, key: &'a str) -> Self {
        Path {
            parent: Some(self),
            step: Step::Key(key),
        }
    }

    fn index(&'a self, i: usize) -> Self {
        Path {
            parent: Some(self),
            step: Step::Index(i),
        }
    }

    fn pointer(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            steps.push(p.step);
            at = p.parent;
        }
        let mut out = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Root => {}
                Step::Key(k) => {
                    out.push('/');
                    out.push_str(&escape(k));
                }
                Step::Index(i) => {
                    out.push('/');
                    out.push_str(&i.to_string());
                }
            }
        }
        out
    }

    fn value_error(&self, reason: impl Into<String>) -> AvroError {
        AvroError::Value {
            pointer: self.pointer(),
            reason: reason.into(),
        }
    }

    fn decoded_error(&self, reason: impl Into<String>) -> AvroError {
        AvroError::Decoded {
            pointer: self.pointer(),
            reason: reason.into(),
        }
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn object<'j>(v: &'j Json, path: &Path<'_>) -> Result<&'j Map<String, Json>, AvroError> {
    v.as_object()
        .ok_or_else(|| path.value_error(format!("{} where an object is expected", type_name(v))))
}

/// The member `key` of `obj`, which must be there.
fn member<'j>(
    obj: &'j Map<String, Json>,
    key: &'static str,
    path: &Path<'_>,
) -> Result<&'j Json, AvroError> {
    obj.get(key)
        .ok_or_else(|| path.key(key).value_error("missing"))
}

#[cfg(test)]
fn string(v: &Json, path: &Path<'_>) -> Result<String, AvroError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| path.value_error(format!("{} where a string is expected", type_name(v))))
}

fn long(v: &Json, path: &Path<'_>) -> Result<i64, AvroError> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_f64() {
        // JSON Schema's `integer` admits 3.0; below 2^53 the conversion is exact.
        Some(f) if f.fract() == 0.0 && f.abs() < 9.007_199_254_740_992e15 => Ok(f as i64),
        _ => Err(path.value_error(format!(
            "{} where an integer that fits 64 bits is expected: {v}",
            type_name(v)
        ))),
    }
}

fn int(v: &Json, path: &Path<'_>) -> Result<i32, AvroError> {
    i32::try_from(long(v, path)?)
        .map_err(|_| path.value_error(format!("{v} does not fit a 32-bit integer")))
}

/// Ensures every member of `obj` is one of `known` (Avro would drop the others).
fn no_other_members<'k>(
    obj: &Map<String, Json>,
    known: impl Iterator<Item = &'k str> + Clone,
    path: &Path<'_>,
) -> Result<(), AvroError> {
    match obj.keys().find(|k| !known.clone().any(|n| n == k.as_str())) {
        Some(k) => Err(path
            .key(k)
            .value_error("not declared by the schema, so Avro cannot carry it")),
        None => Ok(()),
    }
}

/// The envelope of a canonical event, checked against the schema; `data` is checked as it is
/// encoded.
struct Envelope<'a> {
    event_id: &'a str,
    version: i32,
    mapping_name: &'a str,
    mapping_version: i32,
    subject: Option<&'a str>,
    /// connector, table, key, position.
    source: [&'a str; 4],
    extracted_at: i64,
    data: &'a Json,
}

fn str_ref<'j>(v: &'j Json, path: &Path<'_>) -> Result<&'j str, AvroError> {
    v.as_str()
        .ok_or_else(|| path.value_error(format!("{} where a string is expected", type_name(v))))
}

impl CanonicalAvro {
    /// The envelope of `event`: an object with the envelope's members only, of this schema's
    /// event type and version.
    fn envelope<'a>(&self, event: &'a Json) -> Result<Envelope<'a>, AvroError> {
        let root = ROOT;
        let obj = object(event, &root)?;
        no_other_members(obj, ENVELOPE.iter().copied(), &root)?;
        let event_type = member(obj, "event_type", &root)?;
        if event_type.as_str() != Some(self.event_type.as_str()) {
            return Err(root.key("event_type").value_error(format!(
                "{event_type} but this schema is for `{}`",
                self.event_type
            )));
        }
        let version_path = root.key("schema_version");
        let version = int(member(obj, "schema_version", &root)?, &version_path)?;
        if version != self.version {
            return Err(version_path.value_error(format!(
                "version {version} but this schema is version {}",
                self.version
            )));
        }
        let mapping_path = root.key("mapping");
        let mapping = object(member(obj, "mapping", &root)?, &mapping_path)?;
        no_other_members(mapping, ["name", "version"].into_iter(), &mapping_path)?;
        let source_path = root.key("source");
        let source = object(member(obj, "source", &root)?, &source_path)?;
        no_other_members(
            source,
            ["connector", "table", "key", "position", "extracted_at"].into_iter(),
            &source_path,
        )?;
        let source_string =
            |key: &'static str| str_ref(member(source, key, &source_path)?, &source_path.key(key));
        let subject = match obj.get("subject") {
            None | Some(Json::Null) => None,
            Some(s) => Some(str_ref(s, &root.key("subject"))?),
        };
        Ok(Envelope {
            event_id: str_ref(member(obj, "event_id", &root)?, &root.key("event_id"))?,
            version,
            mapping_name: str_ref(
                member(mapping, "name", &mapping_path)?,
                &mapping_path.key("name"),
            )?,
            mapping_version: int(
                member(mapping, "version", &mapping_path)?,
                &mapping_path.key("version"),
            )?,
            subject,
            source: [
                source_string("connector")?,
                source_string("table")?,
                source_string("key")?,
                source_string("position")?,
            ],
            extracted_at: long(
                member(source, "extracted_at", &source_path)?,
                &source_path.key("extracted_at"),
            )?,
            data: member(obj, "data", &root)?,
        })
    }
}

/// The reference encoder and decoder through `apache_avro::types::Value`, which the tests compare
/// the `codec` module with.
#[cfg(test)]
impl CanonicalAvro {
    /// The Avro value of a canonical event.
    fn to_avro(&self, event: &Json) -> Result<Avro, AvroError> {
        let e = self.envelope(event)?;
        let [
            n_event_id,
            n_event_type,
            n_schema_version,
            n_mapping,
            n_subject,
            n_source,
            n_data,
        ] = &self.names.envelope;
        let [n_name, n_version] = &self.names.mapping;
        let [n_connector, n_table, n_key, n_position, n_extracted_at] = &self.names.source;
        let [connector, table, key, position] = e.source.map(|s| Avro::String(s.to_owned()));
        let subject = match e.subject {
            None => Avro::Union(0, Box::new(Avro::Null)),
            Some(s) => Avro::Union(1, Box::new(Avro::String(s.to_owned()))),
        };
        Ok(Avro::Record(vec![
            (n_event_id.clone(), Avro::String(e.event_id.to_owned())),
            (n_event_type.clone(), Avro::String(self.event_type.clone())),
            (n_schema_version.clone(), Avro::Int(e.version)),
            (
                n_mapping.clone(),
                Avro::Record(vec![
                    (n_name.clone(), Avro::String(e.mapping_name.to_owned())),
                    (n_version.clone(), Avro::Int(e.mapping_version)),
                ]),
            ),
            (n_subject.clone(), subject),
            (
                n_source.clone(),
                Avro::Record(vec![
                    (n_connector.clone(), connector),
                    (n_table.clone(), table),
                    (n_key.clone(), key),
                    (n_position.clone(), position),
                    (
                        n_extracted_at.clone(),
                        Avro::TimestampMillis(e.extracted_at),
                    ),
                ]),
            ),
            (
                n_data.clone(),
                record_to_avro(&self.data, e.data, &ROOT.key("data"))?,
            ),
        ]))
    }

    /// The JSON of a decoded canonical event.
    fn to_json(&self, value: Avro) -> Result<Json, AvroError> {
        let root = ROOT;
        let Avro::Record(fields) = value else {
            return Err(root.decoded_error("not a record"));
        };
        let mut out = Map::with_capacity(ENVELOPE.len());
        for (name, value) in fields {
            let path = root.key(&name);
            let json = match (name.as_str(), value) {
                ("data", v) => record_to_json(&self.data, v, &path)?,
                (_, Avro::Union(_, v)) if *v == Avro::Null => Json::Null,
                (_, Avro::Union(_, v)) => plain_to_json(*v, &path)?,
                (_, Avro::Record(inner)) => {
                    let mut obj = Map::with_capacity(inner.len());
                    for (k, v) in inner {
                        let json = plain_to_json(v, &path.key(&k))?;
                        obj.insert(k, json);
                    }
                    Json::Object(obj)
                }
                (_, v) => plain_to_json(v, &path)?,
            };
            out.insert(name, json);
        }
        Ok(Json::Object(out))
    }
}

#[cfg(test)]
/// The JSON of an envelope value (strings, ints, timestamp-millis).
fn plain_to_json(value: Avro, path: &Path<'_>) -> Result<Json, AvroError> {
    match value {
        Avro::String(s) => Ok(Json::String(s)),
        Avro::Int(i) => Ok(Json::from(i)),
        Avro::Long(i) | Avro::TimestampMillis(i) => Ok(Json::from(i)),
        other => Err(path.decoded_error(format!("unexpected Avro value {other:?}"))),
    }
}

#[cfg(test)]
fn record_to_avro(plan: &RecordPlan, json: &Json, path: &Path<'_>) -> Result<Avro, AvroError> {
    let obj = object(json, path)?;
    let mut fields = Vec::with_capacity(plan.fields.len());
    let mut present = 0;
    for field in &plan.fields {
        let value = obj.get(&field.name);
        present += usize::from(value.is_some());
        let field_path = path.key(&field.name);
        let avro = match value {
            None if field.required => return Err(field_path.value_error("missing (required)")),
            None | Some(Json::Null) if field.ty.nullable => Avro::Union(0, Box::new(Avro::Null)),
            None => return Err(field_path.value_error("missing")),
            Some(v) => type_to_avro(&field.ty, v, &field_path)?,
        };
        fields.push((field.name.clone(), avro));
    }
    if present < obj.len() {
        no_other_members(obj, plan.fields.iter().map(|f| f.name.as_str()), path)?;
    }
    Ok(Avro::Record(fields))
}

#[cfg(test)]
fn type_to_avro(ty: &TypePlan, json: &Json, path: &Path<'_>) -> Result<Avro, AvroError> {
    if json.is_null() {
        return if ty.nullable {
            Ok(Avro::Union(0, Box::new(Avro::Null)))
        } else {
            Err(path.value_error("null, but the schema does not allow null here"))
        };
    }
    let value = match &ty.kind {
        Kind::String => Avro::String(string(json, path)?),
        Kind::Date => Avro::Date(date_to_days(json, path)?),
        Kind::DateTime => Avro::TimestampMicros(date_time_to_micros(json, path)?),
        Kind::Long => Avro::Long(long(json, path)?),
        Kind::Double => Avro::Double(json.as_f64().ok_or_else(|| {
            path.value_error(format!("{} where a number is expected", type_name(json)))
        })?),
        Kind::Boolean => Avro::Boolean(json.as_bool().ok_or_else(|| {
            path.value_error(format!("{} where a boolean is expected", type_name(json)))
        })?),
        Kind::Record(plan) => record_to_avro(plan, json, path)?,
        Kind::Array(item) => {
            let items = json.as_array().ok_or_else(|| {
                path.value_error(format!("{} where an array is expected", type_name(json)))
            })?;
            Avro::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| type_to_avro(item, v, &path.index(i)))
                    .collect::<Result<_, _>>()?,
            )
        }
    };
    Ok(if ty.nullable {
        Avro::Union(1, Box::new(value))
    } else {
        value
    })
}

fn date_to_days(json: &Json, path: &Path<'_>) -> Result<i32, AvroError> {
    let text = json.as_str().ok_or_else(|| {
        path.value_error(format!(
            "{} where a date (YYYY-MM-DD) is expected",
            type_name(json)
        ))
    })?;
    let b = text.as_bytes();
    let shaped = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| shaped)
        .ok_or_else(|| path.value_error(format!("`{text}` is not a date (YYYY-MM-DD)")))?;
    Ok(date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE)
}

/// `YYYY-MM-DD` of an Avro `date`.
fn days_to_date(days: i32, path: &Path<'_>) -> Result<String, AvroError> {
    let date = days
        .checked_add(UNIX_EPOCH_DAYS_FROM_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .ok_or_else(|| path.decoded_error(format!("date {days} is out of range")))?;
    Ok(date.format("%Y-%m-%d").to_string())
}

/// RFC 3339 in UTC (`Z`, 0, 3 or 6 fraction digits) of an Avro `timestamp-micros`.
fn micros_to_date_time(micros: i64, path: &Path<'_>) -> Result<String, AvroError> {
    let t = DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| path.decoded_error(format!("timestamp {micros} µs is out of range")))?;
    Ok(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn date_time_to_micros(json: &Json, path: &Path<'_>) -> Result<i64, AvroError> {
    let text = json.as_str().ok_or_else(|| {
        path.value_error(format!(
            "{} where an RFC 3339 date-time is expected",
            type_name(json)
        ))
    })?;
    let t = DateTime::parse_from_rfc3339(text)
        .map_err(|e| path.value_error(format!("`{text}` is not an RFC 3339 date-time: {e}")))?;
    if t.timestamp_subsec_nanos() % 1_000 != 0 {
        return Err(path.value_error(format!(
            "`{text}` is more precise than a microsecond, which Avro timestamp-micros cannot hold"
        )));
    }
    Ok(t.timestamp_micros())
}

#[cfg(test)]
fn record_to_json(plan: &RecordPlan, value: Avro, path: &Path<'_>) -> Result<Json, AvroError> {
    let Avro::Record(fields) = value else {
        return Err(path.decoded_error("not a record"));
    };
    if fields.len() != plan.fields.len() {
        return Err(path.decoded_error(format!(
            "{} fields where the schema has {}",
            fields.len(),
            plan.fields.len()
        )));
    }
    let mut obj = Map::with_capacity(fields.len());
    for ((name, value), field) in fields.into_iter().zip(&plan.fields) {
        let field_path = path.key(&field.name);
        if name != field.name {
            return Err(field_path.decoded_error(format!("field `{name}` in its place")));
        }
        let json = type_to_json(&field.ty, value, &field_path)?;
        if json.is_null() && !field.required {
            continue;
        }
        obj.insert(name, json);
    }
    Ok(Json::Object(obj))
}

#[cfg(test)]
fn type_to_json(ty: &TypePlan, value: Avro, path: &Path<'_>) -> Result<Json, AvroError> {
    let value = match value {
        Avro::Union(_, v) if ty.nullable => match *v {
            Avro::Null => return Ok(Json::Null),
            v => v,
        },
        v => v,
    };
    Ok(match (&ty.kind, value) {
        (Kind::String, Avro::String(s)) => Json::String(s),
        (Kind::Date, Avro::Date(days)) => Json::String(days_to_date(days, path)?),
        (Kind::DateTime, Avro::TimestampMicros(micros)) => {
            Json::String(micros_to_date_time(micros, path)?)
        }
        (Kind::Long, Avro::Long(i)) => Json::from(i),
        (Kind::Double, Avro::Double(f)) => serde_json::Number::from_f64(f)
            .map(Json::Number)
            .ok_or_else(|| path.decoded_error(format!("{f} has no JSON form")))?,
        (Kind::Boolean, Avro::Boolean(b)) => Json::Bool(b),
        (Kind::Record(plan), v @ Avro::Record(_)) => record_to_json(plan, v, path)?,
        (Kind::Array(item), Avro::Array(items)) => Json::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| type_to_json(item, v, &path.index(i)))
                .collect::<Result<_, _>>()?,
        ),
        (kind, v) => {
            return Err(path.decoded_error(format!("{v:?} where the schema has {kind:?}")));
        }
    })
}

/// Encodes a canonical event (the JSON envelope of `README.md`) with Confluent framing under
/// schema `id`.
///
/// # Errors
/// The event is not an envelope of this schema's event type and version, or a value does not fit
/// the schema; the error names its JSON pointer in the event.
pub fn encode(avro: &CanonicalAvro, id: u32, event: &Json) -> Result<Vec<u8>, AvroError> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&framing::frame(id));
    codec::write(avro, event, &mut out)?;
    Ok(out)
}

/// The schema id of a Confluent-framed record, to pick the [`CanonicalAvro`] to decode it with.
///
/// # Errors
/// [`AvroError::Frame`]: shorter than 5 bytes or not starting with the magic byte 0.
pub fn schema_id(bytes: &[u8]) -> Result<u32, AvroError> {
    framing::schema_id(bytes).map_err(AvroError::Frame)
}

/// Reads a Confluent-framed canonical event written with `avro`'s schema into its envelope's
/// fields and its JSON text (what [`decode`] gives, as `serde_json` writes it), in one pass (the
/// schema id is not checked: see [`schema_id`]).
///
/// # Errors
/// Bad framing, a datum that does not read with the schema or has trailing bytes.
pub fn transcode(avro: &CanonicalAvro, bytes: &[u8]) -> Result<Transcoded, AvroError> {
    schema_id(bytes)?;
    let (event, rest) = transcode::transcode(avro, &bytes[framing::FRAME..])?;
    trailing(avro, rest)?;
    Ok(event)
}

fn trailing(avro: &CanonicalAvro, rest: &[u8]) -> Result<(), AvroError> {
    if rest.is_empty() {
        return Ok(());
    }
    Err(AvroError::Frame(format!(
        "{} bytes left after the datum: not written with the schema of `{}` version {}",
        rest.len(),
        avro.event_type,
        avro.version
    )))
}

/// Decodes a Confluent-framed canonical event written with `avro`'s schema back to its JSON
/// envelope (the schema id is not checked: see [`schema_id`]).
///
/// # Errors
/// Bad framing, a datum that does not read with the schema or has trailing bytes.
pub fn decode(avro: &CanonicalAvro, bytes: &[u8]) -> Result<Json, AvroError> {
    schema_id(bytes)?;
    let (event, rest) = codec::read(avro, &bytes[framing::FRAME..])?;
    trailing(avro, rest)?;
    Ok(event)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use apache_avro::schema_compatibility::SchemaCompatibility;
    use proptest::prelude::*;

    fn schema() -> Json {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Customs declaration",
            "type": "object",
            "additionalProperties": false,
            "x-ledgerbridge": {"event_type": "customs.order-declaration", "version": 2,
                               "key": ["declaration_no"], "channel": "customs"},
            "properties": {
                "declaration_no": {"type": "string", "minLength": 1, "description": "신고번호"},
                "declared_on": {"type": "string", "format": "date"},
                "accepted_at": {"type": "string", "format": "date-time"},
                "gross_weight_kg": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"},
                "status": {"type": "string", "enum": ["filed", "cleared"]},
                "channel": {"const": "online"},
                "declared_value_krw": {"type": "integer", "minimum": 0},
                "rate": {"type": "number"},
                "urgent": {"type": "boolean"},
                "manifest_no": {"type": "string"},
                "cleared_on": {"type": ["string", "null"], "format": "date"},
                "consignee": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "city": {"type": "string"}
                    },
                    "required": ["name"]
                },
                "tags": {"type": "array", "items": {"type": "string"}},
                "lines": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "item": {"type": "string"},
                            "qty": {"type": "integer"},
                            "shipped_on": {"type": "string", "format": "date"}
                        },
                        "required": ["item", "qty"]
                    }
                }
            },
            "required": ["declaration_no", "declared_on", "accepted_at", "gross_weight_kg",
                         "status", "channel", "declared_value_krw", "rate", "urgent",
                         "cleared_on", "consignee", "lines"]
        })
    }

    /// The derived Avro type of property `name` of `data`.
    fn field(avro: &CanonicalAvro, name: &str) -> Json {
        let text: Json = serde_json::from_str(&avro.text).unwrap();
        let data = text["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "data")
            .unwrap()["type"]
            .clone();
        data["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no field {name}"))
            .clone()
    }

    #[test]
    fn names_subject_and_envelope() {
        let avro = canonical_schema(&schema()).unwrap();
        assert_eq!(avro.event_type, "customs.order-declaration");
        assert_eq!(avro.version, 2);
        assert_eq!(avro.subject, "canonical.customs.order-declaration-value");
        assert_eq!(
            avro.full_name,
            "ledgerbridge.canonical.customs_order_declaration"
        );
        assert_eq!(
            avro.schema.name().unwrap().fullname(None),
            "ledgerbridge.canonical.customs_order_declaration"
        );
        let text: Json = serde_json::from_str(&avro.text).unwrap();
        let names: Vec<&str> = text["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ENVELOPE);
        assert_eq!(text["fields"][2]["type"], "int");
        assert_eq!(text["fields"][3]["type"]["name"], "Mapping");
        assert_eq!(text["fields"][4]["type"], json!(["null", "string"]));
        assert_eq!(text["fields"][5]["type"]["name"], "Source");
        assert_eq!(
            text["fields"][5]["type"]["fields"][4]["type"],
            json!({"type": "long", "logicalType": "timestamp-millis"})
        );
        assert_eq!(text["fields"][6]["type"]["name"], "data");
        assert_eq!(
            text["fields"][6]["type"]["namespace"],
            "ledgerbridge.canonical.customs_order_declaration"
        );
    }

    #[test]
    fn every_json_schema_type_has_its_avro_type() {
        let avro = canonical_schema(&schema()).unwrap();
        let cases = [
            ("declaration_no", json!("string")),
            ("declared_on", json!({"type": "int", "logicalType": "date"})),
            (
                "accepted_at",
                json!({"type": "long", "logicalType": "timestamp-micros"}),
            ),
            ("gross_weight_kg", json!("string")),
            ("status", json!("string")),
            ("channel", json!("string")),
            ("declared_value_krw", json!("long")),
            ("rate", json!("double")),
            ("urgent", json!("boolean")),
            (
                "tags",
                json!(["null", {"type": "array", "items": "string"}]),
            ),
        ];
        for (name, expected) in cases {
            assert_eq!(field(&avro, name)["type"], expected, "{name}");
        }
        assert_eq!(field(&avro, "declaration_no")["doc"], "신고번호");
        assert!(field(&avro, "declaration_no").get("default").is_none());
    }

    #[test]
    fn optional_and_null_typed_properties_are_null_unions_defaulting_to_null() {
        let avro = canonical_schema(&schema()).unwrap();
        let manifest = field(&avro, "manifest_no");
        assert_eq!(manifest["type"], json!(["null", "string"]));
        assert_eq!(manifest["default"], Json::Null);
        let cleared = field(&avro, "cleared_on");
        assert_eq!(
            cleared["type"],
            json!(["null", {"type": "int", "logicalType": "date"}])
        );
        assert_eq!(cleared["default"], Json::Null);
    }

    #[test]
    fn nested_objects_are_records_named_by_their_path() {
        let avro = canonical_schema(&schema()).unwrap();
        let consignee = field(&avro, "consignee")["type"].clone();
        assert_eq!(consignee["type"], "record");
        assert_eq!(consignee["name"], "consignee");
        assert_eq!(
            consignee["namespace"],
            "ledgerbridge.canonical.customs_order_declaration.data"
        );
        assert_eq!(consignee["fields"][0]["type"], "string");
        assert_eq!(consignee["fields"][1]["type"], json!(["null", "string"]));
        let lines = field(&avro, "lines")["type"].clone();
        assert_eq!(lines["type"], "array");
        let item = &lines["items"];
        assert_eq!(item["type"], "record");
        assert_eq!(item["name"], "item");
        assert_eq!(
            item["namespace"],
            "ledgerbridge.canonical.customs_order_declaration.data.lines"
        );
        // A property called `item` inside the item record does not collide with it.
        assert_eq!(item["fields"][0]["name"], "item");
        assert_eq!(item["fields"][1]["type"], "long");
        assert_eq!(
            item["fields"][2]["type"],
            json!(["null", {"type": "int", "logicalType": "date"}])
        );
    }

    fn event() -> Json {
        json!({
            "event_id": "customs.order-declaration:7f3a",
            "event_type": "customs.order-declaration",
            "schema_version": 2,
            "mapping": {"name": "mall-customs-declarations", "version": 3},
            "subject": null,
            "source": {"connector": "sample-mall", "table": "customs_declarations", "key": "17",
                       "position": "rowid=17", "extracted_at": 1_795_883_722_964_i64},
            "data": {
                "declaration_no": "D-2026-000017",
                "declared_on": "2026-11-02",
                "accepted_at": "2026-11-02T01:30:00.123456Z",
                "gross_weight_kg": "12.50",
                "status": "filed",
                "channel": "online",
                "declared_value_krw": 1_250_000,
                "rate": 0.25,
                "urgent": false,
                "cleared_on": null,
                "consignee": {"name": "김철수"},
                "lines": [
                    {"item": "한우 선물세트", "qty": 2, "shipped_on": "1969-12-31"},
                    {"item": "김치", "qty": 10}
                ]
            }
        })
    }

    /// apache-avro's datum of the `Value` the reference encoder builds.
    fn reference_encode(avro: &CanonicalAvro, event: &Json) -> Result<Vec<u8>, AvroError> {
        let value = avro.to_avro(event)?;
        Ok(apache_avro::to_avro_datum(&avro.schema, value).unwrap())
    }

    /// The reference decoder: apache-avro's `Value`, then JSON.
    fn reference_decode(avro: &CanonicalAvro, datum: &[u8]) -> Json {
        let value = apache_avro::from_avro_datum(&avro.schema, &mut &datum[..], None).unwrap();
        avro.to_json(value).unwrap()
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9 -]{0,12}", "\\PC{0,6}", Just(String::new())]
    }

    fn date() -> impl Strategy<Value = String> {
        // 0001-01-01 ..= 9999-12-31, as days since 1970.
        (-719_162_i64..=2_932_896).prop_map(|d| {
            (NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(d))
                .format("%Y-%m-%d")
                .to_string()
        })
    }

    fn date_time() -> impl Strategy<Value = String> {
        (
            -62_135_596_800_i64..253_402_300_799,
            0_u32..1_000_000,
            0_usize..3,
        )
            .prop_map(|(secs, micros, digits)| {
                // 0, 3 or 6 fraction digits, written as the decoder writes them (`AutoSi`: a
                // millisecond value with 6 digits, `.013000`, would come back as `.013`).
                let micros = micros - micros % [1_000_000, 1_000, 1][digits];
                let t = DateTime::from_timestamp(secs, micros * 1_000).unwrap();
                t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            })
    }

    prop_compose! {
        fn line()(item in text(), qty in any::<i64>(), shipped_on in proptest::option::of(date()))
            -> Json {
            let mut line = json!({"item": item, "qty": qty});
            if let Some(d) = shipped_on {
                line["shipped_on"] = json!(d);
            }
            line
        }
    }

    prop_compose! {
        fn any_event()(
            subject in proptest::option::of(text()),
            declared_on in date(),
            accepted_at in date_time(),
            value in any::<i64>(),
            rate in any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()),
            urgent in any::<bool>(),
            manifest_no in proptest::option::of(text()),
            cleared_on in proptest::option::of(date()),
            city in proptest::option::of(text()),
            tags in proptest::option::of(proptest::collection::vec(text(), 0..4)),
            lines in proptest::collection::vec(line(), 0..4),
            extracted_at in any::<i64>(),
        ) -> Json {
            let mut e = event();
            e["subject"] = json!(subject);
            e["source"]["extracted_at"] = json!(extracted_at);
            let d = &mut e["data"];
            d["declared_on"] = json!(declared_on);
            d["accepted_at"] = json!(accepted_at);
            d["declared_value_krw"] = json!(value);
            d["rate"] = json!(rate);
            d["urgent"] = json!(urgent);
            d["cleared_on"] = json!(cleared_on);
            if let Some(m) = manifest_no {
                d["manifest_no"] = json!(m);
            }
            if let Some(c) = city {
                d["consignee"]["city"] = json!(c);
            }
            if let Some(t) = tags {
                d["tags"] = json!(t);
            }
            d["lines"] = json!(lines);
            e
        }
    }

    proptest! {
        /// The codec writes the bytes apache-avro writes, and reads them back to what the
        /// reference decoder gives: the event itself.
        #[test]
        fn the_codec_agrees_with_apache_avro(event in any_event()) {
            let avro = canonical_schema(&schema()).unwrap();
            let bytes = encode(&avro, 3, &event).unwrap();
            let datum = reference_encode(&avro, &event).unwrap();
            prop_assert_eq!(&bytes[5..], &datum[..]);
            let back = decode(&avro, &bytes).unwrap();
            prop_assert_eq!(&back, &reference_decode(&avro, &datum));
            // The one-pass transcoder writes what serde_json writes for the decoded event.
            let t = transcode(&avro, &bytes).unwrap();
            prop_assert_eq!(
                String::from_utf8(t.json).unwrap(),
                serde_json::to_string(&back).unwrap()
            );
            let text = |p: &str| back.pointer(p).and_then(Json::as_str).unwrap().to_owned();
            prop_assert_eq!(t.event_id, text("/event_id"));
            prop_assert_eq!(t.event_type, text("/event_type"));
            prop_assert_eq!(t.mapping_name, text("/mapping/name"));
            prop_assert_eq!(Some(i64::from(t.mapping_version)), back["mapping"]["version"].as_i64());
            prop_assert_eq!(t.subject.as_deref(), back["subject"].as_str());
            prop_assert_eq!(
                t.source,
                ["connector", "table", "key", "position"].map(|k| text(&format!("/source/{k}")))
            );
            prop_assert_eq!(Some(t.extracted_at), back["source"]["extracted_at"].as_i64());
            prop_assert_eq!(back, event);
        }

        /// Whatever an event gets wrong, the codec refuses it with the reference's error.
        #[test]
        fn the_codec_refuses_what_the_reference_refuses(
            event in any_event(),
            at in proptest::sample::select(vec![
                "/event_id", "/schema_version", "/mapping/version", "/subject", "/source/key",
                "/source/extracted_at", "/data/declared_on", "/data/accepted_at",
                "/data/declared_value_krw", "/data/rate", "/data/urgent", "/data/consignee",
                "/data/consignee/name", "/data/lines", "/data/manifest_no", "/data/cleared_on",
            ]),
            with in prop_oneof![
                Just(json!(null)), Just(json!(true)), Just(json!(1.5)), Just(json!("x")),
                Just(json!([1])), Just(json!({"a": 1})), Just(json!(4_294_967_296_i64)),
            ],
        ) {
            let avro = canonical_schema(&schema()).unwrap();
            let mut event = event;
            *event.pointer_mut(at).unwrap_or(&mut Json::Null) = with;
            match (encode(&avro, 1, &event), reference_encode(&avro, &event)) {
                (Ok(bytes), Ok(datum)) => prop_assert_eq!(&bytes[5..], &datum[..]),
                (Err(e), Err(r)) => prop_assert_eq!(e.to_string(), r.to_string()),
                (ours, reference) => prop_assert!(
                    false,
                    "codec {:?}, reference {:?}",
                    ours.map(|_| ()),
                    reference.map(|_| ())
                ),
            }
        }
    }

    #[test]
    fn cut_short_datums_are_refused_not_read_as_nulls() {
        let avro = canonical_schema(&schema()).unwrap();
        let bytes = encode(&avro, 1, &event()).unwrap();
        for end in 5..bytes.len() {
            let e = decode(&avro, &bytes[..end]).unwrap_err().to_string();
            assert!(e.contains("cannot read the Avro datum"), "{end}: {e}");
            let e = transcode(&avro, &bytes[..end]).unwrap_err().to_string();
            assert!(e.contains("cannot read the Avro datum"), "{end}: {e}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let e = transcode(&avro, &longer).unwrap_err().to_string();
        assert!(e.contains("1 bytes left after the datum"), "{e}");
    }

    #[test]
    fn a_full_envelope_round_trips() {
        let avro = canonical_schema(&schema()).unwrap();
        let mut event = event();
        let bytes = encode(&avro, 42, &event).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 42]);
        assert_eq!(schema_id(&bytes).unwrap(), 42);
        assert_eq!(decode(&avro, &bytes).unwrap(), event);

        // With a subject, the optional properties set, and whole seconds.
        event["subject"] = json!("psn:9c1e");
        event["data"]["manifest_no"] = json!("HBL-001");
        event["data"]["cleared_on"] = json!("2026-11-03");
        event["data"]["accepted_at"] = json!("2026-11-02T01:30:00Z");
        event["data"]["tags"] = json!(["냉장", "fragile"]);
        event["data"]["consignee"]["city"] = json!("서울");
        let bytes = encode(&avro, 1, &event).unwrap();
        assert_eq!(decode(&avro, &bytes).unwrap(), event);
    }

    #[test]
    fn values_are_encoded_as_their_avro_logical_types() {
        let avro = canonical_schema(&schema()).unwrap();
        let bytes = encode(&avro, 1, &event()).unwrap();
        let Avro::Record(fields) =
            apache_avro::from_avro_datum(&avro.schema, &mut &bytes[5..], None).unwrap()
        else {
            panic!("not a record")
        };
        let Avro::Record(data) = &fields[6].1 else {
            panic!("no data")
        };
        let get = |name: &str| data.iter().find(|(n, _)| n == name).unwrap().1.clone();
        // 2026-11-02 is day 20 759 of the Unix epoch; 01:30 adds 5 400 s.
        assert_eq!(get("declared_on"), Avro::Date(20_759));
        assert_eq!(
            get("accepted_at"),
            Avro::TimestampMicros(1_793_583_000_123_456)
        );
        assert_eq!(get("declared_value_krw"), Avro::Long(1_250_000));
        assert_eq!(get("manifest_no"), Avro::Union(0, Box::new(Avro::Null)));
        let Avro::Array(lines) = get("lines") else {
            panic!("no lines")
        };
        let Avro::Record(line) = &lines[0] else {
            panic!("no line")
        };
        assert_eq!(
            line[2].1,
            Avro::Union(1, Box::new(Avro::Date(-1))),
            "dates before 1970 are negative days"
        );
    }

    #[test]
    fn date_times_with_an_offset_are_decoded_in_utc() {
        let avro = canonical_schema(&schema()).unwrap();
        let mut event = event();
        event["data"]["accepted_at"] = json!("2026-11-02T10:30:00.5+09:00");
        let back = decode(&avro, &encode(&avro, 1, &event).unwrap()).unwrap();
        assert_eq!(back["data"]["accepted_at"], "2026-11-02T01:30:00.500Z");
    }

    fn derive_error(data_schema: Json) -> String {
        let mut s = json!({
            "type": "object",
            "x-ledgerbridge": {"event_type": "t.e", "version": 1, "key": ["a"]},
            "properties": {"a": {"type": "string"}}
        });
        s["properties"]["x"] = data_schema;
        canonical_schema(&s).unwrap_err().to_string()
    }

    #[test]
    fn unsupported_constructs_are_refused_with_their_pointer() {
        let cases = [
            (
                json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
                "`/properties/x/oneOf`: keyword `oneOf` has no Avro form",
            ),
            (
                json!({"$ref": "#/$defs/money"}),
                "`/properties/x/$ref`: keyword `$ref` has no Avro form",
            ),
            (
                json!({"type": "object", "patternProperties": {"^a": {"type": "string"}}}),
                "`/properties/x/patternProperties`",
            ),
            (
                json!({"type": "object", "properties": {"y": {"type": "string"}},
                       "additionalProperties": {"type": "string"}}),
                "`/properties/x/additionalProperties`: a schema for undeclared properties",
            ),
            (
                json!({"type": ["string", "integer"]}),
                "`/properties/x/type`: a union of types string, integer has no Avro form",
            ),
            (
                json!({"type": "array", "items": {"anyOf": []}}),
                "`/properties/x/items/anyOf`",
            ),
            (
                json!({"type": "array"}),
                "`/properties/x`: an array without `items`",
            ),
            (json!({"minLength": 1}), "`/properties/x`: no `type`"),
            (
                json!({"type": "object"}),
                "`/properties/x`: an object without declared `properties`",
            ),
            (
                json!({"type": "object", "properties": {"a/b~": {"type": "string"}}}),
                "`/properties/x/properties/a~1b~0`: property `a/b~` is not an Avro name",
            ),
            (
                json!({"type": "object", "properties": {"주문번호": {"type": "string"}}}),
                "property `주문번호` is not an Avro name",
            ),
        ];
        for (schema, expected) in cases {
            let error = derive_error(schema.clone());
            assert!(error.contains(expected), "{schema}: {error}");
        }
    }

    #[test]
    fn conjunctive_constraints_are_accepted_and_left_out() {
        let mut s = schema();
        s["dependentRequired"] = json!({"cleared_on": ["manifest_no"]});
        s["if"] = json!({"properties": {"status": {"const": "cleared"}}});
        s["then"] = json!({"required": ["manifest_no"]});
        s["else"] = json!({"not": {"required": ["manifest_no"]}});
        s["allOf"] = json!([{"required": ["urgent"]}]);
        let with = canonical_schema(&s).unwrap();
        let without = canonical_schema(&schema()).unwrap();
        assert_eq!(with.text, without.text);
    }

    #[test]
    fn the_extension_is_required() {
        let mut s = schema();
        s.as_object_mut().unwrap().remove("x-ledgerbridge");
        let e = canonical_schema(&s).unwrap_err().to_string();
        assert!(e.contains("`/x-ledgerbridge`: missing"), "{e}");
        let mut s = schema();
        s["x-ledgerbridge"]["version"] = json!(0);
        let e = canonical_schema(&s).unwrap_err().to_string();
        assert!(e.contains("`/x-ledgerbridge/version`"), "{e}");
        let mut s = schema();
        s["type"] = json!("array");
        let e = canonical_schema(&s).unwrap_err().to_string();
        assert!(e.contains("array without `items`"), "{e}");
    }

    #[test]
    fn values_that_do_not_fit_are_refused_with_their_pointer() {
        let avro = canonical_schema(&schema()).unwrap();
        let cases: [(&str, Json, &str); 12] = [
            (
                "/data/lines/1/qty",
                json!("ten"),
                "`/data/lines/1/qty`: a string where an integer",
            ),
            (
                "/data/declared_on",
                json!("20261102"),
                "`/data/declared_on`: `20261102` is not a date",
            ),
            (
                "/data/declared_on",
                json!("2026-2-3"),
                "`/data/declared_on`: `2026-2-3` is not a date",
            ),
            (
                "/data/accepted_at",
                json!("2026-11-02 01:30"),
                "`/data/accepted_at`: `2026-11-02 01:30` is not an RFC 3339 date-time",
            ),
            (
                "/data/accepted_at",
                json!("2026-11-02T01:30:00.123456789Z"),
                "more precise than a microsecond",
            ),
            (
                "/data/urgent",
                json!(null),
                "`/data/urgent`: null, but the schema does not allow null",
            ),
            (
                "/data/consignee/nickname",
                json!("철수"),
                "`/data/consignee/nickname`: not declared by the schema",
            ),
            (
                "/data/rate",
                json!("0.25"),
                "`/data/rate`: a string where a number",
            ),
            (
                "/event_type",
                json!("customs.declaration"),
                "`/event_type`: \"customs.declaration\" but this schema is for `customs.order-declaration`",
            ),
            (
                "/schema_version",
                json!(1),
                "`/schema_version`: version 1 but this schema is version 2",
            ),
            (
                "/mapping/version",
                json!(4_294_967_296_i64),
                "`/mapping/version`: 4294967296 does not fit a 32-bit integer",
            ),
            ("/trace", json!("x"), "`/trace`: not declared by the schema"),
        ];
        for (pointer, value, expected) in cases {
            let mut event = event();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            event.pointer_mut(parent).unwrap()[key] = value;
            let error = encode(&avro, 1, &event).unwrap_err().to_string();
            assert!(error.contains(expected), "{pointer}: {error}");
        }
        let mut event = event();
        event["data"]
            .as_object_mut()
            .unwrap()
            .remove("declaration_no");
        let error = encode(&avro, 1, &event).unwrap_err().to_string();
        assert!(
            error.contains("`/data/declaration_no`: missing (required)"),
            "{error}"
        );
        event = self::event();
        event["data"].as_object_mut().unwrap().remove("cleared_on");
        let error = encode(&avro, 1, &event).unwrap_err().to_string();
        assert!(
            error.contains("`/data/cleared_on`: missing (required)"),
            "a required nullable property must be there: {error}"
        );
        event = self::event();
        event["source"].as_object_mut().unwrap().remove("position");
        let error = encode(&avro, 1, &event).unwrap_err().to_string();
        assert!(error.contains("`/source/position`: missing"), "{error}");
    }

    #[test]
    fn bad_frames_are_refused() {
        let avro = canonical_schema(&schema()).unwrap();
        let bytes = encode(&avro, 7, &event()).unwrap();
        let short = decode(&avro, &bytes[..3]).unwrap_err().to_string();
        assert!(
            short.contains("3 bytes, shorter than the 5-byte header"),
            "{short}"
        );
        let mut magic = bytes.clone();
        magic[0] = 1;
        let e = decode(&avro, &magic).unwrap_err().to_string();
        assert!(e.contains("magic byte 1"), "{e}");
        let mut trailing = bytes.clone();
        trailing.push(0);
        let e = decode(&avro, &trailing).unwrap_err().to_string();
        assert!(e.contains("1 bytes left after the datum"), "{e}");
        let e = decode(&avro, &bytes[..bytes.len() - 3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read the Avro datum"), "{e}");
    }

    #[test]
    fn a_new_optional_property_keeps_the_avro_schemas_compatible_both_ways() {
        let v1 = canonical_schema(&schema()).unwrap();
        let mut s = schema();
        s["properties"]["note"] = json!({"type": "string"});
        let v2 = canonical_schema(&s).unwrap();
        assert!(SchemaCompatibility::mutual_read(&v1.schema, &v2.schema).is_ok());
        s["properties"]["urgent"] = json!({"type": "string"});
        let v3 = canonical_schema(&s).unwrap();
        assert!(SchemaCompatibility::can_read(&v3.schema, &v1.schema).is_err());
    }
}
