//! ledgerbridge's own state, through diesel: an SQLite file for the embedded default, PostgreSQL
//! in production. One set of queries serves both ([`AnyConnection`]); each backend has its own
//! migrations (`migrations/sqlite`, `migrations/postgres`), applied when the store opens.
//!
//! Durability promise: every method returns after its transaction committed (SQLite in WAL mode
//! with `synchronous = FULL`; PostgreSQL's commit). Methods block; call them from
//! `spawn_blocking` (or actix's `web::block`) in async code.

mod alerts;
mod audits;
mod connectors;
pub mod schema;
#[cfg(feature = "test-support")]
pub mod testing;
mod tokens;

use std::path::Path;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use alerts::{AlertAction, StoredAlert, Suppression, Unanchored};
pub use audits::{AuditRun, CheckpointObservation, NewNotification, Notification, RuleVersion};
pub use connectors::{MappingVersion, NewQuarantined, QuarantineAction, QuarantinedRecord};
pub use tokens::{Role, TokenInfo, hash_token};

/// The 64-bit look-up key of a text the ledger finds entries by (an event id, a data subject):
/// the first 8 bytes of its SHA-256, big-endian, as a signed integer. Indexes of these are a
/// fraction of the size of indexes of the texts (see migration `000008_ledger_lookup_keys`);
/// a look-up matches the key, then the text, so a collision only costs a row read.
#[must_use]
pub fn lookup_key(text: &str) -> i64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    i64::from_be_bytes(first)
}

diesel::define_sql_function! {
    /// [`lookup_key`] in SQL on SQLite, for the migration that fills the keys of existing
    /// entries (PostgreSQL computes it with its own `sha256`).
    fn ledgerbridge_lookup_key(text: diesel::sql_types::Text) -> diesel::sql_types::BigInt;
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to either backend; queries written once run on both.
#[allow(missing_debug_implementations)] // diesel's connections are not `Debug`
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// Production store.
    Postgresql(diesel::PgConnection),
    /// Embedded store.
    Sqlite(diesel::SqliteConnection),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot connect to the {backend} store: {reason}")]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What the driver said.
        reason: String,
    },
    /// A schema migration failed; the store is left as the last successful migration made it.
    #[error("migrating the {backend} store failed: {reason}")]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What failed.
        reason: String,
    },
    /// A query failed.
    #[error("store query failed while {action}: {source}")]
    Query {
        /// What was being done.
        action: &'static str,
        /// The driver's error.
        source: diesel::result::Error,
    },
    /// No connection became free in time.
    #[error("no store connection available: {0}")]
    Pool(String),
    /// The write conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The disk holding the embedded store has (almost) no space left.
    #[error("the disk is full: {free} bytes left in {dir}")]
    DiskFull {
        /// The store's directory.
        dir: String,
        /// Bytes left for unprivileged writers.
        free: u64,
    },
}

/// Below this many free bytes the disk of the embedded store counts as full: SQLite reuses its
/// WAL file, so a small write still succeeds when nothing else on the disk can grow.
pub const MIN_FREE_BYTES: u64 = 4 << 20;

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Maps a diesel error to [`StoreError::Query`] with what was being done.
pub fn query_err(action: &'static str) -> impl FnOnce(diesel::result::Error) -> StoreError {
    move |source| StoreError::Query { action, source }
}

/// The store: a connection pool over one backend.
#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager<AnyConnection>>,
    backend: &'static str,
    description: String,
    /// The directory of the SQLite file (its free space is part of the store's health).
    dir: Option<std::path::PathBuf>,
    /// SQLite's background checkpointer, stopped when the last clone of the store goes.
    _checkpointer: Option<std::sync::Arc<Checkpointer>>,
    /// SQLite: this process's writers queue here, in order (see [`Store::writer`]).
    turn: Option<std::sync::Arc<parking_lot::FairMutex<()>>>,
}

/// How long a writer waits for its turn before it goes ahead without it (SQLite's own lock still
/// decides; the turn only orders this process's writers).
const TURN_WAIT: Duration = Duration::from_secs(10);

/// A connection to write with, holding this process's turn to write on SQLite.
#[allow(missing_debug_implementations)] // a connection and a lock guard: nothing to show
pub struct Writer<'a> {
    conn: PooledConnection<ConnectionManager<AnyConnection>>,
    // Dropped after the connection is back in the pool (fields drop in order).
    _turn: Option<parking_lot::FairMutexGuard<'a, ()>>,
}

