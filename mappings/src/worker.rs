//! The mapping worker: consumes the raw topics of the mapped connectors, applies each record's
//! mapping, publishes canonical events to `<prefix>canonical.<event_type>` (Avro, Confluent
//! framing, keyed by event id) and failures to the quarantine (store and `<prefix>quarantine`
//! topic), then commits the consumed offsets. At least once: a crash before the commit
//! redelivers, and the events' ids are deterministic, so the ledger anchors each once. Order is
//! kept per partition, hence per source key. Several workers share the work through the consumer
//! group `<prefix>mapper`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ledgerbridge_bus::{Bus, Delivered, Record, Stage};
use ledgerbridge_registry::Registry;
use ledgerbridge_store::{NewQuarantined, Store};
use serde_json::{Map, Value as J};

use crate::avro::CanonicalAvro;
use crate::avro::raw::RawCodec;
use crate::catalog::{CanonicalSchema, Violation};
use crate::engine::{CanonicalEvent, Mapping, Outcome, Pseudonymiser, Source};

/// The active mappings, by source.
#[derive(Debug, Default)]
pub struct MappingSet {
    by_source: HashMap<(String, String), Arc<Mapping>>,
}

impl MappingSet {
    /// Indexes mappings by connector and table (`*`: every stream of the connector).
    ///
    /// # Errors
    /// Two mappings for one source.
    pub fn new(mappings: Vec<Mapping>) -> Result<Self, String> {
        let mut by_source = HashMap::new();
        for m in mappings {
            let key = (m.spec.connector.clone(), m.spec.table.clone());
            if let Some(other) = by_source.insert(key.clone(), Arc::new(m)) {
                return Err(format!(
                    "two mappings read `{}`/`{}`: `{}` and another; keep one",
                    key.0, key.1, other.spec.name
                ));
            }
        }
        Ok(Self { by_source })
    }

    /// The mapping of a source record, if any.
    #[must_use]
    pub fn find(&self, connector: &str, table: &str) -> Option<&Arc<Mapping>> {
        self.by_source
            .get(&(connector.to_owned(), table.to_owned()))
            .or_else(|| self.by_source.get(&(connector.to_owned(), "*".to_owned())))
    }

    /// A mapping by name.
    #[must_use]
    pub fn by_name(&self, name: &str) -> Option<&Arc<Mapping>> {
        self.by_source.values().find(|m| m.spec.name == name)
    }

    /// Every mapping.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Mapping>> {
        self.by_source.values()
    }

    /// The connectors whose raw topics are mapped.
    #[must_use]
    pub fn connectors(&self) -> Vec<String> {
        let mut c: Vec<String> = self.by_source.keys().map(|(c, _)| c.clone()).collect();
        c.sort();
        c.dedup();
        c
    }
}

/// Decodes raw records (the connectors' Avro) through the registry.
#[derive(Debug)]
pub struct RawDecoder {
    registry: Registry,
    shapes: HashMap<u32, Arc<RawCodec>>,
}

impl RawDecoder {
    /// A decoder reading schemas from `registry`.
    #[must_use]
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            shapes: HashMap::new(),
        }
    }

    fn shape(&mut self, id: u32) -> Result<Arc<RawCodec>, Unreadable> {
        if let Some(s) = self.shapes.get(&id) {
            return Ok(Arc::clone(s));
        }
        let text = self.registry.schema(i64::from(id)).map_err(|e| match e {
            // The store behind the registry is down: the record is fine, try again later.
            ledgerbridge_registry::RegistryError::Store(_) => {
                Unreadable::Unavailable(format!("schema {id}: {e}"))
            }
            other => Unreadable::Invalid(format!("schema {id}: {other}")),
        })?;
        let shape = Arc::new(
            RawCodec::new(&text).map_err(|e| Unreadable::Invalid(format!("schema {id}: {e}")))?,
        );
        self.shapes.insert(id, Arc::clone(&shape));
        Ok(shape)
    }

    /// The source block and the row (by source column name) of a raw record.
    ///
    /// # Errors
    /// [`Unreadable::Invalid`]: bad framing, an unknown schema id, or a datum that does not
    /// decode; [`Unreadable::Unavailable`]: the registry's store cannot be read.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<(Source, Map<String, J>), Unreadable> {
        let id = crate::avro::schema_id(bytes).map_err(|e| Unreadable::Invalid(e.to_string()))?;
        let shape = self.shape(id)?;
        shape
            .read(&bytes[ledgerbridge_registry::framing::FRAME..])
            .map_err(|e| {
                Unreadable::Invalid(format!("the record does not decode with schema {id}: {e}"))
            })
    }
}

