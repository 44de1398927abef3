//! The sample legacy systems of the four reference domains, as the demo runs them (`[samples]
//! enabled`): embedded equivalents of the hospital HIS, the mall and customs, the land registry
//! and the core bank (one SQLite file) and a directory of fixed-width EUC-KR courier manifests,
//! in `<data_dir>/legacy`; the load generator of `ledgerbridge-samples` keeps writing to them, and
//! one connector per system reads them. Nothing here needs a database server.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ledgerbridge_config::Config;
use ledgerbridge_config::connectors::ConnectorConfig;
use ledgerbridge_samples::model::Domain;
use ledgerbridge_samples::run::RunConfig;
use ledgerbridge_samples::sink::{Sink, Target};

/// The running sample systems.
#[derive(Debug)]
pub(crate) struct LegacySamples {
    /// The connectors reading them.
    pub(crate) connectors: Vec<ConnectorConfig>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Tables of the SQLite sample database, by connector. Every table has an integer key and an
/// `updated_at` set on insert and update, so updates are captured too.
const SYSTEMS: &[(&str, &[&str])] = &[
    (
        "sample-his",
        &[
            "hospitals",
            "procedure_codes",
            "patients",
            "insurance_policies",
            "visits",
            "treatments",
            "invoices",
            "claims",
        ],
    ),
    ("sample-mall", &["mall_orders", "customs_declarations"]),
    (
        "sample-land",
        &[
            "districts",
            "parcels",
            "titles",
            "title_transfers",
            "mortgages",
        ],
    ),
    ("sample-bank", &["accounts", "transfers", "remittances"]),
];

/// The detail record of a courier manifest (`examples/README.md`; positions there are 1-based,
/// here 0-based): (name, start, width, type).
const MANIFEST: &[(&str, u32, u32, &str)] = &[
    ("rec_type", 0, 1, "string"),
    ("hbl_no", 1, 12, "string"),
    ("order_no", 13, 20, "string"),
    ("arrival_ymd", 33, 8, "date"),
    ("consignee_nm", 41, 20, "string"),
    ("consignee_tel", 61, 13, "string"),
    ("consignee_addr", 74, 80, "string"),
    ("item_nm", 154, 40, "string"),
    ("pkg_cnt", 194, 3, "long"),
    ("gross_wt", 197, 7, "long"),
    ("value_krw", 204, 11, "long"),
    ("customs_id", 215, 13, "string"),
];

/// The connectors of the sample systems in `dir`, as configuration text (validated like any
/// configuration file).
fn connectors_toml(dir: &Path) -> String {
    let db = dir.join("legacy.db");
    let mut toml = String::new();
    for (name, tables) in SYSTEMS {
        toml.push_str(&format!(
            "[[connectors]]\nname = \"{name}\"\ntype = \"sqlite\"\npoll_interval = \"1s\"\n\
             [connectors.database]\nurl = \"sqlite:{}\"\n",
            db.display()
        ));
        for t in *tables {
            toml.push_str(&format!(
                "[[connectors.database.tables]]\nname = \"{t}\"\ntimestamp_column = \"updated_at\"\n"
            ));
        }
    }
    toml.push_str(&format!(
        "[[connectors]]\nname = \"sample-manifests\"\ntype = \"files\"\npoll_interval = \"2s\"\n\
         [connectors.files]\ndir = \"{}\"\npattern = \"MF*.txt\"\nformat = \"fixed_width\"\nencoding = \"euc-kr\"\n\
         key = [\"hbl_no\"]\nrecord_type = {{ start = 0, keep = [\"D\"] }}\n",
        dir.join("manifests").display()
    ));
    for (name, start, width, kind) in MANIFEST {
        toml.push_str(&format!(
            "[[connectors.files.columns]]\nname = \"{name}\"\nstart = {start}\nwidth = {width}\ntype = \"{kind}\"\n"
        ));
    }
    toml
}

/// Where the sample systems live.
pub(crate) fn dir(config: &Config) -> PathBuf {
    config.node.data_dir.join("legacy")
}

/// The connectors of the sample systems, without starting anything.
pub(crate) fn connectors(config: &Config) -> Result<Vec<ConnectorConfig>> {
    let loaded = ledgerbridge_config::load_str(&connectors_toml(&dir(config)), "sample connectors")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(loaded.config.connectors)
}

/// Creates the sample systems (idempotently), starts the load generator and returns the
/// connectors that read them.
pub(crate) async fn start(config: &Config) -> Result<LegacySamples> {
    let dir = dir(config);
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests)
        .with_context(|| format!("creating {}", manifests.display()))?;
    let targets = vec![
        Target::Sqlite(dir.join("legacy.db")),
        Target::Directory(manifests),
    ];
    // The schema exists before any connector looks for it.
    let mut db = Sink::connect(&targets[0])
        .await
        .context("opening the sample database")?;
    for domain in Domain::ALL {
        db.create_schema(domain)
            .await
            .with_context(|| format!("creating the {} sample tables", domain.as_str()))?;
    }
    drop(db);
    let connectors = connectors(config)?;
    let run = RunConfig {
        domains: Domain::ALL.to_vec(),
        targets,
        rate: Some(config.samples.rate),
        count: None,
        duration: None,
        seed: config.samples.seed,
        anomaly_rate: config.samples.anomaly_rate,
        labels: Some(dir.join("labels.jsonl")),
        create_schema: false,
        batch_size: 10,
        start: chrono::NaiveDate::from_ymd_opt(2026, 1, 5)
            .and_then(|d| d.and_hms_opt(9, 0, 0))
            .unwrap_or_default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let generate = config.samples.rate > 0.0;
    let task = tokio::spawn(async move {
        if !generate {
            let _ = stopped.await;
            return;
        }
        let stopped = async {
            let _ = stopped.await;
        };
        match ledgerbridge_samples::run::run(&run, stopped).await {
            Ok(report) => {
                tracing::info!(rows = report.rows(), "the sample load generator stopped");
            }
            Err(e) => tracing::error!("the sample load generator failed: {e}"),
        }
    });
    tracing::info!(dir = %dir.display(), rate = config.samples.rate, "sample legacy systems running");
    Ok(LegacySamples {
        connectors,
        stop,
        task,
    })
}

impl LegacySamples {
    /// Stops the load generator after its current batch.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_connectors_are_a_valid_configuration() {
        let loaded = ledgerbridge_config::load_str(&connectors_toml(Path::new("/tmp/x")), "t")
            .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = loaded
            .config
            .connectors
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "sample-his",
                "sample-mall",
                "sample-land",
                "sample-bank",
                "sample-manifests"
            ]
        );
    }

    #[test]
    fn the_manifest_layout_matches_the_generator() {
        let detail = ledgerbridge_samples::manifest::DETAIL;
        assert_eq!(detail.len(), MANIFEST.len());
        for (field, (name, start, width, _)) in detail.iter().zip(MANIFEST) {
            assert_eq!(field.name, *name);
            assert_eq!(
                field.start - 1,
                *start as usize,
                "{name}: 1-based there, 0-based here"
            );
            assert_eq!(field.width, *width as usize, "{name}");
        }
    }
}
