-- Alerts are anchored in the ledger (an outbox: the monitoring worker appends what has no index
-- yet), can be muted by a suppression, and may carry evidence (both signed statements of an
-- equivocation, say).
ALTER TABLE alerts ADD COLUMN suppressed_by BIGINT;
ALTER TABLE alerts ADD COLUMN evidence TEXT;
ALTER TABLE alerts ADD COLUMN ledger_index BIGINT;
-- A history entry is a status change or a comment; each is anchored too.
ALTER TABLE alert_actions ADD COLUMN kind TEXT NOT NULL DEFAULT 'status';
ALTER TABLE alert_actions ADD COLUMN ledger_index BIGINT;

CREATE INDEX alerts_unanchored ON alerts (ledger_index, id);
CREATE INDEX alert_actions_unanchored ON alert_actions (ledger_index, id);

-- Suppressions: alerts of a rule and/or key raised before the expiry are stored muted (never
-- dropped) and not delivered.
CREATE TABLE alert_suppressions (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    rule_id TEXT,
    alert_key TEXT,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    lifted_by TEXT,
    lifted_at_ms BIGINT
);

-- Deliveries of alerts by e-mail and webhook: one row per alert, channel and recipient, sent
-- immediately (critical, webhook) or in the recipient's next digest.
CREATE TABLE notifications (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    alert_id BIGINT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at_ms BIGINT NOT NULL,
    sent_at_ms BIGINT,
    UNIQUE (alert_id, channel, recipient)
);

CREATE INDEX notifications_pending ON notifications (status, mode, id);

-- Scheduled and requested audit runs (ledger re-verification, reconciliation, digest) with
-- their results.
CREATE TABLE audit_runs (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    job TEXT NOT NULL,
    trigger TEXT NOT NULL,
    requested_by TEXT,
    status TEXT NOT NULL,
    requested_at_ms BIGINT NOT NULL,
    started_at_ms BIGINT,
    finished_at_ms BIGINT,
    summary TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_runs_by_job ON audit_runs (job, id);

-- Rules edited through the API: every version kept; the newest of a rule is the one in force.
CREATE TABLE rule_versions (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    rule_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    comment TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (rule_id, version)
);

-- Signed checkpoints the integrity monitor has seen, from this node's store or from peers:
-- two different roots for one size of a channel is an equivocation, and both notes are kept.
CREATE TABLE checkpoint_observations (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    channel TEXT NOT NULL,
    source TEXT NOT NULL,
    tree_size BIGINT NOT NULL,
    root_hex TEXT NOT NULL,
    note TEXT NOT NULL,
    observed_at_ms BIGINT NOT NULL,
    UNIQUE (channel, tree_size, root_hex)
);
