//! The Confluent-compatible schema registry subset under `/registry`: standard Confluent clients
//! (serializers, deserializers, `SchemaRegistryClient`) given `http://HOST:PORT/registry` as the
//! registry URL read schemas from here. Responses and errors use Confluent's shapes
//! (`{"error_code": 40401, "message": "..."}`); reads need no token, writes an admin token.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, get, post, put, web};
use ledgerbridge_registry::{Compatibility, Registry, RegistryError, parse_version};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::Admin;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A registry error in Confluent's shape.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RegistryErrorBody {
    /// Confluent error code; its first three digits are the HTTP status.
    error_code: u32,
    /// What is wrong.
    message: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RegistryApiError(RegistryError);

impl ResponseError for RegistryApiError {
    fn status_code(&self) -> StatusCode {
        let code = self.0.code();
        let status = if code >= 1000 { code / 100 } else { code };
        StatusCode::from_u16(u16::try_from(status).unwrap_or(500))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .content_type(CONTENT_TYPE)
            .json(RegistryErrorBody {
                error_code: self.0.code(),
                message: self.0.to_string(),
            })
    }
}

async fn run<T: Send + 'static>(
    state: &web::Data<AppState>,
    f: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryApiError> {
    let registry = state.registry.clone();
    web::block(move || f(&registry))
        .await
        .map_err(|e| RegistryApiError(RegistryError::InvalidSchema(format!("internal: {e}"))))?
        .map_err(RegistryApiError)
}

fn ok<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok().content_type(CONTENT_TYPE).json(body)
}

/// A schema to register or check.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SchemaRequest {
    /// The Avro schema, as a JSON string.
    schema: String,
    /// `AVRO` (the default); other types are refused.
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
}

fn avro_only(req: &SchemaRequest) -> Result<(), RegistryApiError> {
    match req.schema_type.as_deref() {
        None | Some("AVRO") => Ok(()),
        Some(other) => Err(RegistryApiError(RegistryError::InvalidSchema(format!(
            "schemaType {other} is not supported: this registry holds AVRO schemas"
        )))),
    }
}

/// Every subject.
#[utoipa::path(operation_id = "list_registry_subjects", tag = "registry",
    responses((status = 200, description = "Subject names", body = Vec<String>)))]
#[get("/registry/subjects")]
pub(crate) async fn list_registry_subjects(
    state: web::Data<AppState>,
) -> Result<HttpResponse, RegistryApiError> {
    Ok(ok(&run(&state, |r| r.subjects()).await?))
}

/// The versions of a subject.
#[utoipa::path(operation_id = "list_registry_versions", tag = "registry",
    params(("subject" = String, Path, description = "Subject, e.g. `raw.his-value`")),
    responses((status = 200, description = "Version numbers", body = Vec<i32>),
        (status = 404, description = "Unknown subject (40401)", body = RegistryErrorBody)))]
#[get("/registry/subjects/{subject}/versions")]
pub(crate) async fn list_registry_versions(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, RegistryApiError> {
    let subject = path.into_inner();
    Ok(ok(&run(&state, move |r| r.versions(&subject)).await?))
}

/// A registered version.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VersionBody {
    subject: String,
    id: i64,
    version: i32,
    schema: String,
}

/// One version of a subject (`latest` for the newest).
#[utoipa::path(operation_id = "get_registry_version", tag = "registry",
    params(("subject" = String, Path, description = "Subject"), ("version" = String, Path, description = "A version number or `latest`")),
    responses((status = 200, description = "The version", body = VersionBody),
        (status = 404, description = "Unknown subject (40401) or version (40402)", body = RegistryErrorBody),
        (status = 422, description = "Invalid version (42202)", body = RegistryErrorBody)))]
#[get("/registry/subjects/{subject}/versions/{version}")]
pub(crate) async fn get_registry_version(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, RegistryApiError> {
    let (subject, version) = path.into_inner();
    let version = parse_version(&version).map_err(RegistryApiError)?;
    let v = run(&state, move |r| r.version(&subject, version)).await?;
    Ok(ok(&VersionBody {
        subject: v.subject,
        id: v.id,
        version: v.version,
        schema: v.schema,
    }))
}

/// A schema id.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IdBody {
    id: i64,
}

/// Registers a schema under a subject (idempotent), checked against the subject's compatibility.
#[utoipa::path(operation_id = "create_registry_version", tag = "registry", security(("bearer" = [])),
    params(("subject" = String, Path, description = "Subject")),
    request_body = SchemaRequest,
    responses((status = 200, description = "The schema's id", body = IdBody),
        (status = 409, description = "Incompatible with the subject's versions", body = RegistryErrorBody),
        (status = 422, description = "Invalid schema (42201)", body = RegistryErrorBody)))]
#[post("/registry/subjects/{subject}/versions")]
pub(crate) async fn create_registry_version(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<SchemaRequest>,
) -> Result<HttpResponse, RegistryApiError> {
    avro_only(&body)?;
    let subject = path.into_inner();
    let schema = body.into_inner().schema;
    Ok(ok(&IdBody {
        id: run(&state, move |r| r.register(&subject, &schema)).await?,
    }))
}

