//! Raw records (the connectors' Avro: a `ledgerbridge.Source` block and a `row` record) read
//! into the source block and the row as JSON by column name, by `serde_avro_fast` with the schema
//! compiled once. Dates become `YYYY-MM-DD`, timestamps RFC 3339 in UTC, bytes lowercase hex,
//! as the mapping engine expects them.

use ledgerbridge_registry::framing::Compiled;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_avro_fast::de::DeserializerState;
use serde_json::{Map, Value as J};

use crate::engine::Source;

/// How the values of a row field read as JSON (what the visitor cannot tell from the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logical {
    Plain,
    Date,
    TimestampMicros,
    TimestampMillis,
}

/// One raw schema, compiled.
pub(crate) struct RawCodec {
    schema: Compiled,
    /// Source column name of each row field, in order.
    columns: Vec<String>,
    logical: Vec<Logical>,
}

impl std::fmt::Debug for RawCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCodec")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// The logical type of a field type (`T` or `["null", T]`).
fn logical(ty: &J) -> Logical {
    let ty = match ty {
        J::Array(branches) => branches
            .iter()
            .find(|b| b.as_str() != Some("null"))
            .unwrap_or(&J::Null),
        other => other,
    };
    match ty.get("logicalType").and_then(J::as_str) {
        Some("date") => Logical::Date,
        Some("timestamp-micros") => Logical::TimestampMicros,
        Some("timestamp-millis") => Logical::TimestampMillis,
        _ => Logical::Plain,
    }
}

impl RawCodec {
    /// Compiles a raw schema's text.
    ///
    /// # Errors
    /// Not JSON, not a raw record (`source`, `row`), or refused by the Avro parser.
    pub(crate) fn new(text: &str) -> Result<Self, String> {
        let json: J = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let names: Vec<&str> = json
            .get("fields")
            .and_then(J::as_array)
            .map(|f| f.iter().filter_map(|f| f.get("name")?.as_str()).collect())
            .unwrap_or_default();
        let fields = json
            .pointer("/fields/1/type/fields")
            .and_then(J::as_array)
            .filter(|_| names == ["source", "row"])
            .ok_or("not a raw record (source, row)")?;
        let columns = fields
            .iter()
            .map(|f| {
                f.get("source_column")
                    .or_else(|| f.get("name"))
                    .and_then(J::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let logical = fields
            .iter()
            .map(|f| logical(f.get("type").unwrap_or(&J::Null)))
            .collect();
        let schema = Compiled::parse(text)?;
        Ok(Self {
            schema,
            columns,
            logical,
        })
    }

    /// The source block and the row of a datum.
    ///
    /// # Errors
    /// Bytes that do not read with the schema, or bytes left after the datum.
    pub(crate) fn read(&self, datum: &[u8]) -> Result<(Source, Map<String, J>), String> {
        // Read from a `BufRead` so that what is left can be checked.
        let mut state = DeserializerState::from_reader(datum, &self.schema);
        let read = state
            .deserializer()
            .deserialize_map(RecordVisitor(self))
            .map_err(|e| e.to_string())?;
        let rest = state.into_reader().into_inner();
        if !rest.is_empty() {
            return Err(format!("{} bytes left after the datum", rest.len()));
        }
        Ok(read)
    }
}

struct RecordVisitor<'a>(&'a RawCodec);

impl<'de> Visitor<'de> for RecordVisitor<'_> {
    type Value = (Source, Map<String, J>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a raw record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        map.next_key::<IgnoredAny>()?
            .ok_or_else(|| de::Error::custom("no source block"))?;
        let source = map.next_value_seed(SourceSeed)?;
        map.next_key::<IgnoredAny>()?
            .ok_or_else(|| de::Error::custom("no row"))?;
        let row = map.next_value_seed(RowSeed(self.0))?;
        Ok((source, row))
    }
}

struct SourceSeed;

impl<'de> DeserializeSeed<'de> for SourceSeed {
    type Value = Source;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Source, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SourceSeed {
    type Value = Source;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a ledgerbridge.Source record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Source, A::Error> {
        let mut source = Source::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match &*key {
                "connector" => source.connector = map.next_value()?,
                "table" => source.table = map.next_value()?,
                "key" => source.key = map.next_value()?,
                "position" => source.position = map.next_value()?,
                "extracted_at" => source.extracted_at = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(source)
    }
}

struct RowSeed<'a>(&'a RawCodec);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Map<String, J>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Map<String, J>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a row record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let codec = self.0;
        let mut row = Map::with_capacity(codec.columns.len());
        for (column, logical) in codec.columns.iter().zip(&codec.logical) {
            if map.next_key::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom(format!("no field for column `{column}`")));
            }
            let value = map.next_value_seed(ValueSeed(*logical))?;
            row.insert(column.clone(), value);
        }
        Ok(row)
    }
}

/// One value, as JSON.
#[derive(Clone, Copy)]
struct ValueSeed(Logical);

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = J;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<J, D::Error> {
        d.deserialize_any(self)
    }
}

/// `YYYY-MM-DD` of days since 1970 (`null` out of chrono's range).
fn date(days: i64) -> J {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|e| e.checked_add_signed(chrono::Duration::try_days(days)?))
        .map_or(J::Null, |d| J::String(d.format("%Y-%m-%d").to_string()))
}

