//! Monitoring rules through the API: the rules in force (shipped, overlaid with edited
//! versions), every stored version of a rule, a new version (checked like a rule file, every
//! mistake with its line), and a dry-run of a rule over the events already in the ledger. The
//! monitoring worker picks up a new version within seconds; alerts record the version that
//! fired.

use actix_web::{HttpResponse, get, post, put, web};
use ledgerbridge_monitoring::catalog::{self, Edited, InForce, Origin};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody, ErrorCode, store_call};

/// Events replayed by a dry-run by default, the most recent of each domain channel.
const DRY_RUN_EVENTS: usize = 20_000;

fn stored(v: &ledgerbridge_store::RuleVersion) -> Edited {
    Edited {
        rule_id: v.rule_id.clone(),
        version: u32::try_from(v.version).unwrap_or(0),
        body: v.body.clone(),
        enabled: v.enabled,
    }
}

/// The shipped rules and the rules in force.
async fn in_force(state: &AppState) -> Result<InForce, ApiError> {
    let store = state.store.clone();
    let versions = store_call(move || store.rule_versions(None)).await?;
    let edited: Vec<Edited> = versions.iter().map(stored).collect();
    let builtin = ledgerbridge_monitoring::rules::builtin()
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    catalog::effective(builtin, &edited).map_err(|e| ApiError::new(ErrorCode::Internal, e))
}

/// A rule in force.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleBody {
    id: String,
    version: u32,
    severity: String,
    event_types: Vec<String>,
    /// The explanation template.
    explanation: String,
    /// `builtin` or `api`.
    origin: String,
    /// Whether it runs.
    enabled: bool,
}

fn rule_body(r: &ledgerbridge_monitoring::Rule, origin: Origin) -> RuleBody {
    RuleBody {
        id: r.id.clone(),
        version: r.version,
        severity: format!("{:?}", r.severity).to_lowercase(),
        event_types: r.event_types.clone(),
        explanation: r.explanation.clone(),
        origin: match origin {
            Origin::Builtin => "builtin",
            Origin::Api => "api",
        }
        .into(),
        enabled: true,
    }
}

/// The rules in force, and those disabled through the API.
#[utoipa::path(
    operation_id = "list_rules",
    tag = "monitoring",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Rules", body = Vec<RuleBody>),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
    )
)]
#[get("/api/v1/rules")]
pub(crate) async fn list_rules(
    _: Admin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let InForce { rules, disabled } = in_force(&state).await?;
    let mut out: Vec<RuleBody> = rules.iter().map(|(r, o)| rule_body(r, *o)).collect();
    let store = state.store.clone();
    let versions = store_call(move || store.rule_versions(None)).await?;
    for id in disabled {
        if let Some(v) = versions.iter().rev().find(|v| v.rule_id == id) {
            out.push(RuleBody {
                id,
                version: u32::try_from(v.version).unwrap_or(0),
                severity: String::new(),
                event_types: Vec::new(),
                explanation: String::new(),
                origin: "api".into(),
                enabled: false,
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(HttpResponse::Ok().json(out))
}

/// A rule and every version stored through the API.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RuleDetail {
    /// The version in force (none when disabled or unknown).
    rule: Option<RuleBody>,
    /// Every version edited through the API, oldest first: body (TOML), enabled, comment, who,
    /// when.
    #[schema(value_type = Vec<Object>)]
    versions: Vec<ledgerbridge_store::RuleVersion>,
    /// The text of the version in force (the shipped `[[rules]]` table, or the body stored
    /// through the API), to edit; none when disabled.
    toml: Option<String>,
}

/// One rule: the version in force and the history of its versions.
#[utoipa::path(
    operation_id = "get_rule",
    tag = "monitoring",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Rule id")),
    responses(
        (status = 200, description = "The rule and its versions", body = RuleDetail),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such rule", body = ErrorBody),
    )
)]
#[get("/api/v1/rules/{id}")]
pub(crate) async fn get_rule(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let rules = in_force(&state).await?.rules;
    let store = state.store.clone();
    let rid = id.clone();
    let versions = store_call(move || store.rule_versions(Some(&rid))).await?;
    let found = rules.iter().find(|(r, _)| r.id == id);
    let toml = found.and_then(|(_, origin)| match origin {
        Origin::Builtin => ledgerbridge_monitoring::rules::builtin_text(&id),
        Origin::Api => versions.last().map(|v| v.body.clone()),
    });
    let rule = found.map(|(r, o)| rule_body(r, *o));
    if rule.is_none() && versions.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no rule `{id}`"),
        ));
    }
    Ok(HttpResponse::Ok().json(RuleDetail {
        rule,
        versions,
        toml,
    }))
}

/// The lowest version an edit may get: versions continue the shipped numbering, so the first
/// edit of a shipped rule is above it.
fn first_edit(id: &str) -> Result<i32, ApiError> {
    Ok(ledgerbridge_monitoring::rules::builtin()
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .into_iter()
        .find(|r| r.id == id)
        .map_or(1, |r| i32::try_from(r.version).unwrap_or(i32::MAX - 1) + 1))
}

