//! Auditor endpoints of the ledger. Reads need no token (a checkpoint, a proof or an entry's
//! commitments expose no payload, like a transparency log's read API); anchoring needs an admin
//! token.

use actix_web::{HttpResponse, get, post, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ledgerbridge_ledger::{Ledger, LedgerError, NewEntry};
use ledgerbridge_ledger_core::entry::EntryKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody, ErrorCode};

/// Largest canonical payload accepted by `create_ledger_entry`, in bytes.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

pub(crate) fn map_err(e: LedgerError) -> ApiError {
    match e {
        LedgerError::UnknownChannel(_) | LedgerError::NoEntry { .. } => {
            ApiError::new(ErrorCode::NotFound, e.to_string())
        }
        LedgerError::InvalidChannel(_) | LedgerError::Entry { .. } | LedgerError::Proof(_) => {
            ApiError::new(ErrorCode::BadRequest, e.to_string())
        }
        LedgerError::Store(_) | LedgerError::Unavailable(_) => ApiError::unavailable("store", &e),
        other => {
            tracing::error!(error = %other, "ledger request failed");
            ApiError::new(ErrorCode::Internal, other.to_string())
        }
    }
}

pub(crate) async fn run<T: Send + 'static>(
    state: &web::Data<AppState>,
    f: impl FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, ApiError> {
    let ledger = state.ledger.clone();
    web::block(move || f(&ledger))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(map_err)
}

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

/// The latest checkpoint of a channel: the C2SP signed note, verbatim.
#[utoipa::path(
    operation_id = "get_ledger_checkpoint",
    tag = "ledger",
    params(("channel" = String, Path, description = "Channel, e.g. `claims`")),
    responses(
        (status = 200, description = "The signed checkpoint (c2sp.org/tlog-checkpoint)", content_type = "text/plain", body = String),
        (status = 404, description = "No such channel, or nothing anchored yet", body = ErrorBody),
    )
)]
#[get("/api/v1/ledger/{channel}/checkpoint")]
pub(crate) async fn get_ledger_checkpoint(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let channel = path.into_inner();
    let name = channel.clone();
    let cp = run(&state, move |l| l.checkpoint(&name)).await?;
    cp.map(|c| text(c.note)).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("channel `{channel}` has no checkpoint yet"),
        )
    })
}

/// The vkeys of the channel's log keys (retired ones included) and cosigners, one per line.
#[utoipa::path(
    operation_id = "get_ledger_keys",
    tag = "ledger",
    params(("channel" = String, Path, description = "Channel")),
    responses(
        (status = 200, description = "C2SP vkeys, one per line", content_type = "text/plain", body = String),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
#[get("/api/v1/ledger/{channel}/keys")]
pub(crate) async fn get_ledger_keys(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let channel = path.into_inner();
    let keys = run(&state, move |l| l.vkeys(&channel)).await?;
    Ok(text(keys.iter().map(|k| format!("{k}\n")).collect()))
}

/// A ledger entry.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EntryView {
    /// Index in the channel.
    index: u64,
    /// Base64 of the exact bytes hashed into the tree (leaf hash = SHA-256(0x00 ‖ leaf data)).
    leaf_data: String,
    /// Base64 of the leaf hash.
    leaf_hash: String,
    /// `event` or `erasure`.
    kind: String,
    /// Canonical event id.
    event_id: String,
    /// Canonical event type.
    event_type: String,
    /// Channel.
    channel: String,
    /// Source connector.
    connector: String,
    /// Position in the source.
    source_position: String,
    /// Mapping name and version.
    mapping_version: String,
    /// Base64 of the salted SHA-256 commitment of the payload.
    commitment: String,
    /// Acceptance time, milliseconds since the epoch.
    accepted_at_ms: i64,
}

/// One entry: its leaf data and the decoded fields.
#[utoipa::path(
    operation_id = "get_ledger_entry",
    tag = "ledger",
    params(("channel" = String, Path, description = "Channel"), ("index" = u64, Path, description = "Entry index")),
    responses(
        (status = 200, description = "The entry", body = EntryView),
        (status = 404, description = "No such channel or entry", body = ErrorBody),
    )
)]
#[get("/api/v1/ledger/{channel}/entries/{index}")]
pub(crate) async fn get_ledger_entry(
    state: web::Data<AppState>,
    path: web::Path<(String, u64)>,
) -> Result<HttpResponse, ApiError> {
    let (channel, index) = path.into_inner();
    let r = run(&state, move |l| l.entry(&channel, index)).await?;
    let e = r.entry;
    Ok(HttpResponse::Ok().json(EntryView {
        index: r.index,
        leaf_hash: STANDARD.encode(ledgerbridge_ledger_core::leaf_hash(&r.leaf_data)),
        leaf_data: STANDARD.encode(&r.leaf_data),
        kind: match e.kind {
            EntryKind::Event => "event",
            EntryKind::Erasure => "erasure",
        }
        .into(),
        event_id: e.event_id,
        event_type: e.event_type,
        channel: e.channel,
        connector: e.connector,
        source_position: e.source_position,
        mapping_version: e.mapping_version,
        commitment: STANDARD.encode(e.commitment),
        accepted_at_ms: e.accepted_at_ms,
    }))
}

