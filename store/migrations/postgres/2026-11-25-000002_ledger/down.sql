DROP TABLE ledger_erasures;
DROP TABLE ledger_subject_keys;
DROP TABLE ledger_keys;
DROP TABLE ledger_checkpoints;
DROP TABLE ledger_blocks;
DROP TABLE ledger_tiles;
DROP TABLE ledger_entries;
DROP TABLE ledger_channels;
