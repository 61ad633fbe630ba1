//! The `slips` table (`0009_referral_slips.sql`): referral slips (转办单) as stored. Personal
//! fields (what is asked, the applicant's name, resident ID and phone) and the feedback arrive
//! here already sealed; the applicant is a keyed pseudonym. Issuing a slip is one transaction in
//! [`insert_slip`] (with its `slip_issued` notification); a move (accept, answer) updates the
//! row only at the version it was decided on.

use crate::store::BeginWrite as _;
use serde_json::json;

use super::escalation::{county_of, rfc3339};
use crate::notify::{self, Notice, NotificationKind};
use crate::store::{Db, StoreError, on_db};

/// A slip as stored.
#[derive(Debug, Clone)]
pub struct SlipRow {
    pub id: String,
    pub case_id: String,
    pub kind: String,
    /// The department code it is addressed to (kinds other than `township`).
    pub to_department: Option<String>,
    /// The township (9 digits) it is addressed to (kind `township`).
    pub to_township: Option<String>,
    /// The township the case was with when the slip was issued.
    pub region: String,
    /// The applicant's keyed pseudonym (for the access log).
    pub applicant: String,
    pub state: String,
    pub issued_ms: i64,
    /// The full identity URI of the caseworker who issued it.
    pub issued_by: String,
    pub due_ms: i64,
    /// The due date was counted into a year without an official calendar file.
    pub due_provisional: bool,
    pub accepted_ms: Option<i64>,
    pub accepted_by: Option<String>,
    pub answered_ms: Option<i64>,
    pub answered_by: Option<String>,
    pub result: Option<String>,
    /// Sealed JSON of what is asked and the applicant.
    pub personal: String,
    pub key_id: String,
    /// Sealed JSON of the feedback, once answered.
    pub feedback: Option<String>,
    pub feedback_key_id: Option<String>,
    pub version: i64,
}

/// What a move changes on the slip row.
#[derive(Debug, Clone)]
pub struct SlipMoveRow {
    pub state: String,
    pub at_ms: i64,
    pub by: String,
    /// Set by an answer (feedback): the result and the sealed feedback.
    pub answer: Option<(String, String, String)>,
}

const COLUMNS: &str = "id, case_id, kind, to_department, to_township, region, applicant, state, \
    issued_ms, issued_by, due_ms, due_provisional, accepted_ms, accepted_by, answered_ms, \
    answered_by, result, personal, key_id, feedback, feedback_key_id, version";

/// The row as the database gives it (`due_provisional` is 0 or 1 on both databases).
struct Raw {
    id: String,
    case_id: String,
    kind: String,
    to_department: Option<String>,
    to_township: Option<String>,
    region: String,
    applicant: String,
    state: String,
    issued_ms: i64,
    issued_by: String,
    due_ms: i64,
    due_provisional: i64,
    accepted_ms: Option<i64>,
    accepted_by: Option<String>,
    answered_ms: Option<i64>,
    answered_by: Option<String>,
    result: Option<String>,
    personal: String,
    key_id: String,
    feedback: Option<String>,
    feedback_key_id: Option<String>,
    version: i64,
}
crate::store::from_row!(Raw {
    id,
    case_id,
    kind,
    to_department,
    to_township,
    region,
    applicant,
    state,
    issued_ms,
    issued_by,
    due_ms,
    due_provisional,
    accepted_ms,
    accepted_by,
    answered_ms,
    answered_by,
    result,
    personal,
    key_id,
    feedback,
    feedback_key_id,
    version
});

impl From<Raw> for SlipRow {
    fn from(r: Raw) -> SlipRow {
        SlipRow {
            id: r.id,
            case_id: r.case_id,
            kind: r.kind,
            to_department: r.to_department,
            to_township: r.to_township,
            region: r.region,
            applicant: r.applicant,
            state: r.state,
            issued_ms: r.issued_ms,
            issued_by: r.issued_by,
            due_ms: r.due_ms,
            due_provisional: r.due_provisional != 0,
            accepted_ms: r.accepted_ms,
            accepted_by: r.accepted_by,
            answered_ms: r.answered_ms,
            answered_by: r.answered_by,
            result: r.result,
            personal: r.personal,
            key_id: r.key_id,
            feedback: r.feedback,
            feedback_key_id: r.feedback_key_id,
            version: r.version,
        }
    }
}