/// Why a record (a raw record here, a canonical one in the anchoring worker) could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// The record itself is wrong (no schema id, an id the registry does not have or a schema
    /// the node does not know, bytes that do not decode): it is quarantined.
    Invalid(String),
    /// Something it needs is down (the store behind the registry): the batch is retried, the
    /// record never quarantined.
    Unavailable(String),
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(m) | Self::Unavailable(m) => f.write_str(m),
        }
    }
}

/// Publishes canonical events: Avro derived from their schema, registered once per version
/// under `canonical.<event_type>-value`.
#[derive(Debug)]
pub struct Publisher {
    bus: Arc<dyn Bus>,
    registry: Registry,
    prefix: String,
    encoders: HashMap<(String, u32), (Arc<CanonicalAvro>, u32)>,
}

impl Publisher {
    /// A publisher on `bus` with topic prefix `prefix`.
    #[must_use]
    pub fn new(bus: Arc<dyn Bus>, registry: Registry, prefix: &str) -> Self {
        Self {
            bus,
            registry,
            prefix: prefix.to_owned(),
            encoders: HashMap::new(),
        }
    }

    /// The canonical topic of an event type.
    #[must_use]
    pub fn topic(&self, event_type: &str) -> String {
        format!("{}canonical.{event_type}", self.prefix)
    }

    async fn encoder(
        &mut self,
        schema: &CanonicalSchema,
    ) -> Result<(Arc<CanonicalAvro>, u32), String> {
        let key = (schema.event_type.clone(), schema.version);
        if let Some(e) = self.encoders.get(&key) {
            return Ok(e.clone());
        }
        let avro = crate::avro::canonical_schema(&schema.json).map_err(|e| e.to_string())?;
        let (registry, subject, text) = (
            self.registry.clone(),
            avro.subject.clone(),
            avro.text.clone(),
        );
        let id = tokio::task::spawn_blocking(move || registry.register(&subject, &text))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("registering the Avro schema of {}: {e}", schema.event_type))?;
        let id = u32::try_from(id).map_err(|_| format!("schema id {id}"))?;
        let found = (Arc::new(avro), id);
        self.encoders.insert(key, found.clone());
        Ok(found)
    }

    /// Encodes and publishes events (each topic's in the given order), each with the position of
    /// the raw record it came from (`topic:partition:offset`, header `raw`) when known; returns
    /// when durable.
    ///
    /// # Errors
    /// Registering, encoding or publishing failed; nothing should be considered published.
    pub async fn publish(
        &mut self,
        events: Vec<(CanonicalEvent, Arc<CanonicalSchema>, Option<String>)>,
    ) -> Result<(), String> {
        // Topics in the order their first event came (reference rows such as accounts are read
        // before the transfers that name them, and the monitor joins them in that order).
        let mut by_topic: Vec<(String, Vec<Record>)> = Vec::new();
        for (event, schema, raw) in events {
            let (avro, id) = self.encoder(&schema).await?;
            let value = crate::avro::encode(&avro, id, &event.json)
                .map_err(|e| format!("encoding {}: {e}", event.event_id))?;
            let topic = self.topic(&event.event_type);
            let at = match by_topic.iter().position(|(t, _)| *t == topic) {
                Some(at) => at,
                None => {
                    by_topic.push((topic, Vec::new()));
                    by_topic.len() - 1
                }
            };
            by_topic[at].1.push({
                let record = Record::new(Some(event.event_id.into_bytes()), value)
                    .with_header("channel", event.channel);
                match raw {
                    Some(raw) => record.with_header("raw", raw),
                    None => record,
                }
            });
        }
        for (topic, records) in by_topic {
            self.bus
                .publish(&topic, records)
                .await
                .map_err(|e| format!("publishing to {topic}: {e}"))?;
        }
        Ok(())
    }
}

