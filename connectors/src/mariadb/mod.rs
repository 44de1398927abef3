//! The MariaDB/MySQL source (mysql_async).
//!
//! A pass reads a table in chunks of `batch_size` rows by cursor (keyset pagination; the first
//! pass is the initial snapshot, later ones are incremental). Each chunk is one short `READ
//! COMMITTED` transaction reading with `LOCK IN SHARE MODE`: InnoDB makes such a read wait for a
//! transaction that still holds a row in the range instead of skipping it, so a row inserted with
//! a lower auto-increment key or timestamp by a transaction that commits late is read once it
//! commits, never passed over (see [`crate::watermark`]). A transaction holding a row for longer
//! than `innodb_lock_wait_timeout` makes the pass fail with that reason; it is retried.
//!
//! Types travel natively where Avro has them; `DECIMAL` and `BIGINT UNSIGNED` as exact text;
//! `TINYINT(1)` as boolean; text columns must be valid UTF-8 on the connection (utf8mb4). A zero
//! date (`0000-00-00`) has no Avro form and sends its row to the quarantine.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Datelike as _, NaiveDate, Timelike as _, Utc};
use ledgerbridge_config::connectors::{ConnectorConfig, TableSpec};
use mysql_async::prelude::Queryable as _;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Row, Value as My};
use serde_json::Value as J;

use crate::runtime::RewindTo;
use crate::table::{KeyAndCursor, key_and_cursor, key_from_texts, reject_row};
use crate::watermark::{Cursor, TableOffset};
use crate::{
    Batch, Column, ColumnType, Reject, Sink, Source, SourceError, SourceRow, TableInfo,
    TableSchema, Value,
};

/// A MariaDB/MySQL table source.
pub struct MariadbSource {
    opts: Opts,
    database: Option<String>,
    endpoint: String,
    tables: Vec<TableSpec>,
    conn: Option<Conn>,
}

impl std::fmt::Debug for MariadbSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariadbSource")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

struct Plan {
    schema: Arc<TableSchema>,
    kinds: Vec<ColumnType>,
    select: String,
    from: String,
    cursor: Vec<usize>,
    cursor_names: Vec<String>,
}

impl MariadbSource {
    /// Builds the source from a `mariadb` connector's configuration.
    ///
    /// # Errors
    /// No `database` table, a URL mysql_async cannot read, or an unresolvable password.
    pub fn new(config: &ConnectorConfig) -> Result<Self, SourceError> {
        let db = config.database.as_ref().ok_or_else(|| {
            SourceError::Config("a `mariadb` connector needs a `database` table".into())
        })?;
        let url = db.url.replacen("mariadb://", "mysql://", 1);
        let opts =
            Opts::from_url(&url).map_err(|e| SourceError::Config(format!("database.url: {e}")))?;
        let mut builder = OptsBuilder::from_opts(opts).prefer_socket(false);
        if let Some(secret) = &db.password {
            let password = secret
                .resolve()
                .map_err(|e| SourceError::Config(format!("database.password: {e}")))?;
            builder = builder.pass(Some(password));
        }
        let opts = Opts::from(builder);
        Ok(Self {
            database: opts.db_name().map(str::to_owned),
            opts,
            endpoint: ledgerbridge_store::redact_url(&db.url),
            tables: db.tables.clone(),
            conn: None,
        })
    }

    async fn conn(&mut self) -> Result<&mut Conn, SourceError> {
        if self.conn.is_none() {
            let mut conn = Conn::new(self.opts.clone())
                .await
                .map_err(|e| match classify(&e) {
                    SourceError::Read(m) => {
                        SourceError::Unreachable(format!("{}: {m}", self.endpoint))
                    }
                    other => other,
                })?;
            for statement in [
                "SET NAMES utf8mb4",
                "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            ] {
                conn.query_drop(statement).await.map_err(|e| classify(&e))?;
            }
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| SourceError::Unreachable("no connection".into()))
    }

    fn spec(&self, stream: &str) -> Result<&TableSpec, SourceError> {
        self.tables
            .iter()
            .find(|t| t.name == stream)
            .ok_or_else(|| SourceError::Config(format!("no table `{stream}` in this connector")))
    }