/// The instant a slip without feedback enters the last quarter of its period (`deadline_near`):
/// its first `next_check_ms` (see [`super::escalation`]).
pub fn near_ms(issued_ms: i64, due_ms: i64) -> i64 {
    due_ms - (due_ms - issued_ms).max(0) / 4
}

/// The `slip_issued` notification of `s` (转办单已发出): ids, kind, addressee, township and times;
/// never the applicant nor what is asked (those stay sealed in the hub).
pub fn issued_notice(s: &SlipRow) -> Notice {
    Notice {
        kind: NotificationKind::SlipIssued,
        case_id: Some(s.case_id.clone()),
        dedup_key: Some(format!("slip_issued:{}", s.id)),
        payload: json!({
            "case_id": s.case_id,
            "slip_id": s.id,
            "slip_kind": s.kind,
            "to_department": s.to_department,
            "to_township": s.to_township,
            "township": s.region,
            "county": county_of(&s.region),
            "issued_at": rfc3339(s.issued_ms),
            "due_at": rfc3339(s.due_ms),
            "due_provisional": s.due_provisional,
        }),
    }
}

/// Store a new slip, in one transaction, only while its case is in one of `open_states` (a case
/// decided or closed meanwhile gets no slip: `false`, nothing written), with its `slip_issued`
/// notification ([`issued_notice`]) in the same transaction.
///
/// The case row is locked first (a no-op update, guarded by the stage): a decision racing the
/// slip waits or makes this one write nothing, and the case's notifications stay in commit order
/// (the outbox invariant of [`crate::notify`]).
pub async fn insert_slip(db: &Db, s: &SlipRow, open_states: &[&str]) -> Result<bool, StoreError> {
    // The stage list is this module's constants, never input: bound one by one.
    let marks = |from: usize| -> String {
        (0..open_states.len())
            .map(|i| format!("${}", i + from))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let lock = format!(
        "UPDATE cases SET version = version WHERE id = $1 AND state IN ({})",
        marks(2)
    );
    let sql = format!(
        "INSERT INTO slips ({COLUMNS}, next_check_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
    );
    let notice = issued_notice(s);
    let inserted = on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        let mut q = sqlx::query(sqlx::AssertSqlSafe(lock)).bind(&s.case_id);
        for st in open_states {
            q = q.bind(*st);
        }
        if q.execute(&mut *tx).await?.rows_affected() != 1 {
            tx.rollback().await?;
            false
        } else {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&s.id)
                .bind(&s.case_id)
                .bind(&s.kind)
                .bind(&s.to_department)
                .bind(&s.to_township)
                .bind(&s.region)
                .bind(&s.applicant)
                .bind(&s.state)
                .bind(s.issued_ms)
                .bind(&s.issued_by)
                .bind(s.due_ms)
                .bind(i64::from(s.due_provisional))
                .bind(s.accepted_ms)
                .bind(&s.accepted_by)
                .bind(s.answered_ms)
                .bind(&s.answered_by)
                .bind(&s.result)
                .bind(&s.personal)
                .bind(&s.key_id)
                .bind(&s.feedback)
                .bind(&s.feedback_key_id)
                .bind(s.version)
                .bind(s.answered_ms.is_none().then(|| near_ms(s.issued_ms, s.due_ms)))
                .execute(&mut *tx)
                .await?;
            notify::enqueue((&mut *tx).into(), &notice, s.issued_ms).await?;
            tx.commit().await?;
            true
        }
    });
    Ok(inserted)
}

pub async fn get_slip(db: &Db, id: &str) -> Result<Option<SlipRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM slips WHERE id = $1");
    let r: Option<Raw> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await?
    });
    Ok(r.map(SlipRow::from))
}

/// The slips of a case, in the order they were issued.
pub async fn slips_of_case(db: &Db, case_id: &str) -> Result<Vec<SlipRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM slips WHERE case_id = $1 ORDER BY id");
    let rows: Vec<Raw> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(case_id).fetch_all(p).await?
    });
    Ok(rows.into_iter().map(SlipRow::from).collect())
}

