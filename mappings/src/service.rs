//! The mappings of a node: the catalog of canonical schemas, the stored and active mapping
//! versions, deployment (checked against the schema and the discovered source), dry-runs, and the
//! quarantine's dry-run, redrive and discard, each recorded with who did it.

use std::sync::{Arc, Mutex, RwLock};

use ledgerbridge_bus::Bus;
use ledgerbridge_config::{ConfigError, Issue};
use ledgerbridge_registry::Registry;
use ledgerbridge_store::{MappingVersion, Store, StoreError};
use serde::Serialize;
use serde_json::{Map, Value as J};

use crate::catalog::{CanonicalSchema, Catalog, Violation};
use crate::engine::{Mapping, Outcome, Pseudonymiser, Source, load};
use crate::worker::{MappingSet, Publisher, RawDecoder, WorkerContext, WorkerStats};

/// Why a mappings operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The mapping file or schema has mistakes (each with its path and line).
    #[error("{0}")]
    Invalid(ConfigError),
    /// The request does not fit what is stored (a version reused with other content, an
    /// incompatible schema change, a record already redriven).
    #[error("{0}")]
    Conflict(String),
    /// No such mapping, schema or record.
    #[error("{0}")]
    NotFound(String),
    /// The store or bus failed.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for MappingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

fn invalid(source_name: &str, issues: Vec<Issue>) -> MappingError {
    MappingError::Invalid(ConfigError {
        source_name: source_name.to_owned(),
        issues,
    })
}

/// What a dry-run did with one record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRun {
    /// Position of the record in the request.
    pub index: usize,
    /// `event`, `skipped` or `failed`.
    pub outcome: &'static str,
    /// The event it would produce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<J>,
    /// Every error, when it fails.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Violation>,
}

