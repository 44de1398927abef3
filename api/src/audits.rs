//! Scheduled audits (ledger re-verification, source reconciliation, the e-mail digest): the
//! configured jobs with their next run, the history of runs with their results, and runs asked
//! for now. The monitoring worker executes runs; the API records the request, so a run asked
//! for while that worker is busy or down waits for it rather than running twice.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::Value as J;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody, ErrorCode, check_limit, store_call};

/// A configured audit (`[[monitoring.audits]]`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditSchedule {
    /// Its name.
    pub name: String,
    /// `verify_ledger`, `reconcile` or `digest`.
    pub job: String,
    /// Cron expression with seconds, UTC.
    pub schedule: String,
}

/// A configured audit with its next and last runs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditBody {
    #[serde(flatten)]
    audit: AuditSchedule,
    /// When it next runs on its schedule (RFC 3339).
    next_run: Option<String>,
    /// Its latest run.
    #[schema(value_type = Option<Object>)]
    last_run: Option<J>,
}

/// The configured audits.
#[utoipa::path(
    operation_id = "list_audits",
    tag = "monitoring",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Audits with their schedule, next and last run", body = Vec<AuditBody>),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
    )
)]
#[get("/api/v1/audits")]
pub(crate) async fn list_audits(
    _: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut out = Vec::new();
    for a in &state.audits {
        let store = state.store.clone();
        let name = a.name.clone();
        let last = store_call(move || store.audit_runs(Some(&name), None, 1)).await?;
        let next_run = a
            .schedule
            .parse::<cron::Schedule>()
            .ok()
            .and_then(|s| s.upcoming(chrono::Utc).next())
            .map(|t| t.to_rfc3339());
        out.push(AuditBody {
            audit: a.clone(),
            next_run,
            last_run: last.first().map(run_json),
        });
    }
    Ok(HttpResponse::Ok().json(out))
}

fn run_json(r: &ledgerbridge_store::AuditRun) -> J {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        let details = serde_json::from_str::<J>(&r.details).unwrap_or(J::Null);
        o.insert("details".into(), details);
    }
    v
}

/// Filters of the run history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunQuery {
    /// Only runs of this audit.
    #[serde(default)]
    audit: Option<String>,
    /// Only runs with an id below this (paging).
    #[serde(default)]
    before: Option<i64>,
    /// Most runs to return, 1 to 1000 (default 100).
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

/// The history of audit runs, newest first: trigger, who asked, status (`requested`, `running`,
/// `passed`, `failed`, `error`), times, summary and detailed result.
#[utoipa::path(
    operation_id = "list_audit_runs",
    tag = "monitoring",
    security(("bearer" = [])),
    params(RunQuery),
    responses(
        (status = 200, description = "Runs", body = Vec<Object>),
        (status = 400, description = "A bad filter", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
    )
)]
#[get("/api/v1/audits/runs")]
pub(crate) async fn list_audit_runs(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<RunQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    check_limit(q.limit)?;
    let store = state.store.clone();
    let runs = store_call(move || store.audit_runs(q.audit.as_deref(), q.before, q.limit)).await?;
    Ok(HttpResponse::Ok().json(runs.iter().map(run_json).collect::<Vec<_>>()))
}

/// One run.
#[utoipa::path(
    operation_id = "get_audit_run",
    tag = "monitoring",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run", body = Object),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
    )
)]
#[get("/api/v1/audits/runs/{id}")]
pub(crate) async fn get_audit_run(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let store = state.store.clone();
    let run = store_call(move || store.audit_run(id))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no audit run {id}")))?;
    Ok(HttpResponse::Ok().json(run_json(&run)))
}

/// Asks for a run of an audit now; the monitoring worker starts it within a second (poll
/// `GET /api/v1/audits/runs/{id}` for the result).
#[utoipa::path(
    operation_id = "run_audit",
    tag = "monitoring",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Audit name")),
    responses(
        (status = 202, description = "The run, requested", body = Object),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such audit", body = ErrorBody),
    )
)]
#[post("/api/v1/audits/{name}/run")]
pub(crate) async fn run_audit(
    Admin(token): Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    if !state.audits.iter().any(|a| a.name == name) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "no audit `{name}`; configured: {}",
                state
                    .audits
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let store = state.store.clone();
    let run =
        store_call(move || store.add_audit_run(&name, "manual", Some(&token.name), "requested"))
            .await?;
    Ok(HttpResponse::Accepted().json(run_json(&run)))
}
