//! Whether a new version of a canonical schema would break its consumers.
//!
//! The question is FORWARD compatibility in Confluent's terms: can every event valid under the
//! NEW schema be processed by a consumer written against the OLD one? Consumers are assumed to be
//! *tolerant readers*: they ignore properties they do not know (Avro readers skip writer fields
//! missing from their schema; JSON consumers must not re-validate with the old schema's
//! `additionalProperties: false`). Everything else the old schema promised, they may rely on.
//!
//! Breaking (each reported as a [`Change`] with the JSON pointer into the schema):
//!
//! - **A property removed** ([`ChangeKind::Removed`]): if it was required, consumers reading it
//!   would find it missing. If it was optional, consumers already cope with its absence, so it
//!   breaks only if the new schema leaves the object open (`additionalProperties` not `false`):
//!   the name is then unconstrained and new events may carry it with any value.
//! - **A required property made optional** ([`ChangeKind::MadeOptional`]), or **a type that now
//!   admits `null`** ([`ChangeKind::MadeNullable`]): consumers may rely on the value.
//! - **A type changed** ([`ChangeKind::TypeChanged`]): the new types must be among the old ones
//!   (`integer` counts as a `number`), arrays must keep constrained `items`. Narrowing (`number` →
//!   `integer`, dropping `null`) is fine.
//! - **A `format` removed or changed**, or **`date`/`date-time` added** ([`ChangeKind::FormatChanged`]):
//!   consumers parse the old format; and `date`/`date-time` change the Avro type (`string` ↔
//!   `int`/`long`), which old Avro readers cannot read. Adding another format is a narrowing.
//! - **Enum values added**, or an `enum`/`const` dropped ([`ChangeKind::EnumWidened`]): old consumers
//!   do not know the new values (even though the canonical topics carry enums as Avro strings, so
//!   Avro itself would not object).
//! - **A constraint loosened** ([`ChangeKind::ConstraintLoosened`]): a lower `minimum`/`minLength`/
//!   `minItems`, a higher `maximum`/`maxLength`/`maxItems`, one of them removed, a `multipleOf`
//!   that is not a multiple of the old one, a `pattern` removed **or changed** — regular
//!   expressions are not compared for inclusion, so a changed pattern is reported even if it is in
//!   fact tighter (e.g. a decimal pattern going from 2 to 3 fraction digits does break consumers).
//! - **A conditional constraint removed or changed** ([`ChangeKind::ConstraintLoosened`]): a
//!   `dependentRequired` dependency dropped; `if`/`then`/`else`, `allOf`, `not` or
//!   `dependentSchemas` different from the old ones (compared as written; adding them is fine).
//! - **`x-ledgerbridge.event_type` or `key` changed** ([`ChangeKind::Identity`]): event ids are
//!   derived from them, so the same row would get a different id and be anchored twice; also
//!   `channel` (the events move to another ledger channel) and `subject` (the envelope's data
//!   subject changes meaning).
//! - **No Avro form** ([`ChangeKind::NoAvroForm`]): the new schema cannot be carried on the
//!   canonical topics at all.
//! - **Avro disagrees** ([`ChangeKind::AvroIncompatible`]): the derived Avro schemas are
//!   cross-checked (`SchemaCompatibility::can_read(new, old)`: old readers on new data); if
//!   apache-avro refuses although none of the rules above found anything, its reason is reported.
//!
//! Not breaking: adding a property (required or not), making an optional property required,
//! narrowing a type, removing enum values, adding a `pattern`/`format` (other than `date` or
//! `date-time`), tightening a bound, changing `additionalProperties`, `title`, `description`,
//! `default`, `examples`, `x-ledgerbridge.version`. `minProperties`/`maxProperties` and
//! `uniqueItems` are not compared.

use std::fmt;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde_json::{Map, Value as Json};

use crate::avro::{canonical_schema, escape};

/// What kind of breaking change (see the module documentation for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A property removed.
    Removed,
    /// A required property made optional.
    MadeOptional,
    /// A value that may now be null.
    MadeNullable,
    /// A type changed to one the old schema did not admit.
    TypeChanged,
    /// A `format` removed, changed, or `date`/`date-time` added.
    FormatChanged,
    /// Enum values added, or the enum removed.
    EnumWidened,
    /// A bound or pattern loosened.
    ConstraintLoosened,
    /// `x-ledgerbridge` identity: event type, key, channel or subject field.
    Identity,
    /// The new schema has no Avro form.
    NoAvroForm,
    /// apache-avro finds the derived Avro schemas incompatible.
    AvroIncompatible,
}

/// One change that breaks consumers of the old version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// JSON pointer into the schema (`/properties/declared_value_krw`; empty: the whole schema).
    pub path: String,
    /// What kind of change.
    pub kind: ChangeKind,
    /// What breaks for consumers of the old version.
    pub explanation: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(schema)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.explanation)
    }
}

