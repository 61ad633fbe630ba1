//! The case tables (`0008_cases.sql`): cases, their timeline of events, and the idempotency keys
//! of filings. Personal fields arrive here already sealed (`personal`, `details`); the applicant
//! is a keyed pseudonym. A move is one transaction: the case row is updated only at the version
//! the move was decided on (optimistic concurrency), and its event is inserted with it.

use crate::store::BeginWrite as _;
use serde::{Deserialize, Serialize};

use super::escalation::{Due, RESOLVE_SQL, SET_DUE_SQL};
use crate::notify::{self, Notice};
use crate::store::{Db, StoreError, on_db};

/// What a filing or a move writes besides the case and its event, in the same transaction: the
/// stored nearest deadline ([`super::escalation`]), the escalations its met clocks resolve, and
/// the notifications it causes ([`crate::notify::enqueue`]).
#[derive(Debug, Clone, Default)]
pub struct Followups {
    pub due: Due,
    /// Clock kinds met after the change (their open escalations are resolved).
    pub met: Vec<String>,
    pub notices: Vec<Notice>,
}

macro_rules! write_followups {
    ($tx:expr, $case_id:expr, $f:expr, $now:expr) => {{
        sqlx::query(SET_DUE_SQL)
            .bind($f.due.next_due_ms)
            .bind(&$f.due.next_due_kind)
            .bind(i64::from($f.due.provisional))
            .bind($now)
            .bind($f.due.next_check_ms)
            .bind($case_id)
            .execute(&mut *$tx)
            .await?;
        for kind in &$f.met {
            sqlx::query(RESOLVE_SQL)
                .bind($now)
                .bind($case_id)
                .bind(kind)
                .execute(&mut *$tx)
                .await?;
        }
        for n in &$f.notices {
            notify::enqueue((&mut *$tx).into(), n, $now).await?;
        }
    }};
}

/// A case as stored.
#[derive(Debug, Clone)]
pub struct CaseRow {
    pub id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The full identity URI that filed it.
    pub filed_by: String,
    pub channel: String,
    pub tier: String,
    pub hardship: String,
    pub state: String,
    /// The township (9 digits) the case is with.
    pub township: String,
    pub village: Option<String>,
    /// The applicant's keyed pseudonym.
    pub applicant: String,
    /// Sealed JSON of the personal fields.
    pub personal: String,
    pub key_id: String,
    /// `approved` or `refused`, once decided.
    pub outcome: Option<String>,
    pub version: i64,
}

/// One event of a case's timeline.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub case_id: String,
    pub seq: i64,
    pub at_ms: i64,
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: String,
    /// The full identity URI that made the move.
    pub actor: String,
    /// The township the case is with after the event.
    pub township: String,
    /// Sealed JSON of the details (reason, record, amounts), if any.
    pub details: Option<String>,
    pub key_id: Option<String>,
}

/// What a move changes on the case row.
#[derive(Debug, Clone)]
pub struct MoveRow {
    pub state: String,
    pub township: String,
    pub outcome: Option<String>,
    pub at_ms: i64,
}

const CASE_COLUMNS: &str = "id, created_ms, updated_ms, filed_by, channel, tier, hardship, state, township, village, applicant, personal, key_id, outcome, version";
const EVENT_COLUMNS: &str =
    "case_id, seq, at_ms, action, from_state, to_state, actor, township, details, key_id";

