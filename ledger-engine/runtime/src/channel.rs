//! A channel's log: state, append, and the read side (entries, checkpoints, proofs).

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use diesel::prelude::*;
use ledgerbridge_ledger_core::checkpoint::Checkpoint;
use ledgerbridge_ledger_core::entry::{Entry, EntryKind, commitment};
use ledgerbridge_ledger_core::note::{Note, SignerKey};
use ledgerbridge_ledger_core::proof_file::ProofFile;
use ledgerbridge_ledger_core::{
    Hash, consistency_proof, hash::sha256, inclusion_proof, leaf_hash, root,
};
use ledgerbridge_store::schema::{
    ledger_blocks, ledger_channels, ledger_checkpoints, ledger_entries, ledger_keys,
    ledger_subject_keys, ledger_tiles,
};
use ledgerbridge_store::{AnyConnection, Store, lookup_key};

use crate::tiles::{self, Edge, TileSource, WIDTH};
use crate::{Ledger, LedgerError, Result, keys, lock, payload};

/// Rows per multi-row INSERT.
const CHUNK: usize = 500;

/// Runs a query on the concrete backend: multi-row INSERTs are not available through diesel's
/// `MultiConnection`, but are on each backend.
macro_rules! on_backend {
    ($conn:expr, $query:expr) => {
        match $conn {
            AnyConnection::Sqlite(c) => $query.execute(c),
            AnyConnection::Postgresql(c) => $query.execute(c),
        }
    };
}

/// An event to anchor.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Deterministic event id; appending an id already in the channel adds nothing.
    pub event_id: String,
    /// Canonical event type.
    pub event_type: String,
    /// Source connector (`api` for pushed events).
    pub connector: String,
    /// Position in the source.
    pub source_position: String,
    /// `<mapping>@<version>`.
    pub mapping_version: String,
    /// Pseudonymous data subject whose key encrypts the payload (`None`: the channel's own key).
    pub subject: Option<String>,
    /// The canonical payload, stored encrypted beside the log.
    pub payload: Vec<u8>,
}

impl NewEntry {
    /// The ledger entry this event becomes.
    pub(crate) fn entry(
        &self,
        channel: &str,
        kind: EntryKind,
        commitment: Hash,
        accepted_at_ms: i64,
    ) -> Entry {
        Entry {
            kind,
            event_id: self.event_id.clone(),
            event_type: self.event_type.clone(),
            channel: channel.to_owned(),
            connector: self.connector.clone(),
            source_position: self.source_position.clone(),
            mapping_version: self.mapping_version.clone(),
            commitment,
            accepted_at_ms,
        }
    }
}

/// An entry's canonical payload as [`Ledger::payloads`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPayload {
    /// The entry's index in its channel.
    pub index: u64,
    /// Its event id.
    pub event_id: String,
    /// The payload, decrypted; `None` once its subject was erased.
    pub payload: Option<Vec<u8>>,
}

/// Where an event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Its index in the channel.
    pub index: u64,
    /// `true` when the event id was already in the log (nothing was added).
    pub existing: bool,
}

/// A checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
    /// The signed note, verbatim.
    pub note: String,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// Index.
    pub index: u64,
    /// The exact bytes hashed into the tree.
    pub leaf_data: Vec<u8>,
    /// Decoded.
    pub entry: Entry,
}

pub(crate) struct ChannelState {
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) edge: Edge,
    pub(crate) block: Option<(i64, Hash)>,
    pub(crate) signers: Vec<SignerKey>,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn hash_of(bytes: &[u8], what: &str) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| LedgerError::Corrupt(format!("{what} is not 32 bytes")))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn list(store: &Store) -> Result<Vec<String>> {
    let mut conn = store.conn()?;
    Ok(ledger_channels::table
        .select(ledger_channels::name)
        .order(ledger_channels::name)
        .load::<String>(&mut *conn)?)
}

pub(crate) fn create(store: &Store, keys_dir: &Path, name: &str, origin: &str) -> Result<()> {
    let signers = keys::load_or_create(keys_dir, name, origin)?;
    let mut pooled = store.writer()?;
    let conn: &mut AnyConnection = &mut pooled;
    ledgerbridge_store::write_transaction::<_, LedgerError, _>(conn, |c| {
        let exists = ledger_channels::table
            .filter(ledger_channels::name.eq(name))
            .count()
            .get_result::<i64>(c)?
            > 0;
        if !exists {
            diesel::insert_into(ledger_channels::table)
                .values((
                    ledger_channels::name.eq(name),
                    ledger_channels::origin.eq(origin),
                    ledger_channels::created_at_ms.eq(now_ms()),
                ))
                .execute(c)?;
        }
        for key in &signers {
            publish_vkey(c, name, &key.verifier().to_vkey(), "log")?;
        }
        Ok(())
    })
}

pub(crate) fn publish_vkey(
    c: &mut AnyConnection,
    channel: &str,
    vkey: &str,
    role: &str,
) -> Result<()> {
    let known = ledger_keys::table
        .filter(ledger_keys::channel.eq(channel))
        .filter(ledger_keys::vkey.eq(vkey))
        .count()
        .get_result::<i64>(c)?
        > 0;
    if !known {
        diesel::insert_into(ledger_keys::table)
            .values((
                ledger_keys::channel.eq(channel),
                ledger_keys::vkey.eq(vkey),
                ledger_keys::role.eq(role),
                ledger_keys::active.eq(true),
                ledger_keys::created_at_ms.eq(now_ms()),
            ))
            .execute(c)?;
    }
    Ok(())
}

fn fetch_tile(
    c: &mut AnyConnection,
    channel: &str,
    level: u8,
    index: u64,
) -> std::result::Result<Option<Vec<Hash>>, String> {
    let bytes = ledger_tiles::table
        .filter(ledger_tiles::channel.eq(channel))
        .filter(ledger_tiles::level.eq(i32::from(level)))
        .filter(ledger_tiles::idx.eq(to_i64(index)))
        .select(ledger_tiles::hashes)
        .first::<Vec<u8>>(c)
        .optional()
        .map_err(|e| e.to_string())?;
    bytes
        .map(|b| {
            tiles::decode(&b)
                .ok_or_else(|| format!("tile {level}/{index} of {channel} is malformed"))
        })
        .transpose()
}

