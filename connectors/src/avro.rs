//! Raw records as Avro: the schema of a stream derived from its source columns, and records
//! framed the Confluent way (byte 0, the 4-byte big-endian schema id, the Avro datum).
//!
//! A raw record is
//!
//! ```text
//! record <table>  (namespace ledgerbridge.raw.<connector>)
//!   source: record ledgerbridge.Source { connector, table, key, position, extracted_at (timestamp-millis) }
//!   row:    record <table>_row { one field per column, each ["null", type] with default null }
//! ```
//!
//! Every column is nullable with a null default, so a column added to the source table is a
//! BACKWARD-compatible new version; a column whose type changes is not, and the registry refuses
//! it. Column names that are not Avro names are rewritten (`[^A-Za-z0-9_]` → `_`, a leading digit
//! prefixed with `_`) and the source name is kept in the field's `source_column` attribute.

use apache_avro::Schema;
use ledgerbridge_registry::framing::Compiled;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_avro_fast::ser::SerializerConfig;
use serde_json::json;

use crate::{ColumnType, SourceRow, TableSchema, Value};

/// A stream's Avro schema, ready to encode with.
#[derive(Debug, Clone)]
pub struct RawSchema {
    /// Parsed schema.
    pub schema: Schema,
    /// Its JSON text, as registered.
    pub text: String,
    /// Full name of the top record (the subject is `<topic>-<full name>`).
    pub full_name: String,
    fields: Vec<String>,
    kinds: Vec<ColumnType>,
    /// The schema compiled for the encoder.
    fast: Compiled,
}

/// Turns any text into an Avro name.
#[must_use]
pub fn avro_name(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

impl RawSchema {
    /// Derives the schema of `table`'s records from `connector`.
    ///
    /// # Errors
    /// apache-avro refuses the derived schema (a bug: names are sanitised).
    pub fn derive(connector: &str, table: &TableSchema) -> Result<Self, String> {
        let namespace = format!("ledgerbridge.raw.{}", avro_name(connector));
        let name = avro_name(&table.stream);
        let mut fields = Vec::with_capacity(table.columns.len());
        let mut avro_fields = Vec::with_capacity(table.columns.len());
        for column in &table.columns {
            let mut field = avro_name(&column.name);
            while fields.contains(&field) {
                field.push('_');
            }
            let mut f = json!({
                "name": field,
                "type": ["null", column.kind.avro()],
                "default": null,
            });
            if field != column.name {
                f["source_column"] = json!(column.name);
            }
            avro_fields.push(f);
            fields.push(field);
        }
        let schema = json!({
            "type": "record",
            "name": name,
            "namespace": namespace,
            "doc": format!("Rows of `{}` read by connector `{connector}`", table.stream),
            "fields": [
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
                {"name": "row", "type": {
                    "type": "record", "name": format!("{name}_row"),
                    "fields": avro_fields
                }}
            ]
        });
        let text = schema.to_string();
        let parsed = Schema::parse_str(&text).map_err(|e| e.to_string())?;
        Ok(Self {
            fast: Compiled::parse(&text)?,
            schema: parsed,
            text,
            full_name: format!("{namespace}.{name}"),
            fields,
            kinds: table.columns.iter().map(|c| c.kind).collect(),
        })
    }

    /// Encodes one row with Confluent framing under schema `id`.
    ///
    /// # Errors
    /// A value does not fit its column's type (the caller quarantines the row).
    pub fn encode(
        &self,
        id: u32,
        provenance: &Provenance<'_>,
        row: &SourceRow,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        if row.values.len() != self.fields.len() {
            return Err(format!(
                "{} values for {} columns",
                row.values.len(),
                self.fields.len()
            ));
        }
        // Every value must be of its column's type (`Null` fits all: the fields are nullable).
        if let Some(((name, kind), value)) = self
            .fields
            .iter()
            .zip(&self.kinds)
            .zip(&row.values)
            .find(|((_, kind), value)| !fits(**kind, value))
        {
            return Err(format!(
                "column `{name}` is {kind:?} but the value read is {}",
                value.kind_name()
            ));
        }
        let start = out.len();
        out.extend_from_slice(&ledgerbridge_registry::framing::frame(id));
        let record = RecordSer {
            provenance,
            row,
            fields: &self.fields,
        };
        let mut config = SerializerConfig::new(&self.fast);
        if let Err(e) = serde_avro_fast::to_datum(&record, &mut *out, &mut config) {
            out.truncate(start);
            return Err(e.to_string());
        }
        Ok(())
    }
}

/// Whether `value` travels as a `kind` column.
fn fits(kind: ColumnType, value: &Value) -> bool {
    matches!(
        (kind, value),
        (_, Value::Null)
            | (ColumnType::Boolean, Value::Boolean(_))
            | (ColumnType::Int, Value::Int(_))
            | (ColumnType::Long, Value::Long(_))
            | (ColumnType::Float, Value::Float(_))
            | (ColumnType::Double, Value::Double(_))
            | (ColumnType::String | ColumnType::Decimal, Value::String(_))
            | (ColumnType::Bytes, Value::Bytes(_))
            | (ColumnType::Date, Value::Date(_))
            | (ColumnType::Timestamp, Value::Timestamp(_))
    )
}

/// A raw record, serialised in schema order: `source`, then `row` (every field a `["null", T]`
/// union whose branch serde_avro_fast picks by the kind of value; [`fits`] was checked first).
struct RecordSer<'a> {
    provenance: &'a Provenance<'a>,
    row: &'a SourceRow,
    fields: &'a [String],
}