/// The ids of a case's slips without feedback (not `answered`).
pub async fn unanswered_of_case(db: &Db, case_id: &str) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT id FROM slips WHERE case_id = $1 AND state <> 'answered' ORDER BY id")
            .bind(case_id)
            .fetch_all(p)
            .await?
    });
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Apply a move decided at `version`; `false` when the slip changed since (nothing written).
/// Feedback ends the slip's clock (`next_check_ms` cleared) and resolves its escalation, if the
/// scan had escalated it, in the same transaction.
pub async fn apply_slip_move(
    db: &Db,
    id: &str,
    version: i64,
    m: &SlipMoveRow,
) -> Result<bool, StoreError> {
    let (result, feedback, feedback_key_id) = m.answer.clone().unzip3();
    let answered = result.is_some();
    let moved = on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        let n = sqlx::query("UPDATE slips SET state = $1, \
                 accepted_ms = COALESCE(accepted_ms, $2), accepted_by = COALESCE(accepted_by, $3), \
                 answered_ms = CASE WHEN $4 IS NULL THEN answered_ms ELSE $2 END, \
                 answered_by = CASE WHEN $4 IS NULL THEN answered_by ELSE $3 END, \
                 result = COALESCE($4, result), feedback = COALESCE($5, feedback), \
                 feedback_key_id = COALESCE($6, feedback_key_id), \
                 next_check_ms = CASE WHEN $4 IS NULL THEN next_check_ms ELSE NULL END, \
                 version = version + 1 \
             WHERE id = $7 AND version = $8")
            .bind(&m.state)
            .bind(m.at_ms)
            .bind(&m.by)
            .bind(result)
            .bind(feedback)
            .bind(feedback_key_id)
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 && answered {
            sqlx::query(
                "UPDATE escalations SET resolved_ms = $1 \
                 WHERE case_id = (SELECT case_id FROM slips WHERE id = $2) AND clock = $3 AND resolved_ms IS NULL",
            )
            .bind(m.at_ms)
            .bind(id)
            .bind(slip_clock(id))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        n
    });
    Ok(moved == 1)
}

/// The `escalations.clock` of slip `id`.
pub fn slip_clock(id: &str) -> String {
    format!("slip:{id}")
}

trait Unzip3<A, B, C> {
    fn unzip3(self) -> (Option<A>, Option<B>, Option<C>);
}

impl<A, B, C> Unzip3<A, B, C> for Option<(A, B, C)> {
    fn unzip3(self) -> (Option<A>, Option<B>, Option<C>) {
        match self {
            Some((a, b, c)) => (Some(a), Some(b), Some(c)),
            None => (None, None, None),
        }
    }
}

/// Filters of a slip list: the slips addressed to `department`, or to a township starting with
/// `township_prefix`.
#[derive(Debug, Clone, Default)]
pub struct SlipFilter {
    pub department: Option<String>,
    pub township_prefix: Option<String>,
    pub state: Option<String>,
    /// `Some(true)`: only unanswered slips past `now_ms`; `Some(false)`: only the others.
    pub overdue: Option<bool>,
    pub now_ms: i64,
    /// Only ids below this (UUIDv7: newest first is id order).
    pub before: Option<String>,
    pub limit: i64,
}

/// Candidate slips for a list, newest first (the caller decides each with Cedar).
pub async fn list_slips(db: &Db, f: &SlipFilter) -> Result<Vec<SlipRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM slips \
         WHERE (to_department = $1 OR to_township LIKE $2) \
           AND ($3 IS NULL OR state = $3) \
           AND ($4 = 0 \
                OR ($4 = 1 AND state <> 'answered' AND due_ms < $5) \
                OR ($4 = 2 AND NOT (state <> 'answered' AND due_ms < $5))) \
           AND ($6 IS NULL OR id < $6) \
         ORDER BY id DESC LIMIT $7"
    );
    let overdue: i64 = match f.overdue {
        None => 0,
        Some(true) => 1,
        Some(false) => 2,
    };
    // A caller with neither (never reached: Cedar refuses first) matches nothing.
    let department = f.department.clone().unwrap_or_default();
    let township = f
        .township_prefix
        .as_ref()
        .map_or_else(|| "-".to_owned(), |t| format!("{t}%"));
    let rows: Vec<Raw> = on_db!(db, p, _DB => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(department)
            .bind(township)
            .bind(&f.state)
            .bind(overdue)
            .bind(f.now_ms)
            .bind(&f.before)
            .bind(f.limit)
            .fetch_all(p)
            .await?
    });
    Ok(rows.into_iter().map(SlipRow::from).collect())
}
