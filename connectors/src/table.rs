//! What the table sources (PostgreSQL, MariaDB, SQLite) share: which columns identify a row and
//! in which order a table is read, and how a row that cannot go on becomes a quarantine record.

use ledgerbridge_config::connectors::TableSpec;
use serde_json::Value as J;

use crate::{Column, ColumnType, Reject, SourceError, SourceRow, TableSchema, Value};

/// The key and the cursor of a table, as positions in its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyAndCursor {
    /// Columns identifying a row: `key` from the configuration, else the primary key.
    pub(crate) key: Vec<usize>,
    /// Columns the table is read in order of: the timestamp column then the incrementing column
    /// (or the key), or the incrementing column alone.
    pub(crate) cursor: Vec<usize>,
}

/// Resolves the configured key, incrementing and timestamp columns against the discovered
/// columns (exact name first, then ignoring case), with errors naming what is missing.
///
/// # Errors
/// A configured column the table does not have, no key, or no way to order the table.
pub(crate) fn key_and_cursor(
    spec: &TableSpec,
    columns: &[Column],
    primary_key: &[String],
) -> Result<KeyAndCursor, SourceError> {
    let index_of = |name: &str, what: &str| {
        columns
            .iter()
            .position(|c| c.name == name)
            .or_else(|| {
                columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(name))
            })
            .ok_or_else(|| {
                SourceError::Config(format!(
                    "table `{}` has no column `{name}` ({what}); it has: {}",
                    spec.name,
                    columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    };
    let key_names = spec.key.clone().unwrap_or_else(|| primary_key.to_vec());
    if key_names.is_empty() {
        return Err(SourceError::Config(format!(
            "table `{}` has no primary key: set `key` to the columns that identify a row",
            spec.name
        )));
    }
    let key = key_names
        .iter()
        .map(|k| index_of(k, "key"))
        .collect::<Result<Vec<_>, _>>()?;
    let incrementing = match &spec.incrementing_column {
        Some(c) => Some(index_of(c, "incrementing_column")?),
        None if key.len() == 1
            && matches!(columns[key[0]].kind, ColumnType::Int | ColumnType::Long) =>
        {
            Some(key[0])
        }
        None => None,
    };
    let cursor = match (&spec.timestamp_column, incrementing) {
        (Some(ts), Some(inc)) => vec![index_of(ts, "timestamp_column")?, inc],
        (Some(ts), None) => {
            let mut c = vec![index_of(ts, "timestamp_column")?];
            c.extend(&key);
            c
        }
        (None, Some(inc)) => vec![inc],
        (None, None) => {
            return Err(SourceError::Config(format!(
                "table `{}`: its key is not a single integer column; set `incrementing_column` or `timestamp_column`",
                spec.name
            )));
        }
    };
    Ok(KeyAndCursor { key, cursor })
}

/// The key text of a row (as [`crate::avro::key_text`] makes it) from its key columns read as
/// text: one column as it is, several as a JSON array with numbers for integer columns.
pub(crate) fn key_from_texts(schema: &TableSchema, texts: &[Option<String>]) -> String {
    if let [one] = texts {
        return one.clone().unwrap_or_else(|| "null".to_owned());
    }
    J::Array(
        schema
            .key
            .iter()
            .zip(texts)
            .map(|(i, t)| match (t, schema.columns[*i].kind) {
                (None, _) => J::Null,
                (Some(t), ColumnType::Int | ColumnType::Long) => t
                    .parse::<i64>()
                    .map_or_else(|_| J::String(t.clone()), J::from),
                (Some(t), _) => J::String(t.clone()),
            })
            .collect(),
    )
    .to_string()
}

/// A row with a value that cannot go on, as a quarantine record: where (table, key, source
/// position), why, and every value that could be read (the bad ones as null).
pub(crate) fn reject_row(
    schema: &TableSchema,
    values: Vec<Value>,
    position: &str,
    reason: String,
) -> Reject {
    let row = SourceRow {
        values,
        position: String::new(),
    };
    let payload: serde_json::Map<String, J> = schema
        .columns
        .iter()
        .zip(&row.values)
        .map(|(c, v)| (c.name.clone(), v.to_json()))
        .collect();
    Reject {
        position: format!(
            "{} key={} {position}",
            schema.stream,
            crate::avro::key_text(schema, &row)
        ),
        reason,
        payload: J::Object(payload).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: Option<&str>, incrementing: Option<&str>, timestamp: Option<&str>) -> TableSpec {
        TableSpec {
            name: "t".into(),
            key: key.map(|k| vec![k.to_owned()]),
            incrementing_column: incrementing.map(str::to_owned),
            timestamp_column: timestamp.map(str::to_owned),
        }
    }

    fn columns(cols: &[(&str, ColumnType)]) -> Vec<Column> {
        cols.iter()
            .map(|(n, k)| Column {
                name: (*n).into(),
                kind: *k,
                nullable: true,
                source_type: String::new(),
            })
            .collect()
    }

    #[test]
    fn cursors_follow_the_configuration() {
        let cols = columns(&[
            ("ID", ColumnType::Long),
            ("code", ColumnType::String),
            ("updated_at", ColumnType::Timestamp),
        ]);
        let pk = ["ID".to_owned()];
        let r =
            key_and_cursor(&spec(None, None, None), &cols, &pk).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.key, r.cursor), (vec![0], vec![0]));
        let r = key_and_cursor(&spec(None, None, Some("UPDATED_AT")), &cols, &pk)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.cursor,
            vec![2, 0],
            "timestamp then key, names matched ignoring case"
        );
        let r = key_and_cursor(&spec(Some("code"), None, Some("updated_at")), &cols, &pk)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.key, r.cursor), (vec![1], vec![2, 1]));
        let e = key_and_cursor(&spec(Some("code"), None, None), &cols, &pk)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not a single integer column"), "{e}");
        let e = key_and_cursor(&spec(None, None, None), &cols, &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("no primary key"), "{e}");
        let e = key_and_cursor(&spec(None, Some("seq"), None), &cols, &pk)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("no column `seq`") && e.contains("it has: ID, code, updated_at"),
            "{e}"
        );
    }
}
