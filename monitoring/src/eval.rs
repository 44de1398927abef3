//! Evaluation against the load generator's labelled anomalies, and the throughput benchmark.
//!
//! [`generate`] writes a scenario with `ledgerbridge-samples` (SQLite file, manifest directory,
//! labels), [`load_events`] reads the rows back and maps them with the sample mapping files
//! into canonical events (in event-time order), [`evaluate`] feeds them to a [`Monitor`] and
//! scores every rule against the labels of its `kind`, [`bench`] measures throughput and the
//! p99 per-event detection time at a paced rate.
//!
//! Matching: an alert is a true positive when one of its events comes from a row of a label of
//! the rule's kind (the canonical event's `source.table`/`source.key` = the label's
//! `table`/`pk`); a label is found when an alert of the rule touches one of its rows.
//!
//! The reference tables (accounts, insurance policies, parcels, titles) are mapped like the
//! rest and replayed first: the rule files' lookups join them into the transactions, as the
//! monitoring worker does on the live stream.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ledgerbridge_mappings::{Catalog, Outcome, Pseudonymiser, Source};
use ledgerbridge_samples::labels::Label;
use ledgerbridge_samples::model::Domain;
use ledgerbridge_samples::run::{RunConfig, run};
use ledgerbridge_samples::sink::Target;
use serde_json::{Map, Value as J};

use crate::engine::{Alert, Monitor};
use crate::event;
use crate::rules::RuleSet;

/// What went wrong while preparing a scenario.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The load generator failed.
    #[error("generating the scenario: {0}")]
    Generate(#[from] ledgerbridge_samples::Error),
    /// Reading the SQLite file.
    #[error("reading {what} from the scenario database: {source}")]
    Sqlite {
        /// What was read.
        what: String,
        /// The error.
        source: rusqlite::Error,
    },
    /// A mapping file did not load.
    #[error("loading the sample mapping {name}: {message}")]
    Mapping {
        /// The mapping file.
        name: String,
        /// Why.
        message: String,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A label line or a manifest file that does not parse.
    #[error("{0}")]
    Format(String),
}

/// The time field that orders each event type.
const TIME_OF: &[(&str, &str)] = &[
    ("customs.order", "/data/ordered_at"),
    ("customs.declaration", "/data/declared_on"),
    ("customs.shipment", "/data/arrival_date"),
    ("healthcare.claim", "/data/claimed_at"),
    ("land.title-transfer", "/data/contract_date"),
    ("land.mortgage", "/data/registered_on"),
    ("bank.transfer", "/data/transferred_at"),
    ("bank.remittance", "/data/remitted_on"),
];

/// A generated scenario on disk.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The SQLite file.
    pub db: PathBuf,
    /// The manifest directory.
    pub manifests: PathBuf,
    /// The labels file.
    pub labels: PathBuf,
}

/// Writes a scenario of all four domains into `dir`: `count` row operations, a fraction
/// `anomaly_rate` of anomalies, seeded.
///
/// # Errors
/// The generator's error.
pub async fn generate(
    dir: &Path,
    seed: u64,
    count: u64,
    anomaly_rate: f64,
) -> Result<Scenario, EvalError> {
    let s = Scenario {
        db: dir.join("legacy.db"),
        manifests: dir.join("manifests"),
        labels: dir.join("labels.jsonl"),
    };
    std::fs::create_dir_all(&s.manifests).map_err(|source| EvalError::Io {
        path: s.manifests.clone(),
        source,
    })?;
    let cfg = RunConfig {
        domains: Domain::ALL.to_vec(),
        targets: vec![
            Target::Sqlite(s.db.clone()),
            Target::Directory(s.manifests.clone()),
        ],
        rate: None,
        count: Some(count),
        duration: None,
        seed,
        anomaly_rate,
        labels: Some(s.labels.clone()),
        create_schema: true,
        batch_size: 1000,
        start: chrono::NaiveDate::from_ymd_opt(2024, 1, 2)
            .and_then(|d| d.and_hms_opt(9, 0, 0))
            .unwrap_or_default(),
    };
    run(&cfg, std::future::pending::<()>()).await?;
    Ok(s)
}

