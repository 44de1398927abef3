//! The ledger runtime: one Merkle log per channel, stored through diesel in the node's store
//! (SQLite or PostgreSQL), with signed checkpoints, keys, encrypted payloads and erasure.
//!
//! **Durability promise and commit order.** [`Ledger::append`] runs one database transaction per
//! batch, in this order: *stage* (new entries, their encrypted payloads, the tiles they change)
//! → *sign* (the block and the checkpoint over the new tree head, signed with every active log
//! key) → *publish* (commit: entries, tiles, block and checkpoint become visible together) →
//! *clean up* (the in-memory right edge advances only after the commit succeeded). A process
//! killed at any moment therefore restarts to the last committed batch: every acknowledged entry
//! is present, nothing half-written is visible, and the chain of blocks and checkpoints verifies.
//! Recovery reads the same tables the publish step wrote ([`Ledger::open`]).

mod audit;
mod channel;
mod keys;
mod payload;
mod sequencer;
mod tiles;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use ledgerbridge_ledger_core::ProofError;
use ledgerbridge_ledger_core::entry::EntryError;
use ledgerbridge_ledger_core::note::NoteError;
use ledgerbridge_store::{Store, StoreError};

pub use audit::{AuditFinding, AuditReport};
pub use channel::{Appended, CheckpointInfo, EntryRecord, NewEntry, Prepared, StoredPayload};

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// No such channel.
    #[error("unknown ledger channel `{0}`")]
    UnknownChannel(String),
    /// A channel name that is not `[a-z0-9-]{1,32}`.
    #[error("invalid channel name `{0}`: use 1 to 32 of a-z, 0-9 and -")]
    InvalidChannel(String),
    /// An entry was refused; names the field.
    #[error("entry {position}: {source}")]
    Entry {
        /// Position in the batch.
        position: usize,
        /// What is wrong.
        source: EntryError,
    },
    /// No entry at that index.
    #[error("channel `{channel}` has no entry {index} (size {size})")]
    NoEntry {
        /// Channel.
        channel: String,
        /// Requested index.
        index: u64,
        /// Current size.
        size: u64,
    },
    /// A proof could not be built.
    #[error("proof: {0}")]
    Proof(#[from] ProofError),
    /// Keys could not be read, written or used.
    #[error("keys: {0}")]
    Keys(String),
    /// A note or key format problem.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store failed while this event was sequenced with others.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// What is stored contradicts itself; the message says where. Run `ledgerbridge ledger audit`.
    #[error("ledger data is inconsistent: {0}")]
    Corrupt(String),
    /// Encryption or decryption failed.
    #[error("payload encryption: {0}")]
    Crypto(String),
    /// Another process kept appending to the channel while this one reloaded its state (an
    /// append retries after reloading; this is returned only when that kept happening).
    #[error("channel `{0}` keeps being appended to by another process; try again")]
    Moved(String),
}

/// Result alias.
pub type Result<T, E = LedgerError> = std::result::Result<T, E>;

impl From<diesel::result::Error> for LedgerError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(StoreError::Query {
            action: "running a ledger query",
            source: e,
        })
    }
}

/// The ledger of one node: every channel, sharing the node's store.
#[derive(Clone)]
pub struct Ledger {
    store: Store,
    keys_dir: PathBuf,
    origin_prefix: String,
    channels: Arc<Mutex<HashMap<String, Arc<Mutex<channel::ChannelState>>>>>,
    /// Full tiles never change once written, so proofs read them from here after the first time.
    full_tiles: Arc<Mutex<TileCache>>,
    groups: Arc<Mutex<HashMap<String, Arc<sequencer::Group>>>>,
    /// Subject keys that committed appends read or created (see [`SubjectKeys`]).
    subject_keys: Arc<Mutex<SubjectKeys>>,
}

/// Subject keys known to this process, so that an append looks up only the subjects it has not
/// seen (the look-ups took a sixth of an append). A key only changes by being deleted, and only
/// an erasure deletes one, in the same transaction as it counts itself in the store
/// (`ledger.erasures` in `node_meta`). So the keys are valid for as long as that count is the
/// one they were read under: every append reads the count inside its write transaction and
/// forgets every key when it changed, whichever process erased. Keys are added only once the
/// append that read or created them has committed.
#[derive(Debug, Default)]
pub(crate) struct SubjectKeys {
    erasures: Option<i64>,
    keys: HashMap<String, Vec<u8>>,
}

