//! The monitoring worker: consumes the canonical topics in the consumer group `<prefix>monitor`,
//! feeds every event to the shipped rules (`ledgerbridge-monitoring`), stores their alerts (one
//! row per distinct finding, so redelivery raises nothing twice) and publishes them to
//! `<prefix>alerts`. The rules' state (windows, medians) is saved in the store every ten seconds
//! and at shutdown, and the consumed offsets are committed only then: after a crash the events
//! since the last save are read again into the restored state.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ledgerbridge_bus::{Bus, Delivered, Record};
use ledgerbridge_mappings::Mappings;
use ledgerbridge_monitoring::Monitor;
use ledgerbridge_registry::Registry;
use ledgerbridge_store::{Store, StoredAlert};

use crate::anchor::Decoders;
use ledgerbridge_mappings::worker::Unreadable;

const STATE_KEY: &str = "monitor.state";
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// The monitoring worker's counters.
#[derive(Debug, Default)]
pub(crate) struct MonitorStats {
    pub(crate) events: AtomicU64,
    pub(crate) alerts: AtomicU64,
}

/// What the monitoring worker needs.
#[derive(Debug, Clone)]
pub(crate) struct MonitorContext {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) store: Store,
    pub(crate) mappings: Arc<Mappings>,
    pub(crate) registry: Registry,
    pub(crate) prefix: String,
    pub(crate) stats: Arc<MonitorStats>,
}

fn stored(a: &ledgerbridge_monitoring::engine::Alert) -> StoredAlert {
    let mut ids = a.event_ids.clone();
    ids.sort();
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!(
            "{}\0{}\0{}\0{}",
            a.rule_id,
            a.rule_version,
            a.key,
            ids.join("\0")
        )
        .as_bytes(),
    );
    StoredAlert {
        id: 0,
        dedup_key: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        rule_id: a.rule_id.clone(),
        rule_version: i32::try_from(a.rule_version).unwrap_or(i32::MAX),
        severity: format!("{:?}", a.severity).to_lowercase(),
        alert_key: a.key.clone(),
        explanation: a.explanation.clone(),
        event_ids: serde_json::to_string(&a.event_ids).unwrap_or_else(|_| "[]".into()),
        event_at_ms: a.event_time,
        detected_at_ms: a.detected_at,
        status: "open".into(),
        assignee: None,
        suppressed_by: None,
        evidence: None,
        ledger_index: None,
    }
}

async fn save(ctx: &MonitorContext, monitor: &Monitor) -> Result<(), String> {
    let state = serde_json::to_string(&monitor.snapshot()).map_err(|e| e.to_string())?;
    let store = ctx.store.clone();
    tokio::task::spawn_blocking(move || store.set_meta(STATE_KEY, &state))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("saving the rules' state: {e}"))
}

/// Waits `secs` seconds, or less when `stop` turns true; returns whether it did.
async fn pause(stop: &mut tokio::sync::watch::Receiver<bool>, secs: u64) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(secs)) => {}
        _ = stop.changed() => {}
    }
    *stop.borrow()
}

/// Feeds a batch to the rules and stores and publishes what they raise. The store being down
/// (the registry behind the decoders, the alerts table) is waited out, never skipped: decoding
/// is retried before any rule sees the batch, and storing the alerts (deduplicated by their
/// key) is retried after. Returns false when the node stops first: the batch's offsets must not
/// be committed then, nor the state saved.
async fn alerts(
    ctx: &MonitorContext,
    monitor: &mut Monitor,
    decoders: &mut Decoders,
    batch: &[Delivered],
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<bool, String> {
    let canonical = format!("{}canonical.", ctx.prefix);
    // Reference data first: a lookup row read in the same batch as the events it is joined into
    // is in the table before they are.
    let type_of = |d: &Delivered| -> String {
        d.topic
            .strip_prefix(&canonical)
            .unwrap_or(&d.topic)
            .to_owned()
    };
    let mut ordered: Vec<&Delivered> = batch.iter().collect();
    ordered.sort_by_key(|d| !monitor.fills_lookup(&type_of(d)));
    let mut attempt = 0u64;
    let events = 'decode: loop {
        let mut events = Vec::with_capacity(ordered.len());
        for d in &ordered {
            match decoders.decode(&type_of(d), &d.record.value) {
                Ok(event) => events.push(event),
                Err(Unreadable::Invalid(e)) => {
                    tracing::warn!(topic = %d.topic, offset = d.offset, "monitoring skips an unreadable event: {e}");
                }
                Err(Unreadable::Unavailable(e)) => {
                    attempt += 1;
                    tracing::warn!("monitoring worker: {e}; retrying (attempt {attempt})");
                    if pause(stop, attempt.min(30)).await {
                        return Ok(false);
                    }
                    continue 'decode;
                }
            }
        }
        break events;
    };
    let now = chrono::Utc::now().timestamp_millis();
    let mut raised = Vec::new();
    for event in &events {
        ctx.stats.events.fetch_add(1, Ordering::Relaxed);
        raised.extend(monitor.process(event, now));
    }
    if raised.is_empty() {
        return Ok(true);
    }
    let rows: Vec<StoredAlert> = raised.iter().map(stored).collect();
    let records: Vec<Record> = rows
        .iter()
        .map(|a| {
            Record::new(
                Some(a.alert_key.clone().into_bytes()),
                serde_json::to_vec(a).unwrap_or_default(),
            )
            .with_header("type", "alert")
        })
        .collect();
    let topic = format!("{}alerts", ctx.prefix);
    let mut attempt = 0u64;
    loop {
        let store = ctx.store.clone();
        let to_store = rows.clone();
        let stored = tokio::task::spawn_blocking(move || store.insert_alerts(&to_store))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("storing alerts: {e}"));
        let outcome = match stored {
            Ok(added) => {
                ctx.stats.alerts.fetch_add(added as u64, Ordering::Relaxed);
                ctx.bus
                    .publish(&topic, records.clone())
                    .await
                    .map_err(|e| format!("publishing to {topic}: {e}"))
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(_) => return Ok(true),
            Err(e) => {
                attempt += 1;
                tracing::warn!("monitoring worker: {e}; retrying (attempt {attempt})");
                if pause(stop, attempt.min(30)).await {
                    return Ok(false);
                }
            }
        }
    }
}

