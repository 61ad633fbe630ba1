//! The tables of `0011_events_monitoring.sql`: department events, the households under
//! monitoring, and the monitoring list's uploads. Personal fields arrive here already sealed; the
//! person is a keyed pseudonym.

use crate::store::{Db, StoreError, on_db};

/// Where an event's person was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the monitoring list (its registered township and village).
    Monitoring,
    /// Through the person's most recent case.
    Case,
    /// Not placed (yet): kept and listed.
    Unmatched,
}

impl Placement {
    pub fn code(self) -> &'static str {
        match self {
            Placement::Monitoring => "monitoring",
            Placement::Case => "case",
            Placement::Unmatched => "unmatched",
        }
    }
    pub fn from_code(code: &str) -> Option<Self> {
        [Placement::Monitoring, Placement::Case, Placement::Unmatched]
            .into_iter()
            .find(|p| p.code() == code)
    }
}

/// A department event as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub event_id: String,
    pub received_ms: i64,
    /// The full identity URI that pushed it.
    pub pushed_by: String,
    pub department: String,
    pub kind: String,
    pub occurred_ms: i64,
    pub issued_ms: i64,
    /// The person's keyed pseudonym.
    pub subject: String,
    /// Keyed hash of the canonical event (a replay has the same).
    pub body_hash: String,
    /// The canonical `event` JSON as received, sealed (AAD: the event id).
    pub sealed: String,
    pub key_id: String,
    /// The signature object (`{alg, key_id, value}`) as JSON.
    pub signature: String,
    pub placement: String,
    /// Where it was placed on receipt (what its receipt says).
    pub receipt_placement: String,
    pub township: Option<String>,
    pub village: Option<String>,
    pub placed_ms: Option<i64>,
    pub log_index: i64,
}

const EVENT_COLUMNS: &str = "event_id, received_ms, pushed_by, department, kind, occurred_ms, issued_ms, subject, body_hash, sealed, key_id, signature, placement, receipt_placement, township, village, placed_ms, log_index";

pub async fn get_event(db: &Db, event_id: &str) -> Result<Option<EventRow>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM dept_events WHERE event_id = $1");
    let t: Option<EventRow> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(event_id).fetch_optional(p).await?
    });
    Ok(t)
}

/// Store an event. `false` when its id is taken (nothing is written).
pub async fn insert_event(db: &Db, e: &EventRow) -> Result<bool, StoreError> {
    let sql = format!(
        "INSERT INTO dept_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ON CONFLICT (event_id) DO NOTHING"
    );
    let n = on_db!(db, p, _DB => {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&e.event_id)
            .bind(e.received_ms)
            .bind(&e.pushed_by)
            .bind(&e.department)
            .bind(&e.kind)
            .bind(e.occurred_ms)
            .bind(e.issued_ms)
            .bind(&e.subject)
            .bind(&e.body_hash)
            .bind(&e.sealed)
            .bind(&e.key_id)
            .bind(&e.signature)
            .bind(&e.placement)
            .bind(&e.receipt_placement)
            .bind(&e.township)
            .bind(&e.village)
            .bind(e.placed_ms)
            .bind(e.log_index)
            .execute(p)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

/// The unmatched events, oldest first, after the `(received_ms, event_id)` cursor.
pub async fn unmatched_events(
    db: &Db,
    after: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let (after_ms, after_id) = after.unzip();
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM dept_events WHERE placement = 'unmatched' \
           AND ($1 IS NULL OR received_ms > $1 OR (received_ms = $1 AND event_id > $2)) \
         ORDER BY received_ms, event_id LIMIT $3"
    );
    let rows: Vec<EventRow> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(after_ms)
            .bind(after_id)
            .bind(limit)
            .fetch_all(p)
            .await?
    });
    Ok(rows)
}

