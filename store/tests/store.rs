//! The store's behaviour, one body per behaviour, run on SQLite and on a real PostgreSQL (a fresh
//! database per test, on `LEDGERBRIDGE_TEST_PG`, default `postgres://postgres@127.0.0.1:5432`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

use std::time::Duration;

use diesel::prelude::*;
use ledgerbridge_store::{Role, Store};

struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    fn create(tag: &str) -> (Self, Store) {
        let base = std::env::var("LEDGERBRIDGE_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
        let admin_url = format!("{base}/postgres");
        let name = format!("lb_store_{tag}_{}", std::process::id());
        let mut admin = PgConnection::establish(&admin_url).unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin_url} (start it with scripts/services.sh): {e}")
        });
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .unwrap();
        let store =
            Store::open_postgres(&format!("{base}/{name}"), 2, Duration::from_secs(10)).unwrap();
        (Self { admin_url, name }, store)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

fn tokens_verify_only_themselves_and_can_be_revoked(store: &Store) {
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

fn settings_are_replaced_not_duplicated(store: &Store) {
    assert_eq!(store.meta("node_id").unwrap(), None);
    store.set_meta("node_id", "a").unwrap();
    store.set_meta("node_id", "b").unwrap();
    assert_eq!(store.meta("node_id").unwrap().as_deref(), Some("b"));
    assert!(store.health().is_ok());
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = super::Store::open_sqlite(&dir.path().join("s.sqlite3")).unwrap();
                super::$name(&store);
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                let (_db, store) = super::PgDatabase::create(stringify!($name));
                super::$name(&store);
            })*
        }
    };
}

on_both_backends!(
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
