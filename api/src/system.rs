//! What the node says about itself: who is calling, and the node's own event log (every start,
//! configuration change and administrative action is an event on the `system` topic).

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody};

/// The caller's token.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WhoAmI {
    /// Token name.
    name: String,
    /// Token role.
    role: String,
    /// When the token was created (milliseconds since the epoch).
    created_at_ms: i64,
}

/// Who the bearer token belongs to.
#[utoipa::path(
    operation_id = "get_whoami",
    tag = "node",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token is valid", body = WhoAmI),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
    )
)]
#[get("/api/v1/whoami")]
pub(crate) async fn get_whoami(Admin(token): Admin) -> HttpResponse {
    HttpResponse::Ok().json(WhoAmI {
        name: token.name,
        role: "admin".into(),
        created_at_ms: token.created_at_ms,
    })
}

/// Paging through the system events.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// First offset to return (default 0).
    #[serde(default)]
    from: u64,
    /// Most events to return, 1 to 1000 (default 100).
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

/// One event of the node's own log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SystemEvent {
    /// Offset in the system topic.
    offset: u64,
    /// When it happened (milliseconds since the epoch).
    timestamp_ms: i64,
    /// Event type, e.g. `node.started`.
    #[serde(rename = "type")]
    kind: String,
    /// Event data.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

/// A page of system events.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SystemEvents {
    /// The events, oldest first.
    events: Vec<SystemEvent>,
    /// Offset to pass as `from` for the next page.
    next: u64,
    /// Offset the next event will get.
    end: u64,
}

/// The node's own event log: starts, configuration changes, administrative actions.
#[utoipa::path(
    operation_id = "list_system_events",
    tag = "node",
    params(EventsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of events", body = SystemEvents),
        (status = 400, description = "Bad paging parameters", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 503, description = "The bus is unavailable", body = ErrorBody),
    )
)]
#[get("/api/v1/system/events")]
pub(crate) async fn list_system_events(
    _admin: Admin,
    state: web::Data<AppState>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    if !(1..=1000).contains(&query.limit) {
        return Err(ApiError::new(
            crate::error::ErrorCode::BadRequest,
            format!("limit: must be between 1 and 1000, got {}", query.limit),
        ));
    }
    let topic = &state.system_topic;
    let records = state
        .bus
        .read(topic, 0, query.from, query.limit)
        .await
        .map_err(|e| ApiError::unavailable("bus", &e))?;
    let end = state
        .bus
        .end_offset(topic, 0)
        .await
        .map_err(|e| ApiError::unavailable("bus", &e))?;
    let next = records.last().map_or(query.from, |d| d.offset + 1);
    let events = records
        .into_iter()
        .map(|d| SystemEvent {
            offset: d.offset,
            timestamp_ms: d.record.timestamp_ms,
            kind: d
                .record
                .header("type")
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .unwrap_or_default(),
            data: serde_json::from_slice(&d.record.value).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&d.record.value).into_owned())
            }),
        })
        .collect();
    Ok(HttpResponse::Ok().json(SystemEvents { events, next, end }))
}
