//! `ledgerbridge bench pipeline`: a legacy table (the customs declarations of the sample mall,
//! in SQLite) → connector → bus → mapping worker → anchoring worker → ledger, all in this
//! process on the embedded default (or Kafka with `--kafka`). Prints the peak rate (a backlog of
//! rows anchored as fast as possible), then a sustained phase at a fixed source rate with the
//! latency from extraction to a signed checkpoint, beside the limit: the bus's own pass-through
//! rate (publish then read back) for records of the same size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ledgerbridge_bus::Record;
use ledgerbridge_connectors::registry::SchemaRegistry;
use ledgerbridge_connectors::{ConnectorContext, Connectors};
use ledgerbridge_mappings::{Mappings, Pseudonymiser};
use ledgerbridge_store::Store;

use crate::anchor::{AnchorContext, AnchorStats};

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct PipelineBench {
    pub(crate) rows: u64,
    pub(crate) rate: u64,
    pub(crate) seconds: u64,
    pub(crate) kafka: Option<String>,
}

fn insert(db: &rusqlite::Connection, from: u64, n: u64) -> Result<()> {
    let tx = db.unchecked_transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO customs_declarations (declaration_no, order_no, hbl_no, consignee_nm, customs_id, declared_amt, gross_wt_kg, pkg_cnt, declare_ymd, clear_status_cd) \
             VALUES (?1, ?2, ?3, '김민준', ?4, '1,250,000', 1.5, 2, '20261102', '02')",
        )?;
        for i in from..from + n {
            stmt.execute(rusqlite::params![
                format!("D{i:011}"),
                format!("ORD{i:09}"),
                format!("H{i:011}"),
                format!("P{:012}", i % 50_000)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

async fn wait_for(ledger: &ledgerbridge_ledger::Ledger, size: u64, limit: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        let l = ledger.clone();
        let now = tokio::task::spawn_blocking(move || l.size("customs")).await??;
        if now >= size {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("only {now} of {size} events anchored after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the benchmark and prints the figures.
pub(crate) fn pipeline(opts: &PipelineBench) -> Result<()> {
    // The workers' own logs on stderr when RUST_LOG asks for them (e.g.
    // `ledgerbridge_bus=debug,ledgerbridge_ledger=debug,ledgerbridge_connectors=debug` for each
    // batch's times in every stage: docs/benchmarks.md).
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(opts))
}

async fn run(opts: &PipelineBench) -> Result<()> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let bus = crate::bench_connector::open_bus(opts.kafka.as_ref(), dir.path()).await?;
    let prefix = format!("benchp{}.", std::process::id());
    let store = Store::open_sqlite(&dir.path().join("store.sqlite3"))?;
    let registry = ledgerbridge_registry::Registry::new(store.clone());
    let ledger =
        ledgerbridge_ledger::Ledger::open(store.clone(), dir.path().join("keys"), "bench")?;
    ledger.ensure_channel("customs")?;

    // The legacy source.
    let source = dir.path().join("legacy.db");
    let db = rusqlite::Connection::open(&source)?;
    db.execute_batch("PRAGMA journal_mode = WAL;")?;
    db.execute_batch(
        ledgerbridge_samples::schema::schema(
            ledgerbridge_samples::schema::Dialect::Sqlite,
            ledgerbridge_samples::model::Domain::Customs,
        )
        .context("the customs sample schema")?,
    )?;
    let loaded = Instant::now();
    insert(&db, 0, opts.rows)?;
    println!(
        "source: {} rows in {:.1} s",
        opts.rows,
        loaded.elapsed().as_secs_f64()
    );

    let spec = ledgerbridge_mappings::SAMPLE_SPECS
        .iter()
        .find(|(f, _)| f.contains("customs_declarations"))
        .context("the customs declaration mapping")?;
    let mappings = Arc::new(
        Mappings::open(
            store.clone(),
            Arc::clone(&bus),
            registry.clone(),
            &prefix,
            Pseudonymiser::new(b"bench"),
            &[*spec],
            "bench",
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let toml = format!(
        "[[connectors]]\nname = \"sample-mall\"\ntype = \"sqlite\"\npoll_interval = \"100ms\"\nbatch_size = 5000\n\
         [connectors.database]\nurl = \"sqlite:{}\"\n[[connectors.database.tables]]\nname = \"customs_declarations\"\n",
        source.display()
    );
    let config = ledgerbridge_config::load_str(&toml, "bench")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .config;
    let stats = Arc::new(AnchorStats::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);

    // Peak: the backlog through every stage.
    let started = Instant::now();
    // As in a node: the connector and the mapping worker below the anchoring worker's priority.
    let upstream = crate::lanes::Lane::lowered("upstream", crate::lanes::UPSTREAM_NICE)?;
    let connectors = {
        let _on_lane = upstream.handle().enter();
        Connectors::start(
            ConnectorContext {
                bus: Arc::clone(&bus),
                store: store.clone(),
                registry: SchemaRegistry::Local(registry.clone()),
                topic_prefix: prefix.clone(),
            },
            &config.connectors,
        )
    };
    let mapper = upstream.spawn(ledgerbridge_mappings::worker::run(
        mappings.worker_context(),
        stopped.clone(),
    ));
    let anchor = tokio::spawn(crate::anchor::run(
        AnchorContext {
            bus: Arc::clone(&bus),
            ledger: ledger.clone(),
            mappings: Arc::clone(&mappings),
            registry: registry.clone(),
            store: store.clone(),
            prefix: prefix.clone(),
            stats: Arc::clone(&stats),
        },
        stopped,
    ));
    wait_for(&ledger, opts.rows, Duration::from_secs(600)).await?;
    let peak = opts.rows as f64 / started.elapsed().as_secs_f64();
    let peak_latency = stats.latency();
    stats.reset_latency();

    // Sustained: a fixed source rate, batches every 100 ms.
    let per_tick = (opts.rate / 10).max(1);
    let ticks = opts.seconds * 10;
    let mut next = opts.rows;
    let started = Instant::now();
    for t in 0..ticks {
        insert(&db, next, per_tick)?;
        next += per_tick;
        let due = started + Duration::from_millis(100 * (t + 1));
        tokio::time::sleep(due.saturating_duration_since(Instant::now())).await;
    }
    let offered = (next - opts.rows) as f64 / started.elapsed().as_secs_f64();
    wait_for(&ledger, next, Duration::from_secs(600)).await?;
    let sustained = (next - opts.rows) as f64 / started.elapsed().as_secs_f64();
    let sustained_latency = stats.latency();
    let _ = stop.send(true);
    connectors.shutdown().await;
    let _ = mapper.await;
    let _ = anchor.await;
    upstream.shutdown(Duration::from_secs(5)).await;

    // The limit: the same bus passing records of the raw records' size through (publish, read).
    let raw_topic = format!("{prefix}raw.sample-mall");
    let sample = bus.read(&raw_topic, 0, 0, 100).await?;
    let size = sample.iter().map(|d| d.record.value.len()).sum::<usize>() / sample.len().max(1);
    let n = opts.rows.min(200_000);
    let topic = format!("{prefix}passthrough");
    let limit_started = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch = (n - sent).min(5000);
        let records = (0..batch)
            .map(|i| Record::new(Some((sent + i).to_string().into_bytes()), vec![b'x'; size]))
            .collect();
        bus.publish(&topic, records).await?;
        sent += batch;
    }
    // Read back as the workers do: a consumer group polling.
    let mut consumer = bus
        .subscribe(
            &format!("{prefix}passthrough"),
            std::slice::from_ref(&topic),
        )
        .await?;
    let mut read = 0u64;
    while read < n {
        read += consumer
            .poll(10_000, Duration::from_millis(200))
            .await?
            .len() as u64;
    }
    let limit = n as f64 / limit_started.elapsed().as_secs_f64();

    let ms =
        |l: Option<(i64, i64)>| l.map_or_else(|| "–".to_owned(), |(a, b)| format!("{a} / {b} ms"));
    println!(
        "\npipeline benchmark: customs declarations, SQLite source → {} bus → mapping → ledger (`customs`), one process\n",
        bus.backend()
    );
    println!(
        "{:<42} {:>12} {:>34}",
        "", "rows/s", "extraction→checkpoint p50 / p99"
    );
    println!(
        "{:<42} {:>12.0} {:>34}",
        format!("peak: backlog of {} rows", opts.rows),
        peak,
        ms(peak_latency)
    );
    println!(
        "{:<42} {:>12.0} {:>34}",
        format!(
            "sustained: {offered:.0} rows/s offered for {} s",
            opts.seconds
        ),
        sustained,
        ms(sustained_latency)
    );
    println!(
        "{:<42} {:>12.0}",
        "limit: bus pass-through (publish + consume)", limit
    );
    println!(
        "\nthe latency runs from the connector's read of the row (a row waits up to the 100 ms poll interval before it) to the signed checkpoint covering it"
    );
    println!(
        "targets (issue 6): sustained 10,000 rows/s with source→checkpoint p99 < 2 s; peak ≥ 50,000 rows/s on the embedded default"
    );
    Ok(())
}
