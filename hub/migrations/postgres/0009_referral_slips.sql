-- Referral slips (转办单): from a case, a caseworker asks a department (or another township) to
-- act; the receiving party accepts (签收) and feeds back (反馈). Every slip comes back with
-- feedback (件件有落实、有反馈): a case does not close while one of its slips is unanswered.
-- The applicant appears only as a keyed pseudonym; what is asked and the applicant's name,
-- resident ID and phone are sealed (AES-256-GCM, bound to the slip id) under the data key named
-- by key_id, and so is the feedback (feedback_key_id). Times are unix milliseconds; due_ms is
-- indexed with the state so the escalation scan finds unanswered slips past their due time.
CREATE TABLE IF NOT EXISTS slips (
    id               TEXT PRIMARY KEY NOT NULL,
    case_id          TEXT NOT NULL REFERENCES cases (id),
    kind             TEXT NOT NULL,
    to_department    TEXT,
    to_township      TEXT,
    region           TEXT NOT NULL,
    applicant        TEXT NOT NULL,
    state            TEXT NOT NULL,
    issued_ms        BIGINT NOT NULL,
    issued_by        TEXT NOT NULL,
    due_ms           BIGINT NOT NULL,
    due_provisional  BIGINT NOT NULL,
    accepted_ms      BIGINT,
    accepted_by      TEXT,
    answered_ms      BIGINT,
    answered_by      TEXT,
    result           TEXT,
    personal         TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    feedback         TEXT,
    feedback_key_id  TEXT,
    version          BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS slips_case ON slips (case_id);
CREATE INDEX IF NOT EXISTS slips_to_department ON slips (to_department, id);
CREATE INDEX IF NOT EXISTS slips_to_township ON slips (to_township, id);
CREATE INDEX IF NOT EXISTS slips_state_due ON slips (state, due_ms);
