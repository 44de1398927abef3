//! Tests of the batch-file source, on real files in temporary directories.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::{Value as J, json};

use super::*;
use crate::{Batch, Sink, SinkError, Source, Value};

/// Stores every batch it takes, like the runtime; fails once it has taken `fail_after`.
#[derive(Default)]
struct Collect {
    batches: Vec<Batch>,
    fail_after: Option<usize>,
}

impl Collect {
    fn failing_after(n: usize) -> Self {
        Self {
            batches: Vec::new(),
            fail_after: Some(n),
        }
    }

    fn rows(&self) -> Vec<&SourceRow> {
        self.batches.iter().flat_map(|b| &b.rows).collect()
    }

    fn rejects(&self) -> Vec<&Reject> {
        self.batches.iter().flat_map(|b| &b.rejects).collect()
    }

    /// The offset the runtime would have stored last.
    fn offset(&self) -> Option<J> {
        self.batches.last().map(|b| b.offset.clone())
    }

    /// `file:line` of every row and reject.
    fn positions(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .rows()
            .iter()
            .map(|r| r.position.clone())
            .chain(self.rejects().iter().map(|r| r.position.clone()))
            .collect();
        p.sort();
        p
    }
}

#[async_trait]
impl Sink for Collect {
    async fn emit(&mut self, batch: Batch) -> Result<(), SinkError> {
        if self.fail_after.is_some_and(|n| self.batches.len() >= n) {
            return Err(SinkError::Failed("simulated crash".into()));
        }
        self.batches.push(batch);
        Ok(())
    }
}

fn config(dir: &Path, files: J) -> ConnectorConfig {
    let mut files = files;
    files["dir"] = json!(dir.to_str().unwrap());
    serde_json::from_value(json!({"name": "manifests", "type": "files", "files": files})).unwrap()
}

fn source(dir: &Path, files: J) -> FilesSource {
    let mut s = FilesSource::new(&config(dir, files)).unwrap();
    s.settle = Duration::ZERO;
    s
}

fn config_error(dir: &Path, files: J) -> String {
    match FilesSource::new(&config(dir, files)) {
        Err(SourceError::Config(m)) => m,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

async fn pass(src: &mut FilesSource, offset: Option<J>, batch: usize, sink: &mut Collect) {
    let stream = src.streams().remove(0);
    src.pass(&stream, offset, batch, sink).await.unwrap();
}

fn euc_kr(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::EUC_KR.encode(text);
    assert!(!unmappable, "{text} is not in windows-949");
    bytes.into_owned()
}

/// A fixed-width field: `text` in EUC-KR, padded with spaces to `width` bytes.
fn field(text: &str, width: usize) -> Vec<u8> {
    let mut b = euc_kr(text);
    assert!(b.len() <= width, "{text} does not fit {width} bytes");
    b.resize(width, b' ');
    b
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

fn manifest_layout(encoding: &str) -> J {
    json!({
        "format": "fixed_width",
        "encoding": encoding,
        "columns": [
            {"name": "waybill", "start": 0, "width": 6, "type": "long", "nullable": false},
            {"name": "consignee", "start": 6, "width": 10},
            {"name": "value", "start": 16, "width": 12, "type": "decimal"},
            {"name": "shipped", "start": 28, "width": 8, "type": "date"}
        ],
        "key": ["waybill"]
    })
}

fn manifest_line(waybill: &str, name: &str, value: &str, date: &str) -> Vec<u8> {
    let mut line = field(waybill, 6);
    line.extend(field(name, 10));
    line.extend(field(value, 12));
    line.extend(field(date, 8));
    line
}

fn days(y: i32, m: u32, d: u32) -> i32 {
    let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
    i32::try_from(date.signed_duration_since(NaiveDate::default()).num_days()).unwrap()
}

#[tokio::test]
async fn csv_with_header_quotes_and_multi_line_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "id,name,memo,amount,day,paid\r\n\
                1,\"Kim, Minsu\",\"said \"\"hi\"\"\",\"1,234,500\",20240131,Y\r\n\
                2,Lee,\"first line\r\nsecond line\",-12.50,2024-02-29,false\r\n\
                \r\n\
                3,Park,,0,19700101,1\r\n";
    fs::write(tmp.path().join("claims.csv"), text).unwrap();
    let mut src = source(
        tmp.path(),
        json!({"format": "csv", "columns": [
            {"name": "id", "type": "long"},
            {"name": "name"},
            {"name": "memo"},
            {"name": "amount", "type": "decimal"},
            {"name": "day", "type": "date"},
            {"name": "paid", "type": "boolean"}
        ], "key": ["id"]}),
    );
    let mut sink = Collect::default();
    pass(&mut src, None, 100, &mut sink).await;

    assert!(sink.rejects().is_empty(), "{:?}", sink.rejects());
    let rows = sink.rows();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0].values,
        vec![
            Value::Long(1),
            Value::String("Kim, Minsu".into()),
            Value::String("said \"hi\"".into()),
            Value::String("1234500".into()),
            Value::Date(days(2024, 1, 31)),
            Value::Boolean(true),
            Value::String("claims.csv".into()),
            Value::Long(2),
        ]
    );
    assert_eq!(
        rows[1].values[2],
        Value::String("first line\nsecond line".into())
    );
    assert_eq!(rows[1].values[3], Value::String("-12.50".into()));
    assert_eq!(rows[1].values[4], Value::Date(days(2024, 2, 29)));
    assert_eq!(rows[1].position, "claims.csv:3");
    // The multi-line record took lines 3 and 4; line 5 is blank.
    assert_eq!(rows[2].position, "claims.csv:6");
    assert_eq!(rows[2].values[2], Value::Null);
    assert_eq!(rows[2].values[4], Value::Date(0));

    let schema = &sink.batches[0].schema;
    assert_eq!(schema.stream, tmp.path().to_str().unwrap());
    let cols: Vec<(&str, ColumnType)> = schema
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.kind))
        .collect();
    assert_eq!(
        cols,
        vec![
            ("id", ColumnType::Long),
            ("name", ColumnType::String),
            ("memo", ColumnType::String),
            ("amount", ColumnType::Decimal),
            ("day", ColumnType::Date),
            ("paid", ColumnType::Boolean),
            ("_file", ColumnType::String),
            ("_line", ColumnType::Long),
        ]
    );
    assert_eq!(schema.key, vec![0]);

    // The last data batch says the file is complete; then it is moved and the offset names no file.
    let n = sink.batches.len();
    assert_eq!(sink.batches[n - 2].offset["complete"], json!(true));
    assert_eq!(sink.batches[n - 2].offset["line"], json!(6));
    assert_eq!(sink.offset(), Some(json!({"file": null})));
    assert_eq!(names(tmp.path()), vec!["done", "failed"]);
    assert_eq!(names(&tmp.path().join("done")), vec!["claims.csv"]);

    // Nothing more on the next pass.
    let mut again = Collect::default();
    pass(&mut src, sink.offset(), 100, &mut again).await;
    assert!(again.batches.is_empty());
}