/// How often the worker looks for rule versions edited through the API.
const RULES_EVERY: Duration = Duration::from_secs(3);

/// The rules in force (shipped, overlaid with the versions edited through the API) and the mark
/// of the stored versions they reflect.
async fn rules_in_force(
    store: &Store,
) -> Result<(Vec<ledgerbridge_monitoring::Rule>, i64), String> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mark = store.rule_versions_mark().map_err(|e| e.to_string())?;
        let edited: Vec<ledgerbridge_monitoring::catalog::Edited> = store
            .rule_versions(None)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|v| ledgerbridge_monitoring::catalog::Edited {
                rule_id: v.rule_id,
                version: u32::try_from(v.version).unwrap_or(0),
                body: v.body,
                enabled: v.enabled,
            })
            .collect();
        let builtin = ledgerbridge_monitoring::rules::builtin().map_err(|e| e.to_string())?;
        let rules = ledgerbridge_monitoring::catalog::effective(builtin, &edited)?.rules;
        Ok((rules.into_iter().map(|(r, _)| r).collect(), mark))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The lookups shipped in the rule files (reference data joined into the events).
fn builtin_lookups() -> Vec<ledgerbridge_monitoring::rules::Lookup> {
    match ledgerbridge_monitoring::rules::builtin_set() {
        Ok(set) => set.lookups,
        Err(e) => {
            tracing::error!("the shipped lookups do not load: {e}");
            Vec::new()
        }
    }
}

/// Swaps in the rules edited since `mark`: unchanged rules keep their state, changed ones start
/// afresh.
async fn reload(ctx: &MonitorContext, monitor: &mut Monitor, mark: &mut i64) {
    let store = ctx.store.clone();
    let now = tokio::task::spawn_blocking(move || store.rule_versions_mark()).await;
    let Ok(Ok(now)) = now else {
        tracing::warn!("monitoring worker: reading the rule versions failed");
        return;
    };
    if now == *mark {
        return;
    }
    match rules_in_force(&ctx.store).await {
        Ok((rules, new_mark)) => {
            let snapshot = monitor.snapshot();
            let mut next = Monitor::new(rules).with_lookups(builtin_lookups());
            let fresh = next.restore(snapshot);
            *monitor = next;
            *mark = new_mark;
            tracing::info!(
                rules = monitor.rules().count(),
                ?fresh,
                "monitoring worker: rules edited through the API are in force"
            );
        }
        Err(e) => tracing::error!(
            "monitoring worker: the edited rules do not load, keeping the old ones: {e}"
        ),
    }
}

/// Runs until `stop` turns true.
pub(crate) async fn run(
    ctx: MonitorContext,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let (rules, mut mark) = rules_in_force(&ctx.store).await?;
    let mut monitor = Monitor::new(rules).with_lookups(builtin_lookups());
    let mut checked = Instant::now();
    let store = ctx.store.clone();
    if let Some(text) = tokio::task::spawn_blocking(move || store.meta(STATE_KEY))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    {
        match serde_json::from_str(&text) {
            Ok(snapshot) => {
                let dropped = monitor.restore(snapshot);
                if !dropped.is_empty() {
                    tracing::info!(
                        ?dropped,
                        "rules changed since the state was saved: they start afresh"
                    );
                }
            }
            Err(e) => {
                tracing::warn!("the saved monitoring state is unreadable, starting afresh: {e}")
            }
        }
    }
    let topics = crate::anchor::canonical_topics(&ctx.mappings, &ctx.prefix);
    let group = format!("{}monitor", ctx.prefix);
    let mut consumer = ctx
        .bus
        .subscribe(&group, &topics)
        .await
        .map_err(|e| format!("subscribing {group}: {e}"))?;
    let mut decoders = Decoders::new(ctx.registry.clone(), Arc::clone(&ctx.mappings));
    let mut pending: Vec<Delivered> = Vec::new();
    let mut saved = Instant::now();
    tracing::info!(rules = monitor.rules().count(), "monitoring worker running");
    loop {
        let stopping = *stop.borrow();
        if stopping || saved.elapsed() >= SAVE_EVERY {
            // The offsets are committed only with the state that reflects them; a store that is
            // down defers both (the events since are read again after a restart).
            match save(&ctx, &monitor).await {
                Ok(()) => {
                    ledgerbridge_bus::commit_batch(&mut *consumer, &pending).await;
                    pending.clear();
                }
                Err(e) => {
                    tracing::warn!("monitoring worker: {e}; the offsets wait for the next save")
                }
            }
            saved = Instant::now();
            if stopping {
                return Ok(());
            }
        }
        if checked.elapsed() >= RULES_EVERY {
            checked = Instant::now();
            reload(&ctx, &mut monitor, &mut mark).await;
        }
        let batch = tokio::select! {
            r = consumer.poll(5_000, Duration::from_millis(200)) => r,
            _ = stop.changed() => continue,
        };
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("monitoring worker: reading the canonical topics: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        if !alerts(&ctx, &mut monitor, &mut decoders, &batch, &mut stop).await? {
            // Stopped while the store was down: the batch is read again at the next start, into
            // the state saved with the last committed offsets.
            return Ok(());
        }
        pending.extend(batch);
    }
}
