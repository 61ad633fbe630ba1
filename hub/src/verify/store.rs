//! The verification tables (`0003_verifications.sql`): authorization letters and verifications with
//! their reports. Members appear only as keyed pseudonyms; lists are JSON text.

use crate::store::BeginWrite as _;
use crate::store::{Db, StoreError, on_db};

/// An authorization letter (核对授权书) as stored.
#[derive(Debug, Clone)]
pub struct AuthorizationRow {
    pub id: String,
    pub created_ms: i64,
    pub recorded_by: String,
    pub registered_division: String,
    /// Pseudonyms of the signers (JSON list).
    pub signed_by: String,
    /// Pseudonyms of the covered members (JSON list).
    pub subjects: String,
    /// Purpose codes (JSON list).
    pub purposes: String,
    /// Fact kind codes (JSON list); `None` = everything the purpose needs.
    pub fact_kinds: Option<String>,
    pub valid_until_ms: i64,
    pub letter_sha256: String,
}

/// A verification and its report.
#[derive(Debug, Clone)]
pub struct VerificationRow {
    pub id: String,
    pub created_ms: i64,
    pub requested_by: String,
    pub registered_division: String,
    /// The household's pseudonym (the applicant's).
    pub household: String,
    pub purpose: String,
    pub case_ref: String,
    pub urgency: String,
    pub authorization_id: Option<String>,
    /// The report, JSON.
    pub report: String,
    /// The case (救助案件) the verification was run for, when the request named one.
    pub case_id: Option<String>,
}

const INSERT_AUTH: &str = "INSERT INTO authorizations (id, created_ms, recorded_by, registered_division, signed_by, subjects, purposes, fact_kinds, valid_until_ms, letter_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const SELECT_AUTH: &str = "SELECT id, created_ms, recorded_by, registered_division, signed_by, subjects, purposes, fact_kinds, valid_until_ms, letter_sha256 FROM authorizations WHERE id = $1";
const INSERT_VER: &str = "INSERT INTO verifications (id, created_ms, requested_by, registered_division, household, purpose, case_ref, urgency, authorization_id, report, case_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const SELECT_VER: &str = "SELECT id, created_ms, requested_by, registered_division, household, purpose, case_ref, urgency, authorization_id, report, case_id FROM verifications WHERE id = $1";

macro_rules! bind_auth {
    ($q:expr, $r:expr) => {
        $q.bind(&$r.id)
            .bind($r.created_ms)
            .bind(&$r.recorded_by)
            .bind(&$r.registered_division)
            .bind(&$r.signed_by)
            .bind(&$r.subjects)
            .bind(&$r.purposes)
            .bind(&$r.fact_kinds)
            .bind($r.valid_until_ms)
            .bind(&$r.letter_sha256)
    };
}

macro_rules! bind_ver {
    ($q:expr, $r:expr) => {
        $q.bind(&$r.id)
            .bind($r.created_ms)
            .bind(&$r.requested_by)
            .bind(&$r.registered_division)
            .bind(&$r.household)
            .bind(&$r.purpose)
            .bind(&$r.case_ref)
            .bind(&$r.urgency)
            .bind(&$r.authorization_id)
            .bind(&$r.report)
            .bind(&$r.case_id)
    };
}

type AuthTuple = (
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    String,
);
type VerTuple = (
    String,
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
);

/// Insert a letter; durable when it returns.
pub async fn insert_authorization(db: &Db, r: &AuthorizationRow) -> Result<(), StoreError> {
    on_db!(db, p, _DB => {
        bind_auth!(sqlx::query(INSERT_AUTH), r).execute(p).await?;
    });
    Ok(())
}

/// The id of a letter already on record with this document hash, if any.
pub async fn letter_with_sha256(db: &Db, sha256: &str) -> Result<Option<String>, StoreError> {
    let t: Option<(String,)> = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT id FROM authorizations WHERE letter_sha256 = $1 LIMIT 1")
            .bind(sha256)
            .fetch_optional(p)
            .await?
    });
    Ok(t.map(|t| t.0))
}

