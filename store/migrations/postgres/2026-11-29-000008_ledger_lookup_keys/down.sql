DROP INDEX ledger_entries_subject_key;
DROP INDEX ledger_entries_event_key;
CREATE INDEX ledger_entries_subject ON ledger_entries (subject);
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_channel_event_id_key UNIQUE (channel, event_id);
ALTER TABLE ledger_entries DROP COLUMN event_key, DROP COLUMN subject_key;
