//! Reconciliation: the proof of completeness polling connectors elsewhere cannot give. For each
//! table of a connector that a mapping reads, the source's rows now (count and an
//! order-independent hash of their primary keys) against what the ledger holds from that table
//! and what is quarantined: missing, extra and duplicated records, with their keys.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpResponse, post, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody, ErrorCode, store_call};

/// At most this many keys are listed per kind of difference (the counts are complete).
const LISTED: usize = 100;

/// Count and order-independent hash (XOR of the SHA-256 of each key) of a set of keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeySet {
    rows: usize,
    hash: String,
}

fn key_set<'a>(keys: impl IntoIterator<Item = &'a String>) -> KeySet {
    let mut acc = [0u8; 32];
    let mut rows = 0;
    for k in keys {
        rows += 1;
        let d = ring::digest::digest(&ring::digest::SHA256, k.as_bytes());
        for (a, b) in acc.iter_mut().zip(d.as_ref()) {
            *a ^= b;
        }
    }
    KeySet {
        rows,
        hash: acc.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// One table's reconciliation.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableReport {
    table: String,
    /// The mapping reading it.
    mapping: String,
    /// The ledger channel its events go to.
    channel: String,
    /// The source's rows now.
    source: KeySet,
    /// Distinct source keys anchored.
    anchored: KeySet,
    /// Source keys quarantined (connector or mapping stage) and still open.
    quarantined: usize,
    /// Source rows neither anchored nor quarantined.
    missing: usize,
    /// Anchored keys no longer in the source (deleted there).
    extra: usize,
    /// Keys anchored under more than one event although the mapping makes one event per row (a
    /// business key that changed).
    duplicated: usize,
    /// Keys anchored with several states, where the event key includes the status (a mortgage
    /// registered then released, an account that went dormant): expected, not duplicates.
    several_states: usize,
    /// The first missing, extra and duplicated keys.
    missing_keys: Vec<String>,
    extra_keys: Vec<String>,
    duplicated_keys: Vec<String>,
    /// Every source row anchored or quarantined, and nothing anchored that the source lacks.
    /// With nothing quarantined, the two hashes are then equal.
    complete: bool,
}

/// A connector's reconciliation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reconciliation {
    connector: String,
    /// When it ran, milliseconds since the epoch.
    at_ms: i64,
    tables: Vec<TableReport>,
    /// Every table complete.
    complete: bool,
}

impl Reconciliation {
    /// Whether every mapped table is complete (nothing missing or quarantined, hashes equal).
    #[must_use]
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// One line per incomplete table: what is missing, extra, duplicated or quarantined.
    #[must_use]
    pub fn problems(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter(|t| !t.complete)
            .map(|t| {
                format!(
                    "{}.{}: {} missing {:?}, {} extra, {} duplicated {:?}, {} quarantined",
                    self.connector,
                    t.table,
                    t.missing,
                    t.missing_keys.iter().take(10).collect::<Vec<_>>(),
                    t.extra,
                    t.duplicated,
                    t.duplicated_keys.iter().take(10).collect::<Vec<_>>(),
                    t.quarantined
                )
            })
            .collect()
    }
}

/// The key in a ledger entry's source position (`<table> key=<key> …`) or a quarantine position.
fn key_in<'a>(position: &'a str, table_prefix: &str) -> Option<&'a str> {
    let rest = position.strip_prefix(table_prefix)?;
    let rest = rest.strip_prefix("key=")?;
    Some(rest.split(' ').next().unwrap_or(rest))
}

/// Reconciles a connector's mapped tables with the ledger now; the result is also recorded on
/// the node's system topic (`reconciliation.completed`).
#[utoipa::path(
    operation_id = "run_reconciliation",
    tag = "connectors",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "Per mapped table: source and anchored counts and hashes, missing, extra and duplicated keys", body = Reconciliation),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
        (status = 503, description = "The source or the ledger could not be read", body = ErrorBody),
    )
)]
#[post("/api/v1/connectors/{name}/reconcile")]
pub(crate) async fn run_reconciliation(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let connector = name.into_inner();
    state
        .connectors
        .status(&connector)
        .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))?;
    let report = reconcile(
        &state.connectors,
        &state.mappings,
        &state.ledger,
        &state.store,
        &connector,
    )
    .await?;
    let event = serde_json::to_value(&report).unwrap_or_default();
    let record = ledgerbridge_bus::Record::new(None, event.to_string().into_bytes())
        .with_header("type", "reconciliation.completed");
    if let Err(e) = state.bus.publish(&state.system_topic, vec![record]).await {
        tracing::warn!(
            "recording the reconciliation on {}: {e}",
            state.system_topic
        );
    }
    Ok(HttpResponse::Ok().json(report))
}