/// A new schema version refused because it breaks consumers of the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Every breaking change.
    pub changes: Vec<Change>,
}

impl std::error::Error for Refused {}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the new schema version breaks consumers of the old one ({} change{}):",
            self.changes.len(),
            if self.changes.len() == 1 { "" } else { "s" }
        )?;
        for change in &self.changes {
            write!(f, "\n  {change}")?;
        }
        Ok(())
    }
}

/// Whether `new` may follow `old` (FORWARD: consumers of `old` process events valid under `new`).
///
/// # Errors
/// [`Refused`] with every breaking change.
pub fn check(old: &Json, new: &Json) -> Result<(), Refused> {
    let changes = breaking_changes(old, new);
    if changes.is_empty() {
        Ok(())
    } else {
        Err(Refused { changes })
    }
}

/// Every change from `old` to `new` (two versions of a canonical JSON Schema, the `data` part with
/// `x-ledgerbridge`) that breaks consumers written against `old`.
#[must_use]
pub fn breaking_changes(old: &Json, new: &Json) -> Vec<Change> {
    let mut out = Vec::new();
    compare(old, new, "", "the event data", &mut out);
    identity(old, new, &mut out);
    avro_cross_check(old, new, &mut out);
    out
}

fn push(out: &mut Vec<Change>, path: &str, kind: ChangeKind, explanation: String) {
    out.push(Change {
        path: path.to_owned(),
        kind,
        explanation,
    });
}

const TYPES: [&str; 7] = [
    "null", "boolean", "integer", "number", "string", "array", "object",
];

/// The JSON types a schema admits (`None`: any); inferred from `enum`/`const` without `type`.
fn types(schema: &Map<String, Json>) -> Option<Vec<&'static str>> {
    let named = |t: &str| TYPES.iter().copied().find(|x| *x == t);
    match schema.get("type") {
        Some(Json::String(t)) => Some(named(t).into_iter().collect()),
        Some(Json::Array(ts)) => Some(
            ts.iter()
                .filter_map(Json::as_str)
                .filter_map(named)
                .collect(),
        ),
        _ => {
            let values = enum_values(schema)?;
            let mut out = Vec::new();
            for v in values {
                let t = match v {
                    Json::Null => "null",
                    Json::Bool(_) => "boolean",
                    Json::Number(n) if n.is_i64() || n.is_u64() => "integer",
                    Json::Number(_) => "number",
                    Json::String(_) => "string",
                    Json::Array(_) => "array",
                    Json::Object(_) => "object",
                };
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            Some(out)
        }
    }
}

/// `enum`, or `const` as a one-value enum.
fn enum_values(schema: &Map<String, Json>) -> Option<Vec<&Json>> {
    match (schema.get("enum"), schema.get("const")) {
        (Some(Json::Array(vs)), _) => Some(vs.iter().collect()),
        (_, Some(v)) => Some(vec![v]),
        _ => None,
    }
}

fn admits(types: Option<&[&str]>, t: &str) -> bool {
    types.is_none_or(|ts| ts.contains(&t) || (t == "integer" && ts.contains(&"number")))
}

fn child_name(parent: &str, prop: &str) -> String {
    if parent == "the event data" {
        prop.to_owned()
    } else {
        format!("{parent}.{prop}")
    }
}