#[tokio::test]
async fn csv_without_declared_columns_takes_the_header_as_string_columns() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("a.csv"),
        "\u{feff}주문번호;고객\n1;\"홍길동\"\n2;김\n",
    )
    .unwrap();
    let mut src = source(tmp.path(), json!({"format": "csv", "delimiter": ";"}));
    let mut sink = Collect::default();
    pass(&mut src, None, 10, &mut sink).await;
    let schema = &sink.batches[0].schema;
    let cols: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, vec!["주문번호", "고객", "_file", "_line"]);
    assert!(
        schema
            .columns
            .iter()
            .take(2)
            .all(|c| c.kind == ColumnType::String)
    );
    assert_eq!(schema.key, vec![2, 3]);
    let rows = sink.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].values[0], Value::String("1".into()));
    assert_eq!(rows[0].values[1], Value::String("홍길동".into()));

    let info = {
        fs::write(tmp.path().join("b.csv"), "x,y\n").unwrap();
        let mut src = source(tmp.path(), json!({"format": "csv"}));
        src.discover().await.unwrap()
    };
    assert_eq!(info.len(), 1);
    let cols: Vec<&str> = info[0].columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, vec!["x", "y", "_file", "_line"]);
    assert_eq!(info[0].primary_key, vec!["_file", "_line"]);
}

