-- 部门事件 and 低收入人口动态监测 (issue 12 items 1 and 3). Times are unix milliseconds.
--
-- dept_events: one row per accepted signed department event, written once (idempotent by
-- event_id). The person appears only as a keyed pseudonym (subject); the event as received
-- (resident ID, details) is sealed with AES-256-GCM under the data key named by key_id, bound to
-- the event id, and the signature is kept so the event can be re-verified later. body_hash is a
-- keyed hash (HMAC) of the canonical event, to tell a replay from a reused id. placement says
-- where the person was placed: 'monitoring' (the monitoring list), 'case' (their latest case) or
-- 'unmatched' (kept, listed, re-placed when the person is put on the monitoring list);
-- receipt_placement is where it was placed on receipt (what the receipt said, and says again).
CREATE TABLE IF NOT EXISTS dept_events (
    event_id     TEXT PRIMARY KEY NOT NULL,
    received_ms  BIGINT NOT NULL,
    pushed_by    TEXT NOT NULL,
    department   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    occurred_ms  BIGINT NOT NULL,
    issued_ms    BIGINT NOT NULL,
    subject      TEXT NOT NULL,
    body_hash    TEXT NOT NULL,
    sealed       TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    signature    TEXT NOT NULL,
    placement    TEXT NOT NULL,
    receipt_placement TEXT NOT NULL,
    township     TEXT,
    village      TEXT,
    placed_ms    BIGINT,
    log_index    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS dept_events_subject ON dept_events (subject);
CREATE INDEX IF NOT EXISTS dept_events_placement ON dept_events (placement, received_ms);

-- monitored_households: one row per (household head's pseudonym, category). The head's resident
-- ID and the reason are sealed (bound to subject and category); content_hash is a keyed hash of
-- what an upload may change, so that re-uploading the same file changes nothing.
CREATE TABLE IF NOT EXISTS monitored_households (
    subject       TEXT NOT NULL,
    category      TEXT NOT NULL,
    township      TEXT NOT NULL,
    village       TEXT,
    since         TEXT NOT NULL,
    status        TEXT NOT NULL,
    sealed        TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    updated_ms    BIGINT NOT NULL,
    updated_by    TEXT NOT NULL,
    upload_id     TEXT,
    PRIMARY KEY (subject, category)
);
CREATE INDEX IF NOT EXISTS monitored_households_township ON monitored_households (township);

-- monitoring_uploads: one row per bulk upload, with its counts.
CREATE TABLE IF NOT EXISTS monitoring_uploads (
    id           TEXT PRIMARY KEY NOT NULL,
    created_ms   BIGINT NOT NULL,
    uploaded_by  TEXT NOT NULL,
    format       TEXT NOT NULL,
    inserted     BIGINT NOT NULL,
    updated      BIGINT NOT NULL,
    unchanged    BIGINT NOT NULL,
    rejected     BIGINT NOT NULL,
    log_index    BIGINT NOT NULL
);
