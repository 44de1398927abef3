//! The engine on a small schema written here (the shipped schemas have their own tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Map, Value as J, json};

use crate::{Catalog, Outcome, Pseudonymiser, Source, load};

fn catalog() -> Catalog {
    let mut c = Catalog::default();
    c.add(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": false,
        "required": ["declaration_no", "declared_value_krw", "declared_on", "status", "consignee_id"],
        "properties": {
            "declaration_no": {"type": "string", "minLength": 1},
            "declared_value_krw": {"type": "integer", "minimum": 0},
            "declared_on": {"type": "string", "format": "date"},
            "status": {"enum": ["filed", "cleared", "unknown"]},
            "consignee_id": {"type": "string", "pattern": "^psn:[0-9a-f]{64}$"},
            "gross_weight_kg": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"},
            "city": {"type": "string"},
            "channel": {"type": "string"}
        },
        "x-ledgerbridge": {"event_type": "customs.declaration", "version": 1,
                           "key": ["declaration_no"], "channel": "customs", "subject": "consignee_id"}
    }))
    .unwrap();
    c.add(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["declaration_no"],
        "properties": {"declaration_no": {"type": "string"}},
        "x-ledgerbridge": {"event_type": "customs.cancellation", "version": 1,
                           "key": ["declaration_no"], "channel": "customs"}
    }))
    .unwrap();
    c
}

const SPEC: &str = r#"
[mapping]
name = "mall-customs-declarations"
version = 3
source = { connector = "sample-mall", table = "customs_declarations" }
event_type = "customs.declaration"

[fields]
declaration_no = "declaration_no"
declared_value_krw = { from = "declared_amt", as = "krw" }
declared_on = { from = "declare_ymd", as = "date", format = "%Y%m%d" }
status = { from = "clear_status_cd", lookup = "clear_status" }
consignee_id = { from = "customs_id", pseudonymise = "person" }
gross_weight_kg = { from = "gross_wt_kg", as = "decimal", scale = 2, optional = true }
city = { from = "addr", split = " ", part = 0, default = "unknown" }
channel = { value = "online" }

[lookups.clear_status]
"01" = "filed"
"02" = "cleared"

[[routes]]
when = { field = "rec_type", equals = "T" }
action = "skip"

[[routes]]
when = { field = "clear_status_cd", in = ["09"] }
event_type = "customs.cancellation"
[routes.fields]
declaration_no = "declaration_no"
"#;

fn row(pairs: &[(&str, J)]) -> Map<String, J> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn source() -> Source {
    Source {
        connector: "sample-mall".into(),
        table: "customs_declarations".into(),
        key: "17".into(),
        position: "rowid=17".into(),
        extracted_at: 1_795_883_722_964,
    }
}

fn good() -> Map<String, J> {
    row(&[
        ("declaration_no", json!("D-0017")),
        ("declared_amt", json!("1,250,000")),
        ("declare_ymd", json!("20261102")),
        ("clear_status_cd", json!("02")),
        ("customs_id", json!("P123456789012")),
        ("gross_wt_kg", json!("12.5")),
        ("addr", json!("서울특별시 중구 세종대로 110")),
        ("rec_type", json!("D")),
    ])
}

#[test]
fn a_row_becomes_a_valid_event_with_a_deterministic_id() {
    let m = load(SPEC, "m.toml", &catalog()).unwrap();
    let p = Pseudonymiser::new(b"consortium key");
    let Outcome::Event(e) = m.apply(&good(), &source(), &p) else {
        panic!("expected an event: {:?}", m.apply(&good(), &source(), &p))
    };
    let data = &e.json["data"];
    assert_eq!(data["declared_value_krw"], json!(1_250_000));
    assert_eq!(data["declared_on"], json!("2026-11-02"));
    assert_eq!(data["status"], json!("cleared"));
    assert_eq!(data["gross_weight_kg"], json!("12.50"));
    assert_eq!(data["city"], json!("서울특별시"));
    assert_eq!(data["channel"], json!("online"));
    let psn = data["consignee_id"].as_str().unwrap();
    assert!(psn.starts_with("psn:") && psn.len() == 68, "{psn}");
    assert!(
        !e.json.to_string().contains("P123456789012"),
        "no identifier in clear"
    );
    assert_eq!(e.json["subject"], json!(psn));
    assert_eq!(
        e.json["mapping"],
        json!({"name": "mall-customs-declarations", "version": 3})
    );
    assert_eq!(e.json["source"]["position"], json!("rowid=17"));
    assert_eq!(e.channel, "customs");
    assert!(e.event_id.starts_with("customs.declaration:"));
    // The same business key gives the same id and pseudonym; another key, another id.
    let Outcome::Event(again) = m.apply(&good(), &source(), &p) else {
        panic!()
    };
    assert_eq!(again.event_id, e.event_id);
    let mut other = good();
    other.insert("declaration_no".into(), json!("D-0018"));
    let Outcome::Event(o) = m.apply(&other, &source(), &p) else {
        panic!()
    };
    assert_ne!(o.event_id, e.event_id);
    assert_eq!(o.json["data"]["consignee_id"], json!(psn));
    // The namespace, not the field, decides the pseudonym: the same person elsewhere matches.
    assert_eq!(psn, p.pseudonym("person", "P123456789012"));
    // Another key, another pseudonym.
    let Outcome::Event(k) = m.apply(&good(), &source(), &Pseudonymiser::new(b"other")) else {
        panic!()
    };
    assert_ne!(k.json["data"]["consignee_id"], json!(psn));
}

