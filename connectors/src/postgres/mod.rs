//! The PostgreSQL source (tokio-postgres).
//!
//! Each pass over a table runs in one `REPEATABLE READ READ ONLY` transaction and reads through a
//! portal, `batch_size` rows at a time, so memory stays flat whatever the table size; the first
//! pass is the initial snapshot, later passes are incremental by the cursor (the incrementing
//! column, or the timestamp column then the key). Rows that commit late below the cursor are
//! found through the previous pass's snapshot, see [`crate::watermark`].
//!
//! Types travel natively where Avro has them (bool, int2/4/8, float4/8, text, varchar, char,
//! name, bytea, date, timestamp, timestamptz); `numeric` travels as exact text, and every other
//! type (json, uuid, time, interval, enums, arrays, …) through its text form. A value that has no
//! Avro form (a date or timestamp of `infinity`) sends its row to the quarantine.

use std::str::FromStr as _;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use ledgerbridge_config::connectors::{ConnectorConfig, TableSpec};
use serde_json::Value as J;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, NoTls, Row};

use crate::runtime::RewindTo;
use crate::table::{KeyAndCursor, key_and_cursor, key_from_texts, reject_row};
use crate::watermark::{Cursor, Snapshot, TableOffset};
use crate::{
    Batch, Column, ColumnType, Reject, Sink, Source, SourceError, SourceRow, TableInfo,
    TableSchema, Value,
};

/// How a column is read from a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    Bool,
    I16,
    I32,
    I64,
    F32,
    F64,
    Text,
    Bytes,
    Date,
    Timestamp,
    TimestampTz,
}

/// A PostgreSQL table source.
pub struct PostgresSource {
    pg: tokio_postgres::Config,
    endpoint: String,
    tables: Vec<TableSpec>,
    window_ms: i64,
    client: Option<Client>,
}

impl std::fmt::Debug for PostgresSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSource")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A table as read in one pass.
struct Plan {
    schema: Arc<TableSchema>,
    readers: Vec<Reader>,
    select: String,
    from: String,
    cursor: Vec<usize>,
    cursor_sql: String,
    cursor_types: Vec<String>,
}

impl PostgresSource {
    /// Builds the source from a `postgres` connector's configuration.
    ///
    /// # Errors
    /// No `database` table, a URL tokio-postgres cannot read, or an unresolvable password.
    pub fn new(config: &ConnectorConfig) -> Result<Self, SourceError> {
        let db = config.database.as_ref().ok_or_else(|| {
            SourceError::Config("a `postgres` connector needs a `database` table".into())
        })?;
        let mut pg = tokio_postgres::Config::from_str(&db.url)
            .map_err(|e| SourceError::Config(format!("database.url: {e}")))?;
        if let Some(secret) = &db.password {
            let password = secret
                .resolve()
                .map_err(|e| SourceError::Config(format!("database.password: {e}")))?;
            pg.password(password);
        }
        pg.connect_timeout(db.connect_timeout.get());
        pg.application_name("ledgerbridge");
        Ok(Self {
            pg,
            endpoint: ledgerbridge_store::redact_url(&db.url),
            tables: db.tables.clone(),
            window_ms: i64::try_from(db.late_commit_window.get().as_millis()).unwrap_or(i64::MAX),
            client: None,
        })
    }

