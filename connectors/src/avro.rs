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

use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use ledgerbridge_registry::framing::FramedWriter;
use serde_json::json;

use crate::{SourceRow, TableSchema, Value};

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
    names: [String; 7],
    writer: Arc<FramedWriter>,
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
        let writer = Arc::new(FramedWriter::new(&parsed).map_err(|e| e.to_string())?);
        Ok(Self {
            writer,
            schema: parsed,
            text,
            full_name: format!("{namespace}.{name}"),
            fields,
            names: [
                "source",
                "connector",
                "table",
                "key",
                "position",
                "extracted_at",
                "row",
            ]
            .map(str::to_owned),
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
        let [
            source,
            connector,
            table,
            key,
            position,
            extracted_at,
            row_name,
        ] = &self.names;
        let fields = self
            .fields
            .iter()
            .zip(&row.values)
            .map(|(name, value)| (name.clone(), union(value)))
            .collect();
        let value = Avro::Record(vec![
            (
                source.clone(),
                Avro::Record(vec![
                    (
                        connector.clone(),
                        Avro::String(provenance.connector.to_owned()),
                    ),
                    (table.clone(), Avro::String(provenance.table.to_owned())),
                    (key.clone(), Avro::String(provenance.key.to_owned())),
                    (position.clone(), Avro::String(row.position.clone())),
                    (
                        extracted_at.clone(),
                        Avro::TimestampMillis(provenance.extracted_at_ms),
                    ),
                ]),
            ),
            (row_name.clone(), Avro::Record(fields)),
        ]);
        self.writer
            .write(id, &value, out)
            .map_err(|e| e.to_string())
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

fn union(value: &Value) -> Avro {
    let v = match value {
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
    use crate::{Column, ColumnType};

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
