//! The SQLite source: the embedded equivalent of a legacy database.

use apache_avro::types::Value as Avro;
use ledgerbridge_connectors::{Connectors, State, build_source};
use serde_json::json;

use crate::support::{Collect, Node, connector, wait_rows, wait_status};

fn config(name: &str, path: &str, tables: &str) -> String {
    format!(
        r#"
[[connectors]]
name = "{name}"
type = "sqlite"
poll_interval = "100ms"
batch_size = 100
[connectors.database]
url = "sqlite:{path}"
{tables}
"#
    )
}

/// Connector `mall` on the `mall_orders` table of the database at `path`.
fn mall_orders(path: &std::path::Path) -> ledgerbridge_config::connectors::ConnectorConfig {
    let tables = r#"
[[connectors.database.tables]]
name = "mall_orders"
"#;
    connector(&config("mall", &path.display().to_string(), tables))
}

fn legacy(path: &std::path::Path, rows: i64) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).expect("open");
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS mall_orders (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            order_no VARCHAR(20) NOT NULL,
            consignee_nm VARCHAR(40) NOT NULL,
            item_value_krw BIGINT NOT NULL,
            gross_wt NUMERIC(8,2),
            paid BOOLEAN,
            updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')));",
    )
    .expect("schema");
    for i in 0..rows {
        c.execute(
            "INSERT INTO mall_orders (order_no, consignee_nm, item_value_krw, gross_wt, paid) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![format!("ORD{i:06}"), format!("홍길동{i}"), 10_000 + i, 1.25, i % 2 == 0],
        )
        .expect("insert");
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_incremental_and_bad_values_through_the_runtime() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("legacy.db");
    let c = legacy(&path, 250);
    let node = Node::new();
    let cfg = mall_orders(&path);
    let connectors = Connectors::start(node.ctx.clone(), &[cfg]);
    wait_rows(&connectors, "mall", 250).await;
    // Legacy data in the wrong storage class: text in a BIGINT column.
    c.execute(
        "INSERT INTO mall_orders (order_no, consignee_nm, item_value_krw) VALUES ('ORDX', 'x', '12,000원')",
        [],
    )
    .expect("insert");
    c.execute(
        "INSERT INTO mall_orders (order_no, consignee_nm, item_value_krw) VALUES ('ORDY', 'y', 5)",
        [],
    )
    .expect("insert");
    let status = wait_status(
        &connectors,
        "mall",
        "one more row and one quarantined",
        |s| s.rows_total == 251 && s.quarantined_total == 1 && s.state == State::Idle,
    )
    .await;
    let error = status.last_error.expect("shown on the status").message;
    assert!(
        error.contains("`item_value_krw`") && error.contains("rowid=251"),
        "{error}"
    );
    let records = node.raw_records("mall").await;
    assert_eq!(records.len(), 251);
    let (key, source, row) = &records[0];
    assert_eq!(key, "1");
    assert_eq!(
        source[3],
        ("position".into(), Avro::String("rowid=1".into()))
    );
    let field = |name: &str| row.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(
        field("consignee_nm"),
        Some(Avro::Union(1, Box::new(Avro::String("홍길동0".into()))))
    );
    assert_eq!(
        field("item_value_krw"),
        Some(Avro::Union(1, Box::new(Avro::Long(10_000))))
    );
    assert_eq!(
        field("gross_wt"),
        Some(Avro::Union(1, Box::new(Avro::String("1.25".into()))))
    );
    assert_eq!(
        field("paid"),
        Some(Avro::Union(1, Box::new(Avro::Boolean(true))))
    );
    let tables = connectors.discover("mall").await.expect("discover");
    assert_eq!(tables[0].primary_key, vec!["id".to_owned()]);
    assert!(
        connectors
            .test("mall")
            .await
            .expect("test")
            .contains("read-only")
    );
    connectors.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_mode_captures_updates() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("legacy.db");
    let c = legacy(&path, 3);
    let tables = r#"
[[connectors.database.tables]]
name = "mall_orders"
timestamp_column = "updated_at"
"#;
    let mut source = build_source(&connector(&config(
        "ts",
        &path.display().to_string(),
        tables,
    )))
    .expect("source");
    let mut sink = Collect::default();
    source
        .pass("mall_orders", None, 2, &mut sink)
        .await
        .expect("snapshot");
    assert_eq!(sink.rows().len(), 3);
    std::thread::sleep(std::time::Duration::from_millis(5));
    c.execute(
        "UPDATE mall_orders SET item_value_krw = 1, updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = 2",
        [],
    )
    .expect("update");
    source
        .pass("mall_orders", sink.offset(), 2, &mut sink)
        .await
        .expect("pass");
    let rows = sink.rows();
    assert_eq!(rows.len(), 4);
    assert_eq!(
        (rows[3][0].clone(), rows[3][3].clone()),
        (json!(2), json!(1))
    );
    let missing = build_source(&connector(&config(
        "gone",
        "/nonexistent/legacy.db",
        tables,
    )))
    .expect("source")
    .pass("mall_orders", None, 2, &mut Collect::default())
    .await
    .expect_err("no file");
    assert!(
        missing
            .to_string()
            .contains("no SQLite file at /nonexistent/legacy.db"),
        "{missing}"
    );
}

