-- The schema registry (Confluent-compatible subset): schemas by id, one id per distinct schema
-- (by the SHA-256 of its Avro canonical form), versions per subject, compatibility per subject.
CREATE TABLE registry_schemas (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    schema_text TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE registry_versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (subject, version)
);

-- Compatibility level per subject; the row with subject '' is the global default.
CREATE TABLE registry_config (
    subject TEXT PRIMARY KEY NOT NULL,
    compatibility TEXT NOT NULL
);
