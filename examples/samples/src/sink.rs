//! Writing rows to the targets: PostgreSQL, MariaDB, SQLite, or a directory of manifest files.
//!
//! Each batch of one domain is written in one transaction per database: inserts grouped per
//! table into multi-row `INSERT ... RETURNING id, <business key>` statements (so that labels
//! get real primary keys), then the updates in order. Manifest records go to a new file, written
//! under a temporary name, synced and renamed, so a reader never sees half a file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use mysql_async::prelude::Queryable;

use crate::Error;
use crate::labels::Written;
use crate::manifest;
use crate::model::{Domain, MANIFEST_TABLE, Op, Row, RowRef, System, Value, table_spec};
use crate::schema::{self, Dialect};

/// Rows per INSERT statement.
const ROWS_PER_STATEMENT: usize = 500;

/// Where rows go, parsed from `--target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `postgres://...` or `postgresql://...`.
    Postgres(String),
    /// `mysql://...` or `mariadb://...` (must name a database).
    MariaDb(String),
    /// `sqlite:PATH`.
    Sqlite(PathBuf),
    /// A directory for manifest files.
    Directory(PathBuf),
}

impl Target {
    /// Parse a `--target` value.
    ///
    /// # Errors
    /// An unknown URL scheme, or a MariaDB URL without a database.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Target {
            target: redact(s),
            reason: reason.to_owned(),
        };
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self::Postgres(s.to_owned()))
        } else if let Some(rest) = s
            .strip_prefix("mysql://")
            .or_else(|| s.strip_prefix("mariadb://"))
        {
            let db = rest
                .split_once('/')
                .map(|(_, db)| db.split('?').next().unwrap_or(""))
                .unwrap_or("");
            if db.is_empty() {
                return Err(bad(
                    "a MariaDB URL must name the database: mysql://user@host:3306/DB",
                ));
            }
            Ok(Self::MariaDb(format!("mysql://{rest}")))
        } else if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("sqlite: needs a file path, e.g. sqlite:demo/legacy.db"));
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if s.contains("://") {
            Err(bad(
                "expected postgres://, mysql://, sqlite:PATH or a directory for manifest files",
            ))
        } else {
            Ok(Self::Directory(PathBuf::from(s)))
        }
    }

    /// Whether this target can hold `system`.
    #[must_use]
    pub fn holds(&self, system: System) -> bool {
        match self {
            Self::Postgres(_) => matches!(system, System::MallCustoms | System::LandRegistry),
            Self::MariaDb(_) => matches!(system, System::HospitalHis | System::CoreBanking),
            Self::Sqlite(_) => system != System::CourierManifests,
            Self::Directory(_) => system == System::CourierManifests,
        }
    }

    /// For messages: the URL without its password, or the path.
    #[must_use]
    pub fn display(&self) -> String {
        match self {
            Self::Postgres(u) | Self::MariaDb(u) => redact(u),
            Self::Sqlite(p) => format!("sqlite:{}", p.display()),
            Self::Directory(p) => p.display().to_string(),
        }
    }
}

/// A URL with any password replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// A connected target.
pub enum Sink {
    /// PostgreSQL.
    Postgres {
        /// For messages.
        name: String,
        /// The client.
        client: tokio_postgres::Client,
    },
    /// MariaDB.
    MariaDb {
        /// For messages.
        name: String,
        /// The connection.
        conn: mysql_async::Conn,
    },
    /// SQLite (diesel).
    Sqlite {
        /// For messages.
        name: String,
        /// The connection, shared with the blocking thread a batch is written on (diesel's
        /// SQLite calls block: on an async worker they would stall every task beside them).
        conn: std::sync::Arc<std::sync::Mutex<SqliteConnection>>,
    },
    /// Manifest files.
    Directory {
        /// The directory.
        dir: PathBuf,
        /// Sequence number of the next file.
        next_seq: u32,
    },
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Postgres { name, .. }
            | Self::MariaDb { name, .. }
            | Self::Sqlite { name, .. } => f.debug_struct("Sink").field("target", name).finish(),
            Self::Directory { dir, next_seq } => f
                .debug_struct("Sink")
                .field("dir", dir)
                .field("next_seq", next_seq)
                .finish(),
        }
    }
}

