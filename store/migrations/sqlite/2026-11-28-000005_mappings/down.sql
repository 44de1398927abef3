DROP TABLE canonical_schemas;
DROP TABLE quarantine_actions;
ALTER TABLE quarantine DROP COLUMN mapping;
ALTER TABLE quarantine DROP COLUMN errors;
DROP TABLE mapping_versions;