#[tokio::test]
async fn bad_csv_records_are_quarantined_and_the_rest_flows() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = b"id,day,ok\n1,20240101,Y\n2,20241301,N\n3,20240102\n".to_vec();
    // Line 5: an invalid EUC-KR sequence inside a quoted multi-line field (lines 5-6).
    bytes.extend(b"4,20240103,\"bad \xff\xfe\n still one record\"\n");
    bytes.extend(b"5,,maybe\n6,20240104,0\n");
    fs::write(tmp.path().join("x.csv"), bytes).unwrap();
    let mut src = source(
        tmp.path(),
        json!({"format": "csv", "encoding": "euc-kr", "columns": [
            {"name": "id", "type": "long"},
            {"name": "day", "type": "date", "nullable": false},
            {"name": "ok"}
        ]}),
    );
    let mut sink = Collect::default();
    pass(&mut src, None, 2, &mut sink).await;
    let rejects = sink.rejects();
    let by_pos: Vec<(&str, &str)> = rejects
        .iter()
        .map(|r| (r.position.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(by_pos.len(), 4, "{by_pos:#?}");
    assert_eq!(by_pos[0].0, "x.csv:3");
    assert!(
        by_pos[0]
            .1
            .contains("line 3, column `day`: `20241301` is not a date"),
        "{}",
        by_pos[0].1
    );
    assert_eq!(by_pos[1].0, "x.csv:4");
    assert!(
        by_pos[1]
            .1
            .contains("line 4: 2 fields, expected 3 (id, day, ok)"),
        "{}",
        by_pos[1].1
    );
    assert_eq!(by_pos[2].0, "x.csv:5");
    assert!(
        by_pos[2]
            .1
            .contains("lines 5-6: line 5: bytes not valid EUC-KR at byte 16 (0xFF 0xFE)"),
        "{}",
        by_pos[2].1
    );
    assert!(
        rejects[2]
            .payload
            .starts_with(&hex(b"4,20240103,\"bad \xff\xfe\n"))
    );
    assert_eq!(by_pos[3].0, "x.csv:7");
    assert!(
        by_pos[3]
            .1
            .contains("column `day`: empty, but the column is not nullable"),
        "{}",
        by_pos[3].1
    );
    assert_eq!(rejects[3].payload, "5,,maybe");
    let ids: Vec<&Value> = sink.rows().iter().map(|r| &r.values[0]).collect();
    assert_eq!(ids, vec![&Value::Long(1), &Value::Long(6)]);
    // Batches never exceed the batch size, rows and rejects together.
    assert!(
        sink.batches
            .iter()
            .all(|b| b.rows.len() + b.rejects.len() <= 2)
    );
    assert_eq!(names(&tmp.path().join("done")), vec!["x.csv"]);
}

#[tokio::test]
async fn fixed_width_euc_kr_cut_by_bytes_with_bad_lines_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let mut file = Vec::new();
    let mut add = |line: Vec<u8>| {
        file.extend(line);
        file.extend(b"\r\n");
    };
    add(manifest_line("100001", "홍길동", "1,234,500", "20240131")); // 1
    add(manifest_line("100002", "김똠순", "99.5", "20240201")); // 2: 똠 is CP949-only
    add(manifest_line("100003", "이", "10", "20240231")); // 3: bad date
    add(manifest_line("100004", "박", "10", "2024")); // 4: ok so far…
    add(b"100005 short".to_vec()); // 5: too short
    let mut bad = manifest_line("100006", "최", "1", "20240101");
    bad[8] = 0xFF; // 6: undecodable
    add(bad);
    // 7: a two-byte syllable straddles the boundary between `consignee` and `value` (byte 16).
    let mut straddle = field("100007", 6);
    straddle.extend(b"123456789");
    straddle.extend(euc_kr("가"));
    straddle.extend(field("1", 11));
    straddle.extend(field("20240101", 8));
    add(straddle);
    add(manifest_line("100008", "정", "", "20240301")); // 8
    fs::write(tmp.path().join("manifest.dat"), &file).unwrap();

    let mut src = source(tmp.path(), manifest_layout("cp949"));
    let mut sink = Collect::default();
    pass(&mut src, None, 3, &mut sink).await;

    let rows = sink.rows();
    let rejects = sink.rejects();
    assert_eq!(
        rows.len() + rejects.len(),
        8,
        "every line is a row or a reject"
    );
    assert_eq!(
        rows[0].values,
        vec![
            Value::Long(100_001),
            Value::String("홍길동".into()),
            Value::String("1234500".into()),
            Value::Date(days(2024, 1, 31)),
            Value::String("manifest.dat".into()),
            Value::Long(1),
        ]
    );
    assert_eq!(rows[1].values[1], Value::String("김똠순".into()));
    assert_eq!(rows[1].values[2], Value::String("99.5".into()));
    let row_lines: Vec<&str> = rows.iter().map(|r| r.position.as_str()).collect();
    assert_eq!(
        row_lines,
        vec!["manifest.dat:1", "manifest.dat:2", "manifest.dat:8"]
    );
    assert_eq!(rows[2].values[2], Value::Null);

    let reasons: Vec<(&str, &str)> = rejects
        .iter()
        .map(|r| (r.position.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(reasons[0].0, "manifest.dat:3");
    assert!(
        reasons[0]
            .1
            .contains("line 3, column `shipped`: `20240231` is not a date"),
        "{}",
        reasons[0].1
    );
    assert_eq!(reasons[1].0, "manifest.dat:4");
    assert!(
        reasons[1]
            .1
            .contains("column `shipped`: `2024` is not a date"),
        "{}",
        reasons[1].1
    );
    assert_eq!(reasons[2].0, "manifest.dat:5");
    assert!(
        reasons[2].1.contains(
            "line 5: 12 bytes, shorter than the layout (column `shipped` ends at byte 36)"
        ),
        "{}",
        reasons[2].1
    );
    assert_eq!(rejects[2].payload, "100005 short");
    assert_eq!(reasons[3].0, "manifest.dat:6");
    assert!(
        reasons[3]
            .1
            .contains("line 6: bytes not valid cp949 (EUC-KR) at byte 8"),
        "{}",
        reasons[3].1
    );
    assert!(
        rejects[3].payload.starts_with("313030303036"),
        "hex payload: {}",
        rejects[3].payload
    );
    assert_eq!(reasons[4].0, "manifest.dat:7");
    assert!(reasons[4].1.contains("line 7, column `consignee`, `value`: the layout cuts a multi-byte cp949 (EUC-KR) character at byte 16"), "{}", reasons[4].1);
    assert!(rejects[4].payload.contains('가'));

    assert_eq!(names(&tmp.path().join("done")), vec!["manifest.dat"]);
    let schema = &sink.batches[0].schema;
    assert_eq!(schema.key, vec![0]);
    assert_eq!(schema.columns[3].source_type, "date bytes 28..36");
}

#[test]
fn encoding_labels() {
    for label in [
        "euc-kr",
        "EUC-KR",
        "cp949",
        "CP949",
        "ms949",
        "windows-949",
        "ks_c_5601-1987",
    ] {
        assert_eq!(encoding_for(label), Some(encoding_rs::EUC_KR), "{label}");
    }
    // One decoder for both: the CP949 extension (똠) and KS X 1001 (홍).
    assert_eq!(
        decode_strict(encoding_rs::EUC_KR, &euc_kr("똠홍")).unwrap(),
        "똠홍"
    );
    assert_eq!(euc_kr("똠"), vec![0x8C, 0x63]);
    assert_eq!(encoding_for("shift_jis"), Some(encoding_rs::SHIFT_JIS));
    assert_eq!(encoding_for("latin1"), Some(encoding_rs::WINDOWS_1252));
    assert_eq!(decode_strict(encoding_rs::EUC_KR, b"ab\xc8"), Err(2));
    assert_eq!(decode_strict(encoding_rs::UTF_8, b"ab\xc3"), Err(2));

    let tmp = tempfile::tempdir().unwrap();
    let e = config_error(tmp.path(), json!({"format": "csv", "encoding": "klingon"}));
    assert!(
        e.contains("files.encoding: `klingon` is not a known encoding"),
        "{e}"
    );
    let e = config_error(tmp.path(), json!({"format": "csv", "encoding": "utf-16le"}));
    assert!(
        e.contains("files.encoding: `utf-16le` (UTF-16LE) is not ASCII-compatible"),
        "{e}"
    );
}

#[test]
fn configuration_problems_are_all_named() {
    let tmp = tempfile::tempdir().unwrap();
    let e = config_error(
        tmp.path(),
        json!({"format": "fixed_width", "encoding": "nope", "delimiter": ";;", "columns": [
            {"name": "a", "start": 0},
            {"name": "_line", "start": 1, "width": 1}
        ], "key": ["b"]}),
    );
    for part in [
        "files.encoding",
        "files.delimiter",
        "files.columns[0]: fixed-width column `a` needs `start` and a non-zero `width`",
        "files.columns[1]: `_line` is reserved",
        "files.key: `b` is not one of the declared columns (a, _line)",
    ] {
        assert!(e.contains(part), "{part} missing from: {e}");
    }
    let e = config_error(tmp.path(), json!({"format": "csv", "header": false}));
    assert!(e.contains("needs its columns"), "{e}");

    // The directory and its subdirectories are created.
    let dir = tmp.path().join("in/manifests");
    let src = source(&dir, json!({"format": "csv"}));
    assert!(dir.join("done").is_dir() && dir.join("failed").is_dir());
    assert_eq!(src.streams(), vec![dir.to_str().unwrap().to_owned()]);
    // A directory that cannot be created is named.
    let blocker = tmp.path().join("file");
    fs::write(&blocker, "").unwrap();
    let e = config_error(&blocker.join("sub"), json!({"format": "csv"}));
    assert!(
        e.contains("files.dir: cannot create") && e.contains("file/sub"),
        "{e}"
    );
}

#[tokio::test]
async fn a_file_that_cannot_be_read_moves_to_failed_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let mut src = source(
        tmp.path(),
        json!({"format": "csv", "columns": [{"name": "id", "type": "long"}, {"name": "name"}]}),
    );
    fs::write(tmp.path().join("a.csv"), "id,nom\n1,x\n").unwrap();
    fs::write(tmp.path().join("b.csv"), "id,name\n2,y\n").unwrap();
    // The same name failed before: the new one gets a suffix.
    fs::write(tmp.path().join("failed/a.csv"), "old").unwrap();
    let mut sink = Collect::default();
    pass(&mut src, None, 10, &mut sink).await;

    let rejects = sink.rejects();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].position, "a.csv");
    assert!(
        rejects[0].reason.contains(
            "the header (line 1) names the columns id, nom but the configuration declares id, name"
        ),
        "{}",
        rejects[0].reason
    );
    assert_eq!(
        names(&tmp.path().join("failed")),
        vec!["a.1.csv", "a.1.csv.reason", "a.csv"]
    );
    let reason = fs::read_to_string(tmp.path().join("failed/a.1.csv.reason")).unwrap();
    assert!(reason.contains("names the columns id, nom"), "{reason}");
    assert_eq!(
        fs::read_to_string(tmp.path().join("failed/a.1.csv")).unwrap(),
        "id,nom\n1,x\n"
    );
    // The next file went on.
    assert_eq!(sink.rows().len(), 1);
    assert_eq!(names(&tmp.path().join("done")), vec!["b.csv"]);
    assert_eq!(sink.offset(), Some(json!({"file": null})));
}

