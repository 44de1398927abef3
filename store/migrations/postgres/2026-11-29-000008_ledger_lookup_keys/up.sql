-- Entries are found by event id (idempotent appends, provenance) and by data subject (erasure)
-- through 64-bit look-up keys (`ledgerbridge_store::lookup_key`: the first 8 bytes of the text's
-- SHA-256, big-endian, signed) instead of the texts: event ids and subjects are hashes, so their
-- index entries land at random places, and an index of long texts spreads over many pages that
-- every batch rewrites. The texts stay in the row; a look-up matches the key, then the text.
-- Event ids stay unique per channel: appends to a channel are serialised and look the batch's
-- ids up first (see ledger-engine/runtime/src/channel.rs).
ALTER TABLE ledger_entries ADD COLUMN event_key BIGINT, ADD COLUMN subject_key BIGINT;
UPDATE ledger_entries SET
    event_key = ('x' || substr(encode(sha256(convert_to(event_id, 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint,
    subject_key = ('x' || substr(encode(sha256(convert_to(subject, 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint;
ALTER TABLE ledger_entries ALTER COLUMN event_key SET NOT NULL, ALTER COLUMN subject_key SET NOT NULL;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_channel_event_id_key;
DROP INDEX ledger_entries_subject;
CREATE INDEX ledger_entries_event_key ON ledger_entries (channel, event_key);
CREATE INDEX ledger_entries_subject_key ON ledger_entries (subject_key);
