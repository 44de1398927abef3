//! Connectors: each pulls one legacy source (a PostgreSQL or MariaDB/MySQL database, or a
//! directory of batch files) into its raw topic `<prefix>raw.<name>`.
//!
//! These are the file format's types; the `ledgerbridge-connectors` crate runs them.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::secret::Secret;

/// One connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Unique name of the connector; its records go to the topic `<prefix>raw.<name>`. 1 to 63
    /// of a-z, 0-9, `-` and `_`, starting with a letter or digit.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub name: String,
    /// The kind of source: `postgres`, `mariadb` (also MySQL), `sqlite` or `files`.
    #[serde(rename = "type")]
    pub kind: ConnectorKind,
    /// Start the connector with the node. A disabled connector can still be tested, discovered
    /// and resumed through the API.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long to wait between two passes over the source when no `schedule` is given.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// A cron expression with seconds (`sec min hour day-of-month month day-of-week`, e.g.
    /// `0 0 2 * * *` for 02:00 every day) for batch windows; replaces `poll_interval`. Times are
    /// UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Rows read from the source and published together; the connector's memory is bounded by
    /// this many rows whatever the size of the source.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 100_000))]
    pub batch_size: u32,
    /// The database to read, for `postgres`, `mariadb` and `sqlite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSource>,
    /// The directory of batch files, for `files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FilesSource>,
}

/// Kinds of connector, by type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectorKind {
    // A PostgreSQL database (tokio-postgres).
    Postgres,
    // A MariaDB or MySQL database (mysql_async).
    Mariadb,
    // An SQLite file, opened read-only (the demo's embedded sample systems).
    Sqlite,
    // A directory where CSV or fixed-width files are dropped.
    Files,
}

impl ConnectorKind {
    /// The type name used in the configuration and the API.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mariadb => "mariadb",
            Self::Sqlite => "sqlite",
            Self::Files => "files",
        }
    }
}

/// A legacy database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSource {
    /// Connection URL without the password: `postgres://user@host:5432/database`,
    /// `mysql://user@host:3306/database` or `sqlite:/path/to/file.db`.
    #[schemars(length(min = 1))]
    pub url: String,
    /// The password, as a secret reference (`${ENV_VAR}` or `file:PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The tables to capture, each into the connector's raw topic.
    #[schemars(length(min = 1))]
    pub tables: Vec<TableSpec>,
    /// How long a source transaction may hold a key or timestamp before it writes its row. Rows
    /// that commit late with an older key or timestamp are picked up as long as this holds;
    /// longer values re-check more rows on each pass.
    #[serde(default = "default_late_commit_window")]
    pub late_commit_window: HumanDuration,
    /// How long to wait when connecting.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
}

/// One table of a legacy database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The table, optionally qualified by its schema (`public.orders`) or database (`his.claims`).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Primary-key columns; discovered from the table when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Vec<String>>,
    /// A column that only grows with new rows (an identity or auto-increment key). Default: the
    /// primary key when it is a single integer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incrementing_column: Option<String>,
    /// A column set to the current time on every insert and update, to capture updates too. With
    /// it, rows are read in (timestamp, key) order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_column: Option<String>,
}

/// A directory of batch files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilesSource {
    /// Directory watched for new files; processed files move to its `done/` subdirectory, files
    /// that could not be read to `failed/` with a `.reason` file beside them.
    pub dir: PathBuf,
    /// Which files to take: a file name pattern with `*` and `?` (e.g. `*.csv`).
    #[serde(default = "default_pattern")]
    pub pattern: String,
    /// `csv` or `fixed_width`.
    pub format: FileFormat,
    /// Character encoding of the files: any WHATWG label, e.g. `utf-8`, `euc-kr`, `cp949`,
    /// `shift_jis`, `windows-1252`.
    #[serde(default = "default_encoding")]
    pub encoding: String,
    /// Field separator of CSV files (one character).
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// Whether the first line of a CSV file names the columns.
    #[serde(default = "default_true")]
    pub header: bool,
    /// The columns: for `fixed_width`, every field with its position; for `csv`, the names and
    /// types (in file order) when there is no header line or to give types other than text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<FileColumn>,
    /// Columns forming each record's key; default: file name and line number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// Fixed-width files with several kinds of record (header, detail, trailer): only lines
    /// carrying one of these record types are records; the others are skipped and counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_type: Option<RecordType>,
}

/// Which lines of a fixed-width file are records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordType {
    /// First byte of the record-type field in the line (0-based).
    #[serde(default)]
    pub start: u32,
    /// The record types to keep, e.g. `["D"]`.
    #[schemars(length(min = 1))]
    pub keep: Vec<String>,
}

/// Formats of batch files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    // Comma-separated values (RFC 4180 quoting).
    Csv,
    // Fields at fixed byte positions, declared in `columns`.
    FixedWidth,
}

/// A column of a batch file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileColumn {
    /// Column name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Fixed-width files: first byte of the field in the line (0-based, in the file's encoding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u32>,
    /// Fixed-width files: length of the field in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// `string` (default), `long`, `double`, `boolean`, `decimal` (kept as text), `date`
    /// (`YYYYMMDD` or `YYYY-MM-DD`) or `timestamp` (RFC 3339 or `YYYY-MM-DD HH:MM:SS`).
    #[serde(default = "default_column_type", rename = "type")]
    pub kind: FileColumnType,
    /// Whether an empty field is allowed (read as null).
    #[serde(default = "default_true")]
    pub nullable: bool,
}

/// Value types of batch-file columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileColumnType {
    // Text (trimmed for fixed-width fields).
    String,
    // A 64-bit integer.
    Long,
    // A floating-point number.
    Double,
    // true/false, Y/N, 1/0.
    Boolean,
    // A decimal number kept as text (exact).
    Decimal,
    // A calendar date.
    Date,
    // A date and time.
    Timestamp,
}

fn default_true() -> bool {
    true
}

fn default_poll_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}

fn default_batch_size() -> u32 {
    5000
}

fn default_late_commit_window() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_pattern() -> String {
    "*".to_owned()
}

fn default_encoding() -> String {
    "utf-8".to_owned()
}

fn default_delimiter() -> String {
    ",".to_owned()
}

fn default_column_type() -> FileColumnType {
    FileColumnType::String
}