pub async fn get_authorization(db: &Db, id: &str) -> Result<Option<AuthorizationRow>, StoreError> {
    let t: Option<AuthTuple> = on_db!(db, p, _DB => {
        sqlx::query_as(SELECT_AUTH)
            .bind(id)
            .fetch_optional(p)
            .await?
    });
    Ok(t.map(|t| AuthorizationRow {
        id: t.0,
        created_ms: t.1,
        recorded_by: t.2,
        registered_division: t.3,
        signed_by: t.4,
        subjects: t.5,
        purposes: t.6,
        fact_kinds: t.7,
        valid_until_ms: t.8,
        letter_sha256: t.9,
    }))
}

/// Binds a [`FollowUpRow`] to `INSERT_FOLLOW_UP`'s parameters, in order.
macro_rules! bind_follow_up {
    ($q:expr, $f:expr) => {
        $q.bind(&$f.verification_id)
            .bind(&$f.requested_by)
            .bind(&$f.registered_division)
            .bind(&$f.case_ref)
            .bind($f.created_ms)
            .bind(&$f.due_by)
    };
}

/// Insert a verification with its report and, for an emergency check without a letter, its letter
/// follow-up, in one transaction; durable when it returns.
pub async fn insert_verification(
    db: &Db,
    r: &VerificationRow,
    follow_up: Option<&FollowUpRow>,
) -> Result<(), StoreError> {
    let Some(f) = follow_up else {
        // One statement is atomic on its own: no BEGIN/COMMIT round trips to the database thread.
        on_db!(db, p, _DB => {
            bind_ver!(sqlx::query(INSERT_VER), r).execute(p).await?;
        });
        return Ok(());
    };
    on_db!(db, p, _DB => {
        let mut tx = p.begin_write().await?;
        bind_ver!(sqlx::query(INSERT_VER), r).execute(&mut *tx).await?;
        bind_follow_up!(sqlx::query(INSERT_FOLLOW_UP), f)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    });
    Ok(())
}

/// [`insert_verification`] inside the access log's batch transaction (a verification's report is
/// made durable with its entries in one group commit, see [`crate::log::Attached`]): the row and
/// the follow-up, if any; durable when the batch commits.
pub async fn insert_verification_in(
    conn: crate::log::TxConn<'_>,
    r: &VerificationRow,
    follow_up: Option<&FollowUpRow>,
) -> Result<(), StoreError> {
    macro_rules! run {
        ($c:ident) => {{
            bind_ver!(sqlx::query(INSERT_VER), r)
                .execute(&mut *$c)
                .await?;
            if let Some(f) = follow_up {
                bind_follow_up!(sqlx::query(INSERT_FOLLOW_UP), f)
                    .execute(&mut *$c)
                    .await?;
            }
        }};
    }
    match conn {
        crate::log::TxConn::Sqlite(c) => run!(c),
        crate::log::TxConn::Postgres(c) => run!(c),
    }
    Ok(())
}

/// 补交授权书跟踪: an emergency verification's letter follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpRow {
    pub verification_id: String,
    pub requested_by: String,
    pub registered_division: String,
    pub case_ref: String,
    pub created_ms: i64,
    /// Beijing date, `YYYY-MM-DD`.
    pub due_by: String,
    pub authorization_id: Option<String>,
    pub attached_ms: Option<i64>,
}

type FollowUpTuple = (
    String,
    String,
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<i64>,
);

fn follow_up(t: FollowUpTuple) -> FollowUpRow {
    FollowUpRow {
        verification_id: t.0,
        requested_by: t.1,
        registered_division: t.2,
        case_ref: t.3,
        created_ms: t.4,
        due_by: t.5,
        authorization_id: t.6,
        attached_ms: t.7,
    }
}

