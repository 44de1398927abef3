//! The registry, one body per behaviour, on SQLite and on a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use ledgerbridge_registry::{Compatibility, Registry, RegistryError, parse_version};
use ledgerbridge_store::testing::TestStore;

const V1: &str = r#"{"type":"record","name":"claim","namespace":"raw.his","fields":[{"name":"claim_no","type":"string"},{"name":"amount","type":"long"}]}"#;
// V1 with a new nullable column: BACKWARD compatible.
const V2: &str = r#"{"type":"record","name":"claim","namespace":"raw.his","fields":[{"name":"claim_no","type":"string"},{"name":"amount","type":"long"},{"name":"ward","type":["null","string"],"default":null}]}"#;
// A column's type changed: not BACKWARD compatible.
const BAD: &str = r#"{"type":"record","name":"claim","namespace":"raw.his","fields":[{"name":"claim_no","type":"long"},{"name":"amount","type":"long"}]}"#;

fn versions_evolve_compatibly_and_refuse_breaking_changes(ts: &TestStore) {
    let r = Registry::new(ts.store.clone());
    let id1 = r.register("raw.his-value", V1).unwrap();
    // The same schema, written differently, is the same schema.
    let v1_spaced = V1.replace(',', " , ");
    assert_eq!(r.register("raw.his-value", &v1_spaced).unwrap(), id1);
    let id2 = r.register("raw.his-value", V2).unwrap();
    assert_ne!(id1, id2);
    assert_eq!(r.versions("raw.his-value").unwrap(), [1, 2]);
    let latest = r.version("raw.his-value", None).unwrap();
    assert_eq!((latest.version, latest.id), (2, id2));
    assert_eq!(r.schema(id1).unwrap(), V1);
    match r.register("raw.his-value", BAD) {
        Err(e @ RegistryError::Incompatible { .. }) => {
            assert_eq!(e.code(), 409);
            assert!(e.to_string().contains("BACKWARD"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.check("raw.his-value", None, BAD).unwrap().len(), 1);
    assert!(r.check("raw.his-value", Some(1), V2).unwrap().is_empty());
    // Another subject with the same schema shares its id.
    assert_eq!(r.register("raw.other-value", V1).unwrap(), id1);
    assert_eq!(r.subjects().unwrap(), ["raw.his-value", "raw.other-value"]);
    // With NONE the breaking change is accepted.
    r.set_compatibility(Some("raw.other-value"), Compatibility::None)
        .unwrap();
    assert!(r.register("raw.other-value", BAD).is_ok());
    assert_eq!(
        r.compatibility(Some("raw.his-value")).unwrap(),
        Compatibility::Backward
    );
}

fn errors_carry_confluent_codes(ts: &TestStore) {
    let r = Registry::new(ts.store.clone());
    let code = |e: RegistryError| e.code();
    assert_eq!(code(r.register("s", "{not json").unwrap_err()), 42201);
    assert_eq!(
        code(
            r.register("s", r#"{"type":"record","name":"x"}"#)
                .unwrap_err()
        ),
        42201
    );
    assert_eq!(code(r.versions("nope").unwrap_err()), 40401);
    r.register("s", V1).unwrap();
    assert_eq!(code(r.version("s", Some(9)).unwrap_err()), 40402);
    assert_eq!(code(r.schema(999).unwrap_err()), 40403);
    assert_eq!(code(parse_version("0").unwrap_err()), 42202);
    assert_eq!(parse_version("latest").unwrap(), None);
    assert_eq!(code(Compatibility::parse("SIDEWAYS").unwrap_err()), 42203);
}

ledgerbridge_store::on_both_backends!(
    "registry":
    versions_evolve_compatibly_and_refuse_breaking_changes,
    errors_carry_confluent_codes
);