    async fn client(&mut self) -> Result<&mut Client, SourceError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            let (client, connection) = self.pg.connect(NoTls).await.map_err(|e| {
                let e = classify(&e);
                match e {
                    SourceError::Read(m) => {
                        SourceError::Unreachable(format!("{}: {m}", self.endpoint))
                    }
                    other => other,
                }
            })?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!("source connection closed: {e}");
                }
            });
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| SourceError::Unreachable("no connection".into()))
    }

    fn spec(&self, stream: &str) -> Result<&TableSpec, SourceError> {
        self.tables
            .iter()
            .find(|t| t.name == stream)
            .ok_or_else(|| SourceError::Config(format!("no table `{stream}` in this connector")))
    }

    async fn plan(&mut self, stream: &str) -> Result<Plan, SourceError> {
        let spec = self.spec(stream)?.clone();
        let (schema_name, table) = split_name(&spec.name);
        let client = self.client().await?;
        let info = describe(client, &schema_name, &table)
            .await?
            .ok_or_else(|| SourceError::MissingTable(spec.name.clone()))?;
        build_plan(&spec, &schema_name, &table, &info)
    }

    async fn read_pass(
        &mut self,
        stream: &str,
        offset: Option<J>,
        batch_size: usize,
        sink: &mut dyn Sink,
    ) -> Result<(), SourceError> {
        let plan = self.plan(stream).await?;
        let mut offset = TableOffset::from_json(offset).map_err(SourceError::Config)?;
        let window_ms = self.window_ms;
        let client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| classify(&e))?;
        let head = tx
            .query_one(
                "SELECT pg_current_snapshot()::text, \
                 (extract(epoch from clock_timestamp()) * 1000)::int8, \
                 (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text",
                &[],
            )
            .await
            .map_err(|e| classify(&e))?;
        let snapshot_text: String = head.get(0);
        let mut snapshot = Snapshot::parse(&snapshot_text)
            .ok_or_else(|| SourceError::Read(format!("unreadable snapshot `{snapshot_text}`")))?;
        let now_ms: i64 = head.get(1);
        let lsn: Option<String> = head.get(2);
        let position = format!("lsn={}", lsn.unwrap_or_default());
        snapshot.at_ms = now_ms;
        let hi_start = offset.hi.clone();

        // 1. Rows at or below `hi` committed since the previous pass's snapshot.
        if let (Some(prev), Some(hi)) = (offset.snapshot.clone(), hi_start.clone()) {
            let bound = offset.bound(prev.at_ms, window_ms);
            let mut params: Vec<String> = Vec::new();
            let mut filter = format!(
                "{} <= {}",
                plan.cursor_sql,
                placeholders(&plan, &hi, &mut params)?
            );
            if let Some(bound) = &bound {
                filter.push_str(&format!(
                    " AND {} > {}",
                    plan.cursor_sql,
                    placeholders(&plan, bound, &mut params)?
                ));
            }
            // Not visible in the previous snapshot: running then, or started since (compared on
            // the 32 bits `xmin` keeps, modulo wrap-around).
            let xip: Vec<i64> = prev.xip.iter().map(|x| xid32(*x)).collect();
            let (a, b) = (xid32(prev.xmax), xid32(snapshot.xmax));
            let x = "xmin::text::int8";
            let range = if a <= b {
                format!("({x} >= {a} AND {x} < {b})")
            } else {
                format!("({x} >= {a} OR {x} < {b})")
            };
            let sql = format!(
                "SELECT {}, xmin::text FROM {} WHERE {filter} AND ({range} OR {x} = ANY(${}::int8[])) ORDER BY {}",
                plan.select,
                plan.from,
                params.len() + 1,
                plan.cursor_sql
            );
            let mut values: Vec<&(dyn ToSql + Sync)> =
                params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
            values.push(&xip);
            let rows = tx.query(&sql, &values).await.map_err(|e| classify(&e))?;
            if !rows.is_empty() {
                tracing::info!(
                    stream,
                    rows = rows.len(),
                    "rows committed late below the cursor picked up"
                );
            }
            for chunk in rows.chunks(batch_size.max(1)) {
                let (rows, rejects) = convert(&plan, chunk, &position, true);
                // `hi` does not move: these rows are below it.
                sink.emit(Batch {
                    schema: Arc::clone(&plan.schema),
                    rows,
                    rejects,
                    offset: offset.to_json(),
                })
                .await?;
            }
        }

        // 2. Rows above `hi`, in cursor order, a chunk at a time.
        let mut params = Vec::new();
        let filter = match (&hi_start, offset.from_micros) {
            (Some(hi), _) => format!(
                " WHERE {} > {}",
                plan.cursor_sql,
                placeholders(&plan, hi, &mut params)?
            ),
            (None, Some(micros)) => {
                // Rewound to a time: the first cursor column is the timestamp.
                let first = Cursor::from([J::from(micros)]);
                params.extend(cursor_params(&plan, &first)?);
                format!(
                    " WHERE {} >= $1::text::{}",
                    quote(&plan.schema.columns[plan.cursor[0]].name),
                    plan.cursor_types[0]
                )
            }
            (None, None) => String::new(),
        };
        let sql = format!(
            "SELECT {}, xmin::text FROM {}{filter} ORDER BY {}",
            plan.select, plan.from, plan.cursor_sql
        );
        let statement = tx.prepare(&sql).await.map_err(|e| classify(&e))?;
        let values: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let portal = tx
            .bind(&statement, &values)
            .await
            .map_err(|e| classify(&e))?;
        let chunk = i32::try_from(batch_size).unwrap_or(i32::MAX);
        loop {
            let rows = tx
                .query_portal(&portal, chunk)
                .await
                .map_err(|e| classify(&e))?;
            let Some(last) = rows.last() else { break };
            offset.hi = Some(cursor_of(&plan, last)?);
            let (converted, rejects) = convert(&plan, &rows, &position, false);
            let full = rows.len() == usize::try_from(chunk).unwrap_or(usize::MAX);
            sink.emit(Batch {
                schema: Arc::clone(&plan.schema),
                rows: converted,
                rejects,
                offset: offset.to_json(),
            })
            .await?;
            if !full {
                break;
            }
        }
        tx.commit().await.map_err(|e| classify(&e))?;

        // 3. The pass is complete: remember its snapshot for the next one.
        let hi_end = offset.hi.clone();
        offset.hi = hi_start;
        offset.mark(now_ms, window_ms);
        offset.hi = hi_end;
        offset.snapshot = Some(snapshot);
        offset.from_micros = None;
        sink.emit(Batch {
            schema: plan.schema,
            rows: Vec::new(),
            rejects: Vec::new(),
            offset: offset.to_json(),
        })
        .await?;
        Ok(())
    }
}

