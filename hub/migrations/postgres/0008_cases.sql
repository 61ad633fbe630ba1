-- Cases (救助案件): the unit of the closed loop 申请—受理—分办—反馈. One row per case with its stage,
-- and one row per event of its timeline. The applicant appears only as a keyed pseudonym
-- (HMAC-SHA256 of the resident ID, the access log's scheme); the personal fields (resident ID,
-- name, phone, description) and every event's details are sealed with AES-256-GCM under the
-- data key named by key_id (see hub/src/keys.rs). Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS cases (
    id          TEXT PRIMARY KEY NOT NULL,
    created_ms  BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL,
    filed_by    TEXT NOT NULL,
    channel     TEXT NOT NULL,
    tier        TEXT NOT NULL,
    hardship    TEXT NOT NULL,
    state       TEXT NOT NULL,
    township    TEXT NOT NULL,
    village     TEXT,
    applicant   TEXT NOT NULL,
    personal    TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    outcome     TEXT,
    version     BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS cases_township ON cases (township, id);
CREATE INDEX IF NOT EXISTS cases_filed_by ON cases (filed_by, id);
CREATE INDEX IF NOT EXISTS cases_applicant ON cases (applicant);

-- The timeline: who moved the case, when, from which stage to which, and why (sealed details).
CREATE TABLE IF NOT EXISTS case_events (
    case_id     TEXT NOT NULL REFERENCES cases (id),
    seq         BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    action      TEXT NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    actor       TEXT NOT NULL,
    township    TEXT NOT NULL,
    details     TEXT,
    key_id      TEXT,
    PRIMARY KEY (case_id, seq)
);

-- Idempotency keys of case filings (Idempotency-Key header), per filing identity URI.
CREATE TABLE IF NOT EXISTS case_idempotency (
    filed_by        TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    case_id         TEXT NOT NULL,
    request_sha256  TEXT NOT NULL,
    created_ms      BIGINT NOT NULL,
    PRIMARY KEY (filed_by, idem_key)
);

-- Verifications name the case they were run for (case_ref stays, for a transition period), and a
-- caseworker lists their own.
ALTER TABLE verifications ADD COLUMN case_id TEXT;
CREATE INDEX IF NOT EXISTS verifications_requested_by ON verifications (requested_by, created_ms);
