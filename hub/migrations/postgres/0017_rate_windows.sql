-- The shared request budget (issue 15 item 2): how many requests each identity was admitted in one
-- fixed window, summed over every replica. Replicas add what they admitted locally in batches
-- (`rate_limits.shared.flush_ms`) and learn the deployment-wide count; see `hub/src/ratelimit/shared.rs`.
-- Used on PostgreSQL only (on SQLite the hub is a single process and the in-process budget is the
-- budget); the table exists on both backends so that the schemas stay alike. Keyed by the identity URI
-- (never a resident ID). Windows start at multiples of `rate_limits.shared.window_ms` since the epoch
-- (unix milliseconds); the cleanup task deletes the windows that have ended.
CREATE TABLE IF NOT EXISTS rate_windows (
    identity        TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    n               BIGINT NOT NULL,
    PRIMARY KEY (identity, window_start_ms)
);
CREATE INDEX IF NOT EXISTS rate_windows_start ON rate_windows (window_start_ms);
