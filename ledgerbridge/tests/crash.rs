//! Crash safety with real processes, killed with SIGKILL at random moments, many times:
//! - the ledger: clients anchor events through the API; after each restart every acknowledged
//!   event must still be there (re-anchoring it returns `existing: true`), and at the end the
//!   full audit must find the ledger intact;
//! - a connector: a PostgreSQL table is snapshotted and streamed (with writers committing out of
//!   order) into the raw topic; at the end the distinct keys in the topic are exactly the source's
//!   rows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_ledgerbridge");
const ROUNDS: usize = 8;
/// Source rows of the mapped sample tables the roles test needs before it stops the load.
const MIN_LOAD: usize = 200;
/// The mapped tables of the sample legacy systems, with their connector.
const MAPPED_TABLES: [(&str, &str); 7] = [
    ("sample-his", "claims"),
    ("sample-mall", "mall_orders"),
    ("sample-mall", "customs_declarations"),
    ("sample-land", "title_transfers"),
    ("sample-land", "mortgages"),
    ("sample-bank", "transfers"),
    ("sample-bank", "remittances"),
];

/// Rows in the mapped tables of the sample legacy systems under `data` (0 before they exist).
fn mapped_source_rows(data: &std::path::Path) -> usize {
    let path = data.join("legacy/legacy.db");
    if !path.exists() {
        return 0;
    }
    let db = rusqlite::Connection::open(&path).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    MAPPED_TABLES
        .iter()
        .map(|(_, table)| {
            match db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            }) {
                Ok(n) => n as usize,
                // Not created yet by the sample systems.
                Err(e) if e.to_string().contains("no such table") => 0,
                Err(e) => panic!("counting {table}: {e}"),
            }
        })
        .sum()
}
const CLIENTS: usize = 4;

fn start(data: &str) -> (Node, String, String) {
    start_with(data, &[])
}