type CaseTuple = (
    String,
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    i64,
);
type EventTuple = (
    String,
    i64,
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

fn case(t: CaseTuple) -> CaseRow {
    CaseRow {
        id: t.0,
        created_ms: t.1,
        updated_ms: t.2,
        filed_by: t.3,
        channel: t.4,
        tier: t.5,
        hardship: t.6,
        state: t.7,
        township: t.8,
        village: t.9,
        applicant: t.10,
        personal: t.11,
        key_id: t.12,
        outcome: t.13,
        version: t.14,
    }
}

fn event(t: EventTuple) -> EventRow {
    EventRow {
        case_id: t.0,
        seq: t.1,
        at_ms: t.2,
        action: t.3,
        from_state: t.4,
        to_state: t.5,
        actor: t.6,
        township: t.7,
        details: t.8,
        key_id: t.9,
    }
}

macro_rules! bind_event {
    ($q:expr, $e:expr) => {
        $q.bind(&$e.case_id)
            .bind($e.seq)
            .bind($e.at_ms)
            .bind(&$e.action)
            .bind(&$e.from_state)
            .bind(&$e.to_state)
            .bind(&$e.actor)
            .bind(&$e.township)
            .bind(&$e.details)
            .bind(&$e.key_id)
    };
}

fn insert_event_sql() -> String {
    format!(
        "INSERT INTO case_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    )
}

/// What filing a case with an idempotency key found.
#[derive(Debug)]
pub enum Filed {
    /// The case was stored.
    New,
    /// The key was already taken: the case it names and the request hash it was taken with.
    Existing { case_id: String, sha256: String },
}

/// The case an idempotency key names, with the request hash it was taken with.
pub async fn case_for_key(
    db: &Db,
    filed_by: &str,
    key: &str,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(on_db!(db, p, _DB => {
        sqlx::query_as("SELECT case_id, request_sha256 FROM case_idempotency WHERE filed_by = $1 AND idem_key = $2")
            .bind(filed_by)
            .bind(key)
            .fetch_optional(p)
            .await?
    }))
}

/// Store a new case, its first event and (if any) its idempotency key, in one transaction. When
/// the key was taken meanwhile, nothing is stored and the existing case is named.
pub async fn insert_case(
    db: &Db,
    c: &CaseRow,
    first: &EventRow,
    key: Option<(&str, &str)>,
    f: &Followups,
) -> Result<Filed, StoreError> {
    let insert_case = format!(
        "INSERT INTO cases ({CASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    );
    let insert_event = insert_event_sql();
    on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        if let Some((k, sha)) = key {
            let n = sqlx::query("INSERT INTO case_idempotency (filed_by, idem_key, case_id, request_sha256, created_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                .bind(&c.filed_by)
                .bind(k)
                .bind(&c.id)
                .bind(sha)
                .bind(c.created_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                tx.rollback().await?;
                let (case_id, sha256) = case_for_key(db, &c.filed_by, k)
                    .await?
                    .ok_or(sqlx::Error::RowNotFound)?;
                return Ok(Filed::Existing { case_id, sha256 });
            }
        }
        sqlx::query(sqlx::AssertSqlSafe(insert_case))
            .bind(&c.id)
            .bind(c.created_ms)
            .bind(c.updated_ms)
            .bind(&c.filed_by)
            .bind(&c.channel)
            .bind(&c.tier)
            .bind(&c.hardship)
            .bind(&c.state)
            .bind(&c.township)
            .bind(&c.village)
            .bind(&c.applicant)
            .bind(&c.personal)
            .bind(&c.key_id)
            .bind(&c.outcome)
            .bind(c.version)
            .execute(&mut *tx)
            .await?;
        bind_event!(sqlx::query(sqlx::AssertSqlSafe(insert_event)), first)
            .execute(&mut *tx)
            .await?;
        write_followups!(tx, &c.id, f, c.created_ms);
        tx.commit().await?;
    });
    Ok(Filed::New)
}

pub async fn get_case(db: &Db, id: &str) -> Result<Option<CaseRow>, StoreError> {
    let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1");
    let t: Option<CaseTuple> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await?
    });
    Ok(t.map(case))
}

pub async fn events(db: &Db, case_id: &str) -> Result<Vec<EventRow>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM case_events WHERE case_id = $1 ORDER BY seq");
    let rows: Vec<EventTuple> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(case_id).fetch_all(p).await?
    });
    Ok(rows.into_iter().map(event).collect())
}