const INSERT_FOLLOW_UP: &str = "INSERT INTO letter_follow_ups (verification_id, requested_by, registered_division, case_ref, created_ms, due_by) VALUES ($1, $2, $3, $4, $5, $6)";
const SELECT_FOLLOW_UP: &str = "SELECT verification_id, requested_by, registered_division, case_ref, created_ms, due_by, authorization_id, attached_ms FROM letter_follow_ups WHERE verification_id = $1";
const LIST_FOLLOW_UPS_OPEN: &str = "SELECT verification_id, requested_by, registered_division, case_ref, created_ms, due_by, authorization_id, attached_ms FROM letter_follow_ups WHERE requested_by = $1 AND authorization_id IS NULL ORDER BY due_by, created_ms LIMIT $2";
const LIST_FOLLOW_UPS_ALL: &str = "SELECT verification_id, requested_by, registered_division, case_ref, created_ms, due_by, authorization_id, attached_ms FROM letter_follow_ups WHERE requested_by = $1 ORDER BY due_by, created_ms LIMIT $2";
const ATTACH_LETTER: &str = "UPDATE letter_follow_ups SET authorization_id = $1, attached_ms = $2 WHERE verification_id = $3 AND authorization_id IS NULL";

/// The follow-up of a verification, if it has one.
pub async fn get_follow_up(
    db: &Db,
    verification_id: &str,
) -> Result<Option<FollowUpRow>, StoreError> {
    let t: Option<FollowUpTuple> = on_db!(db, p, _DB => {
        sqlx::query_as(SELECT_FOLLOW_UP).bind(verification_id).fetch_optional(p).await?
    });
    Ok(t.map(follow_up))
}

/// Record the letter of a follow-up; `false` when a letter was already attached.
pub async fn attach_letter(
    db: &Db,
    verification_id: &str,
    authorization_id: &str,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let n = on_db!(db, p, _DB => sqlx::query(ATTACH_LETTER)
        .bind(authorization_id)
        .bind(at_ms)
        .bind(verification_id)
        .execute(p)
        .await?
        .rows_affected());
    Ok(n == 1)
}

/// A caseworker's follow-ups, oldest due first; only those still without a letter when `open_only`.
pub async fn list_follow_ups(
    db: &Db,
    requested_by: &str,
    open_only: bool,
    limit: i64,
) -> Result<Vec<FollowUpRow>, StoreError> {
    let sql = if open_only {
        LIST_FOLLOW_UPS_OPEN
    } else {
        LIST_FOLLOW_UPS_ALL
    };
    let rows: Vec<FollowUpTuple> = on_db!(db, p, _DB => {
        sqlx::query_as(sql).bind(requested_by).bind(limit).fetch_all(p).await?
    });
    Ok(rows.into_iter().map(follow_up).collect())
}

pub async fn get_verification(db: &Db, id: &str) -> Result<Option<VerificationRow>, StoreError> {
    let t: Option<VerTuple> = on_db!(db, p, _DB => {
        sqlx::query_as(SELECT_VER)
            .bind(id)
            .fetch_optional(p)
            .await?
    });
    Ok(t.map(|t| VerificationRow {
        id: t.0,
        created_ms: t.1,
        requested_by: t.2,
        registered_division: t.3,
        household: t.4,
        purpose: t.5,
        case_ref: t.6,
        urgency: t.7,
        authorization_id: t.8,
        report: t.9,
        case_id: t.10,
    }))
}

const SELECT_RECENT: &str = "SELECT report FROM verifications WHERE household = $1 AND registered_division = $2 AND created_ms >= $3 ORDER BY created_ms DESC LIMIT 10";

/// The reports of the latest verifications (newest first, at most 10) of a household since
/// `since_ms`, for evidence reuse.
pub async fn recent_reports(
    db: &Db,
    household: &str,
    registered_division: &str,
    since_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<(String,)> = on_db!(db, p, _DB => {
        sqlx::query_as(SELECT_RECENT)
            .bind(household)
            .bind(registered_division)
            .bind(since_ms)
            .fetch_all(p)
            .await?
    });
    Ok(rows.into_iter().map(|r| r.0).collect())
}

const RESERVE_KEY: &str = "INSERT INTO verification_idempotency (requested_by, idem_key, verification_id, request_sha256, created_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
const SELECT_KEY: &str = "SELECT verification_id, request_sha256 FROM verification_idempotency WHERE requested_by = $1 AND idem_key = $2";
const RELEASE_KEY: &str = "DELETE FROM verification_idempotency WHERE requested_by = $1 AND idem_key = $2 AND verification_id = $3";

