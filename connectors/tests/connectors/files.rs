//! Batch files through the runtime: a cron schedule, EUC-KR, quarantine, done/.

use apache_avro::types::Value as Avro;
use ledgerbridge_connectors::{Connectors, State};

use crate::support::{Node, connector, wait_status};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn euc_kr_csv_files_on_a_cron_schedule_land_once_with_bad_lines_quarantined() {
    let dir = tempfile::tempdir().expect("dir");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    let text = "declaration_no,consignee,declared_amt,declare_ymd\n\
                D-0001,김민준,\"120,000\",20261101\n\
                D-0002,이서연,\"95,500\",2026-11-02\n\
                D-0003,박지호,lots,20261103\n\
                D-0004,최수아,\"1,000\",20261104\n";
    let (bytes, _, unmappable) = encoding_rs::EUC_KR.encode(text);
    assert!(!unmappable);
    std::fs::write(inbox.join("decl-001.csv.part"), &bytes).expect("write");
    std::fs::rename(inbox.join("decl-001.csv.part"), inbox.join("decl-001.csv")).expect("rename");
    let toml = format!(
        r#"
[[connectors]]
name = "customs-files"
type = "files"
schedule = "* * * * * *"
[connectors.files]
dir = "{}"
pattern = "*.csv"
format = "csv"
encoding = "euc-kr"
key = ["declaration_no"]
[[connectors.files.columns]]
name = "declaration_no"
nullable = false
[[connectors.files.columns]]
name = "consignee"
[[connectors.files.columns]]
name = "declared_amt"
type = "decimal"
[[connectors.files.columns]]
name = "declare_ymd"
type = "date"
"#,
        inbox.display()
    );
    let node = Node::new();
    let connectors = Connectors::start(node.ctx.clone(), &[connector(&toml)]);
    let status = wait_status(&connectors, "customs-files", "3 rows, 1 quarantined", |s| {
        s.rows_total == 3 && s.quarantined_total == 1 && s.state == State::Idle
    })
    .await;
    assert_eq!(status.schedule, "* * * * * *");
    assert!(inbox.join("done/decl-001.csv").exists(), "moved to done/");
    assert!(!inbox.join("decl-001.csv").exists());
    let records = node.raw_records("customs-files").await;
    let keys: Vec<&str> = records.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(keys, ["D-0001", "D-0002", "D-0004"]);
    let (_, source, row) = &records[1];
    assert_eq!(
        source[3],
        ("position".into(), Avro::String("decl-001.csv:3".into()))
    );
    let field = |name: &str| row.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(
        field("consignee"),
        Some(Avro::Union(1, Box::new(Avro::String("이서연".into()))))
    );
    assert_eq!(
        field("declared_amt"),
        Some(Avro::Union(1, Box::new(Avro::String("95500".into()))))
    );
    let q = node
        .store
        .store
        .quarantined("connector", Some("customs-files"), None, 10)
        .expect("q");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].position, "decl-001.csv:4");
    assert!(q[0].reason.contains("declared_amt"), "{}", q[0].reason);
    // The next scheduled passes find nothing new: the file is processed exactly once.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(
        connectors
            .status("customs-files")
            .expect("status")
            .rows_total,
        3
    );
    assert_eq!(node.raw_records("customs-files").await.len(), 3);
    connectors.shutdown().await;
}
