//! Command-line interface.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ledgerbridge_config::{Config, DEMO_CONFIG, load_file, load_str};

use crate::node::{self, Mode};

/// ledgerbridge connects legacy databases to a tamper-evident ledger shared by several
/// organisations: connectors pull records through Kafka, mappings turn them into canonical
/// events, the ledger anchors them under cosigned checkpoints, and monitoring flags abnormal
/// transactions.
///
/// Start with `ledgerbridge demo`: everything in one process on this machine, no Kafka or
/// PostgreSQL needed. Production nodes run `ledgerbridge serve --config FILE`.
#[derive(Debug, Parser)]
#[command(name = "ledgerbridge", version, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline in one process on the embedded default (SQLite + embedded log).
    ///
    /// State lives in the data directory and survives restarts; the admin token created on the
    /// first start is kept there too (file `admin-token`).
    Demo(DemoArgs),
    /// Run a production node from a configuration file (Kafka and PostgreSQL, or any mix).
    Serve(ServeArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Measure this machine: prints each figure beside its limit.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Inspect and check the node's ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Evaluate the monitoring rules on a generated scenario with labelled anomalies: prints, per
    /// rule, precision, recall and detection time, then the throughput and the detection latency
    /// at a paced rate.
    Eval(EvalArgs),
    /// Verify a proof file (c2sp.org/tlog-proof@v1) offline against trusted keys: the log's
    /// signature, the cosignatures the policy requires, and the inclusion of the leaf data.
    ///
    /// Exit status 0 when the proof holds, 1 with the reason when it does not.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Directory for the demo's state (database, event log, admin token)
    /// [default: ledgerbridge-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Address for the HTTP API and admin UI [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Start from this configuration instead of the built-in demo configuration
    /// (examples/config/demo.toml); --data-dir and --listen still apply when given.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// Rows the load generator writes over the four domains.
    #[arg(long, default_value_t = 60_000)]
    rows: u64,
    /// Seed of the scenario.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Share of labelled anomalies.
    #[arg(long, default_value_t = 0.03)]
    anomaly_rate: f64,
    /// Events per second for the paced latency measurement.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The node's configuration (see examples/config/production.toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Run only these stages (repeat, or separate with commas), so a site scales them out as
    /// separate processes on Kafka and PostgreSQL: `connector` (connectors and the sample
    /// systems), `mapper` (raw → canonical), `anchor` (canonical → ledger), `monitor` (rules →
    /// alerts), `api` (HTTP API and UI). Default: all of them.
    #[arg(long = "role", value_name = "ROLE", value_delimiter = ',')]
    roles: Vec<node::Role>,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Ledger append throughput, append→checkpoint latency and proof generation, on a fresh
    /// SQLite store (and PostgreSQL with --postgres), beside the raw insert and SHA-256 rates.
    Ledger {
        /// Entries to append.
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
        /// Entries per batch (one transaction and one signed checkpoint each).
        #[arg(long, default_value_t = 5_000)]
        batch: usize,
        /// Inclusion proofs to generate at the end.
        #[arg(long, default_value_t = 2_000)]
        proofs: usize,
        /// Also measure on this PostgreSQL database (its ledger tables are emptied first!).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
    },
    /// A legacy PostgreSQL table moved by a connector into its raw topic (snapshot, Avro,
    /// durable publish, offsets), beside the bus's raw produce rate for records of the same size.
    Connector {
        /// Rows in the source table.
        #[arg(long, default_value_t = 1_000_000)]
        rows: i64,
        /// Rows per chunk.
        #[arg(long, default_value_t = 10_000)]
        batch: u32,
        /// PostgreSQL server for the source table (a database `lb_bench_connector` is created
        /// there and dropped at the end).
        #[arg(
            long,
            value_name = "URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        postgres: String,
        /// Kafka bootstrap servers; the embedded log (fsync'd) when left out.
        #[arg(long, value_name = "HOST:PORT")]
        kafka: Option<String>,
    },
    /// Records per second through map + validate on one core (the customs declaration mapping),
    /// beside the rate of merely copying each record.
    Mapping {
        /// Records to map.
        #[arg(long, default_value_t = 500_000)]
        records: usize,
    },
    /// The whole pipeline in one process (SQLite source → bus → mapping → ledger): the peak rate
    /// on a backlog, then a sustained source rate with the extraction→checkpoint latency, beside
    /// the bus's pass-through rate.
    Pipeline {
        /// Rows of the backlog (peak phase).
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// Rows per second written to the source in the sustained phase.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Length of the sustained phase in seconds.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Kafka bootstrap servers; the embedded log when left out.
        #[arg(long, value_name = "HOST:PORT")]
        kafka: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Print a channel's published vkeys (log keys, retired ones included), one per line.
    Keys {
        #[command(flatten)]
        node: NodeArgs,
        /// The channel.
        #[arg(long, value_name = "NAME")]
        channel: String,
    },
    /// Rotate a channel's signing key: add a new key (old and new both sign from now on; retire
    /// the old one with `retire-key` once verifiers know the new vkey). Run with the node stopped.
    AddKey {
        #[command(flatten)]
        node: NodeArgs,
        /// The channel.
        #[arg(long, value_name = "NAME")]
        channel: String,
    },
    /// Import a member organisation's cosigner vkey (type 0x04) into a channel; it is then
    /// published beside the log's keys.
    ImportCosigner {
        #[command(flatten)]
        node: NodeArgs,
        /// The channel.
        #[arg(long, value_name = "NAME")]
        channel: String,
        /// The cosigner's vkey.
        vkey: String,
    },
    /// Stop signing with a key (it stays published so old checkpoints verify). Run with the
    /// node stopped.
    RetireKey {
        #[command(flatten)]
        node: NodeArgs,
        /// The channel.
        #[arg(long, value_name = "NAME")]
        channel: String,
        /// The vkey to retire.
        vkey: String,
    },
    /// Recompute every leaf hash, tile and checkpoint root, verify every checkpoint signature
    /// and the chain of blocks; report the first inconsistency and where it is (exit 1).
    Audit {
        #[command(flatten)]
        node: NodeArgs,
        /// Audit only this channel [default: every channel].
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
    },
}

/// Which node's state to open: a configuration file, or the demo's data directory.
#[derive(Debug, Args)]
struct NodeArgs {
    /// The node's configuration [default: the demo configuration].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With the demo configuration: its data directory [default: ledgerbridge-data].
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    data_dir: Option<PathBuf>,
}

impl NodeArgs {
    fn load(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => load_checked(path)?,
            None => {
                load_str(DEMO_CONFIG, "built-in demo configuration")
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .config
            }
        };
        if let Some(dir) = &self.data_dir {
            config.node.data_dir.clone_from(dir);
        }
        Ok(config)
    }
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file: print every error with its path and line (exit 1 if any).
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the JSON Schema of the configuration, every field with its description and default.
    Schema,
    /// Print an annotated example configuration.
    Example {
        /// Which example.
        #[arg(value_enum, default_value = "production")]
        kind: ExampleKind,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExampleKind {
    /// The embedded default used by `ledgerbridge demo`.
    Demo,
    /// A production node on Kafka and PostgreSQL.
    Production,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Trusted keys, one C2SP vkey per line (`#` comments allowed): type 0x01 keys are the
    /// log's checkpoint keys, type 0x04 keys the cosigning organisations.
    #[arg(long, value_name = "KEYS_FILE")]
    trust: PathBuf,
    /// How many of the cosigners in KEYS_FILE must have cosigned, as `k-of-n` (n = the number
    /// of cosigner keys) [default: all of them]
    #[arg(long, value_name = "K-OF-N")]
    policy: Option<String>,
    /// Require the checkpoint to come from this log origin.
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
    /// The proof file (.tlog-proof).
    proof: PathBuf,
    /// The exact leaf data the proof is about (the bytes that were hashed).
    #[arg(long, value_name = "FILE")]
    leaf_data: PathBuf,
}

pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => {
            let mut config = match &args.config {
                Some(path) => load_checked(path)?,
                None => {
                    load_str(DEMO_CONFIG, "built-in demo configuration")
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .config
                }
            };
            if let Some(dir) = args.data_dir {
                config.node.data_dir = dir;
            }
            if let Some(listen) = args.listen {
                config.api.listen = listen;
            }
            node::run(config, Mode::Demo, &node::Role::ALL)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let config = load_checked(&args.config)?;
            let roles = if args.roles.is_empty() {
                node::Role::ALL.to_vec()
            } else {
                args.roles
            };
            node::run(config, Mode::Serve, &roles)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { file }) => Ok(check(&file)),
        Command::Config(ConfigCommand::Schema) => {
            let schema = serde_json::to_string_pretty(&ledgerbridge_config::json_schema())?;
            println!("{schema}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Example { kind }) => {
            print!(
                "{}",
                match kind {
                    ExampleKind::Demo => DEMO_CONFIG,
                    ExampleKind::Production => ledgerbridge_config::PRODUCTION_EXAMPLE,
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => verify(&args),
        Command::Eval(args) => eval(&args),
        Command::Bench(BenchCommand::Ledger {
            entries,
            batch,
            proofs,
            postgres,
        }) => {
            anyhow::ensure!(
                entries > 0 && batch > 0,
                "--entries and --batch must be at least 1"
            );
            crate::bench::ledger(&crate::bench::LedgerBench {
                entries,
                batch,
                postgres,
                proofs,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Connector {
            rows,
            batch,
            postgres,
            kafka,
        }) => {
            anyhow::ensure!(
                rows > 0 && batch > 0,
                "--rows and --batch must be at least 1"
            );
            crate::bench_connector::connector(&crate::bench_connector::ConnectorBench {
                rows,
                batch,
                postgres,
                kafka,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Pipeline {
            rows,
            rate,
            seconds,
            kafka,
        }) => {
            anyhow::ensure!(
                rows > 0 && rate > 0 && seconds > 0,
                "--rows, --rate and --seconds must be at least 1"
            );
            crate::bench_pipeline::pipeline(&crate::bench_pipeline::PipelineBench {
                rows,
                rate,
                seconds,
                kafka,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(BenchCommand::Mapping { records }) => {
            anyhow::ensure!(records > 0, "--records must be at least 1");
            crate::bench_mapping::mapping(&crate::bench_mapping::MappingBench { records })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger(LedgerCommand::Keys { node, channel }) => {
            for vkey in crate::node::open_ledger_offline(&node.load()?)?.vkeys(&channel)? {
                println!("{vkey}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger(LedgerCommand::AddKey { node, channel }) => {
            let vkey = crate::node::open_ledger_offline(&node.load()?)?.add_log_key(&channel)?;
            println!("{vkey}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger(LedgerCommand::ImportCosigner {
            node,
            channel,
            vkey,
        }) => {
            let ledger = crate::node::open_ledger_offline(&node.load()?)?;
            println!("imported {}", ledger.import_cosigner(&channel, &vkey)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger(LedgerCommand::RetireKey {
            node,
            channel,
            vkey,
        }) => {
            crate::node::open_ledger_offline(&node.load()?)?.retire_log_key(&channel, &vkey)?;
            println!("retired {vkey}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger(LedgerCommand::Audit { node, channel }) => {
            crate::node::audit(&node.load()?, channel.as_deref())
        }
    }
}

fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    use ledgerbridge_ledger_core::proof_file::{Policy, ProofFile, verify};
    let read = |path: &Path| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let trust =
        String::from_utf8(read(&args.trust)?).context("the trusted keys file is not UTF-8")?;
    let proof_text =
        String::from_utf8(read(&args.proof)?).context("the proof file is not UTF-8")?;
    let leaf_data = read(&args.leaf_data)?;
    let outcome = Policy::from_vkeys(&trust, args.policy.as_deref()).and_then(|mut policy| {
        policy.origin.clone_from(&args.origin);
        let file = ProofFile::parse(&proof_text)?;
        verify(&file, &leaf_data, &policy).map(|verdict| (verdict, policy))
    });
    match outcome {
        Ok((verdict, policy)) => {
            let cp = &verdict.checkpoint;
            println!(
                "OK: entry {} is in log {} at tree size {}",
                verdict.index, cp.origin, cp.size
            );
            println!("  signed by the log key {}", verdict.log_signers.join(", "));
            for (name, ts) in &verdict.cosigners {
                println!("  cosigned by {name} at {ts} (seconds since the epoch)");
            }
            println!("  policy: {policy}, met");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Loads a configuration for running; any error stops the start with every issue listed.
fn load_checked(path: &Path) -> Result<Config> {
    let loaded = load_file(path).map_err(|e| anyhow::anyhow!("invalid configuration\n{e}"))?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded.config)
}

fn check(file: &Path) -> ExitCode {
    match load_file(file) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                println!("warning: {w}");
            }
            let c = &loaded.config;
            println!(
                "{}: valid (node {:?}, store {:?}, bus {:?}, API on {})",
                file.display(),
                c.node.id,
                c.store.backend,
                c.bus.backend,
                c.api.listen
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn eval(args: &EvalArgs) -> Result<ExitCode> {
    use ledgerbridge_monitoring::{eval, rules};
    let dir = tempfile::tempdir().context("temporary directory")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let scenario = runtime
        .block_on(eval::generate(
            dir.path(),
            args.seed,
            args.rows,
            args.anomaly_rate,
        ))
        .map_err(|e| anyhow::anyhow!("generating the scenario: {e}"))?;
    let labels = eval::read_labels(&scenario.labels).map_err(|e| anyhow::anyhow!("{e}"))?;
    let events = eval::load_events(&scenario, b"ledgerbridge eval")
        .map_err(|e| anyhow::anyhow!("mapping the scenario: {e}"))?;
    let rules = rules::builtin_set().map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = eval::evaluate(&rules, &events.events, &labels);
    println!("{report}");
    println!("{}", eval::bench(&rules, &events.events, args.rate, 2.0));
    println!(
        "targets (issue 7): recall ≥ 0.95 and precision ≥ 0.90 per rule; detection p99 ≤ 100 ms at 10,000 events/s"
    );
    Ok(ExitCode::SUCCESS)
}
