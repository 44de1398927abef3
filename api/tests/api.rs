//! The API against a real SQLite store and a real embedded log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use std::sync::Arc;
use std::time::Instant;

use actix_web::{http::StatusCode, test, web};
use async_trait::async_trait;
use ledgerbridge_api::{AppState, BusHealth, HealthCheck, StoreHealth, app};
use ledgerbridge_bus::{Bus, EmbeddedLog, EmbeddedLogOptions, Record};
use ledgerbridge_store::{Role, Store};
use serde_json::Value;

struct Node {
    _dir: tempfile::TempDir,
    state: web::Data<AppState>,
    token: String,
}

fn node_with(extra: Vec<Arc<dyn HealthCheck>>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("s.sqlite3")).unwrap();
    let bus: Arc<dyn Bus> =
        Arc::new(EmbeddedLog::open(dir.path().join("log"), EmbeddedLogOptions::default()).unwrap());
    let (token, _) = store.create_token("admin (test)", Role::Admin).unwrap();
    let ledger = ledgerbridge_ledger::Ledger::open(
        store.clone(),
        dir.path().join("keys"),
        "ledgerbridge.test/api",
    )
    .unwrap();
    ledger.ensure_channel("claims").unwrap();
    let mut components: Vec<Arc<dyn HealthCheck>> = vec![
        Arc::new(StoreHealth(store.clone())),
        Arc::new(BusHealth(Arc::clone(&bus))),
        Arc::new(ledgerbridge_api::LedgerHealth(ledger.clone())),
    ];
    components.extend(extra);
    let registry = ledgerbridge_registry::Registry::new(store.clone());
    let connector_ctx = ledgerbridge_connectors::ConnectorContext {
        bus: Arc::clone(&bus),
        store: store.clone(),
        registry: ledgerbridge_connectors::registry::SchemaRegistry::Local(registry.clone()),
        topic_prefix: String::new(),
    };
    let mappings = Arc::new(
        ledgerbridge_mappings::Mappings::open(
            store.clone(),
            Arc::clone(&bus),
            registry.clone(),
            "",
            ledgerbridge_mappings::Pseudonymiser::new(b"test"),
            &[],
            "test",
        )
        .unwrap(),
    );
    let state = web::Data::new(AppState {
        node_id: "test-node".into(),
        store,
        bus,
        ledger,
        registry,
        connectors: Arc::new(ledgerbridge_connectors::Connectors::start(
            connector_ctx,
            &[],
        )),
        mappings,
        system_topic: "system".into(),
        components,
        metrics: Vec::new(),
        started: Instant::now(),
        audits: vec![ledgerbridge_api::audits::AuditSchedule {
            name: "ledger-verify".into(),
            job: "verify_ledger".into(),
            schedule: "0 0 2 * * *".into(),
        }],
        alerts_channel: "alerts".into(),
    });
    Node {
        _dir: dir,
        state,
        token,
    }
}

