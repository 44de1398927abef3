CREATE TABLE ledger_entries_v1 (
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
INSERT INTO ledger_entries_v1 (channel, idx, event_id, leaf_data, subject, nonce, ciphertext)
SELECT channel, idx, event_id, leaf_data, subject, nonce, ciphertext FROM ledger_entries;
DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_v1 RENAME TO ledger_entries;
CREATE INDEX ledger_entries_subject ON ledger_entries (subject);
