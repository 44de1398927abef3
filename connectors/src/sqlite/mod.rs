//! The SQLite source (rusqlite, sharing the workspace's bundled SQLite): the embedded equivalent
//! of a legacy database, used by the demo's sample systems and by single-site installations whose
//! legacy application keeps an SQLite file.
//!
//! Same modes as the server databases: a chunked first pass (the snapshot), then incremental by
//! the incrementing key or by timestamp then key. SQLite serialises writers, so keys and
//! database-assigned timestamps commit in order and no late commit can hide below the cursor;
//! timestamps written by the application keep the caveat of [`crate::watermark`]. The file is
//! opened read-only: the connector never writes to it.
//!
//! Types follow SQLite's affinity of the declared type: `INT` → long, `REAL`/`FLOA`/`DOUB` →
//! double, `BOOL` → boolean, `DECIMAL`/`NUMERIC` → exact text, `BLOB` → bytes, everything else
//! (text, dates and times, which SQLite stores as text) → string. A value whose storage class
//! does not fit its column (text in an integer column) sends its row to the quarantine.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use ledgerbridge_config::connectors::{ConnectorConfig, TableSpec};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value as J;

use crate::runtime::RewindTo;
use crate::table::{KeyAndCursor, key_and_cursor, key_from_texts, reject_row};
use crate::watermark::{Cursor, TableOffset};
use crate::{
    Batch, Column, ColumnType, Reject, Sink, Source, SourceError, SourceRow, TableInfo,
    TableSchema, Value,
};

/// An SQLite file source.
#[derive(Debug)]
pub struct SqliteSource {
    path: PathBuf,
    tables: Vec<TableSpec>,
}

struct Plan {
    schema: Arc<TableSchema>,
    sql_all: String,
    sql_after: String,
    sql_from_time: String,
    cursor: Vec<usize>,
}

/// The file of an `sqlite:PATH` URL (or a plain path).
fn path_of(url: &str) -> PathBuf {
    PathBuf::from(
        url.strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url),
    )
}

impl SqliteSource {
    /// Builds the source from an `sqlite` connector's configuration.
    ///
    /// # Errors
    /// No `database` table.
    pub fn new(config: &ConnectorConfig) -> Result<Self, SourceError> {
        let db = config.database.as_ref().ok_or_else(|| {
            SourceError::Config("an `sqlite` connector needs a `database` table".into())
        })?;
        Ok(Self {
            path: path_of(&db.url),
            tables: db.tables.clone(),
        })
    }

    fn spec(&self, stream: &str) -> Result<&TableSpec, SourceError> {
        self.tables
            .iter()
            .find(|t| t.name == stream)
            .ok_or_else(|| SourceError::Config(format!("no table `{stream}` in this connector")))
    }

    /// Runs `f` on a read-only connection in a blocking thread.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            if !path.exists() {
                return Err(SourceError::Unreachable(format!(
                    "no SQLite file at {}",
                    path.display()
                )));
            }
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| SourceError::Unreachable(format!("{}: {e}", path.display())))?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(|e| SourceError::Read(e.to_string()))?;
            f(&conn)
        })
        .await
        .map_err(|e| SourceError::Read(e.to_string()))?
    }
}

fn read_err(e: &rusqlite::Error) -> SourceError {
    SourceError::Read(e.to_string())
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Columns (name, declared type, not null) and primary key of a table, `None` when missing.
type Described = (Vec<(String, String, bool)>, Vec<String>);

fn describe(conn: &Connection, table: &str) -> Result<Option<Described>, SourceError> {
    let mut stmt = conn
        .prepare(&format!("PRAGMA table_info({})", quote(table)))
        .map_err(|e| read_err(&e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, i64>(5)?,
            ))
        })
        .map_err(|e| read_err(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(&e))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut key: Vec<(i64, String)> = rows
        .iter()
        .filter(|r| r.3 > 0)
        .map(|r| (r.3, r.0.clone()))
        .collect();
    key.sort();
    Ok(Some((
        // A primary-key column is never null (an INTEGER PRIMARY KEY is the rowid).
        rows.into_iter()
            .map(|(n, t, nn, pk)| (n, t, nn || pk > 0))
            .collect(),
        key.into_iter().map(|(_, n)| n).collect(),
    )))
}

fn column_type(declared: &str) -> ColumnType {
    let t = declared.to_ascii_uppercase();
    if t.contains("BOOL") {
        ColumnType::Boolean
    } else if t.contains("INT") {
        ColumnType::Long
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        ColumnType::Double
    } else if t.contains("DECIMAL") || t.contains("NUMERIC") {
        ColumnType::Decimal
    } else if t.contains("BLOB") {
        ColumnType::Bytes
    } else {
        ColumnType::String
    }
}

