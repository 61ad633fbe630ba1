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

/// The hub's persistent state. Every method is durable when it returns `Ok`.
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

    /// Count a connection by this certificate (upsert on the serial).
    async fn record_client_seen(&self, identity: &Identity) -> Result<(), StoreError>;

    /// All certificates seen, most recent first.
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
