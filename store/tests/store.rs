//! The store's behaviour, one body per behaviour, run on SQLite and on a real PostgreSQL (a fresh
//! database per test, on `LEDGERBRIDGE_TEST_PG`, default `postgres://postgres@127.0.0.1:5432`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use std::time::Duration;

use ledgerbridge_store::testing::TestStore;
use ledgerbridge_store::{Role, Store};

fn tokens_verify_only_themselves_and_can_be_revoked(ts: &TestStore) {
    let store = &ts.store;
    let (token, info) = store.create_token("admin (test)", Role::Admin).unwrap();
    assert!(token.starts_with("lbt_") && token.len() > 40);
    assert_eq!(store.verify_token(&token).unwrap(), Some(info.clone()));
    assert_eq!(store.verify_token("lbt_not-a-token").unwrap(), None);
    assert_eq!(store.verify_token(&token[..token.len() - 1]).unwrap(), None);
    let (other, _) = store.create_token("second", Role::Admin).unwrap();
    assert_ne!(token, other);
    assert!(store.revoke_token(info.id).unwrap());
    assert!(!store.revoke_token(info.id).unwrap());
    assert_eq!(store.verify_token(&token).unwrap(), None);
    assert!(store.verify_token(&other).unwrap().is_some());
}

fn settings_are_replaced_not_duplicated(ts: &TestStore) {
    let store = &ts.store;
    assert_eq!(store.meta("node_id").unwrap(), None);
    store.set_meta("node_id", "a").unwrap();
    store.set_meta("node_id", "b").unwrap();
    assert_eq!(store.meta("node_id").unwrap().as_deref(), Some("b"));
    assert!(store.health().is_ok());
}

ledgerbridge_store::on_both_backends!(
    "store":
    tokens_verify_only_themselves_and_can_be_revoked,
    settings_are_replaced_not_duplicated,
);

#[test]
fn sqlite_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite3");
    let token = {
        let store = Store::open_sqlite(&path).unwrap();
        store.set_meta("k", "v").unwrap();
        store.create_token("admin", Role::Admin).unwrap().0
    };
    let store = Store::open_sqlite(&path).unwrap();
    assert_eq!(store.meta("k").unwrap().as_deref(), Some("v"));
    assert!(store.verify_token(&token).unwrap().is_some());
}

#[test]
fn an_unreachable_postgres_is_a_clear_error_without_the_password() {
    let err = Store::open_postgres(
        "postgres://lb:topsecret@127.0.0.1:1/ledgerbridge",
        1,
        Duration::from_millis(500),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot connect to the postgres store"),
        "{text}"
    );
    assert!(!text.contains("topsecret"), "{text}");
}

#[test]
fn urls_are_redacted() {
    assert_eq!(
        ledgerbridge_store::redact_url("postgres://u:pw@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(
        ledgerbridge_store::redact_url("postgres://u@h/db"),
        "postgres://u@h/db"
    );
}

/// The page size in the header of a SQLite database file (bytes 16–17, big-endian).
fn page_size(path: &std::path::Path) -> u16 {
    let header = std::fs::read(path).unwrap();
    u16::from_be_bytes([header[16], header[17]])
}

#[test]
fn a_new_sqlite_store_has_8_kib_pages_and_an_older_one_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.sqlite3");
    drop(Store::open_sqlite(&new).unwrap());
    assert_eq!(page_size(&new), 8192);

    // A store created before with SQLite's default of 4 KiB: the page size of a database in WAL
    // mode cannot change, so it is left as it is and the store opens and works as before.
    let old = dir.path().join("old.sqlite3");
    {
        use diesel::Connection as _;
        use diesel::connection::SimpleConnection as _;
        let mut c = diesel::SqliteConnection::establish(old.to_str().unwrap()).unwrap();
        c.batch_execute(
            "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE before (a INTEGER);",
        )
        .unwrap();
    }
    {
        let store = Store::open_sqlite(&old).unwrap();
        store.set_meta("k", "v").unwrap();
        assert_eq!(store.meta("k").unwrap().as_deref(), Some("v"));
    }
    assert_eq!(page_size(&old), 4096);
}