/// Counters of a worker, for status and metrics.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Raw records consumed.
    pub consumed: AtomicU64,
    /// Canonical events published.
    pub events: AtomicU64,
    /// Records skipped by a route.
    pub skipped: AtomicU64,
    /// Records of tables no mapping reads.
    pub unmapped: AtomicU64,
    /// Records quarantined.
    pub quarantined: AtomicU64,
}

/// What a worker needs.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// The store (quarantine).
    pub store: Store,
    /// The registry (raw schemas, canonical schemas).
    pub registry: Registry,
    /// Topic prefix.
    pub topic_prefix: String,
    /// Pseudonyms.
    pub pseudonymiser: Pseudonymiser,
    /// The active mappings; replaced when a mapping is deployed.
    pub mappings: Arc<RwLock<Arc<MappingSet>>>,
    /// Counters.
    pub stats: Arc<WorkerStats>,
}

/// A record the mapping stage could not turn into an event.
pub(crate) fn quarantined(
    mapping: Option<&Mapping>,
    source: &Source,
    row: &Map<String, J>,
    errors: &[Violation],
) -> NewQuarantined {
    let reason = errors
        .iter()
        .map(|e| format!("{}: {}", e.pointer, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    NewQuarantined {
        stage: "mapping",
        source: mapping.map_or_else(|| source.connector.clone(), |m| m.spec.name.clone()),
        stream: format!("{}/{}", source.connector, source.table),
        position: format!("key={} {}", source.key, source.position),
        reason,
        payload: serde_json::json!({"source": source, "row": row}).to_string(),
        errors: serde_json::to_string(errors).unwrap_or_else(|_| "[]".into()),
        mapping: mapping.map_or_else(String::new, |m| {
            format!("{}@{}", m.spec.name, m.spec.version)
        }),
    }
}

async fn quarantine(ctx: &WorkerContext, rows: Vec<NewQuarantined>) -> Result<(), String> {
    let topic = format!("{}quarantine", ctx.topic_prefix);
    let records = rows
        .iter()
        .map(|q| {
            let body = serde_json::json!({
                "stage": q.stage, "source": q.source, "stream": q.stream, "position": q.position,
                "reason": q.reason, "payload": q.payload, "errors": q.errors, "mapping": q.mapping,
            });
            Record::new(
                Some(q.source.clone().into_bytes()),
                body.to_string().into_bytes(),
            )
            .with_header("type", "quarantine")
        })
        .collect();
    ctx.bus
        .publish(&topic, records)
        .await
        .map_err(|e| format!("publishing to {topic}: {e}"))?;
    let store = ctx.store.clone();
    tokio::task::spawn_blocking(move || store.quarantine(&rows))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("quarantining: {e}"))?;
    Ok(())
}

/// A batch of raw records mapped: the events to publish (each with the position of its raw
/// record) and the records to quarantine.
#[derive(Debug)]
pub struct Mapped {
    events: Vec<(CanonicalEvent, Arc<CanonicalSchema>, Option<String>)>,
    failed: Vec<NewQuarantined>,
}

/// Maps one batch of raw records and makes the results durable (events published, failures
/// quarantined). The caller commits the offsets after it returns.
///
/// # Errors
/// Publishing or quarantining failed: nothing of the batch may be committed.
pub async fn process(
    ctx: &WorkerContext,
    decoder: &mut RawDecoder,
    publisher: &mut Publisher,
    batch: &[Delivered],
) -> Result<(), String> {
    let mapped = map_batch(ctx, decoder, batch)?;
    deliver(ctx, publisher, mapped).await
}

/// Decodes and maps a batch: the CPU-bound half of [`process`], which touches neither the bus
/// nor the store (but the registry's, for a schema id seen for the first time).
///
/// # Errors
/// The mapping set is unusable or names a schema it does not have (a bug), or the registry's
/// store cannot be read: retry the batch.
pub fn map_batch(
    ctx: &WorkerContext,
    decoder: &mut RawDecoder,
    batch: &[Delivered],
) -> Result<Mapped, String> {
    let set = ctx
        .mappings
        .read()
        .map(|s| Arc::clone(&s))
        .map_err(|_| "the mapping set is poisoned".to_owned())?;
    let mut events = Vec::new();
    let mut failed = Vec::new();
    let stats = &ctx.stats;
    for d in batch {
        stats.consumed.fetch_add(1, Ordering::Relaxed);
        let (source, row) = match decoder.decode(&d.record.value) {
            Ok(x) => x,
            // Nothing of the batch is committed: it is read again once the store is back (a
            // store that went away is never a reason to quarantine).
            Err(Unreadable::Unavailable(reason)) => {
                return Err(format!("reading a raw record's schema: {reason}"));
            }
            Err(Unreadable::Invalid(e)) => {
                let source = Source {
                    connector: d.topic.clone(),
                    table: String::new(),
                    key: d.key_text(),
                    position: d.position(),
                    extracted_at: d.record.timestamp_ms,
                };
                let errors = [Violation {
                    pointer: String::new(),
                    message: format!("cannot decode the raw record: {e}"),
                }];
                failed.push(quarantined(None, &source, &Map::new(), &errors));
                continue;
            }
        };
        let Some(mapping) = set.find(&source.connector, &source.table) else {
            stats.unmapped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        match mapping.apply(&row, &source, &ctx.pseudonymiser) {
            Outcome::Event(e) => {
                let schema = mapping
                    .schemas()
                    .into_iter()
                    .find(|s| s.event_type == e.event_type && s.version == e.schema_version)
                    .ok_or_else(|| format!("no schema for {}", e.event_type))?;
                events.push((e, schema, Some(d.position())));
            }
            Outcome::Skipped => {
                stats.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failed(errors) => {
                failed.push(quarantined(Some(mapping), &source, &row, &errors));
            }
        }
    }
    Ok(Mapped { events, failed })
}

/// Makes a mapped batch durable: events encoded and published, failures quarantined (the other
/// half of [`process`]).
///
/// # Errors
/// Registering a schema, publishing or quarantining failed: nothing of the batch may be
/// committed.
pub async fn deliver(
    ctx: &WorkerContext,
    publisher: &mut Publisher,
    mapped: Mapped,
) -> Result<(), String> {
    let Mapped { events, failed } = mapped;
    let stats = &ctx.stats;
    let (published, quarantined_n) = (events.len() as u64, failed.len() as u64);
    publisher.publish(events).await?;
    if !failed.is_empty() {
        for q in &failed {
            tracing::warn!(mapping = %q.source, position = %q.position, "quarantined: {}", q.reason);
        }
        quarantine(ctx, failed).await?;
    }
    stats.events.fetch_add(published, Ordering::Relaxed);
    stats
        .quarantined
        .fetch_add(quarantined_n, Ordering::Relaxed);
    Ok(())
}

/// Runs a worker until `stop` turns true: consumes the raw topics of the mapped connectors in
/// the consumer group `<prefix>mapper`.
///
/// # Errors
/// The bus refused the subscription.
pub async fn run(
    ctx: WorkerContext,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let topics: Vec<String> = ctx
        .mappings
        .read()
        .map(|s| s.connectors())
        .unwrap_or_default()
        .iter()
        .map(|c| format!("{}raw.{c}", ctx.topic_prefix))
        .collect();
    if topics.is_empty() {
        tracing::info!("no mappings: the mapping worker is idle");
        let _ = stop.wait_for(|s| *s).await;
        return Ok(());
    }
    let stage = Stage {
        name: "mapping worker",
        group: format!("{}mapper", ctx.topic_prefix),
        topics,
        batch: BATCH,
        idle_wait: Duration::from_millis(500),
    };
    let mut decoder = RawDecoder::new(ctx.registry.clone());
    let publisher = Arc::new(tokio::sync::Mutex::new(Publisher::new(
        Arc::clone(&ctx.bus),
        ctx.registry.clone(),
        &ctx.topic_prefix,
    )));
    tracing::info!(topics = ?stage.topics, "mapping worker running");
    let map = |batch: &[Delivered]| map_batch(&ctx, &mut decoder, batch);
    let deliver = |mapped: Mapped| {
        let (ctx, publisher) = (ctx.clone(), Arc::clone(&publisher));
        async move { deliver(&ctx, &mut *publisher.lock().await, mapped).await }
    };
    stage.run(&ctx.bus, stop, map, deliver).await
}

/// Most raw records read (and held mapped) at once; one batch is delivered while the next is
/// mapped, so at most two are in memory.
const BATCH: usize = 10_000;