/// The timelines of several cases in one query (a list page's), by case id, each in `seq` order.
pub async fn events_of(
    db: &Db,
    case_ids: &[&str],
) -> Result<std::collections::HashMap<String, Vec<EventRow>>, StoreError> {
    let mut by_case: std::collections::HashMap<String, Vec<EventRow>> = Default::default();
    if case_ids.is_empty() {
        return Ok(by_case);
    }
    // The ids are bound one by one; the placeholders are ours.
    let marks: Vec<String> = (1..=case_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM case_events WHERE case_id IN ({}) ORDER BY case_id, seq",
        marks.join(", ")
    );
    let rows: Vec<EventTuple> = on_db!(db, p, _DB => {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for id in case_ids {
            q = q.bind(*id);
        }
        q.fetch_all(p).await?
    });
    for e in rows.into_iter().map(event) {
        by_case.entry(e.case_id.clone()).or_default().push(e);
    }
    Ok(by_case)
}

/// Apply a move decided at `version`: update the case, append the event (its `seq` is the new
/// version) and write its [`Followups`] (deadline columns, resolved escalations, notifications) in
/// one transaction. `false` when the case changed since (nothing is written).
pub async fn apply_move(
    db: &Db,
    case_id: &str,
    version: i64,
    m: &MoveRow,
    e: &EventRow,
    f: &Followups,
) -> Result<bool, StoreError> {
    let insert_event = insert_event_sql();
    let moved = on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        let n = sqlx::query("UPDATE cases SET state = $1, township = $2, outcome = COALESCE($3, outcome), updated_ms = $4, version = version + 1 WHERE id = $5 AND version = $6")
            .bind(&m.state)
            .bind(&m.township)
            .bind(&m.outcome)
            .bind(m.at_ms)
            .bind(case_id)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            bind_event!(sqlx::query(sqlx::AssertSqlSafe(insert_event)), e)
                .execute(&mut *tx)
                .await?;
            write_followups!(tx, case_id, f, m.at_ms);
            tx.commit().await?;
            true
        } else {
            tx.rollback().await?;
            false
        }
    });
    Ok(moved)
}

/// Filters of a case list. `division` is a prefix of the township code (a county lists its
/// townships); cases filed by `filed_by` are listed too (an intake system's own filings).
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub division: String,
    pub filed_by: String,
    pub state: Option<String>,
    pub tier: Option<String>,
    pub township: Option<String>,
    /// The order of the list, and where the previous page ended.
    pub order: CaseOrder,
    pub after: Option<CasePos>,
    pub limit: i64,
    /// `Some((true, now))`: only cases whose stored nearest open deadline is before `now`;
    /// `Some((false, now))`: only the others.
    pub overdue: Option<(bool, i64)>,
}

/// The orders a case list comes in (ids are UUIDv7, so id order is filing order).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CaseOrder {
    /// 最新登记在前: the newest first (the default).
    #[default]
    Newest,
    /// 等待最久在前: the longest waiting first.
    Oldest,
    /// 按时限: the nearest stored open deadline first (overdue ones first of all), cases without
    /// an open clock last; ties by filing order.
    Due,
}

/// Where a page ended: the last case's id and its deadline sort key (used by [`CaseOrder::Due`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePos {
    pub id: String,
    /// `next_due_ms`, or `i64::MAX` for a case without an open clock.
    pub due_ms: i64,
}

/// One row of a case list with its position (to resume after it).
type ListTuple = (
    String,
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
);

