//! `GET /metrics`: the whole pipeline for Prometheus (OpenMetrics text, encoded by
//! `prometheus-client`), collected at scrape time: rows and rows/s, lag and quarantined records
//! per connector, the mapping worker's counters, open quarantined records per stage, ledger size
//! per channel, alerts by rule and severity, and what the node's other stages report through
//! [`MetricsSource`] (the anchoring worker's counters and latency).

use std::sync::atomic::AtomicU64;

use actix_web::{HttpResponse, get, web};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::AppState;
use crate::error::{ApiError, ErrorCode, store_call};

/// One sample: a metric name (without the `ledgerbridge_` prefix), its help, labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Name, e.g. `anchor_latency_seconds`.
    pub name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// Label pairs (bounded values only: names of connectors, channels, rules).
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// A sample.
    #[must_use]
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Self {
        Self {
            name,
            help,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            value,
        }
    }
}

/// A stage of the node that reports samples at scrape time.
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    /// The current samples.
    fn samples(&self) -> Vec<Sample>;
}

type Labels = Vec<(String, String)>;

/// A metric family of float gauges keyed by label pairs.
type GaugeFamily = Family<Labels, Gauge<f64, AtomicU64>>;

#[allow(clippy::cast_precision_loss)]
async fn collect(state: &AppState) -> Result<Vec<Sample>, ApiError> {
    let mut out = Vec::new();
    for c in state.connectors.statuses() {
        let l = [("connector", c.name.as_str())];
        out.push(Sample::new(
            "connector_rows",
            "Rows published since the node started",
            &l,
            c.rows_total as f64,
        ));
        out.push(Sample::new(
            "connector_rows_per_second",
            "Rows published per second over 10 s",
            &l,
            c.rows_per_sec,
        ));
        out.push(Sample::new(
            "connector_lag_seconds",
            "Time since the start of the connector's last complete pass",
            &l,
            c.lag_ms.map_or(f64::NAN, |ms| ms as f64 / 1000.0),
        ));
        out.push(Sample::new(
            "connector_quarantined",
            "Records quarantined since the node started",
            &l,
            c.quarantined_total as f64,
        ));
    }
    let m = &state.mappings.stats;
    for (what, value) in [
        ("consumed", &m.consumed),
        ("events", &m.events),
        ("skipped", &m.skipped),
        ("unmapped", &m.unmapped),
        ("quarantined", &m.quarantined),
    ] {
        out.push(Sample::new(
            "mapping_records",
            "Raw records through the mapping worker since the node started, by outcome",
            &[("outcome", what)],
            value.load(std::sync::atomic::Ordering::Relaxed) as f64,
        ));
    }
    let (store, ledger) = (state.store.clone(), state.ledger.clone());
    let (quarantine, sizes, alerts) = store_call(move || {
        let quarantine: Vec<(&str, i64)> = ["connector", "mapping", "anchor"]
            .into_iter()
            .map(|s| store.quarantine_open_count(s, None).map(|n| (s, n)))
            .collect::<Result<_, _>>()?;
        let sizes: Vec<(String, u64)> = ledger
            .channels()
            .map_err(|e| ledgerbridge_store::StoreError::Pool(e.to_string()))?
            .into_iter()
            .map(|c| ledger.size(&c).map(|n| (c, n)))
            .collect::<Result<_, _>>()
            .map_err(|e| ledgerbridge_store::StoreError::Pool(e.to_string()))?;
        let alerts = store.alert_counts()?;
        Ok::<_, ledgerbridge_store::StoreError>((quarantine, sizes, alerts))
    })
    .await?;
    for (stage, n) in quarantine {
        out.push(Sample::new(
            "quarantine_open",
            "Quarantined records still open, by stage",
            &[("stage", stage)],
            n as f64,
        ));
    }
    for (channel, n) in sizes {
        out.push(Sample::new(
            "ledger_entries",
            "Entries in each ledger channel",
            &[("channel", &channel)],
            n as f64,
        ));
    }
    for (rule, severity, n) in alerts {
        out.push(Sample::new(
            "alerts",
            "Alerts stored, by rule and severity",
            &[("rule", &rule), ("severity", &severity)],
            n as f64,
        ));
    }
    for source in &state.metrics {
        out.extend(source.samples());
    }
    Ok(out)
}

/// Prometheus metrics of the whole pipeline.
#[utoipa::path(
    operation_id = "get_metrics",
    tag = "node",
    responses((status = 200, description = "OpenMetrics text exposition", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub(crate) async fn get_metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let samples = collect(&state).await?;
    let mut registry = Registry::with_prefix("ledgerbridge");
    let mut families: Vec<(&'static str, GaugeFamily)> = Vec::new();
    for s in &samples {
        let family = match families.iter().position(|(n, _)| *n == s.name) {
            Some(i) => families[i].1.clone(),
            None => {
                let f = GaugeFamily::default();
                registry.register(s.name, s.help, f.clone());
                families.push((s.name, f.clone()));
                f
            }
        };
        family.get_or_create(&s.labels).set(s.value);
    }
    let mut text = String::new();
    encode(&mut text, &registry).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}