    fn split<'a>(&'a self, name: &'a str) -> Result<(&'a str, &'a str), SourceError> {
        match name.split_once('.') {
            Some((d, t)) => Ok((d, t)),
            None => self.database.as_deref().map(|d| (d, name)).ok_or_else(|| {
                SourceError::Config(format!(
                    "table `{name}`: name its database (`db.{name}`) or put one in the URL"
                ))
            }),
        }
    }

    async fn plan(&mut self, stream: &str) -> Result<Plan, SourceError> {
        let spec = self.spec(stream)?.clone();
        let (database, table) = self.split(&spec.name)?;
        let (database, table) = (database.to_owned(), table.to_owned());
        let conn = self.conn().await?;
        let (described, primary_key) = describe(conn, &database, &table)
            .await?
            .ok_or_else(|| SourceError::MissingTable(spec.name.clone()))?;
        build_plan(&spec, &database, &table, &described, &primary_key)
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
        let conn = self.conn().await?;
        loop {
            let mut params = Vec::new();
            let filter = match (&offset.hi, offset.from_micros) {
                (Some(hi), _) => format!(" WHERE {}", after(&plan, hi, &mut params)?),
                (None, Some(micros)) => {
                    params.push(timestamp_param(micros));
                    format!(" WHERE {} >= ?", plan.cursor_names[0])
                }
                (None, None) => String::new(),
            };
            let sql = format!(
                "SELECT {} FROM {}{filter} ORDER BY {} LIMIT {batch_size} LOCK IN SHARE MODE",
                plan.select,
                plan.from,
                plan.cursor_names.join(", ")
            );
            conn.query_drop("START TRANSACTION")
                .await
                .map_err(|e| classify(&e))?;
            let rows: Vec<Row> = conn
                .exec(sql, Params::Positional(params))
                .await
                .map_err(|e| classify(&e))?;
            let position: Option<String> = conn
                .query_first("SELECT @@GLOBAL.gtid_current_pos")
                .await
                .unwrap_or(None);
            conn.query_drop("COMMIT").await.map_err(|e| classify(&e))?;
            let count = rows.len();
            let Some(last) = rows.last() else { break };
            offset.hi = Some(cursor_of(&plan, last)?);
            offset.from_micros = None;
            let position = format!("gtid={}", position.unwrap_or_default());
            let (converted, rejects) = convert(&plan, rows, &position);
            sink.emit(Batch {
                schema: Arc::clone(&plan.schema),
                rows: converted,
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
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

struct Described {
    name: String,
    data_type: String,
    column_type: String,
    nullable: bool,
}

async fn describe(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Option<(Vec<Described>, Vec<String>)>, SourceError> {
    let columns: Vec<(String, String, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(|e| classify(&e))?;
    if columns.is_empty() {
        return Ok(None);
    }
    let key: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .map_err(|e| classify(&e))?;
    Ok(Some((
        columns
            .into_iter()
            .map(|(name, data_type, column_type, nullable)| Described {
                name,
                data_type: data_type.to_lowercase(),
                column_type: column_type.to_lowercase(),
                nullable: nullable == "YES",
            })
            .collect(),
        key,
    )))
}

/// The bus type of a column, and whether it is read through `CAST(… AS CHAR)`.
fn column_type(d: &Described) -> (ColumnType, bool) {
    let unsigned = d.column_type.contains("unsigned");
    match d.data_type.as_str() {
        "tinyint" if d.column_type.starts_with("tinyint(1)") => (ColumnType::Boolean, false),
        "tinyint" | "smallint" | "mediumint" | "year" => (ColumnType::Int, false),
        "int" | "integer" if unsigned => (ColumnType::Long, false),
        "int" | "integer" => (ColumnType::Int, false),
        "bigint" if unsigned => (ColumnType::Decimal, true),
        "bigint" => (ColumnType::Long, false),
        "float" => (ColumnType::Float, false),
        "double" | "real" => (ColumnType::Double, false),
        "decimal" | "numeric" => (ColumnType::Decimal, false),
        "date" => (ColumnType::Date, false),
        "datetime" | "timestamp" => (ColumnType::Timestamp, false),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "bit" => {
            (ColumnType::Bytes, false)
        }
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        | "json" => (ColumnType::String, false),
        _ => (ColumnType::String, true),
    }
}

fn to_columns(described: &[Described]) -> Vec<Column> {
    described
        .iter()
        .map(|d| Column {
            name: d.name.clone(),
            kind: column_type(d).0,
            nullable: d.nullable,
            source_type: d.column_type.clone(),
        })
        .collect()
}

fn build_plan(
    spec: &TableSpec,
    database: &str,
    table: &str,
    described: &[Described],
    primary_key: &[String],
) -> Result<Plan, SourceError> {
    let columns = to_columns(described);
    let KeyAndCursor { key, cursor } = key_and_cursor(spec, &columns, primary_key)?;
    let select = described
        .iter()
        .map(|d| {
            if column_type(d).1 {
                format!("CAST({} AS CHAR)", quote(&d.name))
            } else {
                quote(&d.name)
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    Ok(Plan {
        schema: Arc::new(TableSchema {
            stream: spec.name.clone(),
            columns,
            key,
        }),
        kinds: described.iter().map(|d| column_type(d).0).collect(),
        select,
        from: format!("{}.{}", quote(database), quote(table)),
        cursor_names: cursor.iter().map(|i| quote(&described[*i].name)).collect(),
        cursor,
    })
}

/// `(c1 > ? OR (c1 = ? AND c2 > ?))`: "cursor after", in a form InnoDB uses indexes for.
fn after(plan: &Plan, cursor: &Cursor, params: &mut Vec<My>) -> Result<String, SourceError> {
    if cursor.len() != plan.cursor.len() {
        return Err(SourceError::Config(format!(
            "the stored offset has {} cursor values but the table's cursor has {} columns: rewind the stream",
            cursor.len(),
            plan.cursor.len()
        )));
    }
    let values = cursor
        .iter()
        .zip(&plan.cursor)
        .map(|(v, col)| cursor_param(plan.kinds[*col], v))
        .collect::<Result<Vec<_>, _>>()?;
    let mut parts = Vec::new();
    for n in 0..values.len() {
        let mut terms = Vec::new();
        for (i, name) in plan.cursor_names.iter().enumerate().take(n) {
            terms.push(format!("{name} = ?"));
            params.push(values[i].clone());
        }
        terms.push(format!("{} > ?", plan.cursor_names[n]));
        params.push(values[n].clone());
        parts.push(format!("({})", terms.join(" AND ")));
    }
    Ok(format!("({})", parts.join(" OR ")))
}

fn timestamp_param(micros: i64) -> My {
    let t = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or_default();
    My::Date(
        u16::try_from(t.year()).unwrap_or(0),
        u8::try_from(t.month()).unwrap_or(0),
        u8::try_from(t.day()).unwrap_or(0),
        u8::try_from(t.hour()).unwrap_or(0),
        u8::try_from(t.minute()).unwrap_or(0),
        u8::try_from(t.second()).unwrap_or(0),
        t.timestamp_subsec_micros(),
    )
}

fn cursor_param(kind: ColumnType, v: &J) -> Result<My, SourceError> {
    let bad = || SourceError::Config(format!("stored cursor value {v} does not fit its column"));
    Ok(match (kind, v) {
        (ColumnType::Timestamp, J::Number(n)) => timestamp_param(n.as_i64().ok_or_else(bad)?),
        (ColumnType::Date, J::Number(n)) => {
            let days = n.as_i64().ok_or_else(bad)?;
            timestamp_param(days.checked_mul(86_400_000_000).ok_or_else(bad)?)
        }
        (_, J::Number(n)) => match n.as_i64() {
            Some(i) => My::Int(i),
            None => My::Double(n.as_f64().ok_or_else(bad)?),
        },
        (_, J::String(s)) => My::Bytes(s.clone().into_bytes()),
        (_, J::Bool(b)) => My::Int(i64::from(*b)),
        _ => return Err(bad()),
    })
}

fn cursor_of(plan: &Plan, row: &Row) -> Result<Cursor, SourceError> {
    plan.cursor
        .iter()
        .map(|i| {
            let raw = row.as_ref(*i).cloned().unwrap_or(My::NULL);
            convert_value(plan.kinds[*i], raw)
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

fn convert_value(kind: ColumnType, v: My) -> Result<Value, String> {
    let text = |b: Vec<u8>| String::from_utf8(b).map_err(|e| format!("not valid UTF-8: {e}"));
    Ok(match (kind, v) {
        (_, My::NULL) => Value::Null,
        (ColumnType::Boolean, My::Int(i)) => Value::Boolean(i != 0),
        (ColumnType::Boolean, My::UInt(i)) => Value::Boolean(i != 0),
        (ColumnType::Int, My::Int(i)) => {
            Value::Int(i32::try_from(i).map_err(|_| format!("{i} is out of range for int"))?)
        }
        (ColumnType::Int, My::UInt(i)) => {
            Value::Int(i32::try_from(i).map_err(|_| format!("{i} is out of range for int"))?)
        }
        (ColumnType::Long, My::Int(i)) => Value::Long(i),
        (ColumnType::Long, My::UInt(i)) => {
            Value::Long(i64::try_from(i).map_err(|_| format!("{i} is out of range for long"))?)
        }
        (ColumnType::Float, My::Float(f)) => Value::Float(f),
        (ColumnType::Double, My::Double(f)) => Value::Double(f),
        (ColumnType::Double, My::Float(f)) => Value::Double(f64::from(f)),
        (ColumnType::Decimal | ColumnType::String, My::Bytes(b)) => Value::String(text(b)?),
        (ColumnType::Decimal | ColumnType::String, My::Int(i)) => Value::String(i.to_string()),
        (ColumnType::Decimal | ColumnType::String, My::UInt(i)) => Value::String(i.to_string()),
        (ColumnType::Bytes, My::Bytes(b)) => Value::Bytes(b),
        (ColumnType::Date | ColumnType::Timestamp, My::Date(0, 0, 0, ..)) => {
            return Err("a zero date has no Avro form".into());
        }
        (ColumnType::Date, My::Date(y, m, d, ..)) => {
            let date = NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
                .ok_or_else(|| format!("{y:04}-{m:02}-{d:02} is not a calendar date"))?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            Value::Date(i32::try_from((date - epoch).num_days()).unwrap_or(i32::MAX))
        }
        (ColumnType::Timestamp, My::Date(y, m, d, h, mi, s, us)) => {
            let t = NaiveDate::from_ymd_opt(i32::from(y), u32::from(m), u32::from(d))
                .and_then(|date| {
                    date.and_hms_micro_opt(u32::from(h), u32::from(mi), u32::from(s), us)
                })
                .ok_or_else(|| {
                    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} is not a valid time")
                })?;
            Value::Timestamp(t.and_utc().timestamp_micros())
        }
        (kind, other) => return Err(format!("unexpected {other:?} for a {kind:?} column")),
    })
}

fn convert(plan: &Plan, rows: Vec<Row>, position: &str) -> (Vec<SourceRow>, Vec<Reject>) {
    let mut out = Vec::with_capacity(rows.len());
    let mut rejects = Vec::new();
    for row in rows {
        let mut values = Vec::with_capacity(plan.kinds.len());
        let mut problem = None;
        for (i, (kind, raw)) in plan.kinds.iter().zip(row.unwrap()).enumerate() {
            match convert_value(*kind, raw) {
                Ok(v) => values.push(v),
                Err(e) => {
                    let column = &plan.schema.columns[i];
                    problem.get_or_insert(format!(
                        "column `{}` ({}): {e}",
                        column.name, column.source_type
                    ));
                    values.push(Value::Null);
                }
            }
        }
        match problem {
            None => out.push(SourceRow {
                values,
                position: position.to_owned(),
            }),
            Some(reason) => rejects.push(reject_row(&plan.schema, values, position, reason)),
        }
    }
    (out, rejects)
}

fn classify(e: &mysql_async::Error) -> SourceError {
    match e {
        mysql_async::Error::Server(s) => {
            let message = format!("{} ({})", s.message, s.code);
            match s.code {
                1045 | 1044 | 1698 => SourceError::Auth(message),
                1146 => SourceError::MissingTable(message),
                1049 => SourceError::Config(format!("database does not exist: {message}")),
                1205 => SourceError::Read(format!(
                    "a source transaction held a row past the lock wait timeout: {message}"
                )),
                _ => SourceError::Read(message),
            }
        }
        mysql_async::Error::Io(io) => SourceError::Unreachable(io.to_string()),
        other => SourceError::Read(other.to_string()),
    }
}

#[async_trait]
impl Source for MariadbSource {
    async fn check(&mut self) -> Result<String, SourceError> {
        let endpoint = self.endpoint.clone();
        let conn = self.conn().await?;
        let version: Option<String> = conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| classify(&e))?;
        Ok(format!(
            "MariaDB/MySQL {} at {endpoint}",
            version.unwrap_or_default()
        ))
    }

    async fn discover(&mut self) -> Result<Vec<TableInfo>, SourceError> {
        let database = self.database.clone();
        let conn = self.conn().await?;
        let tables: Vec<(String, String)> = match &database {
            Some(db) => {
                conn.exec(
                    "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY 2",
                    (db,),
                )
                .await
            }
            None => {
                conn.query(
                    "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
                     WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN \
                     ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2",
                )
                .await
            }
        }
        .map_err(|e| classify(&e))?;
        let mut out = Vec::with_capacity(tables.len());
        for (db, table) in tables {
            if let Some((described, key)) = describe(conn, &db, &table).await? {
                out.push(TableInfo {
                    name: format!("{db}.{table}"),
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
        if result.is_err() {
            // A failed chunk may leave a transaction open: start clean next time.
            self.conn = None;
        }
        result
    }

    async fn keys(&mut self, stream: &str) -> Result<Vec<String>, SourceError> {
        let plan = self.plan(stream).await?;
        let columns: Vec<String> = plan
            .schema
            .key
            .iter()
            .map(|i| format!("CAST({} AS CHAR)", quote(&plan.schema.columns[*i].name)))
            .collect();
        let sql = format!("SELECT {} FROM {}", columns.join(", "), plan.from);
        let conn = self.conn().await?;
        let rows: Vec<Row> = conn.query(sql).await.map_err(|e| classify(&e))?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let texts: Vec<Option<String>> = r
                    .unwrap()
                    .into_iter()
                    .map(|v| match v {
                        My::NULL => None,
                        My::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                        other => Some(format!("{other:?}")),
                    })
                    .collect();
                key_from_texts(&plan.schema, &texts)
            })
            .collect())
    }

    fn rewind_offset(&self, stream: &str, to: &RewindTo) -> Result<Option<J>, SourceError> {
        crate::watermark::rewind(self.spec(stream)?, to)
    }
}
