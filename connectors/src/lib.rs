//! Connectors: legacy sources (PostgreSQL, MariaDB/MySQL, SQLite files, batch files) into the bus.
//!
//! A connector is a configuration ([`ledgerbridge_config::connectors::ConnectorConfig`]) plus a
//! [`Source`] built from it by type name ([`build_source`]). The [`runtime`] drives every source
//! the same way:
//!
//! 1. the source reads a chunk of rows after its stored offset (never the whole table);
//! 2. the runtime encodes them as Avro with Confluent framing (schema derived from the source
//!    columns, registered under `<topic>-<record name>`; a new nullable column is a compatible new
//!    version, an incompatible change stops the connector with the reason) and publishes them to
//!    `<prefix>raw.<connector>`, keyed by the source primary key;
//! 3. rows that cannot be represented go to the quarantine with their reason;
//! 4. only once the bus acknowledged the records as durable is the new offset written to the
//!    store. A process killed at any point resumes from the last offset written: at most one
//!    chunk is delivered twice, none is lost.
//!
//! Every record carries its provenance in the Avro `source` block: connector, table or file,
//! primary key, source position, extraction time.

pub mod avro;
pub mod files;
pub mod mariadb;
pub mod postgres;
pub mod registry;
pub mod runtime;
pub mod sqlite;
mod table;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod watermark;

use std::sync::Arc;

use async_trait::async_trait;
use ledgerbridge_config::connectors::{ConnectorConfig, ConnectorKind};
use serde::Serialize;

pub use runtime::{ConnectorContext, ConnectorStatus, Connectors, RewindTo, State};

/// How a value is typed on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Avro `boolean`.
    Boolean,
    /// Avro `int`.
    Int,
    /// Avro `long`.
    Long,
    /// Avro `float`.
    Float,
    /// Avro `double`.
    Double,
    /// Avro `string`.
    String,
    /// Avro `bytes`.
    Bytes,
    /// Avro `int` with logical type `date` (days since 1970-01-01).
    Date,
    /// Avro `long` with logical type `timestamp-micros` (UTC).
    Timestamp,
    /// An exact decimal number, as an Avro `string` (legacy numerics have no fixed scale).
    Decimal,
}

impl ColumnType {
    /// The Avro type (without the null branch).
    #[must_use]
    pub fn avro(self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Self::Boolean => json!("boolean"),
            Self::Int => json!("int"),
            Self::Long => json!("long"),
            Self::Float => json!("float"),
            Self::Double => json!("double"),
            Self::String | Self::Decimal => json!("string"),
            Self::Bytes => json!("bytes"),
            Self::Date => json!({"type": "int", "logicalType": "date"}),
            Self::Timestamp => json!({"type": "long", "logicalType": "timestamp-micros"}),
        }
    }
}

/// A column of a source table or file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
pub struct Column {
    /// The name in the source.
    pub name: String,
    /// How it travels on the bus.
    pub kind: ColumnType,
    /// Whether the source allows nulls (every bus field is nullable anyway, so that a column
    /// added later stays compatible).
    pub nullable: bool,
    /// The source's own type name, for discovery.
    pub source_type: String,
}

/// The shape of one stream (a table, or the records of a batch-file directory).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TableSchema {
    /// The stream name as configured (`public.orders`, `his.claims`, or the file directory).
    pub stream: String,
    /// Columns in source order.
    pub columns: Vec<Column>,
    /// Positions in `columns` of the primary key.
    pub key: Vec<usize>,
}

/// A value read from a source, already in its bus type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL or an empty optional field.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A 32-bit integer.
    Int(i32),
    /// A 64-bit integer.
    Long(i64),
    /// A 32-bit float.
    Float(f32),
    /// A 64-bit float.
    Double(f64),
    /// Text (also exact decimals).
    String(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
}

impl Value {
    /// What kind of value this is, for error messages.
    #[must_use]
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Boolean(_) => "a boolean",
            Self::Int(_) => "a 32-bit integer",
            Self::Long(_) => "a 64-bit integer",
            Self::Float(_) => "a 32-bit float",
            Self::Double(_) => "a 64-bit float",
            Self::String(_) => "text",
            Self::Bytes(_) => "bytes",
            Self::Date(_) => "a date",
            Self::Timestamp(_) => "a timestamp",
        }
    }

    /// The value as JSON, for keys, offsets, quarantine payloads and the API.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Self::Null => J::Null,
            Self::Boolean(b) => J::Bool(*b),
            Self::Int(i) => J::from(*i),
            Self::Long(i) | Self::Timestamp(i) => J::from(*i),
            Self::Float(f) => J::from(f64::from(*f)),
            Self::Double(f) => J::from(*f),
            Self::String(s) => J::String(s.clone()),
            Self::Bytes(b) => J::String(b.iter().map(|x| format!("{x:02x}")).collect()),
            Self::Date(d) => J::from(*d),
        }
    }
}

/// One row read from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    /// Values in the order of the stream's columns.
    pub values: Vec<Value>,
    /// Where in the source: the LSN or transaction, binlog position, or `file:line`.
    pub position: String,
}

