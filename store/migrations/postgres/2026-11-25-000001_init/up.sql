-- Node identity and small settings, one row per key.
CREATE TABLE node_meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- API bearer tokens. Only the SHA-256 of a token is kept; the token itself is shown once.
CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
