//! Provenance of an anchored record, in one call: where it came from (connector, table or file,
//! primary key, source position, raw topic offset), how it was mapped (mapping name and version),
//! the canonical event, where it is in the ledger (channel, index, the signed checkpoint) and the
//! inclusion proof an auditor verifies offline.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use serde_json::Value as J;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::ledger::run;

/// Where the record sits on the bus before mapping.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RawPosition {
    topic: String,
    partition: i32,
    offset: u64,
}

/// The lineage of one record.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Provenance {
    event_id: String,
    event_type: String,
    /// Connector, table or file, primary key, source position, extraction time.
    #[schema(value_type = Object)]
    source: J,
    /// The raw record the event was mapped from, when the mapping worker published it.
    raw: Option<RawPosition>,
    /// The mapping that produced it.
    #[schema(value_type = Object)]
    mapping: J,
    /// The canonical event as anchored (null when its data subject was erased).
    #[schema(value_type = Object)]
    canonical: J,
    /// Ledger channel.
    channel: String,
    /// Index in the channel.
    index: u64,
    /// The entry as the ledger recorded it (event id, type, connector, source position, mapping
    /// version, commitment, acceptance time) — the fields of its leaf.
    #[schema(value_type = Object)]
    entry: J,
    /// The inclusion proof under the latest checkpoint (`c2sp.org/tlog-proof@v1`), for
    /// `ledgerbridge verify`.
    proof: String,
}

/// By business key.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct KeyQuery {
    /// Canonical event type, e.g. `customs.declaration`.
    event_type: String,
    /// Business key values, comma-separated in the order of the schema's key.
    key: String,
}

async fn provenance(state: &web::Data<AppState>, event_id: String) -> Result<Provenance, ApiError> {
    let event_type = event_id.split(':').next().unwrap_or_default().to_owned();
    let schema = state
        .mappings
        .schemas()
        .into_iter()
        .rev()
        .find(|s| s.event_type == event_type)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no canonical event type `{event_type}`"),
            )
        })?;
    let channel = schema.channel.clone();
    let (id, ch) = (event_id.clone(), channel.clone());
    let found = run(state, move |l| {
        let Some(index) = l.index_of(&ch, &id)? else {
            return Ok(None);
        };
        Ok(Some((
            index,
            l.entry(&ch, index)?,
            l.payload(&ch, &id)?,
            l.proof_file(&ch, index)?,
        )))
    })
    .await?;
    let Some((index, record, payload, proof)) = found else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("`{event_id}` is not anchored in `{channel}` (yet)"),
        ));
    };
    let e = record.entry;
    let canonical: J = payload
        .and_then(|p| serde_json::from_slice(&p).ok())
        .unwrap_or(J::Null);
    let raw = e.source_position.split(" raw=").nth(1).and_then(|r| {
        let mut parts = r.rsplitn(3, ':');
        let offset = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        Some(RawPosition {
            topic: parts.next()?.to_owned(),
            partition,
            offset,
        })
    });
    let (name, version) = e
        .mapping_version
        .split_once('@')
        .unwrap_or((&e.mapping_version, ""));
    Ok(Provenance {
        event_id: e.event_id.clone(),
        event_type: e.event_type.clone(),
        source: canonical.get("source").cloned().unwrap_or_else(
            || serde_json::json!({"connector": e.connector, "position": e.source_position}),
        ),
        raw,
        mapping: serde_json::json!({"name": name, "version": version.parse::<u64>().ok()}),
        channel,
        index,
        entry: serde_json::json!({
            "event_id": e.event_id,
            "event_type": e.event_type,
            "connector": e.connector,
            "source_position": e.source_position,
            "mapping_version": e.mapping_version,
            "accepted_at_ms": e.accepted_at_ms,
        }),
        canonical,
        proof,
    })
}

/// The lineage of a record by its event id.
#[utoipa::path(
    operation_id = "get_provenance",
    tag = "ledger",
    security(("bearer" = [])),
    params(("event_id" = String, Path, description = "Event id, `<event_type>:<hex>`")),
    responses(
        (status = 200, description = "Source, raw offset, mapping, canonical event, ledger position and proof", body = Provenance),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "Not anchored, or no such event type", body = ErrorBody),
    )
)]
#[get("/api/v1/provenance/{event_id}")]
pub(crate) async fn get_provenance(
    _: Admin,
    state: web::Data<AppState>,
    event_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(provenance(&state, event_id.into_inner()).await?))
}

/// The lineage of a record by its business key (e.g. a declaration number).
#[utoipa::path(
    operation_id = "list_provenance",
    tag = "ledger",
    security(("bearer" = [])),
    params(KeyQuery),
    responses(
        (status = 200, description = "Source, raw offset, mapping, canonical event, ledger position and proof", body = Provenance),
        (status = 401, description = "Missing, unknown or revoked token", body = ErrorBody),
        (status = 404, description = "Not anchored, or no such event type", body = ErrorBody),
    )
)]
#[get("/api/v1/provenance")]
pub(crate) async fn list_provenance(
    _: Admin,
    state: web::Data<AppState>,
    query: web::Query<KeyQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let id = ledgerbridge_mappings::event_id_for(&q.event_type, q.key.split(',').map(str::trim));
    Ok(HttpResponse::Ok().json(provenance(&state, id).await?))
}
