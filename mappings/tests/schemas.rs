//! The canonical schemas (`schemas/`) and the sample mapping files (`specs/`), checked against
//! each other and against the sample legacy systems they read:
//!
//! - every schema is a JSON Schema 2020-12 document (meta-schema valid, compiles) describing an
//!   object with `additionalProperties: false`, a description on every property, and an
//!   `x-ledgerbridge` extension consistent with its file name;
//! - one hand-written event per type is valid, and breaking it (a required field missing, an
//!   unknown field, a wrong enum value, a malformed pseudonym, date or amount) makes it invalid;
//! - every mapping file maps only fields of its event type, every required field (unless
//!   `optional`), with conversions that produce the schema's types, and reads only tables and
//!   columns that exist in the sample SQLite schemas (or the manifest layout).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

const EVENT_TYPES: [&str; 12] = [
    "bank.account",
    "bank.remittance",
    "bank.transfer",
    "customs.declaration",
    "customs.order",
    "customs.shipment",
    "healthcare.claim",
    "healthcare.policy",
    "land.mortgage",
    "land.parcel",
    "land.title",
    "land.title-transfer",
];

const CHANNELS: [&str; 4] = ["claims", "customs", "land", "bank"];

const PSEUDONYM: &str = "^psn:[0-9a-f]{64}$";

/// Required fields a sample mapping cannot fill yet, for a reason its file explains: (mapping
/// name, field). Each must still be missing; remove the entry when the mapping maps it.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// The detail record columns the demo's files connector reads from a courier manifest, plus
/// the two columns every file record carries (`ledgerbridge/src/legacy.rs`).
const MANIFEST_COLUMNS: &[&str] = &[
    "rec_type",
    "hbl_no",
    "order_no",
    "arrival_ymd",
    "consignee_nm",
    "consignee_tel",
    "consignee_addr",
    "item_nm",
    "pkg_cnt",
    "gross_wt",
    "value_krw",
    "customs_id",
    "_file",
    "_line",
];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// A loaded schema file: `<event_type>.v<N>.json`.
struct SchemaFile {
    file: String,
    event_type: String,
    version: u64,
    schema: Value,
}

fn schema_files() -> Vec<SchemaFile> {
    files(&crate_dir().join("schemas"), "json")
        .into_iter()
        .map(|p| {
            let file = file_name(&p);
            let stem = file.strip_suffix(".json").unwrap();
            let (event_type, version) = stem
                .rsplit_once(".v")
                .unwrap_or_else(|| panic!("{file}: not <event_type>.v<N>.json"));
            let version = version
                .parse()
                .unwrap_or_else(|_| panic!("{file}: not <event_type>.v<N>.json"));
            let event_type = event_type.to_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            let schema =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: not JSON: {e}"));
            SchemaFile {
                file,
                event_type,
                version,
                schema,
            }
        })
        .collect()
}

/// The latest version of each event type's schema.
fn schemas() -> BTreeMap<String, Value> {
    let mut out: BTreeMap<String, (u64, Value)> = BTreeMap::new();
    for s in schema_files() {
        if out.get(&s.event_type).is_none_or(|(v, _)| *v < s.version) {
            out.insert(s.event_type, (s.version, s.schema));
        }
    }
    out.into_iter().map(|(k, (_, s))| (k, s)).collect()
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("{}: does not compile: {e}", schema["$id"]))
}

fn properties(schema: &Value) -> &serde_json::Map<String, Value> {
    schema["properties"].as_object().unwrap()
}

