//! The tables of `0011_events_monitoring.sql`: department events, the households under
//! monitoring, and the monitoring list's uploads. Personal fields arrive here already sealed; the
//! person is a keyed pseudonym.

use crate::store::BeginWrite as _;
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
#[derive(Debug, Clone)]
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
crate::store::from_row!(EventRow {
    event_id,
    received_ms,
    pushed_by,
    department,
    kind,
    occurred_ms,
    issued_ms,
    subject,
    body_hash,
    sealed,
    key_id,
    signature,
    placement,
    receipt_placement,
    township,
    village,
    placed_ms,
    log_index
});

const EVENT_COLUMNS: &str = "event_id, received_ms, pushed_by, department, kind, occurred_ms, issued_ms, subject, body_hash, sealed, key_id, signature, placement, receipt_placement, township, village, placed_ms, log_index";

pub async fn get_event(db: &Db, event_id: &str) -> Result<Option<EventRow>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM dept_events WHERE event_id = $1");
    let t: Option<EventRow> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(event_id).fetch_optional(p).await?
    });
    Ok(t)
}

/// The INSERT of an event row (bind it with [`bind_event_row`]); a taken id writes nothing.
pub fn insert_event_sql() -> String {
    format!(
        "INSERT INTO dept_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ON CONFLICT (event_id) DO NOTHING"
    )
}

/// Bind an [`EventRow`] to [`insert_event_sql`].
macro_rules! bind_event_row {
    ($q:expr, $e:expr) => {
        $q.bind(&$e.event_id)
            .bind($e.received_ms)
            .bind(&$e.pushed_by)
            .bind(&$e.department)
            .bind(&$e.kind)
            .bind($e.occurred_ms)
            .bind($e.issued_ms)
            .bind(&$e.subject)
            .bind(&$e.body_hash)
            .bind(&$e.sealed)
            .bind(&$e.key_id)
            .bind(&$e.signature)
            .bind(&$e.placement)
            .bind(&$e.receipt_placement)
            .bind(&$e.township)
            .bind(&$e.village)
            .bind($e.placed_ms)
            .bind($e.log_index)
    };
}
pub(crate) use bind_event_row;

/// Store an event without evaluating the warning rules. `false` when its id is taken (nothing
/// is written). The ingest path uses [`super::rules::insert_events_in`].
pub async fn insert_event(db: &Db, e: &EventRow) -> Result<bool, StoreError> {
    let sql = insert_event_sql();
    let n = on_db!(db, p, _DB => {
        bind_event_row!(sqlx::query(sqlx::AssertSqlSafe(sql)), e)
            .execute(p)
            .await?
            .rows_affected()
    });
    Ok(n == 1)
}

/// Rows per multi-row statement here: 18 parameters a row keeps a statement at 9,000, below
/// SQLite's 32,766 and PostgreSQL's 65,535.
const ROWS_PER_STATEMENT: usize = 500;

/// The stored events among `event_ids`, by id: one query per [`ROWS_PER_STATEMENT`] ids (a batch
/// push's replay check).
pub async fn get_events(
    db: &Db,
    event_ids: &[&str],
) -> Result<std::collections::HashMap<String, EventRow>, StoreError> {
    let mut out = std::collections::HashMap::with_capacity(event_ids.len());
    for chunk in event_ids.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<EventRow> = on_db!(db, p, DB => {
            let mut q = sqlx::QueryBuilder::<DB>::new(format!(
                "SELECT {EVENT_COLUMNS} FROM dept_events WHERE event_id IN ("
            ));
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(id.to_string());
            }
            q.push(")");
            q.build_query_as().fetch_all(p).await?
        });
        out.extend(rows.into_iter().map(|r| (r.event_id.clone(), r)));
    }
    Ok(out)
}

/// Store event rows in multi-row INSERTs inside the caller's transaction; a taken id writes
/// nothing. Returns the ids written.
pub async fn insert_events_in(
    mut conn: crate::log::TxConn<'_>,
    rows: &[EventRow],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut written = std::collections::HashSet::with_capacity(rows.len());
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let ids: Vec<(String,)> = super::rules::on_tx!(conn.reborrow(), c, DB => {
            let mut q = sqlx::QueryBuilder::<DB>::new(format!("INSERT INTO dept_events ({EVENT_COLUMNS}) "));
            q.push_values(chunk, |mut r, e| {
                r.push_bind(e.event_id.clone())
                    .push_bind(e.received_ms)
                    .push_bind(e.pushed_by.clone())
                    .push_bind(e.department.clone())
                    .push_bind(e.kind.clone())
                    .push_bind(e.occurred_ms)
                    .push_bind(e.issued_ms)
                    .push_bind(e.subject.clone())
                    .push_bind(e.body_hash.clone())
                    .push_bind(e.sealed.clone())
                    .push_bind(e.key_id.clone())
                    .push_bind(e.signature.clone())
                    .push_bind(e.placement.clone())
                    .push_bind(e.receipt_placement.clone())
                    .push_bind(e.township.clone())
                    .push_bind(e.village.clone())
                    .push_bind(e.placed_ms)
                    .push_bind(e.log_index);
            });
            q.push(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
            q.build_query_as().fetch_all(&mut *c).await?
        });
        written.extend(ids.into_iter().map(|(id,)| id));
    }
    Ok(written)
}