/// A record that cannot go on, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Where in the source.
    pub position: String,
    /// Why, naming the column, field or line.
    pub reason: String,
    /// What was read, as JSON or the raw line.
    pub payload: String,
}

/// A chunk of a stream handed to the runtime, with the offset to store once it is durable.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The stream's shape when these rows were read.
    pub schema: Arc<TableSchema>,
    /// The rows.
    pub rows: Vec<SourceRow>,
    /// Records that cannot go on.
    pub rejects: Vec<Reject>,
    /// The offset after this chunk (opaque to the runtime, read back by the source).
    pub offset: serde_json::Value,
}

/// A table as discovery reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TableInfo {
    /// Qualified name (`schema.table` or `database.table`).
    pub name: String,
    /// Columns with their source types and how they would travel.
    pub columns: Vec<Column>,
    /// Primary-key columns.
    pub primary_key: Vec<String>,
}

/// Why a source failed. The runtime shows the message on the connector's status.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source cannot be reached (network, refused, timed out).
    #[error("cannot reach the source: {0}")]
    Unreachable(String),
    /// The source refused the credentials.
    #[error("the source refused the credentials: {0}")]
    Auth(String),
    /// A configured table does not exist.
    #[error("table `{0}` does not exist in the source (or is not visible to this user)")]
    MissingTable(String),
    /// The configuration does not fit the source (a column that does not exist, no key).
    #[error("{0}")]
    Config(String),
    /// A query or read failed.
    #[error("reading the source failed: {0}")]
    Read(String),
    /// The runtime stopped the pass (pause, stop) or failed downstream.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Why the runtime did not take a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The connector was asked to pause or stop: end the pass, nothing is lost.
    #[error("interrupted")]
    Interrupted,
    /// The batch could not be made durable; the source ends its pass and the runtime retries.
    #[error("{0}")]
    Failed(String),
    /// The source table changed in a way consumers cannot read: the connector stops.
    #[error("{0}")]
    Incompatible(String),
}

/// Where the runtime takes the chunks of a pass.
#[async_trait]
pub trait Sink: Send {
    /// Publishes `batch` durably, then hands its offset over to be stored (beside the pass; at
    /// the latest when the pass ends). Returns an error when the pass must end (the source
    /// returns it as it is).
    ///
    /// # Errors
    /// [`SinkError`].
    async fn emit(&mut self, batch: Batch) -> Result<(), SinkError>;
}

/// A legacy source, built from a connector's configuration.
#[async_trait]
pub trait Source: Send {
    /// Connects (when not connected) and answers with a one-line description of the source.
    ///
    /// # Errors
    /// Unreachable source or refused credentials.
    async fn check(&mut self) -> Result<String, SourceError>;

    /// The tables (or file layout) the source offers: columns, types, primary keys.
    ///
    /// # Errors
    /// As [`Source::check`], or a failing catalogue query.
    async fn discover(&mut self) -> Result<Vec<TableInfo>, SourceError>;

    /// The configured streams, in the order passes visit them.
    fn streams(&self) -> Vec<String>;

    /// Reads everything new in `stream` after `offset` (`None`: from the start, the initial
    /// snapshot), handing chunks of at most `batch_size` rows to `sink`.
    ///
    /// # Errors
    /// Any [`SourceError`]; the runtime records it and tries again later from the stored
    /// offset.
    async fn pass(
        &mut self,
        stream: &str,
        offset: Option<serde_json::Value>,
        batch_size: usize,
        sink: &mut dyn Sink,
    ) -> Result<(), SourceError>;

    /// The primary key (as the records' `source.key` carries it) of every row of `stream` now,
    /// for reconciliation against what was anchored.
    ///
    /// # Errors
    /// The source cannot be read, or the stream has no rows to list (batch files).
    async fn keys(&mut self, stream: &str) -> Result<Vec<String>, SourceError>;

    /// The offset that makes the next pass start at `to`.
    ///
    /// # Errors
    /// The stream cannot be rewound that way (a key given for a file directory, …).
    fn rewind_offset(
        &self,
        stream: &str,
        to: &RewindTo,
    ) -> Result<Option<serde_json::Value>, SourceError>;
}

/// Builds the source of a connector by its type name.
///
/// # Errors
/// The configuration lacks what the type needs, or a secret cannot be resolved.
pub fn build_source(config: &ConnectorConfig) -> Result<Box<dyn Source>, SourceError> {
    match config.kind {
        ConnectorKind::Postgres => Ok(Box::new(postgres::PostgresSource::new(config)?)),
        ConnectorKind::Mariadb => Ok(Box::new(mariadb::MariadbSource::new(config)?)),
        ConnectorKind::Sqlite => Ok(Box::new(sqlite::SqliteSource::new(config)?)),
        ConnectorKind::Files => Ok(Box::new(files::FilesSource::new(config)?)),
    }
}

/// Microseconds since the epoch, now.
#[must_use]
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
