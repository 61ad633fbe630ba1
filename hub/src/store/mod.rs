//! The hub's database: one [`Store`] interface, two implementations.
//!
//! - [`sqlite::SqliteStore`]: embedded SQLite in WAL mode with `synchronous=FULL` (the default and the
//!   demo). One file; a commit is durable when it returns.
//! - [`postgres::PgStore`]: PostgreSQL, for several hub replicas sharing one database.
//!
//! [`connect`] picks the backend from the URL scheme and runs that backend's migrations
//! (`hub/migrations/{sqlite,postgres}`), which are kept identical in meaning. Queries use `$N`
//! placeholders, which both backends accept. Times are stored as unix milliseconds.
//!
//! Architecture invariant: only this module (inside `hub`) touches the hub's database.

pub mod lookups;
pub mod postgres;
pub mod rate_windows;
mod seen;
pub(crate) use seen::FLUSH_AFTER as SEEN_FLUSH_AFTER;
mod shared;
pub mod sqlite;

use std::sync::Arc;

use schemas::Identity;
use secrecy::{ExposeSecret, SecretString};

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The raw pool behind a store, for modules that own their own tables and SQL (e.g. the access
/// log), so that they do not have to grow this trait.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Run `$body` with `$pool` bound to the backend's pool and `$DB` to its sqlx database type.
macro_rules! on_db {
    ($db:expr, $pool:ident, $DB:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => {
                #[allow(dead_code)]
                type $DB = sqlx::Sqlite;
                $body
            }
            $crate::store::Db::Postgres($pool) => {
                #[allow(dead_code)]
                type $DB = sqlx::Postgres;
                $body
            }
        }
    };
}

pub(crate) use on_db;

/// `impl FromRow` for both backends by column name, for a struct whose fields are named like the
/// columns of the query that reads it: what `#[derive(sqlx::FromRow)]` does, without sqlx's
/// `macros` feature (which compiles a second copy of sqlx, both drivers and SQLite's C source for
/// the host: 127 of the 591 units of a cold release build).
macro_rules! from_row {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> for $ty {
            fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok(Self { $($field: row.try_get(stringify!($field))?),+ })
            }
        }
        impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for $ty {
            fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
                use sqlx::Row as _;
                Ok(Self { $($field: row.try_get(stringify!($field))?),+ })
            }
        }
    };
}

pub(crate) use from_row;

/// A backend's migrations, embedded in the binary as `(file name, SQL)`, in order. The unit test
/// `migrations::lists_match_the_directories` holds each list equal to its directory.
macro_rules! embedded_migrations {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        &[$(($file, include_str!(concat!("../../migrations/", $dir, "/", $file)))),+]
    };
}

/// Both backends' migrations, embedded from `hub/migrations/$dir`: the two directories hold the
/// same file names (kept identical in meaning), so the list is written once.
macro_rules! migrations_of {
    ($dir:literal) => {
        embedded_migrations!($dir:
            "0001_foundation.sql",
            "0002_access_log.sql",
            "0003_verifications.sql",
            "0004_verification_idempotency.sql",
            "0005_letter_follow_ups.sql",
            "0006_log_rotations.sql",
            "0007_lookups.sql",
            "0008_cases.sql",
            "0009_referral_slips.sql",
            "0010_outbox_escalation.sql",
            "0011_events_monitoring.sql",
            "0012_slip_escalation.sql",
            "0013_warnings.sql",
            "0015_village_reports.sql",
            "0017_rate_windows.sql",
        )
    };
}

/// `hub/migrations/sqlite`.
pub(crate) const SQLITE_MIGRATIONS: &[(&str, &str)] = migrations_of!("sqlite");

/// `hub/migrations/postgres`.
pub(crate) const POSTGRES_MIGRATIONS: &[(&str, &str)] = migrations_of!("postgres");

