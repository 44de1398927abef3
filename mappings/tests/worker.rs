//! The mapping worker end to end, on the embedded log and on a real Kafka-protocol broker
//! (`LEDGERBRIDGE_TEST_KAFKA`, scripts/services.sh starts tansu): raw records in the connectors'
//! Avro → canonical events in Avro, failures quarantined with every error, a new mapping version
//! dry-run and redriven, a record discarded, each action kept with who did it; a restarted worker
//! does not map committed records again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ledgerbridge_bus::{Bus, EmbeddedLog, EmbeddedLogOptions, KafkaBus, KafkaSettings, Record};
use ledgerbridge_connectors::avro::{Provenance, RawSchema, key_text};
use ledgerbridge_connectors::{Column, ColumnType, SourceRow, TableSchema, Value};
use ledgerbridge_mappings::{MappingError, Mappings, Pseudonymiser, SAMPLE_SPECS};
use ledgerbridge_registry::Registry;
use ledgerbridge_store::testing::TestStore;
use serde_json::json;

const COLUMNS: &[(&str, ColumnType)] = &[
    ("id", ColumnType::Long),
    ("declaration_no", ColumnType::String),
    ("order_no", ColumnType::String),
    ("hbl_no", ColumnType::String),
    ("consignee_nm", ColumnType::String),
    ("customs_id", ColumnType::String),
    ("declared_amt", ColumnType::String),
    ("gross_wt_kg", ColumnType::Decimal),
    ("pkg_cnt", ColumnType::Long),
    ("declare_ymd", ColumnType::String),
    ("clear_status_cd", ColumnType::String),
    ("updated_at", ColumnType::String),
];

fn table() -> TableSchema {
    TableSchema {
        stream: "customs_declarations".into(),
        columns: COLUMNS
            .iter()
            .map(|(n, k)| Column {
                name: (*n).into(),
                kind: *k,
                nullable: true,
                source_type: String::new(),
            })
            .collect(),
        key: vec![0],
    }
}

fn row(i: i64, amount: &str, status: &str) -> SourceRow {
    SourceRow {
        values: vec![
            Value::Long(i),
            Value::String(format!("D-{i:05}")),
            Value::String(format!("ORD{i:06}")),
            Value::String(format!("HBL{i:09}")),
            Value::String("김민준".into()),
            Value::String(format!("P{:012}", i % 7)),
            Value::String(amount.into()),
            Value::String("1.5".into()),
            Value::Long(2),
            Value::String("20261102".into()),
            Value::String(status.into()),
            Value::String("2026-11-02 09:00:00.000".into()),
        ],
        position: format!("rowid={i}"),
    }
}

/// Publishes raw records exactly as the connector runtime does.
async fn publish_raw(bus: &dyn Bus, registry: &Registry, topic: &str, rows: &[SourceRow]) {
    let t = table();
    let raw = RawSchema::derive("sample-mall", &t).unwrap();
    let id = registry
        .register(&format!("{topic}-{}", raw.full_name), &raw.text)
        .unwrap();
    let records = rows
        .iter()
        .map(|r| {
            let key = key_text(&t, r);
            let p = Provenance {
                connector: "sample-mall",
                table: "customs_declarations",
                key: &key,
                extracted_at_ms: 1_795_883_722_964,
            };
            let mut value = Vec::new();
            raw.encode(u32::try_from(id).unwrap(), &p, r, &mut value)
                .unwrap();
            Record::new(Some(key.into_bytes()), value)
        })
        .collect();
    bus.publish(topic, records).await.unwrap();
}

