//! `GET /api/v1/health`: every component of the node and its state.

use std::sync::Arc;

use actix_web::{HttpResponse, get, web};
use async_trait::async_trait;
use ledgerbridge_bus::Bus;
use ledgerbridge_store::Store;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// Something whose state the health report shows.
#[async_trait]
pub trait HealthCheck: Send + Sync + std::fmt::Debug {
    /// Component name, e.g. `store`.
    fn name(&self) -> &str;
    /// `Ok(detail)` when it works, `Err(reason)` when not.
    async fn check(&self) -> Result<String, String>;
}

/// State of one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ComponentState {
    /// Working.
    Up,
    /// Not working; `detail` says why.
    Down,
}

/// One component in the health report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComponentHealth {
    /// Component name: `api`, `store`, `bus`, and the pipeline stages as they are added.
    pub name: String,
    /// Its state.
    pub state: ComponentState,
    /// What it is (backend, location) or why it is down.
    pub detail: String,
}

/// The health report.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthReport {
    /// `up` when every component is up, else `down`.
    pub status: ComponentState,
    /// This node's id.
    pub node: String,
    /// ledgerbridge version.
    pub version: String,
    /// Seconds since the node started.
    pub uptime_seconds: u64,
    /// Every component.
    pub components: Vec<ComponentHealth>,
}

/// Health of the node and of each component.
///
/// Answers 200 when every component is up and 503 (with the same body) when one is down, so
/// that load balancers and orchestrators can use it directly. Needs no token.
#[utoipa::path(
    operation_id = "get_health",
    tag = "node",
    responses(
        (status = 200, description = "Every component is up", body = HealthReport),
        (status = 503, description = "At least one component is down", body = HealthReport),
    )
)]
#[get("/api/v1/health")]
pub(crate) async fn get_health(state: web::Data<AppState>) -> HttpResponse {
    let mut components = vec![ComponentHealth {
        name: "api".into(),
        state: ComponentState::Up,
        detail: "serving".into(),
    }];
    for c in &state.components {
        let (st, detail) = match c.check().await {
            Ok(d) => (ComponentState::Up, d),
            Err(d) => (ComponentState::Down, d),
        };
        components.push(ComponentHealth {
            name: c.name().to_owned(),
            state: st,
            detail,
        });
    }
    let all_up = components.iter().all(|c| c.state == ComponentState::Up);
    let report = HealthReport {
        status: if all_up {
            ComponentState::Up
        } else {
            ComponentState::Down
        },
        node: state.node_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: state.started.elapsed().as_secs(),
        components,
    };
    if all_up {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

/// Health of the store.
#[derive(Debug)]
pub struct StoreHealth(pub Store);

#[async_trait]
impl HealthCheck for StoreHealth {
    fn name(&self) -> &str {
        "store"
    }

    /// Reads and writes: a store that answers but cannot write (a full disk, a read-only
    /// replica after a failover) is down.
    async fn check(&self) -> Result<String, String> {
        let store = self.0.clone();
        let probe = move || {
            let detail = store.health()?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            store
                .set_meta("health.write_probe", &now.to_string())
                .map(|()| detail)
        };
        match web::block(probe).await {
            Ok(Ok(detail)) => Ok(detail),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Health of the bus.
#[derive(Debug)]
pub struct BusHealth(pub Arc<dyn Bus>);

#[async_trait]
impl HealthCheck for BusHealth {
    fn name(&self) -> &str {
        "bus"
    }

    async fn check(&self) -> Result<String, String> {
        self.0.health().await.map_err(|e| e.to_string())
    }
}

/// Health of the ledger: every channel and its size.
#[derive(Debug)]
pub struct LedgerHealth(pub ledgerbridge_ledger::Ledger);

#[async_trait]
impl HealthCheck for LedgerHealth {
    fn name(&self) -> &str {
        "ledger"
    }

    async fn check(&self) -> Result<String, String> {
        let ledger = self.0.clone();
        let sizes = web::block(move || {
            ledger
                .channels()?
                .into_iter()
                .map(|c| ledger.size(&c).map(|s| format!("{c} {s}")))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        Ok(format!(
            "channels: {}",
            if sizes.is_empty() {
                "none".into()
            } else {
                sizes.join(", ")
            }
        ))
    }
}
