-- Alerts raised by the monitoring rules: why (rule, version, explanation with values and
-- thresholds), about what (key, the events involved), when; one row per distinct finding
-- (dedup_key), so a redelivered event raises nothing twice.
CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    dedup_key TEXT NOT NULL UNIQUE,
    rule_id TEXT NOT NULL,
    rule_version INTEGER NOT NULL,
    severity TEXT NOT NULL,
    alert_key TEXT NOT NULL,
    explanation TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    event_at_ms BIGINT,
    detected_at_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT
);

CREATE INDEX alerts_by_rule ON alerts (rule_id, id);

-- Every change of an alert's state, with who made it and why.
CREATE TABLE alert_actions (
    id BIGSERIAL PRIMARY KEY NOT NULL,
    alert_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    comment TEXT NOT NULL,
    actor TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);

CREATE INDEX alert_actions_by_alert ON alert_actions (alert_id, id);