#[tokio::test]
async fn a_header_that_does_not_decode_fails_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("a.csv"), b"id,\xff\n1,2\n").unwrap();
    let mut src = source(tmp.path(), json!({"format": "csv", "encoding": "euc-kr"}));
    let mut sink = Collect::default();
    pass(&mut src, None, 10, &mut sink).await;
    assert_eq!(sink.rejects().len(), 1);
    assert!(
        sink.rejects()[0]
            .reason
            .contains("the header (line 1) does not decode")
    );
    assert!(sink.rows().is_empty());
    assert!(tmp.path().join("failed/a.csv.reason").is_file());
}

#[tokio::test]
async fn an_unclosed_quote_fails_the_file_without_reading_it_all_into_one_record() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from("a,b\n1,2\n3,\"never closed\n");
    let filler = "x".repeat(1000);
    for _ in 0..(MAX_RECORD_BYTES / 1000 + 10) {
        text.push_str(&filler);
        text.push('\n');
    }
    fs::write(tmp.path().join("a.csv"), text).unwrap();
    let mut src = source(tmp.path(), json!({"format": "csv"}));
    let mut sink = Collect::default();
    pass(&mut src, None, 10, &mut sink).await;
    assert_eq!(sink.rows().len(), 1);
    let reason = &sink.rejects()[0].reason;
    assert!(
        reason.contains("the record starting at line 3")
            && reason.contains("records up to line 2 were published"),
        "{reason}"
    );
    assert!(tmp.path().join("failed/a.csv").is_file());
}

