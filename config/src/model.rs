//! The configuration file's structure. Every field is documented here; the JSON Schema printed by
//! `ledgerbridge config schema` and the annotated examples in `examples/config/` come from these
//! comments and defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::secret::Secret;

/// The configuration of one ledgerbridge node (one organisation's installation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who this node is and where it keeps its local state.
    #[serde(default)]
    pub node: NodeConfig,
    /// The HTTP API (and the admin UI served beside it).
    #[serde(default)]
    pub api: ApiConfig,
    /// Where ledgerbridge keeps its own state: SQLite for a single site, PostgreSQL in production.
    #[serde(default)]
    pub store: StoreConfig,
    /// The event backbone: the embedded durable log, or Kafka.
    #[serde(default)]
    pub bus: BusConfig,
    /// The ledger: channels, checkpoint origins, signing keys.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// Diagnostic logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Legacy sources pulled into the bus, one `[[connectors]]` table each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connectors: Vec<crate::connectors::ConnectorConfig>,
    /// Where the Avro schemas of the raw and canonical topics are registered.
    #[serde(default)]
    pub registry: RegistryConfig,
    /// The sample legacy systems of the four reference domains (what the demo runs).
    #[serde(default)]
    pub samples: SamplesConfig,
    /// Mappings from legacy rows to canonical events.
    #[serde(default)]
    pub mappings: MappingsConfig,
    /// Alert anchoring and delivery, the integrity monitor and scheduled audits.
    #[serde(default)]
    pub monitoring: crate::monitoring::MonitoringConfig,
}

/// Mappings from legacy rows to canonical events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingsConfig {
    /// Mapping files deployed at start (idempotently), besides those deployed through the API.
    /// With `[samples]` enabled, the sample systems' mappings are deployed too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<PathBuf>,
    /// Key of the keyed pseudonyms (HMAC-SHA256), as a secret reference. Every node of a
    /// consortium must use the same key so that one person has one pseudonym. Default: a random
    /// key created in `<data_dir>/pseudonym.key` at first start (one node only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonym_key: Option<Secret>,
    /// Run the mapping worker (raw → canonical topics) in this process.
    #[serde(default = "default_true")]
    pub worker: bool,
}

impl Default for MappingsConfig {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            pseudonym_key: None,
            worker: true,
        }
    }
}

/// The sample legacy systems: SQLite equivalents of the hospital, mall and customs, land
/// registry and core banking databases plus a directory of fixed-width EUC-KR courier manifests,
/// all in `<data_dir>/legacy`; a load generator keeps writing realistic rows to them (with
/// labelled anomalies in `legacy/labels.jsonl`) and one connector per system reads them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplesConfig {
    /// Run the sample systems, their load generator and their connectors.
    #[serde(default)]
    pub enabled: bool,
    /// Rows per second the load generator writes, over all four domains; 0 runs the sample
    /// systems and their connectors without writing new rows.
    #[serde(default = "default_sample_rate")]
    #[schemars(range(min = 0.0, max = 100_000.0))]
    pub rate: f64,
    /// Fraction of generated business events that are labelled anomalies.
    #[serde(default = "default_anomaly_rate")]
    #[schemars(range(min = 0.0, max = 0.5))]
    pub anomaly_rate: f64,
    /// Seed of the generator (the same seed on an empty data directory gives the same data).
    #[serde(default = "default_sample_seed")]
    pub seed: u64,
}

fn default_sample_rate() -> f64 {
    5.0
}

fn default_anomaly_rate() -> f64 {
    0.02
}

fn default_sample_seed() -> u64 {
    1
}

impl Default for SamplesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            rate: default_sample_rate(),
            anomaly_rate: default_anomaly_rate(),
            seed: default_sample_seed(),
        }
    }
}

/// The Avro schema registry used by connectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// URL of an external Confluent-compatible schema registry (e.g. `http://registry:8081`).
    /// Default: the node's own registry, served under `/registry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "http-url"))]
    pub url: Option<String>,
    /// Bearer token for writing to that registry, as a secret reference (another ledgerbridge
    /// node's registry takes an admin token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