/// The store's writer is shared with the ledger, whose appends hold it for a while: chunks keep
/// flowing meanwhile, and the pass ends only once the newest offset is stored, so a restart
/// publishes nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_flow_while_the_store_writer_is_busy_and_the_pass_stores_the_newest_offset() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("legacy.db");
    let c = legacy(&path, 50);
    let node = Node::new();
    let cfg = mall_orders(&path);
    let connectors = Connectors::start(node.ctx.clone(), std::slice::from_ref(&cfg));
    wait_rows(&connectors, "mall", 50).await;
    let stored = |store: &ledgerbridge_store::Store| {
        store
            .connector_offset("mall", "mall_orders")
            .expect("offset")
            .expect("stored")
    };
    let first = stored(&node.ctx.store);

    // 200 more rows in one transaction (one pass, two chunks of 100) while another writer holds
    // the store.
    let held = node.ctx.store.writer().expect("writer");
    c.execute_batch("BEGIN").expect("begin");
    for i in 50..250 {
        c.execute(
            "INSERT INTO mall_orders (order_no, consignee_nm, item_value_krw) VALUES (?1, 'x', 1)",
            [format!("ORD{i:06}")],
        )
        .expect("insert");
    }
    c.execute_batch("COMMIT").expect("commit");
    let topic = node.ctx.raw_topic("mall");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while node.ctx.bus.end_offset(&topic, 0).await.expect("end") < 250 {
        assert!(
            std::time::Instant::now() < deadline,
            "the chunks waited for the store's writer: {:?}",
            connectors.status("mall")
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        stored(&node.ctx.store),
        first,
        "no write got past the held writer"
    );
    assert_ne!(
        connectors.status("mall").expect("status").state,
        State::Idle,
        "the pass waits for its offset before it ends"
    );
    drop(held);
    wait_rows(&connectors, "mall", 250).await;
    let last = stored(&node.ctx.store);
    assert!(last.contains("250"), "the newest chunk's offset: {last}");
    connectors.shutdown().await;

    // A restart reads from there: one new row, and nothing published again.
    c.execute(
        "INSERT INTO mall_orders (order_no, consignee_nm, item_value_krw) VALUES ('ORDZ', 'z', 1)",
        [],
    )
    .expect("insert");
    let connectors = Connectors::start(node.ctx.clone(), &[cfg]);
    wait_rows(&connectors, "mall", 1).await;
    assert_eq!(node.ctx.bus.end_offset(&topic, 0).await.expect("end"), 251);
    connectors.shutdown().await;
}