/// The unmatched events whose person is now on the monitoring list (active), with the township
/// and village to place them in (the most recently updated entry's), oldest first; only those of
/// `subject` when given (a one-by-one change: the subject index, no scan of the unmatched).
pub async fn placeable_unmatched(
    db: &Db,
    subject: Option<&str>,
) -> Result<Vec<(EventRow, String, Option<String>)>, StoreError> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM dept_events WHERE placement = 'unmatched' \
           AND ($1 IS NULL OR subject = $1) \
           AND EXISTS (SELECT 1 FROM monitored_households m WHERE m.subject = dept_events.subject AND m.status = 'active') \
         ORDER BY received_ms, event_id"
    );
    let rows: Vec<EventRow> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(subject).fetch_all(p).await?
    });
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let (Placement::Monitoring, Some(t), v) = place(db, &r.subject).await? {
            out.push((r, t, v));
        }
    }
    Ok(out)
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

/// Where each of `subjects` (distinct pseudonyms) is, as [`place`] answers one by one: the
/// monitoring list first (its most recently updated active entry), then the most recent case;
/// a subject in neither is absent. One query per [`ROWS_PER_STATEMENT`] subjects and source.
pub async fn place_many(
    db: &Db,
    subjects: &[&str],
) -> Result<std::collections::HashMap<String, (Placement, String, Option<String>)>, StoreError> {
    type T = (String, String, Option<String>);
    let mut out = std::collections::HashMap::with_capacity(subjects.len());
    for chunk in subjects.chunks(ROWS_PER_STATEMENT) {
        // The same order as `place`'s, decided by the database (its collation), per subject.
        let monitored: Vec<T> = on_db!(db, p, DB => {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "SELECT subject, township, village FROM (SELECT subject, township, village, ROW_NUMBER() OVER (PARTITION BY subject ORDER BY updated_ms DESC, category) AS n FROM monitored_households WHERE status = 'active' AND subject IN (",
            );
            let mut sep = q.separated(", ");
            for s in chunk {
                sep.push_bind(s.to_string());
            }
            q.push(")) m WHERE n = 1");
            q.build_query_as().fetch_all(p).await?
        });
        for (s, t, v) in monitored {
            out.insert(s, (Placement::Monitoring, t, v));
        }
        let rest: Vec<&str> = chunk
            .iter()
            .copied()
            .filter(|s| !out.contains_key(*s))
            .collect();
        if rest.is_empty() {
            continue;
        }
        let cases: Vec<T> = on_db!(db, p, DB => {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "SELECT applicant, township, village FROM (SELECT applicant, township, village, ROW_NUMBER() OVER (PARTITION BY applicant ORDER BY created_ms DESC, id DESC) AS n FROM cases WHERE applicant IN (",
            );
            let mut sep = q.separated(", ");
            for s in &rest {
                sep.push_bind(s.to_string());
            }
            q.push(")) c WHERE n = 1");
            q.build_query_as().fetch_all(p).await?
        });
        for (s, t, v) in cases {
            out.insert(s, (Placement::Case, t, v));
        }
    }
    Ok(out)
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
        let mut tx = p.begin_write().await?;
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

// ==== warnings (0013_warnings.sql) ====

/// A warning as stored.
#[derive(Debug, Clone)]
pub struct WarningRow {
    pub id: String,
    /// The household's keyed pseudonym.
    pub household: String,
    pub rule: String,
    pub state: String,
    pub tier: String,
    pub hardship: String,
    pub township: String,
    pub village: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The first-contact deadline.
    pub due_ms: i64,
    pub provisional: i64,
    pub signals: i64,
    pub first_event: String,
    pub acknowledged_ms: Option<i64>,
    pub closed_ms: Option<i64>,
    pub closed_by: Option<String>,
    /// The sealed dismissal reason.
    pub reason: Option<String>,
    pub key_id: Option<String>,
    pub case_id: Option<String>,
    pub version: i64,
}
crate::store::from_row!(WarningRow {
    id,
    household,
    rule,
    state,
    tier,
    hardship,
    township,
    village,
    created_ms,
    updated_ms,
    due_ms,
    provisional,
    signals,
    first_event,
    acknowledged_ms,
    closed_ms,
    closed_by,
    reason,
    key_id,
    case_id,
    version
});