/// A raw record the store cannot give the schema of is a reason to retry, never to quarantine:
/// the mapping worker's decoder says `Unavailable` (the worker then fails the batch, which is read
/// again from its committed offsets); an id the registry does not have is `Invalid`.
#[tokio::test]
async fn a_schema_the_store_cannot_read_is_retried_not_quarantined() {
    use diesel::RunQueryDsl as _;
    use ledgerbridge_mappings::worker::{RawDecoder, Unreadable};
    let store = TestStore::sqlite();
    let registry = Registry::new(store.store.clone());
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path().join("log"), EmbeddedLogOptions::default()).unwrap();
    publish_raw(&log, &registry, "raw.sample-mall", &[row(1, "1,000", "01")]).await;
    let record = log
        .read("raw.sample-mall", 0, 0, 1)
        .await
        .unwrap()
        .remove(0)
        .record;
    let mut unknown = record.value.clone();
    unknown[1..5].copy_from_slice(&999u32.to_be_bytes());
    assert!(
        matches!(RawDecoder::new(registry.clone()).decode(&unknown), Err(Unreadable::Invalid(m)) if m.contains("999")),
        "an id the registry does not have"
    );
    // The store fails the registry's read (its table gone, as good as a store that is down).
    diesel::sql_query("ALTER TABLE registry_schemas RENAME TO registry_schemas_away")
        .execute(&mut *store.store.conn().unwrap())
        .unwrap();
    let mut decoder = RawDecoder::new(registry.clone());
    let failed = decoder.decode(&record.value);
    assert!(
        matches!(&failed, Err(Unreadable::Unavailable(m)) if m.contains("registry_schemas")),
        "{failed:?}"
    );
    // Back: the same decoder reads it.
    diesel::sql_query("ALTER TABLE registry_schemas_away RENAME TO registry_schemas")
        .execute(&mut *store.store.conn().unwrap())
        .unwrap();
    let (source, row) = decoder.decode(&record.value).unwrap();
    assert_eq!(source.key, "1");
    assert_eq!(row["declared_amt"], json!("1,000"));
}

fn sample_spec() -> &'static str {
    SAMPLE_SPECS
        .iter()
        .find(|(f, _)| f.contains("customs_declarations"))
        .unwrap()
        .1
}

