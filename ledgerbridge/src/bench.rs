//! `ledgerbridge bench ledger`: append throughput, append→checkpoint latency and proof
//! generation, each printed beside the limit of this machine (the raw insert rate of the same rows
//! into the same database with the same batching, and the SHA-256 rate).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use diesel::prelude::*;
use ledgerbridge_ledger::{Ledger, NewEntry};
use ledgerbridge_store::{AnyConnection, Store};

diesel::table! {
    bench_raw_entries (channel, idx) {
        channel -> Text,
        idx -> BigInt,
        event_id -> Text,
        event_key -> BigInt,
        leaf_data -> Binary,
        subject -> Text,
        subject_key -> BigInt,
        nonce -> Nullable<Binary>,
        ciphertext -> Nullable<Binary>,
    }
}

#[derive(Insertable)]
#[diesel(table_name = bench_raw_entries)]
#[diesel(treat_none_as_default_value = false)]
struct RawRow<'a> {
    channel: &'a str,
    idx: i64,
    event_id: String,
    event_key: i64,
    leaf_data: &'a [u8],
    subject: String,
    subject_key: i64,
    nonce: Option<&'a [u8]>,
    ciphertext: Option<&'a [u8]>,
}

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct LedgerBench {
    pub(crate) entries: u64,
    pub(crate) batch: usize,
    pub(crate) postgres: Option<String>,
    pub(crate) proofs: usize,
}