/// The low 32 bits of a 64-bit transaction id, as `xmin` shows it.
fn xid32(xid: u64) -> i64 {
    i64::try_from(xid & 0xFFFF_FFFF).unwrap_or(0)
}

fn split_name(name: &str) -> (String, String) {
    match name.split_once('.') {
        Some((s, t)) => (s.to_owned(), t.to_owned()),
        None => ("public".to_owned(), name.to_owned()),
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A column as the catalogue describes it.
struct Described {
    name: String,
    type_name: String,
    formatted: String,
    not_null: bool,
}

async fn describe(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<Option<(Vec<Described>, Vec<String>)>, SourceError> {
    let columns = client
        .query(
            "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, t.typtype::text \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .map_err(|e| classify(&e))?;
    if columns.is_empty() {
        return Ok(None);
    }
    let key = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary \
             ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&schema, &table],
        )
        .await
        .map_err(|e| classify(&e))?;
    let described = columns
        .iter()
        .map(|r| {
            let typtype: String = r.get(4);
            let type_name: String = r.get(1);
            Described {
                name: r.get(0),
                // Enums and domains travel as text whatever their name.
                type_name: if typtype == "b" {
                    type_name
                } else {
                    format!("{typtype}:{type_name}")
                },
                formatted: r.get(2),
                not_null: r.get(3),
            }
        })
        .collect();
    Ok(Some((described, key.iter().map(|r| r.get(0)).collect())))
}

fn column_type(type_name: &str) -> (ColumnType, Reader, bool) {
    // (bus type, reader, read through ::text)
    match type_name {
        "bool" => (ColumnType::Boolean, Reader::Bool, false),
        "int2" => (ColumnType::Int, Reader::I16, false),
        "int4" => (ColumnType::Int, Reader::I32, false),
        "int8" => (ColumnType::Long, Reader::I64, false),
        "float4" => (ColumnType::Float, Reader::F32, false),
        "float8" => (ColumnType::Double, Reader::F64, false),
        "text" | "varchar" | "bpchar" | "name" => (ColumnType::String, Reader::Text, false),
        "bytea" => (ColumnType::Bytes, Reader::Bytes, false),
        "date" => (ColumnType::Date, Reader::Date, false),
        "timestamp" => (ColumnType::Timestamp, Reader::Timestamp, false),
        "timestamptz" => (ColumnType::Timestamp, Reader::TimestampTz, false),
        "numeric" => (ColumnType::Decimal, Reader::Text, true),
        _ => (ColumnType::String, Reader::Text, true),
    }
}

fn to_columns(described: &[Described]) -> Vec<Column> {
    described
        .iter()
        .map(|d| Column {
            name: d.name.clone(),
            kind: column_type(&d.type_name).0,
            nullable: !d.not_null,
            source_type: d.formatted.clone(),
        })
        .collect()
}

fn build_plan(
    spec: &TableSpec,
    schema_name: &str,
    table: &str,
    (described, primary_key): &(Vec<Described>, Vec<String>),
) -> Result<Plan, SourceError> {
    let columns = to_columns(described);
    let KeyAndCursor { key, cursor } = key_and_cursor(spec, &columns, primary_key)?;
    let mut readers = Vec::with_capacity(described.len());
    let mut select = Vec::with_capacity(described.len());
    for d in described {
        let (_, reader, as_text) = column_type(&d.type_name);
        readers.push(reader);
        select.push(if as_text {
            format!("{}::text", quote(&d.name))
        } else {
            quote(&d.name)
        });
    }
    let cursor_cols: Vec<String> = cursor.iter().map(|i| quote(&described[*i].name)).collect();
    Ok(Plan {
        schema: Arc::new(TableSchema {
            stream: spec.name.clone(),
            columns,
            key,
        }),
        readers,
        select: select.join(", "),
        from: format!("{}.{}", quote(schema_name), quote(table)),
        cursor_sql: format!("({})", cursor_cols.join(", ")),
        cursor_types: cursor
            .iter()
            .map(|i| described[*i].formatted.clone())
            .collect(),
        cursor,
    })
}

/// `($n::text::type, …)` for a cursor, appending its values as text to `params`.
fn placeholders(
    plan: &Plan,
    cursor: &Cursor,
    params: &mut Vec<String>,
) -> Result<String, SourceError> {
    let first = params.len() + 1;
    params.extend(cursor_params(plan, cursor)?);
    placeholders_at(plan, cursor, first)
}

fn placeholders_at(plan: &Plan, cursor: &Cursor, first: usize) -> Result<String, SourceError> {
    if cursor.len() != plan.cursor.len() {
        return Err(SourceError::Config(format!(
            "the stored offset has {} cursor values but the table's cursor has {} columns: rewind the stream",
            cursor.len(),
            plan.cursor.len()
        )));
    }
    let parts: Vec<String> = plan
        .cursor_types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::text::{t}", first + i))
        .collect();
    Ok(format!("({})", parts.join(", ")))
}

fn cursor_params(plan: &Plan, cursor: &Cursor) -> Result<Vec<String>, SourceError> {
    cursor
        .iter()
        .zip(&plan.cursor)
        .map(|(v, col)| {
            let reader = plan.readers[*col];
            let bad = || {
                SourceError::Config(format!(
                    "stored cursor value {v} does not fit column `{}`",
                    plan.schema.columns[*col].name
                ))
            };
            Ok(match (reader, v) {
                (Reader::Timestamp | Reader::TimestampTz, J::Number(n)) => {
                    let micros = n.as_i64().ok_or_else(bad)?;
                    let t = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
                    if reader == Reader::TimestampTz {
                        t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
                    } else {
                        t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
                    }
                }
                (Reader::Date, J::Number(n)) => {
                    let days = n.as_i64().ok_or_else(bad)?;
                    let d = NaiveDate::from_ymd_opt(1970, 1, 1)
                        .and_then(|e| e.checked_add_signed(chrono::Duration::days(days)))
                        .ok_or_else(bad)?;
                    d.format("%Y-%m-%d").to_string()
                }
                (_, J::String(s)) => s.clone(),
                (_, J::Number(n)) => n.to_string(),
                (_, J::Bool(b)) => b.to_string(),
                _ => return Err(bad()),
            })
        })
        .collect()
}

fn cursor_of(plan: &Plan, row: &Row) -> Result<Cursor, SourceError> {
    plan.cursor
        .iter()
        .map(|i| {
            read(plan.readers[*i], row, *i)
                .map(|v| v.to_json())
                .map_err(|e| {
                    SourceError::Read(format!(
                        "cursor column `{}`: {e}",
                        plan.schema.columns[*i].name
                    ))
                })
        })
        .collect()
}

fn read(reader: Reader, row: &Row, i: usize) -> Result<Value, tokio_postgres::Error> {
    Ok(match reader {
        Reader::Bool => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(Value::Null, Value::Boolean),
        Reader::I16 => row
            .try_get::<_, Option<i16>>(i)?
            .map_or(Value::Null, |v| Value::Int(i32::from(v))),
        Reader::I32 => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(Value::Null, Value::Int),
        Reader::I64 => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(Value::Null, Value::Long),
        Reader::F32 => row
            .try_get::<_, Option<f32>>(i)?
            .map_or(Value::Null, Value::Float),
        Reader::F64 => row
            .try_get::<_, Option<f64>>(i)?
            .map_or(Value::Null, Value::Double),
        Reader::Text => row
            .try_get::<_, Option<String>>(i)?
            .map_or(Value::Null, Value::String),
        Reader::Bytes => row
            .try_get::<_, Option<Vec<u8>>>(i)?
            .map_or(Value::Null, Value::Bytes),
        Reader::Date => row
            .try_get::<_, Option<NaiveDate>>(i)?
            .map_or(Value::Null, |d| {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
                Value::Date(i32::try_from((d - epoch).num_days()).unwrap_or(i32::MAX))
            }),
        Reader::Timestamp => row
            .try_get::<_, Option<NaiveDateTime>>(i)?
            .map_or(Value::Null, |t| {
                Value::Timestamp(t.and_utc().timestamp_micros())
            }),
        Reader::TimestampTz => row
            .try_get::<_, Option<DateTime<Utc>>>(i)?
            .map_or(Value::Null, |t| Value::Timestamp(t.timestamp_micros())),
    })
}

/// Rows to bus values; a row with a value that has no bus form becomes a reject naming the
/// column.
fn convert(plan: &Plan, rows: &[Row], position: &str, late: bool) -> (Vec<SourceRow>, Vec<Reject>) {
    let mut out = Vec::with_capacity(rows.len());
    let mut rejects = Vec::new();
    let xmin_col = plan.readers.len();
    for row in rows {
        let xmin: String = row.try_get(xmin_col).unwrap_or_default();
        let position = if late {
            format!("{position} xmin={xmin} late")
        } else {
            format!("{position} xmin={xmin}")
        };
        let mut values = Vec::with_capacity(plan.readers.len());
        let mut problem = None;
        for (i, reader) in plan.readers.iter().enumerate() {
            match read(*reader, row, i) {
                Ok(v) => values.push(v),
                Err(e) => {
                    let column = &plan.schema.columns[i];
                    problem.get_or_insert(format!(
                        "column `{}` ({}): the value has no Avro form: {e}",
                        column.name, column.source_type
                    ));
                    values.push(Value::Null);
                }
            }
        }
        match problem {
            None => out.push(SourceRow { values, position }),
            Some(reason) => rejects.push(reject_row(&plan.schema, values, &position, reason)),
        }
    }
    (out, rejects)
}

fn classify(e: &tokio_postgres::Error) -> SourceError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let message = format!("{} ({code})", db.message());
        return match code {
            "28P01" | "28000" => SourceError::Auth(message),
            "42P01" => SourceError::MissingTable(message),
            "3D000" => SourceError::Config(format!("database does not exist: {message}")),
            _ => SourceError::Read(message),
        };
    }
    if e.is_closed() {
        return SourceError::Unreachable(format!("connection closed: {e}"));
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    SourceError::Read(text)
}

#[async_trait]
impl Source for PostgresSource {
    async fn check(&mut self) -> Result<String, SourceError> {
        let endpoint = self.endpoint.clone();
        let client = self.client().await?;
        let row = client
            .query_one("SELECT version(), current_database()::text", &[])
            .await
            .map_err(|e| classify(&e))?;
        let version: String = row.get(0);
        let db: String = row.get(1);
        Ok(format!(
            "{} — database `{db}` at {endpoint}",
            version.split(" on ").next().unwrap_or(&version)
        ))
    }

    async fn discover(&mut self) -> Result<Vec<TableInfo>, SourceError> {
        let client = self.client().await?;
        let tables = client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(|e| classify(&e))?;
        let mut out = Vec::with_capacity(tables.len());
        for t in &tables {
            let (schema, table): (String, String) = (t.get(0), t.get(1));
            if let Some((described, key)) = describe(client, &schema, &table).await? {
                out.push(TableInfo {
                    name: format!("{schema}.{table}"),
                    columns: to_columns(&described),
                    primary_key: key,
                });
            }
        }
        Ok(out)
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
        let result = self.read_pass(stream, offset, batch_size, sink).await;
        if matches!(
            result,
            Err(SourceError::Unreachable(_) | SourceError::Read(_))
        ) {
            self.client = None;
        }
        result
    }

    async fn keys(&mut self, stream: &str) -> Result<Vec<String>, SourceError> {
        let plan = self.plan(stream).await?;
        let columns: Vec<String> = plan
            .schema
            .key
            .iter()
            .map(|i| format!("{}::text", quote(&plan.schema.columns[*i].name)))
            .collect();
        let sql = format!("SELECT {} FROM {}", columns.join(", "), plan.from);
        let client = self.client().await?;
        let rows = client.query(&sql, &[]).await.map_err(|e| classify(&e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let texts: Vec<Option<String>> = (0..columns.len()).map(|i| r.get(i)).collect();
                key_from_texts(&plan.schema, &texts)
            })
            .collect())
    }

    fn rewind_offset(&self, stream: &str, to: &RewindTo) -> Result<Option<J>, SourceError> {
        crate::watermark::rewind(self.spec(stream)?, to)
    }
}