fn required(schema: &Value) -> BTreeSet<&str> {
    schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

fn is_pseudonym(prop: &Value) -> bool {
    prop["pattern"].as_str() == Some(PSEUDONYM)
}

#[test]
fn schemas_are_2020_12_with_a_consistent_extension() {
    let files = schema_files();
    let types: BTreeSet<&str> = files.iter().map(|s| s.event_type.as_str()).collect();
    assert_eq!(types, EVENT_TYPES.into_iter().collect(), "event types");
    for SchemaFile {
        file,
        event_type,
        version,
        schema,
    } in &files
    {
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{file}: $schema"
        );
        assert_eq!(
            schema["$id"],
            format!("https://ledgerbridge.example/schemas/{file}"),
            "{file}: $id"
        );
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!(
                "{file}: not a valid 2020-12 schema: {e} at {}",
                e.instance_path()
            );
        }
        validator(schema);
        assert_eq!(schema["type"], "object", "{file}: type");
        assert_eq!(
            schema["additionalProperties"], false,
            "{file}: additionalProperties"
        );
        assert!(
            schema["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{file}: description"
        );

        let props = properties(schema);
        let req = required(schema);
        for r in &req {
            assert!(
                props.contains_key(*r),
                "{file}: required {r} is not a property"
            );
        }
        for (name, prop) in props {
            assert!(
                name.starts_with(|c: char| c.is_ascii_lowercase())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{file}: {name} is not snake_case"
            );
            assert!(
                prop["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{file}: {name} has no description"
            );
            assert!(prop["type"].is_string(), "{file}: {name} has no type");
            // Conventions: amounts in KRW are whole non-negative integers, dates and times
            // carry their format, pseudonyms their pattern.
            if name.ends_with("_krw") {
                assert_eq!(prop["type"], "integer", "{file}: {name}");
                assert_eq!(prop["minimum"], 0, "{file}: {name}");
            }
            if name.ends_with("_date") || name.ends_with("_on") {
                assert_eq!(prop["format"], "date", "{file}: {name}");
            }
            if name.ends_with("_at") {
                assert_eq!(prop["format"], "date-time", "{file}: {name}");
            }
            if prop["format"] == "date" || prop["format"] == "date-time" {
                assert_eq!(prop["type"], "string", "{file}: {name}");
            }
            if let Some(values) = prop.get("enum") {
                assert!(
                    values.as_array().is_some_and(|v| !v.is_empty()),
                    "{file}: {name}: empty enum"
                );
            }
        }

        let x = schema["x-ledgerbridge"]
            .as_object()
            .unwrap_or_else(|| panic!("{file}: no x-ledgerbridge object"));
        for k in x.keys() {
            assert!(
                ["event_type", "version", "key", "channel", "subject"].contains(&k.as_str()),
                "{file}: x-ledgerbridge.{k} is unknown"
            );
        }
        assert_eq!(
            x["event_type"],
            event_type.as_str(),
            "{file}: x-ledgerbridge.event_type"
        );
        assert_eq!(x["version"], *version, "{file}: x-ledgerbridge.version");
        let key = x["key"].as_array().unwrap();
        assert!(!key.is_empty(), "{file}: empty key");
        for k in key {
            let k = k.as_str().unwrap();
            assert!(req.contains(k), "{file}: key field {k} is not required");
            assert!(
                !is_pseudonym(&props[k]),
                "{file}: key field {k} is a pseudonym (its event id would depend on the key)"
            );
        }
        let channel = x["channel"].as_str().unwrap();
        assert!(CHANNELS.contains(&channel), "{file}: channel {channel}");
        if let Some(subject) = x.get("subject") {
            let subject = subject.as_str().unwrap();
            assert!(
                req.contains(subject),
                "{file}: subject {subject} is not required"
            );
            assert!(
                is_pseudonym(&props[subject]),
                "{file}: subject {subject} is not a pseudonym"
            );
        }
    }
}

fn psn(c: char) -> String {
    format!("psn:{}", c.to_string().repeat(64))
}

/// One valid `data` per event type, as the sample mappings produce them.
fn examples() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        (
            "bank.account",
            json!({
                "record_no": 17,
                "account_id": psn('a'),
                "party_id": psn('b'),
                "branch_code": "0042",
                "product": "ordinary_deposit",
                "opened_on": "2019-04-02",
                "dormant_since": "2024-05-01",
                "status": "dormant"
            }),
        ),
        (
            "healthcare.policy",
            json!({
                "record_no": 3,
                "policy_id": psn('c'),
                "patient_id": psn('a'),
                "insurer_code": "02",
                "product_name": "실손의료보험 4세대",
                "start_date": "2025-03-01",
                "end_date": "2026-02-28",
                "status": "in_force"
            }),
        ),
        (
            "land.parcel",
            json!({
                "parcel_id": "1168010100100000017",
                "district_code": "11680",
                "land_category": "08",
                "area_m2": "245.50"
            }),
        ),
        (
            "land.title",
            json!({
                "title_no": "TT0000000017",
                "parcel_id": "1168010100100000017",
                "owner_id": psn('d'),
                "acquired_on": "2011-07-15",
                "cause": "first_registration",
                "status": "current"
            }),
        ),
        (
            "healthcare.claim",
            json!({
                "claim_no": "C0000000017",
                "status": "submitted",
                "treatment_no": "T00000000042",
                "visit_no": "V0000000031",
                "patient_id": psn('a'),
                "policy_id": psn('b'),
                "hospital_code": "11100011",
                "procedure_code": "AA157",
                "treatment_date": "2026-01-05",
                "amount_krw": 18_000,
                "claimed_at": "2026-01-05T03:12:00Z",
                "policy_start_date": "2025-03-01",
                "policy_end_date": "2026-02-28"
            }),
        ),
        (
            "customs.order",
            json!({
                "order_no": "OD2026010500000017",
                "status": "shipped",
                "mall_code": "M001",
                "buyer_id": psn('1'),
                "consignee_id": psn('c'),
                "consignee_region": "서울특별시",
                "item_name": "블루투스 이어폰",
                "item_quantity": 2,
                "item_value_krw": 123_000,
                "ordered_at": "2026-01-05T00:00:00Z"
            }),
        ),
        (
            "customs.shipment",
            json!({
                "hbl_no": "HB0000000017",
                "order_no": "OD2026010500000017",
                "arrival_date": "2026-01-07",
                "consignee_id": psn('c'),
                "consignee_region": "경기도",
                "item_name": "블루투스 이어폰",
                "package_count": 1,
                "gross_weight_kg": "1.25",
                "value_krw": 123_000,
                "manifest_file": "MF000001.txt",
                "manifest_line": 2
            }),
        ),
        (
            "customs.declaration",
            json!({
                "declaration_no": "D2026010700000017",
                "status": "cleared",
                "order_no": "OD2026010500000017",
                "hbl_no": "HB0000000017",
                "consignee_id": psn('c'),
                "declared_value_krw": 123_000,
                "gross_weight_kg": "1.25",
                "package_count": 1,
                "declared_on": "2026-01-07"
            }),
        ),
        (
            "land.title-transfer",
            json!({
                "receipt_no": "RC0000000017",
                "parcel_id": "1168010100100000017",
                "seller_id": psn('d'),
                "buyer_id": psn('e'),
                "price_krw": 1_250_000_000,
                "contract_date": "2026-01-05",
                "registered_at": "2026-01-20T01:00:00Z",
                "district_code": "11680",
                "area_m2": "84.50",
                "owner_on_record_id": psn('d')
            }),
        ),
        (
            "land.mortgage",
            json!({
                "mortgage_no": "MG0000000017",
                "status": "released",
                "parcel_id": "1168010100100000017",
                "mortgagee_name": "한빛은행",
                "debtor_id": psn('d'),
                "max_claim_krw": 600_000_000,
                "registered_on": "2024-05-02",
                "released_on": "2025-12-30"
            }),
        ),
        (
            "bank.transfer",
            json!({
                "txn_ref": "TX000000000017",
                "from_account_id": psn('2'),
                "to_account_id": psn('3'),
                "amount_krw": 9_500_000,
                "transferred_at": "2026-01-05T12:14:09Z",
                "channel": "mobile",
                "from_party_id": psn('4'),
                "from_account_status": "normal",
                "from_last_activity_date": "2025-12-31",
                "from_dormant_since": "2023-06-01"
            }),
        ),
        (
            "bank.remittance",
            json!({
                "remit_no": "RM0000000017",
                "status": "sent",
                "account_id": psn('2'),
                "beneficiary_id": psn('5'),
                "beneficiary_country": "VN",
                "currency": "VND",
                "foreign_amount": "20000000.00",
                "amount_krw": 1_000_000,
                "remitted_on": "2026-01-05",
                "party_id": psn('4')
            }),
        ),
    ])
}