/// A schema.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SchemaBody {
    schema: String,
}

/// The schema with an id (what deserializers fetch for the id in each message).
#[utoipa::path(operation_id = "get_registry_schema", tag = "registry",
    params(("id" = i64, Path, description = "Schema id")),
    responses((status = 200, description = "The schema", body = SchemaBody),
        (status = 404, description = "Unknown id (40403)", body = RegistryErrorBody)))]
#[get("/registry/schemas/ids/{id}")]
pub(crate) async fn get_registry_schema(
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, RegistryApiError> {
    let id = path.into_inner();
    Ok(ok(&SchemaBody {
        schema: run(&state, move |r| r.schema(id)).await?,
    }))
}

/// The outcome of a compatibility check.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CompatibilityBody {
    is_compatible: bool,
    /// Why not, when not.
    messages: Vec<String>,
}

/// Whether a schema could follow a version of a subject.
#[utoipa::path(operation_id = "create_registry_compatibility_check", tag = "registry",
    params(("subject" = String, Path, description = "Subject"), ("version" = String, Path, description = "A version number or `latest`")),
    request_body = SchemaRequest,
    responses((status = 200, description = "The verdict", body = CompatibilityBody),
        (status = 404, description = "Unknown subject or version", body = RegistryErrorBody),
        (status = 422, description = "Invalid schema or version", body = RegistryErrorBody)))]
#[post("/registry/compatibility/subjects/{subject}/versions/{version}")]
pub(crate) async fn create_registry_compatibility_check(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<SchemaRequest>,
) -> Result<HttpResponse, RegistryApiError> {
    avro_only(&body)?;
    let (subject, version) = path.into_inner();
    let version = parse_version(&version).map_err(RegistryApiError)?;
    let schema = body.into_inner().schema;
    let messages = run(&state, move |r| r.check(&subject, version, &schema)).await?;
    Ok(ok(&CompatibilityBody {
        is_compatible: messages.is_empty(),
        messages,
    }))
}

/// A compatibility level.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ConfigBody {
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: String,
}

/// A new compatibility level.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ConfigRequest {
    /// `NONE`, `BACKWARD`, `BACKWARD_TRANSITIVE`, `FORWARD`, `FORWARD_TRANSITIVE`, `FULL` or `FULL_TRANSITIVE`.
    compatibility: String,
}

/// The global compatibility level.
#[utoipa::path(operation_id = "get_registry_config", tag = "registry",
    responses((status = 200, description = "The level", body = ConfigBody)))]
#[get("/registry/config")]
pub(crate) async fn get_registry_config(
    state: web::Data<AppState>,
) -> Result<HttpResponse, RegistryApiError> {
    let level = run(&state, |r| r.compatibility(None)).await?;
    Ok(ok(&ConfigBody {
        compatibility_level: level.name().into(),
    }))
}

/// Sets the global compatibility level.
#[utoipa::path(operation_id = "set_registry_config", tag = "registry", security(("bearer" = [])),
    request_body = ConfigRequest,
    responses((status = 200, description = "The level set", body = ConfigRequest),
        (status = 422, description = "Unknown level (42203)", body = RegistryErrorBody)))]
#[put("/registry/config")]
pub(crate) async fn set_registry_config(
    _admin: Admin,
    state: web::Data<AppState>,
    body: web::Json<ConfigRequest>,
) -> Result<HttpResponse, RegistryApiError> {
    let level = Compatibility::parse(&body.compatibility).map_err(RegistryApiError)?;
    run(&state, move |r| r.set_compatibility(None, level)).await?;
    Ok(ok(&serde_json::json!({ "compatibility": level.name() })))
}

/// The compatibility level of a subject (the global one unless set).
#[utoipa::path(operation_id = "get_registry_subject_config", tag = "registry",
    params(("subject" = String, Path, description = "Subject")),
    responses((status = 200, description = "The level", body = ConfigBody)))]
#[get("/registry/config/{subject}")]
pub(crate) async fn get_registry_subject_config(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, RegistryApiError> {
    let subject = path.into_inner();
    let level = run(&state, move |r| r.compatibility(Some(&subject))).await?;
    Ok(ok(&ConfigBody {
        compatibility_level: level.name().into(),
    }))
}

/// Sets the compatibility level of a subject.
#[utoipa::path(operation_id = "set_registry_subject_config", tag = "registry", security(("bearer" = [])),
    params(("subject" = String, Path, description = "Subject")),
    request_body = ConfigRequest,
    responses((status = 200, description = "The level set", body = ConfigRequest),
        (status = 422, description = "Unknown level (42203)", body = RegistryErrorBody)))]
#[put("/registry/config/{subject}")]
pub(crate) async fn set_registry_subject_config(
    _admin: Admin,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<ConfigRequest>,
) -> Result<HttpResponse, RegistryApiError> {
    let level = Compatibility::parse(&body.compatibility).map_err(RegistryApiError)?;
    let subject = path.into_inner();
    run(&state, move |r| r.set_compatibility(Some(&subject), level)).await?;
    Ok(ok(&serde_json::json!({ "compatibility": level.name() })))
}