/// Candidate cases for a list in `f.order` (the caller decides each with Cedar), each with the
/// position to resume after it.
pub async fn list_cases(db: &Db, f: &CaseFilter) -> Result<Vec<(CaseRow, CasePos)>, StoreError> {
    let (resume, order_by) = match f.order {
        CaseOrder::Newest => ("($6 IS NULL OR id < $6)", "id DESC"),
        CaseOrder::Oldest => ("($6 IS NULL OR id > $6)", "id ASC"),
        CaseOrder::Due => (
            "($6 IS NULL OR COALESCE(next_due_ms, 9223372036854775807) > $10 \
              OR (COALESCE(next_due_ms, 9223372036854775807) = $10 AND id > $6))",
            "COALESCE(next_due_ms, 9223372036854775807) ASC, id ASC",
        ),
    };
    let sql = format!(
        "SELECT {CASE_COLUMNS}, COALESCE(next_due_ms, 9223372036854775807) FROM cases \
         WHERE (township LIKE $1 OR filed_by = $2) \
           AND ($3 IS NULL OR state = $3) \
           AND ($4 IS NULL OR tier = $4) \
           AND ($5 IS NULL OR township LIKE $5) \
           AND {resume} \
           AND ($8 IS NULL OR ($8 = 1 AND next_due_ms IS NOT NULL AND next_due_ms < $9) \
                OR ($8 = 0 AND (next_due_ms IS NULL OR next_due_ms >= $9))) \
         ORDER BY {order_by} LIMIT $7"
    );
    let like = |d: &str| format!("{d}%");
    let rows: Vec<ListTuple> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(like(&f.division))
            .bind(&f.filed_by)
            .bind(&f.state)
            .bind(&f.tier)
            .bind(f.township.as_deref().map(like))
            .bind(f.after.as_ref().map(|a| a.id.as_str()))
            .bind(f.limit)
            .bind(f.overdue.map(|(o, _)| i64::from(o)))
            .bind(f.overdue.map_or(0, |(_, now)| now))
            .bind(f.after.as_ref().map_or(0, |a| a.due_ms))
            .fetch_all(p)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|t| {
            let due_ms = t.15;
            let row = case((
                t.0, t.1, t.2, t.3, t.4, t.5, t.6, t.7, t.8, t.9, t.10, t.11, t.12, t.13, t.14,
            ));
            let pos = CasePos {
                id: row.id.clone(),
                due_ms,
            };
            (row, pos)
        })
        .collect())
}

/// The cases of an applicant (by keyed pseudonym), newest first.
pub async fn cases_of_applicant(
    db: &Db,
    applicant: &str,
    limit: i64,
) -> Result<Vec<CaseRow>, StoreError> {
    let sql =
        format!("SELECT {CASE_COLUMNS} FROM cases WHERE applicant = $1 ORDER BY id DESC LIMIT $2");
    let rows: Vec<CaseTuple> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(applicant).bind(limit).fetch_all(p).await?
    });
    Ok(rows.into_iter().map(case).collect())
}

/// One of a caseworker's verifications, for their list (no personal data).
#[derive(Debug, Clone)]
pub struct VerificationItemRow {
    pub id: String,
    pub created_ms: i64,
    pub registered_division: String,
    pub purpose: String,
    pub case_ref: String,
    pub urgency: String,
    pub case_id: Option<String>,
}

/// A requester's verifications, newest first, below the `(created_ms, id)` cursor.
pub async fn list_verifications(
    db: &Db,
    requested_by: &str,
    before: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<VerificationItemRow>, StoreError> {
    let (before_ms, before_id) = before.unzip();
    type T = (String, i64, String, String, String, String, Option<String>);
    let rows: Vec<T> = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT id, created_ms, registered_division, purpose, case_ref, urgency, case_id FROM verifications \
             WHERE requested_by = $1 \
               AND ($2 IS NULL OR created_ms < $2 OR (created_ms = $2 AND id < $3)) \
             ORDER BY created_ms DESC, id DESC LIMIT $4")
            .bind(requested_by)
            .bind(before_ms)
            .bind(before_id)
            .bind(limit)
            .fetch_all(p)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|t| VerificationItemRow {
            id: t.0,
            created_ms: t.1,
            registered_division: t.2,
            purpose: t.3,
            case_ref: t.4,
            urgency: t.5,
            case_id: t.6,
        })
        .collect())
}

/// The case a verification names: its `case_id` (if any) and its `case_ref`.
pub async fn verification_case(
    db: &Db,
    verification_id: &str,
) -> Result<Option<(Option<String>, String)>, StoreError> {
    Ok(on_db!(db, p, _DB => {
        sqlx::query_as("SELECT case_id, case_ref FROM verifications WHERE id = $1")
            .bind(verification_id)
            .fetch_optional(p)
            .await?
    }))
}