impl std::ops::Deref for Writer<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

/// Copies SQLite's WAL into the database file from a thread of its own, so that a committing
/// writer does not (the anchoring worker's commits took a third longer when they checkpointed
/// themselves). Stops when dropped.
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
}

/// How often the checkpointer copies committed WAL pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

impl Checkpointer {
    fn start(url: &str) -> std::result::Result<Self, String> {
        let mut conn = diesel::SqliteConnection::establish(url).map_err(|e| e.to_string())?;
        conn.batch_execute("PRAGMA busy_timeout = 1000;")
            .map_err(|e| e.to_string())?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    // PASSIVE: copies what no reader still needs, never waits for anyone. A
                    // failure (a full disk, say) is retried at the next tick; the writers'
                    // own autocheckpoint bounds the WAL meanwhile.
                    if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);") {
                        tracing::debug!("sqlite checkpoint: {e}");
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Self { stop: Some(stop) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread, which ends.
        self.stop.take();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        if let AnyConnection::Sqlite(c) = conn {
            // busy_timeout first: the other statements may have to wait for a writer.
            // journal_mode = WAL is stored in the file; `open_sqlite` sets it once.
            // The ledger's look-up key indexes take inserts at random places: with SQLite's
            // default 2 MiB page cache every batch read its pages back from the OS (a third of
            // the anchoring worker's time went to pread/pwrite copies). A 32 MiB cache per
            // connection (allocated as used) and a checkpoint every 4,000 WAL pages (a page
            // written by consecutive batches reaches the file once). A memory map was measured
            // too: no faster, and 60 % more resident memory.
            // Checkpoints run on the store's own thread (`Checkpointer`); a writer checkpoints
            // only past 20,000 WAL pages (160 MiB of 8 KiB pages), should that thread fall behind.
            c.batch_execute(
                "PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                 PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY; \
                 PRAGMA wal_autocheckpoint = 20000;",
            )
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

impl Store {
    /// Opens (creating when missing) the SQLite store at `path` and applies pending migrations.
    ///
    /// # Errors
    /// The file cannot be opened or a migration fails.
    pub fn open_sqlite(path: &Path) -> Result<Self> {
        let connect = |reason: String| StoreError::Connect {
            backend: "sqlite",
            reason,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| connect(format!("{}: {e}", parent.display())))?;
        }
        let url = path
            .to_str()
            .ok_or_else(|| connect("path is not UTF-8".into()))?;
        diesel::SqliteConnection::establish(url)
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                // Pages of 8 KiB for a new database (the size is fixed once it is written, so an
                // existing one keeps its own): fewer B-tree levels, page-cache look-ups and WAL
                // frames per entry than with the 4 KiB default, for the ledger's rows of about
                // 1 KiB (`bench pipeline`: docs/benchmarks.md).
                c.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA page_size = 8192; \
                     PRAGMA journal_mode = WAL;",
                )
                .map_err(|e| e.to_string())
            })
            .map_err(|e| connect(format!("{}: {e}", path.display())))?;
        let manager = ConnectionManager::<AnyConnection>::new(url);
        // Readers (the API, the integrity monitor) go on beside the one writer in WAL mode; with
        // every worker writing, four connections left API requests waiting for a free one.
        let pool = Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_customizer(Box::new(SqlitePragmas))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| connect(format!("{}: {e}", path.display())))?;
        let checkpointer = Checkpointer::start(url)
            .map_err(|e| connect(format!("{}: checkpointer: {e}", path.display())))?;
        let store = Self {
            pool,
            backend: "sqlite",
            description: format!("sqlite {}", path.display()),
            dir: path.parent().map(Path::to_owned),
            _checkpointer: Some(std::sync::Arc::new(checkpointer)),
            turn: Some(std::sync::Arc::default()),
        };
        store.migrate()?;
        Ok(store)
    }

    /// Connects to PostgreSQL at `url` (the password already merged in by the caller, never
    /// logged) and applies pending migrations.
    ///
    /// # Errors
    /// The server cannot be reached in `connect_timeout`, refuses the login, or a migration fails.
    pub fn open_postgres(url: &str, pool_size: u32, connect_timeout: Duration) -> Result<Self> {
        let manager = ConnectionManager::<AnyConnection>::new(url);
        let pool = Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(connect_timeout)
            .build(manager)
            .map_err(|e| StoreError::Connect {
                backend: "postgres",
                reason: e.to_string(),
            })?;
        let store = Self {
            pool,
            backend: "postgres",
            description: format!("postgres {}", redact_url(url)),
            dir: None,
            _checkpointer: None,
            turn: None,
        };
        store.migrate()?;
        Ok(store)
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// A pooled connection, for crates that keep their own tables in this store (the ledger).
    ///
    /// # Errors
    /// No connection became free in time.
    pub fn conn(&self) -> Result<PooledConnection<ConnectionManager<AnyConnection>>> {
        self.pool.get().map_err(|e| StoreError::Pool(e.to_string()))
    }

    /// A pooled connection to write with. On SQLite it first takes this process's turn to write:
    /// SQLite has one writer at a time, and a connection waiting for it polls with growing sleeps,
    /// so a writer that commits back to back (the anchoring worker) kept a connector's small
    /// offset write waiting for up to a second. Writers of this process now queue in order
    /// (a fair lock, given up after 10 s); SQLite's own lock still decides between processes.
    ///
    /// # Errors
    /// No connection became free in time.
    pub fn writer(&self) -> Result<Writer<'_>> {
        let turn = self.turn.as_ref().and_then(|t| t.try_lock_for(TURN_WAIT));
        Ok(Writer {
            conn: self.conn()?,
            _turn: turn,
        })
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn()?;
        let backend = self.backend;
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migrate {
            backend,
            reason: e.to_string(),
        };
        let applied = match &mut *conn {
            AnyConnection::Sqlite(c) => {
                ledgerbridge_lookup_key_utils::register_impl(c, |text: String| lookup_key(&text))
                    .map_err(|e| fail(Box::new(e)))?;
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map_err(fail)?
                    .len()
            }
            AnyConnection::Postgresql(c) => c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map_err(fail)?
                .len(),
        };
        if applied > 0 {
            tracing::info!(backend, applied, "store migrations applied");
        }
        Ok(())
    }

    /// Runs a trivial query; `Ok` carries a one-line description for the health report.
    ///
    /// # Errors
    /// The database does not answer.
    pub fn health(&self) -> Result<String> {
        let mut conn = self.conn()?;
        diesel::sql_query("SELECT 1")
            .execute(&mut *conn)
            .map_err(query_err("checking health"))?;
        if let Some(dir) = &self.dir
            && let Ok(fs) = rustix::fs::statvfs(dir)
        {
            let free = fs.f_bavail.saturating_mul(fs.f_frsize);
            if free < MIN_FREE_BYTES {
                return Err(StoreError::DiskFull {
                    dir: dir.display().to_string(),
                    free,
                });
            }
        }
        Ok(self.description.clone())
    }

    /// Reads a node setting.
    ///
    /// # Errors
    /// The query fails.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        use schema::node_meta::dsl;
        let mut conn = self.conn()?;
        dsl::node_meta
            .filter(dsl::key.eq(key))
            .select(dsl::value)
            .first::<String>(&mut *conn)
            .optional()
            .map_err(query_err("reading a node setting"))
    }

    /// Writes a node setting, replacing the old value.
    ///
    /// # Errors
    /// The query fails.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        use schema::node_meta::dsl;
        let mut conn = self.writer()?;
        let now = now_ms();
        write_transaction(&mut conn, |c| {
            let updated = diesel::update(dsl::node_meta.filter(dsl::key.eq(key)))
                .set((dsl::value.eq(value), dsl::updated_at_ms.eq(now)))
                .execute(c)?;
            if updated == 0 {
                diesel::insert_into(dsl::node_meta)
                    .values((
                        dsl::key.eq(key),
                        dsl::value.eq(value),
                        dsl::updated_at_ms.eq(now),
                    ))
                    .execute(c)?;
            }
            Ok(())
        })
        .map_err(query_err("writing a node setting"))
    }
}