async fn call(node: &Node, req: test::TestRequest) -> (StatusCode, Value) {
    let service = test::init_service(app(node.state.clone())).await;
    let response = test::call_service(&service, req.to_request()).await;
    let status = response.status();
    let body = test::read_body(response).await;
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, json)
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[actix_web::test]
async fn health_names_every_component() {
    let node = node_with(vec![]);
    let (status, body) = call(&node, test::TestRequest::get().uri("/api/v1/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "up");
    assert_eq!(body["node"], "test-node");
    let names: Vec<&str> = body["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "store", "bus", "ledger"]);
    assert!(
        body["components"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "up")
    );
    assert!(
        body["components"][1]["detail"]
            .as_str()
            .unwrap()
            .starts_with("sqlite ")
    );
}

#[derive(Debug)]
struct Broken;

#[async_trait]
impl HealthCheck for Broken {
    fn name(&self) -> &str {
        "mapper"
    }
    async fn check(&self) -> Result<String, String> {
        Err("consumer group lost".into())
    }
}

#[actix_web::test]
async fn health_is_503_with_the_reason_when_a_component_is_down() {
    let node = node_with(vec![Arc::new(Broken)]);
    let (status, body) = call(&node, test::TestRequest::get().uri("/api/v1/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "down");
    assert_eq!(body["components"][4]["state"], "down");
    assert_eq!(body["components"][4]["detail"], "consumer group lost");
}

#[actix_web::test]
async fn a_token_is_required_and_checked() {
    let node = node_with(vec![]);
    let (status, body) = call(&node, test::TestRequest::get().uri("/api/v1/whoami")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");
    let (status, body) = call(
        &node,
        test::TestRequest::get()
            .uri("/api/v1/whoami")
            .insert_header(("Authorization", "Bearer lbt_wrong")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");
    let (status, body) = call(
        &node,
        test::TestRequest::get()
            .uri("/api/v1/whoami")
            .insert_header(("Authorization", "Basic abc")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");
    let (status, body) = call(
        &node,
        test::TestRequest::get()
            .uri("/api/v1/whoami")
            .insert_header(("Authorization", format!("Bearer {}", node.token))),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "admin (test)");
}

#[actix_web::test]
async fn system_events_page_through_the_system_topic() {
    let node = node_with(vec![]);
    for i in 0..3 {
        let record = Record::new(None, format!("{{\"n\":{i}}}").into_bytes())
            .with_header("type", "node.started");
        node.state
            .bus
            .publish("system", vec![record])
            .await
            .unwrap();
    }
    let auth = ("Authorization", format!("Bearer {}", node.token));
    let (status, body) = call(
        &node,
        test::TestRequest::get()
            .uri("/api/v1/system/events?from=1&limit=1")
            .insert_header(auth.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"][0]["offset"], 1);
    assert_eq!(body["events"][0]["type"], "node.started");
    assert_eq!(body["events"][0]["data"]["n"], 1);
    assert_eq!(body["next"], 2);
    assert_eq!(body["end"], 3);

    for bad in ["limit=0", "limit=5000", "limit=abc", "from=-1"] {
        let (status, body) = call(
            &node,
            test::TestRequest::get()
                .uri(&format!("/api/v1/system/events?{bad}"))
                .insert_header(auth.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_error(&body, "bad_request");
    }
}

#[actix_web::test]
async fn unknown_routes_get_the_error_envelope() {
    let node = node_with(vec![]);
    let (status, body) = call(&node, test::TestRequest::get().uri("/api/v1/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, "not_found");
}

#[actix_web::test]
async fn the_admin_ui_and_the_openapi_document_are_served() {
    let node = node_with(vec![]);
    let service = test::init_service(app(node.state.clone())).await;
    let response =
        test::call_service(&service, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = String::from_utf8(test::read_body(response).await.to_vec()).unwrap();
    assert!(html.contains("<title>ledgerbridge</title>"));
    let (status, body) = call(&node, test::TestRequest::get().uri("/api/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::to_value(ledgerbridge_api::openapi()).unwrap()
    );
}

/// The OpenAPI document is pinned: a change to the API shows up as a diff of
/// `api/tests/openapi.json`. Regenerate with `UPDATE_SNAPSHOTS=1 cargo test -p ledgerbridge-api`.
#[actix_web::test]
async fn openapi_document_matches_the_snapshot() {
    let generated = serde_json::to_string_pretty(&ledgerbridge_api::openapi()).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let pinned = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        pinned == generated,
        "the API changed: review and run `UPDATE_SNAPSHOTS=1 cargo test -p ledgerbridge-api`\n{generated}"
    );
    let doc: Value = serde_json::from_str(&generated).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            let verb = id.split('_').next().unwrap_or_default();
            assert!(
                [
                    "get", "list", "create", "update", "delete", "set", "pause", "resume", "run",
                    "rewind", "test", "redrive", "discard", "lift"
                ]
                .contains(&verb)
                    && id.contains('_'),
                "{method} {path}: operation id `{id}` is not verb_resource"
            );
        }
    }
}

async fn text(node: &Node, req: test::TestRequest) -> (StatusCode, String) {
    let service = test::init_service(app(node.state.clone())).await;
    let response = test::call_service(&service, req.to_request()).await;
    let status = response.status();
    (
        status,
        String::from_utf8(test::read_body(response).await.to_vec()).unwrap(),
    )
}

fn anchor(node: &Node, body: Value) -> test::TestRequest {
    test::TestRequest::post()
        .uri("/api/v1/ledger/claims/entries")
        .insert_header(("Authorization", format!("Bearer {}", node.token)))
        .set_json(body)
}

#[actix_web::test]
async fn auditors_get_checkpoints_keys_entries_and_proofs_that_verify_offline() {
    use ledgerbridge_ledger_core::proof_file::{Policy, ProofFile, verify};
    let node = node_with(vec![]);
    let (status, _) = text(
        &node,
        test::TestRequest::get().uri("/api/v1/ledger/claims/checkpoint"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "empty channel: no checkpoint yet"
    );
    for i in 0..5 {
        let body = serde_json::json!({"event_id": format!("claim:{i}"), "event_type": "claim", "subject": "p-1", "payload": {"amount": i}});
        let (status, resp) = call(&node, anchor(&node, body)).await;
        assert_eq!(status, StatusCode::CREATED, "{resp}");
        assert_eq!(resp["index"], i);
    }
    let again = serde_json::json!({"event_id": "claim:2", "event_type": "claim", "payload": {}});
    let (status, resp) = call(&node, anchor(&node, again)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(resp["existing"], true);
    assert_eq!(resp["index"], 2);

    let (status, checkpoint) = text(
        &node,
        test::TestRequest::get().uri("/api/v1/ledger/claims/checkpoint"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        checkpoint.starts_with("ledgerbridge.test/api/claims\n5\n"),
        "{checkpoint}"
    );
    let (_, keys) = text(
        &node,
        test::TestRequest::get().uri("/api/v1/ledger/claims/keys"),
    )
    .await;
    assert!(keys.starts_with("ledgerbridge.test/api/claims+"), "{keys}");
    let (status, entry) = call(
        &node,
        test::TestRequest::get().uri("/api/v1/ledger/claims/entries/3"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(entry["event_id"], "claim:3");
    assert_eq!(entry["connector"], "api");
    use base64::Engine as _;
    let leaf_data = base64::engine::general_purpose::STANDARD
        .decode(entry["leaf_data"].as_str().unwrap())
        .unwrap();
    let (status, proof) = text(
        &node,
        test::TestRequest::get().uri("/api/v1/ledger/claims/entries/3/proof"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let policy = Policy::from_vkeys(&keys, None).unwrap();
    verify(&ProofFile::parse(&proof).unwrap(), &leaf_data, &policy).unwrap();
    let (status, c) = call(
        &node,
        test::TestRequest::get().uri("/api/v1/ledger/claims/consistency?from=2&to=5"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["proof"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn bad_anchors_and_lookups_get_the_error_envelope_naming_the_field() {
    let node = node_with(vec![]);
    let cases = [
        (
            serde_json::json!({"event_type": "claim", "payload": {}}),
            "event_id",
        ),
        (
            serde_json::json!({"event_id": "", "event_type": "claim", "payload": {}}),
            "event_id",
        ),
        (
            serde_json::json!({"event_id": "x", "event_type": "claim", "payload": {}, "colour": 1}),
            "colour",
        ),
        (
            serde_json::json!({"event_id": "x", "event_type": "c".repeat(2000), "payload": {}}),
            "event_type",
        ),
        (
            serde_json::json!({"event_id": "x", "event_type": "claim", "payload": "x".repeat(300_000)}),
            "payload",
        ),
        (
            serde_json::json!({"event_id": "x", "event_type": "claim", "subject": "", "payload": {}}),
            "subject",
        ),
    ];
    for (body, field) in cases {
        let (status, resp) = call(&node, anchor(&node, body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {resp}");
        assert_error(&resp, "bad_request");
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(field),
            "{field}: {resp}"
        );
    }
    let unauthenticated = test::TestRequest::post()
        .uri("/api/v1/ledger/claims/entries")
        .set_json(serde_json::json!({"event_id": "x", "event_type": "c", "payload": {}}));
    assert_eq!(
        call(&node, unauthenticated).await.0,
        StatusCode::UNAUTHORIZED
    );
    for (uri, code) in [
        ("/api/v1/ledger/nope/checkpoint", "not_found"),
        ("/api/v1/ledger/claims/entries/0", "not_found"),
        ("/api/v1/ledger/claims/entries/0/proof", "not_found"),
        ("/api/v1/ledger/claims/entries/-1", "not_found"),
        (
            "/api/v1/ledger/claims/consistency?from=1&to=9",
            "bad_request",
        ),
        (
            "/api/v1/ledger/claims/consistency?from=x&to=9",
            "bad_request",
        ),
    ] {
        let (status, resp) = call(&node, test::TestRequest::get().uri(uri)).await;
        assert!(status.is_client_error(), "{uri}: {status}");
        assert_error(&resp, code);
    }
}

#[actix_web::test]
async fn the_registry_speaks_confluents_api() {
    let node = node_with(vec![]);
    let v1 = r#"{"type":"record","name":"claim","fields":[{"name":"claim_no","type":"string"}]}"#;
    let v2 = r#"{"type":"record","name":"claim","fields":[{"name":"claim_no","type":"string"},{"name":"ward","type":["null","string"],"default":null}]}"#;
    let bad = r#"{"type":"record","name":"claim","fields":[{"name":"claim_no","type":"long"}]}"#;
    let post = |uri: &str, schema: &str| {
        test::TestRequest::post()
            .uri(uri)
            .insert_header(("Authorization", format!("Bearer {}", node.token)))
            .set_json(serde_json::json!({ "schema": schema }))
    };
    let (status, body) = call(&node, post("/registry/subjects/raw.his-value/versions", v1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id1 = body["id"].as_i64().unwrap();
    let (_, body) = call(&node, post("/registry/subjects/raw.his-value/versions", v2)).await;
    let id2 = body["id"].as_i64().unwrap();
    let (status, body) = call(
        &node,
        post("/registry/subjects/raw.his-value/versions", bad),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error_code"], 409);
    let (status, body) = call(
        &node,
        test::TestRequest::get().uri(&format!("/registry/schemas/ids/{id1}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["schema"], v1);
    let (_, body) = call(
        &node,
        test::TestRequest::get().uri("/registry/subjects/raw.his-value/versions/latest"),
    )
    .await;
    assert_eq!(
        (body["version"].as_i64(), body["id"].as_i64()),
        (Some(2), Some(id2))
    );
    let (_, body) = call(&node, test::TestRequest::get().uri("/registry/subjects")).await;
    assert_eq!(body, serde_json::json!(["raw.his-value"]));
    let (_, body) = call(
        &node,
        post(
            "/registry/compatibility/subjects/raw.his-value/versions/latest",
            bad,
        ),
    )
    .await;
    assert_eq!(body["is_compatible"], false);
    let (_, body) = call(&node, test::TestRequest::get().uri("/registry/config")).await;
    assert_eq!(body["compatibilityLevel"], "BACKWARD");
    for (uri, code) in [
        ("/registry/subjects/nope/versions", 40401),
        ("/registry/subjects/raw.his-value/versions/7", 40402),
        ("/registry/schemas/ids/999", 40403),
        ("/registry/subjects/raw.his-value/versions/0", 42202),
    ] {
        let (status, body) = call(&node, test::TestRequest::get().uri(uri)).await;
        assert_eq!(body["error_code"], code, "{uri}: {body}");
        assert_eq!(u32::from(status.as_u16()), code / 100, "{uri}");
    }
    let (status, body) = call(&node, post("/registry/subjects/x/versions", "{broken")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error_code"], 42201);
    let unauthenticated = test::TestRequest::post()
        .uri("/registry/subjects/x/versions")
        .set_json(serde_json::json!({ "schema": v1 }));
    assert_eq!(
        call(&node, unauthenticated).await.0,
        StatusCode::UNAUTHORIZED
    );
}