fn to_columns(columns: &[(String, String, bool)]) -> Vec<Column> {
    columns
        .iter()
        .map(|(name, declared, not_null)| Column {
            name: name.clone(),
            kind: column_type(declared),
            nullable: !not_null,
            source_type: declared.clone(),
        })
        .collect()
}

fn build_plan(spec: &TableSpec, (columns, primary_key): &Described) -> Result<Plan, SourceError> {
    let columns_out = to_columns(columns);
    let KeyAndCursor { key, cursor } = key_and_cursor(spec, &columns_out, primary_key)?;
    let names: Vec<String> = cursor.iter().map(|i| quote(&columns[*i].0)).collect();
    let select = columns
        .iter()
        .map(|c| quote(&c.0))
        .collect::<Vec<_>>()
        .join(", ");
    let from = quote(&spec.name);
    let order = names.join(", ");
    let marks = vec!["?"; names.len()].join(", ");
    Ok(Plan {
        schema: Arc::new(TableSchema {
            stream: spec.name.clone(),
            columns: columns_out,
            key,
        }),
        sql_all: format!("SELECT {select}, _rowid_ FROM {from} ORDER BY {order} LIMIT ?"),
        sql_after: format!(
            "SELECT {select}, _rowid_ FROM {from} WHERE ({order}) > ({marks}) ORDER BY {order} LIMIT ?"
        ),
        sql_from_time: format!(
            "SELECT {select}, _rowid_ FROM {from} WHERE {} >= ? ORDER BY {order} LIMIT ?",
            names[0]
        ),
        cursor,
    })
}

fn convert_value(kind: ColumnType, v: ValueRef<'_>) -> Result<Value, String> {
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|e| format!("not valid UTF-8: {e}"))
    };
    Ok(match (kind, v) {
        (_, ValueRef::Null) => Value::Null,
        (ColumnType::Long, ValueRef::Integer(i)) => Value::Long(i),
        (ColumnType::Boolean, ValueRef::Integer(i)) => Value::Boolean(i != 0),
        (ColumnType::Double, ValueRef::Real(f)) => Value::Double(f),
        #[allow(clippy::cast_precision_loss)]
        (ColumnType::Double, ValueRef::Integer(i)) => Value::Double(i as f64),
        (ColumnType::Decimal | ColumnType::String, ValueRef::Integer(i)) => {
            Value::String(i.to_string())
        }
        (ColumnType::Decimal | ColumnType::String, ValueRef::Real(f)) => {
            Value::String(f.to_string())
        }
        (ColumnType::Decimal | ColumnType::String, ValueRef::Text(t)) => Value::String(text(t)?),
        (ColumnType::Bytes, ValueRef::Blob(b)) => Value::Bytes(b.to_vec()),
        (kind, other) => {
            return Err(format!(
                "a {:?} value does not fit a {kind:?} column",
                other.data_type()
            ));
        }
    })
}

/// What one chunk read gave.
struct Chunk {
    rows: Vec<SourceRow>,
    rejects: Vec<Reject>,
    /// Cursor of the last row read, bad or not.
    last: Option<Cursor>,
    /// Rows read, bad ones included.
    count: usize,
}

/// One chunk: rows after the cursor (or from a time, or from the start).
fn read_chunk(
    conn: &Connection,
    plan: &Plan,
    offset: &TableOffset,
    limit: usize,
) -> Result<Chunk, SourceError> {
    let mut params: Vec<rusqlite::types::Value> = Vec::new();
    let sql = match (&offset.hi, offset.from_micros) {
        (Some(hi), _) => {
            for v in hi {
                params.push(match v {
                    J::Number(n) => match n.as_i64() {
                        Some(i) => rusqlite::types::Value::Integer(i),
                        None => rusqlite::types::Value::Real(n.as_f64().unwrap_or_default()),
                    },
                    J::String(s) => rusqlite::types::Value::Text(s.clone()),
                    J::Null => rusqlite::types::Value::Null,
                    other => rusqlite::types::Value::Text(other.to_string()),
                });
            }
            &plan.sql_after
        }
        (None, Some(micros)) => {
            let t =
                chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros).unwrap_or_default();
            params.push(rusqlite::types::Value::Text(
                t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            ));
            &plan.sql_from_time
        }
        (None, None) => &plan.sql_all,
    };
    params.push(rusqlite::types::Value::Integer(
        i64::try_from(limit).unwrap_or(i64::MAX),
    ));
    let mut stmt = conn.prepare_cached(sql).map_err(|e| read_err(&e))?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params))
        .map_err(|e| read_err(&e))?;
    let width = plan.schema.columns.len();
    let (mut out, mut rejects, mut last, mut count) = (Vec::new(), Vec::new(), None, 0);
    while let Some(row) = rows.next().map_err(|e| read_err(&e))? {
        count += 1;
        let rowid: i64 = row.get(width).map_err(|e| read_err(&e))?;
        let mut values = Vec::with_capacity(width);
        let mut problem = None;
        for (i, column) in plan.schema.columns.iter().enumerate() {
            let raw = row.get_ref(i).map_err(|e| read_err(&e))?;
            match convert_value(column.kind, raw) {
                Ok(v) => values.push(v),
                Err(e) => {
                    problem.get_or_insert(format!(
                        "column `{}` ({}): {e}",
                        column.name, column.source_type
                    ));
                    values.push(Value::Null);
                }
            }
        }
        // The cursor is taken from the stored values, whatever their conversion gave.
        let cursor = plan
            .cursor
            .iter()
            .map(|i| match row.get_ref(*i) {
                Ok(ValueRef::Integer(n)) => J::from(n),
                Ok(ValueRef::Real(f)) => J::from(f),
                Ok(ValueRef::Text(t)) => J::String(String::from_utf8_lossy(t).into_owned()),
                _ => J::Null,
            })
            .collect();
        last = Some(cursor);
        let position = format!("rowid={rowid}");
        match problem {
            None => out.push(SourceRow { values, position }),
            Some(reason) => rejects.push(reject_row(&plan.schema, values, &position, reason)),
        }
    }
    Ok(Chunk {
        rows: out,
        rejects,
        last,
        count,
    })
}

