-- Connectors: where each stream (a table, a directory of files) stopped, written only after the
-- records before it are durable on the bus; and the quarantine of records that could not go on,
-- each with its reason (never dropped).
CREATE TABLE connector_offsets (
    connector TEXT NOT NULL,
    stream TEXT NOT NULL,
    offset_json TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (connector, stream)
);

CREATE TABLE quarantine (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    stage TEXT NOT NULL,
    source TEXT NOT NULL,
    stream TEXT NOT NULL,
    position TEXT NOT NULL,
    reason TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE INDEX quarantine_by_source ON quarantine (stage, source, id);