fn numbered_lines(n: usize) -> Vec<u8> {
    let mut file = Vec::new();
    for i in 1..=n {
        // Every third line has a bad date: rejects count too.
        let date = if i % 3 == 0 { "20241399" } else { "20240101" };
        file.extend(manifest_line(&format!("{i:06}"), "홍길동", "1", date));
        file.push(b'\n');
    }
    file
}

#[tokio::test]
async fn a_crash_in_the_middle_of_a_file_resumes_after_the_last_batch_taken() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("m.dat"), numbered_lines(10)).unwrap();
    let mut src = source(tmp.path(), manifest_layout("euc-kr"));

    // The runtime takes two batches of 3, then dies.
    let mut first = Collect::failing_after(2);
    let stream = src.streams().remove(0);
    let err = src.pass(&stream, None, 3, &mut first).await.unwrap_err();
    assert!(
        matches!(err, SourceError::Sink(SinkError::Failed(_))),
        "{err}"
    );
    assert_eq!(first.offset().unwrap()["line"], json!(6));
    assert_eq!(first.offset().unwrap()["file"], json!("m.dat"));
    assert!(
        tmp.path().join("m.dat").is_file(),
        "not moved before its end"
    );

    // A new process with the stored offset.
    let mut src = source(tmp.path(), manifest_layout("euc-kr"));
    let mut second = Collect::default();
    pass(&mut src, first.offset(), 3, &mut second).await;

    let mut all = first.positions();
    all.extend(second.positions());
    all.sort();
    let expected: Vec<String> = {
        let mut e: Vec<String> = (1..=10).map(|i| format!("m.dat:{i}")).collect();
        e.sort();
        e
    };
    assert_eq!(all, expected, "every line exactly once");
    assert_eq!(first.rows().len() + second.rows().len(), 7);
    assert_eq!(first.rejects().len() + second.rejects().len(), 3);
    assert_eq!(names(&tmp.path().join("done")), vec!["m.dat"]);
}

#[tokio::test]
async fn a_crash_between_the_last_batch_and_the_move_only_moves_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("m.dat"), numbered_lines(4)).unwrap();
    let mut src = source(tmp.path(), manifest_layout("euc-kr"));
    // Batches of 10: the whole file is one batch, marked complete; the crash is on the next
    // emit (after the move)… so build the stored offset the way that batch left it.
    let mut probe = Collect::failing_after(1);
    let stream = src.streams().remove(0);
    let _ = src.pass(&stream, None, 10, &mut probe).await;
    let complete = probe.offset().unwrap();
    assert_eq!(complete["complete"], json!(true));
    assert_eq!(complete["line"], json!(4));
    // Undo the move, as if the process had died before it.
    fs::rename(tmp.path().join("done/m.dat"), tmp.path().join("m.dat")).unwrap();
    let mut src = source(tmp.path(), manifest_layout("euc-kr"));
    let mut sink = Collect::default();
    pass(&mut src, Some(complete), 10, &mut sink).await;
    assert!(
        sink.rows().is_empty() && sink.rejects().is_empty(),
        "nothing emitted twice"
    );
    assert_eq!(names(&tmp.path().join("done")), vec!["m.dat"]);
    assert_eq!(sink.offset(), Some(json!({"file": null})));
}

#[tokio::test]
async fn a_crash_before_a_failed_file_is_moved_only_moves_it() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("a.csv"), "wrong\n1\n").unwrap();
    let cfg = json!({"format": "csv", "columns": [{"name": "id"}]});
    let mut src = source(tmp.path(), cfg.clone());
    let mut probe = Collect::failing_after(1);
    let stream = src.streams().remove(0);
    let _ = src.pass(&stream, None, 10, &mut probe).await;
    let offset = probe.offset().unwrap();
    assert!(offset["failed"].as_str().unwrap().contains("header"));
    // The move happened before the crash; undo it as if it had not.
    fs::rename(tmp.path().join("failed/a.csv"), tmp.path().join("a.csv")).unwrap();
    fs::remove_file(tmp.path().join("failed/a.csv.reason")).unwrap();
    let mut src = source(tmp.path(), cfg);
    let mut sink = Collect::default();
    pass(&mut src, Some(offset), 10, &mut sink).await;
    assert!(sink.rejects().is_empty(), "quarantined once");
    assert_eq!(
        names(&tmp.path().join("failed")),
        vec!["a.csv", "a.csv.reason"]
    );
}

#[tokio::test]
async fn a_file_changed_since_its_offset_is_read_again_from_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("m.dat");
    fs::write(&path, numbered_lines(6)).unwrap();
    let mut src = source(tmp.path(), manifest_layout("euc-kr"));
    let mut first = Collect::failing_after(1);
    let stream = src.streams().remove(0);
    let _ = src.pass(&stream, None, 2, &mut first).await;
    assert_eq!(first.offset().unwrap()["line"], json!(2));

    // The file is rewritten with one more line.
    fs::write(&path, numbered_lines(7)).unwrap();
    let f = File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(30))
        .unwrap();
    let mut src = source(tmp.path(), manifest_layout("euc-kr"));
    let mut second = Collect::default();
    pass(&mut src, first.offset(), 2, &mut second).await;
    let expected: Vec<String> = {
        let mut e: Vec<String> = (1..=7).map(|i| format!("m.dat:{i}")).collect();
        e.sort();
        e
    };
    assert_eq!(second.positions(), expected);
}