impl ChannelState {
    /// Rebuilds the in-memory right edge from what the last committed batch published.
    pub(crate) fn load(store: &Store, keys_dir: &Path, name: &str) -> Result<Self> {
        let mut conn = store.conn()?;
        let origin = ledger_channels::table
            .filter(ledger_channels::name.eq(name))
            .select(ledger_channels::origin)
            .first::<String>(&mut *conn)
            .optional()?
            .ok_or_else(|| LedgerError::UnknownChannel(name.to_owned()))?;
        let block = ledger_blocks::table
            .filter(ledger_blocks::channel.eq(name))
            .order(ledger_blocks::height.desc())
            .select((
                ledger_blocks::height,
                ledger_blocks::block_hash,
                ledger_blocks::tree_size,
            ))
            .first::<(i64, Vec<u8>, i64)>(&mut *conn)
            .optional()?;
        let size = block.as_ref().map_or(0, |b| to_u64(b.2));
        let entries = ledger_entries::table
            .filter(ledger_entries::channel.eq(name))
            .count()
            .get_result::<i64>(&mut *conn)?;
        if to_u64(entries) != size {
            return Err(LedgerError::Corrupt(format!(
                "channel {name}: {entries} entries but the last block says {size}"
            )));
        }
        let mut edge = Edge {
            size,
            partial: Vec::new(),
        };
        for (level, count) in Edge::levels(size) {
            let in_partial = usize::try_from(count % WIDTH as u64).unwrap_or(0);
            let tile = if in_partial == 0 {
                Vec::new()
            } else {
                let t = fetch_tile(&mut conn, name, level, count / WIDTH as u64)
                    .map_err(LedgerError::Corrupt)?
                    .ok_or_else(|| {
                        LedgerError::Corrupt(format!(
                            "channel {name}: edge tile at level {level} missing"
                        ))
                    })?;
                if t.len() != in_partial {
                    return Err(LedgerError::Corrupt(format!(
                        "channel {name}: edge tile at level {level} holds {} hashes, expected {in_partial}",
                        t.len()
                    )));
                }
                t
            };
            edge.partial.push(tile);
        }
        let block = block
            .map(|(h, hash, _)| Ok::<_, LedgerError>((h, hash_of(&hash, "block hash")?)))
            .transpose()?;
        Ok(Self {
            name: name.to_owned(),
            origin,
            edge,
            block,
            signers: keys::load(keys_dir, name)?,
        })
    }

    fn root_of(&self, c: &mut AnyConnection, edge: &Edge, size: u64) -> Result<Hash> {
        let name = self.name.clone();
        let src = TileSource::new(edge, |l, i| fetch_tile(c, &name, l, i));
        Ok(root(&src, size)?)
    }
}

pub(crate) fn block_hash_of(
    channel: &str,
    height: i64,
    prev: &Hash,
    first: u64,
    size: u64,
    root: &Hash,
    time: i64,
) -> Hash {
    let mut data = b"ledgerbridge/block/v1\0".to_vec();
    data.extend_from_slice(channel.as_bytes());
    data.push(0);
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(prev);
    data.extend_from_slice(&first.to_be_bytes());
    data.extend_from_slice(&size.to_be_bytes());
    data.extend_from_slice(root);
    data.extend_from_slice(&time.to_be_bytes());
    sha256(&data)
}

/// Replaces the tiles a batch changed: per level one DELETE of the changed range, then one
/// multi-row INSERT.
fn write_tiles(
    c: &mut AnyConnection,
    channel: &str,
    written: &HashMap<(u8, u64), Vec<Hash>>,
) -> Result<()> {
    let mut ranges: HashMap<u8, (u64, u64)> = HashMap::new();
    for &(level, index) in written.keys() {
        let r = ranges.entry(level).or_insert((index, index));
        r.0 = r.0.min(index);
        r.1 = r.1.max(index);
    }
    for (level, (low, high)) in ranges {
        diesel::delete(
            ledger_tiles::table
                .filter(ledger_tiles::channel.eq(channel))
                .filter(ledger_tiles::level.eq(i32::from(level)))
                .filter(ledger_tiles::idx.between(to_i64(low), to_i64(high))),
        )
        .execute(c)?;
    }
    let rows: Vec<_> = written
        .iter()
        .map(|((level, index), hashes)| {
            (
                ledger_tiles::channel.eq(channel),
                ledger_tiles::level.eq(i32::from(*level)),
                ledger_tiles::idx.eq(to_i64(*index)),
                ledger_tiles::hashes.eq(tiles::encode(hashes)),
            )
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        on_backend!(c, diesel::insert_into(ledger_tiles::table).values(chunk))?;
    }
    Ok(())
}

/// A UNIQUE constraint refused a row (an index another append took first, or a subject key
/// created concurrently).
fn is_unique_violation(e: &LedgerError) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        LedgerError::Store(ledgerbridge_store::StoreError::Query { source, .. }) => match source {
            Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => true,
            Error::DatabaseError(_, info) => {
                let m = info.message();
                m.contains("duplicate key value") || m.contains("UNIQUE constraint failed")
            }
            _ => false,
        },
        _ => false,
    }
}

/// One row of `ledger_entries`.
#[derive(Insertable)]
#[diesel(table_name = ledger_entries)]
#[diesel(treat_none_as_default_value = false)]
struct EntryRow<'a> {
    channel: &'a str,
    idx: i64,
    event_id: &'a str,
    event_key: i64,
    leaf_data: &'a [u8],
    subject: &'a str,
    subject_key: i64,
    nonce: Option<&'a [u8]>,
    ciphertext: Option<&'a [u8]>,
}