fn errors(v: &jsonschema::Validator, data: &Value) -> Vec<String> {
    v.iter_errors(data)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn examples_are_valid_and_broken_examples_are_not() {
    let schemas = schemas();
    let examples = examples();
    assert_eq!(
        examples.keys().copied().collect::<BTreeSet<_>>(),
        schemas.keys().map(String::as_str).collect(),
        "one example per event type"
    );
    for (event_type, example) in &examples {
        let schema = &schemas[*event_type];
        let v = validator(schema);
        let errs = errors(&v, example);
        assert!(
            errs.is_empty(),
            "{event_type}: example is invalid: {errs:?}"
        );
        // The examples use every property: a misspelt property would be caught above.
        let props = properties(schema);
        assert_eq!(
            example.as_object().unwrap().keys().collect::<BTreeSet<_>>(),
            props.keys().collect(),
            "{event_type}: the example should show every property"
        );

        let broken = |what: &str, change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let mut data = example.clone();
            change(data.as_object_mut().unwrap());
            assert!(!v.is_valid(&data), "{event_type}: valid although {what}");
            errors(&v, &data)
        };
        for r in required(schema) {
            broken(&format!("{r} is missing"), &|d| {
                d.remove(r);
            });
            broken(&format!("{r} is null"), &|d| {
                d.insert(r.to_owned(), Value::Null);
            });
        }
        broken("an unknown property is present", &|d| {
            d.insert("patient_name".into(), json!("홍길동"));
        });
        for (name, prop) in props {
            let name = name.as_str();
            let set = |value: Value| {
                move |d: &mut serde_json::Map<String, Value>| {
                    d.insert(name.to_owned(), value.clone());
                }
            };
            if let Some(values) = prop.get("enum") {
                let errs = broken(&format!("{name} is not one of {values}"), &set(json!("01")));
                assert!(
                    errs.iter().any(|e| e.starts_with(&format!("/{name}:"))),
                    "{event_type}: the error names /{name}: {errs:?}"
                );
            }
            if is_pseudonym(prop) {
                broken(&format!("{name} is in clear"), &set(json!("P123456789012")));
                broken(&format!("{name} is short"), &set(json!("psn:abc")));
                broken(&format!("{name} is upper-case"), &set(json!(psn('A'))));
            }
            match prop["format"].as_str() {
                Some("date") => {
                    broken(&format!("{name} is YYYYMMDD"), &set(json!("20260105")));
                    broken(&format!("{name} is no date"), &set(json!("2026-02-30")));
                }
                Some("date-time") => {
                    broken(
                        &format!("{name} has no zone"),
                        &set(json!("2026-01-05 09:00:00")),
                    );
                }
                _ => {}
            }
            if prop["type"] == "integer" {
                broken(&format!("{name} is text"), &set(json!("1,000")));
                broken(&format!("{name} is fractional"), &set(json!(1.5)));
            }
            if name.ends_with("_krw") {
                broken(&format!("{name} is negative"), &set(json!(-1)));
            }
            if prop["pattern"] == "^[0-9]+\\.[0-9]{2}$" {
                broken(&format!("{name} is a number"), &set(json!(1.25)));
                broken(&format!("{name} has separators"), &set(json!("1,234.56")));
                broken(&format!("{name} has one decimal"), &set(json!("1.5")));
            }
        }
    }

    // A mortgage's release date goes with its status.
    let v = validator(&schemas["land.mortgage"]);
    let mut active = examples["land.mortgage"].clone();
    active["status"] = json!("active");
    assert!(
        !v.is_valid(&active),
        "an active mortgage with a release date"
    );
    active.as_object_mut().unwrap().remove("released_on");
    assert!(v.is_valid(&active), "{:?}", errors(&v, &active));
    let mut released = examples["land.mortgage"].clone();
    released.as_object_mut().unwrap().remove("released_on");
    assert!(
        !v.is_valid(&released),
        "a released mortgage without a release date"
    );
    // The policy period comes whole or not at all.
    let v = validator(&schemas["healthcare.claim"]);
    let mut claim = examples["healthcare.claim"].clone();
    claim.as_object_mut().unwrap().remove("policy_end_date");
    assert!(!v.is_valid(&claim), "a policy start without its end");
    claim.as_object_mut().unwrap().remove("policy_start_date");
    assert!(v.is_valid(&claim), "{:?}", errors(&v, &claim));
}

