//! Connectors for IT departments: status (state, rows/s, lag, last error), pause, resume, run
//! now, rewind, connection test, schema discovery; and the quarantine of records that could not
//! go on.

use actix_web::{HttpResponse, get, post, web};
use ledgerbridge_connectors::runtime::ControlError;
use ledgerbridge_connectors::{ConnectorStatus, RewindTo, TableInfo};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody, ErrorCode, check_limit, store_call};

fn control_error(e: ControlError) -> ApiError {
    match e {
        ControlError::Unknown(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
        ControlError::Invalid(_) => ApiError::new(ErrorCode::BadRequest, e.to_string()),
        ControlError::Source(source) => ApiError::unavailable("the source", &source),
    }
}

/// The status of every connector.
#[utoipa::path(
    operation_id = "list_connectors",
    tag = "connectors",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every configured connector", body = Vec<ConnectorStatus>),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
    )
)]
#[get("/api/v1/connectors")]
pub(crate) async fn list_connectors(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.connectors.statuses())
}

/// A connector in detail.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConnectorDetail {
    /// Its status.
    status: ConnectorStatus,
    /// Its configuration as written (secrets stay references).
    #[schema(value_type = Object)]
    config: serde_json::Value,
    /// The stored offset of each stream (table or directory).
    #[schema(value_type = Object)]
    offsets: serde_json::Value,
}

/// One connector: status, configuration and offsets.
#[utoipa::path(
    operation_id = "get_connector",
    tag = "connectors",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "The connector", body = ConnectorDetail),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
    )
)]
#[get("/api/v1/connectors/{name}")]
pub(crate) async fn get_connector(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let c = &state.connectors;
    let status = c.status(&name).map_err(control_error)?;
    let config = serde_json::to_value(c.config(&name).map_err(control_error)?)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let offsets = serde_json::to_value(c.offsets(&name).await.map_err(control_error)?)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(HttpResponse::Ok().json(ConnectorDetail {
        status,
        config,
        offsets,
    }))
}

/// Pauses a connector at its next chunk boundary.
#[utoipa::path(
    operation_id = "pause_connector",
    tag = "connectors",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Connector name")),
    responses(
        (status = 202, description = "Pausing; poll the status", body = ConnectorStatus),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
    )
)]
#[post("/api/v1/connectors/{name}/pause")]
pub(crate) async fn pause_connector(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.connectors.pause(&name).map_err(control_error)?;
    accepted(&state, &name)
}

/// Resumes a paused or stopped connector.
#[utoipa::path(
    operation_id = "resume_connector",
    tag = "connectors",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Connector name")),
    responses(
        (status = 202, description = "Resuming; poll the status", body = ConnectorStatus),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
    )
)]
#[post("/api/v1/connectors/{name}/resume")]
pub(crate) async fn resume_connector(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.connectors.resume(&name).map_err(control_error)?;
    accepted(&state, &name)
}

/// Starts a pass now rather than at the next poll or scheduled time.
#[utoipa::path(
    operation_id = "run_connector",
    tag = "connectors",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Connector name")),
    responses(
        (status = 202, description = "A pass is starting", body = ConnectorStatus),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
    )
)]
#[post("/api/v1/connectors/{name}/run")]
pub(crate) async fn run_connector(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.connectors.run_now(&name).map_err(control_error)?;
    accepted(&state, &name)
}

fn accepted(state: &AppState, name: &str) -> Result<HttpResponse, ApiError> {
    let status = state.connectors.status(name).map_err(control_error)?;
    Ok(HttpResponse::Accepted().json(status))
}

/// Where to move a connector's streams.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RewindRequest {
    /// One stream (table or directory); all of the connector's streams when left out.
    #[serde(default)]
    stream: Option<String>,
    /// The target.
    #[serde(flatten)]
    to: RewindTo,
}

/// The streams a rewind moved.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Rewound {
    /// Streams moved.
    streams: Vec<String>,
}