struct Row {
    backend: &'static str,
    raw_rate: f64,
    append_rate: f64,
    batch_p50: Duration,
    batch_p99: Duration,
    proof_p50: Duration,
    proof_p99: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn entry(i: u64) -> NewEntry {
    NewEntry {
        event_id: format!("bench:claims:{i:012}"),
        event_type: "claim".into(),
        connector: "his-mariadb".into(),
        source_position: format!("mysql-bin.000042:{}", 4_000 + i * 311),
        mapping_version: "his-claims@3".into(),
        subject: Some(format!("pt-{:06x}", i % 50_000)),
        payload: format!(
            "{{\"claim_no\":\"C-{i:010}\",\"hospital\":\"hospital-a\",\"procedure\":\"D2711\",\"amount_krw\":{},\"treated_on\":\"2026-11-02\"}}",
            100_000 + i % 900_000
        )
        .into_bytes(),
    }
}

fn sha256_rate() -> f64 {
    let data = vec![0x5au8; 300];
    let n = 300_000u32;
    let start = Instant::now();
    let mut acc = 0u8;
    for _ in 0..n {
        acc ^= ledgerbridge_ledger_core::leaf_hash(&data)[0];
    }
    std::hint::black_box(acc);
    f64::from(n) / start.elapsed().as_secs_f64()
}

/// Writes rows shaped like the ledger's entries (same sizes, same table layout and indexes, same
/// batching, one transaction per batch, the same method: binary COPY on PostgreSQL, multi-row
/// INSERT on SQLite) with nothing else: no hashing, no tiles, no encryption, no signing.
fn raw_insert_rate(store: &Store, opts: &LedgerBench) -> Result<f64> {
    let mut pooled = store.conn()?;
    let conn: &mut AnyConnection = &mut pooled;
    let postgres = store.backend() == "postgres";
    let blob = if postgres { "BYTEA" } else { "BLOB" };
    diesel::sql_query("DROP TABLE IF EXISTS bench_raw_entries").execute(conn)?;
    diesel::sql_query(format!(
        "CREATE TABLE bench_raw_entries (channel TEXT NOT NULL, idx BIGINT NOT NULL, event_id TEXT NOT NULL, \
         event_key BIGINT NOT NULL, leaf_data {blob} NOT NULL, subject TEXT NOT NULL, \
         subject_key BIGINT NOT NULL, nonce {blob}, ciphertext {blob}, PRIMARY KEY (channel, idx))"
    ))
    .execute(conn)?;
    // The ledger's look-up key indexes (migration 000008_ledger_lookup_keys).
    diesel::sql_query(
        "CREATE INDEX bench_raw_entries_event ON bench_raw_entries (channel, event_key)",
    )
    .execute(conn)?;
    diesel::sql_query("CREATE INDEX bench_raw_entries_subject ON bench_raw_entries (subject_key)")
        .execute(conn)?;
    let leaf = vec![0x42u8; 300];
    let nonce = vec![0x07u8; 12];
    let ciphertext = vec![0x33u8; 180];
    let start = Instant::now();
    let mut i = 0u64;
    while i < opts.entries {
        let end = (i + opts.batch as u64).min(opts.entries);
        let rows: Vec<RawRow<'_>> = (i..end)
            .map(|k| RawRow {
                channel: "claims",
                idx: i64::try_from(k).unwrap_or(i64::MAX),
                event_id: format!("bench:claims:{k:012}"),
                event_key: ledgerbridge_store::lookup_key(&format!("bench:claims:{k:012}")),
                leaf_data: &leaf,
                subject: format!("pt-{:06x}", k % 50_000),
                subject_key: ledgerbridge_store::lookup_key(&format!("pt-{:06x}", k % 50_000)),
                nonce: Some(&nonce),
                ciphertext: Some(&ciphertext),
            })
            .collect();
        conn.transaction::<_, diesel::result::Error, _>(|c| {
            match c {
                AnyConnection::Postgresql(pg) => {
                    diesel::copy_from(bench_raw_entries::table)
                        .from_insertable(&rows)
                        .execute(pg)?;
                }
                AnyConnection::Sqlite(lite) => {
                    for chunk in rows.chunks(500) {
                        diesel::insert_into(bench_raw_entries::table)
                            .values(chunk)
                            .execute(lite)?;
                    }
                }
            }
            Ok(())
        })?;
        i = end;
    }
    let rate = opts.entries as f64 / start.elapsed().as_secs_f64();
    diesel::sql_query("DROP TABLE bench_raw_entries").execute(conn)?;
    Ok(rate)
}

fn measure(
    backend: &'static str,
    store: Store,
    keys: &std::path::Path,
    opts: &LedgerBench,
) -> Result<Row> {
    eprintln!("{backend}: raw inserts of {} rows…", opts.entries);
    let raw_rate = raw_insert_rate(&store, opts)?;
    let ledger = Ledger::open(store, keys.to_path_buf(), "ledgerbridge.bench/node")?;
    ledger.ensure_channel("claims")?;
    eprintln!("{backend}: appending {} entries…", opts.entries);
    let bar = indicatif::ProgressBar::new(opts.entries);
    let mut latencies = Vec::new();
    let start = Instant::now();
    let mut i = 0u64;
    while i < opts.entries {
        let end = (i + opts.batch as u64).min(opts.entries);
        let batch: Vec<NewEntry> = (i..end).map(entry).collect();
        let t = Instant::now();
        let (_, cp) = ledger.append("claims", &batch)?;
        latencies.push(t.elapsed());
        anyhow::ensure!(
            cp.is_some_and(|c| c.size == end),
            "the batch ending at {end} was not checkpointed"
        );
        bar.set_position(end);
        i = end;
    }
    let append_rate = opts.entries as f64 / start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    latencies.sort_unstable();
    let mut proof_times = Vec::with_capacity(opts.proofs);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..opts.proofs {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let index = x % opts.entries;
        let t = Instant::now();
        std::hint::black_box(ledger.proof_file("claims", index)?);
        proof_times.push(t.elapsed());
    }
    proof_times.sort_unstable();
    Ok(Row {
        backend,
        raw_rate,
        append_rate,
        batch_p50: percentile(&latencies, 0.5),
        batch_p99: percentile(&latencies, 0.99),
        proof_p50: percentile(&proof_times, 0.5),
        proof_p99: percentile(&proof_times, 0.99),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Runs the benchmark and prints the table.
pub(crate) fn ledger(opts: &LedgerBench) -> Result<()> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let mut rows = Vec::new();
    let sqlite = Store::open_sqlite(&dir.path().join("bench.sqlite3"))?;
    rows.push(measure(
        "sqlite",
        sqlite,
        &dir.path().join("keys-sqlite"),
        opts,
    )?);
    if let Some(url) = &opts.postgres {
        let pg = Store::open_postgres(url, 4, Duration::from_secs(10)).context("--postgres")?;
        {
            let mut pooled = pg.conn()?;
            let conn: &mut AnyConnection = &mut pooled;
            for table in [
                "ledger_erasures",
                "ledger_subject_keys",
                "ledger_checkpoints",
                "ledger_blocks",
                "ledger_tiles",
                "ledger_entries",
                "ledger_keys",
                "ledger_channels",
            ] {
                diesel::sql_query(format!("DELETE FROM {table}")).execute(conn)?;
            }
        }
        rows.push(measure("postgres", pg, &dir.path().join("keys-pg"), opts)?);
    }
    let sha = sha256_rate();
    println!(
        "ledger benchmark: {} entries of ~300 bytes of leaf data, batches of {}, {} proofs sampled\n",
        opts.entries, opts.batch, opts.proofs
    );
    println!(
        "{:<10} {:>18} {:>24} {:>28} {:>24}",
        "backend",
        "append entries/s",
        "limit: raw inserts/s",
        "append→checkpoint p50/p99",
        "proof p50/p99"
    );
    for r in &rows {
        println!(
            "{:<10} {:>18.0} {:>24.0} {:>28} {:>24}",
            r.backend,
            r.append_rate,
            r.raw_rate,
            format!("{} / {}", ms(r.batch_p50), ms(r.batch_p99)),
            format!("{} / {}", ms(r.proof_p50), ms(r.proof_p99)),
        );
    }
    println!("\nlimit: SHA-256 leaf hashes of 300 bytes on one core: {sha:.0}/s");
    println!(
        "targets (issue 3): append ≥ 200,000/s on SQLite and ≥ 100,000/s on PostgreSQL, append→checkpoint p99 < 500 ms, \
         proof p99 < 2 ms at 10M entries"
    );
    Ok(())
}
