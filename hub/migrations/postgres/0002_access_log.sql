-- Access log (访问日志): a C2SP transparency log. One batch of appends = one transaction that writes the
-- entries, their stored hashes (Go sumdb/tlog layout), a signed checkpoint and the new head, the head
-- being updated with a compare-and-swap on the previous size. Tiles are served from stored hashes, so
-- no checkpoint can cover a tile that is not durable. Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS log_entries (
    idx      BIGINT PRIMARY KEY NOT NULL,
    data     BYTEA NOT NULL,
    time_ms  BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    case_ref TEXT
);
CREATE INDEX IF NOT EXISTS log_entries_time ON log_entries (time_ms);
CREATE INDEX IF NOT EXISTS log_entries_actor ON log_entries (actor, idx);
CREATE INDEX IF NOT EXISTS log_entries_case ON log_entries (case_ref, idx);

-- Subject pseudonyms (never resident IDs) → entries, for subject search and access reports.
CREATE TABLE IF NOT EXISTS log_subjects (
    pseudonym TEXT NOT NULL,
    idx       BIGINT NOT NULL,
    PRIMARY KEY (pseudonym, idx)
);

-- Stored hashes: sumdb stored-hash index → 32-byte hash.
CREATE TABLE IF NOT EXISTS log_hashes (
    id   BIGINT PRIMARY KEY NOT NULL,
    hash BYTEA NOT NULL
);

-- Every checkpoint the log signed (one per batch).
CREATE TABLE IF NOT EXISTS log_checkpoints (
    size          BIGINT PRIMARY KEY NOT NULL,
    root          BYTEA NOT NULL,
    note          TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- The single-row head and sequencer lease.
CREATE TABLE IF NOT EXISTS log_head (
    id               SMALLINT PRIMARY KEY NOT NULL CHECK (id = 1),
    size             BIGINT NOT NULL,
    root             BYTEA NOT NULL,
    note             TEXT NOT NULL,
    lease_holder     TEXT NOT NULL,
    lease_expires_ms BIGINT NOT NULL
);