/// The migrator for embedded migrations, as `sqlx::migrate!` builds it from a directory: a file
/// `NNNN_some_name.sql` is version NNNN, description "some name", one-way, and runs outside a
/// transaction when its SQL starts with `-- no-transaction`. Checksums are sqlx's own, so a
/// database migrated by an earlier build of the hub is recognised.
pub(crate) fn migrator(
    files: &[(&str, &'static str)],
) -> Result<sqlx::migrate::Migrator, StoreError> {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let mut migrations = Vec::with_capacity(files.len());
    for (name, sql) in files {
        let parsed = name
            .strip_suffix(".sql")
            .and_then(|stem| stem.split_once('_'))
            .and_then(|(version, description)| Some((version.parse::<i64>().ok()?, description)));
        let Some((version, description)) = parsed else {
            return Err(StoreError::Migrate(sqlx::migrate::MigrateError::Source(
                format!("migration file name {name:?} is not NNNN_description.sql").into(),
            )));
        };
        migrations.push(Migration::new(
            version,
            description.replace('_', " ").into(),
            MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(*sql),
            sql.starts_with("-- no-transaction"),
        ));
    }
    Ok(Migrator::with_migrations(migrations))
}

/// Begin a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: the write lock is
/// taken at the start (waiting up to the busy timeout), so a transaction that reads before it
/// writes cannot fail with `SQLITE_BUSY` when another connection commits in between (a deferred
/// transaction in WAL mode cannot upgrade its stale read snapshot to a write, and SQLite refuses
/// at once, without waiting). On PostgreSQL an ordinary `BEGIN`.
pub trait BeginWrite {
    type Database: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>,
    > + Send;
}

impl BeginWrite for sqlx::SqlitePool {
    type Database = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>,
    > + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for sqlx::PgPool {
    type Database = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<
        Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>,
    > + Send {
        self.begin()
    }
}

/// A store failure. The message never contains the database URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL scheme (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
}

/// A client certificate that has connected, for operators rotating certificates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ClientSeen {
    pub serial: String,
    pub uri: String,
    pub role: String,
    pub organisation: String,
    pub division: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub connections: i64,
}

/// The hub's persistent state. Every method is durable when it returns `Ok`, except
/// [`Store::record_client_seen`].
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// The underlying pool (cheap clone).
    fn db(&self) -> Db;

    /// A round trip to the database (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Read a metadata value.
    async fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Insert or replace a metadata value.
    async fn meta_put(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Insert a metadata value only if the key is absent; returns the value now stored.
    async fn meta_put_if_absent(&self, key: &str, value: &str) -> Result<String, StoreError>;

    /// Count a connection by this certificate. The one exception to "durable when it returns": the
    /// count is kept in memory and written with others at most a second later ([`seen`]), so a
    /// handshake costs no commit; [`Store::clients_seen`] writes what is pending first.
    async fn record_client_seen(&self, identity: &Identity) -> Result<(), StoreError>;

    /// Write the connection counts kept in memory (the periodic flusher and shutdown call this).
    async fn flush_clients_seen(&self) -> Result<(), StoreError>;

    /// All certificates seen, most recent first (after writing what is pending).
    async fn clients_seen(&self) -> Result<Vec<ClientSeen>, StoreError>;
}

/// Open the database named by `url`, run migrations and return the store.
pub async fn connect(
    url: &SecretString,
    max_connections: u32,
) -> Result<Arc<dyn Store>, StoreError> {
    let raw = url.expose_secret();
    if raw.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect(raw, max_connections).await?,
        ))
    } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PgStore::connect(raw, max_connections).await?,
        ))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

pub(crate) fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

#[cfg(test)]
mod migrations {
    use super::*;

    fn names(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn lists_match_the_directories() {
        for (dir, list) in [
            ("sqlite", SQLITE_MIGRATIONS),
            ("postgres", POSTGRES_MIGRATIONS),
        ] {
            let listed: Vec<String> = list.iter().map(|(n, _)| (*n).to_owned()).collect();
            assert_eq!(
                listed,
                names(dir),
                "hub/migrations/{dir} and its embedded list differ"
            );
            let m = migrator(list).unwrap();
            assert_eq!(m.iter().count(), listed.len());
        }
    }

    #[test]
    fn versions_descriptions_and_checksums_are_what_sqlx_migrate_gave() {
        let m = migrator(&[("0007_lookups_and_more.sql", "CREATE TABLE t (x INTEGER);")]).unwrap();
        let first = m.iter().next().unwrap();
        assert_eq!(first.version, 7);
        assert_eq!(first.description, "lookups and more");
        assert!(!first.no_tx);
        assert!(migrator(&[("lookups.sql", "")]).is_err());
        // `sqlx::migrate!` stored SHA-384 of the file as it is: a database an earlier build
        // migrated must be recognised, not refused as edited.
        for list in [SQLITE_MIGRATIONS, POSTGRES_MIGRATIONS] {
            for (m, (name, sql)) in migrator(list).unwrap().iter().zip(list.iter()) {
                let digest = ring::digest::digest(&ring::digest::SHA384, sql.as_bytes());
                assert_eq!(m.checksum.as_ref(), digest.as_ref(), "{name}");
            }
        }
    }
}
