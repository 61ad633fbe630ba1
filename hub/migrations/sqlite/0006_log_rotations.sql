-- Key/origin rotations of the access log (日志密钥轮换). The hub never re-signs a checkpoint
-- implicitly: `hub log rotate` verifies the stored note with the OLD key and origin, audits the
-- stored tree against it, signs the same size and root with the new key and origin, and records
-- both notes here in the same transaction as the head's new note. Auditors read these rows
-- (GET /v1/log/rotations) to carry their trust from the old key to the new one.
CREATE TABLE IF NOT EXISTS log_rotations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    size          INTEGER NOT NULL,
    root          TEXT NOT NULL,
    old_note      TEXT NOT NULL,
    old_vkey      TEXT NOT NULL,
    new_note      TEXT NOT NULL,
    new_vkey      TEXT NOT NULL,
    rotated_at_ms INTEGER NOT NULL,
    operator      TEXT NOT NULL,
    reason        TEXT
);
