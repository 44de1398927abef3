use crate::model::{BusBackend, StoreBackend};
use crate::{Config, ConfigPath, DEMO_CONFIG, PRODUCTION_EXAMPLE, load_str};

fn issues(text: &str) -> Vec<(String, Option<usize>, String)> {
    let err = load_str(text, "test.toml").expect_err("configuration should be refused");
    err.issues
        .into_iter()
        .map(|i| (i.path.to_string(), i.position.map(|p| p.line), i.message))
        .collect()
}

#[test]
fn shipped_demo_config_is_the_default_configuration() {
    let loaded = load_str(DEMO_CONFIG, "demo.toml").unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The defaults, plus the sample legacy systems that only the demo runs.
    let mut expected = Config::default();
    expected.samples.enabled = true;
    assert_eq!(loaded.config, expected);
}

#[test]
fn connector_mistakes_are_all_reported_with_their_paths() {
    let found = issues(
        r#"
[[connectors]]
name = "orders"
type = "postgres"
schedule = "every day"
[connectors.database]
url = "mysql://reader:secret@db/mall"
[[connectors.database.tables]]
name = "orders"

[[connectors]]
name = "orders"
type = "files"
[connectors.files]
dir = "/in"
format = "fixed_width"
delimiter = ";;"
[[connectors.files.columns]]
name = "hbl_no"

[[connectors]]
name = "his"
type = "mariadb"
"#,
    );
    let paths: Vec<&str> = found.iter().map(|(p, _, _)| p.as_str()).collect();
    for expected in [
        "connectors[0].schedule",
        "connectors[0].database.url",
        "connectors[1].name",
        "connectors[1].files.delimiter",
        "connectors[1].files.columns[0]",
        "connectors[2].type",
    ] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {found:#?}"
        );
    }
    let message = |path: &str| {
        found
            .iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, _, m)| m.clone())
            .unwrap_or_default()
    };
    assert!(message("connectors[0].database.url").contains("postgres://"));
    assert!(message("connectors[1].name").contains("a second connector is called `orders`"));
    assert!(message("connectors[0].schedule").contains("not a cron expression"));
}

#[test]
fn shipped_production_example_is_valid() {
    let loaded = load_str(PRODUCTION_EXAMPLE, "production.toml").unwrap();
    let c = loaded.config;
    assert_eq!(c.store.backend, StoreBackend::Postgres);
    assert_eq!(c.bus.backend, BusBackend::Kafka);
    assert_eq!(
        c.store.postgres.unwrap().password.unwrap().reference(),
        "${LEDGERBRIDGE_PG_PASSWORD}"
    );
}

#[test]
fn an_empty_file_means_all_defaults() {
    assert_eq!(
        load_str("", "empty.toml").unwrap().config,
        Config::default()
    );
}

#[test]
fn every_mistake_is_reported_at_once_with_path_and_line() {
    let text = r#"
[node]
id = "a"
colour = "blue"

[api]
listen = 8080
shutdown_grace = "soon"

[store]
backend = "postgres"

[store.postgres]
pool_size = "many"

[bus]
backend = "kafka"
"#;
    let got = issues(text);
    let expect = [
        ("node.colour", 4, "unknown field"),
        ("api.listen", 7, "is not of type \"string\""),
        ("api.shutdown_grace", 8, "expected a duration"),
        ("store.postgres.url", 13, "missing required field"),
        ("store.postgres.pool_size", 14, "is not of type \"integer\""),
    ];
    for (path, line, fragment) in expect {
        assert!(
            got.iter()
                .any(|(p, l, m)| p == path && *l == Some(line) && m.contains(fragment)),
            "no `{fragment}` at {path} line {line} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expect.len(), "{got:#?}");
}

#[test]
fn rules_between_fields_are_checked_after_the_structure() {
    let got = issues(
        r#"
[store]
backend = "postgres"
[bus]
backend = "kafka"
"#,
    );
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].0, "store.backend");
    assert_eq!(got[0].1, Some(3));
    assert!(got[0].2.contains("[store.postgres]"));
    assert_eq!(got[1].0, "bus.backend");
    assert!(got[1].2.contains("[bus.kafka]"));
}

#[test]
fn a_password_written_in_clear_is_refused_and_never_echoed() {
    let text = r#"
[store]
backend = "postgres"
[store.postgres]
url = "postgres://lb:hunter2@db/ledgerbridge"
password = "hunter2"
"#;
    let err = load_str(text, "t.toml").unwrap_err();
    let shown = err.to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    let paths: Vec<String> = err.issues.iter().map(|i| i.path.to_string()).collect();
    assert_eq!(paths, ["store.postgres.password"], "{shown}");
}

#[test]
fn a_url_with_a_password_is_refused_once_the_structure_is_valid() {
    let text = r#"
[store]
backend = "postgres"
[store.postgres]
url = "postgres://lb:hunter2@db/ledgerbridge"
"#;
    let got = issues(text);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].0, "store.postgres.url");
    assert_eq!(got[0].1, Some(5));
    assert!(!got[0].2.contains("hunter2"));
}

#[test]
fn sasl_needs_its_credentials_and_properties_hold_no_secrets() {
    let text = r#"
[bus]
backend = "kafka"
[bus.kafka]
bootstrap_servers = "k1:9092,nohost"
security_protocol = "sasl_ssl"
sasl_mechanism = "MD5"
properties = { "ssl.key.password" = "x" }
"#;
    let got: Vec<String> = issues(text).into_iter().map(|(p, _, _)| p).collect();
    for want in [
        "bus.kafka.sasl_username",
        "bus.kafka.sasl_password",
        "bus.kafka.sasl_mechanism",
        "bus.kafka.properties.\"ssl.key.password\"",
        "bus.kafka.bootstrap_servers",
    ] {
        assert!(got.iter().any(|p| p == want), "{want} missing from {got:?}");
    }
}

#[test]
fn an_unset_secret_variable_is_a_warning_not_an_error() {
    let text = r#"
[store]
backend = "postgres"
[store.postgres]
url = "postgres://lb@db/ledgerbridge"
password = "${LEDGERBRIDGE_TEST_UNSET_VARIABLE}"
"#;
    let loaded = load_str(text, "t.toml").unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(
        loaded.warnings[0].path,
        ConfigPath::of(&["store", "postgres", "password"])
    );
    assert_eq!(loaded.warnings[0].position.map(|p| p.line), Some(6));
}

#[test]
fn a_syntax_error_names_its_line() {
    let got = issues("[node]\nid = \"a\"\nthis is not toml\n");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, Some(3));
    assert!(got[0].2.starts_with("not valid TOML"));
}

#[test]
fn enum_values_list_the_choices() {
    let got = issues("[bus]\nbackend = \"rabbitmq\"\n");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].2.contains("embedded") && got[0].2.contains("kafka"),
        "{got:?}"
    );
}

#[test]
fn the_schema_documents_every_field() {
    fn walk(v: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = v.get("properties").and_then(|p| p.as_object()) {
            for (name, prop) in props {
                if prop.get("description").is_none() {
                    missing.push(format!("{path}.{name}"));
                }
            }
        }
        if let Some(defs) = v.get("$defs").and_then(|d| d.as_object()) {
            for (name, def) in defs {
                walk(def, name, missing);
            }
        }
    }
    let mut missing = Vec::new();
    walk(&crate::json_schema(), "Config", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a doc comment: {missing:?}"
    );
}
