//! The shared request budget's windows (`0017_rate_windows.sql`): per identity URI and fixed window,
//! how many requests the replicas admitted. [`add`] adds one replica's batch and returns the totals
//! in ONE statement; [`prune`] deletes the windows that have ended. The budget itself (what a count
//! means, when to refuse) is [`crate::ratelimit::shared`]'s.
//!
//! Only PostgreSQL runs [`add`] in production (several replicas share it); the table and these
//! functions work on SQLite too, which the unit tests use.

use crate::store::BeginWrite as _;
use sqlx::QueryBuilder;

use crate::store::{Db, StoreError, on_db};

/// One identity's admissions in one window: `(identity URI, window start in unix ms, count)`.
pub type WindowRow = (String, i64, i64);

const PG_ADD: &str = "INSERT INTO rate_windows (identity, window_start_ms, n) \
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) \
    ON CONFLICT (identity, window_start_ms) DO UPDATE SET n = rate_windows.n + excluded.n \
    RETURNING identity, window_start_ms, n";

const TAIL: &str = " ON CONFLICT (identity, window_start_ms) DO UPDATE SET n = rate_windows.n + excluded.n \
    RETURNING identity, window_start_ms, n";

/// Rows per SQLite statement (3 bind parameters each, under SQLite's limit).
const SQLITE_CHUNK: usize = 300;

/// Add `rows` (one per identity and window; they are sorted here so that two replicas lock the
/// same rows in the same order and never deadlock) and return the totals after the addition,
/// every replica's admissions included. PostgreSQL: one statement whatever the batch size.
pub async fn add(db: &Db, rows: &[WindowRow]) -> Result<Vec<WindowRow>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = rows.to_vec();
    rows.sort_unstable();
    // PostgreSQL refuses to update one row twice in a statement: merge duplicates.
    rows.dedup_by(|b, a| {
        if a.0 == b.0 && a.1 == b.1 {
            a.2 += b.2;
            true
        } else {
            false
        }
    });
    match db {
        Db::Postgres(pool) => {
            let (ids, starts, ns): (Vec<String>, Vec<i64>, Vec<i64>) =
                rows.into_iter().fold(Default::default(), |mut acc, r| {
                    acc.0.push(r.0);
                    acc.1.push(r.1);
                    acc.2.push(r.2);
                    acc
                });
            Ok(sqlx::query_as(PG_ADD)
                .bind(ids)
                .bind(starts)
                .bind(ns)
                .fetch_all(pool)
                .await?)
        }
        Db::Sqlite(pool) => {
            let mut tx = pool.begin_write().await?;
            let mut out = Vec::with_capacity(rows.len());
            for chunk in rows.chunks(SQLITE_CHUNK) {
                let mut q = QueryBuilder::<sqlx::Sqlite>::new(
                    "INSERT INTO rate_windows (identity, window_start_ms, n) ",
                );
                q.push_values(chunk, |mut r, (id, start, n)| {
                    r.push_bind(id.clone()).push_bind(*start).push_bind(*n);
                });
                q.push(TAIL);
                out.extend(
                    q.build_query_as::<WindowRow>()
                        .persistent(false)
                        .fetch_all(&mut *tx)
                        .await?,
                );
            }
            tx.commit().await?;
            Ok(out)
        }
    }
}

/// The total of one identity in one window (0 when nobody was admitted).
pub async fn total(db: &Db, identity: &str, window_start_ms: i64) -> Result<i64, StoreError> {
    let n: Option<(i64,)> = on_db!(db, pool, _DB => {
        sqlx::query_as("SELECT n FROM rate_windows WHERE identity = $1 AND window_start_ms = $2")
            .bind(identity)
            .bind(window_start_ms)
            .fetch_optional(pool)
            .await?
    });
    Ok(n.map_or(0, |r| r.0))
}

/// Delete the windows that started before `before_ms` (those that have ended); returns how many.
pub async fn prune(db: &Db, before_ms: i64) -> Result<u64, StoreError> {
    Ok(on_db!(db, pool, _DB => {
        sqlx::query("DELETE FROM rate_windows WHERE window_start_ms < $1")
            .bind(before_ms)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}
