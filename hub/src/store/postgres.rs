//! PostgreSQL implementation of [`Store`], for several hub replicas sharing one database.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::{Backend, StoreError};

pub struct PgStore {
    pool: PgPool,
    seen: super::seen::SeenBuffer,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        super::migrator(super::POSTGRES_MIGRATIONS)?
            .run(&pool)
            .await?;
        Ok(Self {
            pool,
            seen: Default::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

super::shared::shared_store_impl!(PgStore, Backend::Postgres, super::Db::Postgres);
