//! The PostgreSQL source against a real server.

use std::time::Duration;

use apache_avro::types::Value as Avro;
use ledgerbridge_connectors::{Connectors, RewindTo, State, build_source};
use serde_json::json;

use crate::support::{Collect, Node, PgSource, connector, wait_rows, wait_status};

fn config(name: &str, url: &str, tables: &str, extra: &str) -> String {
    format!(
        r#"
[[connectors]]
name = "{name}"
type = "postgres"
poll_interval = "100ms"
batch_size = 1000
{extra}
[connectors.database]
url = "{url}"
late_commit_window = "5s"
{tables}
"#
    )
}

const ORDERS: &str = r#"
[[connectors.database.tables]]
name = "public.orders"
"#;

async fn orders_table(src: &PgSource) -> tokio_postgres::Client {
    let c = src.client().await;
    c.batch_execute(
        "CREATE TABLE orders (
            order_id bigserial PRIMARY KEY,
            consignee text NOT NULL,
            amount numeric(14, 2),
            ordered_on date,
            paid boolean,
            note varchar(40),
            qty int2,
            weight float8,
            tags text[],
            raw bytea,
            updated_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .expect("create table");
    c
}

async fn insert_orders(c: &tokio_postgres::Client, n: i64) {
    c.execute(
        "INSERT INTO orders (consignee, amount, ordered_on, paid, note, qty, weight, tags, raw)
         SELECT '김철수 ' || g, (g * 1000.5)::numeric(14,2), date '2026-01-01' + (g % 300)::int,
                g % 2 = 0, NULL, (g % 7)::int2, g / 3.0, ARRAY['a', 'b'], '\\x00ff'::bytea
         FROM generate_series(1, $1::int8) g",
        &[&n],
    )
    .await
    .expect("insert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_incremental_through_the_runtime_with_provenance() {
    let src = PgSource::new("pg_snap").await;
    let c = orders_table(&src).await;
    insert_orders(&c, 2_500).await;
    let node = Node::new();
    let cfg = connector(&config("mall-orders", &src.url, ORDERS, ""));
    let connectors = Connectors::start(node.ctx.clone(), &[cfg]);
    wait_rows(&connectors, "mall-orders", 2_500).await;
    insert_orders(&c, 10).await;
    let status = wait_rows(&connectors, "mall-orders", 2_510).await;
    assert_eq!(status.topic, "raw.mall-orders");
    assert_eq!(status.quarantined_total, 0);
    assert!(status.last_error.is_none(), "{status:?}");

    let records = node.raw_records("mall-orders").await;
    let keys: std::collections::BTreeSet<i64> = records
        .iter()
        .map(|(k, _, _)| k.parse().expect("numeric key"))
        .collect();
    assert_eq!(keys.len(), 2_510, "every row once");
    assert_eq!(records.len(), 2_510, "and nothing twice");
    let (key, source, row) = &records[41];
    assert_eq!(key, "42");
    assert_eq!(
        source[0],
        ("connector".into(), Avro::String("mall-orders".into()))
    );
    assert_eq!(
        source[1],
        ("table".into(), Avro::String("public.orders".into()))
    );
    assert_eq!(source[2], ("key".into(), Avro::String("42".into())));
    let Avro::String(position) = &source[3].1 else {
        panic!("position")
    };
    assert!(
        position.starts_with("lsn=") && position.contains("xmin="),
        "{position}"
    );
    assert!(matches!(source[4].1, Avro::TimestampMillis(t) if t > 1_700_000_000_000));
    let field = |name: &str| row.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(
        field("consignee"),
        Some(Avro::Union(1, Box::new(Avro::String("김철수 42".into()))))
    );
    assert_eq!(
        field("amount"),
        Some(Avro::Union(1, Box::new(Avro::String("42021.00".into()))))
    );
    assert_eq!(
        field("paid"),
        Some(Avro::Union(1, Box::new(Avro::Boolean(true))))
    );
    assert_eq!(field("note"), Some(Avro::Union(0, Box::new(Avro::Null))));
    assert_eq!(field("qty"), Some(Avro::Union(1, Box::new(Avro::Int(0)))));
    assert_eq!(
        field("tags"),
        Some(Avro::Union(1, Box::new(Avro::String("{a,b}".into()))))
    );
    assert_eq!(
        field("raw"),
        Some(Avro::Union(1, Box::new(Avro::Bytes(vec![0, 255]))))
    );
    // 2026-01-01 + 42 days
    assert_eq!(
        field("ordered_on"),
        Some(Avro::Union(1, Box::new(Avro::Date(20_454 + 42))))
    );
    connectors.shutdown().await;
}

/// Rows committed out of order by concurrent transactions: a transaction takes key N, another
/// takes N+1 and commits, a pass reads N+1; then N commits. Plain `WHERE id > last` polling
/// misses N forever; we must not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_committed_late_with_an_older_key_are_not_missed() {
    let src = PgSource::new("pg_late").await;
    let c = orders_table(&src).await;
    insert_orders(&c, 5).await;
    let cfg = connector(&config("late", &src.url, ORDERS, ""));
    let mut source = build_source(&cfg).expect("source");
    let mut sink = Collect::default();
    source
        .pass("public.orders", None, 1000, &mut sink)
        .await
        .expect("snapshot");
    assert_eq!(sink.rows().len(), 5);

    let mut expected = 5;
    for round in 0..5 {
        // Several writers hold keys while later ones commit first.
        let mut held = Vec::new();
        for _ in 0..3 {
            let w = src.client().await;
            w.batch_execute("BEGIN").await.expect("begin");
            w.execute("INSERT INTO orders (consignee) VALUES ('late')", &[])
                .await
                .expect("insert");
            held.push(w);
        }
        insert_orders(&c, 4).await;
        expected += 4;
        let offset = sink.offset();
        source
            .pass("public.orders", offset, 2, &mut sink)
            .await
            .expect("pass while held");
        // Commit in reverse order, one pass between commits.
        while let Some(w) = held.pop() {
            w.batch_execute("COMMIT").await.expect("commit");
            expected += 1;
            let offset = sink.offset();
            source
                .pass("public.orders", offset, 2, &mut sink)
                .await
                .expect("pass");
        }
        let rows = sink.rows();
        let distinct: std::collections::BTreeSet<i64> =
            rows.iter().map(|r| r[0].as_i64().expect("id")).collect();
        let count: i64 = c
            .query_one("SELECT count(*) FROM orders", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(count, expected);
        assert_eq!(
            distinct.len() as i64,
            count,
            "round {round}: every committed row read"
        );
        assert_eq!(rows.len(), distinct.len(), "round {round}: and none twice");
    }
    // A rolled-back writer leaves nothing behind and does not stall the cursor.
    let w = src.client().await;
    w.batch_execute("BEGIN; INSERT INTO orders (consignee) VALUES ('gone')")
        .await
        .expect("insert");
    insert_orders(&c, 1).await;
    source
        .pass("public.orders", sink.offset(), 100, &mut sink)
        .await
        .expect("pass");
    w.batch_execute("ROLLBACK").await.expect("rollback");
    source
        .pass("public.orders", sink.offset(), 100, &mut sink)
        .await
        .expect("pass");
    assert_eq!(sink.rows().len() as i64, expected + 1);
}

/// Timestamp mode: updates are captured, and a transaction whose `now()` is older than rows
/// already read is still picked up when it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_mode_captures_updates_and_late_timestamps() {
    let src = PgSource::new("pg_ts").await;
    let c = orders_table(&src).await;
    insert_orders(&c, 3).await;
    let tables = r#"
[[connectors.database.tables]]
name = "orders"
timestamp_column = "updated_at"
"#;
    let cfg = connector(&config("ts", &src.url, tables, ""));
    let mut source = build_source(&cfg).expect("source");
    let mut sink = Collect::default();
    source
        .pass("orders", None, 10, &mut sink)
        .await
        .expect("snapshot");
    assert_eq!(sink.rows().len(), 3);

    // A transaction starts (its now() is fixed) and updates row 1, but commits late.
    let slow = src.client().await;
    slow.batch_execute(
        "BEGIN; UPDATE orders SET note = 'slow', updated_at = now() WHERE order_id = 1",
    )
    .await
    .expect("slow update");
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.execute(
        "UPDATE orders SET note = 'fast', updated_at = now() WHERE order_id = 2",
        &[],
    )
    .await
    .expect("fast update");
    source
        .pass("orders", sink.offset(), 10, &mut sink)
        .await
        .expect("pass");
    slow.batch_execute("COMMIT").await.expect("commit");
    source
        .pass("orders", sink.offset(), 10, &mut sink)
        .await
        .expect("pass");
    let notes: Vec<(i64, serde_json::Value)> = sink
        .rows()
        .iter()
        .skip(3)
        .map(|r| (r[0].as_i64().expect("id"), r[5].clone()))
        .collect();
    assert_eq!(notes, vec![(2, json!("fast")), (1, json!("slow"))]);

    // Rewind to a time re-reads from there.
    let offset = source
        .rewind_offset(
            "orders",
            &RewindTo::Timestamp {
                at: chrono::Utc::now() - chrono::Duration::days(1),
            },
        )
        .expect("rewind");
    let mut again = Collect::default();
    source
        .pass("orders", offset, 10, &mut again)
        .await
        .expect("pass");
    assert_eq!(again.rows().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_snapshot_resumes_from_the_last_stored_chunk() {
    let src = PgSource::new("pg_resume").await;
    let c = orders_table(&src).await;
    insert_orders(&c, 1_000).await;
    let cfg = connector(&config("resume", &src.url, ORDERS, ""));
    let mut source = build_source(&cfg).expect("source");
    let mut first = Collect {
        fail_after: Some(3),
        ..Collect::default()
    };
    let err = source.pass("public.orders", None, 100, &mut first).await;
    assert!(err.is_err(), "the sink failed");
    assert_eq!(first.rows().len(), 300);
    let mut second = Collect::default();
    let mut source = build_source(&cfg).expect("fresh source, as after a restart");
    source
        .pass("public.orders", first.offset(), 100, &mut second)
        .await
        .expect("resume");
    let rows = second.rows();
    assert_eq!(rows.len(), 700);
    assert_eq!(rows[0][0], json!(301));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_changes_new_nullable_column_is_a_new_version_type_change_stops() {
    let src = PgSource::new("pg_schema").await;
    let c = orders_table(&src).await;
    insert_orders(&c, 3).await;
    let node = Node::new();
    let cfg = connector(&config("evolve", &src.url, ORDERS, ""));
    let connectors = Connectors::start(node.ctx.clone(), &[cfg]);
    wait_rows(&connectors, "evolve", 3).await;
    c.batch_execute("ALTER TABLE orders ADD COLUMN channel text")
        .await
        .expect("alter");
    c.execute(
        "INSERT INTO orders (consignee, channel) VALUES ('x', 'web')",
        &[],
    )
    .await
    .expect("insert");
    wait_rows(&connectors, "evolve", 4).await;
    let subject = "raw.evolve-ledgerbridge.raw.evolve.public_orders";
    assert_eq!(
        node.registry.versions(subject).expect("versions"),
        vec![1, 2]
    );
    let records = node.raw_records("evolve").await;
    let last = &records.last().expect("record").2;
    assert!(
        last.iter()
            .any(|(n, v)| n == "channel"
                && *v == Avro::Union(1, Box::new(Avro::String("web".into()))))
    );

    c.batch_execute("ALTER TABLE orders ALTER COLUMN qty TYPE text")
        .await
        .expect("alter type");
    c.execute(
        "INSERT INTO orders (consignee, qty) VALUES ('y', 'lots')",
        &[],
    )
    .await
    .expect("insert");
    let status = wait_status(
        &connectors,
        "evolve",
        "stopped on the incompatible change",
        |s| s.state == State::Stopped,
    )
    .await;
    let message = status.last_error.expect("error").message;
    assert!(
        message.contains("public.orders") && message.contains("incompatible"),
        "{message}"
    );
    assert_eq!(
        node.raw_records("evolve").await.len(),
        4,
        "nothing written after the change"
    );
    connectors.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_and_quarantined_and_the_rest_flows() {
    // Unreachable server.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let mut source = build_source(&connector(&config(
        "down",
        &format!("postgres://postgres@127.0.0.1:{closed}/x"),
        ORDERS,
        "",
    )))
    .expect("source");
    let err = source.check().await.expect_err("unreachable").to_string();
    assert!(
        err.starts_with("cannot reach the source") && err.contains(&closed.to_string()),
        "{err}"
    );

    let src = PgSource::new("pg_bad").await;
    let c = orders_table(&src).await;
    // Missing table.
    let missing = r#"
[[connectors.database.tables]]
name = "public.nope"
"#;
    let mut source =
        build_source(&connector(&config("missing", &src.url, missing, ""))).expect("source");
    let err = source
        .pass("public.nope", None, 10, &mut Collect::default())
        .await
        .expect_err("missing");
    assert!(
        err.to_string().contains("`public.nope` does not exist"),
        "{err}"
    );
    // A configured column that does not exist.
    let wrong = r#"
[[connectors.database.tables]]
name = "orders"
timestamp_column = "modified"
"#;
    let mut source =
        build_source(&connector(&config("wrong", &src.url, wrong, ""))).expect("source");
    let err = source
        .pass("orders", None, 10, &mut Collect::default())
        .await
        .expect_err("column");
    assert!(err.to_string().contains("no column `modified`"), "{err}");

    // A value with no Avro form is quarantined, the rest flows, through the runtime.
    insert_orders(&c, 3).await;
    c.execute(
        "INSERT INTO orders (consignee, ordered_on) VALUES ('inf', 'infinity')",
        &[],
    )
    .await
    .expect("insert");
    insert_orders(&c, 2).await;
    let node = Node::new();
    let connectors = Connectors::start(
        node.ctx.clone(),
        &[connector(&config("bad", &src.url, ORDERS, ""))],
    );
    let status = wait_status(&connectors, "bad", "5 rows and one quarantined", |s| {
        s.rows_total == 5 && s.quarantined_total == 1 && s.state == State::Idle
    })
    .await;
    let shown = status
        .last_error
        .expect("the quarantined row shows on the status")
        .message;
    assert!(
        shown.contains("1 record(s) of `public.orders` quarantined")
            && shown.contains("ordered_on"),
        "{shown}"
    );
    let q = node
        .store
        .store
        .quarantined("connector", Some("bad"), None, 10)
        .expect("quarantine");
    assert_eq!(q.len(), 1);
    assert!(
        q[0].reason.contains("column `ordered_on` (date)"),
        "{}",
        q[0].reason
    );
    assert!(
        q[0].position.contains("public.orders key=4"),
        "{}",
        q[0].position
    );
    assert!(
        q[0].payload.contains("\"consignee\":\"inf\""),
        "{}",
        q[0].payload
    );
    assert_eq!(
        node.ctx.bus.end_offset("quarantine", 0).await.expect("end"),
        1
    );
    connectors.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_rewind_without_deleting_the_connector() {
    let src = PgSource::new("pg_ctl").await;
    let c = orders_table(&src).await;
    insert_orders(&c, 20).await;
    let node = Node::new();
    let connectors = Connectors::start(
        node.ctx.clone(),
        &[connector(&config("ctl", &src.url, ORDERS, ""))],
    );
    wait_rows(&connectors, "ctl", 20).await;
    connectors.pause("ctl").expect("pause");
    wait_status(&connectors, "ctl", "paused", |s| s.state == State::Paused).await;
    insert_orders(&c, 5).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        connectors.status("ctl").expect("status").rows_total,
        20,
        "paused: nothing read"
    );
    let moved = connectors
        .rewind(
            "ctl",
            None,
            RewindTo::After {
                cursor: vec![json!(10)],
            },
        )
        .await
        .expect("rewind");
    assert_eq!(moved, vec!["public.orders".to_owned()]);
    assert_eq!(
        connectors.status("ctl").expect("status").state,
        State::Paused,
        "still paused"
    );
    connectors.resume("ctl").expect("resume");
    wait_rows(&connectors, "ctl", 35).await;
    let keys: Vec<i64> = node
        .raw_records("ctl")
        .await
        .iter()
        .map(|(k, _, _)| k.parse().expect("key"))
        .collect();
    assert_eq!(
        keys[20..],
        (11..=25).collect::<Vec<_>>()[..],
        "re-read after the rewind point"
    );
    let offsets = connectors.offsets("ctl").await.expect("offsets");
    assert_eq!(offsets["public.orders"]["hi"], json!([25]));
    assert!(
        connectors
            .test("ctl")
            .await
            .expect("test")
            .starts_with("PostgreSQL")
    );
    let tables = connectors.discover("ctl").await.expect("discover");
    let orders = tables
        .iter()
        .find(|t| t.name == "public.orders")
        .expect("orders discovered");
    assert_eq!(orders.primary_key, vec!["order_id".to_owned()]);
    assert_eq!(orders.columns.len(), 11);
    connectors.shutdown().await;
}