/// Reconciles one connector's mapped tables with the ledger (what the API's
/// `POST /api/v1/connectors/{name}/reconcile` and the scheduled `reconcile` audit run).
///
/// # Errors
/// The source, the store or the ledger could not be read.
pub async fn reconcile(
    connectors: &ledgerbridge_connectors::Connectors,
    mappings: &ledgerbridge_mappings::Mappings,
    ledger: &ledgerbridge_ledger::Ledger,
    store: &ledgerbridge_store::Store,
    connector: &str,
) -> Result<Reconciliation, ApiError> {
    let connector = connector.to_owned();
    let schemas = mappings.schemas();
    let mut tables = Vec::new();
    for (mapping, _, c, table, event_type) in mappings.active() {
        if c != connector || table == "*" {
            continue;
        }
        let schema = schemas.iter().rev().find(|s| s.event_type == event_type);
        let channel = schema.map(|s| s.channel.clone()).unwrap_or_default();
        // A key holding the status makes each state of a row its own event (a mortgage
        // registered then released): several events of one row are then its states.
        let states_keyed = schema.is_some_and(|s| s.key.iter().any(|k| k == "status"));
        let source_keys: BTreeSet<String> = connectors
            .keys(&connector, &table)
            .await
            .map_err(|e| ApiError::unavailable("the source", &e))?
            .into_iter()
            .collect();
        let (ch, conn, prefix) = (channel.clone(), connector.clone(), format!("{table} "));
        let ledger = ledger.clone();
        let anchored_keys: Vec<String> = actix_web::web::block(move || {
            Ok::<_, ledgerbridge_ledger::LedgerError>(
                ledger
                    .entries(&ch)?
                    .into_iter()
                    .filter(|e| e.connector == conn)
                    .filter_map(|e| key_in(&e.source_position, &prefix).map(str::to_owned))
                    .collect(),
            )
        })
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(crate::ledger::map_err)?;
        let store = store.clone();
        let (mapping_name, conn) = (mapping.clone(), connector.clone());
        let quarantine = store_call(move || {
            let mut q = store.quarantined("mapping", Some(&mapping_name), None, 100_000)?;
            q.extend(store.quarantined("connector", Some(&conn), None, 100_000)?);
            Ok::<_, ledgerbridge_store::StoreError>(q)
        })
        .await?;
        let table_prefix = format!("{table} ");
        let quarantined: BTreeSet<String> = quarantine
            .iter()
            .filter(|q| q.status == "open")
            .filter_map(|q| {
                key_in(&q.position, "")
                    .or_else(|| key_in(&q.position, &table_prefix))
                    .map(str::to_owned)
            })
            .filter(|k| source_keys.contains(k))
            .collect();
        let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
        for k in &anchored_keys {
            *counts.entry(k).or_default() += 1;
        }
        let anchored: BTreeSet<String> = counts.keys().map(|k| (*k).clone()).collect();
        let missing: Vec<String> = source_keys
            .iter()
            .filter(|k| !anchored.contains(*k) && !quarantined.contains(*k))
            .cloned()
            .collect();
        let extra: Vec<String> = anchored.difference(&source_keys).cloned().collect();
        let several: Vec<String> = counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| (*k).clone())
            .collect();
        let (states, duplicated) = if states_keyed {
            (several.len(), Vec::new())
        } else {
            (0, several)
        };
        let source = key_set(&source_keys);
        let anchored_set = key_set(anchored.iter().filter(|k| source_keys.contains(*k)));
        let complete =
            missing.is_empty() && quarantined.is_empty() && source.hash == anchored_set.hash;
        tables.push(TableReport {
            table,
            mapping,
            channel,
            quarantined: quarantined.len(),
            missing: missing.len(),
            extra: extra.len(),
            duplicated: duplicated.len(),
            several_states: states,
            missing_keys: missing.into_iter().take(LISTED).collect(),
            extra_keys: extra.into_iter().take(LISTED).collect(),
            duplicated_keys: duplicated.into_iter().take(LISTED).collect(),
            source,
            anchored: anchored_set,
            complete,
        });
    }
    let report = Reconciliation {
        complete: tables.iter().all(|t| t.complete),
        connector,
        at_ms: chrono_now_ms(),
        tables,
    };
    Ok(report)
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