/// The ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// Channels this node keeps (one Merkle log each), created at start when missing; names of
    /// 1 to 32 characters from a-z, 0-9 and -.
    #[serde(default = "default_channels")]
    pub channels: Vec<String>,
    /// Prefix of each channel's checkpoint origin (`<prefix>/<channel>`), which is also the name
    /// of its signing key. Default: `ledgerbridge.local/<node.id>`. Choose it once: it is part of
    /// every signed checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^\s+]+$"))]
    pub origin_prefix: Option<String>,
    /// Directory of the signing keys (owner-only). Default: `keys` in the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_dir: Option<PathBuf>,
    /// Run the anchoring worker in this process: canonical events are appended to the channel
    /// their schema names, then their offsets committed.
    #[serde(default = "default_true")]
    pub anchor: bool,
}

fn default_channels() -> Vec<String> {
    ["claims", "customs", "land", "bank"]
        .map(str::to_owned)
        .to_vec()
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            channels: default_channels(),
            origin_prefix: None,
            keys_dir: None,
            anchor: true,
        }
    }
}

/// Identity and local state of this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Short name of the organisation that runs this node, used in ledger origins and as the
    /// Kafka client id (letters, digits, `-`, `_`, `.`).
    #[serde(default = "default_node_id")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"))]
    pub id: String,
    /// Directory for local state: the SQLite database, the embedded log, keys and the admin
    /// token file. Created when missing. Relative paths are taken from the working directory.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

fn default_node_id() -> String {
    "demo".to_owned()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("ledgerbridge-data")
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: default_node_id(),
            data_dir: default_data_dir(),
        }
    }
}

/// The HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address and port to listen on. Keep it on loopback unless a reverse proxy with TLS is in
    /// front.
    #[serde(default = "default_listen")]
    #[schemars(extend("format" = "socket-addr"))]
    pub listen: String,
    /// How long to wait for requests in flight when the node stops.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_shutdown_grace() -> HumanDuration {
    HumanDuration::from_secs(10)
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            shutdown_grace: default_shutdown_grace(),
        }
    }
}

/// Which database holds ledgerbridge's own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    // An SQLite file in the data directory (embedded default, single site).
    Sqlite,
    // A PostgreSQL database (production); needs `[store.postgres]`.
    Postgres,
}

/// The store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (default) or `postgres`.
    #[serde(default = "default_store_backend")]
    pub backend: StoreBackend,
    /// SQLite settings, used when `backend = "sqlite"`.
    #[serde(default)]
    pub sqlite: SqliteConfig,
    /// PostgreSQL settings, required when `backend = "postgres"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresConfig>,
}

fn default_store_backend() -> StoreBackend {
    StoreBackend::Sqlite
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: default_store_backend(),
            sqlite: SqliteConfig::default(),
            postgres: None,
        }
    }
}

/// SQLite store settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// Database file. Default: `ledgerbridge.sqlite3` in the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// PostgreSQL store settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL without the password, e.g. `postgres://ledgerbridge@db:5432/ledgerbridge`.
    /// Query parameters such as `sslmode=verify-full` are passed to libpq.
    #[schemars(extend("format" = "postgres-url"))]
    pub url: String,
    /// The password, as a secret reference. Leave out for trust or certificate authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Most connections the node opens to the database.
    #[serde(default = "default_pool_size")]
    #[schemars(range(min = 1, max = 512))]
    pub pool_size: u32,
    /// How long to wait for a connection before reporting the store unavailable.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
}

fn default_pool_size() -> u32 {
    8
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// Which event backbone carries records between the stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BusBackend {
    // The embedded durable log in the data directory (one process).
    Embedded,
    // A Kafka cluster (any Kafka-protocol broker); needs `[bus.kafka]`.
    Kafka,
}

/// The event backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// `embedded` (default) or `kafka`.
    #[serde(default = "default_bus_backend")]
    pub backend: BusBackend,
    /// Prefix put before every topic name (`raw.<connector>`, `canonical.<event type>`), so that
    /// several installations can share one cluster.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]*$"))]
    pub topic_prefix: String,
    /// Embedded log settings, used when `backend = "embedded"`.
    #[serde(default)]
    pub embedded: EmbeddedLogConfig,
    /// Kafka settings, required when `backend = "kafka"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaConfig>,
}

fn default_bus_backend() -> BusBackend {
    BusBackend::Embedded
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            backend: default_bus_backend(),
            topic_prefix: String::new(),
            embedded: EmbeddedLogConfig::default(),
            kafka: None,
        }
    }
}