/// Subject keys kept at most (about 150 bytes each); all are forgotten past it.
const SUBJECT_KEYS_KEPT: usize = 200_000;

impl SubjectKeys {
    /// The known keys of `subjects` under erasure count `erasures`, and the subjects to look up.
    pub(crate) fn split(
        &mut self,
        erasures: i64,
        subjects: &[String],
    ) -> (HashMap<String, Vec<u8>>, Vec<String>) {
        if self.erasures != Some(erasures) {
            self.keys.clear();
            self.erasures = Some(erasures);
        }
        let mut known = HashMap::with_capacity(subjects.len());
        let mut unknown = Vec::new();
        for s in subjects {
            match self.keys.get(s) {
                Some(k) => {
                    known.insert(s.clone(), k.clone());
                }
                None => unknown.push(s.clone()),
            }
        }
        (known, unknown)
    }

    /// Remembers keys a committed append read or created under erasure count `erasures`
    /// (ignored when a later append saw another count).
    pub(crate) fn learn(&mut self, erasures: i64, keys: HashMap<String, Vec<u8>>) {
        if self.erasures != Some(erasures) {
            return;
        }
        if self.keys.len() + keys.len() > SUBJECT_KEYS_KEPT {
            self.keys.clear();
        }
        self.keys.extend(keys);
    }
}

/// Full tiles by (channel, level, index).
type TileCache = HashMap<(String, u8, u64), Arc<Vec<ledgerbridge_ledger_core::Hash>>>;

/// Full tiles kept in memory (8 KiB each): 32 MiB at most.
const FULL_TILE_CACHE: usize = 4096;

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("origin_prefix", &self.origin_prefix)
            .field("keys_dir", &self.keys_dir)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Channel names: 1–32 characters of `a-z`, `0-9`, `-`.
#[must_use]
pub fn valid_channel_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Ledger {
    /// Opens the ledger in `store`; signing keys live in `keys_dir` (created when missing,
    /// owner-only), checkpoint origins are `<origin_prefix>/<channel>`.
    ///
    /// # Errors
    /// The keys directory cannot be created.
    pub fn open(store: Store, keys_dir: PathBuf, origin_prefix: &str) -> Result<Self> {
        keys::ensure_dir(&keys_dir)?;
        Ok(Self {
            store,
            keys_dir,
            origin_prefix: origin_prefix.trim_end_matches('/').to_owned(),
            channels: Arc::new(Mutex::new(HashMap::new())),
            full_tiles: Arc::new(Mutex::new(HashMap::new())),
            groups: Arc::new(Mutex::new(HashMap::new())),
            subject_keys: Arc::default(),
        })
    }

    /// The store the ledger lives in.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Channel names, sorted.
    ///
    /// # Errors
    /// The store fails.
    pub fn channels(&self) -> Result<Vec<String>> {
        channel::list(&self.store)
    }

    /// Creates the channel (with its first log key) unless it exists.
    ///
    /// # Errors
    /// Invalid name, store or key file failure.
    pub fn ensure_channel(&self, name: &str) -> Result<()> {
        if !valid_channel_name(name) {
            return Err(LedgerError::InvalidChannel(name.to_owned()));
        }
        let origin = format!("{}/{name}", self.origin_prefix);
        channel::create(&self.store, &self.keys_dir, name, &origin)?;
        self.state(name).map(|_| ())
    }

    fn state(&self, name: &str) -> Result<Arc<Mutex<channel::ChannelState>>> {
        let mut channels = lock(&self.channels);
        if let Some(s) = channels.get(name) {
            return Ok(Arc::clone(s));
        }
        let state = channel::ChannelState::load(&self.store, &self.keys_dir, name)?;
        let state = Arc::new(Mutex::new(state));
        channels.insert(name.to_owned(), Arc::clone(&state));
        Ok(state)
    }
}
