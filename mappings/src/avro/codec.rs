//! The binary side of canonical events: the JSON envelope written straight into an Avro datum,
//! and a datum read back into the JSON envelope, by `serde_avro_fast` with the schema compiled
//! once. The plan of [`CanonicalAvro`] drives both ways, so the checks and the JSON forms are
//! those described in the parent module; no intermediate `apache_avro::types::Value` is built
//! (apache-avro builds one, looks record fields up by name in a hash map per record and validates
//! the value again: four times the cost of this path in `bench mapping`). The tests check the
//! bytes against apache-avro's.

use std::cell::RefCell;

use serde::Deserialize as _;
use serde::ser::{self, Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_avro_fast::de::DeserializerState;
use serde_avro_fast::ser::SerializerConfig;

use super::{
    AvroError, CanonicalAvro, Envelope, Json, Kind, Map, Path, ROOT, RecordPlan, TypePlan,
    date_time_to_micros, date_to_days, days_to_date, micros_to_date_time, no_other_members, object,
    type_name,
};

/// The first error met while serialising, kept whole: serde's errors carry only text, and ours
/// name the JSON pointer of the value.
type Failure = RefCell<Option<AvroError>>;

fn fail<E: ser::Error>(failure: &Failure, error: AvroError) -> E {
    let text = error.to_string();
    failure.borrow_mut().get_or_insert(error);
    E::custom(text)
}

/// A canonical event, serialised in schema order.
struct EventSer<'a> {
    avro: &'a CanonicalAvro,
    envelope: Envelope<'a>,
    failure: &'a Failure,
}

/// The `mapping` record.
struct MappingSer<'a>(&'a str, i32);

/// The `ledgerbridge.Source` record.
struct SourceSer<'a>(&'a Envelope<'a>);

/// A value of `data`, under its plan.
struct ValueSer<'a> {
    ty: &'a TypePlan,
    json: &'a Json,
    path: &'a Path<'a>,
    failure: &'a Failure,
}

/// A record of `data`, under its plan.
struct RecordSer<'a> {
    plan: &'a RecordPlan,
    json: &'a Json,
    path: &'a Path<'a>,
    failure: &'a Failure,
}

impl Serialize for EventSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = &self.envelope;
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("event_id", e.event_id)?;
        m.serialize_entry("event_type", self.avro.event_type.as_str())?;
        m.serialize_entry("schema_version", &e.version)?;
        m.serialize_entry("mapping", &MappingSer(e.mapping_name, e.mapping_version))?;
        m.serialize_entry("subject", &e.subject)?;
        m.serialize_entry("source", &SourceSer(e))?;
        let path = ROOT.key("data");
        m.serialize_entry(
            "data",
            &RecordSer {
                plan: &self.avro.data,
                json: e.data,
                path: &path,
                failure: self.failure,
            },
        )?;
        m.end()
    }
}

impl Serialize for MappingSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", self.0)?;
        m.serialize_entry("version", &self.1)?;
        m.end()
    }
}

impl Serialize for SourceSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let [connector, table, key, position] = self.0.source;
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("connector", connector)?;
        m.serialize_entry("table", table)?;
        m.serialize_entry("key", key)?;
        m.serialize_entry("position", position)?;
        m.serialize_entry("extracted_at", &self.0.extracted_at)?;
        m.end()
    }
}

impl Serialize for RecordSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let failed = |e| fail::<S::Error>(self.failure, e);
        let obj = object(self.json, self.path).map_err(failed)?;
        let mut m = s.serialize_map(Some(self.plan.fields.len()))?;
        let mut present = 0;
        for field in &self.plan.fields {
            let value = obj.get(&field.name);
            present += usize::from(value.is_some());
            let path = self.path.key(&field.name);
            match value {
                None if field.required => {
                    return Err(failed(path.value_error("missing (required)")));
                }
                // The union's null branch.
                None | Some(Json::Null) if field.ty.nullable => {
                    m.serialize_entry(field.name.as_str(), &())?;
                }
                None => return Err(failed(path.value_error("missing"))),
                Some(json) => m.serialize_entry(
                    field.name.as_str(),
                    &ValueSer {
                        ty: &field.ty,
                        json,
                        path: &path,
                        failure: self.failure,
                    },
                )?,
            }
        }
        if present < obj.len() {
            no_other_members(
                obj,
                self.plan.fields.iter().map(|f| f.name.as_str()),
                self.path,
            )
            .map_err(failed)?;
        }
        m.end()
    }
}