#[derive(diesel::QueryableByName)]
struct Returned {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pk: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    bkey: String,
}

#[derive(diesel::QueryableByName)]
struct MaxId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

impl Sink {
    /// Connect to (or open, or create) the target.
    ///
    /// # Errors
    /// The database cannot be reached or the directory created.
    pub async fn connect(target: &Target) -> Result<Self, Error> {
        let name = target.display();
        match target {
            Target::Postgres(url) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| Error::backend(&name, "connecting", e))?;
                let n = name.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(target = %n, error = %e, "PostgreSQL connection closed");
                    }
                });
                Ok(Self::Postgres { name, client })
            }
            Target::MariaDb(url) => {
                let opts = mysql_async::Opts::from_url(url)
                    .map_err(|e| Error::backend(&name, "parsing the URL", e))?;
                let mut conn = mysql_async::Conn::new(opts)
                    .await
                    .map_err(|e| Error::backend(&name, "connecting", e))?;
                conn.query_drop("SET NAMES utf8mb4")
                    .await
                    .map_err(|e| Error::backend(&name, "SET NAMES utf8mb4", e))?;
                Ok(Self::MariaDb { name, conn })
            }
            Target::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
                let url = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&url)
                    .map_err(|e| Error::backend(&name, "opening", e))?;
                conn.batch_execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000;")
                    .map_err(|e| Error::backend(&name, "setting WAL mode", e))?;
                Ok(Self::Sqlite {
                    name,
                    conn: std::sync::Arc::new(std::sync::Mutex::new(conn)),
                })
            }
            Target::Directory(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                let next_seq = next_manifest_seq(dir)?;
                Ok(Self::Directory {
                    dir: dir.clone(),
                    next_seq,
                })
            }
        }
    }

    fn dialect(&self) -> Option<Dialect> {
        match self {
            Self::Postgres { .. } => Some(Dialect::Postgres),
            Self::MariaDb { .. } => Some(Dialect::MariaDb),
            Self::Sqlite { .. } => Some(Dialect::Sqlite),
            Self::Directory { .. } => None,
        }
    }

    fn name(&self) -> String {
        match self {
            Self::Postgres { name, .. }
            | Self::MariaDb { name, .. }
            | Self::Sqlite { name, .. } => name.clone(),
            Self::Directory { dir, .. } => dir.display().to_string(),
        }
    }

    /// Apply the schema (and seed data) of `domain`, idempotently.
    ///
    /// # Errors
    /// A statement fails.
    pub async fn create_schema(&mut self, domain: Domain) -> Result<(), Error> {
        let Some(sql) = self.dialect().and_then(|d| schema::schema(d, domain)) else {
            return Ok(());
        };
        let name = self.name();
        for stmt in schema::statements(sql) {
            let what = || format!("applying the {domain} schema: {}", head(&stmt));
            match self {
                Self::Postgres { client, .. } => client
                    .batch_execute(&stmt)
                    .await
                    .map_err(|e| Error::backend(&name, what(), e))?,
                Self::MariaDb { conn, .. } => conn
                    .query_drop(&stmt)
                    .await
                    .map_err(|e| Error::backend(&name, what(), e))?,
                Self::Sqlite { conn, .. } => conn
                    .lock()
                    .map_err(|_| {
                        Error::backend(
                            &name,
                            what(),
                            std::io::Error::other("the connection was poisoned"),
                        )
                    })?
                    .batch_execute(&stmt)
                    .map_err(|e| Error::backend(&name, what(), e))?,
                Self::Directory { .. } => {}
            }
        }
        Ok(())
    }

    /// `MAX(id)` of `table` (0 when empty), to continue business keys after earlier runs.
    ///
    /// # Errors
    /// The table does not exist (run with `--create-schema`) or the query fails.
    pub async fn max_id(&mut self, table: &str) -> Result<i64, Error> {
        let name = self.name();
        let sql = format!("SELECT COALESCE(MAX(id), 0) AS n FROM {table}");
        let what =
            || format!("{sql} (does the table exist? apply the schema with --create-schema)");
        match self {
            Self::Postgres { client, .. } => {
                let row = client
                    .query_one(&sql, &[])
                    .await
                    .map_err(|e| Error::backend(&name, what(), e))?;
                row.try_get::<_, i64>(0)
                    .map_err(|e| Error::backend(&name, what(), e))
            }
            Self::MariaDb { conn, .. } => conn
                .query_first::<i64, _>(&sql)
                .await
                .map_err(|e| Error::backend(&name, what(), e))
                .map(Option::unwrap_or_default),
            Self::Sqlite { conn, .. } => {
                let mut conn = conn.lock().map_err(|_| {
                    Error::backend(
                        &name,
                        what(),
                        std::io::Error::other("the connection was poisoned"),
                    )
                })?;
                diesel::sql_query(&sql)
                    .get_result::<MaxId>(&mut *conn)
                    .map(|m| m.n)
                    .map_err(|e| Error::backend(&name, what(), e))
            }
            Self::Directory { .. } => Ok(0),
        }
    }

    /// Write `rows` in one transaction (one file for manifests) and say where each insert went.
    ///
    /// # Errors
    /// A statement or the commit fails; nothing of the batch is then written.
    pub async fn write(&mut self, rows: &[&Row]) -> Result<Written, Error> {
        let name = self.name();
        if let Self::Directory { dir, next_seq } = self {
            let written = write_manifest_file(dir, *next_seq, rows)?;
            *next_seq += 1;
            return Ok(written);
        }
        let dialect = self.dialect().unwrap_or(Dialect::Sqlite);
        let (inserts, updates) = plan(dialect, rows)?;
        let mut written = Written::new();
        let mut record = |table: &'static str, pk: i64, key: String| {
            written.insert(RowRef { table, key }, (table.to_owned(), pk));
        };
        match self {
            Self::Postgres { client, .. } => {
                let tx = client
                    .transaction()
                    .await
                    .map_err(|e| Error::backend(&name, "BEGIN", e))?;
                for (table, sql) in &inserts {
                    let msgs = tx
                        .simple_query(sql)
                        .await
                        .map_err(|e| Error::backend(&name, head(sql), e))?;
                    for m in msgs {
                        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                            let pk = r.get(0).and_then(|s| s.parse().ok()).unwrap_or(-1);
                            record(table, pk, r.get(1).unwrap_or("").to_owned());
                        }
                    }
                }
                for sql in &updates {
                    tx.batch_execute(sql)
                        .await
                        .map_err(|e| Error::backend(&name, head(sql), e))?;
                }
                tx.commit()
                    .await
                    .map_err(|e| Error::backend(&name, "COMMIT", e))?;
            }
            Self::MariaDb { conn, .. } => {
                let mut tx = conn
                    .start_transaction(mysql_async::TxOpts::default())
                    .await
                    .map_err(|e| Error::backend(&name, "BEGIN", e))?;
                for (table, sql) in &inserts {
                    let got: Vec<(i64, String)> = tx
                        .query(sql)
                        .await
                        .map_err(|e| Error::backend(&name, head(sql), e))?;
                    for (pk, key) in got {
                        record(table, pk, key);
                    }
                }
                for sql in &updates {
                    tx.query_drop(sql)
                        .await
                        .map_err(|e| Error::backend(&name, head(sql), e))?;
                }
                tx.commit()
                    .await
                    .map_err(|e| Error::backend(&name, "COMMIT", e))?;
            }
            Self::Sqlite { conn, .. } => {
                let conn = std::sync::Arc::clone(conn);
                let result = tokio::task::spawn_blocking(move || {
                    let mut conn = conn
                        .lock()
                        .map_err(|_| "the connection was poisoned".to_owned())?;
                    conn.transaction::<_, diesel::result::Error, _>(|c| {
                        let mut got = Vec::new();
                        for (table, sql) in &inserts {
                            for r in diesel::sql_query(sql).load::<Returned>(c)? {
                                got.push((*table, r.pk, r.bkey));
                            }
                        }
                        for sql in &updates {
                            c.batch_execute(sql)?;
                        }
                        Ok(got)
                    })
                    .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
                for (table, pk, key) in result.map_err(|e| {
                    Error::backend(&name, "writing a batch", std::io::Error::other(e))
                })? {
                    record(table, pk, key);
                }
            }
            Self::Directory { .. } => {}
        }
        Ok(written)
    }
}

