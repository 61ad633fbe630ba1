-- Foundation: deployment metadata and the clients that connected.
-- Times are unix milliseconds (INTEGER) in both backends so the two schemas stay identical in meaning.
CREATE TABLE IF NOT EXISTS hub_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS clients_seen (
    serial        TEXT PRIMARY KEY NOT NULL,
    uri           TEXT NOT NULL,
    role          TEXT NOT NULL,
    organisation  TEXT NOT NULL,
    division      TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    connections   INTEGER NOT NULL
);
