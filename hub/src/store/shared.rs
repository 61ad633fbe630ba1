//! SQL shared by both backends. Both accept `$N` placeholders and the same DDL meaning, so the
//! statements are written once and expanded into each backend's `impl Store` by [`shared_store_impl`].

/// Expands to `impl Store for $ty` with the SQL that is identical on SQLite and PostgreSQL.
/// `$ty` must have a `pool` field and a `seen` field ([`super::seen::SeenBuffer`]).
macro_rules! shared_store_impl {
    ($ty:ty, $backend:expr, $db:path) => {
#[async_trait::async_trait]
impl $crate::store::Store for $ty {
    fn backend(&self) -> $crate::store::Backend {
        $backend
    }

    fn db(&self) -> $crate::store::Db {
        $db(self.pool.clone())
    }

    async fn ping(&self) -> Result<(), $crate::store::StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn meta_get(&self, key: &str) -> Result<Option<String>, $crate::store::StoreError> {
        let row = sqlx::query("SELECT value FROM hub_meta WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| sqlx::Row::get::<String, _>(&r, 0)))
    }

    async fn meta_put(&self, key: &str, value: &str) -> Result<(), $crate::store::StoreError> {
        sqlx::query(
            "INSERT INTO hub_meta (key, value, updated_at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(key)
        .bind(value)
        .bind($crate::store::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn meta_put_if_absent(&self, key: &str, value: &str) -> Result<String, $crate::store::StoreError> {
        sqlx::query("INSERT INTO hub_meta (key, value, updated_at_ms) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .bind($crate::store::now_ms())
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM hub_meta WHERE key = $1").bind(key).fetch_one(&self.pool).await?;
        Ok(sqlx::Row::get(&row, 0))
    }

    async fn record_client_seen(&self, id: &schemas::Identity) -> Result<(), $crate::store::StoreError> {
        match self.seen.add(id, $crate::store::now_ms()) {
            Some(batch) => self.write_clients_seen(batch).await,
            None => Ok(()),
        }
    }

    async fn flush_clients_seen(&self) -> Result<(), $crate::store::StoreError> {
        self.write_clients_seen(self.seen.take()).await
    }

    async fn clients_seen(&self) -> Result<Vec<$crate::store::ClientSeen>, $crate::store::StoreError> {
        self.flush_clients_seen().await?;
        let rows = sqlx::query(
            "SELECT serial, uri, role, organisation, division, first_seen_ms, last_seen_ms, connections
             FROM clients_seen ORDER BY last_seen_ms DESC, serial",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map($crate::store::shared::client_seen_from_row).collect())
    }
}

impl $ty {
    /// One transaction for a batch of counted connections (one row per serial); a failed batch
    /// goes back to the buffer. Replicas and batches commit in any order: keep the earliest
    /// first_seen and the latest last_seen.
    async fn write_clients_seen(&self, batch: Vec<$crate::store::ClientSeen>) -> Result<(), $crate::store::StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let written: Result<(), sqlx::Error> = async {
            let mut tx = $crate::store::BeginWrite::begin_write(&self.pool).await?;
            for c in &batch {
                sqlx::query(
                    "INSERT INTO clients_seen (serial, uri, role, organisation, division, first_seen_ms, last_seen_ms, connections)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (serial) DO UPDATE SET
                         first_seen_ms = CASE WHEN excluded.first_seen_ms < clients_seen.first_seen_ms
                             THEN excluded.first_seen_ms ELSE clients_seen.first_seen_ms END,
                         last_seen_ms = CASE WHEN excluded.last_seen_ms > clients_seen.last_seen_ms
                             THEN excluded.last_seen_ms ELSE clients_seen.last_seen_ms END,
                         connections = clients_seen.connections + excluded.connections",
                )
                .bind(&c.serial)
                .bind(&c.uri)
                .bind(&c.role)
                .bind(&c.organisation)
                .bind(&c.division)
                .bind(c.first_seen_ms)
                .bind(c.last_seen_ms)
                .bind(c.connections)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = written {
            self.seen.restore(batch);
            return Err(e.into());
        }
        Ok(())
    }
}
    };
}

pub(crate) use shared_store_impl;

use sqlx::Row;

use super::ClientSeen;

pub(crate) fn client_seen_from_row<R: Row>(r: &R) -> ClientSeen
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    ClientSeen {
        serial: r.get("serial"),
        uri: r.get("uri"),
        role: r.get("role"),
        organisation: r.get("organisation"),
        division: r.get("division"),
        first_seen_ms: r.get("first_seen_ms"),
        last_seen_ms: r.get("last_seen_ms"),
        connections: r.get("connections"),
    }
}