/// The first 120 characters of a statement, for messages.
fn head(sql: &str) -> String {
    let mut s: String = sql.chars().take(120).collect();
    if s.len() < sql.len() {
        s.push_str("...");
    }
    s
}

/// A SQL literal. Strings double their quotes (and, for MariaDB, escape backslashes).
fn literal(dialect: Dialect, v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_owned(),
        Value::Int(n) => n.to_string(),
        Value::Hundredths(n) => {
            let sign = if *n < 0 { "-" } else { "" };
            format!(
                "{sign}{}.{:02}",
                n.unsigned_abs() / 100,
                n.unsigned_abs() % 100
            )
        }
        Value::Text(s) => {
            let mut s = s.replace('\'', "''");
            if dialect == Dialect::MariaDb {
                s = s.replace('\\', "\\\\");
            }
            format!("'{s}'")
        }
        Value::Ts(t) => format!("'{}'", t.format("%Y-%m-%d %H:%M:%S")),
    }
}

fn now_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "now()",
        Dialect::MariaDb => "CURRENT_TIMESTAMP(6)",
        Dialect::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    }
}

type Plan = (Vec<(&'static str, String)>, Vec<String>);

/// Inserts grouped per table (in order of first appearance), then updates in order.
fn plan(dialect: Dialect, rows: &[&Row]) -> Result<Plan, Error> {
    let mut order: Vec<&'static str> = Vec::new();
    let mut by_table: BTreeMap<&'static str, Vec<&Row>> = BTreeMap::new();
    let mut updates = Vec::new();
    for row in rows {
        let spec = table_spec(row.table)
            .ok_or_else(|| Error::Shape(format!("unknown table {}", row.table)))?;
        match &row.op {
            Op::Insert => {
                if !by_table.contains_key(row.table) {
                    order.push(row.table);
                }
                by_table.entry(row.table).or_default().push(row);
            }
            Op::Update { key } => {
                let mut sql = format!("UPDATE {} SET ", row.table);
                for (c, v) in &row.cols {
                    let _ = write!(sql, "{c} = {}, ", literal(dialect, v));
                }
                let _ = write!(
                    sql,
                    "updated_at = {} WHERE {} = {}",
                    now_sql(dialect),
                    spec.key,
                    literal(dialect, &Value::Text(key.clone()))
                );
                updates.push(sql);
            }
        }
    }
    let mut inserts = Vec::new();
    for table in order {
        let list = by_table.remove(table).unwrap_or_default();
        let key = table_spec(table).map_or("id", |t| t.key);
        for chunk in list.chunks(ROWS_PER_STATEMENT) {
            let Some(first) = chunk.first() else { continue };
            let cols: Vec<&str> = first.cols.iter().map(|(c, _)| *c).collect();
            let mut sql = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
            for (i, row) in chunk.iter().enumerate() {
                if row.cols.len() != cols.len()
                    || row.cols.iter().zip(&cols).any(|((c, _), d)| c != d)
                {
                    return Err(Error::Shape(format!(
                        "{table}: rows with different columns"
                    )));
                }
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push('(');
                for (j, (_, v)) in row.cols.iter().enumerate() {
                    if j > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&literal(dialect, v));
                }
                sql.push(')');
            }
            let _ = write!(sql, " RETURNING id, {key}");
            if dialect == Dialect::Sqlite {
                // diesel's QueryableByName reads columns by name
                sql.truncate(sql.len() - format!(" RETURNING id, {key}").len());
                let _ = write!(sql, " RETURNING id AS pk, {key} AS bkey");
            }
            inserts.push((table, sql));
        }
    }
    Ok((inserts, updates))
}

/// The manifest file name for a sequence number.
#[must_use]
pub fn manifest_file_name(seq: u32) -> String {
    format!("MF{seq:06}.txt")
}

fn next_manifest_seq(dir: &Path) -> Result<u32, Error> {
    let mut max = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix("MF")
            .and_then(|s| s.strip_suffix(".txt"))
            .and_then(|s| s.parse::<u32>().ok())
        {
            max = max.max(n);
        }
    }
    Ok(max + 1)
}

