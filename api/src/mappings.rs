//! Mappings for IT administrators: the active mappings and their counters, every stored
//! version, deployment (checked against the canonical schema and the source's discovered
//! columns), dry-runs on posted rows or on a connector's latest rows; canonical schemas and their
//! evolution; and the quarantine's dry-run, redrive and discard, recorded with who did them.

use actix_web::{HttpResponse, get, post, web};
use ledgerbridge_mappings::{MappingError, Source, Which};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as J};
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody, ErrorCode, store_call};

fn mapping_error(e: MappingError) -> ApiError {
    match e {
        MappingError::Invalid(_) => ApiError::new(ErrorCode::Invalid, e.to_string()),
        MappingError::Conflict(_) => ApiError::new(ErrorCode::Conflict, e.to_string()),
        MappingError::NotFound(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
        MappingError::Unavailable(m) => ApiError::unavailable("mappings", &m),
    }
}

/// An active mapping.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ActiveMapping {
    name: String,
    version: u32,
    connector: String,
    table: String,
    event_type: String,
}

/// The mapping worker's counters since the node started.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MappingStats {
    /// Raw records read.
    consumed: u64,
    /// Canonical events published.
    events: u64,
    /// Records a route skipped.
    skipped: u64,
    /// Records of tables no mapping reads.
    unmapped: u64,
    /// Records quarantined.
    quarantined: u64,
}

/// The active mappings.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MappingList {
    active: Vec<ActiveMapping>,
    stats: MappingStats,
}

/// The active mappings and the worker's counters.
#[utoipa::path(
    operation_id = "list_mappings",
    tag = "mappings",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Active mappings", body = MappingList),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
    )
)]
#[get("/api/v1/mappings")]
pub(crate) async fn list_mappings(_: Admin, state: web::Data<AppState>) -> HttpResponse {
    let m = &state.mappings;
    let stats = &m.stats;
    HttpResponse::Ok().json(MappingList {
        active: m
            .active()
            .into_iter()
            .map(
                |(name, version, connector, table, event_type)| ActiveMapping {
                    name,
                    version,
                    connector,
                    table,
                    event_type,
                },
            )
            .collect(),
        stats: MappingStats {
            consumed: stats.consumed.load(Ordering::Relaxed),
            events: stats.events.load(Ordering::Relaxed),
            skipped: stats.skipped.load(Ordering::Relaxed),
            unmapped: stats.unmapped.load(Ordering::Relaxed),
            quarantined: stats.quarantined.load(Ordering::Relaxed),
        },
    })
}

/// A stored version of a mapping.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MappingVersionBody {
    name: String,
    version: i32,
    /// The mapping file.
    spec: String,
    deployed_by: String,
    deployed_at_ms: i64,
    active: bool,
}

/// Every stored version of a mapping.
#[utoipa::path(
    operation_id = "get_mapping",
    tag = "mappings",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "Mapping name")),
    responses(
        (status = 200, description = "Versions, oldest first", body = Vec<MappingVersionBody>),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such mapping", body = ErrorBody),
    )
)]
#[get("/api/v1/mappings/{name}")]
pub(crate) async fn get_mapping(
    _: Admin,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let versions = state
        .mappings
        .versions(Some(&name))
        .map_err(mapping_error)?;
    if versions.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no mapping `{name}`"),
        ));
    }
    Ok(HttpResponse::Ok().json(
        versions
            .into_iter()
            .map(|v| MappingVersionBody {
                name: v.name,
                version: v.version,
                spec: v.spec,
                deployed_by: v.deployed_by,
                deployed_at_ms: v.deployed_at_ms,
                active: v.active,
            })
            .collect::<Vec<_>>(),
    ))
}

/// A mapping file to deploy.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DeployRequest {
    /// The mapping file (TOML).
    spec: String,
}

/// What a deployment did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Deployed {
    name: String,
    version: u32,
    /// Whether the source columns were checked against the connector's discovered table (not
    /// possible when the connector is not on this node, or reads every stream).
    checked_against_source: bool,
}