/// Reserve an idempotency key for a verification; `false` when the key is already taken.
pub async fn reserve_key(
    db: &Db,
    principal: &str,
    key: &str,
    verification_id: &str,
    request_sha256: &str,
) -> Result<bool, StoreError> {
    let now = crate::store::now_ms();
    let n = on_db!(db, p, _DB => sqlx::query(RESERVE_KEY)
            .bind(principal)
            .bind(key)
            .bind(verification_id)
            .bind(request_sha256)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
    Ok(n == 1)
}

/// [`reserve_key`] for a hub whose access log lives in the same database. On SQLite inside the
/// log's group commit ([`crate::log::AccessLog::attach`]): the same statement in the log writer's
/// batch transaction, so a reservation costs a share of a commit shared with concurrent
/// verifications, not a write lock and a commit of its own. On PostgreSQL its own statement as
/// before (concurrent commits share WAL flushes there, and a batch inserting several keys could
/// deadlock with another replica's on the unique index). Durable when it returns.
pub async fn reserve_key_logged(
    log: &crate::log::AccessLog,
    principal: &str,
    key: &str,
    verification_id: &str,
    request_sha256: &str,
) -> Result<bool, crate::api::ApiError> {
    if matches!(log.db(), Db::Postgres(_)) {
        return Ok(reserve_key(log.db(), principal, key, verification_id, request_sha256).await?);
    }
    let outcome = crate::log::Outcome::default();
    log.attach(Box::new(ReserveKey {
        principal: principal.to_owned(),
        key: key.to_owned(),
        verification_id: verification_id.to_owned(),
        request_sha256: request_sha256.to_owned(),
        created_ms: crate::store::now_ms(),
        outcome: outcome.clone(),
    }))
    .await?;
    let reserved = outcome.take();
    match reserved {
        Some(Ok(reserved)) => Ok(reserved),
        Some(Err(e)) => Err(crate::api::ApiError::internal(format!(
            "reserving the idempotency key failed: {e}"
        ))),
        None => Err(crate::api::ApiError::internal(
            "the idempotency key was not reserved",
        )),
    }
}

/// An `Idempotency-Key` reservation written in the access log's batch transaction.
struct ReserveKey {
    principal: String,
    key: String,
    verification_id: String,
    request_sha256: String,
    created_ms: i64,
    /// Whether the key was free (and is now this verification's), or why the statement failed.
    outcome: crate::log::Outcome<Result<bool, String>>,
}

impl crate::log::Attached for ReserveKey {
    fn write<'a>(
        &'a mut self,
        conn: crate::log::TxConn<'a>,
        _placed: &'a crate::log::Placed,
    ) -> crate::log::AttachedFuture<'a> {
        Box::pin(async move {
            macro_rules! run {
                ($c:ident) => {
                    sqlx::query(RESERVE_KEY)
                        .bind(&self.principal)
                        .bind(&self.key)
                        .bind(&self.verification_id)
                        .bind(&self.request_sha256)
                        .bind(self.created_ms)
                        .execute(&mut *$c)
                        .await
                        .map(|r| r.rows_affected())
                };
            }
            let n = match conn {
                crate::log::TxConn::Sqlite(c) => run!(c),
                crate::log::TxConn::Postgres(c) => run!(c),
            };
            let ok = n.is_ok();
            self.outcome
                .set(n.map(|n| n == 1).map_err(|e| e.to_string()));
            ok
        })
    }
}

/// The verification id and request hash a key is reserved for.
pub async fn get_key(
    db: &Db,
    principal: &str,
    key: &str,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(on_db!(db, p, _DB => {
        sqlx::query_as(SELECT_KEY)
            .bind(principal)
            .bind(key)
            .fetch_optional(p)
            .await?
    }))
}

/// Give a key back (the request it was reserved for produced no verification).
pub async fn release_key(
    db: &Db,
    principal: &str,
    key: &str,
    verification_id: &str,
) -> Result<(), StoreError> {
    on_db!(db, p, _DB => {
        sqlx::query(RELEASE_KEY)
            .bind(principal)
            .bind(key)
            .bind(verification_id)
            .execute(p)
            .await?;
    });
    Ok(())
}
