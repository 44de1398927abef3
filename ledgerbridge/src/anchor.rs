//! The anchoring worker: consumes the canonical topics, appends each event to its ledger
//! channel (the channel its canonical schema names), and only then commits the consumed
//! offsets. Append is idempotent by event id, so redelivery after a crash adds nothing. Every
//! anchored event's latency (extraction at the source → anchored and covered by a signed
//! checkpoint, which the append returns with) is recorded for the status and metrics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ledgerbridge_bus::{Bus, Delivered};
use ledgerbridge_ledger::{Ledger, NewEntry, Prepared};
use ledgerbridge_mappings::avro::{CanonicalAvro, Transcoded};
use ledgerbridge_mappings::worker::Unreadable;
use ledgerbridge_mappings::{CanonicalSchema, Mappings};
use ledgerbridge_registry::Registry;
use ledgerbridge_store::{NewQuarantined, Store};
use serde_json::Value as J;

/// The anchoring worker's counters and recent latencies.
#[derive(Debug, Default)]
pub(crate) struct AnchorStats {
    /// Canonical events read.
    pub(crate) consumed: AtomicU64,
    /// Events appended to the ledger.
    pub(crate) anchored: AtomicU64,
    /// Events already in the ledger (redelivered).
    pub(crate) existing: AtomicU64,
    /// Events quarantined (no such channel, unreadable).
    pub(crate) quarantined: AtomicU64,
    /// Source extraction → anchored latencies of the last events, milliseconds.
    latencies: Mutex<VecDeque<i64>>,
    /// The longest latency since the lag was last recorded in the store.
    max_since: std::sync::atomic::AtomicI64,
}

const LATENCY_WINDOW: usize = 10_000;

impl AnchorStats {
    fn record_latency(&self, ms: i64) {
        self.max_since.fetch_max(ms, Ordering::Relaxed);
        if let Ok(mut l) = self.latencies.lock() {
            if l.len() == LATENCY_WINDOW {
                l.pop_front();
            }
            l.push_back(ms);
        }
    }

    /// Forgets the recent latencies (between benchmark phases).
    pub(crate) fn reset_latency(&self) {
        if let Ok(mut l) = self.latencies.lock() {
            l.clear();
        }
    }

    /// (p50, p99) of the recent latencies, milliseconds.
    pub(crate) fn latency(&self) -> Option<(i64, i64)> {
        let mut v: Vec<i64> = self.latencies.lock().ok()?.iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |p: f64| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let i = ((v.len() - 1) as f64 * p).round() as usize;
            v[i]
        };
        Some((at(0.5), at(0.99)))
    }
}

/// What the anchoring worker needs.
#[derive(Debug, Clone)]
pub(crate) struct AnchorContext {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) ledger: Ledger,
    pub(crate) mappings: Arc<Mappings>,
    pub(crate) registry: Registry,
    pub(crate) store: Store,
    pub(crate) prefix: String,
    pub(crate) stats: Arc<AnchorStats>,
}

/// Decoders of canonical records by schema id.
pub(crate) struct Decoders {
    registry: Registry,
    mappings: Arc<Mappings>,
    by_id: HashMap<u32, (Arc<CanonicalAvro>, Arc<CanonicalSchema>)>,
}

impl Decoders {
    /// Decoders reading schemas from `registry` and matching them to the catalog's versions.
    pub(crate) fn new(registry: Registry, mappings: Arc<Mappings>) -> Self {
        Self {
            registry,
            mappings,
            by_id: HashMap::new(),
        }
    }

    /// The canonical event of a record of `<prefix>canonical.<event_type>`.
    pub(crate) fn decode(&mut self, event_type: &str, bytes: &[u8]) -> Result<J, Unreadable> {
        let id = ledgerbridge_mappings::avro::schema_id(bytes)
            .map_err(|e| Unreadable::Invalid(e.to_string()))?;
        let (avro, _) = self.get(event_type, id)?;
        ledgerbridge_mappings::avro::decode(&avro, bytes)
            .map_err(|e| Unreadable::Invalid(e.to_string()))
    }

