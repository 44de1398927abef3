//! Alerts of the monitoring rules, for analysts: newest first, each with its rule and version,
//! severity, key, the explanation with values and thresholds, and the events behind it (their
//! provenance and proofs are one call away, `GET /api/v1/provenance/{event_id}`).

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use serde_json::Value as J;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody, ErrorCode};

/// Filters of the alert list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertQuery {
    /// Only this rule.
    #[serde(default)]
    rule: Option<String>,
    /// Only alerts with an id below this (paging).
    #[serde(default)]
    before: Option<i64>,
    /// Most alerts to return, 1 to 1000 (default 100).
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// An alert.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertBody {
    id: i64,
    rule_id: String,
    rule_version: i32,
    severity: String,
    /// What the rule grouped by (a pseudonym, a parcel, an order).
    key: String,
    /// Why, with the values and thresholds.
    explanation: String,
    /// The canonical events involved.
    event_ids: Vec<String>,
    event_at_ms: Option<i64>,
    detected_at_ms: i64,
    status: String,
}

/// Alerts, newest first.
#[utoipa::path(
    operation_id = "list_alerts",
    tag = "monitoring",
    security(("bearer" = [])),
    params(AlertQuery),
    responses(
        (status = 200, description = "Alerts", body = Vec<AlertBody>),
        (status = 400, description = "A bad filter", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
    )
)]
#[get("/api/v1/alerts")]
pub(crate) async fn list_alerts(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<AlertQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if !(1..=1000).contains(&q.limit) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "limit: between 1 and 1000",
        ));
    }
    let store = state.store.clone();
    let rows = web::block(move || store.alerts(q.rule.as_deref(), q.before, q.limit))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| ApiError::unavailable("the store", &e))?;
    Ok(HttpResponse::Ok().json(
        rows.into_iter()
            .map(|a| AlertBody {
                id: a.id,
                rule_id: a.rule_id,
                rule_version: a.rule_version,
                severity: a.severity,
                key: a.alert_key,
                explanation: a.explanation,
                event_ids: serde_json::from_str::<J>(&a.event_ids)
                    .ok()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default(),
                event_at_ms: a.event_at_ms,
                detected_at_ms: a.detected_at_ms,
                status: a.status,
            })
            .collect::<Vec<_>>(),
    ))
}