struct SourceSer<'a>(&'a Provenance<'a>, &'a str);

struct RowSer<'a>(&'a [String], &'a [Value]);

struct ValueSer<'a>(&'a Value);

impl Serialize for RecordSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("source", &SourceSer(self.provenance, &self.row.position))?;
        m.serialize_entry("row", &RowSer(self.fields, &self.row.values))?;
        m.end()
    }
}

impl Serialize for SourceSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("connector", p.connector)?;
        m.serialize_entry("table", p.table)?;
        m.serialize_entry("key", p.key)?;
        m.serialize_entry("position", self.1)?;
        m.serialize_entry("extracted_at", &p.extracted_at_ms)?;
        m.end()
    }
}

impl Serialize for RowSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0.iter().zip(self.1) {
            m.serialize_entry(name.as_str(), &ValueSer(value))?;
        }
        m.end()
    }
}

impl Serialize for ValueSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Boolean(b) => s.serialize_bool(*b),
            Value::Int(i) | Value::Date(i) => s.serialize_i32(*i),
            Value::Long(i) | Value::Timestamp(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f32(*f),
            Value::Double(f) => s.serialize_f64(*f),
            Value::String(text) => s.serialize_str(text),
            Value::Bytes(b) => s.serialize_bytes(b),
        }
    }
}

/// Where a record comes from, beside its source position.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    /// Connector name.
    pub connector: &'a str,
    /// Table or file.
    pub table: &'a str,
    /// Primary key as text.
    pub key: &'a str,
    /// Extraction time, milliseconds since the epoch.
    pub extracted_at_ms: i64,
}

