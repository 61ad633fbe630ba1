-- 村级报告 (issue 12 item 4): reports village assistants (村级救助协理员) file about households of
-- their village. Times are unix milliseconds. No resident ID in clear: the household head is the
-- keyed pseudonym (subject, the scheme of dept_events.subject); the head's resident ID and the
-- assistant's note are sealed (AES-256-GCM under key_id) bound to the report id.
--
-- A report is also stored as an event in dept_events (event_id = id, department 'village', kind
-- 'village.<observation>', placement 'village_report', in the report's township and village) in the same transaction,
-- so the warning rules read it like any department event and a warning it raises names it as its
-- signal. warning_id: the warning it raised or attached to, if any. village: the household's
-- registered village when the hub knows it (monitoring list, latest case), else the one reported.
CREATE TABLE IF NOT EXISTS village_reports (
    id           TEXT PRIMARY KEY NOT NULL,
    created_ms   BIGINT NOT NULL,
    filed_by     TEXT NOT NULL,
    township     TEXT NOT NULL,
    village      TEXT NOT NULL,
    subject      TEXT NOT NULL,
    observation  TEXT NOT NULL,
    observed_ms  BIGINT NOT NULL,
    sealed       TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    warning_id   TEXT,
    log_index    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS village_reports_village ON village_reports (village, id);
CREATE INDEX IF NOT EXISTS village_reports_township ON village_reports (township, id);