/// `CREATE TABLE` names and their columns in one SQL file (a plain scan, no regex: the sample
/// files put one column per line).
fn sql_tables(sql: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, BTreeSet<String>)> = None;
    for line in sql.lines() {
        let line = line.split("--").next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some((_, columns)) = current.as_mut() {
            if line.starts_with(')') {
                let (name, columns) = current.take().unwrap();
                out.insert(name, columns);
                continue;
            }
            let word = line
                .split(|c: char| c.is_whitespace() || c == ',')
                .next()
                .unwrap_or("");
            let constraint = [
                "PRIMARY",
                "UNIQUE",
                "CONSTRAINT",
                "FOREIGN",
                "CHECK",
                "KEY",
                "INDEX",
            ]
            .iter()
            .any(|k| word.eq_ignore_ascii_case(k));
            if !constraint {
                columns.insert(word.trim_matches(['`', '"']).to_owned());
            }
            continue;
        }
        let upper = line.to_ascii_uppercase();
        if let Some(rest) = upper.strip_prefix("CREATE TABLE") {
            let start = line.len() - rest.len();
            let mut rest = line[start..].trim_start();
            if rest.to_ascii_uppercase().starts_with("IF NOT EXISTS") {
                rest = rest["IF NOT EXISTS".len()..].trim_start();
            }
            let name = rest
                .split(|c: char| c.is_whitespace() || c == '(')
                .next()
                .unwrap_or("")
                .trim_matches(['`', '"']);
            current = Some((name.to_owned(), BTreeSet::new()));
        }
    }
    assert!(current.is_none(), "unterminated CREATE TABLE");
    out
}