#[test]
fn routes_skip_or_choose_another_event_type() {
    let m = load(SPEC, "m.toml", &catalog()).unwrap();
    let p = Pseudonymiser::new(b"k");
    let mut trailer = good();
    trailer.insert("rec_type".into(), json!("T"));
    assert_eq!(m.apply(&trailer, &source(), &p), Outcome::Skipped);
    let mut cancelled = good();
    cancelled.insert("clear_status_cd".into(), json!("09"));
    let Outcome::Event(e) = m.apply(&cancelled, &source(), &p) else {
        panic!()
    };
    assert_eq!(e.event_type, "customs.cancellation");
    assert_eq!(e.json["data"], json!({"declaration_no": "D-0017"}));
}

#[test]
fn bad_values_fail_with_every_field_named() {
    let m = load(SPEC, "m.toml", &catalog()).unwrap();
    let p = Pseudonymiser::new(b"k");
    let mut bad = good();
    bad.insert("declared_amt".into(), json!("12,34,5"));
    bad.insert("declare_ymd".into(), json!("20261399"));
    bad.insert("clear_status_cd".into(), json!("07"));
    bad.remove("customs_id");
    bad.insert("gross_wt_kg".into(), J::Null);
    bad.insert("addr".into(), J::Null);
    let Outcome::Failed(errors) = m.apply(&bad, &source(), &p) else {
        panic!()
    };
    let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/data/declared_value_krw",
            "/data/declared_on",
            "/data/status",
            "/data/consignee_id"
        ],
        "{errors:#?}"
    );
    assert!(
        errors[0]
            .message
            .contains("`declared_amt` = \"12,34,5\": \"12,34,5\" is not an amount in won"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[2]
            .message
            .contains("\"07\" is not in the code table (codes: 01, 02)")
    );
    assert!(errors[3].message.contains("`customs_id` is missing"));
    // Converted fine, but the schema refuses it.
    let mut negative = good();
    negative.insert("declared_amt".into(), json!("-5"));
    let Outcome::Failed(errors) = m.apply(&negative, &source(), &p) else {
        panic!()
    };
    assert_eq!(errors[0].pointer, "/data/declared_value_krw");
    assert!(
        errors[0].message.contains("minimum"),
        "{}",
        errors[0].message
    );
}

#[test]
fn a_malformed_mapping_file_is_refused_with_every_error_and_its_line() {
    let text = r#"[mapping]
name = "Bad Name"
source = { connector = "x" }
event_type = "customs.declaration"

[fields]
declaration_no = "declaration_no"
declared_value_krw = { from = "amt", as = "money" }
declared_on = { from = "d", format = "%Y" }
status = { from = "s", lookup = "nope" }
consignee_id = { fromm = "c" }
"#;
    let err = load(text, "bad.toml", &catalog()).expect_err("refused");
    let found: Vec<String> = err.issues.iter().map(ToString::to_string).collect();
    let expect = [
        ("line 2", "mapping.name", "a-z, 0-9 and -"),
        ("line 3", "mapping.source.table", "missing"),
        ("line 1", "mapping.version", "missing"),
        (
            "line 8",
            "fields.declared_value_krw.as",
            "`money` is not a conversion",
        ),
        (
            "line 9",
            "fields.declared_on.format",
            "only for `as = \"date\"`",
        ),
        ("line 10", "fields.status.lookup", "no [lookups.nope] table"),
        ("line 11", "fields.consignee_id.fromm", "unknown key"),
        ("line 11", "fields.consignee_id", "needs `from`"),
    ];
    for (line, path, text) in expect {
        assert!(
            found
                .iter()
                .any(|f| f.contains(line) && f.contains(path) && f.contains(text)),
            "no `{line}: {path}: …{text}…` in:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn a_mapping_that_does_not_fit_its_schema_is_refused_at_load() {
    let text = r#"[mapping]
name = "m"
version = 1
source = { connector = "c", table = "t" }
event_type = "customs.declaration"

[fields]
declaration_no = "no"
declared_on = { from = "d", as = "date" }
status = "s"
consignee_id = { from = "c", optional = true }
weight = "w"
"#;
    let err = load(text, "fit.toml", &catalog()).expect_err("refused");
    let all = err.to_string();
    assert!(
        all.contains("line 12")
            && all.contains("`weight` is not a field of customs.declaration v1"),
        "{all}"
    );
    assert!(
        all.contains("requires `declared_value_krw`, which is not mapped"),
        "{all}"
    );
    assert!(
        all.contains("`consignee_id` is required by customs.declaration: it cannot be optional"),
        "{all}"
    );
    let unknown = text.replace("customs.declaration", "customs.nothing");
    let err = load(&unknown, "fit.toml", &catalog())
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("line 5") && err.contains("no canonical schema `customs.nothing`"),
        "{err}"
    );
}

#[test]
fn source_columns_are_checked_against_the_discovered_table() {
    let m = load(SPEC, "m.toml", &catalog()).unwrap();
    let columns: Vec<String> = [
        "declaration_no",
        "declared_amt",
        "declare_ymd",
        "clear_status_cd",
        "customs_id",
        "gross_wt_kg",
        "rec_type",
    ]
    .map(str::to_owned)
    .to_vec();
    let issues = m.check_source(&columns);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].path.to_string(), "fields.city");
    assert!(issues[0].message.contains("has no column `addr`"));
}

#[test]
fn the_shipped_schemas_and_sample_mappings_load() {
    let catalog = Catalog::builtin().unwrap();
    assert_eq!(catalog.event_types().len(), crate::BUILTIN_SCHEMAS.len());
    for (file, text) in crate::SAMPLE_SPECS {
        if let Err(e) = load(text, file, &catalog) {
            panic!("{e}");
        }
    }
}