/// The events of a person (by pseudonym), oldest first: for the warning rules, and the tests.
pub async fn events_of(db: &Db, subject: &str) -> Result<Vec<EventRow>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM dept_events WHERE subject = $1 ORDER BY occurred_ms, event_id"
    );
    let rows: Vec<EventRow> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(subject).fetch_all(p).await?
    });
    Ok(rows)
}

/// Where a person is: the registered township and village of an active monitoring entry (the most
/// recently updated), else those of their most recent case, else nothing.
pub async fn place(
    db: &Db,
    subject: &str,
) -> Result<(Placement, Option<String>, Option<String>), StoreError> {
    type T = (String, Option<String>);
    let monitored: Option<T> = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT township, village FROM monitored_households WHERE subject = $1 AND status = 'active' ORDER BY updated_ms DESC, category LIMIT 1")
            .bind(subject)
            .fetch_optional(p)
            .await?
    });
    if let Some((t, v)) = monitored {
        return Ok((Placement::Monitoring, Some(t), v));
    }
    let case: Option<T> = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT township, village FROM cases WHERE applicant = $1 ORDER BY created_ms DESC, id DESC LIMIT 1")
            .bind(subject)
            .fetch_optional(p)
            .await?
    });
    Ok(match case {
        Some((t, v)) => (Placement::Case, Some(t), v),
        None => (Placement::Unmatched, None, None),
    })
}

/// Place the unmatched events of people now on the monitoring list (active): their township and
/// village from the list. Returns how many events were placed.
pub async fn replace_unmatched(db: &Db, now_ms: i64) -> Result<u64, StoreError> {
    const PICK: &str = "FROM monitored_households m WHERE m.subject = dept_events.subject AND m.status = 'active' ORDER BY m.updated_ms DESC, m.category LIMIT 1";
    let sql = format!(
        "UPDATE dept_events SET placement = 'monitoring', \
           township = (SELECT m.township {PICK}), \
           village = (SELECT m.village {PICK}), \
           placed_ms = $1 \
         WHERE placement = 'unmatched' AND EXISTS (SELECT 1 FROM monitored_households m WHERE m.subject = dept_events.subject AND m.status = 'active')"
    );
    Ok(on_db!(db, p, _DB => {
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_ms).execute(p).await?.rows_affected()
    }))
}

// ==== the monitoring list ====

/// One household under monitoring, as written.
#[derive(Debug, Clone)]
pub struct HouseholdRow {
    /// The household head's keyed pseudonym.
    pub subject: String,
    pub category: String,
    pub township: String,
    pub village: Option<String>,
    /// `YYYY-MM-DD`.
    pub since: String,
    /// `active` or `removed`.
    pub status: String,
    /// Sealed `{resident_id, reason}` (AAD: subject and category).
    pub sealed: String,
    pub key_id: String,
    /// Keyed hash of what an upload may change (township, village, since, reason, status).
    pub content_hash: String,
    pub updated_ms: i64,
    pub updated_by: String,
    pub upload_id: Option<String>,
}

/// What writing one household did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Inserted,
    Updated,
    Unchanged,
}

