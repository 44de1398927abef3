//! `ledgerbridge-loadgen`: keep writing realistic rows of the sample legacy systems, with
//! labelled anomalies, at a chosen rate.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use chrono::NaiveDate;
use clap::{Parser, ValueEnum};
use ledgerbridge_samples::model::Domain;
use ledgerbridge_samples::run::{RunConfig, run};
use ledgerbridge_samples::sink::Target;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DomainArg {
    Healthcare,
    Customs,
    Land,
    Bank,
    All,
}

/// Write sample legacy rows (hospital HIS, mall orders + customs declarations + courier
/// manifests, land registry, core banking) with labelled anomalies.
///
/// Each system goes to the first --target that can hold it: hospital HIS and core banking to
/// MariaDB (mysql://), mall/customs and land registry to PostgreSQL (postgres://), all of them
/// to SQLite (sqlite:PATH), courier manifests to a directory.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Args {
    /// Which domain to generate.
    #[arg(long, value_enum, default_value = "all")]
    domain: DomainArg,
    /// Where to write: postgres://..., mysql://.../DB, sqlite:PATH or a directory for manifest
    /// files. Repeat for several.
    #[arg(long, required = true)]
    target: Vec<String>,
    /// Rows per second (0: as fast as possible).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Stop after this many rows (inserts, updates and manifest records).
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this long, e.g. "10m" or "1h 30m".
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// RNG seed: the same seed gives the same rows and labels on an empty database.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Fraction of generated events that are anomalies (0 to 1).
    #[arg(long, default_value_t = 0.02)]
    anomaly_rate: f64,
    /// Write one JSON line per injected anomaly to this file.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Apply the SQL schema (and seed data) of each target first; safe to repeat.
    #[arg(long)]
    create_schema: bool,
    /// Rows per transaction (default: a quarter of a second's worth, 1 to 1,000).
    #[arg(long)]
    batch: Option<usize>,
    /// First day of the simulated business clock (KST), YYYY-MM-DD.
    #[arg(long, default_value = "2024-01-02")]
    start: NaiveDate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.anomaly_rate) {
        anyhow::bail!(
            "--anomaly-rate must be between 0 and 1, got {}",
            args.anomaly_rate
        );
    }
    if args.rate < 0.0 {
        anyhow::bail!("--rate must not be negative");
    }
    let domains = match args.domain {
        DomainArg::Healthcare => vec![Domain::Healthcare],
        DomainArg::Customs => vec![Domain::Customs],
        DomainArg::Land => vec![Domain::Land],
        DomainArg::Bank => vec![Domain::Bank],
        DomainArg::All => Domain::ALL.to_vec(),
    };
    let targets = args
        .target
        .iter()
        .map(|t| Target::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .context("reading --target")?;
    let rate = (args.rate > 0.0).then_some(args.rate);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let batch = args
        .batch
        .unwrap_or_else(|| rate.map_or(1000, |r| (r / 4.0).clamp(1.0, 1000.0) as usize));
    let cfg = RunConfig {
        domains,
        targets,
        rate,
        count: args.count,
        duration: args.duration,
        seed: args.seed,
        anomaly_rate: args.anomaly_rate,
        labels: args.labels.clone(),
        create_schema: args.create_schema,
        batch_size: batch,
        start: args.start.and_hms_opt(9, 0, 0).unwrap_or_default(),
    };
    let stop = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("stopping after the current batch");
    };
    let started = std::time::Instant::now();
    let report = run(&cfg, stop).await.context("generating sample data")?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} rows in {} batches in {secs:.1} s ({:.0} rows/s), {} manifest files",
        report.rows(),
        report.batches,
        report.rows() as f64 / secs.max(1e-9),
        report.manifest_files
    );
    for (table, n) in &report.inserted {
        println!("  {table:<22} {n:>9} inserted");
    }
    println!("  {:<22} {:>9} updated", "(all tables)", report.updated);
    for (kind, n) in &report.labels {
        println!("  label {kind:<24} {n:>6}");
    }
    if let Some(p) = &args.labels {
        println!("labels: {}", p.display());
    }
    Ok(())
}
