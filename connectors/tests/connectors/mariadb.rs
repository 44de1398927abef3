//! The MariaDB source against a real server.

use std::time::Duration;

use apache_avro::types::Value as Avro;
use ledgerbridge_connectors::{Connectors, SourceError, State, build_source};
use mysql_async::prelude::Queryable as _;
use serde_json::json;

use crate::support::{Collect, MyDb, Node, connector, mariadb_base, wait_rows, wait_status};

fn config(name: &str, url: &str, tables: &str, extra: &str) -> String {
    format!(
        r#"
[[connectors]]
name = "{name}"
type = "mariadb"
poll_interval = "100ms"
batch_size = 500
[connectors.database]
url = "{url}"
{extra}
{tables}
"#
    )
}

const CLAIMS: &str = r#"
[[connectors.database.tables]]
name = "claims"
"#;

async fn claims_table(db: &MyDb) -> mysql_async::Conn {
    let mut c = db.conn().await;
    c.query_drop(
        "CREATE TABLE claims (
            claim_id BIGINT AUTO_INCREMENT PRIMARY KEY,
            patient VARCHAR(40) NOT NULL,
            procedure_code CHAR(5),
            amount DECIMAL(14, 2),
            treated_on DATE,
            urgent TINYINT(1),
            visits INT UNSIGNED,
            payload BLOB,
            updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
            KEY by_updated (updated_at, claim_id)
        ) ENGINE=InnoDB",
    )
    .await
    .expect("create table");
    c
}

async fn insert_claims(c: &mut mysql_async::Conn, n: usize) {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "('환자{i}', 'P{:04}', {}.50, '2026-03-{:02}', {}, {i}, X'01FF')",
                i % 100,
                1000 + i,
                1 + i % 28,
                i % 2
            )
        })
        .collect();
    c.query_drop(format!(
        "INSERT INTO claims (patient, procedure_code, amount, treated_on, urgent, visits, payload) VALUES {}",
        rows.join(", ")
    ))
    .await
    .expect("insert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_incremental_through_the_runtime() {
    let db = MyDb::new("my_snap").await;
    let mut c = claims_table(&db).await;
    insert_claims(&mut c, 1_200).await;
    let node = Node::new();
    let connectors = Connectors::start(
        node.ctx.clone(),
        &[connector(&config("his", &db.url, CLAIMS, ""))],
    );
    wait_rows(&connectors, "his", 1_200).await;
    insert_claims(&mut c, 7).await;
    let status = wait_rows(&connectors, "his", 1_207).await;
    assert!(status.last_error.is_none(), "{status:?}");
    let records = node.raw_records("his").await;
    assert_eq!(records.len(), 1_207);
    let (key, source, row) = &records[3];
    assert_eq!(key, "4");
    assert_eq!(source[1], ("table".into(), Avro::String("claims".into())));
    let Avro::String(position) = &source[3].1 else {
        panic!("position")
    };
    assert!(position.starts_with("gtid="), "{position}");
    let field = |name: &str| row.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(
        field("patient"),
        Some(Avro::Union(1, Box::new(Avro::String("환자3".into()))))
    );
    assert_eq!(
        field("amount"),
        Some(Avro::Union(1, Box::new(Avro::String("1003.50".into()))))
    );
    assert_eq!(
        field("urgent"),
        Some(Avro::Union(1, Box::new(Avro::Boolean(true))))
    );
    assert_eq!(
        field("visits"),
        Some(Avro::Union(1, Box::new(Avro::Long(3))))
    );
    assert_eq!(
        field("payload"),
        Some(Avro::Union(1, Box::new(Avro::Bytes(vec![1, 255]))))
    );
    // 2026-03-04 is day 20_516 after the epoch.
    assert_eq!(
        field("treated_on"),
        Some(Avro::Union(1, Box::new(Avro::Date(20_516))))
    );
    connectors.shutdown().await;
}