/// The columns of every table a demo connector reads: (connector, table) → columns.
fn sources() -> BTreeMap<(String, String), BTreeSet<String>> {
    let dir = crate_dir().join("../examples/samples/sql/sqlite");
    let mut out = BTreeMap::new();
    for (connector, file) in [
        ("sample-his", "healthcare.sql"),
        ("sample-mall", "customs.sql"),
        ("sample-land", "land.sql"),
        ("sample-bank", "bank.sql"),
    ] {
        let sql = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()));
        let tables = sql_tables(&sql);
        assert!(!tables.is_empty(), "{file}: no CREATE TABLE found");
        for (table, columns) in tables {
            out.insert((connector.to_owned(), table), columns);
        }
    }
    out.insert(
        ("sample-manifests".to_owned(), "*".to_owned()),
        MANIFEST_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
    );
    out
}

#[test]
fn the_sql_scan_finds_tables_and_columns() {
    let t = sql_tables(
        "-- x\nCREATE TABLE IF NOT EXISTS a (\n  id INTEGER PRIMARY KEY, -- key\n  b_cd CHAR(2) NOT NULL,\n  \
         PRIMARY KEY (id)\n);\nCREATE INDEX IF NOT EXISTS a_b ON a (b_cd);\ncreate table c (\n d TEXT\n);\n",
    );
    assert_eq!(
        t,
        BTreeMap::from([
            (
                "a".to_owned(),
                BTreeSet::from(["id".to_owned(), "b_cd".to_owned()])
            ),
            ("c".to_owned(), BTreeSet::from(["d".to_owned()])),
        ])
    );
    let s = sources();
    assert!(s[&("sample-his".to_owned(), "claims".to_owned())].contains("claim_amt"));
    assert!(s[&("sample-bank".to_owned(), "transfers".to_owned())].contains("txn_at"));
    assert_eq!(s.len(), 8 + 2 + 5 + 3 + 1);
}

