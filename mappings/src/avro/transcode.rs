//! A canonical datum straight to the JSON text of its event, in one pass, with the envelope's
//! fields taken on the way: what the anchoring worker stores as an entry's payload. The text is
//! the one `serde_json` writes for [`super::decode`]'s value (members in schema order, optional
//! properties that are null left out, dates and date-times as text); the tests check that on
//! generated events. Decoding into a JSON value and writing it out again cost the anchoring
//! worker a tenth of the pipeline's CPU.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_avro_fast::de::DeserializerState;

use super::{
    AvroError, CanonicalAvro, Kind, Path, ROOT, RecordPlan, TypePlan, days_to_date,
    micros_to_date_time,
};

/// The envelope of a canonical event and its JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcoded {
    /// `event_id`.
    pub event_id: String,
    /// `event_type`.
    pub event_type: String,
    /// `mapping.name`.
    pub mapping_name: String,
    /// `mapping.version`.
    pub mapping_version: i32,
    /// `subject`.
    pub subject: Option<String>,
    /// `source.connector`, `table`, `key`, `position`.
    pub source: [String; 4],
    /// `source.extracted_at`, milliseconds since the epoch.
    pub extracted_at: i64,
    /// The event as compact JSON.
    pub json: Vec<u8>,
}

fn text(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a vector cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn number(out: &mut Vec<u8>, n: impl serde::Serialize) {
    // Writing a number into a vector cannot fail.
    let _ = serde_json::to_writer(&mut *out, &n);
}

fn key(out: &mut Vec<u8>, first: bool, name: &str) {
    if !first {
        out.push(b',');
    }
    text(out, name);
    out.push(b':');
}

/// Reads the Avro datum at the start of `datum` (the bytes after the frame): the event and the
/// bytes left after it.
pub(super) fn transcode<'a>(
    avro: &CanonicalAvro,
    datum: &'a [u8],
) -> Result<(Transcoded, &'a [u8]), AvroError> {
    let mut state = DeserializerState::from_reader(datum, &avro.fast);
    let mut out = Transcoded {
        json: Vec::with_capacity(datum.len() * 2 + 64),
        ..Transcoded::default()
    };
    state
        .deserializer()
        .deserialize_map(EnvelopeVisitor {
            avro,
            out: &mut out,
        })
        .map_err(|e| AvroError::Decode {
            event_type: avro.event_type.clone(),
            error: e.to_string(),
        })?;
    let rest = state.into_reader().into_inner();
    Ok((out, rest))
}

struct EnvelopeVisitor<'a> {
    avro: &'a CanonicalAvro,
    out: &'a mut Transcoded,
}

/// A string value, kept and written.
struct Str;

impl<'de> Visitor<'de> for Str {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

impl<'de> DeserializeSeed<'de> for Str {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a canonical event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let t = self.out;
        let mut json = std::mem::take(&mut t.json);
        json.push(b'{');
        let mut first = true;
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            key(&mut json, first, &name);
            first = false;
            match &*name {
                "event_id" => {
                    t.event_id = map.next_value_seed(Str)?;
                    text(&mut json, &t.event_id);
                }
                "event_type" => {
                    t.event_type = map.next_value_seed(Str)?;
                    text(&mut json, &t.event_type);
                }
                "schema_version" => {
                    let v: i32 = map.next_value()?;
                    number(&mut json, v);
                }
                "mapping" => {
                    let (name, version) = map.next_value_seed(MappingSeed)?;
                    json.extend_from_slice(b"{\"name\":");
                    text(&mut json, &name);
                    json.extend_from_slice(b",\"version\":");
                    number(&mut json, version);
                    json.push(b'}');
                    t.mapping_name = name;
                    t.mapping_version = version;
                }
                "subject" => {
                    t.subject = map.next_value::<Option<String>>()?;
                    match &t.subject {
                        Some(s) => text(&mut json, s),
                        None => json.extend_from_slice(b"null"),
                    }
                }
                "source" => {
                    let (source, at) = map.next_value_seed(SourceSeed)?;
                    json.push(b'{');
                    for (i, (k, v)) in ["connector", "table", "key", "position"]
                        .iter()
                        .zip(&source)
                        .enumerate()
                    {
                        key(&mut json, i == 0, k);
                        text(&mut json, v);
                    }
                    key(&mut json, false, "extracted_at");
                    number(&mut json, at);
                    json.push(b'}');
                    t.source = source;
                    t.extracted_at = at;
                }
                "data" => {
                    let path = ROOT.key("data");
                    map.next_value_seed(RecordSeed {
                        plan: &self.avro.data,
                        out: &mut json,
                        path: &path,
                    })?;
                }
                other => return Err(de::Error::custom(format!("unexpected field `{other}`"))),
            }
        }
        json.push(b'}');
        t.json = json;
        Ok(())
    }
}