#[tokio::test]
async fn rewinding_to_the_beginning_restarts_the_current_file_only() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("a.dat"), numbered_lines(2)).unwrap();
    fs::write(tmp.path().join("b.dat"), numbered_lines(4)).unwrap();
    let mut src = source(tmp.path(), manifest_layout("euc-kr"));
    let stream = src.streams().remove(0);
    let mut first = Collect::failing_after(3);
    let _ = src.pass(&stream, None, 2, &mut first).await;
    // a.dat: one complete batch and the offset naming no file; b.dat: lines 1-2.
    assert_eq!(first.offset().unwrap()["file"], json!("b.dat"));
    assert_eq!(
        src.rewind_offset(&stream, &RewindTo::Beginning).unwrap(),
        None
    );
    let mut second = Collect::default();
    pass(&mut src, None, 2, &mut second).await;
    assert_eq!(
        second.rows().len() + second.rejects().len(),
        4,
        "b.dat again, a.dat stays done"
    );
    assert_eq!(names(&tmp.path().join("done")), vec!["a.dat", "b.dat"]);

    let e = src
        .rewind_offset(
            &stream,
            &RewindTo::After {
                cursor: vec![json!(1)],
            },
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("move the files to read again from"),
        "{e}"
    );
    let e = src
        .rewind_offset(
            &stream,
            &RewindTo::Offset {
                offset: json!({"file": "../etc/passwd", "line": 1}),
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("not a file name"), "{e}");
    let e = src
        .rewind_offset(
            &stream,
            &RewindTo::Offset {
                offset: json!({"table": 1}),
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("not a batch-file offset"), "{e}");
    let ok = json!({"file": "b.dat", "line": 2, "size": 1, "mtime": 2});
    assert_eq!(
        src.rewind_offset(&stream, &RewindTo::Offset { offset: ok.clone() })
            .unwrap(),
        Some(ok)
    );
    assert!(src.rewind_offset("other", &RewindTo::Beginning).is_err());
}

#[tokio::test]
async fn only_settled_files_matching_the_pattern_are_taken() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "a.csv",
        "b.txt",
        "c.csv.part",
        "d.csv.tmp",
        ".e.csv",
        "f.csv~",
    ] {
        fs::write(tmp.path().join(name), "x\n1\n").unwrap();
    }
    fs::create_dir(tmp.path().join("sub.csv")).unwrap();
    let mut src = source(tmp.path(), json!({"format": "csv", "pattern": "*.csv"}));
    src.settle = Duration::from_secs(3600);
    let mut sink = Collect::default();
    pass(&mut src, None, 10, &mut sink).await;
    assert!(sink.batches.is_empty(), "a file just written is not taken");

    let old = SystemTime::now() - Duration::from_secs(7200);
    for name in names(tmp.path()) {
        let path = tmp.path().join(&name);
        if path.is_file() {
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    }
    pass(&mut src, None, 10, &mut sink).await;
    assert_eq!(sink.rows().len(), 1);
    assert_eq!(sink.rows()[0].position, "a.csv:2");
    assert_eq!(names(&tmp.path().join("done")), vec!["a.csv"]);
    assert_eq!(
        names(tmp.path()),
        vec![
            ".e.csv",
            "b.txt",
            "c.csv.part",
            "d.csv.tmp",
            "done",
            "f.csv~",
            "failed",
            "sub.csv"
        ]
    );
}

#[tokio::test]
async fn a_file_seen_unchanged_for_the_settle_time_is_taken_even_with_a_future_mtime() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a.csv");
    fs::write(&path, "x\n1\n").unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    let mut src = source(tmp.path(), json!({"format": "csv"}));
    src.settle = Duration::from_millis(200);
    let mut sink = Collect::default();
    pass(&mut src, None, 10, &mut sink).await;
    assert!(sink.batches.is_empty());
    tokio::time::sleep(Duration::from_millis(300)).await;
    pass(&mut src, None, 10, &mut sink).await;
    assert_eq!(sink.rows().len(), 1);
}

