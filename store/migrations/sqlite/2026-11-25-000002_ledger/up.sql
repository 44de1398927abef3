-- The ledger: one Merkle log per channel (see ledger-engine/README.md).

CREATE TABLE ledger_channels (
    name TEXT PRIMARY KEY NOT NULL,
    origin TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Entries: the exact leaf data hashed into the tree (its leaf hash is in the level-0 tile), and
-- beside it the payload: the commitment salt and canonical payload, encrypted under the data
-- subject's key (nonce and ciphertext are cleared by an erasure; the leaf data never changes).
CREATE TABLE ledger_entries (
    channel TEXT NOT NULL,
    idx BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    leaf_data BLOB NOT NULL,
    subject TEXT NOT NULL,
    nonce BLOB,
    ciphertext BLOB,
    PRIMARY KEY (channel, idx),
    UNIQUE (channel, event_id)
);
CREATE INDEX ledger_entries_subject ON ledger_entries (subject);

-- Interior hashes as C2SP tlog-tiles: tile (level, idx) holds up to 256 hashes of the
-- subtrees of 2^(8*level) leaves numbered idx*256 ... idx*256+255. Partial tiles are rewritten.
CREATE TABLE ledger_tiles (
    channel TEXT NOT NULL,
    level INTEGER NOT NULL,
    idx BIGINT NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (channel, level, idx)
);

-- Blocks: one per sequenced batch, chained by hash.
CREATE TABLE ledger_blocks (
    channel TEXT NOT NULL,
    height BIGINT NOT NULL,
    prev_hash BLOB NOT NULL,
    first_index BIGINT NOT NULL,
    tree_size BIGINT NOT NULL,
    root BLOB NOT NULL,
    created_at_ms BIGINT NOT NULL,
    block_hash BLOB NOT NULL,
    PRIMARY KEY (channel, height)
);

-- Signed checkpoints (C2SP signed notes), verbatim, with the cosignatures added later.
CREATE TABLE ledger_checkpoints (
    channel TEXT NOT NULL,
    tree_size BIGINT NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (channel, tree_size)
);

-- Published verifier keys: the log's checkpoint keys and the channel's cosigners.
CREATE TABLE ledger_keys (
    channel TEXT NOT NULL,
    vkey TEXT NOT NULL,
    role TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (channel, vkey)
);

-- One AES-256-GCM key per data subject; erasure deletes the row.
CREATE TABLE ledger_subject_keys (
    subject TEXT PRIMARY KEY NOT NULL,
    key_bytes BLOB NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Erasures, kept as evidence: which subject, when, and the ledger entry that records it.
CREATE TABLE ledger_erasures (
    subject TEXT PRIMARY KEY NOT NULL,
    erased_at_ms BIGINT NOT NULL,
    payloads_removed BIGINT NOT NULL,
    reason TEXT NOT NULL
);