const WARNING_COLUMNS: &str = "id, household, rule, state, tier, hardship, township, village, created_ms, updated_ms, due_ms, provisional, signals, first_event, acknowledged_ms, closed_ms, closed_by, reason, key_id, case_id, version";

pub async fn get_warning(db: &Db, id: &str) -> Result<Option<WarningRow>, StoreError> {
    let sql = format!("SELECT {WARNING_COLUMNS} FROM warnings WHERE id = $1");
    Ok(on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await?
    }))
}

/// The warnings of a household (tests, the case's link back).
pub async fn warnings_of(db: &Db, household: &str) -> Result<Vec<WarningRow>, StoreError> {
    let sql = format!("SELECT {WARNING_COLUMNS} FROM warnings WHERE household = $1 ORDER BY id");
    Ok(on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(household).fetch_all(p).await?
    }))
}

/// The warning a case was converted from.
pub async fn warning_of_case(db: &Db, case_id: &str) -> Result<Option<String>, StoreError> {
    let t: Option<(String,)> = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT id FROM warnings WHERE case_id = $1").bind(case_id).fetch_optional(p).await?
    });
    Ok(t.map(|(id,)| id))
}

/// What `GET /v1/warnings` asks for.
#[derive(Debug, Clone)]
pub struct WarningFilter {
    /// The caller's division prefix (6 or 9 digits): only warnings of townships inside it.
    pub division: String,
    pub township: Option<String>,
    pub village: Option<String>,
    pub state: Option<String>,
    pub tier: Option<String>,
    /// (overdue?, now): open and past the deadline, or not.
    pub overdue: Option<(bool, i64)>,
    /// Only ids before this (newest first).
    pub before: Option<String>,
    pub limit: i64,
}

pub async fn list_warnings(db: &Db, f: &WarningFilter) -> Result<Vec<WarningRow>, StoreError> {
    let (over, now) = f.overdue.unzip();
    let sql = format!(
        "SELECT {WARNING_COLUMNS} FROM warnings \
         WHERE township LIKE $1 \
           AND ($2 IS NULL OR township LIKE $2) \
           AND ($3 IS NULL OR village = $3) \
           AND ($4 IS NULL OR state = $4) \
           AND ($5 IS NULL OR tier = $5) \
           AND ($6 IS NULL OR ($6 = 1 AND state = 'open' AND due_ms < $7) OR ($6 = 0 AND NOT (state = 'open' AND due_ms < $7))) \
           AND ($8 IS NULL OR id < $8) \
         ORDER BY id DESC LIMIT $9"
    );
    let rows: Vec<WarningRow> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(format!("{}%", f.division))
            .bind(f.township.as_ref().map(|t| format!("{t}%")))
            .bind(&f.village)
            .bind(&f.state)
            .bind(&f.tier)
            .bind(over.map(i64::from))
            .bind(now)
            .bind(&f.before)
            .bind(f.limit)
            .fetch_all(p)
            .await?
    });
    Ok(rows)
}

/// One signal of a warning, with its event's department and kind.
#[derive(Debug, Clone)]
pub struct SignalRow {
    pub event_id: String,
    pub department: String,
    pub kind: String,
    pub occurred_ms: i64,
    pub received_ms: i64,
    pub amount_fen: Option<i64>,
    pub tier: Option<String>,
    pub raised: i64,
}
crate::store::from_row!(SignalRow {
    event_id,
    department,
    kind,
    occurred_ms,
    received_ms,
    amount_fen,
    tier,
    raised
});

pub async fn signals_of(db: &Db, warning_id: &str) -> Result<Vec<SignalRow>, StoreError> {
    Ok(on_db!(db, p, _DB => {
        sqlx::query_as("SELECT s.event_id, e.department, e.kind, s.occurred_ms, e.received_ms, s.amount_fen, s.tier, s.raised FROM warning_signals s JOIN dept_events e ON e.event_id = s.event_id WHERE s.warning_id = $1 ORDER BY s.occurred_ms, s.event_id")
            .bind(warning_id)
            .fetch_all(p)
            .await?
    }))
}

/// A move of a warning.
#[derive(Debug, Clone)]
pub struct Change {
    pub state: &'static str,
    pub acknowledged_ms: Option<i64>,
    /// Who closed it (dismissed or converted).
    pub closed: Option<String>,
    /// The sealed reason and its key id.
    pub reason: Option<(String, String)>,
    pub case_id: Option<String>,
}