/// Upsert a batch of households by (subject, category) in one transaction: a row whose content
/// hash is unchanged is not written. Returns what happened to each, in order. Later rows of the
/// batch with the same key see the earlier ones.
pub async fn upsert_households(db: &Db, rows: &[HouseholdRow]) -> Result<Vec<Written>, StoreError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(rows.len());
    on_db!(db, p, DB => {
        let mut tx = p.begin().await?;
        // What the batch's keys hold now, in one query.
        let mut known: std::collections::HashMap<(String, String), String> = std::collections::HashMap::new();
        for chunk in rows.chunks(500) {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "SELECT subject, category, content_hash FROM monitored_households WHERE subject IN (",
            );
            let mut sep = q.separated(", ");
            for r in chunk {
                sep.push_bind(r.subject.clone());
            }
            q.push(")");
            let found: Vec<(String, String, String)> =
                q.build_query_as().fetch_all(&mut *tx).await?;
            for (s, c, h) in found {
                known.insert((s, c), h);
            }
        }
        for r in rows {
            let key = (r.subject.clone(), r.category.clone());
            let written = match known.get(&key) {
                Some(h) if *h == r.content_hash => Written::Unchanged,
                Some(_) => {
                    sqlx::query("UPDATE monitored_households SET township = $1, village = $2, since = $3, status = $4, sealed = $5, key_id = $6, content_hash = $7, updated_ms = $8, updated_by = $9, upload_id = $10 WHERE subject = $11 AND category = $12")
                        .bind(&r.township)
                        .bind(&r.village)
                        .bind(&r.since)
                        .bind(&r.status)
                        .bind(&r.sealed)
                        .bind(&r.key_id)
                        .bind(&r.content_hash)
                        .bind(r.updated_ms)
                        .bind(&r.updated_by)
                        .bind(&r.upload_id)
                        .bind(&r.subject)
                        .bind(&r.category)
                        .execute(&mut *tx)
                        .await?;
                    Written::Updated
                }
                None => {
                    sqlx::query("INSERT INTO monitored_households (subject, category, township, village, since, status, sealed, key_id, content_hash, updated_ms, updated_by, upload_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                        .bind(&r.subject)
                        .bind(&r.category)
                        .bind(&r.township)
                        .bind(&r.village)
                        .bind(&r.since)
                        .bind(&r.status)
                        .bind(&r.sealed)
                        .bind(&r.key_id)
                        .bind(&r.content_hash)
                        .bind(r.updated_ms)
                        .bind(&r.updated_by)
                        .bind(&r.upload_id)
                        .execute(&mut *tx)
                        .await?;
                    Written::Inserted
                }
            };
            if written != Written::Unchanged {
                known.insert(key, r.content_hash.clone());
            }
            out.push(written);
        }
        tx.commit().await?;
    });
    Ok(out)
}

/// The monitoring entry of (subject, category): its status and content hash.
pub async fn household(
    db: &Db,
    subject: &str,
    category: &str,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(on_db!(db, p, _DB => {
        sqlx::query_as("SELECT status, content_hash FROM monitored_households WHERE subject = $1 AND category = $2")
            .bind(subject)
            .bind(category)
            .fetch_optional(p)
            .await?
    }))
}

/// Mark (subject, category) removed. `false` when there is no such entry or it is removed already.
pub async fn remove_household(
    db: &Db,
    subject: &str,
    category: &str,
    now_ms: i64,
    by: &str,
) -> Result<bool, StoreError> {
    let n = on_db!(db, p, _DB => {
        sqlx::query("UPDATE monitored_households SET status = 'removed', content_hash = 'removed', updated_ms = $1, updated_by = $2 WHERE subject = $3 AND category = $4 AND status = 'active'")
            .bind(now_ms)
            .bind(by)
            .bind(subject)
            .bind(category)
            .execute(p)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

/// One bulk upload and its counts.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: String,
    pub created_ms: i64,
    pub uploaded_by: String,
    pub format: String,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub rejected: i64,
    pub log_index: i64,
}

pub async fn insert_upload(db: &Db, u: &UploadRow) -> Result<(), StoreError> {
    on_db!(db, p, _DB => {
        sqlx::query("INSERT INTO monitoring_uploads (id, created_ms, uploaded_by, format, inserted, updated, unchanged, rejected, log_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&u.id)
            .bind(u.created_ms)
            .bind(&u.uploaded_by)
            .bind(&u.format)
            .bind(u.inserted)
            .bind(u.updated)
            .bind(u.unchanged)
            .bind(u.rejected)
            .bind(u.log_index)
            .execute(p)
            .await?;
    });
    Ok(())
}

/// How many households are on the list with this status (tests, benchmarks).
pub async fn count_households(db: &Db, status: &str) -> Result<i64, StoreError> {
    let (n,): (i64,) = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT COUNT(*) FROM monitored_households WHERE status = $1")
            .bind(status)
            .fetch_one(p)
            .await?
    });
    Ok(n)
}
