//! The anti-trawling lookups (`0007_lookups.sql`): per caseworker identity URI, the latest time each
//! household, each person and each emergency check without a letter was looked up. The caps and
//! windows are [`crate::ratelimit`]'s; this module only records, counts and prunes, in SQL shared by
//! both backends.
//!
//! [`record`] runs in one transaction that is serialized per caseworker: on SQLite its first
//! statement is a write, so it holds the database's write lock from the start; on PostgreSQL it first
//! takes a transaction-scoped advisory lock on the identity URI, which serializes that caseworker's
//! lookups across every replica sharing the database. A request refused by the caps is rolled back and
//! leaves no row.

use crate::log::TxConn;
use crate::store::BeginWrite as _;
use sqlx::QueryBuilder;

use crate::store::{Db, StoreError, on_db};

/// What a row counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LookupKind {
    /// A household, by its pseudonym (the applicant's).
    Household,
    /// A person (any member), by their keyed pseudonym.
    Person,
    /// An emergency check run without an authorization letter, by its verification id.
    EmergencyWithoutLetter,
}

impl LookupKind {
    pub const ALL: [LookupKind; 3] = [
        LookupKind::Household,
        LookupKind::Person,
        LookupKind::EmergencyWithoutLetter,
    ];

    /// The `kind` column.
    pub fn code(self) -> &'static str {
        match self {
            LookupKind::Household => "household",
            LookupKind::Person => "person",
            LookupKind::EmergencyWithoutLetter => "emergency",
        }
    }

    fn from_code(s: &str) -> Option<LookupKind> {
        LookupKind::ALL.into_iter().find(|k| k.code() == s)
    }
}

/// The rows of one kind inside its window: how many, and the oldest latest-lookup among them (when a
/// slot frees up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCount {
    pub count: u64,
    pub oldest_ms: Option<i64>,
}

/// One caseworker's rows inside their windows, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupCounts {
    pub households: WindowCount,
    pub people: WindowCount,
    pub emergencies: WindowCount,
}

impl LookupCounts {
    fn slot(&mut self, kind: LookupKind) -> &mut WindowCount {
        match kind {
            LookupKind::Household => &mut self.households,
            LookupKind::Person => &mut self.people,
            LookupKind::EmergencyWithoutLetter => &mut self.emergencies,
        }
    }
}

/// For each kind, the instant after which a row is inside its window (`at_ms > since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since {
    pub households: i64,
    pub people: i64,
    pub emergencies: i64,
}

/// Rows per insert statement (4 bind parameters each, well under every backend's limit). The
/// statement's text depends on the row count: it is not kept in the statement cache
/// (`.persistent(false)`, see `crate::log::store`'s `CHUNK`).
const CHUNK: usize = 200;

const UPSERT_TAIL: &str = " ON CONFLICT (principal, kind, key) DO UPDATE SET at_ms = \
    CASE WHEN excluded.at_ms > lookups.at_ms THEN excluded.at_ms ELSE lookups.at_ms END";

const COUNT: &str = "SELECT kind, COUNT(*), MIN(at_ms) FROM lookups WHERE principal = $1 AND \
    ((kind = 'household' AND at_ms > $2) OR (kind = 'person' AND at_ms > $3) \
    OR (kind = 'emergency' AND at_ms > $4)) GROUP BY kind";

const PRUNE: &str = "DELETE FROM lookups WHERE (kind = 'household' AND at_ms <= $1) \
    OR (kind = 'person' AND at_ms <= $2) OR (kind = 'emergency' AND at_ms <= $3) \
    OR kind NOT IN ('household', 'person', 'emergency')";

/// PostgreSQL: a transaction-scoped advisory lock per identity URI (class 7407, "trawl"), held until
/// commit or rollback. Hash collisions only make two caseworkers wait for each other.
const PG_LOCK: &str = "SELECT pg_advisory_xact_lock(7407, hashtext($1))";