/// Apply a move if the warning is still at `row.version`; the row after, or `None` when it
/// changed meanwhile.
pub async fn move_warning(
    db: &Db,
    row: &WarningRow,
    c: &Change,
    now_ms: i64,
) -> Result<Option<WarningRow>, StoreError> {
    let (reason, key_id) = c.reason.clone().unzip();
    let closed_ms = c.closed.as_ref().map(|_| now_ms);
    let n = on_db!(db, p, _DB => {
        sqlx::query("UPDATE warnings SET state = $1, acknowledged_ms = COALESCE($2, acknowledged_ms), closed_ms = COALESCE($3, closed_ms), closed_by = COALESCE($4, closed_by), reason = COALESCE($5, reason), key_id = COALESCE($6, key_id), case_id = COALESCE($7, case_id), updated_ms = $8, version = version + 1 WHERE id = $9 AND version = $10")
            .bind(c.state)
            .bind(c.acknowledged_ms)
            .bind(closed_ms)
            .bind(&c.closed)
            .bind(reason)
            .bind(key_id)
            .bind(&c.case_id)
            .bind(now_ms)
            .bind(&row.id)
            .bind(row.version)
            .execute(p)
            .await?
            .rows_affected()
    });
    if n != 1 {
        return Ok(None);
    }
    get_warning(db, &row.id).await
}

// ==== village reports (0015_village_reports.sql) ====

/// A village report as stored (the warning it raised is bound separately).
#[derive(Debug, Clone)]
pub struct VillageReportRow {
    /// Report id (UUIDv7), also its event's id in `dept_events`.
    pub id: String,
    pub created_ms: i64,
    /// The full identity URI of the assistant who filed it.
    pub filed_by: String,
    pub township: String,
    pub village: String,
    /// The household head's keyed pseudonym.
    pub subject: String,
    pub observation: String,
    pub observed_ms: i64,
    /// Sealed `{resident_id, note}` (AAD: the report id).
    pub sealed: String,
    pub key_id: String,
    pub warning_id: Option<String>,
    pub log_index: i64,
}
crate::store::from_row!(VillageReportRow {
    id,
    created_ms,
    filed_by,
    township,
    village,
    subject,
    observation,
    observed_ms,
    sealed,
    key_id,
    warning_id,
    log_index
});

const VILLAGE_REPORT_COLUMNS: &str = "id, created_ms, filed_by, township, village, subject, observation, observed_ms, sealed, key_id, warning_id, log_index";

/// The INSERT of a report row; bind it with [`bind_village_report`].
pub const INSERT_VILLAGE_REPORT: &str = "INSERT INTO village_reports (id, created_ms, filed_by, township, village, subject, observation, observed_ms, sealed, key_id, warning_id, log_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// Bind a [`VillageReportRow`] and its warning id to [`INSERT_VILLAGE_REPORT`].
macro_rules! bind_village_report {
    ($q:expr, $r:expr, $warning_id:expr) => {
        $q.bind(&$r.id)
            .bind($r.created_ms)
            .bind(&$r.filed_by)
            .bind(&$r.township)
            .bind(&$r.village)
            .bind(&$r.subject)
            .bind(&$r.observation)
            .bind($r.observed_ms)
            .bind(&$r.sealed)
            .bind(&$r.key_id)
            .bind($warning_id)
            .bind($r.log_index)
    };
}
pub(crate) use bind_village_report;

/// What `GET /v1/village-reports` asks for.
#[derive(Debug, Clone)]
pub struct VillageReportFilter {
    /// The caller's division prefix (6, 9 or 12 digits): only reports of villages inside it.
    pub division: String,
    /// A county or township prefix.
    pub township: Option<String>,
    pub village: Option<String>,
    pub observation: Option<String>,
    /// Only ids before this (newest first).
    pub before: Option<String>,
    pub limit: i64,
}

pub async fn list_village_reports(
    db: &Db,
    f: &VillageReportFilter,
) -> Result<Vec<VillageReportRow>, StoreError> {
    let sql = format!(
        "SELECT {VILLAGE_REPORT_COLUMNS} FROM village_reports \
         WHERE village LIKE $1 \
           AND ($2 IS NULL OR village LIKE $2) \
           AND ($3 IS NULL OR village = $3) \
           AND ($4 IS NULL OR observation = $4) \
           AND ($5 IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $6"
    );
    let rows: Vec<VillageReportRow> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(format!("{}%", f.division))
            .bind(f.township.as_ref().map(|t| format!("{t}%")))
            .bind(&f.village)
            .bind(&f.observation)
            .bind(&f.before)
            .bind(f.limit)
            .fetch_all(p)
            .await?
    });
    Ok(rows)
}
