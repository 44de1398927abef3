-- Mappings: every deployed version of every mapping file (who deployed it, which is active);
-- the quarantine gains what the mapping stage knows of a failure (every validation error, the
-- mapping version); every action on a quarantined record is kept with who did it.
CREATE TABLE mapping_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    spec TEXT NOT NULL,
    deployed_by TEXT NOT NULL,
    deployed_at_ms BIGINT NOT NULL,
    active BOOLEAN NOT NULL,
    PRIMARY KEY (name, version)
);

ALTER TABLE quarantine ADD COLUMN errors TEXT NOT NULL DEFAULT '[]';
ALTER TABLE quarantine ADD COLUMN mapping TEXT NOT NULL DEFAULT '';

CREATE TABLE quarantine_actions (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    quarantine_id BIGINT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    detail TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);

CREATE INDEX quarantine_actions_by_record ON quarantine_actions (quarantine_id, id);

-- Canonical schemas deployed after the shipped ones (new versions, checked for compatibility).
CREATE TABLE canonical_schemas (
    event_type TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_json TEXT NOT NULL,
    deployed_by TEXT NOT NULL,
    deployed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (event_type, version)
);
