//! `ledgerbridge bench connector`: a legacy PostgreSQL table moved by the connector into its raw
//! topic (snapshot, Avro encoding, publish, durable offsets), printed beside the limit: the bus's
//! own raw produce rate for records of the same sizes, with the same batching.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ledgerbridge_bus::{Bus, EmbeddedLog, EmbeddedLogOptions, KafkaBus, KafkaSettings, Record};
use ledgerbridge_connectors::registry::SchemaRegistry;
use ledgerbridge_connectors::{ConnectorContext, Connectors, State};
use ledgerbridge_store::Store;

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct ConnectorBench {
    pub(crate) rows: i64,
    pub(crate) batch: u32,
    pub(crate) postgres: String,
    pub(crate) kafka: Option<String>,
}

const DATABASE: &str = "lb_bench_connector";

async fn pg(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {}", ledgerbridge_store::redact_url(url)))?;
    tokio::spawn(connection);
    Ok(client)
}

/// The server part of `--postgres` with another database.
fn with_database(url: &str, database: &str) -> Result<String> {
    let mut u = url::Url::parse(url).context("--postgres")?;
    u.set_path(&format!("/{database}"));
    Ok(u.to_string())
}

/// Peak resident memory of this process, in MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

async fn load_source(opts: &ConnectorBench) -> Result<String> {
    let admin = pg(&opts.postgres).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await?;
    let url = with_database(&opts.postgres, DATABASE)?;
    let c = pg(&url).await?;
    let started = Instant::now();
    c.batch_execute(&format!(
        "CREATE TABLE orders (
            order_id bigserial PRIMARY KEY,
            order_no text NOT NULL,
            consignee text NOT NULL,
            address text,
            item_value numeric(14, 2) NOT NULL,
            status char(2) NOT NULL,
            ordered_on date NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO orders (order_no, consignee, address, item_value, status, ordered_on)
        SELECT 'ORD-' || lpad(g::text, 10, '0'), '수취인 ' || (g % 50000), '서울특별시 중구 세종대로 ' || (g % 997) || '길',
               (g % 100000) * 10.5, lpad((g % 7)::text, 2, '0'), date '2026-01-01' + (g % 300)::int
        FROM generate_series(1, {}) g;
        ANALYZE orders;",
        opts.rows
    ))
    .await
    .context("loading the source table")?;
    println!(
        "source: {} rows loaded into {DATABASE}.orders in {:.1} s",
        opts.rows,
        started.elapsed().as_secs_f64()
    );
    Ok(url)
}

/// Kafka when bootstrap servers are given, else an embedded log (fsync'd) in `dir`.
pub(crate) async fn open_bus(
    kafka: Option<&String>,
    dir: &std::path::Path,
) -> Result<Arc<dyn Bus>> {
    Ok(match kafka {
        Some(servers) => Arc::new(
            KafkaBus::connect(KafkaSettings {
                bootstrap_servers: servers.clone(),
                client_id: "ledgerbridge-bench".into(),
                properties: std::collections::BTreeMap::new(),
                timeout: Duration::from_secs(10),
                partitions: 1,
                replication: 1,
            })
            .await
            .with_context(|| format!("--kafka {servers}"))?,
        ),
        None => Arc::new(EmbeddedLog::open(
            dir.join("log"),
            EmbeddedLogOptions {
                segment_bytes: 256 * 1024 * 1024,
                fsync: true,
            },
        )?),
    })
}

/// Publishes `count` records of the given sizes in batches, as fast as the bus takes them.
async fn raw_produce_rate(
    bus: &dyn Bus,
    topic: &str,
    count: i64,
    batch: usize,
    key_len: usize,
    value_len: usize,
) -> Result<f64> {
    let started = Instant::now();
    let mut sent = 0;
    while sent < count {
        let n = usize::try_from((count - sent).min(batch as i64)).unwrap_or(batch);
        let records = (0..n)
            .map(|i| {
                let mut key = format!("{}", sent as usize + i).into_bytes();
                key.resize(key_len, b'0');
                Record::new(Some(key), vec![b'x'; value_len])
            })
            .collect();
        bus.publish(topic, records).await?;
        sent += n as i64;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Runs the benchmark and prints the figures beside the limit.
pub(crate) fn connector(opts: &ConnectorBench) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(opts))
}

async fn run(opts: &ConnectorBench) -> Result<()> {
    let url = load_source(opts).await?;
    let dir = tempfile::tempdir().context("temporary directory")?;
    let bus = open_bus(opts.kafka.as_ref(), dir.path()).await?;
    let store = Store::open_sqlite(&dir.path().join("bench.sqlite3"))?;
    let prefix = format!("bench{}.", std::process::id());
    let ctx = ConnectorContext {
        bus: Arc::clone(&bus),
        store: store.clone(),
        registry: SchemaRegistry::Local(ledgerbridge_registry::Registry::new(store)),
        topic_prefix: prefix.clone(),
    };
    let toml = format!(
        "[[connectors]]\nname = \"orders\"\ntype = \"postgres\"\nbatch_size = {}\npoll_interval = \"1h\"\n\
         [connectors.database]\nurl = \"{url}\"\n[[connectors.database.tables]]\nname = \"public.orders\"\n",
        opts.batch
    );
    let config = ledgerbridge_config::load_str(&toml, "bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .config;
    let rss_before = peak_rss_mib().unwrap_or(0.0);
    let started = Instant::now();
    let connectors = Connectors::start(ctx.clone(), &config.connectors);
    let rows = u64::try_from(opts.rows).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(rows);
    loop {
        let s = connectors.status("orders")?;
        bar.set_position(s.rows_total);
        if s.rows_total >= rows && s.state == State::Idle {
            break;
        }
        if matches!(s.state, State::Error | State::Stopped) {
            bail!("the connector failed: {:?}", s.last_error);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let rss_after = peak_rss_mib().unwrap_or(0.0);
    connectors.shutdown().await;
    let topic = ctx.raw_topic("orders");
    let sample = bus.read(&topic, 0, 0, 1000).await?;
    if sample.is_empty() {
        bail!("nothing reached {topic}");
    }
    let n = sample.len();
    let value_len = sample.iter().map(|d| d.record.value.len()).sum::<usize>() / n;
    let key_len = sample
        .iter()
        .map(|d| d.record.key.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
        / n;
    let rate = opts.rows as f64 / elapsed.as_secs_f64();
    let limit = raw_produce_rate(
        &*bus,
        &format!("{prefix}raw-limit"),
        opts.rows,
        opts.batch as usize,
        key_len,
        value_len,
    )
    .await?;
    println!(
        "\nconnector benchmark: PostgreSQL table of {} rows → {} ({}), chunks of {}, Avro records of ~{value_len} bytes\n",
        opts.rows,
        topic,
        bus.backend(),
        opts.batch
    );
    println!(
        "{:<34} {:>14} {:>30}",
        "", "rows/s", "limit: raw produce records/s"
    );
    println!(
        "{:<34} {:>14.0} {:>30.0}",
        "snapshot → raw topic (durable)", rate, limit
    );
    println!(
        "\nelapsed {:.1} s; peak memory {:.0} MiB (before the run {:.0} MiB; bounded by the chunk size, not the table)",
        elapsed.as_secs_f64(),
        rss_after,
        rss_before
    );
    println!(
        "target (issue 4): ≥ 100,000 rows/s PostgreSQL → Kafka on 2 cores (Debezium publishes ~45,000 msg/s on 4 vCPU)"
    );
    let admin = pg(&opts.postgres).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        .await?;
    Ok(())
}
