-- Anti-trawling lookups (防止拖网查询): who each caseworker has looked up lately, so that the caps of
-- `[rate_limits]` (distinct households and distinct people per rolling hour, emergency checks without
-- a letter per rolling day) survive a restart and are shared by every replica on one database.
-- One row per (caseworker identity URI, kind, key), holding the time of the latest lookup:
--   kind 'household': key = the household's pseudonym (the applicant's);
--   kind 'person':    key = a member's keyed pseudonym (every member of the household);
--   kind 'emergency': key = the verification id of an emergency check run without a letter.
-- Only keyed pseudonyms and verification ids, never a resident ID. Rows older than their window are
-- pruned by the hub's cleanup task. Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS lookups (
    principal TEXT NOT NULL,
    kind      TEXT NOT NULL,
    key       TEXT NOT NULL,
    at_ms     BIGINT NOT NULL,
    PRIMARY KEY (principal, kind, key)
);
CREATE INDEX IF NOT EXISTS lookups_window ON lookups (principal, kind, at_ms);
CREATE INDEX IF NOT EXISTS lookups_at ON lookups (at_ms);
