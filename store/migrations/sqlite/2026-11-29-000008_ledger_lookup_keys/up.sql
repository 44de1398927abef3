-- Entries are found by event id (idempotent appends, provenance) and by data subject (erasure)
-- through 64-bit look-up keys (`ledgerbridge_store::lookup_key`: the first 8 bytes of the text's
-- SHA-256) instead of the texts: event ids and subjects are hashes, so their index entries land
-- at random places, and an index of long texts spreads over many pages that every batch rewrites
-- (a third of the bytes a batch wrote, growing with the ledger). The texts stay in the row; a
-- look-up matches the key, then the text. Event ids stay unique per channel: appends to a channel
-- are serialised and look the batch's ids up first (see ledger-engine/runtime/src/channel.rs).
-- SQLite cannot drop a table constraint, so the table is rebuilt; `ledgerbridge_lookup_key` is
-- registered on the connection that migrates.
CREATE TABLE ledger_entries_v2 (
    channel TEXT NOT NULL,
    idx BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    event_key BIGINT NOT NULL,
    leaf_data BLOB NOT NULL,
    subject TEXT NOT NULL,
    subject_key BIGINT NOT NULL,
    nonce BLOB,
    ciphertext BLOB,
    PRIMARY KEY (channel, idx)
);
INSERT INTO ledger_entries_v2
    (channel, idx, event_id, event_key, leaf_data, subject, subject_key, nonce, ciphertext)
SELECT channel, idx, event_id, ledgerbridge_lookup_key(event_id), leaf_data, subject,
       ledgerbridge_lookup_key(subject), nonce, ciphertext
FROM ledger_entries;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_v2 RENAME TO ledger_entries;
CREATE INDEX ledger_entries_event_key ON ledger_entries (channel, event_key);
CREATE INDEX ledger_entries_subject_key ON ledger_entries (subject_key);