/// Deploys a mapping file: checked against its canonical schema and the source's discovered
/// columns, stored as a version, and applied by the worker at once.
#[utoipa::path(
    operation_id = "create_mapping",
    tag = "mappings",
    security(("bearer" = [])),
    request_body = DeployRequest,
    responses(
        (status = 201, description = "Deployed and active", body = Deployed),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 409, description = "The version exists with other content", body = ErrorBody),
        (status = 422, description = "Every mistake of the file, with its line", body = ErrorBody),
        (status = 503, description = "The source could not be discovered", body = ErrorBody),
    )
)]
#[post("/api/v1/mappings")]
pub(crate) async fn create_mapping(
    Admin(token): Admin,
    state: web::Data<AppState>,
    body: web::Json<DeployRequest>,
) -> Result<HttpResponse, ApiError> {
    let spec = body.into_inner().spec;
    let (connector, table) = state.mappings.source_of(&spec).map_err(mapping_error)?;
    let columns = if table == "*" || state.connectors.status(&connector).is_err() {
        None
    } else {
        let tables = state
            .connectors
            .discover(&connector)
            .await
            .map_err(|e| ApiError::unavailable("the source", &e))?;
        let found = tables
            .iter()
            .find(|t| t.name == table || t.name.ends_with(&format!(".{table}")));
        match found {
            Some(t) => Some(t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>()),
            None => {
                return Err(ApiError::new(
                    ErrorCode::Invalid,
                    format!(
                        "mapping: the source `{connector}` has no table `{table}`; it has: {}",
                        tables
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    };
    let mappings = state.mappings.clone();
    let checked = columns.is_some();
    let (name, version) =
        web::block(move || mappings.deploy(&spec, &token.name, columns.as_deref()))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
            .map_err(mapping_error)?;
    Ok(HttpResponse::Created().json(Deployed {
        name,
        version,
        checked_against_source: checked,
    }))
}

/// A record to try a mapping on: the row's columns, and optionally where it came from.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SampleRow {
    /// Source columns and values.
    #[schema(value_type = Object)]
    row: Map<String, J>,
    /// Provenance (connector, table, key, position, extracted_at); defaults are used when left
    /// out.
    #[serde(default)]
    #[schema(value_type = Object)]
    source: Option<J>,
}

/// What to dry-run: a mapping (a file, or the active version of a name) on posted rows or on a
/// connector's latest raw records.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DryRunRequest {
    /// A mapping file (not deployed).
    #[serde(default)]
    spec: Option<String>,
    /// Or the name of an active mapping.
    #[serde(default)]
    mapping: Option<String>,
    /// Rows to map.
    #[serde(default)]
    rows: Vec<SampleRow>,
    /// Or map the latest records of this connector's raw topic…
    #[serde(default)]
    connector: Option<String>,
    /// …this many of them (default 10, at most 1000).
    #[serde(default)]
    limit: Option<usize>,
}

/// The outcome for one record.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DryRunResult {
    index: usize,
    /// `event`, `skipped` or `failed`.
    outcome: String,
    #[schema(value_type = Object)]
    event: Option<J>,
    /// Every error: `{pointer, message}`.
    #[schema(value_type = Vec<Object>)]
    errors: Vec<J>,
}

fn result(r: ledgerbridge_mappings::DryRun) -> DryRunResult {
    DryRunResult {
        index: r.index,
        outcome: r.outcome.to_owned(),
        event: r.event,
        errors: r
            .errors
            .iter()
            .map(|e| serde_json::json!({"pointer": e.pointer, "message": e.message}))
            .collect(),
    }
}

/// The events a mapping would produce and every error, without publishing anything.
#[utoipa::path(
    operation_id = "test_mapping",
    tag = "mappings",
    security(("bearer" = [])),
    request_body = DryRunRequest,
    responses(
        (status = 200, description = "One result per record", body = Vec<DryRunResult>),
        (status = 400, description = "Neither a mapping nor records", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such active mapping", body = ErrorBody),
        (status = 422, description = "The mapping file has mistakes", body = ErrorBody),
    )
)]
#[post("/api/v1/mappings/dry-run")]
pub(crate) async fn test_mapping(
    _: Admin,
    state: web::Data<AppState>,
    body: web::Json<DryRunRequest>,
) -> Result<HttpResponse, ApiError> {
    let req = body.into_inner();
    let which = match (&req.spec, &req.mapping) {
        (Some(spec), None) => Which::Text(spec),
        (None, Some(name)) => Which::Active(name),
        _ => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "give either `spec` (a mapping file) or `mapping` (an active mapping's name)",
            ));
        }
    };
    let records: Vec<(Source, Map<String, J>)> = match (&req.connector, req.rows.is_empty()) {
        (Some(connector), true) => {
            let limit = req.limit.unwrap_or(10).clamp(1, 1000);
            state
                .mappings
                .recent_rows(connector, limit)
                .await
                .map_err(mapping_error)?
        }
        (None, false) => req
            .rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let source = r
                    .source
                    .and_then(|s| serde_json::from_value(s).ok())
                    .unwrap_or(Source {
                        connector: "dry-run".into(),
                        table: String::new(),
                        key: i.to_string(),
                        position: format!("row {i}"),
                        extracted_at: 0,
                    });
                (source, r.row)
            })
            .collect(),
        _ => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "give either `rows` or `connector` (its latest raw records)",
            ));
        }
    };
    let results = state
        .mappings
        .dry_run(&which, &records)
        .map_err(mapping_error)?;
    Ok(HttpResponse::Ok().json(results.into_iter().map(result).collect::<Vec<_>>()))
}