struct MappingSeed;

impl<'de> DeserializeSeed<'de> for MappingSeed {
    type Value = (String, i32);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MappingSeed {
    type Value = (String, i32);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ledgerbridge.Mapping record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut name, mut version) = (String::new(), 0);
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*k {
                "name" => name = map.next_value_seed(Str)?,
                "version" => version = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((name, version))
    }
}

struct SourceSeed;

impl<'de> DeserializeSeed<'de> for SourceSeed {
    type Value = ([String; 4], i64);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SourceSeed {
    type Value = ([String; 4], i64);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a ledgerbridge.Source record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut source: [String; 4] = Default::default();
        let mut at = 0;
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = match &*k {
                "connector" => 0,
                "table" => 1,
                "key" => 2,
                "position" => 3,
                "extracted_at" => {
                    at = map.next_value()?;
                    continue;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            source[slot] = map.next_value_seed(Str)?;
        }
        Ok((source, at))
    }
}

/// A record of `data`, written as a JSON object (optional properties that are null left out).
struct RecordSeed<'a> {
    plan: &'a RecordPlan,
    out: &'a mut Vec<u8>,
    /// Where the record is, for errors.
    path: &'a Path<'a>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a record at `{}`", self.path.pointer())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.out.push(b'{');
        let mut first = true;
        for field in &self.plan.fields {
            let path = self.path.key(&field.name);
            if map.next_key::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(
                    path.decoded_error("missing from the record"),
                ));
            }
            let start = self.out.len();
            key(self.out, first, &field.name);
            let null = map.next_value_seed(ValueSeed {
                ty: &field.ty,
                out: &mut *self.out,
                path: &path,
            })?;
            if null && !field.required {
                self.out.truncate(start);
            } else {
                first = false;
            }
        }
        if map.next_key::<IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(
                self.path.decoded_error("more fields than the schema has"),
            ));
        }
        self.out.push(b'}');
        Ok(())
    }
}

/// One value of `data`; `true` when it was null.
struct ValueSeed<'a> {
    ty: &'a TypePlan,
    out: &'a mut Vec<u8>,
    path: &'a Path<'a>,
}

impl ValueSeed<'_> {
    fn unexpected<E: de::Error>(&self, what: &str) -> E {
        E::custom(
            self.path
                .decoded_error(format!("{what} where the schema has {:?}", self.ty.kind)),
        )
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at `{}`", self.ty.kind, self.path.pointer())
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        if !self.ty.nullable {
            return Err(self.unexpected("null"));
        }
        self.out.extend_from_slice(b"null");
        Ok(true)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        if !matches!(self.ty.kind, Kind::Boolean) {
            return Err(self.unexpected("a boolean"));
        }
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(false)
    }

    fn visit_i32<E: de::Error>(self, v: i32) -> Result<bool, E> {
        match self.ty.kind {
            Kind::Date => {
                let date = days_to_date(v, self.path).map_err(E::custom)?;
                text(self.out, &date);
                Ok(false)
            }
            _ => self.visit_i64(i64::from(v)),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        match self.ty.kind {
            Kind::Long => {
                number(self.out, v);
            }
            Kind::DateTime => {
                let t = micros_to_date_time(v, self.path).map_err(E::custom)?;
                text(self.out, &t);
            }
            _ => return Err(self.unexpected("an integer")),
        }
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        if !matches!(self.ty.kind, Kind::Double) {
            return Err(self.unexpected("a double"));
        }
        if !v.is_finite() {
            return Err(self.unexpected("a double that has no JSON form (NaN or infinite)"));
        }
        let _ = serde_json::to_writer(&mut *self.out, &v);
        Ok(false)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        if !matches!(self.ty.kind, Kind::String) {
            return Err(self.unexpected("a string"));
        }
        text(self.out, v);
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        let Kind::Record(plan) = &self.ty.kind else {
            return Err(self.unexpected("a record"));
        };
        RecordSeed {
            plan,
            out: self.out,
            path: self.path,
        }
        .visit_map(map)?;
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let Kind::Array(item) = &self.ty.kind else {
            return Err(self.unexpected("an array"));
        };
        self.out.push(b'[');
        let mut i = 0;
        loop {
            if i > 0 {
                self.out.push(b',');
            }
            let path = self.path.index(i);
            let seed = ValueSeed {
                ty: item,
                out: &mut *self.out,
                path: &path,
            };
            if seq.next_element_seed(seed)?.is_none() {
                if i > 0 {
                    self.out.pop();
                }
                break;
            }
            i += 1;
        }
        self.out.push(b']');
        Ok(false)
    }
}