async fn wait(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn worker_maps_quarantines_and_redrives(bus: Arc<dyn Bus>, prefix: &str) {
    let store = TestStore::sqlite();
    let registry = Registry::new(store.store.clone());
    let open = || {
        Mappings::open(
            store.store.clone(),
            Arc::clone(&bus),
            registry.clone(),
            prefix,
            Pseudonymiser::new(b"consortium"),
            &[("customs_declarations.toml", sample_spec())],
            "configuration",
        )
        .unwrap()
    };
    let mappings = open();
    let raw_topic = format!("{prefix}raw.sample-mall");
    let mut rows: Vec<SourceRow> = (1..=40).map(|i| row(i, "1,250,000", "02")).collect();
    rows[9] = row(10, "12,34,5", "02"); // a bad amount
    rows[19] = row(20, "99,000", "07"); // a code the mapping does not know yet
    publish_raw(&*bus, &registry, &raw_topic, &rows).await;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(ledgerbridge_mappings::worker::run(
        mappings.worker_context(),
        stopped,
    ));
    let stats = Arc::clone(&mappings.stats);
    wait("38 events and 2 quarantined", || {
        stats.events.load(Ordering::Relaxed) == 38 && stats.quarantined.load(Ordering::Relaxed) == 2
    })
    .await;

    // The canonical topic: Avro through the registry, one event per row, deterministic ids.
    let topic = format!("{prefix}canonical.customs.declaration");
    let records = bus.read(&topic, 0, 0, 100).await.unwrap();
    assert_eq!(records.len(), 38);
    let schema = mappings
        .schemas()
        .into_iter()
        .find(|s| s.event_type == "customs.declaration")
        .unwrap();
    let avro = ledgerbridge_mappings::avro::canonical_schema(&schema.json).unwrap();
    let first = ledgerbridge_mappings::avro::decode(&avro, &records[0].record.value).unwrap();
    assert_eq!(first["data"]["declaration_no"], "D-00001");
    assert_eq!(first["data"]["declared_value_krw"], 1_250_000);
    assert_eq!(first["data"]["gross_weight_kg"], "1.50");
    assert_eq!(first["data"]["declared_on"], "2026-11-02");
    assert_eq!(
        first["mapping"],
        json!({"name": "mall-customs-declarations", "version": 1})
    );
    assert_eq!(first["source"]["position"], "rowid=1");
    assert!(!first.to_string().contains("김민준"), "no name in clear");
    assert_eq!(
        records[0].record.key.as_deref(),
        first["event_id"].as_str().map(str::as_bytes)
    );

    // The quarantine: every error, the mapping version, the source position.
    let q = store.store.quarantined("mapping", None, None, 10).unwrap();
    assert_eq!(q.len(), 2);
    let by_key = |k: &str| {
        q.iter()
            .find(|r| r.position.contains(&format!("key={k} ")))
            .unwrap()
    };
    let amount = by_key("10");
    assert_eq!(amount.mapping, "mall-customs-declarations@1");
    assert!(amount.position.contains("rowid=10"));
    let errors: serde_json::Value = serde_json::from_str(&amount.errors).unwrap();
    assert_eq!(errors[0]["pointer"], "/data/declared_value_krw");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("not an amount in won")
    );
    let status = by_key("20");
    assert!(
        status.reason.contains("\"07\" is not in the code table"),
        "{}",
        status.reason
    );
    assert_eq!(
        store.store.quarantine_open_count("mapping", None).unwrap(),
        2
    );

    // A new version that knows code 07: dry-run shows it passes, deploy, redrive.
    let v2 = sample_spec()
        .replace("version = 1\nsource", "version = 2\nsource")
        .replace(
            "\"02\" = \"cleared\"",
            "\"02\" = \"cleared\"\n\"07\" = \"cleared\"",
        );
    let tried = mappings
        .quarantine_dry_run(status.id, Some(&v2), "alice")
        .unwrap();
    assert_eq!(tried.outcome, "event");
    let still = mappings
        .quarantine_dry_run(status.id, None, "alice")
        .unwrap();
    assert_eq!(
        still.outcome, "failed",
        "the active version still refuses it"
    );
    mappings.deploy(&v2, "alice", None).unwrap();
    let redriven = mappings.redrive(status.id, None, "alice").await.unwrap();
    assert_eq!(redriven.outcome, "event");
    assert_eq!(redriven.event.as_ref().unwrap()["mapping"]["version"], 2);
    assert!(matches!(
        mappings.redrive(status.id, None, "bob").await,
        Err(MappingError::Conflict(_))
    ));
    assert_eq!(bus.read(&topic, 0, 0, 100).await.unwrap().len(), 39);
    // The bad amount cannot be fixed by a mapping: redriving leaves it open; discard it.
    assert_eq!(
        mappings
            .redrive(amount.id, None, "alice")
            .await
            .unwrap()
            .outcome,
        "failed"
    );
    mappings
        .discard(
            amount.id,
            "amount garbled in the source; re-keyed by the mall",
            "bob",
        )
        .unwrap();
    assert!(matches!(
        mappings.discard(amount.id, "again", "bob"),
        Err(MappingError::Conflict(_))
    ));
    let actions: Vec<(String, String)> = store
        .store
        .quarantine_actions(status.id)
        .unwrap()
        .into_iter()
        .map(|a| (a.action, a.actor))
        .collect();
    assert_eq!(
        actions,
        [
            ("dry-run", "alice"),
            ("dry-run", "alice"),
            ("redrive", "alice")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let amount_actions = store.store.quarantine_actions(amount.id).unwrap();
    assert_eq!(amount_actions.last().unwrap().action, "discard");
    assert_eq!(amount_actions.last().unwrap().actor, "bob");
    assert_eq!(
        store.store.quarantine_open_count("mapping", None).unwrap(),
        0
    );

    // New raw records after the deployment use version 2; a restarted worker resumes after the
    // committed offsets and maps nothing twice.
    stop.send(true).unwrap();
    worker.await.unwrap().unwrap();
    publish_raw(&*bus, &registry, &raw_topic, &[row(41, "5,000", "07")]).await;
    let mappings = open();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(ledgerbridge_mappings::worker::run(
        mappings.worker_context(),
        stopped,
    ));
    let stats = Arc::clone(&mappings.stats);
    wait("the new record", || {
        stats.events.load(Ordering::Relaxed) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stats.consumed.load(Ordering::Relaxed),
        1,
        "committed records are not read again"
    );
    let records = bus.read(&topic, 0, 0, 100).await.unwrap();
    assert_eq!(records.len(), 40);
    let last = ledgerbridge_mappings::avro::decode(&avro, &records[39].record.value).unwrap();
    assert_eq!(
        last["mapping"]["version"], 2,
        "the deployed version survived the restart"
    );
    stop.send(true).unwrap();
    worker.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_embedded_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path().join("log"), EmbeddedLogOptions::default()).unwrap();
    worker_maps_quarantines_and_redrives(Arc::new(log), "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_kafka() {
    let servers =
        std::env::var("LEDGERBRIDGE_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let bus = KafkaBus::connect(KafkaSettings {
        bootstrap_servers: servers.clone(),
        client_id: "mappings-test".into(),
        // tansu 0.6 skips the rest of a multi-record batch when a fetch starts inside it.
        properties: [("batch.num.messages".to_owned(), "1".to_owned())].into(),
        timeout: Duration::from_secs(10),
        partitions: 1,
        replication: 1,
    })
    .await
    .unwrap_or_else(|e| panic!("Kafka at {servers} (scripts/services.sh starts tansu): {e}"));
    let prefix = format!("mapt{}.", std::process::id());
    worker_maps_quarantines_and_redrives(Arc::new(bus), &prefix).await;
}