fn start_with(data: &str, extra: &[&str]) -> (Node, String, String) {
    let child = Command::new(BIN)
        .args(["demo", "--data-dir", data, "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut node = Node(child);
    let banner = support::read_banner(&mut node, "Stop with Ctrl-C", Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("the node did not start: {e}"));
    let url = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("API and UI"))
        .map(|rest| rest.trim().trim_end_matches('/').to_owned());
    let token = std::fs::read_to_string(format!("{data}/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    (node, url.expect("the node printed its URL"), token)
}

/// A node process, killed (SIGKILL) on drop if it still runs: a failing test leaves no node
/// behind.
struct Node(Child);

impl std::ops::Deref for Node {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A cheap pseudo-random sequence, seeded from the clock (the seed is printed on failure).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn anchor(
    client: &reqwest::blocking::Client,
    url: &str,
    token: &str,
    id: &str,
) -> Option<serde_json::Value> {
    let body = serde_json::json!({"event_id": id, "event_type": "claim", "subject": "pt-crash", "payload": {"id": id}});
    let resp = client
        .post(format!("{url}/api/v1/ledger/claims/entries"))
        .bearer_auth(token)
        .json(&body)
        .timeout(Duration::from_secs(5))
        .send()
        .ok()?;
    resp.status()
        .is_success()
        .then(|| resp.json().ok())
        .flatten()
}

#[test]
fn acknowledged_entries_survive_kill_9_at_random_moments() {
    let _watchdog = support::watchdog(Duration::from_secs(1200));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let client = support::http();
    let mut kills = 0;
    for round in 0..ROUNDS {
        let (mut child, url, token) = start(&data);
        // Everything acknowledged before must still be there.
        let before: Vec<String> = acked.lock().unwrap().iter().cloned().collect();
        for id in &before {
            let resp = anchor(&client, &url, &token, id)
                .unwrap_or_else(|| panic!("seed {seed}: node not answering"));
            assert_eq!(
                resp["existing"], true,
                "seed {seed}, round {round}: acknowledged {id} was lost"
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..CLIENTS)
            .map(|w| {
                let (url, token, stop, acked) = (
                    url.clone(),
                    token.clone(),
                    Arc::clone(&stop),
                    Arc::clone(&acked),
                );
                std::thread::spawn(move || {
                    let client = support::http();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let id = format!("crash:r{round}:w{w}:{n:05}");
                        match anchor(&client, &url, &token, &id) {
                            Some(_) => {
                                acked.lock().unwrap().insert(id);
                                n += 1;
                            }
                            None => return,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + rng.next(600)));
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(child.id().to_string())
            .status();
        child.wait().unwrap();
        kills += 1;
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
    }
    let (mut child, url, token) = start(&data);
    let all: Vec<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(
        all.len() > ROUNDS * 10,
        "seed {seed}: too few appends to mean anything ({})",
        all.len()
    );
    for id in &all {
        assert_eq!(
            anchor(&client, &url, &token, id).unwrap()["existing"],
            true,
            "seed {seed}: {id} lost"
        );
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new(BIN)
        .args(["ledger", "audit", "--data-dir", &data])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "seed {seed}: audit after {kills} kills:\n{report}"
    );
    println!(
        "{} acknowledged entries, all present after {kills} kill -9; audit: {report}",
        all.len()
    );
}

/// Runs `f` on a small Tokio runtime of its own (the test itself is synchronous).
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// Writers that keep inserting while the node is killed: each round opens two transactions,
/// commits the later one first, so keys commit out of order.
fn writer(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        block_on(async move {
            let (a, b) = (pg(&url).await, pg(&url).await);
            let mut written = 0;
            while !stop.load(Ordering::Relaxed) {
                a.batch_execute(
                    "BEGIN; INSERT INTO orders (note) SELECT 'held' FROM generate_series(1, 20)",
                )
                .await
                .unwrap();
                b.batch_execute("BEGIN; INSERT INTO orders (note) SELECT 'quick' FROM generate_series(1, 30); COMMIT")
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
                a.batch_execute("COMMIT").await.unwrap();
                written += 50;
            }
            written
        })
    })
}

#[test]
fn a_connector_killed_mid_snapshot_and_mid_stream_loses_and_invents_no_row() {
    let _watchdog = support::watchdog(Duration::from_secs(1200));
    const SNAPSHOT_ROWS: i64 = 150_000;
    let base = std::env::var("LEDGERBRIDGE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let name = format!("lb_crash_src_{}", std::process::id());
    let url = format!("{base}/{name}");
    block_on(async {
        let admin = pg(&format!("{base}/postgres")).await;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&sql).await.unwrap();
        }
        let c = pg(&url).await;
        c.batch_execute(&format!(
            "CREATE TABLE orders (id bigserial PRIMARY KEY, note text, amount numeric(12, 2) DEFAULT 1000.50, \
             updated_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO orders (note) SELECT 'seed ' || g FROM generate_series(1, {SNAPSHOT_ROWS}) g"
        ))
        .await
        .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[connectors]]\nname = \"orders\"\ntype = \"postgres\"\npoll_interval = \"200ms\"\nbatch_size = 2000\n\
             [connectors.database]\nurl = \"{url}\"\n[[connectors.database.tables]]\nname = \"public.orders\"\n",
            ledgerbridge_config::DEMO_CONFIG
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = None;
    let client = support::http();
    let status = |url: &str, token: &str| -> Option<serde_json::Value> {
        client
            .get(format!("{url}/api/v1/connectors/orders"))
            .bearer_auth(token)
            .send()
            .ok()?
            .json()
            .ok()
    };
    let mut kills = 0;
    for round in 0..ROUNDS {
        let (mut child, url_api, token) = start_with(&data, &["--config", &config]);
        if round == 2 {
            writers = Some(writer(url.clone(), Arc::clone(&stop)));
        }
        std::thread::sleep(Duration::from_millis(300 + rng.next(1500)));
        if let Some(s) = status(&url_api, &token) {
            println!(
                "round {round}: killing at {} rows this run ({})",
                s["status"]["rows_total"], s["status"]["state"]
            );
        }
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(child.id().to_string())
            .status();
        child.wait().unwrap();
        kills += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let written = writers.map(|w| w.join().unwrap()).unwrap_or(0);
    let writers_done = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // A last run catches up; then the topic is read directly.
    let (mut child, url_api, token) = start_with(&data, &["--config", &config]);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let s = status(&url_api, &token).unwrap_or_default();
        let caught_up = s["status"]["caught_up_at_ms"].as_i64().unwrap_or(0);
        if s["status"]["state"] == "idle" && caught_up > writers_done + 500 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: the connector did not catch up: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();

    let source: BTreeSet<i64> = block_on(async {
        let c = pg(&url).await;
        c.query("SELECT id FROM orders", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    });
    assert_eq!(source.len() as i64, SNAPSHOT_ROWS + written as i64);
    let log = ledgerbridge_bus::EmbeddedLog::open(
        std::path::Path::new(&data).join("log"),
        ledgerbridge_bus::EmbeddedLogOptions::default(),
    )
    .unwrap();
    let (keys, records) = block_on(async {
        use ledgerbridge_bus::Bus as _;
        let end = log.end_offset("raw.orders", 0).await.unwrap();
        let mut keys = BTreeSet::new();
        let mut from = 0;
        while from < end {
            let batch = log.read("raw.orders", 0, from, 50_000).await.unwrap();
            from += batch.len() as u64;
            for d in batch {
                let key = String::from_utf8(d.record.key.unwrap()).unwrap();
                keys.insert(key.parse::<i64>().unwrap());
            }
        }
        (keys, end)
    });
    let missing: Vec<_> = source.difference(&keys).take(10).collect();
    let extra: Vec<_> = keys.difference(&source).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "seed {seed}: missing {missing:?}, extra {extra:?}"
    );
    assert_eq!(keys.len(), source.len());
    println!(
        "{} source rows ({SNAPSHOT_ROWS} snapshot + {written} written during {kills} kill -9), {} distinct keys in raw.orders, {} records ({} redelivered)",
        source.len(),
        keys.len(),
        records,
        records - keys.len() as u64
    );
    block_on(async {
        let admin = pg(&format!("{base}/postgres")).await;
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    });
}

/// Spawns `serve --config` for some roles; returns when the process says it runs, with the
/// API's URL when it serves one.
fn serve_roles_api(config: &str, roles: &str) -> (Node, Option<String>) {
    let path = format!("{config}.{}.log", roles.replace(',', "-"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    support::show_log_on_hang(&path);
    let (node, url) = spawn_node(&["serve", "--config", config, "--role", roles], log)
        .unwrap_or_else(|e| {
            panic!(
                "the node ({roles}) did not start: {e}\nits log:\n{}",
                std::fs::read_to_string(&path).unwrap_or_default()
            )
        });
    if roles.contains("api") && url.is_none() {
        panic!(
            "the node ({roles}) printed no API URL; its log:\n{}",
            std::fs::read_to_string(&path).unwrap_or_default()
        );
    }
    (node, url)
}

/// Starts the binary with `args`, reads its banner up to "Stop with Ctrl-C" (within two
/// minutes) and returns it with the API's URL when it serves one.
fn spawn_node(args: &[&str], stderr: Stdio) -> Result<(Node, Option<String>), String> {
    let child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut node = Node(child);
    let banner = support::read_banner(&mut node, "Stop with Ctrl-C", Duration::from_secs(120))?;
    let url = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("API and UI"))
        .map(|rest| rest.trim().trim_end_matches('/').to_owned());
    Ok((node, url))
}

fn serve_roles(config: &str, roles: &str) -> Node {
    serve_roles_api(config, roles).0
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(child.id().to_string())
        .status();
    child.wait().unwrap();
}

/// Stops a node as an operator would (SIGTERM); its shutdown is bounded (the HTTP server's
/// grace of 10 s, the rest's 10 s, the last system event's 5 s, the runtime's 5 s), so one
/// still running after 40 s fails the test with its threads' stacks.
fn terminate(child: &mut Child) {
    support::terminate_within(child, Duration::from_secs(40), "the node");
}

/// Writes a node configuration `<name>.toml` into `dir`; returns its path.
fn write_config(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A node running the sample systems at `rate` rows/s on Kafka (`kafka`, topics under `prefix`,
/// librdkafka `properties` as TOML key/value pairs) and the PostgreSQL store at `pg`.
fn sample_node_config(
    id: &str,
    data: &std::path::Path,
    pg: &str,
    kafka: &str,
    prefix: &str,
    properties: &str,
    rate: f64,
) -> String {
    format!(
        r#"
[node]
id = "{id}"
data_dir = "{data}"
[api]
listen = "127.0.0.1:0"
[store]
backend = "postgres"
[store.postgres]
url = "{pg}"
[bus]
backend = "kafka"
topic_prefix = "{prefix}"
[bus.kafka]
bootstrap_servers = "{kafka}"
properties = {{ {properties} }}
[samples]
enabled = true
rate = {rate:.1}
"#,
        data = data.display(),
    )
}

/// The pipeline's roles in separate processes on Kafka and PostgreSQL, killed with SIGKILL at
/// random moments under load, many times: at the end every source row of a mapped table is
/// anchored (or quarantined with its reason), none twice.
#[test]
fn pipeline_roles_killed_at_random_anchor_every_source_row_once() {
    let _watchdog = support::watchdog(Duration::from_secs(1200));
    let kafka =
        std::env::var("LEDGERBRIDGE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let db = ledgerbridge_store::testing::TestStore::postgres("crash_roles");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let prefix = format!("roles{}.", std::process::id());
    // tansu 0.6: one record per batch; a killed worker's partitions move after 6 s, not 45.
    let props = r#""batch.num.messages" = "1", "session.timeout.ms" = "6000""#;
    let config =
        |rate: f64| sample_node_config("roles", &data, &db.location, &kafka, &prefix, props, rate);
    let (loaded, quiet) = (
        write_config(dir.path(), "loaded", &config(40.0)),
        write_config(dir.path(), "quiet", &config(0.0)),
    );
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let mut sources = serve_roles(&loaded, "connector,api");
    for round in 0..ROUNDS {
        let mut workers = serve_roles(&loaded, "mapper,anchor");
        std::thread::sleep(Duration::from_millis(400 + rng.next(1600)));
        kill9(&mut workers);
        if round % 2 == 1 {
            kill9(&mut sources);
            sources = serve_roles(&loaded, "connector,api");
        }
    }
    // A slow machine starts the restarted connector late and writes little in the rounds: the
    // load keeps running (workers killed as before) until the sources hold enough rows to mean
    // something.
    let load_deadline = Instant::now() + Duration::from_secs(120);
    while mapped_source_rows(&data) < MIN_LOAD {
        assert!(
            Instant::now() < load_deadline,
            "seed {seed}: the sample load wrote only {} rows in 120 s",
            mapped_source_rows(&data)
        );
        let mut workers = serve_roles(&loaded, "mapper,anchor");
        std::thread::sleep(Duration::from_millis(400 + rng.next(1600)));
        kill9(&mut workers);
    }
    terminate(&mut sources);
    // No new rows now: the connectors and workers catch up.
    let (mut sources, api) = serve_roles_api(&quiet, "connector,api");
    let api = api.expect("the API's URL");
    let mut workers = serve_roles(&quiet, "mapper,anchor");
    // tansu 0.6 has been seen (once in several runs) to keep a killed member's partitions
    // assigned to it: when nothing progresses for 60 s, the workers are restarted gracefully, as
    // an operator would, at most twice. Rows still missing after that fail the test.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut restarts = 0;
    let mut last_progress = (Instant::now(), usize::MAX);
    let (total, anchored, quarantined) = loop {
        let (problems, total, anchored, quarantined) = every_row_once(&data, &db.location);
        if problems.is_empty() {
            break (total, anchored, quarantined);
        }
        assert!(Instant::now() < deadline, "seed {seed}: {problems:#?}");
        if anchored != last_progress.1 {
            last_progress = (Instant::now(), anchored);
        } else if last_progress.0.elapsed() > Duration::from_secs(60) && restarts < 2 {
            terminate(&mut workers);
            workers = serve_roles(&quiet, "mapper,anchor");
            restarts += 1;
            last_progress = (Instant::now(), anchored);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    println!("workers restarted gracefully {restarts} time(s) in the catch-up");
    // Settled: nothing arriving later changes the verdict.
    std::thread::sleep(Duration::from_secs(3));
    let (problems, ..) = every_row_once(&data, &db.location);
    assert!(problems.is_empty(), "seed {seed}: {problems:#?}");
    assert_reconciled(&api, &data, &format!("seed {seed}"));
    terminate(&mut workers);
    terminate(&mut sources);
    assert!(
        total >= MIN_LOAD,
        "seed {seed}: too little load to mean anything ({total} rows)"
    );
    println!(
        "{total} source rows of 7 mapped tables, {anchored} anchored entries, {quarantined} quarantined, after {ROUNDS} kill -9 of the workers and {} of the connectors",
        ROUNDS / 2
    );
}

/// Source rows of the mapped tables (SQLite sample systems under `data`) against the ledger in
/// the PostgreSQL store at `pg_url`: every one anchored or quarantined, none twice. Returns the
/// problems, the source rows, the anchored entries and the quarantined records.
fn every_row_once(data: &std::path::Path, pg_url: &str) -> (Vec<String>, usize, usize, usize) {
    let anchored: Vec<(String, String)> = block_on(async {
        let c = pg(pg_url).await;
        c.query("SELECT leaf_data FROM ledger_entries", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| {
                let leaf: Vec<u8> = r.get(0);
                ledgerbridge_ledger_core::entry::Entry::from_leaf_data(&leaf).unwrap()
            })
            .filter(|e| e.connector.starts_with("sample-"))
            .map(|e| (e.connector, e.source_position))
            .collect()
    });
    // (source, stream, position) of each quarantined record: a row is excused only by a record
    // of its own table — the mapping worker's name it `connector/table`, the connectors' the
    // connector and the table; a record that could not even be decoded names its topic, and
    // excuses nothing.
    let quarantined: Vec<(String, String, String)> = block_on(async {
        let c = pg(pg_url).await;
        c.query("SELECT source, stream, position FROM quarantine", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    });
    let legacy = rusqlite::Connection::open(data.join("legacy/legacy.db")).unwrap();
    let mut problems = Vec::new();
    let mut total = 0;
    for (connector, table) in MAPPED_TABLES {
        let ids: BTreeSet<String> = legacy
            .prepare(&format!("SELECT id FROM {table}"))
            .unwrap()
            .query_map([], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|id| id.unwrap().to_string())
            .collect();
        let keys: Vec<String> = anchored
            .iter()
            .filter(|(c, p)| c == connector && p.starts_with(&format!("{table} key=")))
            .map(|(_, p)| {
                p.split(' ')
                    .nth(1)
                    .unwrap()
                    .trim_start_matches("key=")
                    .to_owned()
            })
            .collect();
        let distinct: BTreeSet<String> = keys.iter().cloned().collect();
        if table != "mortgages" && keys.len() != distinct.len() {
            problems.push(format!("{table}: a row anchored twice"));
        }
        let missing: Vec<&String> = ids
            .iter()
            .filter(|id| !distinct.contains(*id))
            .filter(|id| {
                !quarantined.iter().any(|(c, t, p)| {
                    let own =
                        *t == format!("{connector}/{table}") || (c == connector && t == table);
                    own && p.contains(&format!("key={id} "))
                })
            })
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{table}: neither anchored nor quarantined: {missing:?}"
            ));
        }
        total += ids.len();
    }
    (problems, total, anchored.len(), quarantined.len())
}

/// The node's own reconciliation agrees: every mapped table of every sample connector complete,
/// hashes equal.
fn assert_reconciled(api: &str, data: &std::path::Path, context: &str) {
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let client = support::http();
    for connector in ["sample-his", "sample-mall", "sample-land", "sample-bank"] {
        let report: serde_json::Value = client
            .post(format!("{api}/api/v1/connectors/{connector}/reconcile"))
            .bearer_auth(token.trim())
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(report["complete"], true, "{context}: {report:#}");
        for t in report["tables"].as_array().unwrap() {
            if t["quarantined"] == 0 {
                assert_eq!(
                    t["source"]["hash"], t["anchored"]["hash"],
                    "{context}: {t:#}"
                );
            }
        }
    }
}

/// Waits until the sample systems under `data` hold 100 rows of the mapped tables and something
/// is anchored in the store at `pg_url`.
fn wait_for_load(data: &std::path::Path, pg_url: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while mapped_source_rows(data) < 100 || every_row_once(data, pg_url).2 == 0 {
        assert!(Instant::now() < deadline, "no load anchored in 120 s");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `GET /api/v1/health` of the node at `api`, answered even while a part is down.
fn health(client: &reqwest::blocking::Client, api: &str) -> (u16, serde_json::Value) {
    let resp = client
        .get(format!("{api}/api/v1/health"))
        .send()
        .expect("the API answers while a part is down");
    (
        resp.status().as_u16(),
        resp.json::<serde_json::Value>().unwrap(),
    )
}

/// Waits up to 60 s for the node's health to be up again (without a restart) after `what`.
fn wait_healthy(client: &reqwest::blocking::Client, api: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while health(client, api).0 != 200 {
        assert!(Instant::now() < deadline, "still down 60 s after {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Starts the node of `quiet` (no new rows) with `roles`, waits until every source row is
/// anchored once and the node's reconciliation agrees, stops it; returns the source rows, the
/// anchored entries and the quarantined records.
fn caught_up(
    quiet: &str,
    roles: &str,
    data: &std::path::Path,
    pg_url: &str,
    context: &str,
) -> (usize, usize, usize) {
    let (mut node, api) = serve_roles_api(quiet, roles);
    let api = api.expect("the API's URL");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let (problems, ..) = every_row_once(data, pg_url);
        if problems.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{context}: {problems:#?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    // Settled: nothing arriving later changes the verdict.
    std::thread::sleep(Duration::from_secs(3));
    let (problems, total, anchored, quarantined) = every_row_once(data, pg_url);
    assert!(problems.is_empty(), "{context}: {problems:#?}");
    assert_reconciled(&api, data, context);
    terminate(&mut node);
    (total, anchored, quarantined)
}

/// A private tansu broker (the binary scripts/services.sh builds, `LEDGERBRIDGE_TEST_TANSU`) on
/// a free port, in memory, killed on drop: the tests that pause it must not pause the shared one.
/// (A broker stopped and started again needs durable storage: tansu 0.6's SQLite engine panics
/// on the first metadata request of a new client after a restart, and its PostgreSQL engine
/// ships without its schema; see docs/ARCHITECTURE.md.)
struct Broker {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
    /// The private S3 server a durable broker keeps its topics in, and its URL.
    s3: Option<(Child, String)>,
}

fn wait_for_port(addr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Broker {
    /// tansu keeping its topics in memory.
    fn start() -> Self {
        Self::start_with(None)
    }

    /// tansu keeping its topics in a private S3 server (moto, which scripts/services.sh
    /// installs), so that they outlive the broker's process.
    fn start_durable() -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("python3 -m moto.server (scripts/services.sh installs it): {e}")
            });
        let addr = format!("127.0.0.1:{port}");
        wait_for_port(&addr, "moto");
        let url = format!("http://{addr}");
        let bucket = support::http().put(format!("{url}/tansu")).send().unwrap();
        assert!(
            bucket.status().is_success(),
            "creating the bucket: {bucket:?}"
        );
        Self::start_with(Some((child, url)))
    }

    fn start_with(s3: Option<(Child, String)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Self::spawn(&addr, dir.path(), s3.as_ref().map(|(_, url)| url.as_str()));
        Self {
            child,
            addr,
            dir,
            s3,
        }
    }

    fn spawn(addr: &str, dir: &std::path::Path, s3: Option<&str>) -> Child {
        let bin = std::env::var("LEDGERBRIDGE_TEST_TANSU").unwrap_or_else(|_| {
            format!(
                "{}/.cargo/bin/tansu",
                std::env::var("HOME").unwrap_or_default()
            )
        });
        let url = format!("tcp://{addr}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("tansu.log"))
            .unwrap();
        let mut command = Command::new(&bin);
        command
            .current_dir(dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .stdout(Stdio::null())
            .stderr(log);
        match s3 {
            Some(endpoint) => command
                .args(["--storage-engine", "s3://tansu/"])
                .env("AWS_ENDPOINT", endpoint)
                .env("AWS_ALLOW_HTTP", "true")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_DEFAULT_REGION", "us-east-1"),
            None => command.args(["--storage-engine", "memory://tansu/"]),
        };
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("tansu at {bin} (scripts/services.sh builds it): {e}"));
        wait_for_port(addr, "tansu");
        child
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} tansu");
    }

    /// Stops the broker's process (SIGTERM) and waits for it to end.
    fn stop(&mut self) {
        self.signal("TERM");
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same address and storage.
    fn start_again(&mut self) {
        self.child = Self::spawn(
            &self.addr,
            self.dir.path(),
            self.s3.as_ref().map(|(_, url)| url.as_str()),
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((s3, _)) = &mut self.s3 {
            let _ = s3.kill();
            let _ = s3.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("tansu.log"));
            eprintln!("the private broker's log:\n{}", log.unwrap_or_default());
        }
    }
}

/// Runs the sample node (connector, mapper, anchor and API roles in one process, with the
/// librdkafka `properties`) on `broker` under load, takes the broker away with `down` for `outage`, brings it back with `up`, and
/// checks what every broker outage must give: the API answers meanwhile with the bus down in its
/// health, comes back without a restart, nothing is quarantined, and once the node has caught up
/// every source row of a mapped table is anchored once (`caught_up`, reconciliation included).
fn outage_under_load(
    broker: &mut Broker,
    name: &str,
    properties: &str,
    outage: Duration,
    down: impl FnOnce(&mut Broker),
    up: impl FnOnce(&mut Broker),
) {
    let db = ledgerbridge_store::testing::TestStore::postgres(&format!("crash_{name}"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = |rate: f64| {
        sample_node_config(
            name,
            &data,
            &db.location,
            &broker.addr,
            &format!("{name}."),
            properties,
            rate,
        )
    };
    let (loaded, quiet) = (
        write_config(dir.path(), "loaded", &config(40.0)),
        write_config(dir.path(), "quiet", &config(0.0)),
    );
    let (mut node, api) = serve_roles_api(&loaded, "connector,mapper,anchor,api");
    let api = api.expect("the API's URL");
    wait_for_load(&data, &db.location);
    let before = mapped_source_rows(&data);
    down(broker);
    let began = Instant::now();
    // The API keeps answering while the broker is gone, and its health says the bus is down.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let (status, report) = health(&client, &api);
    assert_eq!(status, 503, "{report:#}");
    let bus = report["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bus")
        .unwrap_or_else(|| panic!("no bus in {report:#}"));
    assert_eq!(bus["state"], "down", "{report:#}");
    std::thread::sleep(outage.saturating_sub(began.elapsed()));
    up(broker);
    let written = mapped_source_rows(&data) - before;
    // Back up without a restart once the broker answers again.
    wait_healthy(&client, &api, "the broker came back");
    std::thread::sleep(Duration::from_secs(5));
    terminate(&mut node);
    let (total, anchored, quarantined) = caught_up(
        &quiet,
        "connector,mapper,anchor,api",
        &data,
        &db.location,
        &format!("after the broker outage ({name})"),
    );
    assert!(
        written > 0,
        "the sources wrote nothing while the broker was away"
    );
    // Waited out, never a reason to quarantine.
    assert_eq!(
        quarantined, 0,
        "records quarantined because the broker was away"
    );
    println!(
        "{name}: {total} source rows of 7 mapped tables ({written} written while the broker was away for {} s), {anchored} anchored entries, {quarantined} quarantined",
        outage.as_secs()
    );
}

/// The broker paused (SIGSTOP) for 30 s while the sample systems keep writing, then resumed: the
/// node waits for it (publishes block, no offset is stored past what the broker holds) and, once
/// it is back, every source row of a mapped table is anchored once, and the node's
/// reconciliation agrees.
#[test]
fn a_broker_paused_for_30_s_under_load_loses_and_doubles_no_row() {
    let _watchdog = support::watchdog(Duration::from_secs(1200));
    let mut broker = Broker::start();
    outage_under_load(
        &mut broker,
        "paused",
        r#""batch.num.messages" = "1""#,
        Duration::from_secs(30),
        |b| b.signal("STOP"),
        |b| b.signal("CONT"),
    );
}

/// The broker's process stopped (SIGTERM) for 20 s under load and started again on its storage
/// (tansu keeping its topics in S3, a local moto server): producers and consumers reconnect,
/// consumer groups resume from their committed offsets, and every source row of a mapped table
/// is anchored once.
///
/// The node's producer is not idempotent here: tansu 0.6's S3 store records an idempotent
/// batch's sequence number before it writes the batch, so a batch cut off by the SIGTERM is
/// answered `DuplicateSequenceNumber` when the producer retries it, which the producer takes for
/// "already written" (one bank transfer was lost that way in CI). Without idempotence the retry is
/// written again; a duplicate is harmless, the ledger appends by event id.
#[test]
fn a_broker_stopped_and_restarted_under_load_loses_and_doubles_no_row() {
    let _watchdog = support::watchdog(Duration::from_secs(1200));
    let mut broker = Broker::start_durable();
    outage_under_load(
        &mut broker,
        "restarted",
        r#""batch.num.messages" = "1", "enable.idempotence" = "false""#,
        Duration::from_secs(20),
        Broker::stop,
        Broker::start_again,
    );
}

/// A private PostgreSQL cluster (initdb in a temporary directory, run as the `postgres` user, on
/// a free port) that a test may stop and start without touching the shared server; removed on
/// drop.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    fn bin(name: &str) -> String {
        let found = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path().join("bin").join(name))
                    .filter(|p| p.exists())
                    .max()
            })
            .unwrap_or_else(|| {
                panic!(
                    "no {name} under /usr/lib/postgresql (scripts/services.sh installs PostgreSQL)"
                )
            });
        found.display().to_string()
    }

    fn as_postgres(args: &[&str]) {
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}");
    }

    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let _ = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir.path())
            .status();
        let data = dir.path().join("pgdata");
        Self::as_postgres(&[
            &Self::bin("initdb"),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
        ]);
        let pg = Self { dir, port };
        pg.up();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("pgdata").display().to_string()
    }

    fn up(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.path().display()
        );
        Self::as_postgres(&[
            &Self::bin("pg_ctl"),
            "-D",
            &self.data(),
            "-o",
            &options,
            "-l",
            &format!("{}/log", self.dir.path().display()),
            "-w",
            "start",
        ]);
    }

    fn down(&self) {
        Self::as_postgres(&[
            &Self::bin("pg_ctl"),
            "-D",
            &self.data(),
            "-m",
            "fast",
            "-w",
            "stop",
        ]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &Self::bin("pg_ctl"),
                "-D",
                &self.data(),
            ])
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The PostgreSQL store stopped for 15 s under load and started again (a restart of the
/// database server): the node keeps serving, its health says the store is down, and once the
/// store is back every source row of a mapped table is anchored once, without restarting the
/// node.
#[test]
fn the_postgres_store_restarted_under_load_loses_and_doubles_no_row() {
    let _watchdog = support::watchdog(Duration::from_secs(1200));
    let kafka =
        std::env::var("LEDGERBRIDGE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let pg = PrivatePostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let prefix = format!("pgrestart{}.", std::process::id());
    let props = r#""batch.num.messages" = "1""#;
    let config =
        |rate: f64| sample_node_config("pgrestart", &data, &pg.url(), &kafka, &prefix, props, rate);
    let (loaded, quiet) = (
        write_config(dir.path(), "loaded", &config(40.0)),
        write_config(dir.path(), "quiet", &config(0.0)),
    );
    // Every role in one process: the monitoring worker must wait the store out too.
    let (mut node, api) = serve_roles_api(&loaded, "connector,mapper,anchor,monitor,api");
    let api = api.expect("the API's URL");
    wait_for_load(&data, &pg.url());
    let before = mapped_source_rows(&data);
    pg.down();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (status, report) = health(&client, &api);
    assert_eq!(status, 503, "{report:#}");
    std::thread::sleep(Duration::from_secs(13));
    pg.up();
    let written = mapped_source_rows(&data) - before;
    wait_healthy(&client, &api, "the store came back");
    // The monitoring worker is still at work (it does not give up on a store that went away).
    let monitored = |client: &reqwest::blocking::Client| -> f64 {
        let text = client
            .get(format!("{api}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("ledgerbridge_monitor_events "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ledgerbridge_monitor_events in {text}"))
    };
    let after_restart = monitored(&client);
    let deadline = Instant::now() + Duration::from_secs(60);
    while monitored(&client) <= after_restart {
        assert!(
            Instant::now() < deadline,
            "the monitoring worker stopped with the store"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(5));
    terminate(&mut node);
    let (total, anchored, quarantined) = caught_up(
        &quiet,
        "connector,mapper,anchor,monitor,api",
        &data,
        &pg.url(),
        "after the restart",
    );
    assert!(
        written > 0,
        "the sources wrote nothing while the store was down"
    );
    // Waited out, never a reason to quarantine.
    assert_eq!(
        quarantined, 0,
        "records quarantined because the store was down"
    );
    println!(
        "{total} source rows of 7 mapped tables ({written} written while the store was down for 15 s), {anchored} anchored entries, {quarantined} quarantined"
    );
}

/// Resident memory of a process, in MiB (Linux `/proc`).
fn rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// Backpressure: with no anchoring worker at all (the slowest downstream stage there is) the
/// connectors and the mapping worker go on under load, the backlog waits in the broker's topics,
/// and their process's memory stays flat; an anchoring worker started afterwards catches up and
/// anchors every source row once.
#[test]
fn a_stalled_downstream_stage_leaves_memory_flat_and_the_backlog_in_the_broker() {
    let _watchdog = support::watchdog(Duration::from_secs(1200));
    let kafka =
        std::env::var("LEDGERBRIDGE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let db = ledgerbridge_store::testing::TestStore::postgres("crash_backlog");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let prefix = format!("backlog{}.", std::process::id());
    let props = r#""batch.num.messages" = "1""#;
    let config = |rate: f64| {
        sample_node_config("backlog", &data, &db.location, &kafka, &prefix, props, rate)
    };
    let (loaded, quiet) = (
        write_config(dir.path(), "loaded", &config(300.0)),
        write_config(dir.path(), "quiet", &config(0.0)),
    );
    let (mut upstream, api) = serve_roles_api(&loaded, "connector,mapper,api");
    let api = api.expect("the API's URL");
    watch_the_backlog(&upstream, &api, &data, "the broker's topics");
    assert_eq!(every_row_once(&data, &db.location).2, 0, "nothing anchors");
    terminate(&mut upstream);
    // The stalled stage comes back and catches up.
    caught_up(
        &quiet,
        "connector,mapper,anchor,api",
        &data,
        &db.location,
        "the backlog caught up",
    );
}

/// Watches the connectors and the mapping worker of `upstream` (no anchoring worker) for 30 s
/// under load after a 10 s warm-up: the canonical events pile up in `where_` while the process's
/// resident memory stays within 64 MiB of where it started.
fn watch_the_backlog(upstream: &Child, api: &str, data: &std::path::Path, where_: &str) {
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let mapped = || -> u64 {
        let m = get_json(&format!("{api}/api/v1/mappings"), token.trim());
        m["stats"]["events"].as_u64().unwrap_or(0)
    };
    std::thread::sleep(Duration::from_secs(10));
    let (start_events, start_rss) = (mapped(), rss_mib(upstream.id()));
    let mut peak = start_rss;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(1));
        peak = peak.max(rss_mib(upstream.id()));
    }
    let (end_events, end_rss) = (mapped(), rss_mib(upstream.id()));
    let backlog = end_events - start_events;
    println!(
        "{backlog} events mapped and waiting in {where_} over 30 s; connector+mapper resident memory {start_rss} MiB → {end_rss} MiB (peak {peak} MiB)"
    );
    assert!(
        backlog >= 1_000,
        "too little load to mean anything: {backlog} events"
    );
    assert!(
        peak <= start_rss + 64,
        "memory grew with the backlog: {start_rss} MiB → peak {peak} MiB over {backlog} events"
    );
}

/// Backpressure on the embedded default: the same stall as above in one process without the
/// anchoring role, the backlog waiting in the embedded log on disk; then the whole node catches
/// up and its reconciliation finds every source row anchored once.
#[test]
fn on_the_embedded_default_a_stalled_downstream_stage_leaves_memory_flat() {
    let _watchdog = support::watchdog(Duration::from_secs(1200));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = |rate: &str| {
        ledgerbridge_config::DEMO_CONFIG
            .replace("rate = 5.0", &format!("rate = {rate}"))
            .replace(
                "data_dir = \"ledgerbridge-data\"",
                &format!("data_dir = \"{}\"", data.display()),
            )
            .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
    };
    let (loaded, quiet) = (
        write_config(dir.path(), "loaded", &config("300.0")),
        write_config(dir.path(), "quiet", &config("0.0")),
    );
    let (mut upstream, api) = serve_roles_api(&loaded, "connector,mapper,api");
    let api = api.expect("the API's URL");
    watch_the_backlog(&upstream, &api, &data, "the embedded log");
    let store = rusqlite::Connection::open(data.join("ledgerbridge.sqlite3")).unwrap();
    let anchored: i64 = store
        .query_row("SELECT count(*) FROM ledger_entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(anchored, 0, "nothing anchors");
    drop(store);
    terminate(&mut upstream);
    // The stalled stage comes back and catches up.
    let (mut node, api) = serve_roles_api(&quiet, "connector,mapper,anchor,monitor,api");
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    assert_complete(&api.expect("the API's URL"), token.trim());
    terminate(&mut node);
}

/// A tmpfs of `size` mounted at `dir` (tests run as root, as scripts/test.sh requires);
/// unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs needs root (the test suite runs as root, see README)"
        );
        Self(dir.to_owned())
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn get_json(url: &str, token: &str) -> serde_json::Value {
    support::http()
        .get(url)
        .bearer_auth(token)
        .send()
        .and_then(reqwest::blocking::Response::json)
        .unwrap_or(serde_json::Value::Null)
}

/// The embedded default on a disk that fills up under load: every stage reports a clear error
/// (the connectors' status names "No space left on device"), nothing crashes; when space returns
/// the pipeline goes on by itself, and after a quiet catch-up every source row of the mapped
/// tables is anchored once, the node's reconciliation is complete and the ledger audit passes.
#[test]
fn a_full_disk_is_a_clear_error_and_the_pipeline_recovers_when_space_returns() {
    let _watchdog = support::watchdog(Duration::from_secs(1200));
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "40m");
    let data = disk.0.join("data");
    let demo = ledgerbridge_config::DEMO_CONFIG;
    let loaded = dir.path().join("loaded.toml");
    std::fs::write(&loaded, demo.replace("rate = 5.0", "rate = 2000.0")).unwrap();
    let quiet = dir.path().join("quiet.toml");
    std::fs::write(&quiet, demo.replace("rate = 5.0", "rate = 0.0")).unwrap();
    let start =
        |config: &std::path::Path| serve_demo(config.to_str().unwrap(), data.to_str().unwrap());
    let (mut node, url) = start(&loaded);
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let token = token.trim().to_owned();
    // Full: a connector says why.
    let deadline = Instant::now() + Duration::from_secs(180);
    let error = loop {
        let connectors = get_json(&format!("{url}/api/v1/connectors"), &token);
        if let Some(e) = connectors.as_array().into_iter().flatten().find_map(|c| {
            c["last_error"]["message"]
                .as_str()
                .filter(|m| m.contains("No space left on device"))
                .map(str::to_owned)
        }) {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "the disk never filled: {connectors}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(error.contains("embedded log"), "{error}");
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        node.try_wait().unwrap().is_none(),
        "the node died on a full disk"
    );
    // The health report says the store cannot write.
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let health = get_json(&format!("{url}/api/v1/health"), &token);
        if health["status"] == "down" {
            break health;
        }
        assert!(
            Instant::now() < deadline,
            "health never went down: {health}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let store = health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "store")
        .unwrap();
    assert_eq!(store["state"], "down", "{health}");
    assert!(
        store["detail"].as_str().unwrap().contains("full"),
        "{health}"
    );
    assert!(
        health["components"].is_array(),
        "the API still answers: {health}"
    );
    // Space returns: the pipeline goes on without a restart.
    disk.grow("1g");
    let anchored = |h: &serde_json::Value| -> u64 {
        h["components"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == "pipeline")
            .and_then(|c| c["detail"].as_str())
            .and_then(|d| d.split("anchored ").nth(1))
            .and_then(|d| d.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let before = anchored(&health);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let health = get_json(&format!("{url}/api/v1/health"), &token);
        if health["status"] == "up" && anchored(&health) > before + 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not up and anchoring after space returned: {health}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    terminate(&mut node);
    // A quiet catch-up: every source row anchored, as the node's reconciliation proves.
    let (mut node, url) = start(&quiet);
    assert_complete(&url, &token);
    terminate(&mut node);
    let out = Command::new(BIN)
        .args(["ledger", "audit", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches(": OK").count(), 5, "{text}");
}

/// Waits up to 240 s for the node at `url` to reconcile every sample connector as complete: every
/// source row anchored, none duplicated (a row anchored in several states is not a duplicate).
fn assert_complete(url: &str, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(240);
    for connector in ["sample-his", "sample-mall", "sample-land", "sample-bank"] {
        loop {
            let report: serde_json::Value = support::http()
                .post(format!("{url}/api/v1/connectors/{connector}/reconcile"))
                .bearer_auth(token)
                .send()
                .unwrap()
                .json()
                .unwrap();
            if report["complete"] == true {
                // A mortgage's release, a title closed by a sale, an account or a policy
                // changing state are states of one row, not duplicates.
                for t in report["tables"].as_array().unwrap() {
                    assert_eq!(t["duplicated"], 0, "{t:#}");
                }
                let states: u64 = report["tables"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["several_states"].as_u64().unwrap())
                    .sum();
                println!("{connector}: {states} rows anchored in several states");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{connector} incomplete: {report:#}"
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

/// `ledgerbridge demo` with a configuration and a data directory; returns it with its API's URL.
fn serve_demo(config: &str, data: &str) -> (Node, String) {
    let args = [
        "demo",
        "--config",
        config,
        "--data-dir",
        data,
        "--listen",
        "127.0.0.1:0",
    ];
    let (node, url) =
        spawn_node(&args, Stdio::null()).unwrap_or_else(|e| panic!("the demo did not start: {e}"));
    (node, url.expect("the demo's banner names its URL"))
}