fn list(values: &[impl fmt::Display]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares the schemas of one value; `name` is how the explanations call it.
fn compare(old: &Json, new: &Json, path: &str, name: &str, out: &mut Vec<Change>) {
    let empty = Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let old_types = types(old);
    let new_types = types(new);
    let type_path = format!("{path}/type");
    match (&old_types, &new_types) {
        (None, _) => {}
        (Some(o), None) => {
            push(
                out,
                &type_path,
                ChangeKind::TypeChanged,
                format!(
                    "`{name}` is no longer restricted to {}: consumers of the old version would get values of any type",
                    list(o)
                ),
            );
            return;
        }
        (Some(o), Some(n)) => {
            let widened: Vec<&str> = n
                .iter()
                .copied()
                .filter(|t| *t != "null" && !admits(Some(o), t))
                .collect();
            if !widened.is_empty() {
                push(
                    out,
                    &type_path,
                    ChangeKind::TypeChanged,
                    format!(
                        "`{name}` may now be {} where it was {}: consumers of the old version would misread it",
                        list(&widened),
                        list(o)
                    ),
                );
                return;
            }
            if n.contains(&"null") && !o.contains(&"null") {
                push(
                    out,
                    &type_path,
                    ChangeKind::MadeNullable,
                    format!(
                        "`{name}` may now be null: consumers of the old version rely on a value"
                    ),
                );
            }
        }
    }
    let (old_types, new_types) = (old_types.as_deref(), new_types.as_deref());
    compare_enum(old, new, path, name, out);
    compare_conditionals(old, new, path, name, out);
    if admits(old_types, "string") && admits(new_types, "string") {
        compare_format(old, new, path, name, out);
        compare_pattern(old, new, path, name, out);
        compare_bound(old, new, path, name, "minLength", Bound::Min, out);
        compare_bound(old, new, path, name, "maxLength", Bound::Max, out);
    }
    let numeric = |types| admits(types, "number") || admits(types, "integer");
    if numeric(old_types) && numeric(new_types) {
        compare_range(old, new, path, name, out);
    }
    if admits(old_types, "array") && admits(new_types, "array") {
        compare_bound(old, new, path, name, "minItems", Bound::Min, out);
        compare_bound(old, new, path, name, "maxItems", Bound::Max, out);
        match (old.get("items"), new.get("items")) {
            (Some(o), Some(n)) => {
                compare(o, n, &format!("{path}/items"), &format!("{name}[]"), out);
            }
            (Some(_), None) => push(
                out,
                &format!("{path}/items"),
                ChangeKind::TypeChanged,
                format!(
                    "the items of `{name}` are no longer constrained: consumers of the old version would get items of any type"
                ),
            ),
            _ => {}
        }
    }
    if admits(old_types, "object") && admits(new_types, "object") {
        compare_properties(old, new, path, name, out);
    }
}

fn required(schema: &Map<String, Json>) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Json::as_array)
        .map(|r| r.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default()
}

fn compare_properties(
    old: &Map<String, Json>,
    new: &Map<String, Json>,
    path: &str,
    name: &str,
    out: &mut Vec<Change>,
) {
    let Some(old_props) = old.get("properties").and_then(Json::as_object) else {
        return;
    };
    let empty = Map::new();
    let new_props = new
        .get("properties")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let (old_required, new_required) = (required(old), required(new));
    let closed = new.get("additionalProperties") == Some(&Json::Bool(false));
    for (prop, old_sub) in old_props {
        let prop_path = format!("{path}/properties/{}", escape(prop));
        let prop_name = child_name(name, prop);
        let was_required = old_required.contains(&prop.as_str());
        match new_props.get(prop) {
            None if was_required => push(
                out,
                &prop_path,
                ChangeKind::Removed,
                format!(
                    "`{prop_name}` is removed: consumers reading `{prop_name}` would find it missing"
                ),
            ),
            None if !closed => push(
                out,
                &prop_path,
                ChangeKind::Removed,
                format!(
                    "optional `{prop_name}` is removed while undeclared properties stay allowed: new events may carry `{prop_name}` with any value (close the object with `additionalProperties: false` to retire it)"
                ),
            ),
            None => {}
            Some(new_sub) => {
                if was_required && !new_required.contains(&prop.as_str()) {
                    push(
                        out,
                        &prop_path,
                        ChangeKind::MadeOptional,
                        format!(
                            "`{prop_name}` becomes optional: consumers of the old version may rely on it being present"
                        ),
                    );
                }
                compare(old_sub, new_sub, &prop_path, &prop_name, out);
            }
        }
    }
}

fn compare_enum(
    old: &Map<String, Json>,
    new: &Map<String, Json>,
    path: &str,
    name: &str,
    out: &mut Vec<Change>,
) {
    let Some(old_values) = enum_values(old) else {
        return;
    };
    let keyword = if old.contains_key("enum") {
        "enum"
    } else {
        "const"
    };
    match enum_values(new) {
        None => push(
            out,
            &format!("{path}/{keyword}"),
            ChangeKind::EnumWidened,
            format!(
                "`{name}` is no longer limited to {}: consumers of the old version do not know other values",
                list(&old_values)
            ),
        ),
        Some(new_values) => {
            // Null is the business of `type` (MadeNullable).
            let added: Vec<&Json> = new_values
                .into_iter()
                .filter(|v| !v.is_null() && !old_values.contains(v))
                .collect();
            if !added.is_empty() {
                let keyword = if new.contains_key("enum") {
                    "enum"
                } else {
                    "const"
                };
                push(
                    out,
                    &format!("{path}/{keyword}"),
                    ChangeKind::EnumWidened,
                    format!(
                        "`{name}` gains {} {}: consumers of the old version do not know {}",
                        if added.len() == 1 { "value" } else { "values" },
                        list(&added),
                        if added.len() == 1 { "it" } else { "them" }
                    ),
                );
            }
        }
    }
}

fn strings(v: Option<&Json>) -> Vec<&str> {
    v.and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default()
}

