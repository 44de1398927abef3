//! Alerts of the monitoring rules, for analysts: newest first, each with its rule and version,
//! severity, key, the explanation with values and thresholds, and the events behind it (their
//! provenance and proofs are one call away, `GET /api/v1/provenance/{event_id}`).

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use serde_json::Value as J;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody, ErrorCode, check_limit, store_call};

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
    /// Who works on it.
    assignee: Option<String>,
    /// The suppression that muted it: stored, shown, not delivered.
    suppressed_by: Option<i64>,
    /// Evidence kept with it (e.g. both signed checkpoints of an equivocation).
    #[schema(value_type = Option<Object>)]
    evidence: Option<J>,
    /// Its index in the alerts channel of the ledger, once anchored.
    ledger_index: Option<i64>,
}

/// A JSON column of a stored alert, read back. The node writes these itself, so one that does
/// not parse is damage in the store: logged with the alert and the column, shown as absent
/// rather than failing the whole list.
fn stored_json<T: serde::de::DeserializeOwned>(id: i64, column: &str, text: &str) -> Option<T> {
    serde_json::from_str(text)
        .inspect_err(|e| tracing::warn!(alert = id, column, "unreadable stored JSON: {e}"))
        .ok()
}

fn body(a: ledgerbridge_store::StoredAlert) -> AlertBody {
    AlertBody {
        id: a.id,
        rule_id: a.rule_id,
        rule_version: a.rule_version,
        severity: a.severity,
        key: a.alert_key,
        explanation: a.explanation,
        event_ids: stored_json(a.id, "event_ids", &a.event_ids).unwrap_or_default(),
        event_at_ms: a.event_at_ms,
        detected_at_ms: a.detected_at_ms,
        status: a.status,
        assignee: a.assignee,
        suppressed_by: a.suppressed_by,
        evidence: a.evidence.and_then(|e| stored_json(a.id, "evidence", &e)),
        ledger_index: a.ledger_index,
    }
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
    check_limit(q.limit)?;
    let store = state.store.clone();
    let rows = store_call(move || store.alerts(q.rule.as_deref(), q.before, q.limit)).await?;
    Ok(HttpResponse::Ok().json(rows.into_iter().map(body).collect::<Vec<_>>()))
}

/// An alert with the history of its state.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AlertDetail {
    alert: AlertBody,
    /// Every change: status, assignee, comment, who, when.
    #[schema(value_type = Vec<Object>)]
    history: Vec<J>,
    /// Its deliveries by e-mail and webhook: recipient, mode, status, attempts, last error.
    #[schema(value_type = Vec<Object>)]
    deliveries: Vec<J>,
}

/// One alert and every change of its state.
#[utoipa::path(
    operation_id = "get_alert",
    tag = "monitoring",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The alert and its history", body = AlertDetail),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    )
)]
#[get("/api/v1/alerts/{id}")]
pub(crate) async fn get_alert(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    detail(&state, id.into_inner()).await
}

async fn detail(state: &AppState, id: i64) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let found = store_call(move || {
        let alert = store.alert(id)?;
        let deliveries = store.notifications(Some(id), 100)?;
        Ok::<_, ledgerbridge_store::StoreError>(alert.map(|(a, h)| (a, h, deliveries)))
    })
    .await?;
    let (alert, history, deliveries) =
        found.ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no alert {id}")))?;
    let json = |v: Vec<_>| {
        v.into_iter()
            .map(|x| serde_json::to_value(x).unwrap_or_default())
            .collect()
    };
    Ok(HttpResponse::Ok().json(AlertDetail {
        alert: body(alert),
        history: json(history),
        deliveries: deliveries
            .into_iter()
            .map(|x| serde_json::to_value(x).unwrap_or_default())
            .collect(),
    }))
}

/// A change of an alert's state.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct StatusChange {
    /// `open`, `acknowledged`, `resolved` or `false_positive`.
    status: String,
    /// Who works on it from now on; an empty string clears it; left out, it stays.
    #[serde(default)]
    assignee: Option<String>,
    /// Why (kept with the change); required to resolve or to mark a false positive.
    #[serde(default)]
    comment: String,
}