/// Reads the labels file.
///
/// # Errors
/// An unreadable file or a line that is not a label.
pub fn read_labels(path: &Path) -> Result<Vec<Label>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| EvalError::Format(format!("{} line {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// Canonical events of a scenario, in event-time order, and the rows that failed to map.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// The events (full envelopes).
    pub events: Vec<J>,
    /// Rows that did not map, with the reason (should be none).
    pub failures: Vec<String>,
}

fn sql_value(v: rusqlite::types::ValueRef<'_>) -> J {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => J::Null,
        V::Integer(i) => J::from(i),
        V::Real(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        V::Text(t) => J::String(String::from_utf8_lossy(t).into_owned()),
        V::Blob(b) => J::String(String::from_utf8_lossy(b).into_owned()),
    }
}

fn sqlite_err(what: &str) -> impl Fn(rusqlite::Error) -> EvalError + '_ {
    move |source| EvalError::Sqlite {
        what: what.to_owned(),
        source,
    }
}

/// Reads every mapped table (and the manifest files) back and maps the rows into canonical
/// events with the sample mapping files, pseudonymising with `key`.
///
/// # Errors
/// The database, a manifest file or a mapping file that cannot be read.
pub fn load_events(s: &Scenario, key: &[u8]) -> Result<Events, EvalError> {
    let catalog = Catalog::builtin().map_err(|e| EvalError::Mapping {
        name: "schemas".into(),
        message: e.to_string(),
    })?;
    let p = Pseudonymiser::new(key);
    let conn = rusqlite::Connection::open(&s.db).map_err(sqlite_err("the file"))?;
    let mut out = Events::default();
    let apply = |mapping: &ledgerbridge_mappings::Mapping,
                 row: &Map<String, J>,
                 source: Source,
                 out: &mut Events| {
        match mapping.apply(row, &source, &p) {
            Outcome::Event(e) => out.events.push(e.json),
            Outcome::Skipped => {}
            Outcome::Failed(v) => out.failures.push(format!(
                "{} {}: {}",
                source.table,
                source.key,
                v.iter()
                    .map(|x| format!("{x:?}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    };
    for (name, text) in ledgerbridge_mappings::SAMPLE_SPECS {
        let mapping =
            ledgerbridge_mappings::load(text, name, &catalog).map_err(|e| EvalError::Mapping {
                name: (*name).to_owned(),
                message: e.to_string(),
            })?;
        let table = mapping.spec.table.clone();
        let connector = mapping.spec.connector.clone();
        let query = format!("SELECT * FROM {table} ORDER BY id");
        if table == "*" {
            load_manifests(s, &mapping, &connector, &mut |row, src| {
                apply(&mapping, row, src, &mut out);
            })?;
            continue;
        }
        let mut stmt = conn.prepare(&query).map_err(sqlite_err(&table))?;
        let cols: Vec<String> = stmt
            .column_names()
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let mut rows = stmt.query([]).map_err(sqlite_err(&table))?;
        while let Some(r) = rows.next().map_err(sqlite_err(&table))? {
            let mut row = Map::new();
            for (i, c) in cols.iter().enumerate() {
                row.insert(
                    c.clone(),
                    sql_value(r.get_ref(i).map_err(sqlite_err(&table))?),
                );
            }
            let id = row.get("id").map(event::key_text).unwrap_or_default();
            let src = Source {
                connector: connector.clone(),
                table: table.clone(),
                key: id.clone(),
                position: format!("rowid={id}"),
                extracted_at: 0,
            };
            apply(&mapping, &row, src, &mut out);
        }
    }
    let time_of = |e: &J| {
        let t = event::event_type(e);
        TIME_OF
            .iter()
            .find(|(et, _)| *et == t)
            .and_then(|(_, p)| event::field(e, p))
            .and_then(event::time_ms)
            // Reference data (accounts, policies, parcels, titles: no event time of their own)
            // first, as the state the lookups join.
            .unwrap_or(i64::MIN)
    };
    out.events.sort_by_cached_key(time_of);
    Ok(out)
}

fn load_manifests(
    s: &Scenario,
    _mapping: &ledgerbridge_mappings::Mapping,
    connector: &str,
    each: &mut dyn FnMut(&Map<String, J>, Source),
) -> Result<(), EvalError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| EvalError::Io { path, source }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&s.manifests)
        .map_err(io(&s.manifests))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    for f in files {
        let bytes = std::fs::read(&f).map_err(io(&f))?;
        let decoded = ledgerbridge_samples::manifest::decode_file(&bytes)
            .map_err(|e| EvalError::Format(format!("{}: {e}", f.display())))?;
        let file = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (i, d) in decoded.details.iter().enumerate() {
            let line = i + 2;
            let mut row: Map<String, J> = d
                .iter()
                .map(|(k, v)| ((*k).to_owned(), J::String(v.clone())))
                .collect();
            row.insert("rec_type".into(), J::String("D".into()));
            row.insert("_file".into(), J::String(file.clone()));
            row.insert("_line".into(), J::from(line));
            each(
                &row,
                Source {
                    connector: connector.to_owned(),
                    table: format!("courier_manifest/{file}"),
                    key: line.to_string(),
                    position: format!("{file}:{line}"),
                    extracted_at: 0,
                },
            );
        }
    }
    Ok(())
}

/// One rule's score.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleScore {
    /// Rule id.
    pub rule: String,
    /// Label kind.
    pub kind: String,
    /// Alerts raised.
    pub alerts: usize,
    /// Alerts that touch a labelled anomaly of the kind.
    pub true_alerts: usize,
    /// Labels of the kind.
    pub labels: usize,
    /// Labels touched by an alert.
    pub found: usize,
    /// Detection time per alert (processing time from the event reaching the monitor to the
    /// alert): median and p99, microseconds.
    pub latency_p50_us: f64,
    /// p99, microseconds.
    pub latency_p99_us: f64,
    /// A few unmatched alerts, for diagnosis.
    pub false_examples: Vec<String>,
}

impl RuleScore {
    /// true alerts / alerts (1 when there are none).
    #[must_use]
    pub fn precision(&self) -> f64 {
        ratio(self.true_alerts, self.alerts)
    }

    /// labels found / labels (1 when there are none).
    #[must_use]
    pub fn recall(&self) -> f64 {
        ratio(self.found, self.labels)
    }
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// The scores of every rule.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per rule.
    pub rules: Vec<RuleScore>,
    /// Events fed.
    pub events: usize,
    /// All alerts.
    pub alerts: Vec<Alert>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<38} {:>6} {:>6} {:>6} {:>9} {:>7} {:>9} {:>9}",
            "rule", "labels", "alerts", "found", "precision", "recall", "p50 µs", "p99 µs"
        )?;
        for r in &self.rules {
            writeln!(
                f,
                "{:<38} {:>6} {:>6} {:>6} {:>9.3} {:>7.3} {:>9.1} {:>9.1}",
                r.rule,
                r.labels,
                r.alerts,
                r.found,
                r.precision(),
                r.recall(),
                r.latency_p50_us,
                r.latency_p99_us
            )?;
        }
        write!(
            f,
            "{} events; targets: precision ≥ 0.90, recall ≥ 0.95",
            self.events
        )
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Feeds `events` (in order) to a fresh monitor of the rules and lookups of `set` and scores every rule with a `kind`
/// against the labels.
#[must_use]
pub fn evaluate(set: &RuleSet, events: &[J], labels: &[Label]) -> Report {
    let rules = &set.rules;
    let mut monitor = Monitor::new(rules.clone()).with_lookups(set.lookups.clone());
    let mut rows_of: HashMap<&str, (String, String)> = HashMap::new();
    for e in events {
        let table = e
            .pointer("/source/table")
            .map(event::key_text)
            .unwrap_or_default();
        let key = e
            .pointer("/source/key")
            .map(event::key_text)
            .unwrap_or_default();
        rows_of.insert(event::event_id(e), (table, key));
    }
    let mut alerts = Vec::new();
    let mut latency: HashMap<String, Vec<f64>> = HashMap::new();
    for e in events {
        let start = Instant::now();
        let out = monitor.process(e, 0);
        let us = start.elapsed().as_secs_f64() * 1e6;
        for a in out {
            latency.entry(a.rule_id.clone()).or_default().push(us);
            alerts.push(a);
        }
    }
    let mut by_kind: BTreeMap<&str, Vec<HashSet<(String, String)>>> = BTreeMap::new();
    for l in labels {
        by_kind.entry(l.kind.as_str()).or_default().push(
            l.rows
                .iter()
                .map(|r| (r.table.clone(), r.pk.to_string()))
                .collect(),
        );
    }
    let mut scores = Vec::new();
    for rule in rules {
        let Some(kind) = &rule.kind else { continue };
        let wanted = by_kind.get(kind.as_str()).map_or(&[][..], Vec::as_slice);
        let mut found = vec![false; wanted.len()];
        let mut score = RuleScore {
            rule: rule.id.clone(),
            kind: kind.clone(),
            labels: wanted.len(),
            ..RuleScore::default()
        };
        for a in alerts.iter().filter(|a| a.rule_id == rule.id) {
            score.alerts += 1;
            let rows: Vec<&(String, String)> = a
                .event_ids
                .iter()
                .filter_map(|id| rows_of.get(id.as_str()))
                .collect();
            let mut hit = false;
            for (i, l) in wanted.iter().enumerate() {
                if rows.iter().any(|r| l.contains(*r)) {
                    found[i] = true;
                    hit = true;
                }
            }
            if hit {
                score.true_alerts += 1;
            } else if score.false_examples.len() < 3 {
                score
                    .false_examples
                    .push(format!("{} [{rows:?}]", a.explanation));
            }
        }
        score.found = found.iter().filter(|f| **f).count();
        let mut l = latency.remove(&rule.id).unwrap_or_default();
        l.sort_by(f64::total_cmp);
        score.latency_p50_us = percentile(&l, 0.5);
        score.latency_p99_us = percentile(&l, 0.99);
        scores.push(score);
    }
    Report {
        rules: scores,
        events: events.len(),
        alerts,
    }
}

/// Throughput and paced latency of all rules on one core.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bench {
    /// Events fed back to back.
    pub events: usize,
    /// Events per second back to back.
    pub events_per_sec: f64,
    /// The paced rate.
    pub rate: f64,
    /// Events fed at the paced rate.
    pub paced_events: usize,
    /// Per-event detection time at the paced rate (from its scheduled arrival to the end of
    /// its processing, so queueing counts): p50, p99 and max, microseconds.
    pub p50_us: f64,
    /// p99.
    pub p99_us: f64,
    /// max.
    pub max_us: f64,
}

impl std::fmt::Display for Bench {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "throughput: {:.0} events/s back to back ({} events, all rules, one core)\n\
             paced at {:.0} events/s ({} events): detection p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs (limit p99 ≤ 100,000 µs)",
            self.events_per_sec,
            self.events,
            self.rate,
            self.paced_events,
            self.p50_us,
            self.p99_us,
            self.max_us
        )
    }
}

/// Feeds `events` back to back to a fresh monitor (throughput), then the first
/// `paced_seconds × rate` of them to another at `rate` events/s (latency).
#[must_use]
pub fn bench(set: &RuleSet, events: &[J], rate: f64, paced_seconds: f64) -> Bench {
    let fresh = || Monitor::new(set.rules.clone()).with_lookups(set.lookups.clone());
    let mut m = fresh();
    let start = Instant::now();
    let mut n_alerts = 0usize;
    for e in events {
        n_alerts += m.process(e, 0).len();
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    std::hint::black_box(n_alerts);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let paced = ((rate * paced_seconds) as usize).min(events.len());
    let mut m = fresh();
    let mut lat = Vec::with_capacity(paced);
    let t0 = Instant::now();
    for (i, e) in events.iter().take(paced).enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        std::hint::black_box(m.process(e, 0));
        lat.push(due.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss)]
    Bench {
        events: events.len(),
        events_per_sec: events.len() as f64 / secs,
        rate,
        paced_events: paced,
        p50_us: percentile(&lat, 0.5),
        p99_us: percentile(&lat, 0.99),
        max_us: lat.last().copied().unwrap_or(0.0),
    }
}
