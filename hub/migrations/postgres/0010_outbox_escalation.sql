-- Escalation and notifications (issue 11 item 5). See hub/src/cases/escalation.rs and
-- hub/src/notify/. Times are unix milliseconds.

-- The nearest open statutory deadline of a case, kept in the same transaction as every filing
-- and move (computed by hub/src/cases/clocks.rs), so that the escalation scan and
-- `GET /v1/cases?overdue=` are indexed queries. NULL when no clock is open.
--   next_due_ms / next_due_kind: the earliest deadline among the open clocks (overdue ones too).
--   due_provisional: 1 when some open clock counts into a year without a calendar file.
--   next_check_ms: when the scan must look at the case next (the next clock to enter due_soon or
--   to pass its deadline); NULL when nothing is left to notice.
ALTER TABLE cases ADD COLUMN next_due_ms BIGINT;
ALTER TABLE cases ADD COLUMN next_due_kind TEXT;
ALTER TABLE cases ADD COLUMN due_provisional BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN next_check_ms BIGINT;
CREATE INDEX IF NOT EXISTS cases_next_due ON cases (next_due_ms) WHERE next_due_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS cases_next_check ON cases (next_check_ms) WHERE next_check_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS cases_due_provisional ON cases (due_provisional) WHERE due_provisional = 1;

-- Leases: one holder at a time of a deployment-wide task (the escalation scan and the webhook
-- delivery), taken and renewed with a conditional UPDATE.
CREATE TABLE IF NOT EXISTS leases (
    name        TEXT PRIMARY KEY NOT NULL,
    holder      TEXT NOT NULL,
    expires_ms  BIGINT NOT NULL
);

-- 超期督办: one row per overdue stage (case, clock kind), for the county supervisor's queue. No
-- personal data. resolved_ms is set when the clock is met later.
CREATE TABLE IF NOT EXISTS escalations (
    id            TEXT PRIMARY KEY NOT NULL,
    case_id       TEXT NOT NULL REFERENCES cases (id),
    clock         TEXT NOT NULL,
    tier          TEXT NOT NULL,
    township      TEXT NOT NULL,
    county        TEXT NOT NULL,
    due_ms        BIGINT NOT NULL,
    escalated_ms  BIGINT NOT NULL,
    resolved_ms   BIGINT,
    UNIQUE (case_id, clock)
);
CREATE INDEX IF NOT EXISTS escalations_township ON escalations (township, id);

-- The notification outbox: written in the same transaction as the change that causes it. The id
-- is the delivery id receivers deduplicate on. dedup_key makes a notice that a re-scan would
-- repeat (deadline_near) one row. No personal data in payload.
CREATE TABLE IF NOT EXISTS outbox (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    case_id     TEXT,
    dedup_key   TEXT UNIQUE,
    payload     TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    fanned_out  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_fan_out ON outbox (seq) WHERE fanned_out = 0;

-- One row per (notification, configured webhook) once the sender has fanned it out.
CREATE TABLE IF NOT EXISTS outbox_deliveries (
    outbox_seq       BIGINT NOT NULL REFERENCES outbox (seq),
    webhook          TEXT NOT NULL,
    case_id          TEXT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms  BIGINT NOT NULL,
    delivered_ms     BIGINT,
    last_error       TEXT,
    PRIMARY KEY (outbox_seq, webhook)
);
CREATE INDEX IF NOT EXISTS outbox_deliveries_pending ON outbox_deliveries (webhook, outbox_seq) WHERE delivered_ms IS NULL;