/// Acknowledges, assigns, resolves, marks as a false positive or reopens an alert; the change is
/// kept with who made it and why.
#[utoipa::path(
    operation_id = "set_alert_status",
    tag = "monitoring",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Alert id")),
    request_body = StatusChange,
    responses(
        (status = 200, description = "The alert and its history", body = AlertDetail),
        (status = 400, description = "An unknown status, or no comment to resolve or mark a false positive", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    )
)]
#[post("/api/v1/alerts/{id}/status")]
pub(crate) async fn set_alert_status(
    Admin(token): Admin,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    change: web::Json<StatusChange>,
) -> Result<HttpResponse, ApiError> {
    let change = change.into_inner();
    if !["open", "acknowledged", "resolved", "false_positive"].contains(&change.status.as_str()) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "status: `{}` is not one of open, acknowledged, resolved, false_positive",
                change.status
            ),
        ));
    }
    if matches!(change.status.as_str(), "resolved" | "false_positive")
        && change.comment.trim().is_empty()
    {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "comment: say why the alert is {}",
                if change.status == "resolved" {
                    "resolved"
                } else {
                    "a false positive"
                }
            ),
        ));
    }
    let id = id.into_inner();
    let store = state.store.clone();
    let changed = store_call(move || {
        store.set_alert_status(
            id,
            &change.status,
            change.assignee.as_deref(),
            &change.comment,
            &token.name,
        )
    })
    .await?;
    if !changed {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no alert {id}")));
    }
    detail(&state, id).await
}

/// Where a live stream of alerts starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamQuery {
    /// Send alerts with an id above this first (default: only new ones). The `Last-Event-ID`
    /// header of a reconnecting browser wins.
    #[serde(default)]
    after: Option<i64>,
}

/// New alerts as they are stored, for the live dashboard (server-sent events: `event: alert`,
/// `id: <alert id>`, `data: <the alert as JSON>`; a comment every 15 s keeps proxies open).
#[utoipa::path(
    operation_id = "get_alert_stream",
    tag = "monitoring",
    security(("bearer" = [])),
    params(StreamQuery),
    responses(
        (status = 200, description = "text/event-stream of alerts", content_type = "text/event-stream", body = String),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
    )
)]
#[get("/api/v1/alerts/stream")]
pub(crate) async fn get_alert_stream(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<StreamQuery>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let resume = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let store = state.store.clone();
    let start = match resume.or(query.after) {
        Some(id) => id,
        None => {
            let s = store.clone();
            store_call(move || s.alerts(None, None, 1))
                .await?
                .first()
                .map_or(0, |a| a.id)
        }
    };
    // Each step sends the alerts stored since the last one, or waits half a second (sending
    // an empty chunk, and a keep-alive comment every 15 s).
    let stream =
        futures_util::stream::unfold((store, start, 0u32), |(store, last, idle)| async move {
            let s = store.clone();
            // Oldest first from the last one sent, so a burst is sent in full, 500 at a time.
            let fresh = match web::block(move || s.alerts_after(last, 500)).await {
                Ok(Ok(fresh)) => fresh,
                Ok(Err(e)) => {
                    tracing::warn!("alert stream: reading new alerts: {e}");
                    Vec::new()
                }
                Err(e) => {
                    tracing::warn!("alert stream: {e}");
                    Vec::new()
                }
            };
            if let Some(max) = fresh.last().map(|a| a.id) {
                let text: String = fresh
                    .into_iter()
                    .map(|a| {
                        let id = a.id;
                        let data = serde_json::to_string(&body(a)).unwrap_or_default();
                        format!("event: alert\nid: {id}\ndata: {data}\n\n")
                    })
                    .collect();
                return Some((
                    Ok::<_, actix_web::Error>(web::Bytes::from(text)),
                    (store, max, 0),
                ));
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(500)).await;
            if idle >= 30 {
                return Some((
                    Ok(web::Bytes::from_static(b": keep-alive\n\n")),
                    (store, last, 0),
                ));
            }
            Some((Ok(web::Bytes::new()), (store, last, idle + 1)))
        });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(stream))
}

/// A comment on an alert.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewComment {
    /// The comment (1 to 4000 characters).
    comment: String,
}