/// The embedded durable log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedLogConfig {
    /// Directory of the log. Default: `log` in the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Size in bytes at which a topic's segment file is closed and a new one started.
    #[serde(default = "default_segment_bytes")]
    #[schemars(range(min = 4096))]
    pub segment_bytes: u64,
    /// Flush every append to disk before acknowledging it. Turning this off loses the last
    /// appends on a power failure; only for benchmarks.
    #[serde(default = "default_true")]
    pub fsync: bool,
}

fn default_segment_bytes() -> u64 {
    64 * 1024 * 1024
}

fn default_true() -> bool {
    true
}

impl Default for EmbeddedLogConfig {
    fn default() -> Self {
        Self {
            dir: None,
            segment_bytes: default_segment_bytes(),
            fsync: true,
        }
    }
}

/// Kafka settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers to bootstrap from.
    #[schemars(length(min = 1))]
    pub bootstrap_servers: String,
    /// `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[serde(default = "default_security_protocol")]
    pub security_protocol: KafkaSecurityProtocol,
    /// SASL mechanism when a `sasl_*` protocol is used: `PLAIN`, `SCRAM-SHA-256` or
    /// `SCRAM-SHA-512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_username: Option<String>,
    /// SASL password, as a secret reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_password: Option<Secret>,
    /// How long to wait for the brokers when starting or checking health.
    #[serde(default = "default_kafka_timeout")]
    pub timeout: HumanDuration,
    /// Partitions of the topics this node creates (more partitions, more parallel workers per
    /// consumer group; order is kept per key).
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 1024))]
    pub partitions: i32,
    /// Replication factor of the topics this node creates (3 on a production cluster).
    #[serde(default = "default_replication_factor")]
    #[schemars(range(min = 1, max = 16))]
    pub replication_factor: i32,
    /// Further librdkafka properties passed as they are (e.g. `"ssl.ca.location"`). Secrets do
    /// not belong here: use the typed fields.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

fn default_partitions() -> i32 {
    1
}

fn default_replication_factor() -> i32 {
    1
}

fn default_kafka_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// How the Kafka client talks to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KafkaSecurityProtocol {
    // No TLS, no authentication.
    Plaintext,
    // TLS without SASL.
    Ssl,
    // SASL without TLS.
    SaslPlaintext,
    // SASL over TLS.
    SaslSsl,
}

fn default_security_protocol() -> KafkaSecurityProtocol {
    KafkaSecurityProtocol::Plaintext
}

impl KafkaSecurityProtocol {
    /// The value librdkafka expects for `security.protocol`.
    #[must_use]
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    /// Whether SASL credentials are needed.
    #[must_use]
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

/// Diagnostic logging (the events themselves go to the bus and the ledger, not here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Filter in `tracing` syntax, e.g. `info` or `info,ledgerbridge_bus=debug`. The
    /// `RUST_LOG` environment variable wins when set.
    #[serde(default = "default_log_level")]
    pub filter: String,
    /// `text` for people, `json` for log collectors.
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
}

fn default_log_level() -> String {
    "info".to_owned()
}

fn default_log_format() -> LogFormat {
    LogFormat::Text
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: default_log_level(),
            format: default_log_format(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    // Human-readable lines.
    Text,
    // One JSON object per line.
    Json,
}

impl Config {
    /// The SQLite database file, after applying the data-directory default.
    #[must_use]
    pub fn sqlite_path(&self) -> PathBuf {
        self.store
            .sqlite
            .path
            .clone()
            .unwrap_or_else(|| self.node.data_dir.join("ledgerbridge.sqlite3"))
    }

    /// The embedded log directory, after applying the data-directory default.
    #[must_use]
    pub fn embedded_log_dir(&self) -> PathBuf {
        self.bus
            .embedded
            .dir
            .clone()
            .unwrap_or_else(|| self.node.data_dir.join("log"))
    }

    /// The ledger's checkpoint origin prefix, after applying the node-id default.
    #[must_use]
    pub fn ledger_origin_prefix(&self) -> String {
        self.ledger
            .origin_prefix
            .clone()
            .unwrap_or_else(|| format!("ledgerbridge.local/{}", self.node.id))
    }

    /// The ledger's keys directory, after applying the data-directory default.
    #[must_use]
    pub fn ledger_keys_dir(&self) -> PathBuf {
        self.ledger
            .keys_dir
            .clone()
            .unwrap_or_else(|| self.node.data_dir.join("keys"))
    }

    /// The file holding the admin token created on first start.
    #[must_use]
    pub fn admin_token_path(&self) -> PathBuf {
        self.node.data_dir.join("admin-token")
    }
}
