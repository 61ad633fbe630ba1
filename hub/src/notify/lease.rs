//! 租约: a deployment-wide lease (`leases` table) so that one replica at a time runs the
//! escalation scan and the webhook sender. Taken or renewed with one conditional statement: the
//! row is written only if it is free, expired, or already ours. On PostgreSQL the statement is
//! atomic across processes (row lock on the primary key); on SQLite across connections of one
//! file. A holder that dies keeps the lease until it expires (`[escalation] lease_secs`).

use crate::store::{Db, StoreError, on_db};

/// The lease of the escalation scan and the sender.
pub const ESCALATION_LEASE: &str = "escalation";

/// Take or renew `name` for `holder` until `now_ms + ttl_ms`. `true` when `holder` holds it.
pub async fn acquire(
    db: &Db,
    name: &str,
    holder: &str,
    now_ms: i64,
    ttl_ms: i64,
) -> Result<bool, StoreError> {
    let n = on_db!(db, p, _DB => {
        sqlx::query(
            "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms \
             WHERE leases.holder = excluded.holder OR leases.expires_ms < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now_ms + ttl_ms)
        .bind(now_ms)
        .execute(p)
        .await?
        .rows_affected()
    });
    Ok(n == 1)
}

/// Give the lease up (on a clean stop), so another replica takes over at once.
pub async fn release(db: &Db, name: &str, holder: &str) -> Result<(), StoreError> {
    on_db!(db, p, _DB => {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(p)
            .await?;
    });
    Ok(())
}

/// Who holds `name` and until when (for tests and operators).
pub async fn holder(db: &Db, name: &str) -> Result<Option<(String, i64)>, StoreError> {
    Ok(on_db!(db, p, _DB => {
        sqlx::query_as("SELECT holder, expires_ms FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(p)
            .await?
    }))
}
