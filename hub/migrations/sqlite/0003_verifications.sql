-- Verifications (核对): authorization letters on record and verification requests with their reports.
-- Members are stored only as keyed pseudonyms (HMAC-SHA256 of the resident ID), never clear IDs.
-- Times are unix milliseconds; lists are JSON text.
CREATE TABLE IF NOT EXISTS authorizations (
    id                  TEXT PRIMARY KEY NOT NULL,
    created_ms          INTEGER NOT NULL,
    recorded_by         TEXT NOT NULL,
    registered_division TEXT NOT NULL,
    signed_by           TEXT NOT NULL,
    subjects            TEXT NOT NULL,
    purposes            TEXT NOT NULL,
    fact_kinds          TEXT,
    valid_until_ms      INTEGER NOT NULL,
    letter_sha256       TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS verifications (
    id                  TEXT PRIMARY KEY NOT NULL,
    created_ms          INTEGER NOT NULL,
    requested_by        TEXT NOT NULL,
    registered_division TEXT NOT NULL,
    household           TEXT NOT NULL,
    purpose             TEXT NOT NULL,
    case_ref            TEXT NOT NULL,
    urgency             TEXT NOT NULL,
    authorization_id    TEXT,
    report              TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS verifications_household ON verifications (household, created_ms);
