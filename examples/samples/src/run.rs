//! The load-generation loop: generate a batch per domain, write it to the targets, label the
//! anomalies, pace to the rate, until the count, the duration or a stop signal.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use crate::Error;
use crate::domains::{self, GenConfig, Generator};
use crate::labels::{self, Label, LabelWriter, Written};
use crate::model::{Batch, Domain, Op, Row, System, table_spec};
use crate::pacing::TokenBucket;
use crate::sink::{Sink, Target};

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The domains.
    pub domains: Vec<Domain>,
    /// The targets; each system goes to the first target that can hold it.
    pub targets: Vec<Target>,
    /// Rows per second; `None` for as fast as possible.
    pub rate: Option<f64>,
    /// Stop after at least this many row operations (inserts, updates, manifest records).
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// The RNG seed.
    pub seed: u64,
    /// Fraction of generator steps that inject an anomaly.
    pub anomaly_rate: f64,
    /// Where to write the labels (JSON Lines).
    pub labels: Option<PathBuf>,
    /// Apply the schemas first.
    pub create_schema: bool,
    /// Rows per batch (one transaction per database per batch).
    pub batch_size: usize,
    /// Start of the business clock.
    pub start: NaiveDateTime,
}

/// What a run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Inserted rows per table (manifest records as `courier_manifest`).
    pub inserted: BTreeMap<String, u64>,
    /// Row updates.
    pub updated: u64,
    /// Labels per kind.
    pub labels: BTreeMap<String, u64>,
    /// Batches written.
    pub batches: u64,
    /// Manifest files written.
    pub manifest_files: u64,
}

impl RunReport {
    /// All row operations.
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.inserted.values().sum::<u64>() + self.updated
    }
}

fn hint(system: System) -> &'static str {
    match system {
        System::HospitalHis | System::CoreBanking => {
            "add a MariaDB target (mysql://root@127.0.0.1:3306/DB) or an SQLite one (sqlite:PATH)"
        }
        System::MallCustoms | System::LandRegistry => {
            "add a PostgreSQL target (postgres://postgres@127.0.0.1:5432/DB) or an SQLite one (sqlite:PATH)"
        }
        System::CourierManifests => "add a directory target for the manifest files",
    }
}

/// Which target index holds each system of the selected domains.
///
/// # Errors
/// A system that no target can hold.
pub fn route(domains: &[Domain], targets: &[Target]) -> Result<HashMap<System, usize>, Error> {
    let mut routes = HashMap::new();
    for d in domains {
        for s in d.systems() {
            let i = targets
                .iter()
                .position(|t| t.holds(*s))
                .ok_or(Error::Routing {
                    domain: d.as_str(),
                    system: s.name(),
                    hint: hint(*s),
                })?;
            routes.insert(*s, i);
        }
    }
    Ok(routes)
}