#[async_trait]
impl Source for SqliteSource {
    async fn check(&mut self) -> Result<String, SourceError> {
        let path = self.path.display().to_string();
        self.with(move |c| {
            let version: String = c
                .query_row("SELECT sqlite_version()", [], |r| r.get(0))
                .map_err(|e| read_err(&e))?;
            Ok(format!("SQLite {version} — {path} (read-only)"))
        })
        .await
    }

    async fn discover(&mut self) -> Result<Vec<TableInfo>, SourceError> {
        self.with(|c| {
            let mut stmt = c
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")
                .map_err(|e| read_err(&e))?;
            let names = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| read_err(&e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| read_err(&e))?;
            let mut out = Vec::new();
            for name in names {
                if let Some((columns, key)) = describe(c, &name)? {
                    out.push(TableInfo {
                        name,
                        columns: to_columns(&columns),
                        primary_key: key,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    fn streams(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.name.clone()).collect()
    }

    async fn pass(
        &mut self,
        stream: &str,
        offset: Option<J>,
        batch_size: usize,
        sink: &mut dyn Sink,
    ) -> Result<(), SourceError> {
        let spec = self.spec(stream)?.clone();
        let name = spec.name.clone();
        let described = self.with(move |c| describe(c, &name)).await?;
        let described = described.ok_or_else(|| SourceError::MissingTable(spec.name.clone()))?;
        let plan = Arc::new(build_plan(&spec, &described)?);
        let mut offset = TableOffset::from_json(offset).map_err(SourceError::Config)?;
        loop {
            let (p, o) = (Arc::clone(&plan), offset.clone());
            let Chunk {
                rows,
                rejects,
                last,
                count,
            } = self
                .with(move |c| read_chunk(c, &p, &o, batch_size))
                .await?;
            let Some(last) = last else { break };
            offset.hi = Some(last);
            offset.from_micros = None;
            sink.emit(Batch {
                schema: Arc::clone(&plan.schema),
                rows,
                rejects,
                offset: offset.to_json(),
            })
            .await?;
            if count < batch_size {
                break;
            }
        }
        Ok(())
    }

    async fn keys(&mut self, stream: &str) -> Result<Vec<String>, SourceError> {
        let spec = self.spec(stream)?.clone();
        let name = spec.name.clone();
        let described = self.with(move |c| describe(c, &name)).await?;
        let described = described.ok_or_else(|| SourceError::MissingTable(spec.name.clone()))?;
        let plan = build_plan(&spec, &described)?;
        let schema = Arc::clone(&plan.schema);
        self.with(move |c| {
            let columns: Vec<String> = schema
                .key
                .iter()
                .map(|i| format!("CAST({} AS TEXT)", quote(&schema.columns[*i].name)))
                .collect();
            let sql = format!(
                "SELECT {} FROM {}",
                columns.join(", "),
                quote(&schema.stream)
            );
            let mut stmt = c.prepare(&sql).map_err(|e| read_err(&e))?;
            let rows = stmt
                .query_map([], |r| {
                    (0..columns.len())
                        .map(|i| r.get::<_, Option<String>>(i))
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| read_err(&e))?;
            rows.map(|texts| {
                texts
                    .map(|t| key_from_texts(&schema, &t))
                    .map_err(|e| read_err(&e))
            })
            .collect()
        })
        .await
    }

    fn rewind_offset(&self, stream: &str, to: &RewindTo) -> Result<Option<J>, SourceError> {
        crate::watermark::rewind(self.spec(stream)?, to)
    }
}