/// The inclusion proof of an entry under the latest checkpoint, as a `c2sp.org/tlog-proof@v1`
/// file; check it offline with `ledgerbridge verify`.
#[utoipa::path(
    operation_id = "get_ledger_entry_proof",
    tag = "ledger",
    params(("channel" = String, Path, description = "Channel"), ("index" = u64, Path, description = "Entry index")),
    responses(
        (status = 200, description = "The proof file", content_type = "text/plain", body = String),
        (status = 404, description = "No such channel or entry", body = ErrorBody),
    )
)]
#[get("/api/v1/ledger/{channel}/entries/{index}/proof")]
pub(crate) async fn get_ledger_entry_proof(
    state: web::Data<AppState>,
    path: web::Path<(String, u64)>,
) -> Result<HttpResponse, ApiError> {
    let (channel, index) = path.into_inner();
    Ok(text(
        run(&state, move |l| l.proof_file(&channel, index)).await?,
    ))
}

/// Sizes for a consistency proof.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyQuery {
    /// The older tree size (at least 1).
    from: u64,
    /// The newer tree size (at most the current size).
    to: u64,
}

/// A consistency proof (RFC 9162 §2.1.4).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConsistencyView {
    /// Older size.
    from: u64,
    /// Newer size.
    to: u64,
    /// Base64 root at `from`.
    root_from: String,
    /// Base64 root at `to`.
    root_to: String,
    /// Base64 proof hashes.
    proof: Vec<String>,
}

/// The consistency proof between two tree sizes.
#[utoipa::path(
    operation_id = "get_ledger_consistency",
    tag = "ledger",
    params(("channel" = String, Path, description = "Channel"), ConsistencyQuery),
    responses(
        (status = 200, description = "The proof and both roots", body = ConsistencyView),
        (status = 400, description = "Sizes out of range", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
#[get("/api/v1/ledger/{channel}/consistency")]
pub(crate) async fn get_ledger_consistency(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<ConsistencyQuery>,
) -> Result<HttpResponse, ApiError> {
    let channel = path.into_inner();
    let (from, to) = (query.from, query.to);
    let (r1, r2, proof) = run(&state, move |l| l.consistency(&channel, from, to)).await?;
    Ok(HttpResponse::Ok().json(ConsistencyView {
        from,
        to,
        root_from: STANDARD.encode(r1),
        root_to: STANDARD.encode(r2),
        proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
    }))
}

/// A canonical event pushed for anchoring.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnchorRequest {
    /// Deterministic event id; anchoring the same id again returns the existing index.
    event_id: String,
    /// Canonical event type, e.g. `claim`.
    event_type: String,
    /// Pseudonymous data subject whose key encrypts the payload (erasable); omit for none.
    #[serde(default)]
    subject: Option<String>,
    /// Where the event comes from (default `api`).
    #[serde(default)]
    connector: Option<String>,
    /// Position in the source system.
    #[serde(default)]
    source_position: Option<String>,
    /// Mapping name and version that produced the event.
    #[serde(default)]
    mapping_version: Option<String>,
    /// The canonical event (any JSON); stored encrypted beside the log, committed in the entry.
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

/// Where the event was anchored.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnchorResponse {
    /// Index in the channel.
    index: u64,
    /// `true` when the event id was already anchored.
    existing: bool,
    /// Size of the latest checkpoint, which covers the entry.
    checkpoint_size: u64,
}

/// Anchors a canonical event directly (for systems that push rather than being pulled).
#[utoipa::path(
    operation_id = "create_ledger_entry",
    tag = "ledger",
    security(("bearer" = [])),
    params(("channel" = String, Path, description = "Channel")),
    request_body = AnchorRequest,
    responses(
        (status = 201, description = "Anchored", body = AnchorResponse),
        (status = 200, description = "Already anchored: the existing index", body = AnchorResponse),
        (status = 400, description = "A missing, empty or oversized field (named)", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
    )
)]
#[post("/api/v1/ledger/{channel}/entries")]
pub(crate) async fn create_ledger_entry(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<AnchorRequest>,
) -> Result<HttpResponse, ApiError> {
    let channel = path.into_inner();
    let req = body.into_inner();
    let payload = serde_json::to_vec(&req.payload)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("payload: {e}")))?;
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "field `payload`: is {} bytes, at most {MAX_PAYLOAD_BYTES} allowed",
                payload.len()
            ),
        ));
    }
    if req.subject.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "field `subject`: must not be empty when given",
        ));
    }
    let entry = NewEntry {
        event_id: req.event_id,
        event_type: req.event_type,
        connector: req.connector.unwrap_or_else(|| "api".into()),
        source_position: req.source_position.unwrap_or_default(),
        mapping_version: req.mapping_version.unwrap_or_default(),
        subject: req.subject,
        payload,
    };
    let (appended, size) = run(&state, move |l| {
        let (mut result, _) = l.append(&channel, std::slice::from_ref(&entry))?;
        let size = l.size(&channel)?;
        Ok((result.pop(), size))
    })
    .await?;
    let appended = appended
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "append returned no position"))?;
    let body = AnchorResponse {
        index: appended.index,
        existing: appended.existing,
        checkpoint_size: size,
    };
    Ok(if appended.existing {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Created().json(body)
    })
}