/// Run until the count or duration is reached, or `stop` completes.
///
/// # Errors
/// Routing, connection, schema or write failures; labels file errors.
pub async fn run(cfg: &RunConfig, stop: impl Future<Output = ()>) -> Result<RunReport, Error> {
    let routes = route(&cfg.domains, &cfg.targets)?;
    let mut sinks = Vec::new();
    for (i, t) in cfg.targets.iter().enumerate() {
        if !routes.values().any(|r| *r == i) {
            tracing::warn!(target = %t.display(), "no selected domain writes to this target");
        }
        sinks.push(Sink::connect(t).await?);
    }
    let mut offsets = HashMap::new();
    for d in &cfg.domains {
        for s in d.systems() {
            let Some(sink) = routes.get(s).and_then(|i| sinks.get_mut(*i)) else {
                continue;
            };
            if cfg.create_schema {
                sink.create_schema(*d).await?;
            }
            for t in d.tables().filter(|t| t.system == *s && !t.seeded) {
                offsets.insert(t.name.to_owned(), sink.max_id(t.name).await?);
            }
        }
    }
    let gen_cfg = GenConfig {
        seed: cfg.seed,
        anomaly_rate: cfg.anomaly_rate,
        start: cfg.start,
        offsets,
    };
    let mut gens: Vec<Box<dyn Generator>> = cfg
        .domains
        .iter()
        .map(|d| domains::generator(*d, &gen_cfg))
        .collect();
    let mut writer = cfg.labels.as_deref().map(LabelWriter::create).transpose()?;
    let batch_size = cfg.batch_size.max(1);
    let started = Instant::now();
    let deadline = cfg.duration.map(|d| started + d);
    let mut bucket = cfg
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| TokenBucket::new(r, batch_size as f64, started));
    let mut report = RunReport::default();
    let mut last_progress = started;
    tokio::pin!(stop);
    let mut stopped = false;
    let n_domains = gens.len().max(1) as u64;
    'outer: loop {
        for g in &mut gens {
            let done = cfg.count.is_some_and(|c| report.rows() >= c)
                || deadline.is_some_and(|d| Instant::now() >= d);
            if done || stopped {
                break 'outer;
            }
            // With several domains, a count is shared between them.
            let want = cfg.count.map_or(batch_size, |c| {
                let share = (c - report.rows()).div_ceil(n_domains);
                batch_size.min(usize::try_from(share).unwrap_or(batch_size))
            });
            let want = want.max(1);
            let mut batch = Batch::default();
            while batch.rows.len() < want {
                g.step(&mut batch);
            }
            if let Some(b) = bucket.as_mut() {
                #[allow(clippy::cast_precision_loss)]
                let wait = b.take(batch.rows.len() as f64, Instant::now());
                if !wait.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = &mut stop => break 'outer,
                    }
                }
            }
            let labels = write_batch(&mut sinks, &routes, g.domain(), &batch, &mut report).await?;
            if let Some(w) = writer.as_mut() {
                w.append(&labels)?;
            }
            for l in &labels {
                *report.labels.entry(l.kind.clone()).or_default() += 1;
            }
            report.batches += 1;
            if last_progress.elapsed() >= Duration::from_secs(5) {
                last_progress = Instant::now();
                #[allow(clippy::cast_precision_loss)]
                let rate = report.rows() as f64 / started.elapsed().as_secs_f64();
                tracing::info!(
                    rows = report.rows(),
                    labels = report.labels.values().sum::<u64>(),
                    rows_per_sec = rate.round(),
                    "writing"
                );
            }
            // Let a pending stop signal be seen between batches without waiting.
            tokio::select! {
                biased;
                () = &mut stop => { stopped = true; }
                () = std::future::ready(()) => {}
            }
        }
    }
    Ok(report)
}

/// Write one domain's batch: database targets first, then manifest files; then resolve the
/// labels against the primary keys they got.
async fn write_batch(
    sinks: &mut [Sink],
    routes: &HashMap<System, usize>,
    domain: Domain,
    batch: &Batch,
    report: &mut RunReport,
) -> Result<Vec<Label>, Error> {
    let mut written = Written::new();
    let mut systems: Vec<System> = domain.systems().to_vec();
    systems.sort_by_key(|s| *s == System::CourierManifests);
    for system in systems {
        let rows: Vec<&Row> = batch
            .rows
            .iter()
            .filter(|r| table_spec(r.table).is_some_and(|t| t.system == system))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let Some(sink) = routes.get(&system).and_then(|i| sinks.get_mut(*i)) else {
            continue;
        };
        written.extend(sink.write(&rows).await?);
        if system == System::CourierManifests {
            report.manifest_files += 1;
        }
        for r in rows {
            match r.op {
                Op::Insert => *report.inserted.entry(r.table.to_owned()).or_default() += 1,
                Op::Update { .. } => report.updated += 1,
            }
        }
    }
    batch
        .labels
        .iter()
        .map(|p| labels::resolve(p, &written))
        .collect()
}