/// `dependentRequired` entry by entry; the conjunctive applicators as written.
fn compare_conditionals(
    old: &Map<String, Json>,
    new: &Map<String, Json>,
    path: &str,
    name: &str,
    out: &mut Vec<Change>,
) {
    if let Some(old_dependent) = old.get("dependentRequired").and_then(Json::as_object) {
        let new_dependent = new.get("dependentRequired");
        for (prop, deps) in old_dependent {
            let kept = strings(new_dependent.and_then(|d| d.get(prop)));
            let lost: Vec<&str> = strings(Some(deps))
                .into_iter()
                .filter(|d| !kept.contains(d))
                .collect();
            if !lost.is_empty() {
                push(
                    out,
                    &format!("{path}/dependentRequired/{}", escape(prop)),
                    ChangeKind::ConstraintLoosened,
                    format!(
                        "`{name}` with `{prop}` no longer has to carry {}: consumers of the old version may rely on {}",
                        list(&lost),
                        if lost.len() == 1 { "it" } else { "them" }
                    ),
                );
            }
        }
    }
    for group in [
        &["if", "then", "else"][..],
        &["allOf"],
        &["not"],
        &["dependentSchemas"],
    ] {
        let old_group: Vec<Option<&Json>> = group.iter().map(|k| old.get(*k)).collect();
        if old_group.iter().all(Option::is_none) {
            continue;
        }
        let new_group: Vec<Option<&Json>> = group.iter().map(|k| new.get(*k)).collect();
        if old_group != new_group {
            push(
                out,
                &format!("{path}/{}", group[0]),
                ChangeKind::ConstraintLoosened,
                format!(
                    "`{name}`'s `{}` changes: conditional constraints are not compared for inclusion, and consumers of the old version may rely on the old ones",
                    group.join("`/`")
                ),
            );
        }
    }
}

fn compare_format(
    old: &Map<String, Json>,
    new: &Map<String, Json>,
    path: &str,
    name: &str,
    out: &mut Vec<Change>,
) {
    let old_format = old.get("format").and_then(Json::as_str);
    let new_format = new.get("format").and_then(Json::as_str);
    let explanation = match (old_format, new_format) {
        (Some(o), None) => format!(
            "`{name}` is no longer a `{o}`: consumers of the old version parse it as one{}",
            avro_note(o)
        ),
        (Some(o), Some(n)) if o != n => format!(
            "`{name}` changes from `{o}` to `{n}`: consumers of the old version parse a `{o}`{}",
            avro_note_pair(o, n)
        ),
        (None, Some(n @ ("date" | "date-time"))) => {
            format!("`{name}` becomes a `{n}`{}", avro_note(n))
        }
        _ => return,
    };
    push(
        out,
        &format!("{path}/format"),
        ChangeKind::FormatChanged,
        explanation,
    );
}

fn avro_type(format: &str) -> Option<&'static str> {
    match format {
        "date" => Some("int (date)"),
        "date-time" => Some("long (timestamp-micros)"),
        _ => None,
    }
}

fn avro_note(format: &str) -> String {
    avro_type(format).map_or_else(String::new, |t| {
        format!("; and its Avro type changes to or from {t}, which old Avro readers cannot read")
    })
}

fn avro_note_pair(old: &str, new: &str) -> String {
    let (o, n) = (
        avro_type(old).unwrap_or("string"),
        avro_type(new).unwrap_or("string"),
    );
    if o == n {
        String::new()
    } else {
        format!("; and its Avro type changes from {o} to {n}, which old Avro readers cannot read")
    }
}

fn compare_pattern(
    old: &Map<String, Json>,
    new: &Map<String, Json>,
    path: &str,
    name: &str,
    out: &mut Vec<Change>,
) {
    let Some(old_pattern) = old.get("pattern").and_then(Json::as_str) else {
        return;
    };
    let explanation = match new.get("pattern").and_then(Json::as_str) {
        None => format!(
            "`{name}` no longer has to match `{old_pattern}`: consumers of the old version may rely on it"
        ),
        Some(p) if p != old_pattern => format!(
            "`{name}`'s pattern changes from `{old_pattern}` to `{p}`: values matching the new pattern may not match the old one (patterns are not compared for inclusion)"
        ),
        Some(_) => return,
    };
    push(
        out,
        &format!("{path}/pattern"),
        ChangeKind::ConstraintLoosened,
        explanation,
    );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    Min,
    Max,
}

fn compare_bound(
    old: &Map<String, Json>,
    new: &Map<String, Json>,
    path: &str,
    name: &str,
    keyword: &str,
    bound: Bound,
    out: &mut Vec<Change>,
) {
    let Some(o) = old.get(keyword).and_then(Json::as_f64) else {
        return;
    };
    let explanation = match new.get(keyword).and_then(Json::as_f64) {
        None => {
            format!("`{name}` loses `{keyword}: {o}`: consumers of the old version may rely on it")
        }
        Some(n) if (bound == Bound::Min && n < o) || (bound == Bound::Max && n > o) => format!(
            "`{name}`'s `{keyword}` goes from {o} to {n}: consumers of the old version may rely on the old bound"
        ),
        Some(_) => return,
    };
    push(
        out,
        &format!("{path}/{keyword}"),
        ChangeKind::ConstraintLoosened,
        explanation,
    );
}

