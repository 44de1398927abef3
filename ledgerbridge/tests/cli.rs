//! The `ledgerbridge` binary end to end: real processes, real files, real PostgreSQL and a real
//! Kafka-protocol broker (addresses from scripts/services.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::free_port;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ledgerbridge");
const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/config");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A node process; stopped with SIGTERM (as an operator or orchestrator would) on drop.
struct Node {
    child: Child,
    url: String,
    banner: String,
    /// No test keeps a node longer than this; one that hangs fails with every process's stacks.
    _watchdog: support::Watchdog,
}

impl Node {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("LEDGERBRIDGE_TEST_NODE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = support::read_banner(&mut child, "Stop with Ctrl-C", Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("the node did not start: {e}"));
        let banner: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let url = lines
            .iter()
            .find_map(|l| l.trim().strip_prefix("API and UI"))
            .map(|rest| rest.trim().trim_end_matches('/').to_owned());
        let url = url.unwrap_or_else(|| panic!("no URL in the banner:\n{banner}"));
        Self {
            child,
            url,
            banner,
            _watchdog: support::watchdog(Duration::from_secs(600)),
        }
    }

    /// `ledgerbridge demo` with `config` (text) on a fresh data directory in `dir`, on a random
    /// port; returns it with its admin token.
    fn demo(dir: &Path, config: &str) -> (Self, String) {
        let data = dir.join("data");
        let path = dir.join("demo.toml");
        std::fs::write(&path, config).unwrap();
        let node = Self::start(&[
            "demo",
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]);
        let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
        (node, token.trim().to_owned())
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let client = support::http();
        let mut req = client.get(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let client = support::http();
        let mut req = client.post(format!("{}{path}", self.url)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn stop(mut self) -> i32 {
        self.terminate()
    }

    fn terminate(&mut self) -> i32 {
        // The HTTP server's grace (10 s), the rest of the shutdown's (10 s), the last system event
        // (5 s) and the runtime's blocking work (5 s) are each bounded.
        support::terminate_within(&mut self.child, Duration::from_secs(40), "the node")
            .code()
            .unwrap_or(-1)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

fn component<'a>(health: &'a Value, name: &str) -> &'a Value {
    health["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name} in {health}"))
}

fn event_types(node: &Node, token: &str) -> Vec<String> {
    let (status, body) = node.get("/api/v1/system/events?limit=1000", Some(token));
    assert_eq!(status, 200, "{body}");
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn help_explains_every_command() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for word in [
        "demo",
        "serve",
        "config",
        "verify",
        "ledger",
        "embedded default",
    ] {
        assert!(out.contains(word), "--help does not mention {word}:\n{out}");
    }
    let (code, out, _) = run(&["demo", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--data-dir") && out.contains("--listen"),
        "{out}"
    );
}

#[test]
fn config_check_accepts_every_shipped_example() {
    let mut files = vec![
        format!("{EXAMPLES}/demo.toml"),
        format!("{EXAMPLES}/production.toml"),
    ];
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker/config");
    if let Ok(entries) = std::fs::read_dir(&docker) {
        files.extend(entries.map(|e| e.unwrap().path().display().to_string()));
    }
    for file in files {
        let (code, out, err) = run(&["config", "check", &file]);
        assert_eq!(code, 0, "{file}:\n{out}{err}");
        assert!(out.contains("valid"), "{out}");
    }
}

#[test]
fn config_check_lists_every_mistake_with_its_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[node]\nid = \"x\"\nnmae = \"typo\"\n\n[api]\nlisten = 8080\n\n[store]\nbackend = \"postgres\"\n[store.postgres]\npool_size = 4\n",
    )
    .unwrap();
    let (code, out, err) = run(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("3 errors"), "{err}");
    assert!(err.contains("line 3:1: node.nmae: unknown field"), "{err}");
    assert!(
        err.contains("line 6:1: api.listen: 8080 is not of type \"string\""),
        "{err}"
    );
    assert!(
        err.contains("store.postgres.url: missing required field"),
        "{err}"
    );
}

#[test]
fn demo_serves_health_and_keeps_its_state_and_token_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = [
        "demo",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];

    let node = Node::start(&args);
    assert!(node.banner.contains("(new; saved in"), "{}", node.banner);
    assert!(
        node.banner.contains("curl "),
        "the banner says what to try next:\n{}",
        node.banner
    );
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(node.banner.contains(&token));
    let (status, health) = node.get("/api/v1/health", None);
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "up");
    assert!(
        component(&health, "store")["detail"]
            .as_str()
            .unwrap()
            .starts_with("sqlite")
    );
    assert!(
        component(&health, "bus")["detail"]
            .as_str()
            .unwrap()
            .starts_with("embedded log")
    );
    assert_eq!(node.get("/api/v1/whoami", Some(&token)).0, 200);
    assert_eq!(node.get("/api/v1/whoami", Some("lbt_forged")).0, 401);
    assert_eq!(node.stop(), 0);

    let node = Node::start(&args);
    assert!(
        node.banner.contains(&format!("{token}  (from")),
        "{}",
        node.banner
    );
    assert_eq!(node.get("/api/v1/whoami", Some(&token)).0, 200);
    assert_eq!(
        event_types(&node, &token),
        ["node.started", "node.stopped", "node.started"]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("admin-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the token file is readable by others: {mode:o}"
        );
    }
}

fn get_text(url: &str) -> (u16, String) {
    let resp = reqwest::blocking::get(url).unwrap();
    (resp.status().as_u16(), resp.text().unwrap())
}