fn write_manifest_file(dir: &Path, seq: u32, rows: &[&Row]) -> Result<Written, Error> {
    let manifests: Vec<&Row> = rows
        .iter()
        .copied()
        .filter(|r| r.table == MANIFEST_TABLE)
        .collect();
    let mut written = Written::new();
    if manifests.is_empty() {
        return Ok(written);
    }
    let created = manifests
        .first()
        .map(|r| r.text("arrival_ymd").to_owned())
        .unwrap_or_default();
    let bytes = manifest::encode_file(seq, &created, &manifests)?;
    let name = manifest_file_name(seq);
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(&name);
    let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    let table = format!("{MANIFEST_TABLE}/{name}");
    for (i, row) in manifests.iter().enumerate() {
        // line 1 is the header
        let line = i64::try_from(i).unwrap_or(i64::MAX - 2) + 2;
        written.insert(
            RowRef {
                table: MANIFEST_TABLE,
                key: row.key().to_owned(),
            },
            (table.clone(), line),
        );
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("postgres://postgres@127.0.0.1/x").unwrap(),
            Target::Postgres("postgres://postgres@127.0.0.1/x".into())
        );
        assert_eq!(
            Target::parse("mariadb://root@127.0.0.1:3306/his").unwrap(),
            Target::MariaDb("mysql://root@127.0.0.1:3306/his".into())
        );
        assert!(Target::parse("mysql://root@127.0.0.1:3306").is_err());
        assert!(Target::parse("mysql://root@127.0.0.1:3306/").is_err());
        assert_eq!(
            Target::parse("sqlite:demo/legacy.db").unwrap(),
            Target::Sqlite("demo/legacy.db".into())
        );
        assert!(Target::parse("sqlite:").is_err());
        assert!(Target::parse("kafka://x").is_err());
        assert_eq!(
            Target::parse("out/manifests").unwrap(),
            Target::Directory("out/manifests".into())
        );
        let err = Target::parse("mysql://u:secret@h/")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn literals_escape_quotes() {
        let v = Value::Text("O'Brien \\ 김".into());
        assert_eq!(literal(Dialect::Postgres, &v), "'O''Brien \\ 김'");
        assert_eq!(literal(Dialect::MariaDb, &v), "'O''Brien \\\\ 김'");
        assert_eq!(
            literal(Dialect::Sqlite, &Value::Hundredths(12345)),
            "123.45"
        );
        assert_eq!(literal(Dialect::Sqlite, &Value::Hundredths(-5)), "-0.05");
        assert_eq!(literal(Dialect::Sqlite, &Value::Null), "NULL");
    }
}