/// A numeric bound: value and whether it is exclusive.
fn numeric_bound(
    schema: &Map<String, Json>,
    inclusive: &str,
    exclusive: &str,
    bound: Bound,
) -> Option<(f64, bool)> {
    let i = schema
        .get(inclusive)
        .and_then(Json::as_f64)
        .map(|v| (v, false));
    let e = schema
        .get(exclusive)
        .and_then(Json::as_f64)
        .map(|v| (v, true));
    match (i, e) {
        (Some(i), Some(e)) => Some(if tighter(e, i, bound) { e } else { i }),
        (i, e) => i.or(e),
    }
}

/// Whether bound `a` admits no value `b` rejects.
fn tighter(a: (f64, bool), b: (f64, bool), bound: Bound) -> bool {
    let beyond = match bound {
        Bound::Min => a.0 > b.0,
        Bound::Max => a.0 < b.0,
    };
    #[allow(clippy::float_cmp)]
    let same = a.0 == b.0;
    beyond || (same && (a.1 || !b.1))
}

fn compare_range(
    old: &Map<String, Json>,
    new: &Map<String, Json>,
    path: &str,
    name: &str,
    out: &mut Vec<Change>,
) {
    for (inclusive, exclusive, bound) in [
        ("minimum", "exclusiveMinimum", Bound::Min),
        ("maximum", "exclusiveMaximum", Bound::Max),
    ] {
        let Some(o) = numeric_bound(old, inclusive, exclusive, bound) else {
            continue;
        };
        let show =
            |(v, e): (f64, bool)| format!("`{}: {v}`", if e { exclusive } else { inclusive });
        let keyword = if new.contains_key(inclusive) || !new.contains_key(exclusive) {
            inclusive
        } else {
            exclusive
        };
        let explanation = match numeric_bound(new, inclusive, exclusive, bound) {
            None => format!(
                "`{name}` loses {}: consumers of the old version may rely on it",
                show(o)
            ),
            Some(n) if !tighter(n, o, bound) => format!(
                "`{name}`'s bound goes from {} to {}: consumers of the old version may rely on the old bound",
                show(o),
                show(n)
            ),
            Some(_) => continue,
        };
        push(
            out,
            &format!("{path}/{keyword}"),
            ChangeKind::ConstraintLoosened,
            explanation,
        );
    }
    let Some(o) = old.get("multipleOf").and_then(Json::as_f64) else {
        return;
    };
    let explanation = match new.get("multipleOf").and_then(Json::as_f64) {
        None => {
            format!("`{name}` loses `multipleOf: {o}`: consumers of the old version may rely on it")
        }
        Some(n)
            if {
                let ratio = n / o;
                (ratio - ratio.round()).abs() > 1e-9 || ratio.round() < 1.0
            } =>
        {
            format!(
                "`{name}`'s `multipleOf` goes from {o} to {n}, which is not a multiple of {o}: consumers of the old version may rely on the old step"
            )
        }
        Some(_) => return,
    };
    push(
        out,
        &format!("{path}/multipleOf"),
        ChangeKind::ConstraintLoosened,
        explanation,
    );
}

/// `x-ledgerbridge`: the event type and key make the event id; channel and subject field.
fn identity(old: &Json, new: &Json, out: &mut Vec<Change>) {
    let get = |schema: &'_ Json, key: &str| -> Option<Json> {
        schema
            .get("x-ledgerbridge")
            .and_then(|x| x.get(key))
            .cloned()
    };
    for (key, why) in [
        (
            "event_type",
            "event ids are derived from the event type, so re-read rows would get new ids and be anchored twice, and consumers of the old type would stop receiving them",
        ),
        (
            "key",
            "event ids are derived from the business key, so re-read rows would get new ids and be anchored twice",
        ),
        (
            "channel",
            "events would be anchored in another ledger channel: readers of the old channel stop seeing them",
        ),
        (
            "subject",
            "the envelope's `subject` would hold another field: consumers (subject access, erasure) would mix up data subjects",
        ),
    ] {
        let (o, n) = (get(old, key), get(new, key));
        if o != n {
            let show = |v: &Option<Json>| {
                v.as_ref()
                    .map_or_else(|| "nothing".to_owned(), |v| format!("`{v}`"))
            };
            push(
                out,
                &format!("/x-ledgerbridge/{key}"),
                ChangeKind::Identity,
                format!("changes from {} to {}: {why}", show(&o), show(&n)),
            );
        }
    }
}

