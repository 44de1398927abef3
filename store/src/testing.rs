//! Test support (feature `test-support`): a fresh store per test on either backend, so one test
//! body runs against SQLite and a real PostgreSQL (`LEDGERBRIDGE_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432`). Dropping it removes the database.

use std::time::Duration;

use diesel::prelude::*;

use crate::Store;

/// A throw-away store.
#[derive(Debug)]
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// Its URL (PostgreSQL) or file path (SQLite), for tests that open it again.
    pub location: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

/// Base URL of the test PostgreSQL server.
#[must_use]
pub fn pg_base() -> String {
    std::env::var("LEDGERBRIDGE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

impl TestStore {
    /// A new SQLite store in a temporary directory.
    ///
    /// # Panics
    /// When it cannot be created (a test failure).
    #[must_use]
    #[allow(clippy::expect_used)] // test support: failing loudly is the point
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("store.sqlite3");
        let store = Store::open_sqlite(&path).expect("SQLite store");
        Self {
            store,
            location: path.display().to_string(),
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A new PostgreSQL database named after `tag` and the process.
    ///
    /// # Panics
    /// When PostgreSQL is unreachable (a test failure: scripts/test.sh starts it).
    #[must_use]
    #[allow(clippy::expect_used, clippy::panic)] // test support: failing loudly is the point
    pub fn postgres(tag: &str) -> Self {
        let base = pg_base();
        let admin = format!("{base}/postgres");
        let name = format!(
            "lb_{}_{}",
            tag.to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id()
        );
        let mut c = PgConnection::establish(&admin).unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} (scripts/services.sh starts it): {e}")
        });
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut c)
            .expect("drop");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut c)
            .expect("create");
        let url = format!("{base}/{name}");
        let store =
            Store::open_postgres(&url, 4, Duration::from_secs(10)).expect("PostgreSQL store");
        Self {
            store,
            location: url,
            _dir: None,
            pg: Some((admin, name)),
        }
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(mut c) = PgConnection::establish(admin)
        {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut c);
        }
    }
}

/// Runs each named test body — a `fn(&TestStore)` in the calling module — once on SQLite and
/// once on a fresh PostgreSQL database, as the tests `sqlite::<name>` and `postgres::<name>`.
#[macro_export]
macro_rules! on_both_backends {
    ($prefix:literal: $($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $name() {
                super::$name(&$crate::testing::TestStore::sqlite());
            })*
        }
        mod postgres {
            $(#[test]
            fn $name() {
                super::$name(&$crate::testing::TestStore::postgres(concat!($prefix, "_", stringify!($name))));
            })*
        }
    };
}
