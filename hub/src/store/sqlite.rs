//! SQLite implementation of [`Store`]: WAL journal, `synchronous=FULL`, busy timeout.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{Backend, StoreError};

pub struct SqliteStore {
    pool: SqlitePool,
    seen: super::seen::SeenBuffer,
}

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        super::migrator(super::SQLITE_MIGRATIONS)?
            .run(&pool)
            .await?;
        Ok(Self {
            pool,
            seen: Default::default(),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

super::shared::shared_store_impl!(SqliteStore, Backend::Sqlite, super::Db::Sqlite);

/// WAL pages after which the dedicated writer checkpoints by itself (64 MiB of 4 KiB pages): only a
/// safety net, [`checkpoint_in_background`] normally keeps the WAL far below it.
const WRITER_AUTOCHECKPOINT_PAGES: &str = "16384";

/// A pool of one long-lived connection for a single busy writer (the access log's group commit),
/// on the same database and settings as `pool`. Two reasons: its page cache stays warm (in WAL
/// mode a connection drops its cache whenever another connection has committed, and a pooled
/// connection taken round-robin nearly always has), and it does not checkpoint the WAL on its
/// commit path (SQLite's default runs a checkpoint, with an fsync of the database file, inside
/// the commit that crosses 1,000 WAL pages); [`checkpoint_in_background`] does that instead.
pub async fn dedicated_writer(pool: &SqlitePool) -> Result<SqlitePool, sqlx::Error> {
    let options = (*pool.connect_options())
        .clone()
        .pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES);
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
}

/// Copies committed WAL frames into the database file on `pool` (`PRAGMA wal_checkpoint(PASSIVE)`:
/// never blocks readers or the writer) after each change `changed` reports, at most once per
/// `every`, until `changed`'s sender is gone. Durability does not depend on it: commits are
/// durable in the WAL (`synchronous=FULL`).
pub async fn checkpoint_in_background(
    pool: SqlitePool,
    mut changed: tokio::sync::watch::Receiver<u64>,
    every: Duration,
) {
    while changed.changed().await.is_ok() {
        tokio::time::sleep(every).await;
        changed.mark_unchanged();
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %e, "background WAL checkpoint failed (the next one retries)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BeginWrite as _;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("hub.db").display());
        let store = SqliteStore::connect(&url, 4).await.expect("connect");
        sqlx::query("CREATE TABLE t (x INTEGER NOT NULL)")
            .execute(store.pool())
            .await
            .expect("create");
        (dir, store)
    }

    /// Reads in `tx`, lets another connection try to commit a write meanwhile, then writes in
    /// `tx`; returns the outcome of the write and of the commit.
    async fn read_then_write(
        store: &SqliteStore,
        mut tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    ) -> Result<(), sqlx::Error> {
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut *tx)
            .await?;
        let other = {
            let pool = store.pool().clone();
            tokio::spawn(async move {
                sqlx::query("INSERT INTO t (x) VALUES (2)")
                    .execute(&pool)
                    .await
            })
        };
        // Long enough for the other INSERT to commit if nothing holds it back.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let written = sqlx::query("INSERT INTO t (x) VALUES (1)")
            .execute(&mut *tx)
            .await;
        let committed = match written {
            Ok(_) => tx.commit().await,
            Err(e) => Err(e),
        };
        other.await.expect("join").expect("the other writer");
        committed
    }

    #[tokio::test]
    async fn a_deferred_transaction_that_reads_first_fails_on_a_concurrent_commit() {
        // The failure `begin_write` exists for (seen as a 500 in a monitoring-list upload): a
        // deferred transaction cannot upgrade its read snapshot once another connection committed.
        let (_dir, store) = store().await;
        let tx = store.pool().begin().await.expect("begin");
        let e = read_then_write(&store, tx)
            .await
            .expect_err("a deferred transaction must fail here");
        assert!(e.to_string().contains("database is locked"), "{e}");
    }

    #[tokio::test]
    async fn a_write_transaction_that_reads_first_survives_a_concurrent_commit() {
        let (_dir, store) = store().await;
        let tx = store.pool().begin_write().await.expect("begin");
        read_then_write(&store, tx).await.expect("write and commit");
        let rows: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY rowid")
            .fetch_all(store.pool())
            .await
            .expect("rows");
        // Ours first: the other writer waited for our commit.
        assert_eq!(rows, vec![1, 2]);
    }
}