/// A transaction takes auto-increment key N and holds it; another takes N+1 and commits. The
/// pass must wait for N instead of passing over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_committed_late_with_an_older_key_are_not_missed() {
    let db = MyDb::new("my_late").await;
    let mut c = claims_table(&db).await;
    insert_claims(&mut c, 3).await;
    let cfg = connector(&config("late", &db.url, CLAIMS, ""));
    let mut source = build_source(&cfg).expect("source");
    let mut sink = Collect::default();
    source
        .pass("claims", None, 100, &mut sink)
        .await
        .expect("snapshot");
    assert_eq!(sink.rows().len(), 3);

    let mut held = db.conn().await;
    held.query_drop("START TRANSACTION").await.expect("begin");
    held.query_drop("INSERT INTO claims (patient) VALUES ('late')")
        .await
        .expect("insert");
    insert_claims(&mut c, 2).await;
    let offset = sink.offset();
    let pass = tokio::spawn(async move {
        let mut sink = Collect::default();
        let result = source.pass("claims", offset, 100, &mut sink).await;
        (result, sink)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pass.is_finished(),
        "the pass waits for the transaction holding key 4"
    );
    held.query_drop("COMMIT").await.expect("commit");
    let (result, after) = pass.await.expect("join");
    result.expect("pass");
    let ids: Vec<i64> = after
        .rows()
        .iter()
        .map(|r| r[0].as_i64().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![4, 5, 6],
        "the late row is read in key order, none skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_mode_captures_updates_and_zero_dates_are_quarantined() {
    let db = MyDb::new("my_ts").await;
    let mut c = claims_table(&db).await;
    insert_claims(&mut c, 3).await;
    c.query_drop("SET SESSION sql_mode = ''")
        .await
        .expect("legacy mode");
    c.query_drop("INSERT INTO claims (patient, treated_on) VALUES ('zero', '0000-00-00')")
        .await
        .expect("zero date");
    let tables = r#"
[[connectors.database.tables]]
name = "claims"
timestamp_column = "updated_at"
"#;
    let node = Node::new();
    let connectors = Connectors::start(
        node.ctx.clone(),
        &[connector(&config("ts", &db.url, tables, ""))],
    );
    wait_status(&connectors, "ts", "3 rows, one quarantined", |s| {
        s.rows_total == 3 && s.quarantined_total == 1 && s.state == State::Idle
    })
    .await;
    c.query_drop("UPDATE claims SET amount = 9.99 WHERE claim_id = 2")
        .await
        .expect("update");
    wait_rows(&connectors, "ts", 4).await;
    let records = node.raw_records("ts").await;
    let (key, _, row) = records.last().expect("update captured");
    assert_eq!(key, "2");
    assert!(
        row.iter()
            .any(|(n, v)| n == "amount"
                && *v == Avro::Union(1, Box::new(Avro::String("9.99".into()))))
    );
    let q = node
        .store
        .store
        .quarantined("connector", Some("ts"), None, 10)
        .expect("quarantine");
    assert_eq!(q.len(), 1);
    assert!(
        q[0].reason.contains("`treated_on`") && q[0].reason.contains("zero date"),
        "{}",
        q[0].reason
    );
    assert!(q[0].payload.contains("\"patient\":\"zero\""));
    let offsets = connectors.offsets("ts").await.expect("offsets");
    assert_eq!(
        offsets["claims"]["hi"][1],
        json!(2),
        "cursor is (updated_at, claim_id)"
    );
    connectors.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_missing_tables_are_clear_errors() {
    let db = MyDb::new("my_bad").await;
    let mut c = db.conn().await;
    let user = format!("lb_wrong_{}", std::process::id());
    c.query_drop(format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'right-password'"
    ))
    .await
    .expect("user");
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "wrong-password").expect("secret file");
    let base = mariadb_base().replace("root@", &format!("{user}@"));
    let url = format!("{base}/{}", db.name);
    let extra = format!("password = \"file:{}\"", secret.display());
    let mut source =
        build_source(&connector(&config("auth", &url, CLAIMS, &extra))).expect("source");
    let err = source.check().await.expect_err("refused");
    assert!(matches!(err, SourceError::Auth(_)), "{err}");
    assert!(err.to_string().contains("refused the credentials"), "{err}");
    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .expect("drop user");

    let mut source =
        build_source(&connector(&config("missing", &db.url, CLAIMS, ""))).expect("source");
    let err = source
        .pass("claims", None, 10, &mut Collect::default())
        .await
        .expect_err("missing");
    assert!(err.to_string().contains("`claims` does not exist"), "{err}");
    let tables = source.discover().await.expect("discover");
    assert!(tables.is_empty());
}