fn rfc3339(t: Option<chrono::DateTime<chrono::Utc>>) -> J {
    t.map_or(J::Null, |t| {
        J::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    })
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = J;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an Avro value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<J, E> {
        Ok(J::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<J, E> {
        Ok(J::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<J, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<J, E> {
        Ok(J::Bool(v))
    }

    fn visit_i32<E: de::Error>(self, v: i32) -> Result<J, E> {
        self.visit_i64(i64::from(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<J, E> {
        Ok(match self.0 {
            Logical::Plain => J::from(v),
            Logical::Date => date(v),
            Logical::TimestampMicros => rfc3339(chrono::DateTime::from_timestamp_micros(v)),
            Logical::TimestampMillis => rfc3339(chrono::DateTime::from_timestamp_millis(v)),
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<J, E> {
        Ok(J::from(v))
    }

    fn visit_f32<E: de::Error>(self, v: f32) -> Result<J, E> {
        Ok(J::from(f64::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<J, E> {
        Ok(J::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<J, E> {
        Ok(J::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<J, E> {
        Ok(J::String(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<J, E> {
        use std::fmt::Write as _;
        let mut hex = String::with_capacity(v.len() * 2);
        for b in v {
            let _ = write!(hex, "{b:02x}");
        }
        Ok(J::String(hex))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(ValueSeed(Logical::Plain))? {
            items.push(v);
        }
        Ok(J::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J, A::Error> {
        let mut obj = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(ValueSeed(Logical::Plain))?;
            obj.insert(k, v);
        }
        Ok(J::Object(obj))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use apache_avro::types::Value as Avro;
    use ledgerbridge_connectors::avro::{Provenance, RawSchema};
    use ledgerbridge_connectors::testing::{KINDS, value_of};
    use ledgerbridge_connectors::{Column, SourceRow, TableSchema, Value};
    use proptest::prelude::*;

    /// The JSON of an apache-avro value, as the worker made it before this codec: the reference.
    fn reference_json(v: Avro) -> J {
        match v {
            Avro::Null => J::Null,
            Avro::Boolean(b) => J::Bool(b),
            Avro::Int(i) => J::from(i),
            Avro::Long(i) => J::from(i),
            Avro::Float(f) => J::from(f64::from(f)),
            Avro::Double(f) => J::from(f),
            Avro::String(s) => J::String(s),
            Avro::Bytes(b) => J::String(b.iter().map(|x| format!("{x:02x}")).collect()),
            Avro::Date(d) => date(i64::from(d)),
            Avro::TimestampMicros(t) => rfc3339(chrono::DateTime::from_timestamp_micros(t)),
            Avro::Union(_, inner) => reference_json(*inner),
            other => panic!("not in raw records: {other:?}"),
        }
    }

    fn encoded() -> impl Strategy<Value = (RawSchema, Vec<u8>)> {
        proptest::collection::vec(proptest::sample::select(KINDS.to_vec()), 1..8).prop_flat_map(
            |kinds| {
                let table = TableSchema {
                    stream: "t".into(),
                    columns: kinds
                        .iter()
                        .enumerate()
                        .map(|(i, kind)| Column {
                            // Names that are not Avro names keep their source name.
                            name: format!("열 {i}"),
                            kind: *kind,
                            nullable: true,
                            source_type: String::new(),
                        })
                        .collect(),
                    key: vec![0],
                };
                let values: Vec<BoxedStrategy<Value>> =
                    kinds.iter().map(|k| value_of(*k)).collect();
                (values, any::<i64>(), "\\PC{0,8}").prop_map(move |(values, at, position)| {
                    let raw = RawSchema::derive("c", &table).unwrap();
                    let p = Provenance {
                        connector: "c",
                        table: "t",
                        key: "k",
                        extracted_at_ms: at,
                    };
                    let mut out = Vec::new();
                    raw.encode(1, &p, &SourceRow { values, position }, &mut out)
                        .unwrap();
                    (raw, out[5..].to_vec())
                })
            },
        )
    }

    proptest! {
        #[test]
        fn rows_read_as_the_apache_avro_reference_reads_them((raw, datum) in encoded()) {
            let (source, row) = RawCodec::new(&raw.text).unwrap().read(&datum).unwrap();
            let Avro::Record(mut parts) =
                apache_avro::from_avro_datum(&raw.schema, &mut &datum[..], None).unwrap()
            else {
                panic!("not a record")
            };
            let Some((_, Avro::Record(fields))) = parts.pop() else { panic!("no row") };
            let expected: Map<String, J> = fields
                .into_iter()
                .zip(row.keys())
                .map(|((_, v), column)| (column.clone(), reference_json(v)))
                .collect();
            prop_assert_eq!(&row, &expected);
            let named = row.keys().enumerate().all(|(i, k)| *k == format!("열 {i}"));
            prop_assert!(named, "source column names: {:?}", row.keys());
            prop_assert_eq!(source.connector, "c");
            prop_assert_eq!(source.key, "k");
        }

        #[test]
        fn cut_short_or_overlong_datums_are_refused((raw, datum) in encoded(), cut in 1_usize..64) {
            let codec = RawCodec::new(&raw.text).unwrap();
            let short = &datum[..datum.len().saturating_sub(cut)];
            prop_assert!(codec.read(short).is_err());
            let mut long = datum.clone();
            long.push(0);
            prop_assert_eq!(codec.read(&long).unwrap_err(), "1 bytes left after the datum");
        }
    }

    #[test]
    fn a_schema_that_is_not_a_raw_record_is_refused() {
        let e =
            RawCodec::new(r#"{"type":"record","name":"x","fields":[{"name":"a","type":"int"}]}"#)
                .unwrap_err();
        assert!(e.contains("not a raw record"), "{e}");
    }
}