/// Which mapping to use: the active version of a name, or a mapping file's text.
#[derive(Debug, Clone)]
pub enum Which<'a> {
    /// The active version of this mapping.
    Active(&'a str),
    /// This mapping file (not deployed).
    Text(&'a str),
}

/// The mappings of a node.
#[derive(Debug)]
pub struct Mappings {
    store: Store,
    bus: Arc<dyn Bus>,
    registry: Registry,
    prefix: String,
    catalog: RwLock<Catalog>,
    set: Arc<RwLock<Arc<MappingSet>>>,
    pseudonymiser: Pseudonymiser,
    publisher: tokio::sync::Mutex<Publisher>,
    decoder: Mutex<RawDecoder>,
    /// The worker's counters.
    pub stats: Arc<WorkerStats>,
}

fn blocking_err(e: tokio::task::JoinError) -> MappingError {
    MappingError::Unavailable(e.to_string())
}

impl Mappings {
    /// Opens the mappings: the shipped and stored canonical schemas; `initial` mapping files
    /// (file name, text) deployed as `by` (idempotently); then every active version compiled.
    ///
    /// # Errors
    /// A mapping file with mistakes, or the store failing.
    pub fn open(
        store: Store,
        bus: Arc<dyn Bus>,
        registry: Registry,
        prefix: &str,
        pseudonymiser: Pseudonymiser,
        initial: &[(&str, &str)],
        by: &str,
    ) -> Result<Self, MappingError> {
        let mut catalog =
            Catalog::builtin().map_err(|e| MappingError::Unavailable(e.to_string()))?;
        for text in store.canonical_schemas()? {
            let json: J = serde_json::from_str(&text)
                .map_err(|e| MappingError::Unavailable(format!("a stored schema: {e}")))?;
            catalog
                .add(json)
                .map_err(|e| MappingError::Unavailable(e.to_string()))?;
        }
        for (file, text) in initial {
            let m = load(text, file, &catalog).map_err(MappingError::Invalid)?;
            let version = i32::try_from(m.spec.version).unwrap_or(i32::MAX);
            // A newer version deployed since (through the API) stays active.
            let active = store
                .mapping_versions(Some(&m.spec.name))?
                .into_iter()
                .find(|v| v.active)
                .map(|v| v.version);
            if active.is_some_and(|a| a > version) {
                tracing::info!(mapping = %m.spec.name, file, version, active, "a newer version is active; the file's version stays stored");
                continue;
            }
            store.deploy_mapping(&m.spec.name, version, text, by)?;
        }
        let this = Self {
            set: Arc::new(RwLock::new(Arc::new(MappingSet::default()))),
            publisher: tokio::sync::Mutex::new(Publisher::new(
                Arc::clone(&bus),
                registry.clone(),
                prefix,
            )),
            decoder: Mutex::new(RawDecoder::new(registry.clone())),
            catalog: RwLock::new(catalog),
            store,
            bus,
            registry,
            prefix: prefix.to_owned(),
            pseudonymiser,
            stats: Arc::default(),
        };
        this.reload()?;
        Ok(this)
    }

    /// Compiles every active version and makes it the worker's set.
    fn reload(&self) -> Result<(), MappingError> {
        let catalog = self.catalog();
        let mut compiled = Vec::new();
        for v in self.store.mapping_versions(None)? {
            let m = load(&v.spec, &format!("{}@{}", v.name, v.version), &catalog)
                .map_err(MappingError::Invalid)?;
            compiled.push(m);
        }
        let set = MappingSet::new(compiled).map_err(MappingError::Conflict)?;
        if let Ok(mut s) = self.set.write() {
            *s = Arc::new(set);
        }
        Ok(())
    }

    fn catalog(&self) -> Catalog {
        self.catalog.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// What the mapping worker needs (it shares the active set: deployments apply at once).
    #[must_use]
    pub fn worker_context(&self) -> WorkerContext {
        WorkerContext {
            bus: Arc::clone(&self.bus),
            store: self.store.clone(),
            registry: self.registry.clone(),
            topic_prefix: self.prefix.clone(),
            pseudonymiser: self.pseudonymiser.clone(),
            mappings: Arc::clone(&self.set),
            stats: Arc::clone(&self.stats),
        }
    }

    /// The active mappings: (name, version, connector, table, event type).
    #[must_use]
    pub fn active(&self) -> Vec<(String, u32, String, String, String)> {
        let set = self.set.read().map(|s| Arc::clone(&s)).unwrap_or_default();
        let mut out: Vec<_> = set
            .all()
            .map(|m| {
                let s = &m.spec;
                (
                    s.name.clone(),
                    s.version,
                    s.connector.clone(),
                    s.table.clone(),
                    s.event_type.clone(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Stored versions: every version of `name`, or the active version of each mapping.
    ///
    /// # Errors
    /// The store failed.
    pub fn versions(&self, name: Option<&str>) -> Result<Vec<MappingVersion>, MappingError> {
        Ok(self.store.mapping_versions(name)?)
    }

    /// The connector and table a mapping file reads (for the caller to discover its columns).
    ///
    /// # Errors
    /// The file has mistakes.
    pub fn source_of(&self, text: &str) -> Result<(String, String), MappingError> {
        let m = load(text, "mapping", &self.catalog()).map_err(MappingError::Invalid)?;
        Ok((m.spec.connector.clone(), m.spec.table.clone()))
    }

    /// Deploys a mapping file as `by`: checked against its schema, and against the discovered
    /// columns of its source when given; becomes the active version at once.
    ///
    /// # Errors
    /// Mistakes in the file (with lines), a source column that does not exist, a version
    /// reused with other content, or the store failing.
    pub fn deploy(
        &self,
        text: &str,
        by: &str,
        source_columns: Option<&[String]>,
    ) -> Result<(String, u32), MappingError> {
        let (spec, spans) =
            crate::spec::parse_with_spans(text, "mapping").map_err(MappingError::Invalid)?;
        let mapping = Mapping::compile(spec, &self.catalog()).map_err(|mut issues| {
            for i in &mut issues {
                i.position = spans.position(text, &i.path);
            }
            invalid("mapping", issues)
        })?;
        if let Some(columns) = source_columns {
            let mut issues = mapping.check_source(columns);
            if !issues.is_empty() {
                for i in &mut issues {
                    i.position = spans.position(text, &i.path);
                }
                return Err(invalid("mapping", issues));
            }
        }
        let (name, version) = (mapping.spec.name.clone(), mapping.spec.version);
        self.store
            .deploy_mapping(&name, i32::try_from(version).unwrap_or(i32::MAX), text, by)?;
        self.reload()?;
        tracing::info!(mapping = %name, version, by, "mapping deployed");
        Ok((name, version))
    }

    fn resolve(&self, which: &Which<'_>) -> Result<Arc<Mapping>, MappingError> {
        match which {
            Which::Active(name) => self
                .set
                .read()
                .ok()
                .and_then(|s| s.by_name(name).cloned())
                .ok_or_else(|| MappingError::NotFound(format!("no active mapping `{name}`"))),
            Which::Text(text) => Ok(Arc::new(
                load(text, "mapping", &self.catalog()).map_err(MappingError::Invalid)?,
            )),
        }
    }

    /// Applies a mapping to records without publishing anything.
    ///
    /// # Errors
    /// The mapping does not exist or does not load.
    pub fn dry_run(
        &self,
        which: &Which<'_>,
        records: &[(Source, Map<String, J>)],
    ) -> Result<Vec<DryRun>, MappingError> {
        let mapping = self.resolve(which)?;
        Ok(records
            .iter()
            .enumerate()
            .map(
                |(index, (source, row))| match mapping.apply(row, source, &self.pseudonymiser) {
                    Outcome::Event(e) => DryRun {
                        index,
                        outcome: "event",
                        event: Some(e.json),
                        errors: Vec::new(),
                    },
                    Outcome::Skipped => DryRun {
                        index,
                        outcome: "skipped",
                        event: None,
                        errors: Vec::new(),
                    },
                    Outcome::Failed(errors) => DryRun {
                        index,
                        outcome: "failed",
                        event: None,
                        errors,
                    },
                },
            )
            .collect())
    }

    /// The last `n` raw records of a connector (live rows for a dry-run).
    ///
    /// # Errors
    /// The bus failed.
    pub async fn recent_rows(
        &self,
        connector: &str,
        n: usize,
    ) -> Result<Vec<(Source, Map<String, J>)>, MappingError> {
        let topic = format!("{}raw.{connector}", self.prefix);
        let end = self
            .bus
            .end_offset(&topic, 0)
            .await
            .map_err(|e| MappingError::Unavailable(e.to_string()))?;
        let from = end.saturating_sub(n as u64);
        let records = self
            .bus
            .read(&topic, 0, from, n)
            .await
            .map_err(|e| MappingError::Unavailable(e.to_string()))?;
        let mut decoder = self
            .decoder
            .lock()
            .map_err(|_| MappingError::Unavailable("decoder poisoned".into()))?;
        Ok(records
            .iter()
            .filter_map(|d| decoder.decode(&d.record.value).ok())
            .collect())
    }

    fn quarantined(
        &self,
        id: i64,
    ) -> Result<
        (
            ledgerbridge_store::QuarantinedRecord,
            Source,
            Map<String, J>,
        ),
        MappingError,
    > {
        let record = self
            .store
            .quarantined_record(id)?
            .filter(|r| r.stage == "mapping")
            .ok_or_else(|| MappingError::NotFound(format!("no quarantined mapping record {id}")))?;
        let payload: J = serde_json::from_str(&record.payload)
            .map_err(|e| MappingError::Unavailable(format!("record {id}: {e}")))?;
        let source: Source = serde_json::from_value(payload["source"].clone())
            .map_err(|e| MappingError::Unavailable(format!("record {id}: {e}")))?;
        let row = payload["row"].as_object().cloned().unwrap_or_default();
        Ok((record, source, row))
    }

    fn which_for<'a>(
        record: &'a ledgerbridge_store::QuarantinedRecord,
        text: Option<&'a str>,
    ) -> Which<'a> {
        match text {
            Some(t) => Which::Text(t),
            None => Which::Active(record.mapping.split('@').next().unwrap_or(&record.source)),
        }
    }

    /// Re-runs a quarantined record through a mapping (the active version of its own, or the
    /// file given) without publishing; recorded as a `dry-run` action by `by`.
    ///
    /// # Errors
    /// No such record, or the mapping does not load.
    pub fn quarantine_dry_run(
        &self,
        id: i64,
        text: Option<&str>,
        by: &str,
    ) -> Result<DryRun, MappingError> {
        let (record, source, row) = self.quarantined(id)?;
        let which = Self::which_for(&record, text);
        let result = self.dry_run(&which, &[(source, row)])?.remove(0);
        let detail =
            serde_json::json!({"outcome": result.outcome, "errors": result.errors}).to_string();
        self.store
            .quarantine_act(id, "dry-run", by, &detail, None)?;
        Ok(result)
    }

    /// Redrives a quarantined record: maps it again and, when it now passes, publishes the event
    /// and marks the record `redriven` (by `by`). When it still fails, the record stays open and
    /// the attempt is recorded with its errors.
    ///
    /// # Errors
    /// No such record or not open, the mapping does not load, or publishing failed.
    pub async fn redrive(
        &self,
        id: i64,
        text: Option<&str>,
        by: &str,
    ) -> Result<DryRun, MappingError> {
        let (record, source, row) = self.quarantined(id)?;
        if record.status != "open" {
            return Err(MappingError::Conflict(format!(
                "record {id} is {} already",
                record.status
            )));
        }
        let mapping = self.resolve(&Self::which_for(&record, text))?;
        let outcome = mapping.apply(&row, &source, &self.pseudonymiser);
        let (result, status) = match outcome {
            Outcome::Event(e) => {
                let schema = mapping
                    .schemas()
                    .into_iter()
                    .find(|s| s.event_type == e.event_type && s.version == e.schema_version)
                    .ok_or_else(|| {
                        MappingError::Unavailable(format!("no schema for {}", e.event_type))
                    })?;
                self.publisher
                    .lock()
                    .await
                    .publish(vec![(e.clone(), schema, None)])
                    .await
                    .map_err(MappingError::Unavailable)?;
                (
                    DryRun {
                        index: 0,
                        outcome: "event",
                        event: Some(e.json),
                        errors: Vec::new(),
                    },
                    Some("redriven"),
                )
            }
            Outcome::Skipped => (
                DryRun {
                    index: 0,
                    outcome: "skipped",
                    event: None,
                    errors: Vec::new(),
                },
                Some("redriven"),
            ),
            Outcome::Failed(errors) => (
                DryRun {
                    index: 0,
                    outcome: "failed",
                    event: None,
                    errors,
                },
                None,
            ),
        };
        let detail = serde_json::json!({
            "outcome": result.outcome,
            "mapping": format!("{}@{}", mapping.spec.name, mapping.spec.version),
            "event_id": result.event.as_ref().map(|e| e["event_id"].clone()),
            "errors": result.errors,
        })
        .to_string();
        let store = self.store.clone();
        let by = by.to_owned();
        let changed = tokio::task::spawn_blocking(move || {
            store.quarantine_act(id, "redrive", &by, &detail, status)
        })
        .await
        .map_err(blocking_err)??;
        if status.is_some() && !changed {
            return Err(MappingError::Conflict(format!(
                "record {id} was redriven or discarded meanwhile"
            )));
        }
        Ok(result)
    }

    /// Discards a quarantined record (it will not reach the ledger), with a reason, by `by`.
    ///
    /// # Errors
    /// No such record, not open, or the store failed.
    pub fn discard(&self, id: i64, reason: &str, by: &str) -> Result<(), MappingError> {
        let record = self
            .store
            .quarantined_record(id)?
            .ok_or_else(|| MappingError::NotFound(format!("no quarantined record {id}")))?;
        let detail = serde_json::json!({"reason": reason}).to_string();
        if !self
            .store
            .quarantine_act(id, "discard", by, &detail, Some("discarded"))?
        {
            return Err(MappingError::Conflict(format!(
                "record {id} is {} already",
                record.status
            )));
        }
        Ok(())
    }

    /// Every canonical schema, latest versions last.
    #[must_use]
    pub fn schemas(&self) -> Vec<Arc<CanonicalSchema>> {
        self.catalog().all().cloned().collect()
    }

    /// Adds a canonical schema version, refusing a change that would break consumers of the
    /// previous version (with every reason).
    ///
    /// # Errors
    /// Not a usable schema, a breaking change, or a version reused with other content.
    pub fn add_schema(&self, json: J, by: &str) -> Result<Arc<CanonicalSchema>, MappingError> {
        let candidate = CanonicalSchema::new(json.clone())
            .map_err(|e| MappingError::Conflict(e.to_string()))?;
        let catalog = self.catalog();
        if let Some(previous) = catalog.get(&candidate.event_type, None)
            && previous.version < candidate.version
        {
            crate::compat::check(&previous.json, &json).map_err(|refused| {
                MappingError::Conflict(format!(
                    "{} version {} would break consumers of version {}:\n{refused}",
                    candidate.event_type, candidate.version, previous.version
                ))
            })?;
        }
        self.store.add_canonical_schema(
            &candidate.event_type,
            i32::try_from(candidate.version).unwrap_or(i32::MAX),
            &json.to_string(),
            by,
        )?;
        let mut guard = self
            .catalog
            .write()
            .map_err(|_| MappingError::Unavailable("catalog poisoned".into()))?;
        guard
            .add(json)
            .map_err(|e| MappingError::Conflict(e.to_string()))
    }
}
