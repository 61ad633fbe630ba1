-- Idempotency keys of verification requests (Idempotency-Key header), per requesting principal. A key
-- is reserved before the departments are asked and names the verification it produced; the request
-- hash detects a key reused for a different request. Times are unix milliseconds.
CREATE TABLE IF NOT EXISTS verification_idempotency (
    requested_by    TEXT NOT NULL,
    idem_key        TEXT NOT NULL,
    verification_id TEXT NOT NULL,
    request_sha256  TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    PRIMARY KEY (requested_by, idem_key)
);