/// Rewinds a connector to the beginning, a cursor, a time or a stored offset, without deleting
/// it; a running connector continues from there, a paused one stays paused.
#[utoipa::path(
    operation_id = "rewind_connector",
    tag = "connectors",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Connector name")),
    request_body = RewindRequest,
    responses(
        (status = 200, description = "Rewound", body = Rewound),
        (status = 400, description = "A stream or target the connector cannot take", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
    )
)]
#[post("/api/v1/connectors/{name}/rewind")]
pub(crate) async fn rewind_connector(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<RewindRequest>,
) -> Result<HttpResponse, ApiError> {
    let RewindRequest { stream, to } = body.into_inner();
    let streams = state
        .connectors
        .rewind(&name, stream, to)
        .await
        .map_err(control_error)?;
    Ok(HttpResponse::Ok().json(Rewound { streams }))
}

/// The outcome of a connection test.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConnectionTest {
    /// Whether the source answered.
    ok: bool,
    /// What answered (server version, database), or why it failed.
    detail: String,
}

/// Connects to the source with a fresh connection.
#[utoipa::path(
    operation_id = "test_connector",
    tag = "connectors",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "The outcome, successful or not", body = ConnectionTest),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
    )
)]
#[post("/api/v1/connectors/{name}/test")]
pub(crate) async fn test_connector(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let outcome = match state.connectors.test(&name).await {
        Ok(detail) => ConnectionTest { ok: true, detail },
        Err(ControlError::Source(e)) => ConnectionTest {
            ok: false,
            detail: e.to_string(),
        },
        Err(e) => return Err(control_error(e)),
    };
    Ok(HttpResponse::Ok().json(outcome))
}

/// The source's tables (or file layout): columns, their source types, how they travel on the
/// bus, and primary keys.
#[utoipa::path(
    operation_id = "list_connector_tables",
    tag = "connectors",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Connector name")),
    responses(
        (status = 200, description = "Tables", body = Vec<TableInfo>),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such connector", body = ErrorBody),
        (status = 503, description = "The source cannot be read", body = ErrorBody),
    )
)]
#[get("/api/v1/connectors/{name}/tables")]
pub(crate) async fn list_connector_tables(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let tables = state
        .connectors
        .discover(&name)
        .await
        .map_err(control_error)?;
    Ok(HttpResponse::Ok().json(tables))
}

/// Filters of the quarantine list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct QuarantineQuery {
    /// `connector` (default) or `mapping`.
    #[serde(default = "default_stage")]
    stage: String,
    /// Only this connector or mapping.
    #[serde(default)]
    source: Option<String>,
    /// Only records with an id below this (paging, newest first).
    #[serde(default)]
    before: Option<i64>,
    /// Most records to return, 1 to 1000 (default 100).
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_stage() -> String {
    "connector".into()
}

fn default_limit() -> i64 {
    100
}

/// A quarantined record.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Quarantined {
    /// Id (pass as `before` for the next page).
    id: i64,
    /// `connector` or `mapping`.
    stage: String,
    /// Connector or mapping name.
    source: String,
    /// Table or directory.
    stream: String,
    /// Where in the source (key, `file:line`, log position).
    position: String,
    /// Why it could not go on, naming the column, field or line.
    reason: String,
    /// The record as read (JSON, or the raw line).
    payload: String,
    /// `open`, `redriven` or `discarded`.
    status: String,
    /// When, milliseconds since the epoch.
    created_at_ms: i64,
}

/// Records that could not go on, newest first, with their reasons.
#[utoipa::path(
    operation_id = "list_quarantine",
    tag = "connectors",
    security(("bearer" = [])),
    params(QuarantineQuery),
    responses(
        (status = 200, description = "Quarantined records", body = Vec<Quarantined>),
        (status = 400, description = "A bad filter", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
    )
)]
#[get("/api/v1/quarantine")]
pub(crate) async fn list_quarantine(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<QuarantineQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    check_limit(q.limit)?;
    let store = state.store.clone();
    let rows =
        store_call(move || store.quarantined(&q.stage, q.source.as_deref(), q.before, q.limit))
            .await?;
    let body: Vec<Quarantined> = rows
        .into_iter()
        .map(|r| Quarantined {
            id: r.id,
            stage: r.stage,
            source: r.source,
            stream: r.stream,
            position: r.position,
            reason: r.reason,
            payload: r.payload,
            status: r.status,
            created_at_ms: r.created_at_ms,
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}