/// A canonical schema, summarised.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SchemaSummary {
    event_type: String,
    version: u32,
    /// Ledger channel.
    channel: String,
    /// Business key fields.
    key: Vec<String>,
    /// Data subject field.
    subject: Option<String>,
    /// The JSON Schema.
    #[schema(value_type = Object)]
    schema: J,
}

/// Every canonical schema version.
#[utoipa::path(
    operation_id = "list_schemas",
    tag = "mappings",
    responses((status = 200, description = "Canonical schemas", body = Vec<SchemaSummary>))
)]
#[get("/api/v1/schemas")]
pub(crate) async fn list_schemas(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(
        state
            .mappings
            .schemas()
            .iter()
            .map(|s| SchemaSummary {
                event_type: s.event_type.clone(),
                version: s.version,
                channel: s.channel.clone(),
                key: s.key.clone(),
                subject: s.subject.clone(),
                schema: s.json.clone(),
            })
            .collect::<Vec<_>>(),
    )
}

/// A new canonical schema version.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SchemaRequest {
    /// The JSON Schema (draft 2020-12) with its `x-ledgerbridge` description.
    #[schema(value_type = Object)]
    schema: J,
}

/// Adds a canonical schema version; a change that would break consumers of the previous
/// version is refused with every reason.
#[utoipa::path(
    operation_id = "create_schema",
    tag = "mappings",
    security(("bearer" = [])),
    request_body = SchemaRequest,
    responses(
        (status = 201, description = "Added", body = SchemaSummary),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 409, description = "Breaking change, unusable schema, or version reused", body = ErrorBody),
    )
)]
#[post("/api/v1/schemas")]
pub(crate) async fn create_schema(
    Admin(token): Admin,
    state: web::Data<AppState>,
    body: web::Json<SchemaRequest>,
) -> Result<HttpResponse, ApiError> {
    let mappings = state.mappings.clone();
    let json = body.into_inner().schema;
    let s = web::block(move || mappings.add_schema(json, &token.name))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(mapping_error)?;
    Ok(HttpResponse::Created().json(SchemaSummary {
        event_type: s.event_type.clone(),
        version: s.version,
        channel: s.channel.clone(),
        key: s.key.clone(),
        subject: s.subject.clone(),
        schema: s.json.clone(),
    }))
}

/// A quarantined record with the actions taken on it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QuarantinedDetail {
    #[schema(value_type = Object)]
    record: J,
    #[schema(value_type = Vec<Object>)]
    actions: Vec<J>,
}

