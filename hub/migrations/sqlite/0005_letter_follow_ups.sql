-- Letter follow-ups (补交授权书): an emergency verification run before its authorization letter was on
-- record must get the letter within 5 working days (due_by, a Beijing date YYYY-MM-DD); until then the
-- case is pending, after it overdue. Attaching a covering letter records its id and time.
-- Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS letter_follow_ups (
    verification_id     TEXT PRIMARY KEY NOT NULL,
    requested_by        TEXT NOT NULL,
    registered_division TEXT NOT NULL,
    case_ref            TEXT NOT NULL,
    created_ms          BIGINT NOT NULL,
    due_by              TEXT NOT NULL,
    authorization_id    TEXT,
    attached_ms         BIGINT
);
CREATE INDEX IF NOT EXISTS letter_follow_ups_open ON letter_follow_ups (requested_by, due_by);