    fn get(
        &mut self,
        event_type: &str,
        id: u32,
    ) -> Result<(Arc<CanonicalAvro>, Arc<CanonicalSchema>), Unreadable> {
        if let Some(found) = self.by_id.get(&id) {
            return Ok(found.clone());
        }
        let text = self.registry.schema(i64::from(id)).map_err(|e| match e {
            // The store behind the registry is down: the record is fine, try again later.
            ledgerbridge_registry::RegistryError::Store(_) => {
                Unreadable::Unavailable(format!("schema {id}: {e}"))
            }
            other => Unreadable::Invalid(format!("schema {id}: {other}")),
        })?;
        let invalid = Unreadable::Invalid;
        let registered = apache_avro::Schema::parse_str(&text)
            .map_err(|e| invalid(format!("schema {id}: {e}")))?
            .canonical_form();
        for schema in self.mappings.schemas() {
            if schema.event_type != event_type {
                continue;
            }
            let avro = ledgerbridge_mappings::avro::canonical_schema(&schema.json)
                .map_err(|e| invalid(e.to_string()))?;
            if avro.schema.canonical_form() == registered {
                let found = (Arc::new(avro), schema);
                self.by_id.insert(id, found.clone());
                return Ok(found);
            }
        }
        Err(invalid(format!(
            "schema {id} is no version of {event_type} this node knows"
        )))
    }
}

