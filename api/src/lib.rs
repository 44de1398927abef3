//! The HTTP API of a ledgerbridge node.
//!
//! Every handler carries `#[utoipa::path]` and is mounted through `utoipa-actix-web`, so the
//! OpenAPI document (`GET /api/v1/openapi.json`) is generated from exactly the routes that are
//! served; `tests/openapi.json` pins it, so every change to the API is a visible diff.
//! Errors use one envelope ([`error::ErrorBody`]); authorisation is the [`auth::Admin`]
//! extractor.

mod alerts;
pub mod audits;
pub mod auth;
mod connectors;
pub mod error;
mod health;
mod ledger;
mod mappings;
mod metrics;
mod provenance;
pub mod reconciliation;
mod registry;
mod rules;
mod system;
mod ui;

use std::sync::Arc;
use std::time::Instant;

use actix_web::{App, HttpResponse, web};
use ledgerbridge_bus::Bus;
use ledgerbridge_store::Store;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_actix_web::AppExt;

pub use health::{
    BusHealth, ComponentHealth, ComponentState, HealthCheck, HealthReport, LedgerHealth,
    StoreHealth,
};
pub use metrics::{MetricsSource, Sample};

use error::{ApiError, ErrorCode};

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// This node's id (`node.id`).
    pub node_id: String,
    /// The store.
    pub store: Store,
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// The ledger.
    pub ledger: ledgerbridge_ledger::Ledger,
    /// The schema registry.
    pub registry: ledgerbridge_registry::Registry,
    /// The connectors of this node.
    pub connectors: Arc<ledgerbridge_connectors::Connectors>,
    /// The mappings of this node.
    pub mappings: Arc<ledgerbridge_mappings::Mappings>,
    /// Name of the topic that records what the node itself does (`<prefix>system`).
    pub system_topic: String,
    /// Components reported by `/api/v1/health`, in order.
    pub components: Vec<Arc<dyn HealthCheck>>,
    /// Further metrics reported at `/metrics` by the node's stages.
    pub metrics: Vec<Arc<dyn MetricsSource>>,
    /// When the node started.
    pub started: Instant,
    /// The configured audits.
    pub audits: Vec<audits::AuditSchedule>,
    /// The ledger channel of the alerts (left out of rule dry-runs).
    pub alerts_channel: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ledgerbridge API",
        description = "Connectors, mappings, ledger, monitoring and proofs of a ledgerbridge node. \
                       Errors always use the `ErrorBody` envelope; codes map to statuses as documented on `ErrorCode`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody, error::ErrorDetail, error::ErrorCode))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Mounts every API route; used by the server and to generate the OpenAPI document.
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(health::get_health)
        .service(system::get_whoami)
        .service(system::list_system_events)
        .service(ledger::get_ledger_checkpoint)
        .service(ledger::get_ledger_keys)
        .service(ledger::get_ledger_entry)
        .service(ledger::get_ledger_entry_proof)
        .service(ledger::get_ledger_consistency)
        .service(ledger::create_ledger_entry)
        .service(registry::list_registry_subjects)
        .service(registry::list_registry_versions)
        .service(registry::get_registry_version)
        .service(registry::create_registry_version)
        .service(registry::get_registry_schema)
        .service(registry::create_registry_compatibility_check)
        .service(registry::get_registry_config)
        .service(registry::set_registry_config)
        .service(registry::get_registry_subject_config)
        .service(registry::set_registry_subject_config)
        .service(connectors::list_connectors)
        .service(connectors::get_connector)
        .service(connectors::pause_connector)
        .service(connectors::resume_connector)
        .service(connectors::run_connector)
        .service(connectors::rewind_connector)
        .service(connectors::test_connector)
        .service(connectors::list_connector_tables)
        .service(connectors::list_quarantine)
        .service(mappings::list_mappings)
        .service(mappings::test_mapping)
        .service(mappings::get_mapping)
        .service(mappings::create_mapping)
        .service(mappings::list_schemas)
        .service(mappings::create_schema)
        .service(mappings::get_quarantined_record)
        .service(mappings::test_quarantined_record)
        .service(mappings::redrive_quarantined_record)
        .service(mappings::discard_quarantined_record)
        .service(provenance::get_provenance)
        .service(provenance::list_provenance)
        .service(reconciliation::run_reconciliation)
        .service(alerts::list_alerts)
        .service(alerts::get_alert_stream)
        .service(alerts::get_alert)
        .service(alerts::set_alert_status)
        .service(alerts::create_alert_comment)
        .service(alerts::list_suppressions)
        .service(alerts::create_suppression)
        .service(alerts::lift_suppression)
        .service(audits::list_audits)
        .service(audits::list_audit_runs)
        .service(audits::get_audit_run)
        .service(audits::run_audit)
        .service(rules::list_rules)
        .service(rules::get_rule)
        .service(rules::update_rule)
        .service(rules::test_rule)
        .service(metrics::get_metrics);
}

/// The OpenAPI 3.1 document of the API.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    api
}

/// Builds the actix application around shared state: the API, the OpenAPI document, the admin
/// UI, and JSON errors for everything else.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let (app, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .app_data(state)
        .app_data(web::PathConfig::default().error_handler(|e, _| {
            ApiError::new(ErrorCode::NotFound, format!("no such resource: {e}")).into()
        }))
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            ApiError::new(ErrorCode::BadRequest, format!("query string: {e}")).into()
        }))
        .app_data(
            web::JsonConfig::default()
                .limit(2 * ledger::MAX_PAYLOAD_BYTES)
                .error_handler(|e, _| {
                    ApiError::new(ErrorCode::BadRequest, format!("request body: {e}")).into()
                }),
        )
        .configure(routes)
        .split_for_parts();
    let api = Arc::new(api);
    app.route(
        "/api/v1/openapi.json",
        web::get().to(move || {
            let api = Arc::clone(&api);
            async move { HttpResponse::Ok().json(&*api) }
        }),
    )
    .configure(ui::routes)
    .default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::new(ErrorCode::NotFound, "no such route"))
    }))
}