/// The version the next edit of rule `id` gets.
async fn next_version(state: &AppState, id: &str) -> Result<u32, ApiError> {
    let first = first_edit(id)?;
    let store = state.store.clone();
    let rid = id.to_owned();
    let versions = store_call(move || store.rule_versions(Some(&rid))).await?;
    let next = versions
        .iter()
        .map(|v| v.version + 1)
        .max()
        .map_or(first, |n| n.max(first));
    Ok(u32::try_from(next).unwrap_or(0))
}

/// A new version of a rule.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewRuleVersion {
    /// The rule as TOML: one `[[rules]]` table, as in `monitoring/rules/*.toml` (its `version`
    /// is replaced by the next number).
    toml: String,
    /// Run it (default true); false disables the rule.
    #[serde(default = "yes")]
    enabled: bool,
    /// Why it changes (required).
    comment: String,
}

fn yes() -> bool {
    true
}

/// Stores a new version of a rule (or a new rule); the monitoring worker runs it within
/// seconds, from an empty state for that rule.
#[utoipa::path(
    operation_id = "update_rule",
    tag = "monitoring",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Rule id")),
    request_body = NewRuleVersion,
    responses(
        (status = 201, description = "The stored version", body = Object),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 422, description = "The rule has mistakes (each with its line), or no comment", body = ErrorBody),
    )
)]
#[put("/api/v1/rules/{id}")]
pub(crate) async fn update_rule(
    Admin(token): Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    new: web::Json<NewRuleVersion>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let new = new.into_inner();
    if new.comment.trim().is_empty() {
        return Err(ApiError::new(
            ErrorCode::Invalid,
            "comment: say why the rule changes",
        ));
    }
    catalog::parse_one(&new.toml, &id, 1)
        .map_err(|e| ApiError::new(ErrorCode::Invalid, e.to_string()))?;
    let shipped = first_edit(&id)?;
    let store = state.store.clone();
    let stored = store_call(move || {
        store.add_rule_version(
            &id,
            shipped,
            &new.toml,
            new.enabled,
            new.comment.trim(),
            &token.name,
        )
    })
    .await?;
    Ok(HttpResponse::Created().json(stored))
}

/// What to dry-run.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DryRunRequest {
    /// The rule as TOML (default: the version in force).
    #[serde(default)]
    toml: Option<String>,
    /// Most recent events replayed per domain channel (default 20,000, at most 200,000).
    #[serde(default)]
    events: Option<usize>,
}

/// Replays the events already anchored (decrypted from the ledger, oldest first per channel)
/// through the rule alone, from an empty state, and returns what it would have flagged. Nothing
/// is stored.
#[utoipa::path(
    operation_id = "test_rule",
    tag = "monitoring",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Rule id")),
    request_body = DryRunRequest,
    responses(
        (status = 200, description = "Events replayed and the alerts the rule would raise", body = Object),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such rule and no rule text given", body = ErrorBody),
        (status = 422, description = "The rule has mistakes", body = ErrorBody),
    )
)]
#[post("/api/v1/rules/{id}/dry-run")]
pub(crate) async fn test_rule(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    request: web::Json<DryRunRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let request = request.into_inner();
    let rule = match &request.toml {
        // Alerts of a draft carry the version it would get if saved.
        Some(text) => catalog::parse_one(text, &id, next_version(&state, &id).await?)
            .map_err(|e| ApiError::new(ErrorCode::Invalid, e.to_string()))?,
        None => in_force(&state)
            .await?
            .rules
            .into_iter()
            .find(|(r, _)| r.id == id)
            .map(|(r, _)| r)
            .ok_or_else(|| {
                ApiError::new(ErrorCode::NotFound, format!("no rule `{id}` in force"))
            })?,
    };
    let limit = request.events.unwrap_or(DRY_RUN_EVENTS).clamp(1, 200_000);
    let ledger = state.ledger.clone();
    let alerts_channel = state.alerts_channel.clone();
    let events = web::block(move || -> Result<Vec<serde_json::Value>, String> {
        let mut events = Vec::new();
        for channel in ledger.channels().map_err(|e| e.to_string())? {
            if channel == alerts_channel {
                continue;
            }
            // The newest `limit` entries, read as one range: memory follows the limit, not
            // the ledger's size.
            let size = ledger.size(&channel).map_err(|e| e.to_string())?;
            let from = size.saturating_sub(u64::try_from(limit).unwrap_or(u64::MAX));
            let newest = ledger
                .payloads(&channel, from, limit)
                .map_err(|e| e.to_string())?;
            // Erased payloads are left out.
            for bytes in newest.into_iter().filter_map(|p| p.payload) {
                if let Ok(ev) = serde_json::from_slice(&bytes) {
                    events.push(ev);
                }
            }
        }
        Ok(events)
    })
    .await
    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
    .map_err(|e| ApiError::unavailable("the ledger", &e))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let lookups = ledgerbridge_monitoring::rules::builtin_set()
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .lookups;
    let run = web::block(move || catalog::dry_run(rule, lookups, events, now))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(HttpResponse::Ok().json(run))
}