#[test]
fn demo_anchors_sample_events_auditors_verify_them_and_audit_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(&[
        "demo",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let (status, health) = node.get("/api/v1/health", None);
    assert_eq!(status, 200);
    let ledger = component(&health, "ledger")["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    for channel in ["claims", "customs", "land", "bank"] {
        assert!(ledger.contains(channel), "{ledger}");
        let (status, cp) = get_text(&format!("{}/api/v1/ledger/{channel}/checkpoint", node.url));
        assert_eq!(status, 200, "{channel}");
        assert!(
            cp.starts_with(&format!("ledgerbridge.local/demo/{channel}\n")),
            "{cp}"
        );
    }
    // An auditor downloads the keys, an entry's proof and leaf data, and verifies offline.
    let (_, keys) = get_text(&format!("{}/api/v1/ledger/claims/keys", node.url));
    let (_, proof) = get_text(&format!(
        "{}/api/v1/ledger/claims/entries/2/proof",
        node.url
    ));
    let (_, entry) = node.get("/api/v1/ledger/claims/entries/2", None);
    use base64::Engine as _;
    let leaf = base64::engine::general_purpose::STANDARD
        .decode(entry["leaf_data"].as_str().unwrap())
        .unwrap();
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p.display().to_string()
    };
    let (keys, proof, leaf) = (
        write("keys", keys.as_bytes()),
        write("p.tlog-proof", proof.as_bytes()),
        write("leaf", &leaf),
    );
    let (code, out, err) = run(&["verify", "--trust", &keys, "--leaf-data", &leaf, &proof]);
    assert_eq!(code, 0, "{out}{err}");
    // The tree has grown by the time the proof is fetched: the pipeline anchors as it runs.
    let size: u64 = out
        .split("OK: entry 2 is in log ledgerbridge.local/demo/claims at tree size ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(size >= 3, "{out}");
    assert_eq!(node.stop(), 0);

    let data_arg = data.to_str().unwrap();
    let (code, out, err) = run(&["ledger", "audit", "--data-dir", data_arg]);
    assert_eq!(code, 0, "{out}{err}");
    // The four domain channels and the alerts channel.
    assert_eq!(out.matches(": OK").count(), 5, "{out}");
    assert!(out.contains("alerts"), "{out}");

    // Somebody edits a stored entry behind the ledger's back.
    {
        use diesel::{Connection, RunQueryDsl};
        let mut c = diesel::SqliteConnection::establish(
            data.join("ledgerbridge.sqlite3").to_str().unwrap(),
        )
        .unwrap();
        diesel::sql_query(
            "UPDATE ledger_entries SET leaf_data = substr(leaf_data, 1, length(leaf_data) - 1) || x'ff' \
             WHERE channel = 'bank' AND idx = 1",
        )
        .execute(&mut c)
        .unwrap();
    }
    let (code, out, _) = run(&["ledger", "audit", "--data-dir", data_arg]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("bank: INCONSISTENT at entry 1: its leaf data no longer hashes"),
        "{out}"
    );
    let (code, out, _) = run(&[
        "ledger",
        "audit",
        "--data-dir",
        data_arg,
        "--channel",
        "claims",
    ]);
    assert_eq!(code, 0, "{out}");

    // Keys from the command line: rotation (a new key joins, the old one retires, both stay
    // published) and a member organisation's cosigner key imported.
    let ledger = |args: &[&str]| {
        let mut all = vec![
            "ledger",
            args[0],
            "--data-dir",
            data_arg,
            "--channel",
            "claims",
        ];
        all.extend(&args[1..]);
        run(&all)
    };
    let (code, old, _) = ledger(&["keys"]);
    assert_eq!(code, 0);
    let (code, new, err) = ledger(&["add-key"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ledger(&["retire-key", old.trim()]);
    assert_eq!(code, 0, "{err}");
    let org = ledgerbridge_ledger_core::note::SignerKey::generate(
        "insurer.example",
        ledgerbridge_ledger_core::note::KeyType::Cosignature,
    )
    .unwrap();
    let org_vkey = org.verifier().to_vkey();
    let (code, out, err) = ledger(&["import-cosigner", &org_vkey]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, keys, _) = ledger(&["keys"]);
    let keys: Vec<&str> = keys.lines().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&new.trim()) && keys.contains(&old.trim()));
    assert_eq!(keys.last(), Some(&org_vkey.as_str()));
    let (code, _, err) = ledger(&["retire-key", new.trim()]);
    assert_eq!(code, 1, "the last key cannot be retired");
    assert!(err.contains("last active log key"), "{err}");
}

#[test]
fn a_busy_port_or_a_locked_data_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(&[
        "demo",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let addr = node.url.trim_start_matches("http://").to_owned();

    let other = dir.path().join("other");
    let (code, _, err) = run(&[
        "demo",
        "--data-dir",
        other.to_str().unwrap(),
        "--listen",
        &addr,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");

    let (code, _, err) = run(&[
        "demo",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("is in use by another process"), "{err}");
}

#[test]
fn verify_checks_a_cosigned_proof_offline_and_names_each_failure() {
    use ledgerbridge_ledger_core::checkpoint::Checkpoint;
    use ledgerbridge_ledger_core::cosignature::cosign;
    use ledgerbridge_ledger_core::note::{KeyType, Note, SignerKey};
    use ledgerbridge_ledger_core::proof_file::ProofFile;
    use ledgerbridge_ledger_core::{MemoryTree, inclusion_proof, leaf_hash};

    let dir = tempfile::tempdir().unwrap();
    let mut tree = MemoryTree::new();
    for i in 0..10 {
        tree.push(leaf_hash(format!("leaf {i}").as_bytes()));
    }
    let origin = "ledgerbridge.example/test/claims";
    let log = SignerKey::generate(origin, KeyType::Ed25519).unwrap();
    let orgs: Vec<SignerKey> = ["insurer.example", "regulator.example"]
        .iter()
        .map(|n| SignerKey::generate(n, KeyType::Cosignature).unwrap())
        .collect();
    let cp = Checkpoint {
        origin: origin.into(),
        size: 10,
        root: tree.root(),
        extensions: vec![],
    };
    let mut note = Note::sign(&cp.to_text(), &log).unwrap();
    cosign(&mut note, &orgs[0], 1_795_000_000).unwrap();
    let file = ProofFile {
        extra: None,
        index: 3,
        proof: inclusion_proof(&tree, 3, 10).unwrap(),
        checkpoint: note,
    };

    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p.display().to_string()
    };
    let trust = write(
        "trust.vkeys",
        format!(
            "{}\n{}\n{}\n",
            log.verifier(),
            orgs[0].verifier(),
            orgs[1].verifier()
        )
        .as_bytes(),
    );
    let proof = write("entry.tlog-proof", file.to_text().as_bytes());
    let leaf = write("leaf", b"leaf 3");
    let wrong_leaf = write("wrong", b"leaf 4");

    let (code, out, err) = run(&[
        "verify",
        "--trust",
        &trust,
        "--policy",
        "1-of-2",
        "--leaf-data",
        &leaf,
        &proof,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("OK: entry 3 is in log ledgerbridge.example/test/claims at tree size 10"),
        "{out}"
    );
    assert!(out.contains("cosigned by insurer.example"), "{out}");

    let failures = [
        (
            vec!["--policy", "2-of-2", "--leaf-data", &leaf],
            "FAILED: too few cosignatures: 1 of the 2 required",
        ),
        (
            vec!["--policy", "1-of-2", "--leaf-data", &wrong_leaf],
            "FAILED: proof does not match root",
        ),
        (
            vec![
                "--policy",
                "1-of-2",
                "--origin",
                "other/log",
                "--leaf-data",
                &leaf,
            ],
            "FAILED: the checkpoint is from log",
        ),
        (
            vec!["--policy", "5-of-2", "--leaf-data", &leaf],
            "FAILED: malformed: policy `5-of-2`",
        ),
    ];
    for (extra, want) in failures {
        let mut args = vec!["verify", "--trust", &trust];
        args.extend(extra);
        args.push(&proof);
        let (code, out, err) = run(&args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.starts_with(want), "{args:?}: {err}");
    }
    let tampered = write(
        "tampered.tlog-proof",
        file.to_text().replacen("\n10\n", "\n11\n", 1).as_bytes(),
    );
    let (code, _, err) = run(&[
        "verify",
        "--trust",
        &trust,
        "--leaf-data",
        &leaf,
        "--policy",
        "1-of-2",
        &tampered,
    ]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("FAILED: bad signature by ledgerbridge.example/test/claims"),
        "{err}"
    );
    let stranger = SignerKey::generate("stranger.example/log", KeyType::Ed25519).unwrap();
    let other_trust = write(
        "other.vkeys",
        format!("{}\n", stranger.verifier()).as_bytes(),
    );
    let (code, _, err) = run(&[
        "verify",
        "--trust",
        &other_trust,
        "--leaf-data",
        &leaf,
        &proof,
    ]);
    assert_eq!(code, 1);
    assert!(err.starts_with("FAILED: unknown key"), "{err}");
}

#[test]
fn serve_runs_on_postgres_and_kafka() {
    let kafka =
        std::env::var("LEDGERBRIDGE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let db = ledgerbridge_store::testing::TestStore::postgres("cli_serve");
    let pg_url = db.location.clone();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("cli{}.", std::process::id());
    let config = format!(
        r#"
[node]
id = "hospital-a"
data_dir = "{data}"

[api]
listen = "127.0.0.1:0"

[store]
backend = "postgres"
[store.postgres]
url = "{pg_url}"

[bus]
backend = "kafka"
topic_prefix = "{prefix}"
[bus.kafka]
bootstrap_servers = "{kafka}"
# tansu 0.6 needs one record per batch for consumers that resume mid-batch.
properties = {{ "batch.num.messages" = "1" }}
"#,
        data = dir.path().join("data").display(),
    );
    let file = dir.path().join("node.toml");
    std::fs::write(&file, config).unwrap();
    let (code, out, err) = run(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");

    let node = Node::start(&["serve", "--config", file.to_str().unwrap()]);
    assert!(node.banner.contains("production node"), "{}", node.banner);
    let token = std::fs::read_to_string(dir.path().join("data/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        !node.banner.contains(&token),
        "serve must not print the token"
    );
    let (status, health) = node.get("/api/v1/health", None);
    assert_eq!(status, 200, "{health}");
    assert!(
        component(&health, "store")["detail"]
            .as_str()
            .unwrap()
            .starts_with("postgres ")
    );
    assert!(
        component(&health, "bus")["detail"]
            .as_str()
            .unwrap()
            .starts_with("kafka ")
    );
    assert_eq!(event_types(&node, &token), ["node.started"]);
    assert_eq!(node.stop(), 0);
}

/// A node whose connectors register their schemas in another node's registry (`[registry] url`),
/// as with an external Confluent-compatible registry.
#[test]
fn connectors_can_use_an_external_registry() {
    let dir = tempfile::tempdir().unwrap();
    let a_data = dir.path().join("a");
    let a = Node::start(&[
        "demo",
        "--data-dir",
        a_data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let b_data = dir.path().join("b");
    let config = format!(
        r#"
[node]
id = "b"
data_dir = "{data}"
[api]
listen = "127.0.0.1:0"
[registry]
url = "{url}/registry"
token = "file:{token}"
[samples]
enabled = true
rate = 50.0
"#,
        data = b_data.display(),
        url = a.url,
        token = a_data.join("admin-token").display(),
    );
    let file = dir.path().join("b.toml");
    std::fs::write(&file, config).unwrap();
    let b = Node::start(&["serve", "--config", file.to_str().unwrap()]);
    let subject = "raw.sample-bank-ledgerbridge.raw.sample_bank.accounts";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, subjects) = a.get("/registry/subjects", None);
        let (_, mine) = b.get("/registry/subjects", None);
        let has = |v: &Value| v.as_array().unwrap().iter().any(|s| s == subject);
        if has(&subjects) {
            assert!(
                !has(&mine),
                "registered in the external registry, not the node's own"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{subject} never registered in A: {subjects}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(b.stop(), 0);
    assert_eq!(a.stop(), 0);
}

/// The demo's sample connectors controlled over HTTP: status, pause, rewind, resume, connection
/// test, discovery, quarantine, and the errors of each.
#[test]
fn connectors_are_controlled_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(&[
        "demo",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let token = Some(token.trim());
    let his = "/api/v1/connectors/sample-his";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, s) = node.get(his, token);
        // The hospitals and procedure codes are reference data, there from the start.
        if s["offsets"]["hospitals"].is_object() && s["offsets"]["procedure_codes"].is_object() {
            break;
        }
        assert!(Instant::now() < deadline, "sample-his read nothing: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(node.get("/api/v1/connectors", None).0, 401);
    let (status, list) = node.get("/api/v1/connectors", token);
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 5, "{list}");

    assert_eq!(
        node.post(&format!("{his}/pause"), token, Value::Null).0,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.get(his, token).1["status"]["state"] != "paused" {
        assert!(Instant::now() < deadline, "not paused");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, moved) = node.post(
        &format!("{his}/rewind"),
        token,
        serde_json::json!({"stream": "hospitals", "to": "beginning"}),
    );
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["streams"], serde_json::json!(["hospitals"]));
    let (_, detail) = node.get(his, token);
    assert!(
        detail["offsets"]["hospitals"].is_null(),
        "offset removed: {detail}"
    );
    assert!(
        detail["offsets"]["procedure_codes"].is_object(),
        "other tables untouched: {detail}"
    );
    assert_eq!(
        detail["status"]["state"], "paused",
        "a rewind keeps the connector paused"
    );
    let (status, err) = node.post(
        &format!("{his}/rewind"),
        token,
        serde_json::json!({"stream": "nope", "to": "beginning"}),
    );
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no stream `nope`"),
        "{err}"
    );
    let (status, err) = node.post(
        &format!("{his}/rewind"),
        token,
        serde_json::json!({"to": "sideways"}),
    );
    assert_eq!(status, 400, "{err}");
    assert_eq!(
        node.post("/api/v1/connectors/nope/pause", token, Value::Null)
            .0,
        404
    );

    assert_eq!(
        node.post(&format!("{his}/resume"), token, Value::Null).0,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node.get(his, token).1["offsets"]["hospitals"].is_object() {
        assert!(
            Instant::now() < deadline,
            "hospitals not read again after the rewind"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, test) = node.post(&format!("{his}/test"), token, Value::Null);
    assert_eq!(status, 200);
    assert_eq!(test["ok"], true, "{test}");
    let (status, tables) = node.get(&format!("{his}/tables"), token);
    assert_eq!(status, 200);
    let hospitals = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "hospitals")
        .unwrap();
    assert_eq!(hospitals["primary_key"], serde_json::json!(["id"]));
    let (status, q) = node.get("/api/v1/quarantine?source=sample-his", token);
    assert_eq!(status, 200);
    assert!(q.is_array());
    assert_eq!(node.get("/api/v1/quarantine?limit=0", token).0, 400);
    assert_eq!(node.stop(), 0);
}

/// Mappings over HTTP on the demo: its sample mappings turn the sample systems' rows into
/// canonical events; a malformed mapping file is refused with every error and its line; a
/// mapping reading a column the source does not have is refused at deploy time; a dry-run on a
/// connector's latest rows publishes nothing; a breaking schema change is refused with its
/// reasons and a compatible one is accepted.
#[test]
fn mappings_are_deployed_checked_and_dry_run_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let node = Node::start(&[
        "demo",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let token = std::fs::read_to_string(data.join("admin-token")).unwrap();
    let token = Some(token.trim());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, m) = node.get("/api/v1/mappings", token);
        if m["stats"]["events"].as_u64().unwrap_or(0) >= 5 {
            assert_eq!(m["active"].as_array().unwrap().len(), 12, "{m}");
            assert_eq!(
                m["stats"]["quarantined"], 0,
                "the sample data maps cleanly: {m}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no canonical events: {m}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Provenance of an anchored canonical event, in one call: the first customs entry after the
    // demo's three sample events.
    let deadline = Instant::now() + Duration::from_secs(60);
    let event_id = loop {
        let (status, entry) = node.get("/api/v1/ledger/customs/entries/3", None);
        if status == 200 {
            break entry["event_id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "nothing anchored in customs");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        node.get(&format!("/api/v1/provenance/{event_id}"), None).0,
        401
    );
    let (status, p) = node.get(&format!("/api/v1/provenance/{event_id}"), token);
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["channel"], "customs");
    assert_eq!(p["index"], 3);
    assert!(
        p["source"]["connector"]
            .as_str()
            .unwrap()
            .starts_with("sample-"),
        "{p}"
    );
    assert!(
        p["raw"]["topic"]
            .as_str()
            .unwrap()
            .starts_with("raw.sample-"),
        "{p}"
    );
    assert_eq!(p["canonical"]["event_id"], event_id.as_str());
    assert!(p["mapping"]["version"].as_u64().is_some(), "{p}");
    assert!(
        p["proof"]
            .as_str()
            .unwrap()
            .starts_with("c2sp.org/tlog-proof@v1"),
        "{p}"
    );
    let event_type = p["event_type"].as_str().unwrap();
    let schemas = node.get("/api/v1/schemas", None).1;
    let key_fields: Vec<String> = schemas
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["event_type"] == event_type)
        .unwrap()["key"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let key: Vec<String> = key_fields
        .iter()
        .map(|k| match &p["canonical"]["data"][k] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let (status, by_key) = node.get(
        &format!(
            "/api/v1/provenance?event_type={event_type}&key={}",
            key.join(",")
        ),
        token,
    );
    assert_eq!(status, 200, "{by_key}");
    assert_eq!(
        by_key["event_id"],
        event_id.as_str(),
        "the business key finds the same record"
    );

    let malformed = "[mapping]\nname = \"x\"\nversion = 0\n\n[fields]\nfoo = { from = \"a\", as = \"money\" }\n";
    let (status, err) = node.post(
        "/api/v1/mappings",
        token,
        serde_json::json!({"spec": malformed}),
    );
    assert_eq!(status, 422, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    for expected in [
        "line 3:1: mapping.version: expected a whole number of at least 1",
        "mapping.source: missing",
        "line 6:",
        "`money` is not a conversion",
    ] {
        assert!(
            message.contains(expected),
            "`{expected}` missing from:\n{message}"
        );
    }

    let (_, versions) = node.get("/api/v1/mappings/mall-customs-declarations", token);
    let v1 = versions[0]["spec"].as_str().unwrap().to_owned();
    let missing_column = v1
        .replace("version = 1\nsource", "version = 2\nsource")
        .replace("from = \"hbl_no\"", "from = \"house_bl_no\"");
    let (status, err) = node.post(
        "/api/v1/mappings",
        token,
        serde_json::json!({"spec": missing_column}),
    );
    assert_eq!(status, 422, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("fields.hbl_no") && message.contains("has no column `house_bl_no`"),
        "{message}"
    );

    let (status, results) = node.post(
        "/api/v1/mappings/dry-run",
        token,
        serde_json::json!({"mapping": "mall-orders", "connector": "sample-mall", "limit": 20}),
    );
    assert_eq!(status, 200, "{results}");
    let results = results.as_array().unwrap();
    assert!(!results.is_empty());
    assert!(
        results
            .iter()
            .all(|r| r["outcome"] == "event" || r["outcome"] == "failed")
    );
    let (status, one) = node.post(
        "/api/v1/mappings/dry-run",
        token,
        serde_json::json!({"spec": v1, "rows": [{"row": {"declaration_no": "D1", "clear_status_cd": "09"}}]}),
    );
    assert_eq!(status, 200);
    assert_eq!(one[0]["outcome"], "failed");
    let pointers: Vec<&str> = one[0]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert!(
        pointers.contains(&"/data/status") && pointers.contains(&"/data/declared_value_krw"),
        "{pointers:?}"
    );

    let (_, schemas) = node.get("/api/v1/schemas", None);
    let decl = schemas
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["event_type"] == "customs.declaration")
        .unwrap();
    let mut breaking = decl["schema"].clone();
    breaking["x-ledgerbridge"]["version"] = serde_json::json!(2);
    breaking["properties"]
        .as_object_mut()
        .unwrap()
        .remove("hbl_no");
    breaking["required"] = serde_json::json!(
        breaking["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| *r != "hbl_no")
            .collect::<Vec<_>>()
    );
    let (status, err) = node.post(
        "/api/v1/schemas",
        token,
        serde_json::json!({"schema": breaking}),
    );
    assert_eq!(status, 409, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("hbl_no"),
        "{err}"
    );
    let mut compatible = decl["schema"].clone();
    compatible["x-ledgerbridge"]["version"] = serde_json::json!(2);
    compatible["properties"]["remarks"] =
        serde_json::json!({"type": "string", "description": "free text"});
    let (status, added) = node.post(
        "/api/v1/schemas",
        token,
        serde_json::json!({"schema": compatible}),
    );
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["version"], 2);
    assert_eq!(node.stop(), 0);
}

/// The monitoring worker on the demo's sample systems (written fast): alerts of the shipped rules
/// appear through the API, each explained and pointing at anchored events.
/// Three detectors need reference data the transactions' rows do not carry (an account's
/// dormancy date, a policy's period, a parcel's owner on record): the demo maps the reference
/// tables too and the monitor joins them into the stream, so these rules fire live.
#[test]
fn reference_data_is_joined_into_the_stream_so_the_rules_needing_it_fire_live() {
    let dir = tempfile::tempdir().unwrap();
    let (node, token_text) = Node::demo(
        dir.path(),
        &ledgerbridge_config::DEMO_CONFIG.replace("rate = 5.0", "rate = 300.0\nanomaly_rate = 0.3"),
    );
    let token = Some(token_text.as_str());
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut waiting = vec![
        "bank.dormant-reactivation",
        "healthcare.treatment-outside-policy",
        "land.seller-not-owner",
    ];
    while !waiting.is_empty() {
        waiting.retain(|rule| {
            let (status, alerts) = node.get(&format!("/api/v1/alerts?rule={rule}"), token);
            assert_eq!(status, 200, "{alerts}");
            let Some(a) = alerts.as_array().and_then(|a| a.first()) else {
                return true;
            };
            let explanation = a["explanation"].as_str().unwrap();
            match *rule {
                "bank.dormant-reactivation" => {
                    assert!(explanation.contains("dormant since"), "{a}")
                }
                "healthcare.treatment-outside-policy" => {
                    assert!(
                        explanation.contains("policy_start_date")
                            || explanation.contains("policy_end_date"),
                        "{a}"
                    );
                }
                _ => assert!(explanation.contains("owner on record psn:"), "{a}"),
            }
            false
        });
        assert!(
            Instant::now() < deadline,
            "no alert of {waiting:?}: the reference data was not joined"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // The reference tables are mapped (and anchored) like the rest.
    let (_, mappings) = node.get("/api/v1/mappings", token);
    let names: Vec<&str> = mappings["active"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    for name in [
        "bank-accounts",
        "his-insurance-policies",
        "land-parcels",
        "land-titles",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    assert_eq!(node.stop(), 0);
}

#[test]
fn the_demo_raises_explained_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (node, token_text) = Node::demo(
        dir.path(),
        &ledgerbridge_config::DEMO_CONFIG.replace("rate = 5.0", "rate = 300.0\nanomaly_rate = 0.1"),
    );
    let token = Some(token_text.as_str());
    let deadline = Instant::now() + Duration::from_secs(120);
    let alerts = loop {
        let (status, alerts) = node.get("/api/v1/alerts?limit=50", token);
        assert_eq!(status, 200, "{alerts}");
        if alerts.as_array().is_some_and(|a| !a.is_empty()) {
            break alerts;
        }
        assert!(Instant::now() < deadline, "no alert raised");
        std::thread::sleep(Duration::from_millis(500));
    };
    let first = &alerts[0];
    assert!(first["rule_id"].as_str().unwrap().contains('.'), "{first}");
    assert!(
        !first["explanation"].as_str().unwrap().is_empty(),
        "{first}"
    );
    assert!(
        first["event_ids"].as_array().is_some_and(|e| !e.is_empty()),
        "{first}"
    );
    assert_eq!(node.get("/api/v1/alerts", None).0, 401);
    // The lifecycle: acknowledged and assigned, then a false positive; each change kept with who
    // made it and why.
    let id = first["id"].as_i64().unwrap();
    let (status, acked) = node.post(
        &format!("/api/v1/alerts/{id}/status"),
        token,
        serde_json::json!({"status": "acknowledged", "assignee": "analyst-kim", "comment": "looking"}),
    );
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["alert"]["status"], "acknowledged");
    assert_eq!(acked["alert"]["assignee"], "analyst-kim");
    // The same change again without a comment (a second click): accepted, nothing recorded.
    let (status, again) = node.post(
        &format!("/api/v1/alerts/{id}/status"),
        token,
        serde_json::json!({"status": "acknowledged", "assignee": "analyst-kim"}),
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["history"].as_array().map(Vec::len),
        Some(1),
        "{again}"
    );
    let (_, fp) = node.post(
        &format!("/api/v1/alerts/{id}/status"),
        token,
        serde_json::json!({"status": "false_positive", "comment": "a known wholesale buyer"}),
    );
    assert_eq!(fp["alert"]["status"], "false_positive");
    assert_eq!(
        fp["alert"]["assignee"], "analyst-kim",
        "kept when not given"
    );
    let history = fp["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1]["comment"], "a known wholesale buyer");
    assert_eq!(history[1]["actor"], "admin (created at first start)");
    assert_eq!(
        node.post(
            &format!("/api/v1/alerts/{id}/status"),
            token,
            serde_json::json!({"status": "closed"})
        )
        .0,
        400
    );
    assert_eq!(
        node.post(
            "/api/v1/alerts/999999/status",
            token,
            serde_json::json!({"status": "resolved", "comment": "gone"})
        )
        .0,
        404
    );
    // Closing a case needs a reason; an empty assignee hands the alert back.
    let (status, refused) = node.post(
        &format!("/api/v1/alerts/{id}/status"),
        token,
        serde_json::json!({"status": "resolved", "comment": "  "}),
    );
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("comment:")),
        "{refused}"
    );
    let (status, reopened) = node.post(
        &format!("/api/v1/alerts/{id}/status"),
        token,
        serde_json::json!({"status": "open", "assignee": "", "comment": "back to the queue"}),
    );
    assert_eq!(status, 200, "{reopened}");
    assert_eq!(reopened["alert"]["status"], "open");
    assert_eq!(reopened["alert"]["assignee"], Value::Null, "{reopened}");
    // Live to the dashboard: server-sent events, from the first alert on.
    let mut stream = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
        .get(format!("{}/api/v1/alerts/stream?after=0", node.url))
        .bearer_auth(token_text.trim())
        .send()
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("event: alert\nid: ") || !seen.contains("\n\n") {
        let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
        assert!(n > 0, "the stream ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let data = seen.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
    let streamed: Value = serde_json::from_str(data).unwrap();
    assert!(
        streamed["rule_id"].is_string() && streamed["explanation"].is_string(),
        "{streamed}"
    );
    drop(stream);
    // The whole pipeline for Prometheus.
    let (status, metrics) = get_text(&format!("{}/metrics", node.url));
    assert_eq!(status, 200);
    for family in [
        "ledgerbridge_connector_rows{connector=\"sample-mall\"}",
        "ledgerbridge_connector_lag_seconds{",
        "ledgerbridge_mapping_records{outcome=\"events\"}",
        "ledgerbridge_quarantine_open{stage=\"mapping\"}",
        "ledgerbridge_ledger_entries{channel=\"customs\"}",
        "ledgerbridge_alerts{",
        "ledgerbridge_anchor_events{outcome=\"anchored\"}",
        "ledgerbridge_anchor_latency_seconds{quantile=\"0.99\"}",
    ] {
        assert!(
            metrics.contains(family),
            "{family} missing from:\n{metrics}"
        );
    }
    assert_eq!(node.stop(), 0);
}

/// A real SMTP server (aiosmtpd, from PyPI) on loopback, writing every mail it accepts to a
/// maildir; stopped on drop.
struct Smtp {
    child: Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl Smtp {
    fn start(maildir: &Path) -> Self {
        Self::start_with(maildir, &[])
    }

    /// aiosmtpd with more options (`--tlscert`, `--tlskey`: STARTTLS, required).
    fn start_with(maildir: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (scripts/services.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            port,
            maildir: maildir.to_owned(),
        }
    }

    /// Every mail received so far, as text.
    fn mails(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }

    /// Waits for a mail whose text contains `needle`.
    fn wait_for(&self, needle: &str, within_secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(within_secs);
        loop {
            if let Some(m) = self.mails().into_iter().find(|m| m.contains(needle)) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no mail with {needle:?}; received: {:#?}",
                self.mails()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Hooks = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, Vec<u8>)>>>;

/// An internal CA and a server certificate for `localhost` it signed: (CA certificate, server
/// certificate, server key) PEM files in `dir`.
fn internal_ca_and_localhost_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let file = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl (scripts/services.sh installs it)");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ledgerbridge test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        file("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "cert.pem",
    ]);
    (file("ca.pem"), file("cert.pem"), file("key.pem"))
}

/// An HTTPS receiver (Python's http.server behind TLS with `cert`/`key`) appending each POSTed
/// body as a line to `log`; returns it with its port.
fn https_receiver(cert: &Path, key: &Path, log: &Path) -> (Child, u16) {
    const SERVER: &str = r#"
import http.server, ssl, sys
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(sys.argv[3], "ab") as f:
            f.write(body + b"\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = tls.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", SERVER])
        .args([cert, key, log])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("port: {line:?}"));
    (child, port)
}

/// Mail over STARTTLS (required: the relay refuses plain text) and the webhook over HTTPS, both
/// with a certificate of an internal CA the node trusts through `monitoring.tls_ca_file`.
#[test]
fn alerts_go_out_over_starttls_and_https_trusting_an_internal_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = internal_ca_and_localhost_certificate(dir.path());
    let smtp = Smtp::start_with(
        &dir.path().join("mail"),
        &[
            "--tlscert",
            cert.to_str().unwrap(),
            "--tlskey",
            key.to_str().unwrap(),
        ],
    );
    let hooks = dir.path().join("hooks.jsonl");
    let (mut receiver, hook_port) = https_receiver(&cert, &key, &hooks);
    let text = format!(
        r#"{demo}
[monitoring]
integrity_interval = "1s"
sequencing_lag_slo = "1ms"
tls_ca_file = "{cert}"
[monitoring.email]
smtp_url = "smtp://localhost:{port}?tls=required"
from = "ledgerbridge <alerts@example.org>"
[[monitoring.email.recipients]]
address = "analyst@example.org"
min_severity = "critical"
[monitoring.webhook]
url = "https://localhost:{hook_port}/hook"
min_severity = "critical"
"#,
        demo = ledgerbridge_config::DEMO_CONFIG.replace("rate = 5.0", "rate = 100.0"),
        cert = ca.display(),
        port = smtp.port,
    );
    let (node, _) = Node::demo(dir.path(), &text);
    let mail = smtp.wait_for("integrity.sequencing_lag", 120);
    assert!(mail.contains("Latest signed checkpoints"), "{mail}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let posted = loop {
        let lines = std::fs::read_to_string(&hooks).unwrap_or_default();
        if let Some(l) = lines
            .lines()
            .find(|l| l.contains("integrity.sequencing_lag"))
        {
            break l.to_owned();
        }
        assert!(Instant::now() < deadline, "nothing posted over HTTPS");
        std::thread::sleep(Duration::from_millis(300));
    };
    let alert: Value = serde_json::from_str(&posted).unwrap();
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert_eq!(node.stop(), 0);
    let _ = receiver.kill();
    let _ = receiver.wait();
}

/// A webhook receiver on loopback: records the signature header and body of every POST.
fn webhook_receiver() -> (String, Hooks) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let hooks: Hooks = Default::default();
    let seen = std::sync::Arc::clone(&hooks);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut data = Vec::new();
            let mut buf = [0u8; 8192];
            let (head_end, length) = loop {
                let Ok(n) = stream.read(&mut buf) else {
                    break (0, 0);
                };
                if n == 0 {
                    break (0, 0);
                }
                data.extend_from_slice(&buf[..n]);
                if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&data[..at]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    break (at + 4, length);
                }
            };
            while data.len() < head_end + length {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => data.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
            let signature = head.lines().find_map(|l| {
                l.to_lowercase()
                    .strip_prefix("x-ledgerbridge-signature:")
                    .map(|v| v.trim().to_owned())
            });
            seen.lock()
                .unwrap()
                .push((signature, data[head_end..].to_vec()));
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (url, hooks)
}

/// Issue 7's delivery and oversight end to end on the demo: every alert and every change of its
/// state anchored in the `alerts` channel; critical alerts mailed at once through a real SMTP
/// server and posted to a signed webhook, the others in a digest asked for through the API,
/// each mail with the latest signed checkpoints; suppressions mute without dropping; comments
/// kept; scheduled audits recorded with their results.
#[test]
fn alerts_are_anchored_mailed_posted_suppressed_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&dir.path().join("mail"));
    let (hook_url, hooks) = webhook_receiver();
    let secret = dir.path().join("hook.secret");
    std::fs::write(&secret, "hook-key-1").unwrap();
    let text = format!(
        r#"{demo}
[monitoring]
integrity_interval = "1s"
# Any wait between extraction and anchoring breaks this SLO: a critical integrity alert.
sequencing_lag_slo = "1ms"
[monitoring.email]
smtp_url = "smtp://127.0.0.1:{port}"
from = "ledgerbridge <alerts@example.org>"
[[monitoring.email.recipients]]
address = "analyst@example.org"
min_severity = "low"
[monitoring.webhook]
url = "{hook_url}"
secret = "file:{secret}"
min_severity = "critical"
[[monitoring.audits]]
name = "ledger-verify"
job = "verify_ledger"
schedule = "*/3 * * * * *"
[[monitoring.audits]]
name = "reconcile"
job = "reconcile"
schedule = "0 0 0 1 1 *"
[[monitoring.audits]]
name = "digest"
job = "digest"
schedule = "0 0 0 1 1 *"
"#,
        demo = ledgerbridge_config::DEMO_CONFIG
            .replace("rate = 5.0", "rate = 300.0\nanomaly_rate = 0.1"),
        port = smtp.port,
        secret = secret.display(),
    );
    let (node, token_text) = Node::demo(dir.path(), &text);
    let token = Some(token_text.as_str());
    let wait = |what: &str, secs: u64, mut f: Box<dyn FnMut() -> Option<Value> + '_>| -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "{what} within {secs} s");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let alerts = |rule: Option<&str>| -> Vec<Value> {
        let path = match rule {
            Some(r) => format!("/api/v1/alerts?limit=1000&rule={r}"),
            None => "/api/v1/alerts?limit=1000".into(),
        };
        let (status, list) = node.get(&path, token);
        assert_eq!(status, 200, "{list}");
        list.as_array().unwrap().clone()
    };
    // The critical integrity alert: anchored, mailed at once with the checkpoints, posted signed.
    let lag = wait(
        "an anchored sequencing-lag alert",
        120,
        Box::new(|| {
            alerts(Some("integrity.sequencing_lag"))
                .into_iter()
                .find(|a| a["ledger_index"].is_i64())
        }),
    );
    assert_eq!(lag["severity"], "critical");
    assert!(
        lag["explanation"]
            .as_str()
            .unwrap()
            .contains("above the SLO of 1 ms"),
        "{lag}"
    );
    let mail = smtp.wait_for("CRITICAL alert: integrity.sequencing_lag", 60);
    assert!(mail.contains("To: analyst@example.org"), "{mail}");
    assert!(mail.contains("above the SLO of 1 ms"), "{mail}");
    assert!(mail.contains("channel alerts:"), "{mail}");
    assert!(
        mail.contains("\n\u{2014} ledgerbridge") || mail.contains("=E2=80=94"),
        "a signed note: {mail}"
    );
    let hook = wait(
        "a webhook post",
        60,
        Box::new(|| {
            hooks
                .lock()
                .unwrap()
                .iter()
                .find(|(_, body)| String::from_utf8_lossy(body).contains("integrity.sequencing_lag"))
                .map(|(sig, body)| serde_json::json!({"sig": sig, "body": String::from_utf8_lossy(body)}))
        }),
    );
    let body = hook["body"].as_str().unwrap();
    let signature = hook["sig"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256=")
        .unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"hook-key-1");
    let tag: Vec<u8> = (0..signature.len() / 2)
        .map(|i| u8::from_str_radix(&signature[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    ring::hmac::verify(&key, body.as_bytes(), &tag).expect("the webhook signature verifies");
    // Rule alerts are anchored too: the ledger entry names the alert.
    let rule_alert = wait(
        "an anchored rule alert",
        120,
        Box::new(|| {
            alerts(None).into_iter().find(|a| {
                a["ledger_index"].is_i64()
                    && !a["rule_id"].as_str().unwrap().starts_with("integrity.")
            })
        }),
    );
    let id = rule_alert["id"].as_i64().unwrap();
    let (status, entry) = node.get(
        &format!(
            "/api/v1/ledger/alerts/entries/{}",
            rule_alert["ledger_index"]
        ),
        token,
    );
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["event_type"], "alert.raised");
    assert_eq!(entry["source_position"], format!("alert {id}"));
    // A comment is kept with who wrote it, and anchored like a change of status.
    let (status, commented) = node.post(
        &format!("/api/v1/alerts/{id}/comments"),
        token,
        serde_json::json!({"comment": "checked with the mall's sales ledger"}),
    );
    assert_eq!(status, 200, "{commented}");
    let last = commented["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "comment");
    assert_eq!(last["status"], rule_alert["status"]);
    assert_eq!(
        node.post(
            &format!("/api/v1/alerts/{id}/comments"),
            token,
            serde_json::json!({"comment": "  "})
        )
        .0,
        422
    );
    wait(
        "the comment anchored",
        30,
        Box::new(|| {
            let (_, d) = node.get(&format!("/api/v1/alerts/{id}"), token);
            d["history"]
                .as_array()
                .and_then(|h| h.last())
                .filter(|h| h["ledger_index"].is_i64())
                .cloned()
        }),
    );
    // Suppression: later alerts of the rule are stored, muted and not delivered.
    let rule = rule_alert["rule_id"].as_str().unwrap().to_owned();
    assert_eq!(
        node.post(
            "/api/v1/suppressions",
            token,
            serde_json::json!({"rule_id": " ", "reason": "x", "duration": "1h"})
        )
        .0,
        422
    );
    let (status, suppression) = node.post(
        "/api/v1/suppressions",
        token,
        serde_json::json!({"rule_id": rule, "reason": "known campaign, reviewed", "duration": "1h"}),
    );
    assert_eq!(status, 201, "{suppression}");
    let sid = suppression["id"].as_i64().unwrap();
    let muted = wait(
        &format!("a muted alert of {rule}"),
        150,
        Box::new(|| {
            alerts(None)
                .into_iter()
                .find(|a| a["suppressed_by"] == sid && a["ledger_index"].is_i64())
        }),
    );
    std::thread::sleep(Duration::from_secs(3));
    let (_, detail) = node.get(&format!("/api/v1/alerts/{}", muted["id"]), token);
    assert_eq!(detail["deliveries"], serde_json::json!([]), "{detail}");
    let (_, before) = node.get(&format!("/api/v1/alerts/{id}"), token);
    let delivery = &before["deliveries"][0];
    assert_eq!(delivery["recipient"], "analyst@example.org", "{before}");
    assert_eq!(delivery["mode"], "digest");
    assert_eq!(delivery["status"], "pending");
    let lift = |sid: i64| {
        support::http()
            .post(format!("{}/api/v1/suppressions/{sid}/lift", node.url))
            .bearer_auth(token_text.trim())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(lift(sid), 204);
    assert_eq!(lift(sid), 404);
    // The digest, asked for now: one mail listing the pending alerts, with the checkpoints.
    let (status, run) = node.post("/api/v1/audits/digest/run", token, Value::Null);
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["status"], "requested");
    let run_id = run["id"].as_i64().unwrap();
    let done = wait(
        "the digest run",
        60,
        Box::new(|| {
            let (_, r) = node.get(&format!("/api/v1/audits/runs/{run_id}"), token);
            (r["status"] != "requested" && r["status"] != "running").then_some(r)
        }),
    );
    assert_eq!(done["status"], "passed", "{done}");
    assert_eq!(done["trigger"], "manual");
    let digest = smtp.wait_for("[ledgerbridge] digest:", 30);
    assert!(digest.contains(&format!("alert #{id}")), "{digest}");
    assert!(digest.contains("channel alerts:"), "{digest}");
    let (_, after) = node.get(&format!("/api/v1/alerts/{id}"), token);
    assert_eq!(after["deliveries"][0]["status"], "sent", "{after}");
    // The scheduled ledger re-verification ran on its own, and passed.
    let verified = wait(
        "a scheduled ledger re-verification",
        30,
        Box::new(|| {
            let (_, runs) = node.get("/api/v1/audits/runs?audit=ledger-verify", token);
            runs.as_array()?
                .iter()
                .find(|r| r["status"] == "passed")
                .cloned()
        }),
    );
    assert_eq!(verified["trigger"], "schedule");
    // Re-verifying while the anchoring worker appends finds nothing wrong (one snapshot).
    let (_, runs) = node.get("/api/v1/audits/runs?audit=ledger-verify", token);
    for r in runs.as_array().unwrap() {
        assert!(
            ["passed", "running"].contains(&r["status"].as_str().unwrap()),
            "{r}"
        );
    }
    assert_eq!(alerts(Some("integrity.audit_finding")), Vec::<Value>::new());
    assert!(
        verified["summary"].as_str().unwrap().contains("intact"),
        "{verified}"
    );
    assert!(
        verified["details"]["alerts"]["entries"].as_u64().unwrap() > 0,
        "{verified}"
    );
    let (_, audits) = node.get("/api/v1/audits", token);
    assert_eq!(audits.as_array().unwrap().len(), 3, "{audits}");
    assert!(audits[0]["next_run"].is_string(), "{audits}");
    assert_eq!(
        node.post("/api/v1/audits/nope/run", token, Value::Null).0,
        404
    );
    assert_eq!(node.stop(), 0);
}

/// Rules through the API: a new rule dry-run over the events already in the ledger (nothing
/// stored), then stored as a version and run by the monitoring worker within seconds, alerts
/// recording that version; disabled by a later version; mistakes refused with their line.
#[test]
fn rules_are_edited_with_versions_and_dry_run_over_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let (node, token_text) = Node::demo(
        dir.path(),
        &ledgerbridge_config::DEMO_CONFIG.replace("rate = 5.0", "rate = 100.0"),
    );
    let token = Some(token_text.as_str());
    let put = |id: &str, body: Value| -> (u16, Value) {
        let resp = support::http()
            .put(format!("{}/api/v1/rules/{id}", node.url))
            .bearer_auth(token_text.trim())
            .json(&body)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    };
    let (status, rules) = node.get("/api/v1/rules", token);
    assert_eq!(status, 200, "{rules}");
    assert_eq!(rules.as_array().unwrap().len(), 14, "{rules}");
    assert!(
        rules
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["origin"] == "builtin")
    );
    let rule = |min: i64| {
        format!(
            r#"[[rules]]
id = "customs.large-declaration"
version = 1
severity = "low"
event_types = ["customs.declaration"]
explanation = "declaration {{key}}: {{values}}"
[rules.threshold]
where = [{{ field = "/data/declared_value_krw", ge = {min} }}]
"#
        )
    };
    // Wait for declarations in the ledger, then dry-run: every one would be flagged at 0 KRW,
    // none at a trillion.
    let dry = |min: i64| {
        node.post(
            "/api/v1/rules/customs.large-declaration/dry-run",
            token,
            serde_json::json!({ "toml": rule(min) }),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let everything = loop {
        let (status, run) = dry(0);
        assert_eq!(status, 200, "{run}");
        if run["matching_events"].as_u64().unwrap() >= 3 {
            break run;
        }
        assert!(Instant::now() < deadline, "no declaration anchored: {run}");
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(
        everything["alerts"].as_array().unwrap().len() as u64,
        everything["matching_events"].as_u64().unwrap(),
        "{everything}"
    );
    assert!(everything["events"].as_u64() > everything["matching_events"].as_u64());
    // A draft's alerts carry the version it would get if saved.
    assert_eq!(everything["alerts"][0]["rule_version"], 1, "{everything}");
    // A shipped rule's text, to edit: it parses back as the rule in force.
    let (_, shipped) = node.get("/api/v1/rules/bank.velocity-spike", token);
    let text = shipped["toml"]
        .as_str()
        .unwrap_or_else(|| panic!("{shipped}"));
    assert!(
        text.starts_with("[[rules]]") && text.contains("id = \"bank.velocity-spike\""),
        "{text}"
    );
    let (status, replay) = node.post(
        "/api/v1/rules/bank.velocity-spike/dry-run",
        token,
        serde_json::json!({ "toml": text }),
    );
    assert_eq!(status, 200, "{replay}");
    let (_, none) = dry(1_000_000_000_000);
    assert_eq!(none["alerts"], serde_json::json!([]), "{none}");
    assert_eq!(
        node.get("/api/v1/alerts?rule=customs.large-declaration", token)
            .1,
        serde_json::json!([])
    );
    // Mistakes, each with its line; a change needs a reason.
    let (status, bad) = put(
        "customs.large-declaration",
        // A placeholder a threshold does not fill.
        serde_json::json!({ "toml": rule(0).replace("{values}", "{median}"), "comment": "x" }),
    );
    assert_eq!(status, 422, "{bad}");
    let message = bad["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("line 6") && message.contains("median"),
        "{bad}"
    );
    assert_eq!(
        put(
            "customs.large-declaration",
            serde_json::json!({ "toml": rule(0), "comment": " " })
        )
        .0,
        422
    );
    assert_eq!(
        put(
            "customs.other",
            serde_json::json!({ "toml": rule(0), "comment": "x" })
        )
        .0,
        422
    );
    // Stored, then run live: alerts record version 1.
    let (status, v1) = put(
        "customs.large-declaration",
        serde_json::json!({ "toml": rule(0), "comment": "every declaration, for the pilot" }),
    );
    assert_eq!(status, 201, "{v1}");
    assert_eq!(v1["version"], 1);
    let deadline = Instant::now() + Duration::from_secs(60);
    let fired = loop {
        let (_, alerts) = node.get("/api/v1/alerts?rule=customs.large-declaration", token);
        if let Some(a) = alerts.as_array().and_then(|a| a.first()) {
            break a.clone();
        }
        assert!(Instant::now() < deadline, "the new rule raised nothing");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(fired["rule_version"], 1);
    assert_eq!(fired["severity"], "low");
    // A shipped rule's first edit continues its numbering.
    let (status, shipped) = put(
        "bank.velocity-spike",
        serde_json::json!({ "toml": rule(0).replace("customs.large-declaration", "bank.velocity-spike"), "comment": "replaced" }),
    );
    assert_eq!(status, 201, "{shipped}");
    assert_eq!(shipped["version"], 2);
    // Disabled by a later version; the history keeps both.
    let (status, v2) = put(
        "customs.large-declaration",
        serde_json::json!({ "toml": rule(0), "enabled": false, "comment": "pilot over" }),
    );
    assert_eq!(status, 201, "{v2}");
    assert_eq!(v2["version"], 2);
    let (_, detail) = node.get("/api/v1/rules/customs.large-declaration", token);
    assert_eq!(detail["rule"], Value::Null, "{detail}");
    assert_eq!(detail["versions"].as_array().unwrap().len(), 2, "{detail}");
    assert_eq!(detail["versions"][1]["comment"], "pilot over");
    let (_, rules) = node.get("/api/v1/rules", token);
    let listed = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "customs.large-declaration")
        .unwrap()
        .clone();
    assert_eq!(listed["enabled"], false, "{listed}");
    assert_eq!(node.get("/api/v1/rules/nope", token).0, 404);
    assert_eq!(node.stop(), 0);
}