/// Runs `f` in a transaction that writes.
///
/// On SQLite the write lock is taken first (a no-op `UPDATE`), waiting for another writer up to
/// the busy timeout: a transaction that reads before it writes takes its snapshot at the first
/// read and cannot wait for a writer later — its upgrade fails at once with "database is locked"
/// whenever another connection wrote meanwhile. Every transaction of the store that writes goes
/// through here. On PostgreSQL it is an ordinary transaction.
///
/// # Errors
/// What `f` returns, or the database's error.
pub fn write_transaction<T, E, F>(conn: &mut AnyConnection, f: F) -> std::result::Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> std::result::Result<T, E>,
    E: From<diesel::result::Error>,
{
    conn.transaction(|c| {
        if matches!(c, AnyConnection::Sqlite(_)) {
            diesel::sql_query("UPDATE node_meta SET value = value WHERE 0 = 1").execute(c)?;
        }
        f(c)
    })
}

/// Hides the password of a connection URL, for messages and logs.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod lookup_key_migration {
    //! Migration `000008_ledger_lookup_keys` fills the look-up keys of the entries a store
    //! already has with the same values `lookup_key` gives new ones: in Rust on SQLite, in SQL
    //! (`sha256`) on PostgreSQL.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use diesel::migration::MigrationSource;
    use diesel::prelude::*;
    use diesel_migrations::MigrationHarness;

    use super::*;

    const BEFORE: &str = "20261129000008";

    /// Event ids and subjects, among them one whose key is negative (first hash byte ≥ 0x80).
    fn texts() -> Vec<String> {
        let negative = (0..)
            .map(|i| format!("claim:{i}"))
            .find(|t| lookup_key(t) < 0)
            .unwrap();
        vec![
            "claim:h1:000001".into(),
            negative,
            "환자-7 ünïcødé".into(),
            String::new(),
        ]
    }

    /// Rows as the ledger wrote them before the migration (`blob`: a byte string in the dialect).
    fn old_rows(c: &mut impl diesel::connection::SimpleConnection, blob: &str) {
        c.batch_execute(
            "INSERT INTO ledger_channels (name, origin, created_at_ms) VALUES ('claims', 'o', 0)",
        )
        .unwrap();
        for (i, t) in texts().iter().enumerate() {
            let t = t.replace('\'', "''");
            c.batch_execute(&format!(
                "INSERT INTO ledger_entries (channel, idx, event_id, leaf_data, subject) \
                 VALUES ('claims', {i}, '{t}', {blob}, 'subject {t}')"
            ))
            .unwrap();
        }
    }

    fn check(store: &Store) {
        use crate::schema::ledger_entries::dsl;
        let mut conn = store.conn().unwrap();
        let rows: Vec<(String, i64, String, i64)> = dsl::ledger_entries
            .order(dsl::idx)
            .select((
                dsl::event_id,
                dsl::event_key,
                dsl::subject,
                dsl::subject_key,
            ))
            .load(&mut *conn)
            .unwrap();
        assert_eq!(rows.len(), texts().len());
        for (event_id, event_key, subject, subject_key) in rows {
            assert_eq!(event_key, lookup_key(&event_id), "{event_id}");
            assert_eq!(subject_key, lookup_key(&subject), "{subject}");
        }
    }

    #[test]
    fn sqlite_keys_of_existing_entries_are_filled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite3");
        let mut c = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        diesel::migration::MigrationConnection::setup(&mut c).unwrap();
        for m in MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS).unwrap()
        {
            if m.name().version().to_string().as_str() < BEFORE {
                c.run_migration(&m).unwrap();
            }
        }
        old_rows(&mut c, "x'00'");
        drop(c);
        check(&Store::open_sqlite(&path).unwrap());
    }

    #[test]
    fn postgres_keys_of_existing_entries_are_filled() {
        let base = testing::pg_base();
        let admin = format!("{base}/postgres");
        let name = format!("lb_lookup_keys_{}", std::process::id());
        let mut a = diesel::PgConnection::establish(&admin).unwrap();
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut a)
            .unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut a)
            .unwrap();
        let url = format!("{base}/{name}");
        let mut c = diesel::PgConnection::establish(&url).unwrap();
        diesel::migration::MigrationConnection::setup(&mut c).unwrap();
        for m in MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS).unwrap() {
            if m.name().version().to_string().as_str() < BEFORE {
                c.run_migration(&m).unwrap();
            }
        }
        old_rows(&mut c, "decode('00', 'hex')");
        drop(c);
        let store = Store::open_postgres(&url, 2, Duration::from_secs(10)).unwrap();
        check(&store);
        drop(store);
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut a)
            .unwrap();
    }
}
