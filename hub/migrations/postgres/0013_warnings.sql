-- 预警 (issue 12 items 5 and 6): warnings raised by the rules of policies/warnings.toml and the
-- signals (department events) behind them. Times are unix milliseconds. No resident ID: the
-- household is the keyed pseudonym its events were placed under (dept_events.subject).
--
-- warnings: one row per warning. At most one open (state open or acknowledged) warning per
-- household and rule (warnings_open_once); later signals attach to it, a raised tier applies to
-- it. township/village: the household's registered township (the queue it lands in) and village
-- when known. due_ms: the first-contact deadline (emergency 2 h, urgent 24 h, normal 3 working
-- days; provisional = 1 when counted Monday-Friday into a year without a calendar file).
-- case_id: the case it was converted to (the case finds it through warnings_case). The dismissal
-- reason is sealed (AES-256-GCM, key_id) bound to the warning id.
CREATE TABLE IF NOT EXISTS warnings (
    id           TEXT PRIMARY KEY NOT NULL,
    household    TEXT NOT NULL,
    rule         TEXT NOT NULL,
    state        TEXT NOT NULL,
    tier         TEXT NOT NULL,
    hardship     TEXT NOT NULL,
    township     TEXT NOT NULL,
    village      TEXT,
    created_ms   BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL,
    due_ms       BIGINT NOT NULL,
    provisional  BIGINT NOT NULL,
    signals      BIGINT NOT NULL,
    first_event  TEXT NOT NULL,
    acknowledged_ms BIGINT,
    closed_ms    BIGINT,
    closed_by    TEXT,
    reason       TEXT,
    key_id       TEXT,
    case_id      TEXT,
    version      BIGINT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS warnings_open_once ON warnings (household, rule)
    WHERE state IN ('open', 'acknowledged');
CREATE INDEX IF NOT EXISTS warnings_township ON warnings (township, id);
CREATE INDEX IF NOT EXISTS warnings_case ON warnings (case_id);

-- warning_signals: one row per (event, rule) the event is a candidate for (the right kind, for a
-- household the rule applies to), fired or not: an amount rule sums its window from here, and
-- [repeat] counts the household's fired signals (warning_id set) within its window.
CREATE TABLE IF NOT EXISTS warning_signals (
    event_id     TEXT NOT NULL,
    rule         TEXT NOT NULL,
    household    TEXT NOT NULL,
    occurred_ms  BIGINT NOT NULL,
    amount_fen   BIGINT,
    warning_id   TEXT,
    tier         TEXT,
    raised       BIGINT NOT NULL,
    at_ms        BIGINT NOT NULL,
    PRIMARY KEY (event_id, rule)
);
CREATE INDEX IF NOT EXISTS warning_signals_household ON warning_signals (household, occurred_ms);
CREATE INDEX IF NOT EXISTS warning_signals_warning ON warning_signals (warning_id, occurred_ms);
