//! Shared test support: throw-away source databases, a collecting sink, a runtime on the
//! embedded log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::types::Value as Avro;
use async_trait::async_trait;
use ledgerbridge_bus::{EmbeddedLog, EmbeddedLogOptions};
use ledgerbridge_config::connectors::ConnectorConfig;
use ledgerbridge_connectors::registry::SchemaRegistry;
use ledgerbridge_connectors::{
    Batch, ConnectorContext, ConnectorStatus, Connectors, Sink, SinkError, State,
};
use ledgerbridge_registry::Registry;
use ledgerbridge_store::testing::TestStore;

/// A connector configuration parsed from TOML the way the node reads it (so the tests also
/// exercise validation).
pub fn connector(toml: &str) -> ConnectorConfig {
    let loaded = ledgerbridge_config::load_str(toml, "test.toml")
        .unwrap_or_else(|e| panic!("test configuration: {e}"));
    loaded
        .config
        .connectors
        .into_iter()
        .next()
        .expect("one connector")
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "lb_src_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A PostgreSQL database for one test, dropped at the end.
pub struct PgSource {
    pub url: String,
    admin: String,
    name: String,
}

impl PgSource {
    pub async fn new(tag: &str) -> Self {
        let base = ledgerbridge_store::testing::pg_base();
        let admin = format!("{base}/postgres");
        let name = unique(tag);
        let client = connect_pg(&admin).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create source database");
        Self {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect_pg(&self.url).await
    }
}

pub async fn connect_pg(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} (scripts/services.sh starts it): {e}"));
    tokio::spawn(connection);
    client
}

impl Drop for PgSource {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok((c, conn)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = c
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A MariaDB database for one test, dropped at the end.
pub struct MyDb {
    pub url: String,
    base: String,
    pub name: String,
}

pub fn mariadb_base() -> String {
    std::env::var("LEDGERBRIDGE_TEST_MARIADB")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

impl MyDb {
    pub async fn new(tag: &str) -> Self {
        use mysql_async::prelude::Queryable as _;
        let base = mariadb_base();
        let name = unique(tag);
        let mut conn = mysql_async::Conn::from_url(&base)
            .await
            .unwrap_or_else(|e| panic!("MariaDB at {base} (scripts/services.sh starts it): {e}"));
        conn.query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
            .await
            .expect("create database");
        Self {
            url: format!("{base}/{name}"),
            base,
            name,
        }
    }

    pub async fn conn(&self) -> mysql_async::Conn {
        mysql_async::Conn::from_url(&self.url)
            .await
            .expect("MariaDB connection")
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                use mysql_async::prelude::Queryable as _;
                if let Ok(mut c) = mysql_async::Conn::from_url(&base).await {
                    let _ = c
                        .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
                        .await;
                    let _ = c.disconnect().await;
                }
            });
        })
        .join();
    }
}

/// A sink that keeps every batch; it can fail after a number of batches, as a crash would.
#[derive(Default)]
pub struct Collect {
    pub batches: Vec<Batch>,
    pub fail_after: Option<usize>,
}

#[async_trait]
impl Sink for Collect {
    async fn emit(&mut self, batch: Batch) -> Result<(), SinkError> {
        if self.fail_after.is_some_and(|n| self.batches.len() >= n) {
            return Err(SinkError::Failed("simulated crash".into()));
        }
        self.batches.push(batch);
        Ok(())
    }
}

impl Collect {
    /// Every row's values as JSON, in emission order.
    pub fn rows(&self) -> Vec<Vec<serde_json::Value>> {
        self.batches
            .iter()
            .flat_map(|b| {
                b.rows
                    .iter()
                    .map(|r| r.values.iter().map(|v| v.to_json()).collect())
            })
            .collect()
    }

    /// The offset of the last batch.
    pub fn offset(&self) -> Option<serde_json::Value> {
        self.batches.last().map(|b| b.offset.clone())
    }
}

/// A node's connector runtime on the embedded log, an SQLite store and the node's registry.
pub struct Node {
    pub ctx: ConnectorContext,
    pub store: TestStore,
    pub registry: Registry,
    _dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = EmbeddedLog::open(
            dir.path().join("log"),
            EmbeddedLogOptions {
                segment_bytes: 64 * 1024 * 1024,
                fsync: false,
            },
        )
        .expect("embedded log");
        let store = TestStore::sqlite();
        let registry = Registry::new(store.store.clone());
        let ctx = ConnectorContext {
            bus: Arc::new(log),
            store: store.store.clone(),
            registry: SchemaRegistry::Local(registry.clone()),
            topic_prefix: String::new(),
        };
        Self {
            ctx,
            store,
            registry,
            _dir: dir,
        }
    }

    /// Every record of a connector's raw topic, decoded through the registry: (key, source
    /// block, row fields).
    pub async fn raw_records(
        &self,
        connector: &str,
    ) -> Vec<(String, Vec<(String, Avro)>, Vec<(String, Avro)>)> {
        let topic = self.ctx.raw_topic(connector);
        let end = self.ctx.bus.end_offset(&topic, 0).await.expect("end");
        let mut out = Vec::new();
        let mut from = 0;
        while from < end {
            let records = self
                .ctx
                .bus
                .read(&topic, 0, from, 10_000)
                .await
                .expect("read");
            from += records.len() as u64;
            for d in records {
                let v = &d.record.value;
                assert_eq!(v[0], 0, "Confluent magic byte");
                let id = u32::from_be_bytes([v[1], v[2], v[3], v[4]]);
                let text = self.registry.schema(i64::from(id)).expect("schema by id");
                let schema = apache_avro::Schema::parse_str(&text).expect("schema");
                let Avro::Record(fields) =
                    apache_avro::from_avro_datum(&schema, &mut &v[5..], None).expect("datum")
                else {
                    panic!("not a record")
                };
                let mut it = fields.into_iter();
                let (Some((_, Avro::Record(source))), Some((_, Avro::Record(row)))) =
                    (it.next(), it.next())
                else {
                    panic!("source and row expected")
                };
                let key = String::from_utf8(d.record.key.clone().expect("key")).expect("utf-8 key");
                out.push((key, source, row));
            }
        }
        out
    }
}

/// Waits until `f` holds for the connector's status (or panics with the last status).
pub async fn wait_status(
    connectors: &Connectors,
    name: &str,
    what: &str,
    f: impl Fn(&ConnectorStatus) -> bool,
) -> ConnectorStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = connectors.status(name).expect("status");
        if f(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "waiting for {what}: {status:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Idle (caught up) after at least `rows` rows.
pub async fn wait_rows(connectors: &Connectors, name: &str, rows: u64) -> ConnectorStatus {
    wait_status(connectors, name, &format!("{rows} rows"), |s| {
        s.rows_total >= rows && s.state == State::Idle
    })
    .await
}