/// Writes entry rows the fastest way each backend has: binary `COPY` on PostgreSQL; on SQLite
/// one cached single-row INSERT per entry (multi-row INSERTs are parsed again for every chunk
/// and measured slower: 16.6 against 10.7 µs per entry in `bench pipeline`; cached ones of 32
/// rows gained nothing), in event-key order: event ids are hashes, so in batch order every
/// insert descends the event-key index to another leaf, while in key order consecutive inserts
/// land on the same leaves (the rowid order of the batch's rows changes, not their `idx`).
fn insert_entries(c: &mut AnyConnection, rows: &[EntryRow<'_>]) -> Result<()> {
    match c {
        AnyConnection::Postgresql(pg) => {
            diesel::copy_from(ledger_entries::table)
                .from_insertable(rows)
                .execute(pg)?;
        }
        AnyConnection::Sqlite(lite) => {
            let mut sorted: Vec<&EntryRow<'_>> = rows.iter().collect();
            sorted.sort_unstable_by_key(|r| r.event_key);
            for row in sorted {
                diesel::insert_into(ledger_entries::table)
                    .values(row)
                    .execute(lite)?;
            }
        }
    }
    Ok(())
}

/// A stored payload decrypted, its commitment salt taken off; `None` when its nonce, ciphertext
/// or subject key is gone (erased).
fn opened(
    channel: &str,
    event_id: &str,
    nonce: Option<Vec<u8>>,
    ciphertext: Option<Vec<u8>>,
    key: Option<Vec<u8>>,
) -> Result<Option<Vec<u8>>> {
    let (Some(nonce), Some(ciphertext), Some(key)) = (nonce, ciphertext, key) else {
        return Ok(None);
    };
    let plain = payload::open(&key, channel, event_id, &nonce, &ciphertext)?;
    Ok(Some(plain.get(32..).unwrap_or_default().to_vec()))
}

/// The payload of `e` (after its commitment salt) encrypted under `key`.
fn seal(
    key: &[u8],
    channel: &str,
    e: &NewEntry,
    salt: &[u8; 32],
    nonce: [u8; payload::NONCE_LEN],
) -> Result<Vec<u8>> {
    let mut plain = Vec::with_capacity(32 + e.payload.len() + 16);
    plain.extend_from_slice(salt);
    plain.extend_from_slice(&e.payload);
    payload::seal(key, channel, &e.event_id, nonce, plain)
}

/// The indexes of those of the batch's event ids the channel already has: look-up keys first
/// (an index of small integers), then the ids themselves.
fn already_in(
    c: &mut AnyConnection,
    channel: &str,
    prepared: &Prepared,
) -> Result<HashMap<String, u64>> {
    let ids: std::collections::HashSet<&str> =
        prepared.batch.iter().map(|e| e.event_id.as_str()).collect();
    let mut keys: Vec<i64> = prepared.entries.iter().map(|p| p.event_key).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut existing = HashMap::new();
    for chunk in keys.chunks(CHUNK) {
        let found = ledger_entries::table
            .filter(ledger_entries::channel.eq(channel))
            .filter(ledger_entries::event_key.eq_any(chunk))
            .select((ledger_entries::event_id, ledger_entries::idx))
            .load::<(String, i64)>(c)?;
        existing.extend(
            found
                .into_iter()
                .filter(|(id, _)| ids.contains(id.as_str()))
                .map(|(id, i)| (id, to_u64(i))),
        );
    }
    Ok(existing)
}

/// Stores the keys a preparation made (in multi-row inserts).
fn insert_new_keys(c: &mut AnyConnection, keys: &HashMap<String, SubjectKey>) -> Result<()> {
    let now = now_ms();
    let rows: Vec<_> = keys
        .iter()
        .filter(|(_, k)| k.created)
        .map(|(subject, k)| {
            (
                ledger_subject_keys::subject.eq(subject.as_str()),
                ledger_subject_keys::key_bytes.eq(k.bytes.as_slice()),
                ledger_subject_keys::created_at_ms.eq(now),
            )
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        on_backend!(
            c,
            diesel::insert_into(ledger_subject_keys::table).values(chunk)
        )?;
    }
    Ok(())
}

/// The data subject whose key encrypts an entry's payload (the channel's own without one).
fn subject_of(e: &NewEntry, channel: &str) -> String {
    e.subject
        .clone()
        .unwrap_or_else(|| format!("_channel:{channel}"))
}

/// How often an append reloads a channel's state that another process moved before it gives up.
const MAX_RELOADS: u32 = 5;

/// The `node_meta` row counting erasures (see `SubjectKeys` in lib.rs).
const ERASURES_KEY: &str = "ledger.erasures";

/// How many erasures the store has seen (read inside the caller's transaction).
pub(crate) fn erasure_count(c: &mut AnyConnection) -> Result<i64> {
    use ledgerbridge_store::schema::node_meta::dsl;
    let value = dsl::node_meta
        .filter(dsl::key.eq(ERASURES_KEY))
        .select(dsl::value)
        .first::<String>(c)
        .optional()?;
    value.map_or(Ok(0), |v| {
        v.parse()
            .map_err(|_| LedgerError::Corrupt(format!("node_meta {ERASURES_KEY} is `{v}`")))
    })
}

/// Counts one erasure, in the transaction that deletes the subject's key: one atomic UPDATE, so
/// concurrent erasures on PostgreSQL each count.
pub(crate) fn count_erasure(c: &mut AnyConnection) -> Result<()> {
    diesel::sql_query(format!(
        "INSERT INTO node_meta (key, value, updated_at_ms) VALUES ('{ERASURES_KEY}', '0', 0) \
         ON CONFLICT (key) DO NOTHING"
    ))
    .execute(c)?;
    diesel::sql_query(format!(
        "UPDATE node_meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT), updated_at_ms = {} \
         WHERE key = '{ERASURES_KEY}'",
        now_ms()
    ))
    .execute(c)?;
    Ok(())
}

/// The keys of those of `subjects` the store has. Looked up in chunks with `IN` lists: one
/// prepared look-up per subject measured twice as slow on SQLite (10 against 5 µs per entry in
/// `bench pipeline`).
fn stored_keys(c: &mut AnyConnection, subjects: &[String]) -> Result<HashMap<String, Vec<u8>>> {
    let mut keys = HashMap::with_capacity(subjects.len());
    for chunk in subjects.chunks(CHUNK) {
        let found = ledger_subject_keys::table
            .filter(ledger_subject_keys::subject.eq_any(chunk))
            .select((ledger_subject_keys::subject, ledger_subject_keys::key_bytes))
            .load::<(String, Vec<u8>)>(c)?;
        keys.extend(found);
    }
    Ok(keys)
}

/// A subject's key as a preparation holds it.
#[derive(Clone)]
struct SubjectKey {
    bytes: Vec<u8>,
    /// Made by the preparation: the append stores it, unless the subject has a key by then.
    created: bool,
}

/// An entry made ready outside the channel's lock: everything but its index.
struct PreparedEntry {
    leaf_data: Vec<u8>,
    leaf: Hash,
    /// Look-up keys of the event id and subject (`ledgerbridge_store::lookup_key`).
    event_key: i64,
    subject_key: i64,
    subject: String,
    salt: [u8; 32],
    nonce: [u8; payload::NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// A batch made ready to append ([`Ledger::prepare`]): subject keys read or created, salts and
/// nonces drawn, commitments, leaf data and leaf hashes computed, payloads encrypted. This is
/// most of an append's CPU time, done without the channel's lock or a write transaction, so that
/// the anchoring worker prepares its next batch while the previous one is being written. The
/// append checks, in its write transaction, that the keys are still valid (the store's erasure
/// count has not moved) and that no other append gave a new subject a key meanwhile; if either
/// happened it prepares again, or encrypts again the entries concerned.
pub struct Prepared {
    channel: String,
    kind: EntryKind,
    batch: Vec<NewEntry>,
    accepted_at_ms: i64,
    /// The store's erasure count the keys were read under.
    erasures: i64,
    keys: HashMap<String, SubjectKey>,
    /// One per entry of `batch`.
    entries: Vec<PreparedEntry>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("channel", &self.channel)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// Its channel.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// How many events it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Whether it holds no event.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

/// Batches with at least this many entries are prepared on two threads.
const PARALLEL_FROM: usize = 512;

impl Ledger {
    /// Prepares `batch` for `channel` with the store's connection `c` (a read, or the append's
    /// write transaction) under erasure count `erasures`.
    fn prepare_on(
        &self,
        c: &mut AnyConnection,
        channel: &str,
        kind: EntryKind,
        batch: Vec<NewEntry>,
        erasures: i64,
    ) -> Result<Prepared> {
        let accepted_at_ms = now_ms();
        let mut subjects: Vec<String> = batch.iter().map(|e| subject_of(e, channel)).collect();
        subjects.sort_unstable();
        subjects.dedup();
        // Known keys from memory (valid while no erasure happened), the rest from the store, and
        // new ones for subjects that have none yet.
        let (known, unknown) = lock(&self.subject_keys).split(erasures, &subjects);
        let found = stored_keys(c, &unknown)?;
        let missing: Vec<&String> = unknown.iter().filter(|s| !found.contains_key(*s)).collect();
        // One read of the random source for every new key.
        let mut entropy = vec![0u8; missing.len() * 32];
        payload::fill(&mut entropy)?;
        let mut keys: HashMap<String, SubjectKey> = HashMap::with_capacity(subjects.len());
        for (subject, bytes) in known.into_iter().chain(found) {
            let key = SubjectKey {
                bytes,
                created: false,
            };
            keys.insert(subject, key);
        }
        for (subject, bytes) in missing.into_iter().zip(entropy.chunks_exact(32)) {
            let key = SubjectKey {
                bytes: bytes.to_vec(),
                created: true,
            };
            keys.insert(subject.clone(), key);
        }
        // One read of the random source per batch: salts and nonces for every entry.
        let mut entropy = vec![0u8; batch.len() * payload::ENTROPY_PER_ENTRY];
        payload::fill(&mut entropy)?;
        let prepare = |(position, e): (usize, &NewEntry)| -> Result<PreparedEntry> {
            let (salt, nonce) = entropy[position * payload::ENTROPY_PER_ENTRY..]
                .split_first_chunk::<32>()
                .and_then(|(salt, rest)| Some((*salt, *rest.first_chunk::<12>()?)))
                .ok_or_else(|| LedgerError::Crypto("entropy buffer too short".into()))?;
            let entry = e.entry(channel, kind, commitment(&salt, &e.payload), accepted_at_ms);
            let leaf_data = entry
                .leaf_data()
                .map_err(|source| LedgerError::Entry { position, source })?;
            let leaf = leaf_hash(&leaf_data);
            let subject = subject_of(e, channel);
            let key = keys
                .get(&subject)
                .ok_or_else(|| LedgerError::Corrupt(format!("no key for subject {subject}")))?;
            let ciphertext = seal(&key.bytes, channel, e, &salt, nonce)?;
            Ok(PreparedEntry {
                leaf_data,
                leaf,
                event_key: lookup_key(&e.event_id),
                subject_key: lookup_key(&subject),
                subject,
                salt,
                nonce,
                ciphertext,
            })
        };
        // On both cores for large batches.
        let entries = if batch.len() >= PARALLEL_FROM {
            let (first, second) = batch.split_at(batch.len() / 2);
            let half = first.len();
            let (a, b) = std::thread::scope(|scope| {
                let other = scope.spawn(|| {
                    second
                        .iter()
                        .enumerate()
                        .map(|(i, e)| prepare((half + i, e)))
                        .collect::<Result<Vec<_>>>()
                });
                let mine = first
                    .iter()
                    .enumerate()
                    .map(prepare)
                    .collect::<Result<Vec<_>>>();
                (mine, other.join())
            });
            let b = b.map_err(|_| LedgerError::Crypto("a preparation thread panicked".into()))?;
            let mut all = a?;
            all.extend(b?);
            all
        } else {
            batch
                .iter()
                .enumerate()
                .map(prepare)
                .collect::<Result<Vec<_>>>()?
        };
        Ok(Prepared {
            channel: channel.to_owned(),
            kind,
            batch,
            accepted_at_ms,
            erasures,
            keys,
            entries,
        })
    }

    /// Prepares a batch for [`Ledger::append_prepared`] without taking the channel's lock or a
    /// write transaction (see [`Prepared`]).
    ///
    /// # Errors
    /// An unknown channel, an invalid entry (naming its position and field), or a store failure.
    pub fn prepare(&self, channel: &str, batch: Vec<NewEntry>) -> Result<Prepared> {
        self.state(channel)?;
        let mut conn = self.store.conn()?;
        let erasures = erasure_count(&mut conn)?;
        self.prepare_on(&mut conn, channel, EntryKind::Event, batch, erasures)
    }

    /// Appends a batch to `channel`: idempotent per event id, durable when it returns (see the
    /// crate documentation for the commit order), and covered by a new signed checkpoint when
    /// anything was added.
    ///
    /// # Errors
    /// An invalid entry (naming its position and field), an unknown channel, or a store failure;
    /// on error nothing of the batch is visible.
    pub fn append(
        &self,
        channel: &str,
        batch: &[NewEntry],
    ) -> Result<(Vec<Appended>, Option<CheckpointInfo>)> {
        self.append_prepared(self.prepare(channel, batch.to_vec())?)
    }

    /// Appends a prepared batch, as [`Ledger::append`] does.
    ///
    /// # Errors
    /// As [`Ledger::append`].
    pub fn append_prepared(
        &self,
        prepared: Prepared,
    ) -> Result<(Vec<Appended>, Option<CheckpointInfo>)> {
        self.append_with(prepared, |_| Ok(()))
    }

    /// Prepares and appends one entry of `kind`, running `in_transaction` in the append's write
    /// transaction.
    pub(crate) fn append_one(
        &self,
        channel: &str,
        entry: NewEntry,
        kind: EntryKind,
        in_transaction: impl FnMut(&mut AnyConnection) -> Result<()>,
    ) -> Result<(Vec<Appended>, Option<CheckpointInfo>)> {
        self.state(channel)?;
        let mut conn = self.store.conn()?;
        let erasures = erasure_count(&mut conn)?;
        let prepared = self.prepare_on(&mut conn, channel, kind, vec![entry], erasures)?;
        drop(conn);
        self.append_with(prepared, in_transaction)
    }

    fn append_with(
        &self,
        prepared: Prepared,
        in_transaction: impl FnMut(&mut AnyConnection) -> Result<()>,
    ) -> Result<(Vec<Appended>, Option<CheckpointInfo>)> {
        let channel = prepared.channel.clone();
        let channel = channel.as_str();
        let state = self.state(channel)?;
        let mut state = lock(&state);
        let mut pooled = self.store.writer()?;
        let conn: &mut AnyConnection = &mut pooled;
        let mut in_transaction = in_transaction;
        let mut prepared = prepared;
        let mut reloads = 0;
        let mut conflicts = 0;
        let (result, new_edge, new_block) = loop {
            // Time at the end of each stage (write lock, subject keys, index assignment,
            // entries, tiles, signatures), logged at debug level with the commit's.
            let began = std::time::Instant::now();
            let mut took = [std::time::Duration::ZERO; 6];
            let attempt = ledgerbridge_store::write_transaction::<_, LedgerError, _>(conn, |c| {
                took[0] = began.elapsed();
                // Another process of the node may have appended to this channel since this one
                // last did (an erasure made through the API process, say): the in-memory right
                // edge is then behind. On SQLite this runs under the write lock, so the channel
                // cannot move after; on PostgreSQL an append racing this one makes one of the two
                // fail on the (channel, idx) key, and that one comes back here and reloads.
                let last = ledger_blocks::table
                    .filter(ledger_blocks::channel.eq(channel))
                    .order(ledger_blocks::height.desc())
                    .select((ledger_blocks::height, ledger_blocks::block_hash))
                    .first::<(i64, Vec<u8>)>(c)
                    .optional()?;
                let known = state.block.map(|(h, hash)| (h, hash.to_vec()));
                if last != known {
                    return Err(LedgerError::Moved(channel.to_owned()));
                }
                in_transaction(c)?;
                self.keys_still_valid(c, &mut prepared)?;
                took[1] = began.elapsed();
                // Which events are new (in batch order, duplicates collapsed) and their indexes.
                // Event ids are unique per channel because appends to a channel are serialised
                // (the check above; the (channel, idx) key on PostgreSQL) and look them up here.
                let mut existing = already_in(c, channel, &prepared)?;
                let mut edge = state.edge.clone();
                let first_index = edge.size;
                let mut written = HashMap::new();
                let mut result = Vec::with_capacity(prepared.batch.len());
                let mut rows = Vec::new();
                for (e, p) in prepared.batch.iter().zip(&prepared.entries) {
                    if let Some(&index) = existing.get(&e.event_id) {
                        result.push(Appended {
                            index,
                            existing: true,
                        });
                        continue;
                    }
                    let index = edge.size;
                    existing.insert(e.event_id.clone(), index);
                    result.push(Appended {
                        index,
                        existing: false,
                    });
                    edge.push(p.leaf, &mut written);
                    rows.push(EntryRow {
                        channel,
                        idx: to_i64(index),
                        event_id: &e.event_id,
                        event_key: p.event_key,
                        leaf_data: &p.leaf_data,
                        subject: &p.subject,
                        subject_key: p.subject_key,
                        nonce: Some(&p.nonce),
                        ciphertext: Some(&p.ciphertext),
                    });
                }
                took[2] = began.elapsed();
                if rows.is_empty() {
                    return Ok((result, None, None));
                }
                insert_new_keys(c, &prepared.keys)?;
                insert_entries(c, &rows)?;
                took[3] = began.elapsed();
                write_tiles(c, channel, &written)?;
                took[4] = began.elapsed();
                // Sign: the block and the checkpoint over the new tree head.
                let size = edge.size;
                let root = state.root_of(c, &edge, size)?;
                let (height, prev) = state
                    .block
                    .map_or((0, [0u8; 32]), |(h, hash)| (h + 1, hash));
                let signed_at_ms = now_ms().max(prepared.accepted_at_ms);
                let hash = block_hash_of(
                    channel,
                    height,
                    &prev,
                    first_index,
                    size,
                    &root,
                    signed_at_ms,
                );
                diesel::insert_into(ledger_blocks::table)
                    .values((
                        ledger_blocks::channel.eq(channel),
                        ledger_blocks::height.eq(height),
                        ledger_blocks::prev_hash.eq(prev.to_vec()),
                        ledger_blocks::first_index.eq(to_i64(first_index)),
                        ledger_blocks::tree_size.eq(to_i64(size)),
                        ledger_blocks::root.eq(root.to_vec()),
                        ledger_blocks::created_at_ms.eq(signed_at_ms),
                        ledger_blocks::block_hash.eq(hash.to_vec()),
                    ))
                    .execute(c)?;
                let text = Checkpoint {
                    origin: state.origin.clone(),
                    size,
                    root,
                    extensions: vec![],
                }
                .to_text();
                let (first_key, more) = state.signers.split_first().ok_or_else(|| {
                    LedgerError::Keys(format!("channel {channel} has no active key"))
                })?;
                let mut note = Note::sign(&text, first_key)?;
                for k in more {
                    note.add_signature(k)?;
                }
                let note = note.to_text();
                diesel::insert_into(ledger_checkpoints::table)
                    .values((
                        ledger_checkpoints::channel.eq(channel),
                        ledger_checkpoints::tree_size.eq(to_i64(size)),
                        ledger_checkpoints::root.eq(root.to_vec()),
                        ledger_checkpoints::note.eq(&note),
                        ledger_checkpoints::created_at_ms.eq(signed_at_ms),
                    ))
                    .execute(c)?;
                took[5] = began.elapsed();
                // Publish: the transaction commits when this closure returns.
                Ok((
                    result,
                    Some((edge, CheckpointInfo { size, root, note })),
                    Some((height, hash)),
                ))
            });
            tracing::debug!(
                channel,
                entries = prepared.batch.len(),
                lock_ms = took[0].as_millis(),
                keys_ms = (took[1].saturating_sub(took[0])).as_millis(),
                stage_ms = (took[2].saturating_sub(took[1])).as_millis(),
                insert_ms = (took[3].saturating_sub(took[2])).as_millis(),
                tiles_ms = (took[4].saturating_sub(took[3])).as_millis(),
                sign_ms = (took[5].saturating_sub(took[4])).as_millis(),
                commit_ms = (began.elapsed().saturating_sub(took[5])).as_millis(),
                total_ms = began.elapsed().as_millis(),
                "ledger append"
            );
            match attempt {
                Err(LedgerError::Moved(_)) if reloads < MAX_RELOADS => {
                    reloads += 1;
                    tracing::info!(
                        channel,
                        "another process appended to the channel: reloading"
                    );
                    *state = ChannelState::load(&self.store, &self.keys_dir, channel)?;
                }
                // On PostgreSQL, an append by another process racing this one (same indexes) or
                // keying the same new subject: the next attempt sees what it wrote.
                Err(e) if is_unique_violation(&e) && conflicts < MAX_RELOADS => conflicts += 1,
                other => break other?,
            }
        };
        // Clean up: only a committed batch moves the in-memory edge and teaches subject keys.
        if new_block.is_some() {
            let keys = prepared
                .keys
                .into_iter()
                .map(|(s, k)| (s, k.bytes))
                .collect();
            lock(&self.subject_keys).learn(prepared.erasures, keys);
        }
        let checkpoint = new_edge.map(|(edge, cp)| {
            state.edge = edge;
            cp
        });
        if new_block.is_some() {
            state.block = new_block;
        }
        Ok((result, checkpoint))
    }

    /// In the append's write transaction: prepares the batch again if an erasure happened since
    /// its keys were read, and encrypts again under the stored key the entries of any subject
    /// that another append gave a key meanwhile (the key this preparation made is dropped).
    fn keys_still_valid(&self, c: &mut AnyConnection, prepared: &mut Prepared) -> Result<()> {
        let erasures = erasure_count(c)?;
        if erasures != prepared.erasures {
            tracing::debug!(
                channel = prepared.channel,
                "an erasure happened since the batch was prepared: preparing it again"
            );
            let batch = std::mem::take(&mut prepared.batch);
            let channel = prepared.channel.clone();
            *prepared = self.prepare_on(c, &channel, prepared.kind, batch, erasures)?;
            return Ok(());
        }
        let created: Vec<String> = prepared
            .keys
            .iter()
            .filter(|(_, k)| k.created)
            .map(|(s, _)| s.clone())
            .collect();
        let stored = stored_keys(c, &created)?;
        if stored.is_empty() {
            return Ok(());
        }
        let Prepared {
            channel,
            batch,
            keys,
            entries,
            ..
        } = prepared;
        for (e, p) in batch.iter().zip(entries.iter_mut()) {
            if let Some(key) = stored.get(&p.subject) {
                p.ciphertext = seal(key, channel, e, &p.salt, p.nonce)?;
            }
        }
        for (subject, bytes) in stored {
            keys.insert(
                subject,
                SubjectKey {
                    bytes,
                    created: false,
                },
            );
        }
        Ok(())
    }

    /// The latest signed checkpoint of a channel (`None` while it is empty).
    ///
    /// # Errors
    /// Unknown channel or store failure.
    pub fn checkpoint(&self, channel: &str) -> Result<Option<CheckpointInfo>> {
        self.state(channel)?;
        let mut conn = self.store.conn()?;
        let row = ledger_checkpoints::table
            .filter(ledger_checkpoints::channel.eq(channel))
            .order(ledger_checkpoints::tree_size.desc())
            .select((
                ledger_checkpoints::tree_size,
                ledger_checkpoints::root,
                ledger_checkpoints::note,
            ))
            .first::<(i64, Vec<u8>, String)>(&mut *conn)
            .optional()?;
        row.map(|(size, root, note)| {
            Ok(CheckpointInfo {
                size: to_u64(size),
                root: hash_of(&root, "checkpoint root")?,
                note,
            })
        })
        .transpose()
    }

    /// The current tree size of a channel.
    ///
    /// # Errors
    /// Unknown channel or store failure.
    pub fn size(&self, channel: &str) -> Result<u64> {
        let state = self.state(channel)?;
        let size = lock(&state).edge.size;
        Ok(size)
    }

    /// The published vkeys of a channel: its log keys, then its cosigners, one per line.
    ///
    /// # Errors
    /// Unknown channel or store failure.
    pub fn vkeys(&self, channel: &str) -> Result<Vec<String>> {
        self.state(channel)?;
        let mut conn = self.store.conn()?;
        Ok(ledger_keys::table
            .filter(ledger_keys::channel.eq(channel))
            .order((ledger_keys::role.desc(), ledger_keys::created_at_ms))
            .select(ledger_keys::vkey)
            .load::<String>(&mut *conn)?)
    }

    /// The entry at `index`.
    ///
    /// # Errors
    /// No such entry, or stored leaf data that does not decode.
    pub fn entry(&self, channel: &str, index: u64) -> Result<EntryRecord> {
        let size = self.size(channel)?;
        let mut conn = self.store.conn()?;
        let leaf_data = ledger_entries::table
            .filter(ledger_entries::channel.eq(channel))
            .filter(ledger_entries::idx.eq(to_i64(index)))
            .select(ledger_entries::leaf_data)
            .first::<Vec<u8>>(&mut *conn)
            .optional()?
            .ok_or_else(|| LedgerError::NoEntry {
                channel: channel.to_owned(),
                index,
                size,
            })?;
        let entry = Entry::from_leaf_data(&leaf_data)
            .map_err(|e| LedgerError::Corrupt(format!("entry {index} of {channel}: {e}")))?;
        Ok(EntryRecord {
            index,
            leaf_data,
            entry,
        })
    }

    /// Every entry of a channel, in index order (for reconciliation: one query, decoded here).
    ///
    /// # Errors
    /// Unknown channel, store failure, or stored leaf data that does not decode.
    pub fn entries(&self, channel: &str) -> Result<Vec<Entry>> {
        self.state(channel)?;
        let mut conn = self.store.conn()?;
        let rows: Vec<(i64, Vec<u8>)> = ledger_entries::table
            .filter(ledger_entries::channel.eq(channel))
            .order(ledger_entries::idx)
            .select((ledger_entries::idx, ledger_entries::leaf_data))
            .load(&mut *conn)?;
        rows.into_iter()
            .map(|(i, leaf)| {
                Entry::from_leaf_data(&leaf)
                    .map_err(|e| LedgerError::Corrupt(format!("entry {i} of {channel}: {e}")))
            })
            .collect()
    }

    /// The index of an event id, if anchored.
    ///
    /// # Errors
    /// Store failure.
    pub fn index_of(&self, channel: &str, event_id: &str) -> Result<Option<u64>> {
        let mut conn = self.store.conn()?;
        Ok(ledger_entries::table
            .filter(ledger_entries::channel.eq(channel))
            .filter(ledger_entries::event_key.eq(lookup_key(event_id)))
            .filter(ledger_entries::event_id.eq(event_id))
            .select(ledger_entries::idx)
            .first::<i64>(&mut *conn)
            .optional()?
            .map(to_u64))
    }

    /// The canonical payload of an event, decrypted (`None` once its subject was erased).
    ///
    /// # Errors
    /// Store failure or a ciphertext that does not decrypt.
    pub fn payload(&self, channel: &str, event_id: &str) -> Result<Option<Vec<u8>>> {
        let mut conn = self.store.conn()?;
        let row = ledger_entries::table
            .inner_join(
                ledger_subject_keys::table
                    .on(ledger_subject_keys::subject.eq(ledger_entries::subject)),
            )
            .filter(ledger_entries::channel.eq(channel))
            .filter(ledger_entries::event_key.eq(lookup_key(event_id)))
            .filter(ledger_entries::event_id.eq(event_id))
            .select((
                ledger_entries::nonce,
                ledger_entries::ciphertext,
                ledger_subject_keys::key_bytes,
            ))
            .first::<(Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>)>(&mut *conn)
            .optional()?;
        Ok(match row {
            Some((nonce, ct, key)) => opened(channel, event_id, nonce, ct, Some(key))?,
            None => None,
        })
    }

    /// The canonical payloads of the entries from index `from` on, `limit` at most, in index
    /// order, each with its index and event id; no payload where it was erased. One range
    /// read on the channel's key instead of a look-up per event (the rules' dry-run replays the
    /// newest events of each channel through it).
    ///
    /// # Errors
    /// Unknown channel, store failure, or a ciphertext that does not decrypt.
    pub fn payloads(&self, channel: &str, from: u64, limit: usize) -> Result<Vec<StoredPayload>> {
        self.state(channel)?;
        let mut conn = self.store.conn()?;
        let rows = ledger_entries::table
            .left_join(
                ledger_subject_keys::table
                    .on(ledger_subject_keys::subject.eq(ledger_entries::subject)),
            )
            .filter(ledger_entries::channel.eq(channel))
            .filter(ledger_entries::idx.ge(to_i64(from)))
            .order(ledger_entries::idx)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select((
                ledger_entries::idx,
                ledger_entries::event_id,
                ledger_entries::nonce,
                ledger_entries::ciphertext,
                ledger_subject_keys::key_bytes.nullable(),
            ))
            .load::<(
                i64,
                String,
                Option<Vec<u8>>,
                Option<Vec<u8>>,
                Option<Vec<u8>>,
            )>(&mut *conn)?;
        rows.into_iter()
            .map(|(idx, event_id, nonce, ct, key)| {
                Ok(StoredPayload {
                    index: to_u64(idx),
                    payload: opened(channel, &event_id, nonce, ct, key)?,
                    event_id,
                })
            })
            .collect()
    }

    /// The inclusion proof of entry `index` under the latest checkpoint, as a
    /// `c2sp.org/tlog-proof@v1` file.
    ///
    /// # Errors
    /// No such entry, no checkpoint yet, or a proof that cannot be built.
    pub fn proof_file(&self, channel: &str, index: u64) -> Result<String> {
        let cp = self
            .checkpoint(channel)?
            .filter(|cp| index < cp.size)
            .ok_or_else(|| LedgerError::NoEntry {
                channel: channel.to_owned(),
                index,
                size: self.size(channel).unwrap_or(0),
            })?;
        let proof = self.with_tiles(channel, |src| Ok(inclusion_proof(src, index, cp.size)?))?;
        let file = ProofFile {
            extra: None,
            index,
            proof,
            checkpoint: Note::parse(&cp.note)?,
        };
        Ok(file.to_text())
    }

    /// The consistency proof between tree sizes `from` and `to` (both at most the current size),
    /// with the two roots.
    ///
    /// # Errors
    /// Sizes out of range or a proof that cannot be built.
    pub fn consistency(
        &self,
        channel: &str,
        from: u64,
        to: u64,
    ) -> Result<(Hash, Hash, Vec<Hash>)> {
        let size = self.size(channel)?;
        if to > size {
            return Err(LedgerError::Proof(
                ledgerbridge_ledger_core::ProofError::BadSizes {
                    size1: from,
                    size2: to,
                },
            ));
        }
        self.with_tiles(channel, |src| {
            let proof = consistency_proof(src, from, to)?;
            Ok((root(src, from)?, root(src, to)?, proof))
        })
    }

    fn with_tiles<T>(
        &self,
        channel: &str,
        f: impl FnOnce(
            &TileSource<
                '_,
                &mut dyn FnMut(u8, u64) -> std::result::Result<Option<Vec<Hash>>, String>,
            >,
        ) -> Result<T>,
    ) -> Result<T> {
        let state = self.state(channel)?;
        let edge = lock(&state).edge.clone();
        let mut conn = self.store.conn()?;
        let mut fetch = |l: u8, i: u64| {
            let key = (channel.to_owned(), l, i);
            if let Some(t) = lock(&self.full_tiles).get(&key) {
                return Ok(Some(t.as_ref().clone()));
            }
            let tile = fetch_tile(&mut conn, channel, l, i)?;
            if let Some(t) = tile.as_ref().filter(|t| t.len() == WIDTH) {
                let mut cache = lock(&self.full_tiles);
                if cache.len() >= crate::FULL_TILE_CACHE {
                    cache.clear();
                }
                cache.insert(key, std::sync::Arc::new(t.clone()));
            }
            Ok(tile)
        };
        let src = TileSource::new(
            &edge,
            &mut fetch as &mut dyn FnMut(u8, u64) -> std::result::Result<Option<Vec<Hash>>, String>,
        );
        f(&src)
    }

    /// Signing keys: adds a new active log key for `channel` (both sign from now on).
    ///
    /// # Errors
    /// Key file or store failure.
    pub fn add_log_key(&self, channel: &str) -> Result<String> {
        let state = self.state(channel)?;
        let mut state = lock(&state);
        let key = SignerKey::generate(
            &state.origin,
            ledgerbridge_ledger_core::note::KeyType::Ed25519,
        )?;
        let mut signers: Vec<SignerKey> = keys::load(&self.keys_dir, channel)?;
        signers.push(SignerKey::parse(&key.to_skey())?);
        keys::store(&self.keys_dir, channel, &signers)?;
        let vkey = key.verifier().to_vkey();
        let mut conn = self.store.conn()?;
        publish_vkey(&mut conn, channel, &vkey, "log")?;
        state.signers = signers;
        Ok(vkey)
    }

    /// Imports a member organisation's cosigner vkey (type `0x04`) into the channel, so that it
    /// is published with the log's keys; returns the vkey in canonical form.
    ///
    /// # Errors
    /// A malformed vkey, a key of another type, or a store failure.
    pub fn import_cosigner(&self, channel: &str, vkey: &str) -> Result<String> {
        self.state(channel)?;
        let key = ledgerbridge_ledger_core::note::VerifierKey::parse(vkey)?;
        if key.kind() != ledgerbridge_ledger_core::note::KeyType::Cosignature {
            return Err(LedgerError::Keys(format!(
                "{} is not a cosigner key: cosigners publish type 0x04 (cosignature/v1) vkeys",
                key.name()
            )));
        }
        let canonical = key.to_vkey();
        let mut conn = self.store.conn()?;
        publish_vkey(&mut conn, channel, &canonical, "cosigner")?;
        Ok(canonical)
    }

    /// Signing keys: stops signing with the key whose vkey is given; it stays published so
    /// earlier checkpoints stay verifiable.
    ///
    /// # Errors
    /// It is the last active key, or key file / store failure.
    pub fn retire_log_key(&self, channel: &str, vkey: &str) -> Result<()> {
        let state = self.state(channel)?;
        let mut state = lock(&state);
        let signers: Vec<SignerKey> = keys::load(&self.keys_dir, channel)?
            .into_iter()
            .filter(|k| k.verifier().to_vkey() != vkey)
            .collect();
        if signers.is_empty() {
            return Err(LedgerError::Keys(
                "cannot retire the last active log key".into(),
            ));
        }
        keys::store(&self.keys_dir, channel, &signers)?;
        let mut conn = self.store.conn()?;
        diesel::update(
            ledger_keys::table
                .filter(ledger_keys::channel.eq(channel))
                .filter(ledger_keys::vkey.eq(vkey)),
        )
        .set(ledger_keys::active.eq(false))
        .execute(&mut *conn)?;
        state.signers = signers;
        Ok(())
    }
}

/// Base64 (standard) of a hash, for APIs.
#[must_use]
pub(crate) fn b64(hash: &Hash) -> String {
    base64::engine::general_purpose::STANDARD.encode(hash)
}