/// One quarantined record, its errors and its history.
#[utoipa::path(
    operation_id = "get_quarantined_record",
    tag = "connectors",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Record id")),
    responses(
        (status = 200, description = "The record", body = QuarantinedDetail),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such record", body = ErrorBody),
    )
)]
#[get("/api/v1/quarantine/{id}")]
pub(crate) async fn get_quarantined_record(
    _: Admin,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let store = state.store.clone();
    let (record, actions) =
        store_call(move || Ok((store.quarantined_record(id)?, store.quarantine_actions(id)?)))
            .await?;
    let record = record
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no quarantined record {id}")))?;
    let mut json = serde_json::to_value(&record).unwrap_or_default();
    json["errors"] = serde_json::from_str(&record.errors).unwrap_or_default();
    Ok(HttpResponse::Ok().json(QuarantinedDetail {
        record: json,
        actions: actions
            .into_iter()
            .map(|a| serde_json::to_value(a).unwrap_or_default())
            .collect(),
    }))
}

/// Which mapping to re-run a record through.
#[derive(Debug, Deserialize, ToSchema, Default)]
pub(crate) struct RerunRequest {
    /// A new mapping file; the active version of the record's mapping when left out.
    #[serde(default)]
    spec: Option<String>,
}

/// Re-runs a quarantined record through a mapping (a new version given here, or the active one)
/// without publishing: shows whether it would now pass. Recorded with who asked.
#[utoipa::path(
    operation_id = "test_quarantined_record",
    tag = "connectors",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Record id")),
    request_body = RerunRequest,
    responses(
        (status = 200, description = "What the mapping would do now", body = DryRunResult),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such mapping-stage record", body = ErrorBody),
        (status = 422, description = "The mapping file has mistakes", body = ErrorBody),
    )
)]
#[post("/api/v1/quarantine/{id}/dry-run")]
pub(crate) async fn test_quarantined_record(
    Admin(token): Admin,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: Option<web::Json<RerunRequest>>,
) -> Result<HttpResponse, ApiError> {
    let spec = body.map(|b| b.into_inner()).unwrap_or_default().spec;
    let mappings = state.mappings.clone();
    let id = id.into_inner();
    let r = web::block(move || mappings.quarantine_dry_run(id, spec.as_deref(), &token.name))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(mapping_error)?;
    Ok(HttpResponse::Ok().json(result(r)))
}

/// Redrives a quarantined record: maps it again (a new version given here, or the active one)
/// and, when it passes, publishes its event and marks it redriven. Recorded with who did it.
#[utoipa::path(
    operation_id = "redrive_quarantined_record",
    tag = "connectors",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Record id")),
    request_body = RerunRequest,
    responses(
        (status = 200, description = "The outcome; `failed` leaves the record open", body = DryRunResult),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such mapping-stage record", body = ErrorBody),
        (status = 409, description = "Already redriven or discarded", body = ErrorBody),
        (status = 422, description = "The mapping file has mistakes", body = ErrorBody),
    )
)]
#[post("/api/v1/quarantine/{id}/redrive")]
pub(crate) async fn redrive_quarantined_record(
    Admin(token): Admin,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: Option<web::Json<RerunRequest>>,
) -> Result<HttpResponse, ApiError> {
    let spec = body.map(|b| b.into_inner()).unwrap_or_default().spec;
    let r = state
        .mappings
        .redrive(id.into_inner(), spec.as_deref(), &token.name)
        .await
        .map_err(mapping_error)?;
    Ok(HttpResponse::Ok().json(result(r)))
}

/// Why a record is discarded.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DiscardRequest {
    /// The reason, kept with the record.
    reason: String,
}

/// Discards a quarantined record: it will not reach the ledger. Recorded with who did it and
/// why.
#[utoipa::path(
    operation_id = "discard_quarantined_record",
    tag = "connectors",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "Record id")),
    request_body = DiscardRequest,
    responses(
        (status = 204, description = "Discarded"),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such record", body = ErrorBody),
        (status = 409, description = "Already redriven or discarded", body = ErrorBody),
    )
)]
#[post("/api/v1/quarantine/{id}/discard")]
pub(crate) async fn discard_quarantined_record(
    Admin(token): Admin,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    body: web::Json<DiscardRequest>,
) -> Result<HttpResponse, ApiError> {
    let mappings = state.mappings.clone();
    let (id, reason) = (id.into_inner(), body.into_inner().reason);
    if reason.trim().is_empty() {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "reason: say why the record is discarded",
        ));
    }
    web::block(move || mappings.discard(id, &reason, &token.name))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(mapping_error)?;
    Ok(HttpResponse::NoContent().finish())
}