/// Every message of an error and its sources.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Cross-checks with the derived Avro schemas: old readers must read data written with new.
fn avro_cross_check(old: &Json, new: &Json, out: &mut Vec<Change>) {
    let new_avro = match canonical_schema(new) {
        Ok(a) => a,
        Err(e) => {
            push(
                out,
                "",
                ChangeKind::NoAvroForm,
                format!("the new version cannot be carried on the canonical topics: {e}"),
            );
            return;
        }
    };
    // An old version without an Avro form was never on the topics: no Avro reader to break.
    let Ok(old_avro) = canonical_schema(old) else {
        return;
    };
    if out.is_empty()
        && let Some(reason) = avro_refuses(&old_avro.schema, &new_avro.schema)
    {
        push(
            out,
            "",
            ChangeKind::AvroIncompatible,
            format!("Avro readers of the old version cannot read records of the new one: {reason}"),
        );
    }
}

/// Why readers with the `old` schema cannot read data written with `new`, if they cannot.
fn avro_refuses(old: &Schema, new: &Schema) -> Option<String> {
    SchemaCompatibility::can_read(new, old)
        .err()
        .map(|e| chain(&e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    type Edit = fn(&mut Json);

    fn base() -> Json {
        json!({
            "type": "object",
            "additionalProperties": false,
            "x-ledgerbridge": {"event_type": "customs.declaration", "version": 1,
                               "key": ["declaration_no"], "channel": "customs",
                               "subject": "consignee_id"},
            "properties": {
                "declaration_no": {"type": "string", "pattern": "^D-[0-9]+$"},
                "declared_value_krw": {"type": "integer", "minimum": 0},
                "gross_weight_kg": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"},
                "declared_on": {"type": "string", "format": "date"},
                "status": {"type": "string", "enum": ["filed", "cleared"]},
                "rate": {"type": "number", "maximum": 1},
                "note": {"type": "string", "maxLength": 200},
                "released_on": {"type": "string", "format": "date"},
                "consignee_id": {"type": "string"},
                "lines": {
                    "type": "array",
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "properties": {
                            "item": {"type": "string"},
                            "qty": {"type": "integer", "multipleOf": 2}
                        },
                        "required": ["item", "qty"]
                    }
                }
            },
            "required": ["declaration_no", "declared_value_krw", "gross_weight_kg",
                         "declared_on", "status", "rate", "consignee_id", "lines"],
            "dependentRequired": {"released_on": ["note"]}
        })
    }

    /// The breaking changes from `base()` to `base()` changed by `edit`.
    fn changes(edit: impl FnOnce(&mut Json)) -> Vec<Change> {
        let mut new = base();
        edit(&mut new);
        breaking_changes(&base(), &new)
    }

    /// The single breaking change from `base()` to `base()` changed by `edit`.
    fn one(edit: impl FnOnce(&mut Json)) -> Change {
        let mut found = changes(edit);
        assert_eq!(found.len(), 1, "{found:#?}");
        found.remove(0)
    }

    fn remove(schema: &mut Json, pointer: &str) {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        schema
            .pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(key)
            .unwrap();
    }

    fn unrequire(schema: &mut Json, prop: &str) {
        schema["required"]
            .as_array_mut()
            .unwrap()
            .retain(|p| p != prop);
    }

    #[test]
    fn the_same_schema_breaks_nothing() {
        assert_eq!(breaking_changes(&base(), &base()), Vec::new());
        assert!(check(&base(), &base()).is_ok());
    }

    #[test]
    fn removing_a_required_property_breaks() {
        let c = one(|s| {
            remove(s, "/properties/declared_value_krw");
            unrequire(s, "declared_value_krw");
        });
        assert_eq!(c.path, "/properties/declared_value_krw");
        assert_eq!(c.kind, ChangeKind::Removed);
        assert!(
            c.explanation
                .contains("consumers reading `declared_value_krw` would find it missing"),
            "{c}"
        );
    }

    #[test]
    fn removing_an_optional_property_breaks_only_if_the_object_stays_open() {
        assert_eq!(changes(|s| remove(s, "/properties/note")), Vec::new());
        let c = one(|s| {
            remove(s, "/properties/note");
            remove(s, "/additionalProperties");
        });
        assert_eq!(
            (c.path.as_str(), c.kind),
            ("/properties/note", ChangeKind::Removed)
        );
        assert!(c.explanation.contains("with any value"), "{c}");
    }

    #[test]
    fn making_a_required_property_optional_breaks() {
        let c = one(|s| unrequire(s, "status"));
        assert_eq!(c.path, "/properties/status");
        assert_eq!(c.kind, ChangeKind::MadeOptional);
        assert!(c.explanation.contains("rely on it being present"), "{c}");
    }

    #[test]
    fn admitting_null_breaks() {
        let c = one(|s| s["properties"]["status"]["type"] = json!(["string", "null"]));
        assert_eq!(c.path, "/properties/status/type");
        assert_eq!(c.kind, ChangeKind::MadeNullable);
    }

    #[test]
    fn widening_a_type_breaks_and_narrowing_does_not() {
        let c = one(|s| s["properties"]["declared_value_krw"]["type"] = json!("string"));
        assert_eq!(c.path, "/properties/declared_value_krw/type");
        assert_eq!(c.kind, ChangeKind::TypeChanged);
        assert!(
            c.explanation
                .contains("may now be `string` where it was `integer`"),
            "{c}"
        );
        let c = one(|s| s["properties"]["declared_value_krw"]["type"] = json!("number"));
        assert_eq!(c.kind, ChangeKind::TypeChanged);
        assert_eq!(
            changes(|s| s["properties"]["rate"]["type"] = json!("integer")),
            Vec::new()
        );
        let found = changes(|s| remove(s, "/properties/lines/items"));
        assert_eq!(found[0].path, "/properties/lines/items");
        assert_eq!(found[0].kind, ChangeKind::TypeChanged);
        assert_eq!(found[1].kind, ChangeKind::NoAvroForm, "{found:#?}");
    }

    #[test]
    fn new_enum_values_break_and_fewer_do_not() {
        let c = one(|s| s["properties"]["status"]["enum"] = json!(["filed", "cleared", "held"]));
        assert_eq!(c.path, "/properties/status/enum");
        assert_eq!(c.kind, ChangeKind::EnumWidened);
        assert!(c.explanation.contains(r#"`"held"`"#), "{c}");
        assert_eq!(
            changes(|s| s["properties"]["status"]["enum"] = json!(["filed"])),
            Vec::new()
        );
        let c = one(|s| remove(s, "/properties/status/enum"));
        assert_eq!(c.kind, ChangeKind::EnumWidened);
        assert_eq!(
            changes(|s| s["properties"]["note"]["const"] = json!("none")),
            Vec::new()
        );
    }

    #[test]
    fn formats_that_consumers_parse_or_avro_types_cannot_change() {
        let c = one(|s| remove(s, "/properties/declared_on/format"));
        assert_eq!(c.path, "/properties/declared_on/format");
        assert_eq!(c.kind, ChangeKind::FormatChanged);
        let c = one(|s| s["properties"]["declared_on"]["format"] = json!("date-time"));
        assert!(
            c.explanation
                .contains("Avro type changes from int (date) to long"),
            "{c}"
        );
        let c = one(|s| s["properties"]["note"]["format"] = json!("date"));
        assert_eq!(c.path, "/properties/note/format");
        assert_eq!(
            changes(|s| s["properties"]["note"]["format"] = json!("email")),
            Vec::new()
        );
    }

    #[test]
    fn loosened_constraints_break_and_tightened_ones_do_not() {
        let loosened: [(&str, Edit); 8] = [
            ("/properties/declaration_no/pattern", |s| {
                remove(s, "/properties/declaration_no/pattern");
            }),
            ("/properties/gross_weight_kg/pattern", |s| {
                s["properties"]["gross_weight_kg"]["pattern"] = json!("^[0-9]+\\.[0-9]{3}$");
            }),
            ("/properties/declared_value_krw/minimum", |s| {
                s["properties"]["declared_value_krw"]["minimum"] = json!(-1);
            }),
            ("/properties/rate/maximum", |s| {
                remove(s, "/properties/rate/maximum");
            }),
            ("/properties/note/maxLength", |s| {
                s["properties"]["note"]["maxLength"] = json!(300);
            }),
            ("/properties/lines/maxItems", |s| {
                remove(s, "/properties/lines/maxItems");
            }),
            ("/properties/lines/items/properties/qty/multipleOf", |s| {
                s["properties"]["lines"]["items"]["properties"]["qty"]["multipleOf"] = json!(3);
            }),
            ("/dependentRequired/released_on", |s| {
                remove(s, "/dependentRequired/released_on");
            }),
        ];
        for (path, edit) in loosened {
            let found = changes(edit);
            assert_eq!(found.len(), 1, "{path}: {found:#?}");
            let c = &found[0];
            assert_eq!(c.path, path, "{c}");
            assert_eq!(c.kind, ChangeKind::ConstraintLoosened, "{c}");
        }
        let tightened: [Edit; 8] = [
            |s| s["properties"]["note"]["pattern"] = json!("^[^<>]*$"),
            |s| s["properties"]["declared_value_krw"]["minimum"] = json!(1),
            |s| {
                remove(s, "/properties/declared_value_krw/minimum");
                s["properties"]["declared_value_krw"]["exclusiveMinimum"] = json!(0);
            },
            |s| {
                remove(s, "/properties/rate/maximum");
                s["properties"]["rate"]["exclusiveMaximum"] = json!(1);
            },
            |s| s["properties"]["note"]["maxLength"] = json!(100),
            |s| s["properties"]["lines"]["maxItems"] = json!(10),
            |s| s["properties"]["lines"]["items"]["properties"]["qty"]["multipleOf"] = json!(4),
            |s| {
                s["dependentRequired"]["note"] = json!(["released_on"]);
                s["if"] = json!({"properties": {"status": {"const": "cleared"}}});
                s["then"] = json!({"required": ["released_on"]});
            },
        ];
        for (i, edit) in tightened.into_iter().enumerate() {
            assert_eq!(changes(edit), Vec::new(), "tightening {i}");
        }
    }

    #[test]
    fn changed_conditionals_break() {
        let mut old = base();
        old["if"] = json!({"properties": {"status": {"const": "cleared"}}});
        old["then"] = json!({"required": ["released_on"]});
        let mut new = old.clone();
        new["then"] = json!({"required": ["note"]});
        let found = breaking_changes(&old, &new);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].path, "/if");
        assert_eq!(found[0].kind, ChangeKind::ConstraintLoosened);
    }

    #[test]
    fn nested_changes_are_reported_at_their_path() {
        let c = one(|s| {
            remove(s, "/properties/lines/items/properties/qty");
            s["properties"]["lines"]["items"]["required"] = json!(["item"]);
        });
        assert_eq!(c.path, "/properties/lines/items/properties/qty");
        assert!(c.explanation.contains("`lines[].qty`"), "{c}");
    }

    #[test]
    fn additions_and_narrowing_are_fine_for_consumers() {
        let found = changes(|s| {
            s["properties"]["hs_code"] = json!({"type": "string"});
            s["properties"]["origin"] = json!({"type": "string"});
            s["required"].as_array_mut().unwrap().push(json!("hs_code"));
            s["required"].as_array_mut().unwrap().push(json!("note"));
            s["properties"]["lines"]["items"]["properties"]["unit"] = json!({"type": "string"});
            s["x-ledgerbridge"]["version"] = json!(2);
            s["properties"]["note"]["description"] = json!("비고");
        });
        assert_eq!(found, Vec::new());
    }

    #[test]
    fn identity_changes_always_break() {
        let c = one(|s| s["x-ledgerbridge"]["key"] = json!(["declaration_no", "status"]));
        assert_eq!(c.path, "/x-ledgerbridge/key");
        assert_eq!(c.kind, ChangeKind::Identity);
        assert!(c.explanation.contains("event ids"), "{c}");
        // The Avro record is renamed too, but that is the same change.
        let c = one(|s| s["x-ledgerbridge"]["event_type"] = json!("customs.filing"));
        assert_eq!(c.path, "/x-ledgerbridge/event_type");
        let c = one(|s| s["x-ledgerbridge"]["channel"] = json!("logistics"));
        assert_eq!(c.path, "/x-ledgerbridge/channel");
        let c = one(|s| remove(s, "/x-ledgerbridge/subject"));
        assert_eq!(c.path, "/x-ledgerbridge/subject");
    }

    #[test]
    fn a_new_version_without_an_avro_form_is_refused() {
        let c = one(|s| s["properties"]["extra"] = json!({"oneOf": [{"type": "string"}]}));
        assert_eq!(c.kind, ChangeKind::NoAvroForm);
        assert!(c.explanation.contains("`/properties/extra/oneOf`"), "{c}");
    }

    #[test]
    fn avro_incompatibility_is_reported_with_its_reason() {
        let schema = |t: &str| {
            Schema::parse_str(&format!(
                r#"{{"type": "record", "name": "r", "fields": [{{"name": "a", "type": "{t}"}}]}}"#
            ))
            .unwrap()
        };
        assert_eq!(avro_refuses(&schema("double"), &schema("long")), None);
        let reason = avro_refuses(&schema("long"), &schema("string")).unwrap();
        assert!(reason.contains("Field 'a'"), "{reason}");
        assert!(
            reason.contains("readers_schema should have been [String"),
            "the nested cause: {reason}"
        );
    }

    #[test]
    fn refused_lists_every_change_one_per_line() {
        let mut new = base();
        remove(&mut new, "/properties/declared_value_krw");
        unrequire(&mut new, "declared_value_krw");
        new["properties"]["status"]["enum"] = json!(["filed", "cleared", "held"]);
        let refused = check(&base(), &new).unwrap_err();
        assert_eq!(refused.changes.len(), 2);
        let text = refused.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains("2 changes"), "{text}");
        assert!(
            lines[1]
                .trim_start()
                .starts_with("/properties/declared_value_krw: "),
            "{text}"
        );
        assert!(
            lines[2]
                .trim_start()
                .starts_with("/properties/status/enum: "),
            "{text}"
        );
    }
}