/// The key of a row on the bus: the primary key's value as text for a single column, a JSON
/// array for several.
#[must_use]
pub fn key_text(table: &TableSchema, row: &SourceRow) -> String {
    match table.key.as_slice() {
        [one] => match row.values.get(*one) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_json().to_string(),
            None => String::new(),
        },
        many => serde_json::Value::Array(
            many.iter()
                .map(|i| {
                    row.values
                        .get(*i)
                        .map_or(serde_json::Value::Null, Value::to_json)
                })
                .collect(),
        )
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Column;
    use crate::testing::{KINDS, value_of};
    use apache_avro::types::Value as Avro;
    use proptest::prelude::*;

    /// apache-avro's datum of a row, built the way the encoder was before it used
    /// serde_avro_fast: the reference the encoder is checked against.
    fn reference(raw: &RawSchema, p: &Provenance<'_>, row: &SourceRow) -> Vec<u8> {
        let union = |v: &Value| {
            let v = match v {
                Value::Null => return Avro::Union(0, Box::new(Avro::Null)),
                Value::Boolean(b) => Avro::Boolean(*b),
                Value::Int(i) => Avro::Int(*i),
                Value::Long(i) => Avro::Long(*i),
                Value::Float(f) => Avro::Float(*f),
                Value::Double(f) => Avro::Double(*f),
                Value::String(s) => Avro::String(s.clone()),
                Value::Bytes(b) => Avro::Bytes(b.clone()),
                Value::Date(d) => Avro::Date(*d),
                Value::Timestamp(t) => Avro::TimestampMicros(*t),
            };
            Avro::Union(1, Box::new(v))
        };
        let fields = raw
            .fields
            .iter()
            .zip(&row.values)
            .map(|(n, v)| (n.clone(), union(v)))
            .collect();
        let value = Avro::Record(vec![
            (
                "source".into(),
                Avro::Record(vec![
                    ("connector".into(), Avro::String(p.connector.into())),
                    ("table".into(), Avro::String(p.table.into())),
                    ("key".into(), Avro::String(p.key.into())),
                    ("position".into(), Avro::String(row.position.clone())),
                    (
                        "extracted_at".into(),
                        Avro::TimestampMillis(p.extracted_at_ms),
                    ),
                ]),
            ),
            ("row".into(), Avro::Record(fields)),
        ]);
        apache_avro::to_avro_datum(&raw.schema, value).expect("reference")
    }

    fn table_and_row() -> impl Strategy<Value = (TableSchema, SourceRow)> {
        proptest::collection::vec(proptest::sample::select(KINDS.to_vec()), 1..8).prop_flat_map(
            |kinds| {
                let columns: Vec<(String, ColumnType)> = kinds
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (format!("c{i}"), *k))
                    .collect();
                let values: Vec<BoxedStrategy<Value>> =
                    kinds.iter().map(|k| value_of(*k)).collect();
                (values, "\\PC{0,12}").prop_map(move |(values, position)| {
                    let named: Vec<(&str, ColumnType)> =
                        columns.iter().map(|(n, k)| (n.as_str(), *k)).collect();
                    (table(&named), SourceRow { values, position })
                })
            },
        )
    }

    proptest! {
        #[test]
        fn rows_are_encoded_as_apache_avro_encodes_them(
            (t, row) in table_and_row(),
            extracted_at_ms in any::<i64>(),
        ) {
            let raw = RawSchema::derive("c", &t).unwrap();
            let p = Provenance { connector: "c", table: "t", key: "k", extracted_at_ms };
            let mut out = vec![9];
            raw.encode(5, &p, &row, &mut out).unwrap();
            prop_assert_eq!(&out[..6], &[9, 0, 0, 0, 0, 5]);
            prop_assert_eq!(&out[6..], &reference(&raw, &p, &row)[..]);
        }
    }

    #[test]
    fn a_value_of_another_type_than_its_column_is_refused_by_name() {
        let t = table(&[("id", ColumnType::Long), ("paid", ColumnType::Boolean)]);
        let raw = RawSchema::derive("c", &t).unwrap();
        let p = Provenance {
            connector: "c",
            table: "t",
            key: "1",
            extracted_at_ms: 0,
        };
        let row = SourceRow {
            values: vec![Value::Long(1), Value::String("yes".into())],
            position: "1".into(),
        };
        let mut out = vec![1, 2];
        let e = raw.encode(1, &p, &row, &mut out).unwrap_err();
        assert_eq!(e, "column `paid` is Boolean but the value read is text");
        assert_eq!(out, [1, 2], "nothing is left of a refused row");
    }

    fn table(columns: &[(&str, ColumnType)]) -> TableSchema {
        TableSchema {
            stream: "public.orders".into(),
            columns: columns
                .iter()
                .map(|(n, k)| Column {
                    name: (*n).into(),
                    kind: *k,
                    nullable: true,
                    source_type: String::new(),
                })
                .collect(),
            key: vec![0],
        }
    }

    #[test]
    fn records_round_trip_through_apache_avro() {
        let t = table(&[
            ("order_id", ColumnType::Long),
            ("주문자", ColumnType::String),
            ("amount", ColumnType::Decimal),
            ("ordered_on", ColumnType::Date),
            ("updated_at", ColumnType::Timestamp),
            ("paid", ColumnType::Boolean),
        ]);
        let raw = RawSchema::derive("mall-orders", &t).expect("schema");
        assert_eq!(raw.full_name, "ledgerbridge.raw.mall_orders.public_orders");
        let row = SourceRow {
            values: vec![
                Value::Long(42),
                Value::String("김철수".into()),
                Value::String("12345.67".into()),
                Value::Date(19_000),
                Value::Timestamp(1_700_000_000_000_000),
                Value::Null,
            ],
            position: "lsn:0/16B3748".into(),
        };
        let key = key_text(&t, &row);
        assert_eq!(key, "42");
        let p = Provenance {
            connector: "mall-orders",
            table: "public.orders",
            key: &key,
            extracted_at_ms: 1_700_000_000_123,
        };
        let mut out = Vec::new();
        raw.encode(7, &p, &row, &mut out).expect("encode");
        assert_eq!(&out[..5], &[0, 0, 0, 0, 7]);
        let back = apache_avro::from_avro_datum(&raw.schema, &mut &out[5..], None).expect("decode");
        let Avro::Record(fields) = back else {
            panic!("not a record")
        };
        let Avro::Record(row_fields) = &fields[1].1 else {
            panic!("no row")
        };
        assert_eq!(
            row_fields[1].0, "___",
            "Korean column names become Avro names"
        );
        assert_eq!(
            row_fields[1].1,
            Avro::Union(1, Box::new(Avro::String("김철수".into())))
        );
        assert_eq!(row_fields[5].1, Avro::Union(0, Box::new(Avro::Null)));
        assert!(raw.text.contains("\"source_column\":\"주문자\""));
    }

    #[test]
    fn a_new_nullable_column_is_backward_compatible_and_a_type_change_is_not() {
        use apache_avro::schema_compatibility::SchemaCompatibility;
        let v1 = RawSchema::derive("c", &table(&[("id", ColumnType::Long)])).expect("v1");
        let v2 = RawSchema::derive(
            "c",
            &table(&[("id", ColumnType::Long), ("note", ColumnType::String)]),
        )
        .expect("v2");
        let v3 = RawSchema::derive("c", &table(&[("id", ColumnType::String)])).expect("v3");
        assert!(SchemaCompatibility::can_read(&v1.schema, &v2.schema).is_ok());
        assert!(SchemaCompatibility::can_read(&v1.schema, &v3.schema).is_err());
    }

    #[test]
    fn composite_keys_are_json_arrays() {
        let mut t = table(&[("a", ColumnType::Long), ("b", ColumnType::String)]);
        t.key = vec![0, 1];
        let row = SourceRow {
            values: vec![Value::Long(1), Value::String("x".into())],
            position: String::new(),
        };
        assert_eq!(key_text(&t, &row), r#"[1,"x"]"#);
    }
}