fn tally(rows: Vec<(String, i64, Option<i64>)>) -> LookupCounts {
    let mut counts = LookupCounts::default();
    for (kind, n, oldest) in rows {
        if let Some(k) = LookupKind::from_code(&kind) {
            *counts.slot(k) = WindowCount {
                count: u64::try_from(n).unwrap_or(0),
                oldest_ms: oldest,
            };
        }
    }
    counts
}

/// Record that `principal` looks up `keys` at `at_ms` (each row keeps its latest time), then count
/// the principal's rows inside their windows, this request's included. `refuse` judges the counts:
/// `Some(refusal)` rolls everything back (the request leaves no row), `None` commits. Durable when it
/// returns.
pub async fn record<T>(
    db: &Db,
    principal: &str,
    keys: &[(LookupKind, &str)],
    at_ms: i64,
    since: Since,
    refuse: impl FnOnce(&LookupCounts) -> Option<T>,
) -> Result<Result<LookupCounts, T>, StoreError> {
    on_db!(db, pool, _DB => {
        let mut tx = pool.begin_write().await?;
        let counts = record_in(TxConn::from(&mut *tx), principal, keys, at_ms, since).await?;
        match refuse(&counts) {
            Some(refusal) => {
                tx.rollback().await?;
                Ok(Err(refusal))
            }
            None => {
                tx.commit().await?;
                Ok(Ok(counts))
            }
        }
    })
}

/// [`record`]'s statements on a connection inside a write transaction the caller commits or rolls
/// back (e.g. the access log's group commit, [`crate::log::AccessLog::attach`]): on PostgreSQL
/// the advisory lock on `principal` first (held to the transaction's end, so the count is
/// serialized per caseworker across replicas), then the upsert and the count, this request's rows
/// included.
pub async fn record_in(
    conn: TxConn<'_>,
    principal: &str,
    keys: &[(LookupKind, &str)],
    at_ms: i64,
    since: Since,
) -> Result<LookupCounts, StoreError> {
    let mut keys: Vec<(LookupKind, &str)> = keys.to_vec();
    // One row per key: PostgreSQL refuses to upsert the same row twice in one statement.
    keys.sort_unstable();
    keys.dedup();
    macro_rules! run {
        ($c:ident, $DB:ty) => {{
            for chunk in keys.chunks(CHUNK) {
                let mut q =
                    QueryBuilder::<$DB>::new("INSERT INTO lookups (principal, kind, key, at_ms) ");
                q.push_values(chunk, |mut r, (kind, key)| {
                    r.push_bind(principal.to_owned())
                        .push_bind(kind.code())
                        .push_bind((*key).to_owned())
                        .push_bind(at_ms);
                });
                q.push(UPSERT_TAIL);
                q.build().persistent(false).execute(&mut *$c).await?;
            }
            let rows: Vec<(String, i64, Option<i64>)> = sqlx::query_as(COUNT)
                .bind(principal)
                .bind(since.households)
                .bind(since.people)
                .bind(since.emergencies)
                .fetch_all(&mut *$c)
                .await?;
            rows
        }};
    }
    let rows = match conn {
        TxConn::Sqlite(c) => run!(c, sqlx::Sqlite),
        TxConn::Postgres(c) => {
            sqlx::query(PG_LOCK)
                .bind(principal)
                .execute(&mut *c)
                .await?;
            run!(c, sqlx::Postgres)
        }
    };
    Ok(tally(rows))
}

/// The principal's rows inside their windows, without recording anything.
pub async fn counts(db: &Db, principal: &str, since: Since) -> Result<LookupCounts, StoreError> {
    let rows: Vec<(String, i64, Option<i64>)> = on_db!(db, pool, _DB => {
        sqlx::query_as(COUNT)
            .bind(principal)
            .bind(since.households)
            .bind(since.people)
            .bind(since.emergencies)
            .fetch_all(pool)
            .await?
    });
    Ok(tally(rows))
}

/// Delete the rows outside their windows; returns how many.
pub async fn prune(db: &Db, since: Since) -> Result<u64, StoreError> {
    Ok(on_db!(db, pool, _DB => {
        sqlx::query(PRUNE)
            .bind(since.households)
            .bind(since.people)
            .bind(since.emergencies)
            .execute(pool)
            .await?
            .rows_affected()
    }))
}