/// The ledger entry of a canonical event; `raw` is where its raw record was on the bus.
fn entry(event: Transcoded, raw: Option<&str>) -> NewEntry {
    use std::fmt::Write as _;
    let Transcoded {
        event_id,
        event_type,
        mapping_name,
        mapping_version,
        subject,
        source: [connector, table, key, position],
        json,
        ..
    } = event;
    let mut source_position = format!("{table} key={key} {position}");
    if let Some(raw) = raw {
        let _ = write!(source_position, " raw={raw}");
    }
    NewEntry {
        event_id,
        event_type,
        connector,
        source_position,
        mapping_version: format!("{mapping_name}@{mapping_version}"),
        subject,
        payload: json,
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A batch decoded, routed and prepared, ready to append: its entries by channel (with their
/// extraction times) and the records to quarantine.
struct Routed {
    by_channel: Vec<(Prepared, Vec<i64>)>,
    failed: Vec<NewQuarantined>,
}

/// Decodes a batch, routes each event to its channel and prepares the ledger entries (keys,
/// commitments, leaf hashes, encryption: [`Ledger::prepare`]): the CPU-bound half of anchoring,
/// run while the previous batch is being appended.
///
/// # Errors
/// Something the batch needs is unavailable (the store behind the registry): retry it all.
fn route(
    ctx: &AnchorContext,
    decoders: &mut Decoders,
    batch: &[Delivered],
) -> Result<Routed, String> {
    let canonical = format!("{}canonical.", ctx.prefix);
    let mut by_channel: BTreeMap<String, Vec<(NewEntry, i64)>> = BTreeMap::new();
    let mut failed = Vec::new();
    let channels = ctx.ledger.channels().map_err(|e| e.to_string())?;
    for d in batch {
        ctx.stats.consumed.fetch_add(1, Ordering::Relaxed);
        let event_type = d.topic.strip_prefix(&canonical).unwrap_or(&d.topic);
        // One pass from the datum to the payload's JSON, with the envelope's fields.
        let decoded = ledgerbridge_mappings::avro::schema_id(&d.record.value)
            .map_err(|e| Unreadable::Invalid(e.to_string()))
            .and_then(|id| decoders.get(event_type, id))
            .and_then(|(avro, schema)| {
                ledgerbridge_mappings::avro::transcode(&avro, &d.record.value)
                    .map(|event| (event, schema))
                    .map_err(|e| Unreadable::Invalid(e.to_string()))
            });
        let (event, schema) = match decoded {
            Ok(x) => x,
            // The whole batch is retried (nothing of it is committed).
            Err(Unreadable::Unavailable(reason)) => return Err(reason),
            Err(Unreadable::Invalid(reason)) => {
                failed.push(quarantine_row(
                    d,
                    format!("cannot read the canonical event: {reason}"),
                ));
                continue;
            }
        };
        if !channels.contains(&schema.channel) {
            failed.push(quarantine_row(
                d,
                format!(
                    "channel `{}` of {} is not kept by this node (ledger.channels)",
                    schema.channel, schema.event_type
                ),
            ));
            continue;
        }
        let extracted = event.extracted_at;
        let raw = d
            .record
            .header("raw")
            .and_then(|h| std::str::from_utf8(h).ok());
        by_channel
            .entry(schema.channel.clone())
            .or_default()
            .push((entry(event, raw), extracted));
    }
    let by_channel = by_channel
        .into_iter()
        .map(|(channel, entries)| {
            let (batch, extracted): (Vec<NewEntry>, Vec<i64>) = entries.into_iter().unzip();
            let prepared = ctx
                .ledger
                .prepare(&channel, batch)
                .map_err(|e| format!("preparing entries for `{channel}`: {e}"))?;
            Ok((prepared, extracted))
        })
        .collect::<Result<_, String>>()?;
    Ok(Routed { by_channel, failed })
}

/// A record that cannot be anchored, for the quarantine.
fn quarantine_row(d: &Delivered, reason: String) -> NewQuarantined {
    NewQuarantined {
        stage: "anchor",
        source: d.topic.clone(),
        stream: d.topic.clone(),
        position: d.position(),
        reason,
        payload: d.key_text(),
        errors: "[]".into(),
        mapping: String::new(),
    }
}

/// Appends a routed batch; returns when every event is in the ledger or quarantined.
async fn append(ctx: AnchorContext, routed: Routed) -> Result<(), String> {
    let Routed { by_channel, failed } = routed;
    for (prepared, extracted) in by_channel {
        let ledger = ctx.ledger.clone();
        let channel = prepared.channel().to_owned();
        let (appended, _) = tokio::task::spawn_blocking(move || ledger.append_prepared(prepared))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("anchoring in `{channel}`: {e}"))?;
        let anchored_at = now_ms();
        for (a, at) in appended.iter().zip(extracted) {
            if a.existing {
                ctx.stats.existing.fetch_add(1, Ordering::Relaxed);
            } else {
                ctx.stats.anchored.fetch_add(1, Ordering::Relaxed);
                if at > 0 {
                    ctx.stats.record_latency(anchored_at - at);
                }
            }
        }
    }
    if !failed.is_empty() {
        for r in &failed {
            tracing::warn!(position = %r.position, "not anchored, quarantined: {}", r.reason);
        }
        ctx.stats
            .quarantined
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        let store = ctx.store.clone();
        tokio::task::spawn_blocking(move || store.quarantine(&failed))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("quarantining: {e}"))?;
    }
    Ok(())
}

/// The canonical topics of every event type the catalog knows.
pub(crate) fn canonical_topics(mappings: &Mappings, prefix: &str) -> Vec<String> {
    let mut types: Vec<String> = mappings
        .schemas()
        .iter()
        .map(|s| s.event_type.clone())
        .collect();
    types.dedup();
    types
        .iter()
        .map(|t| format!("{prefix}canonical.{t}"))
        .collect()
}

/// How often the longest recent latency is recorded for the integrity monitor.
const LAG_EVERY: Duration = Duration::from_secs(5);

/// Records the longest extraction → anchored latency since the last record (the integrity
/// monitor compares it with the sequencing-lag SLO, from whatever process it runs in).
async fn record_lag(ctx: &AnchorContext) {
    let max_ms = ctx.stats.max_since.swap(0, Ordering::Relaxed);
    if max_ms <= 0 {
        return;
    }
    let lag = crate::integrity::Lag {
        at_ms: chrono::Utc::now().timestamp_millis(),
        max_ms,
    };
    let store = ctx.store.clone();
    let text = serde_json::to_string(&lag).unwrap_or_default();
    let saved =
        tokio::task::spawn_blocking(move || store.set_meta(crate::integrity::LAG_KEY, &text)).await;
    if !matches!(saved, Ok(Ok(()))) {
        tracing::warn!("recording the anchoring lag failed");
    }
}

/// Most canonical records read (and held decoded) at once; one batch is appended while the
/// next is decoded, so at most two are in memory.
const BATCH: usize = 10_000;

/// Runs until `stop` turns true, in the consumer group `<prefix>anchor` (a
/// [`ledgerbridge_bus::Stage`]): appends are serial and in order; the decoding of batch n+1
/// overlaps the append of batch n, whose offsets are committed once it is durable. A failure
/// anywhere drops what was read after the last commit and reads it again.
pub(crate) async fn run(
    ctx: AnchorContext,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let stage = ledgerbridge_bus::Stage {
        name: "anchoring worker",
        group: format!("{}anchor", ctx.prefix),
        topics: canonical_topics(&ctx.mappings, &ctx.prefix),
        batch: BATCH,
        idle_wait: Duration::from_millis(200),
    };
    let mut decoders = Decoders::new(ctx.registry.clone(), Arc::clone(&ctx.mappings));
    tracing::info!(topics = stage.topics.len(), "anchoring worker running");
    // The longest recent latency, recorded every LAG_EVERY while the worker runs.
    let lag = {
        let (ctx, mut stop) = (ctx.clone(), stop.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(LAG_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            while !*stop.borrow() {
                tokio::select! {
                    _ = every.tick() => record_lag(&ctx).await,
                    changed = stop.changed() => if changed.is_err() { break },
                }
            }
        })
    };
    let decode = |batch: &[Delivered]| route(&ctx, &mut decoders, batch);
    let result = stage
        .run(&ctx.bus, stop, decode, |routed| append(ctx.clone(), routed))
        .await;
    lag.abort();
    result
}

/// The pipeline's stages as a health component: what the mapping and anchoring workers did and
/// the source → anchored latency.
#[derive(Debug)]
pub(crate) struct PipelineHealth {
    pub(crate) mappings: Arc<Mappings>,
    pub(crate) anchor: Arc<AnchorStats>,
}

#[async_trait::async_trait]
impl ledgerbridge_api::HealthCheck for PipelineHealth {
    fn name(&self) -> &str {
        "pipeline"
    }

    async fn check(&self) -> Result<String, String> {
        let m = &self.mappings.stats;
        let a = &self.anchor;
        let latency = a.latency().map_or_else(
            || "no latency yet".to_owned(),
            |(p50, p99)| format!("source→anchored p50 {p50} ms, p99 {p99} ms"),
        );
        Ok(format!(
            "mapped {} events ({} quarantined); anchored {} ({} redelivered, {} quarantined); {latency}",
            m.events.load(Ordering::Relaxed),
            m.quarantined.load(Ordering::Relaxed),
            a.anchored.load(Ordering::Relaxed),
            a.existing.load(Ordering::Relaxed),
            a.quarantined.load(Ordering::Relaxed),
        ))
    }
}

/// The anchoring and monitoring workers' figures for `/metrics`.
#[derive(Debug)]
pub(crate) struct PipelineMetrics {
    pub(crate) anchor: Arc<AnchorStats>,
    pub(crate) monitor: Arc<crate::monitor::MonitorStats>,
}

impl ledgerbridge_api::MetricsSource for PipelineMetrics {
    #[allow(clippy::cast_precision_loss)]
    fn samples(&self) -> Vec<ledgerbridge_api::Sample> {
        use ledgerbridge_api::Sample;
        let a = &self.anchor;
        let mut out = vec![
            Sample::new(
                "anchor_events",
                "Canonical events anchored, by outcome",
                &[("outcome", "anchored")],
                a.anchored.load(Ordering::Relaxed) as f64,
            ),
            Sample::new(
                "anchor_events",
                "Canonical events anchored, by outcome",
                &[("outcome", "redelivered")],
                a.existing.load(Ordering::Relaxed) as f64,
            ),
            Sample::new(
                "anchor_events",
                "Canonical events anchored, by outcome",
                &[("outcome", "quarantined")],
                a.quarantined.load(Ordering::Relaxed) as f64,
            ),
            Sample::new(
                "monitor_events",
                "Canonical events the monitoring rules processed",
                &[],
                self.monitor.events.load(Ordering::Relaxed) as f64,
            ),
            Sample::new(
                "monitor_alerts_raised",
                "Distinct alerts raised since the node started",
                &[],
                self.monitor.alerts.load(Ordering::Relaxed) as f64,
            ),
        ];
        if let Some((p50, p99)) = a.latency() {
            for (q, v) in [("0.5", p50), ("0.99", p99)] {
                out.push(Sample::new(
                    "anchor_latency_seconds",
                    "Extraction at the source to anchored under a signed checkpoint, over the last 10,000 events",
                    &[("quantile", q)],
                    v as f64 / 1000.0,
                ));
            }
        }
        out
    }
}
