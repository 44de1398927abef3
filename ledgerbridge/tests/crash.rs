//! Crash safety of the ledger with real processes: clients anchor events through the API while
//! the node is killed with SIGKILL at random moments, many times. After each restart every
//! acknowledged event must still be there (re-anchoring it returns `existing: true`), and at the
//! end the full audit must find the ledger intact.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ledgerbridge");
const ROUNDS: usize = 8;
const CLIENTS: usize = 4;

fn start(data: &str) -> (Child, String, String) {
    let mut child = Command::new(BIN)
        .args(["demo", "--data-dir", data, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut url = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("API and UI") {
            url = Some(rest.trim().trim_end_matches('/').to_owned());
        }
        if line.starts_with("Stop with Ctrl-C") {
            break;
        }
    }
    let token = std::fs::read_to_string(format!("{data}/admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    (child, url.expect("the node printed its URL"), token)
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
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Lcg(seed);
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let client = reqwest::blocking::Client::new();
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
                    let client = reqwest::blocking::Client::new();
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