#[tokio::test]
async fn same_names_in_done_get_a_suffix_and_files_go_in_name_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut src = source(tmp.path(), json!({"format": "csv"}));
    fs::write(tmp.path().join("done/day.csv"), "old").unwrap();
    fs::write(tmp.path().join("done/day.1.csv"), "old").unwrap();
    fs::write(tmp.path().join("day.csv"), "x\n3\n").unwrap();
    fs::write(tmp.path().join("a.csv"), "x\n1\n").unwrap();
    let mut sink = Collect::default();
    pass(&mut src, None, 10, &mut sink).await;
    let positions: Vec<&str> = sink.rows().iter().map(|r| r.position.as_str()).collect();
    assert_eq!(positions, vec!["a.csv:2", "day.csv:2"]);
    assert_eq!(
        names(&tmp.path().join("done")),
        vec!["a.csv", "day.1.csv", "day.2.csv", "day.csv"]
    );
    assert_eq!(
        fs::read_to_string(tmp.path().join("done/day.2.csv")).unwrap(),
        "x\n3\n"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_file_name_that_is_not_utf8_fails_the_file() {
    use std::os::unix::ffi::OsStrExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"\xc8\xff.csv");
    if fs::write(tmp.path().join(name), "x\n1\n").is_err() {
        return; // the file system refuses such names
    }
    let mut src = source(tmp.path(), json!({"format": "csv"}));
    let mut sink = Collect::default();
    pass(&mut src, None, 10, &mut sink).await;
    assert_eq!(
        sink.rejects().len(),
        1,
        "{:?} {:?}",
        sink.batches,
        names(tmp.path())
    );
    assert!(sink.rejects()[0].reason.contains("not valid UTF-8"));
    assert!(tmp.path().join("failed").join(name).is_file());
    assert_eq!(sink.offset(), Some(json!({"file": null})));
}

#[tokio::test]
async fn check_and_discover_describe_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut src = source(tmp.path(), manifest_layout("euc-kr"));
    fs::write(tmp.path().join("a.dat"), "").unwrap();
    fs::write(tmp.path().join("b.dat.part"), "").unwrap();
    fs::write(tmp.path().join("done/c.dat"), "").unwrap();
    fs::write(tmp.path().join("failed/d.dat"), "").unwrap();
    fs::write(tmp.path().join("failed/d.dat.reason"), "").unwrap();
    let text = src.check().await.unwrap();
    assert!(
        text.contains(
            ": 1 files waiting, 1 done, 1 failed (fixed-width files matching `*`, EUC-KR)"
        ),
        "{text}"
    );
    let info = src.discover().await.unwrap();
    assert_eq!(info[0].name, tmp.path().to_str().unwrap());
    assert_eq!(info[0].primary_key, vec!["waybill"]);
    let cols: Vec<&str> = info[0].columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        cols,
        vec!["waybill", "consignee", "value", "shipped", "_file", "_line"]
    );

    fs::remove_dir_all(tmp.path()).unwrap();
    let e = src.check().await.unwrap_err();
    assert!(e.to_string().contains(tmp.path().to_str().unwrap()), "{e}");
}

#[tokio::test]
async fn an_empty_file_is_done_with_nothing_to_publish() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("a.csv"), "").unwrap();
    fs::write(tmp.path().join("b.csv"), "x,y\n\n").unwrap();
    let mut src = source(tmp.path(), json!({"format": "csv"}));
    let mut sink = Collect::default();
    pass(&mut src, None, 10, &mut sink).await;
    assert!(sink.rows().is_empty() && sink.rejects().is_empty());
    assert_eq!(names(&tmp.path().join("done")), vec!["a.csv", "b.csv"]);
}

#[test]
fn numbers_keep_their_exact_text() {
    for (text, expected) in [
        ("1,234,500", Some("1234500")),
        ("-1,234.50", Some("-1234.50")),
        ("+12", Some("12")),
        ("007", Some("007")),
        (".5", Some("0.5")),
        ("5.", Some("5")),
        ("12,34", None),
        ("1234,567", None),
        (",123", None),
        ("1.2.3", None),
        ("1e5", None),
        ("-", None),
        ("", None),
        ("１２", None),
    ] {
        assert_eq!(number(text).as_deref(), expected, "{text}");
    }
    let long = |t: &str| convert(Some(&col(FileColumnType::Long)), t);
    assert_eq!(long("-1,000"), Ok(Value::Long(-1000)));
    assert!(long("1.5").unwrap_err().contains("not an integer"));
    assert!(
        long("99999999999999999999")
            .unwrap_err()
            .contains("out of the range")
    );
    let double = |t: &str| convert(Some(&col(FileColumnType::Double)), t);
    assert_eq!(double("1,234.5"), Ok(Value::Double(1234.5)));
    assert_eq!(double("1e3"), Ok(Value::Double(1000.0)));
    assert!(double("NaN").is_err() && double("inf").is_err());
    let boolean = |t: &str| convert(Some(&col(FileColumnType::Boolean)), t);
    assert_eq!(boolean("n"), Ok(Value::Boolean(false)));
    assert_eq!(boolean("TRUE"), Ok(Value::Boolean(true)));
    assert!(boolean("maybe").is_err());
    let ts = |t: &str| convert(Some(&col(FileColumnType::Timestamp)), t);
    assert_eq!(ts("1970-01-01 00:00:01"), Ok(Value::Timestamp(1_000_000)));
    assert_eq!(ts("1970-01-01 00:00:01.5"), Ok(Value::Timestamp(1_500_000)));
    assert_eq!(ts("1970-01-01T09:00:00+09:00"), Ok(Value::Timestamp(0)));
    assert!(ts("1970-01-01").is_err());
    let date = |t: &str| convert(Some(&col(FileColumnType::Date)), t);
    assert_eq!(date("19691231"), Ok(Value::Date(-1)));
    assert_eq!(date("2024-02-29"), Ok(Value::Date(days(2024, 2, 29))));
    for bad in [
        "2024-1-5",
        "2024-1-05",
        "00000000",
        "2023-02-29",
        "2024/01/05",
        "20240105 ",
    ] {
        assert!(date(bad).is_err(), "{bad}");
    }
}