/// Adds a comment to an alert's history (kept with who wrote it, anchored like every change).
#[utoipa::path(
    operation_id = "create_alert_comment",
    tag = "monitoring",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Alert id")),
    request_body = NewComment,
    responses(
        (status = 200, description = "The alert and its history", body = AlertDetail),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 422, description = "An empty or too long comment", body = ErrorBody),
    )
)]
#[post("/api/v1/alerts/{id}/comments")]
pub(crate) async fn create_alert_comment(
    Admin(token): Admin,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    comment: web::Json<NewComment>,
) -> Result<HttpResponse, ApiError> {
    let text = comment.into_inner().comment;
    let length = text.trim().chars().count();
    if length == 0 || length > 4000 {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            format!("comment: {length} characters, 1 to 4000 allowed"),
        ));
    }
    let id = id.into_inner();
    let store = state.store.clone();
    let added = store_call(move || store.comment_alert(id, text.trim(), &token.name)).await?;
    if !added {
        return Err(ApiError::new(ErrorCode::NotFound, format!("no alert {id}")));
    }
    detail(&state, id).await
}

/// A suppression to add.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewSuppression {
    /// Only alerts of this rule (default: any rule).
    #[serde(default)]
    rule_id: Option<String>,
    /// Only alerts with this key (default: any key).
    #[serde(default)]
    key: Option<String>,
    /// Why (required).
    reason: String,
    /// For how long, e.g. `4h`, `7days` (at most 90 days).
    duration: String,
}

/// Suppressions, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SuppressionQuery {
    /// Also those expired or lifted (default: only those in force).
    #[serde(default)]
    all: bool,
}

/// Suppressions: alerts they match are still stored and shown, muted, but not delivered.
#[utoipa::path(
    operation_id = "list_suppressions",
    tag = "monitoring",
    security(("bearer" = [])),
    params(SuppressionQuery),
    responses(
        (status = 200, description = "Suppressions", body = Vec<Object>),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
    )
)]
#[get("/api/v1/suppressions")]
pub(crate) async fn list_suppressions(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<SuppressionQuery>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let all = query.all;
    let list = store_call(move || store.suppressions(!all)).await?;
    Ok(HttpResponse::Ok().json(list))
}

/// Mutes alerts of a rule and/or key until the suppression expires.
#[utoipa::path(
    operation_id = "create_suppression",
    tag = "monitoring",
    security(("bearer" = [])),
    request_body = NewSuppression,
    responses(
        (status = 201, description = "The suppression", body = Object),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 422, description = "No rule nor key, no reason, or a bad duration", body = ErrorBody),
    )
)]
#[post("/api/v1/suppressions")]
pub(crate) async fn create_suppression(
    Admin(token): Admin,
    state: web::Data<AppState>,
    new: web::Json<NewSuppression>,
) -> Result<HttpResponse, ApiError> {
    let mut new = new.into_inner();
    // A blank rule or key means any, as when left out.
    new.rule_id = new.rule_id.filter(|r| !r.trim().is_empty());
    new.key = new.key.filter(|k| !k.trim().is_empty());
    let invalid = |m: String| ApiError::new(ErrorCode::Invalid, m);
    if new.rule_id.is_none() && new.key.is_none() {
        return Err(invalid(
            "rule_id, key: name a rule, a key or both (a suppression of everything is not allowed)"
                .into(),
        ));
    }
    if new.reason.trim().is_empty() {
        return Err(invalid("reason: say why the alerts are muted".into()));
    }
    let duration = humantime::parse_duration(&new.duration)
        .map_err(|e| invalid(format!("duration: `{}`: {e}", new.duration)))?;
    if duration.is_zero() || duration > std::time::Duration::from_secs(90 * 86_400) {
        return Err(invalid(format!(
            "duration: `{}` is not between 1 s and 90 days",
            new.duration
        )));
    }
    let expires = chrono::Utc::now().timestamp_millis()
        + i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2);
    let store = state.store.clone();
    let added = store_call(move || {
        store.add_suppression(
            new.rule_id.as_deref(),
            new.key.as_deref(),
            new.reason.trim(),
            &token.name,
            expires,
        )
    })
    .await?;
    Ok(HttpResponse::Created().json(added))
}

/// Lifts a suppression before it expires.
#[utoipa::path(
    operation_id = "lift_suppression",
    tag = "monitoring",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Suppression id")),
    responses(
        (status = 204, description = "Lifted"),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such suppression in force", body = ErrorBody),
    )
)]
#[post("/api/v1/suppressions/{id}/lift")]
pub(crate) async fn lift_suppression(
    Admin(token): Admin,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let store = state.store.clone();
    if store_call(move || store.lift_suppression(id, &token.name)).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no suppression {id} in force"),
        ))
    }
}