const FIELD_KEYS: &[&str] = &[
    "from",
    "as",
    "format",
    "timezone",
    "scale",
    "implied_decimals",
    "trim",
    "lookup",
    "pseudonymise",
    "join",
    "split",
    "part",
    "value",
    "default",
    "optional",
];

const CONVERSIONS: &[&str] = &[
    "string",
    "integer",
    "number",
    "decimal",
    "boolean",
    "krw",
    "date",
    "timestamp",
];

/// The source columns a field spec reads.
fn field_columns(item: &toml_edit::Item) -> Vec<String> {
    if let Some(col) = item.as_str() {
        return vec![col.to_owned()];
    }
    let t = item.as_table_like().unwrap();
    match t.get("from") {
        None => vec![],
        Some(f) => match f.as_str() {
            Some(col) => vec![col.to_owned()],
            None => f
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect(),
        },
    }
}

#[test]
fn mapping_files_fit_their_schemas_and_sources() {
    let schemas = schemas();
    let sources = sources();
    let specs = files(&crate_dir().join("specs"), "toml");
    let mut names = BTreeSet::new();
    let mut gaps = BTreeSet::new();
    let mut mapped_types = BTreeSet::new();
    for path in &specs {
        let file = file_name(path);
        let text = std::fs::read_to_string(path).unwrap();
        let doc: toml_edit::DocumentMut = text
            .parse()
            .unwrap_or_else(|e| panic!("{file}: not TOML: {e}"));
        for k in doc.as_table().iter().map(|(k, _)| k) {
            assert!(
                ["mapping", "fields", "lookups", "routes"].contains(&k),
                "{file}: unknown section [{k}]"
            );
        }
        let m = &doc["mapping"];
        let name = m["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: mapping.name"));
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{file}: mapping.name {name:?} is not a-z, 0-9, -"
        );
        assert!(
            names.insert(name.to_owned()),
            "{file}: mapping.name {name} is not unique"
        );
        assert_eq!(
            m["version"].as_integer(),
            Some(1),
            "{file}: mapping.version"
        );
        let connector = m["source"]["connector"].as_str().unwrap();
        let table = m["source"]["table"].as_str().unwrap();
        let expected_file = if table == "*" {
            file.starts_with(&format!("{connector}."))
        } else {
            file == format!("{connector}.{table}.toml")
        };
        assert!(expected_file, "{file}: not named <connector>.<table>.toml");
        let columns = sources
            .get(&(connector.to_owned(), table.to_owned()))
            .unwrap_or_else(|| {
                panic!("{file}: no table {table} in the sample SQLite schemas of {connector}")
            });
        let event_type = m["event_type"].as_str().unwrap();
        let schema = schemas
            .get(event_type)
            .unwrap_or_else(|| panic!("{file}: no schema for {event_type}"));
        mapped_types.insert(event_type.to_owned());
        assert_eq!(
            m["schema_version"].as_integer(),
            schema["x-ledgerbridge"]["version"].as_i64(),
            "{file}: schema_version"
        );

        let props = properties(schema);
        let fields = doc["fields"]
            .as_table()
            .unwrap_or_else(|| panic!("{file}: no [fields]"));
        let lookups = doc.get("lookups").and_then(toml_edit::Item::as_table);
        let mut mapped = BTreeSet::new();
        for (field, item) in fields.iter() {
            let at = format!("{file}: fields.{field}");
            let prop = props
                .get(field)
                .unwrap_or_else(|| panic!("{at}: not a property of {event_type}"));
            for col in field_columns(item) {
                assert!(
                    columns.contains(&col),
                    "{at}: no source column {col} in {table}"
                );
            }
            let spec = item.as_table_like();
            let get = |k: &str| spec.and_then(|t| t.get(k));
            if let Some(t) = spec {
                for (k, _) in t.iter() {
                    assert!(FIELD_KEYS.contains(&k), "{at}: unknown key {k}");
                }
                assert!(
                    t.contains_key("from") != t.contains_key("value"),
                    "{at}: exactly one of from and value"
                );
            }
            let optional = get("optional").and_then(toml_edit::Item::as_bool) == Some(true);
            if !optional {
                mapped.insert(field.to_owned());
            }
            let conversion = get("as").map_or("string", |a| a.as_str().unwrap());
            assert!(
                CONVERSIONS.contains(&conversion),
                "{at}: unknown conversion {conversion}"
            );
            let lookup = get("lookup").map(|l| l.as_str().unwrap());
            let pseudonymise = get("pseudonymise")
                .is_some_and(|p| p.as_bool() == Some(true) || p.as_str().is_some());
            // The conversion yields what the schema asks for.
            match conversion {
                "integer" | "krw" => assert_eq!(prop["type"], "integer", "{at}: as {conversion}"),
                "date" => assert_eq!(prop["format"], "date", "{at}: as date"),
                "timestamp" => assert_eq!(prop["format"], "date-time", "{at}: as timestamp"),
                "decimal" => {
                    assert_eq!(prop["type"], "string", "{at}: as decimal");
                    let scale = get("scale").and_then(toml_edit::Item::as_integer);
                    if prop["pattern"] == "^[0-9]+\\.[0-9]{2}$" {
                        assert_eq!(scale, Some(2), "{at}: scale");
                    }
                }
                _ => {
                    if lookup.is_none() && !pseudonymise {
                        assert_eq!(prop["type"], "string", "{at}: copied as text");
                        assert!(
                            prop.get("format").is_none(),
                            "{at}: a {} needs `as`",
                            prop["format"]
                        );
                    }
                }
            }
            assert_eq!(
                pseudonymise,
                is_pseudonym(prop),
                "{at}: pseudonymise iff the schema expects a pseudonym"
            );
            if let Some(l) = lookup {
                let table = lookups
                    .and_then(|t| t.get(l))
                    .and_then(toml_edit::Item::as_table)
                    .unwrap_or_else(|| panic!("{at}: no [lookups.{l}]"));
                let allowed: BTreeSet<&str> = prop["enum"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{at}: a lookup into a field without enum"))
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                let values: BTreeSet<&str> = table
                    .iter()
                    .map(|(code, v)| {
                        let v = v.as_str().unwrap();
                        assert!(
                            allowed.contains(v),
                            "{at}: [lookups.{l}] {code} = {v:?} is not in the enum"
                        );
                        v
                    })
                    .collect();
                assert_eq!(values, allowed, "{at}: [lookups.{l}] covers the enum");
            }
        }
        for r in required(schema) {
            if !mapped.contains(r) {
                if KNOWN_GAPS.contains(&(name, r)) {
                    gaps.insert((name.to_owned(), r.to_owned()));
                } else {
                    panic!("{file}: required {r} of {event_type} is not mapped (or optional)");
                }
            }
        }
        if let Some(routes) = doc.get("routes") {
            for route in routes.as_array_of_tables().unwrap().iter() {
                let field = route["when"]["field"].as_str().unwrap();
                assert!(
                    columns.contains(field),
                    "{file}: route on unknown column {field}"
                );
                assert!(
                    route.contains_key("action") || route.contains_key("event_type"),
                    "{file}: route without action or event_type"
                );
            }
        }
    }
    assert_eq!(
        mapped_types,
        schemas.keys().cloned().collect(),
        "every event type has a sample mapping"
    );
    let known: BTreeSet<(String, String)> = KNOWN_GAPS
        .iter()
        .map(|(m, f)| ((*m).to_owned(), (*f).to_owned()))
        .collect();
    assert_eq!(gaps, known, "KNOWN_GAPS lists exactly the gaps");
}