fn col(kind: FileColumnType) -> FileColumn {
    FileColumn {
        name: "c".into(),
        start: None,
        width: None,
        kind,
        nullable: true,
    }
}

#[test]
fn wildcards() {
    for (p, n, m) in [
        ("*", "a.csv", true),
        ("*.csv", "a.csv", true),
        ("*.csv", "a.csv.gz", false),
        ("manifest_????????.dat", "manifest_20240131.dat", true),
        ("manifest_????????.dat", "manifest_2024013.dat", false),
        ("*_*.txt", "a_b_c.txt", true),
        ("송장*.dat", "송장_1.dat", true),
        ("a*b*c", "abxbc", true),
        ("a*b*c", "abxbd", false),
        ("", "", true),
    ] {
        assert_eq!(wildcard(p, n), m, "{p} {n}");
    }
}

/// A 228-byte courier-manifest record (the layout of `examples/README.md`, 1-based there):
/// `fields` are `(0-based start, text)`, the rest is spaces.
fn manifest_record(fields: &[(usize, &str)]) -> Vec<u8> {
    let mut line = vec![b' '; 228];
    for (start, text) in fields {
        let bytes = euc_kr(text);
        line[*start..*start + bytes.len()].copy_from_slice(&bytes);
    }
    line.extend(b"\r\n");
    line
}

#[tokio::test]
async fn header_and_trailer_records_of_another_layout_flow_as_rows_told_apart_by_type() {
    let tmp = tempfile::tempdir().unwrap();
    let mut file = manifest_record(&[(0, "H"), (1, "000001"), (7, "20240131"), (15, "HJCL")]);
    file.extend(manifest_record(&[
        (0, "D"),
        (1, "HB0000000001"),
        (13, "ORD-1"),
        (33, "20240131"),
        (41, "홍길동"),
        (74, "서울특별시 중구 세종대로 110"),
        (194, "001"),
        (204, "00000125000"),
    ]));
    file.extend(manifest_record(&[
        (0, "T"),
        (1, "00000001"),
        (9, "000000000125000"),
    ]));
    fs::write(tmp.path().join("MF000001.txt"), file).unwrap();
    let mut src = source(
        tmp.path(),
        json!({
            "format": "fixed_width",
            "encoding": "euc-kr",
            "pattern": "MF??????.txt",
            "columns": [
                {"name": "rec_type", "start": 0, "width": 1},
                {"name": "hbl_no", "start": 1, "width": 12},
                {"name": "arrival_ymd", "start": 33, "width": 8, "type": "date"},
                {"name": "consignee_nm", "start": 41, "width": 20},
                {"name": "consignee_addr", "start": 74, "width": 80},
                {"name": "pkg_cnt", "start": 194, "width": 3, "type": "long"},
                {"name": "value_krw", "start": 204, "width": 11, "type": "long"}
            ]
        }),
    );
    let mut sink = Collect::default();
    pass(&mut src, None, 100, &mut sink).await;
    assert!(sink.rejects().is_empty(), "{:?}", sink.rejects());
    let rows = sink.rows();
    let types: Vec<&Value> = rows.iter().map(|r| &r.values[0]).collect();
    assert_eq!(
        types,
        vec![
            &Value::String("H".into()),
            &Value::String("D".into()),
            &Value::String("T".into())
        ]
    );
    assert_eq!(
        rows[1].values[..7],
        [
            Value::String("D".into()),
            Value::String("HB0000000001".into()),
            Value::Date(days(2024, 1, 31)),
            Value::String("홍길동".into()),
            Value::String("서울특별시 중구 세종대로 110".into()),
            Value::Long(1),
            Value::Long(125_000),
        ]
    );
    assert_eq!(rows[1].position, "MF000001.txt:2");
    // The trailer's fields at detail positions are blank: nulls, not errors.
    assert_eq!(rows[2].values[2], Value::Null);
}

#[tokio::test]
async fn a_csv_file_resumes_after_a_multi_line_record() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(
        tmp.path().join("a.csv"),
        "id,memo\n1,\"two\nlines\"\n2,x\n3,\"three\n\nlines\"\n4,y\n5,z\n",
    )
    .unwrap();
    let cfg =
        json!({"format": "csv", "columns": [{"name": "id", "type": "long"}, {"name": "memo"}]});
    let mut src = source(tmp.path(), cfg.clone());
    let stream = src.streams().remove(0);
    let mut first = Collect::failing_after(2);
    let _ = src.pass(&stream, None, 1, &mut first).await;
    // Records 1 (lines 2-3) and 2 (line 4) were taken.
    assert_eq!(first.offset().unwrap()["line"], json!(4));
    let mut src = source(tmp.path(), cfg);
    let mut second = Collect::default();
    pass(&mut src, first.offset(), 1, &mut second).await;
    let ids: Vec<&Value> = second.rows().iter().map(|r| &r.values[0]).collect();
    assert_eq!(ids, vec![&Value::Long(3), &Value::Long(4), &Value::Long(5)]);
    let positions: Vec<&str> = second.rows().iter().map(|r| r.position.as_str()).collect();
    assert_eq!(positions, vec!["a.csv:5", "a.csv:8", "a.csv:9"]);
    assert_eq!(
        second.rows()[0].values[1],
        Value::String("three\n\nlines".into())
    );
}