impl Serialize for ValueSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (json, path) = (self.json, self.path);
        let failed = |e| fail::<S::Error>(self.failure, e);
        if json.is_null() {
            return if self.ty.nullable {
                s.serialize_unit()
            } else {
                Err(failed(path.value_error(
                    "null, but the schema does not allow null here",
                )))
            };
        }
        let expected = |what: &str| {
            failed(path.value_error(format!("{} where {what} is expected", type_name(json))))
        };
        // In a `["null", T]` union, serde_avro_fast picks the branch by the kind of value.
        match &self.ty.kind {
            Kind::String => s.serialize_str(json.as_str().ok_or_else(|| expected("a string"))?),
            Kind::Date => s.serialize_i32(date_to_days(json, path).map_err(failed)?),
            Kind::DateTime => s.serialize_i64(date_time_to_micros(json, path).map_err(failed)?),
            Kind::Long => s.serialize_i64(super::long(json, path).map_err(failed)?),
            Kind::Double => s.serialize_f64(json.as_f64().ok_or_else(|| expected("a number"))?),
            Kind::Boolean => s.serialize_bool(json.as_bool().ok_or_else(|| expected("a boolean"))?),
            Kind::Record(plan) => RecordSer {
                plan,
                json,
                path,
                failure: self.failure,
            }
            .serialize(s),
            Kind::Array(item) => {
                let items = json.as_array().ok_or_else(|| expected("an array"))?;
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for (i, json) in items.iter().enumerate() {
                    let path = path.index(i);
                    seq.serialize_element(&ValueSer {
                        ty: item,
                        json,
                        path: &path,
                        failure: self.failure,
                    })?;
                }
                seq.end()
            }
        }
    }
}

/// Appends the Avro datum of `event` to `out`.
pub(super) fn write(
    avro: &CanonicalAvro,
    event: &Json,
    out: &mut Vec<u8>,
) -> Result<(), AvroError> {
    let envelope = avro.envelope(event)?;
    let failure = Failure::default();
    let start = out.len();
    let mut config = SerializerConfig::new(&avro.fast);
    let written = serde_avro_fast::to_datum(
        &EventSer {
            avro,
            envelope,
            failure: &failure,
        },
        &mut *out,
        &mut config,
    );
    if let Err(e) = written {
        out.truncate(start);
        return Err(failure
            .into_inner()
            .unwrap_or_else(|| AvroError::Encode(e.to_string())));
    }
    Ok(())
}

/// Reads the Avro datum at the start of `datum`: the event and the bytes left after it.
pub(super) fn read<'a>(
    avro: &CanonicalAvro,
    datum: &'a [u8],
) -> Result<(Json, &'a [u8]), AvroError> {
    let decode_error = |e: serde_avro_fast::de::DeError| AvroError::Decode {
        event_type: avro.event_type.clone(),
        error: e.to_string(),
    };
    // Read from a `BufRead` so that what is left can be handed back.
    let mut state = DeserializerState::from_reader(datum, &avro.fast);
    let mut event = Json::deserialize(state.deserializer()).map_err(decode_error)?;
    let rest = state.into_reader().into_inner();
    let root = ROOT;
    let data = event
        .get_mut("data")
        .ok_or_else(|| root.decoded_error("no data"))?;
    record_to_json(&avro.data, data, &root.key("data"))?;
    Ok((event, rest))
}

/// Puts the values of a record of `data` in their JSON form (dates and date-times as text) and
/// leaves out optional properties that are null, as the mapping engine does.
fn record_to_json(plan: &RecordPlan, json: &mut Json, path: &Path<'_>) -> Result<(), AvroError> {
    let Json::Object(obj) = std::mem::take(json) else {
        return Err(path.decoded_error("not a record"));
    };
    if obj.len() != plan.fields.len() {
        return Err(path.decoded_error(format!(
            "{} fields where the schema has {}",
            obj.len(),
            plan.fields.len()
        )));
    }
    let mut out = Map::with_capacity(obj.len());
    for ((name, mut value), field) in obj.into_iter().zip(&plan.fields) {
        let field_path = path.key(&field.name);
        if name != field.name {
            return Err(field_path.decoded_error(format!("field `{name}` in its place")));
        }
        type_to_json(&field.ty, &mut value, &field_path)?;
        if value.is_null() && !field.required {
            continue;
        }
        out.insert(name, value);
    }
    *json = Json::Object(out);
    Ok(())
}

fn type_to_json(ty: &TypePlan, json: &mut Json, path: &Path<'_>) -> Result<(), AvroError> {
    if json.is_null() && ty.nullable {
        return Ok(());
    }
    let unexpected = |json: &Json| {
        path.decoded_error(format!(
            "{} where the schema has {:?}",
            type_name(json),
            ty.kind
        ))
    };
    match (&ty.kind, &*json) {
        (Kind::String, Json::String(_)) | (Kind::Boolean, Json::Bool(_)) => {}
        (Kind::Long, Json::Number(n)) if n.is_i64() => {}
        (Kind::Double, Json::Number(_)) => {}
        (Kind::Date, Json::Number(n)) => {
            let days = n
                .as_i64()
                .and_then(|d| i32::try_from(d).ok())
                .ok_or_else(|| unexpected(json))?;
            *json = Json::String(days_to_date(days, path)?);
        }
        (Kind::DateTime, Json::Number(n)) => {
            let micros = n.as_i64().ok_or_else(|| unexpected(json))?;
            *json = Json::String(micros_to_date_time(micros, path)?);
        }
        (Kind::Record(plan), Json::Object(_)) => record_to_json(plan, json, path)?,
        (Kind::Array(item), Json::Array(_)) => {
            if let Json::Array(items) = json {
                for (i, v) in items.iter_mut().enumerate() {
                    type_to_json(item, v, &path.index(i))?;
                }
            }
        }
        // A double that JSON cannot carry (NaN, ±∞) comes back as null.
        (Kind::Double, Json::Null) => {
            return Err(path.decoded_error("a double that has no JSON form (NaN or infinite)"));
        }
        _ => return Err(unexpected(json)),
    }
    Ok(())
}
