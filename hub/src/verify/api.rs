//! Routes: `POST /v1/authorizations` (登记核对授权书), `POST /v1/verifications` (发起核对),
//! `GET /v1/verifications` (核对列表, [`crate::cases::api::list_verifications`]),
//! `GET /v1/verifications/{id}` (查看核对报告), `GET /v1/verifications/{id}/print` (打印),
//! `POST /v1/verifications/{id}/letter` (补登授权书), `GET /v1/follow-ups` (待补交授权书) and
//! `GET /v1/report-key` (报告验签公钥). Described in `/v1/openapi.json` by [`crate::api::openapi`].
//!
//! Request bodies are parsed field by field so that every error names the member and the field
//! (`members[2].resident_id: check digit is 3, expected 7`) and never echoes a resident ID.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use policies::{Action, AuthorizationStatus, RequestCtx, ResourceCtx};
use schemas::access_log::{
    AccessLogEntry, Action as LogAction, Actor, Decision as LogDecision, Effect, FORMAT_V1,
    Outcome, SubjectPseudonym,
};
use schemas::{
    Department, DivisionCode, FactKind, Household, Identity, Member, Purpose, Relation, ResidentId,
    Urgency,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::aggregate::Declared;
use super::report::Report;
use super::store::{self, AuthorizationRow, FollowUpRow, VerificationRow};
use crate::api::{ApiError, AppState, JsonObject, Path, Query, json_object, request_id};
use crate::authz::Authz;
use crate::identity::Caller;

/// The routes of this module, merged into the main router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/authorizations", post(record_authorization))
        .route(
            "/v1/verifications",
            post(request_verification).get(crate::cases::api::list_verifications),
        )
        .route("/v1/verifications/{id}", get(get_verification))
        .route("/v1/verifications/{id}/print", get(print_verification))
        .route("/v1/verifications/{id}/letter", post(attach_letter))
        .route(
            "/v1/verifications/{id}/progress",
            get(super::progress::read_progress),
        )
        .route("/v1/follow-ups", get(list_follow_ups))
        .route("/v1/report-key", get(report_key))
}

/// The hub's report-signing key (报告验签公钥), for anyone checking a printed or stored report.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReportKey {
    pub alg: String,
    pub key_id: String,
    /// The raw 32-byte Ed25519 public key, hex.
    pub public_key: String,
}

async fn report_key(State(s): State<AppState>, Caller(_): Caller) -> Json<ReportKey> {
    let pk = s.keys.signing_public_key();
    Json(ReportKey {
        alg: "ed25519".into(),
        key_id: schemas::protocol::key_id_for(&pk),
        public_key: hex::encode(pk),
    })
}

fn invalid(field: impl Into<String>, rule: impl std::fmt::Display) -> ApiError {
    let field = field.into();
    ApiError::bad_request(
        "validation_failed",
        field.clone(),
        format!("{field}: {rule}"),
    )
}

fn parse_rid(field: String, s: &str) -> Result<ResidentId, ApiError> {
    ResidentId::parse(s.trim()).map_err(|e| invalid(field, e))
}

fn parse_division(field: &str, s: &str) -> Result<DivisionCode, ApiError> {
    DivisionCode::parse(s.trim()).map_err(|e| invalid(field, e))
}

pub(super) fn now_rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

pub(super) fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Everything an access-log entry of this module needs.
pub(super) struct EntryParts<'a> {
    pub(super) id: &'a Identity,
    pub(super) action: LogAction,
    pub(super) allowed: bool,
    pub(super) policy_ids: Vec<String>,
    pub(super) purpose: Option<Purpose>,
    pub(super) case_ref: Option<String>,
    pub(super) departments: Vec<Department>,
    pub(super) fact_kinds: Vec<FactKind>,
    pub(super) outcome: Outcome,
    pub(super) request_id: String,
    pub(super) subjects: &'a [String],
}

pub(super) fn entry(p: EntryParts<'_>) -> Result<AccessLogEntry, ApiError> {
    let subjects = p
        .subjects
        .iter()
        .map(|s| SubjectPseudonym::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::internal)?;
    let mut e = AccessLogEntry {
        format: FORMAT_V1.into(),
        time: OffsetDateTime::now_utc(),
        actor: Actor {
            uri: p.id.uri.clone(),
            principal: p.id.principal.clone(),
            role: p.id.role,
            organisation: p.id.organisation.clone(),
            division: p.id.division.clone(),
        },
        action: p.action,
        purpose: p.purpose,
        case_ref: p.case_ref,
        decision: LogDecision {
            effect: if p.allowed {
                Effect::Allow
            } else {
                Effect::Deny
            },
            policy_ids: p.policy_ids,
        },
        departments: p.departments,
        fact_kinds: p.fact_kinds,
        outcome: p.outcome,
        request_id: p.request_id,
        subjects,
    };
    e.normalize();
    Ok(e)
}

// === Authorizations ===

/// A resident ID as the schema states it (the check digit is checked by the server too).
pub const RESIDENT_ID_PATTERN: &str = r"^[0-9]{17}[0-9X]$";
/// A county (6 digits) or township (9 digits) division code, not starting with 00.
pub const DIVISION_PATTERN: &str = r"^(0[1-9]|[1-9][0-9])[0-9]{4}([0-9]{3})?$";

/// `POST /v1/authorizations` body: 核对授权书.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationRequest {
    /// 户籍所在地 of the household.
    #[schemars(pattern(DIVISION_PATTERN))]
    pub registered_division: String,
    #[schemars(length(min = 1, max = 30), inner(pattern(RESIDENT_ID_PATTERN)))]
    /// Resident IDs of the members who signed (each must be among `members`). A letter covers a
    /// verification only when that household's applicant (本人) is among them.
    pub signed_by: Vec<String>,
    /// Resident IDs of the members the letter covers.
    #[schemars(length(min = 1, max = 30), inner(pattern(RESIDENT_ID_PATTERN)))]
    pub members: Vec<String>,
    /// The purposes it authorizes.
    #[schemars(length(min = 1))]
    pub purposes: Vec<Purpose>,
    /// The fact kinds it authorizes; absent = everything the purposes need.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub fact_kinds: Option<Vec<FactKind>>,
    /// RFC 3339 time, or a date (valid through the end of that day, Beijing time); in the
    /// future and at most 366 days from now.
    #[schemars(length(min = 10, max = 64))]
    pub valid_until: String,
    /// SHA-256 of the scanned letter, 64 hex digits; one letter per document.
    #[schemars(pattern(r"^[0-9a-fA-F]{64}$"))]
    pub letter_sha256: String,
}

/// The recorded letter.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct AuthorizationRecorded {
    pub id: String,
    pub valid_until: String,
    pub members: usize,
    pub log_index: u64,
}

/// The longest a letter may be valid from the day it is recorded (one year).
pub const MAX_LETTER_VALIDITY: time::Duration = time::Duration::days(366);

fn parse_valid_until(s: &str) -> Result<OffsetDateTime, ApiError> {
    if let Ok(t) = OffsetDateTime::parse(s.trim(), &Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(s.trim(), &fmt).map_err(|_| {
        invalid(
            "valid_until",
            "must be an RFC 3339 time or a date YYYY-MM-DD",
        )
    })?;
    let end = d
        .with_hms_milli(23, 59, 59, 999)
        .map_err(|_| invalid("valid_until", "not a valid date"))?;
    Ok(end.assume_offset(time::macros::offset!(+8)))
}

/// Before the body is read: may the caller record a letter at all? Cedar is asked about the most
/// favourable household (one registered in the caller's own division) for every purpose; when no
/// purpose is allowed there, no body can be, and the refusal is logged (no subjects: the body is
/// not read) and answered 403. The real decision, per purpose and for the letter's division,
/// follows the validation.
async fn may_record_letters(s: &AppState, id: &Identity, rid: &str) -> Result<(), ApiError> {
    let resource = ResourceCtx {
        region: Some(id.division.clone()),
        ..Default::default()
    };
    let mut first = None;
    for purpose in Purpose::ALL {
        let ctx = RequestCtx {
            purpose: Some(purpose),
            ..RequestCtx::default()
        };
        let d = s
            .authz
            .decide(id, Action::RecordAuthorization, &resource, &ctx);
        if d.allowed {
            return Ok(());
        }
        first.get_or_insert(d);
    }
    let Some(d) = first else { return Ok(()) };
    crate::authz::enforce_logged(&s.log, Authz::verdict(d), |policy_ids| {
        entry(EntryParts {
            id,
            action: LogAction::AuthorizationRecorded,
            allowed: false,
            policy_ids,
            purpose: None,
            case_ref: None,
            departments: Vec::new(),
            fact_kinds: Vec::new(),
            outcome: Outcome::Denied,
            request_id: rid.to_owned(),
            subjects: &[],
        })
    })
    .await
    .map(|_| ())
}

/// A JSON object body judged after the decision (see `crate::api::json_object`), with the same
/// path-aware, value-free errors as every JSON body (`api::extract`).
fn parse_body<T: serde::de::DeserializeOwned + schemars::JsonSchema + 'static>(
    body: Value,
) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    crate::api::extract::parse_object(&bytes)
}

pub(crate) async fn record_authorization(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<AuthorizationRecorded>), ApiError> {
    let rid = request_id(&headers);
    may_record_letters(&s, &id, &rid).await?;
    let body = json_object(body)?;
    let req: AuthorizationRequest = parse_body(body)?;
    let division = parse_division("registered_division", &req.registered_division)?;
    if req.members.is_empty() {
        return Err(invalid("members", "must list at least one member"));
    }
    let mut subjects = Vec::new();
    for (i, m) in req.members.iter().enumerate() {
        let rid = parse_rid(format!("members[{i}]"), m)?;
        let p = s.keys.pseudonym(rid.as_str());
        if subjects.contains(&p) {
            return Err(invalid(format!("members[{i}]"), "same person listed twice"));
        }
        subjects.push(p);
    }
    if req.signed_by.is_empty() {
        return Err(invalid("signed_by", "must list at least one signer"));
    }
    let mut signers = Vec::new();
    for (i, m) in req.signed_by.iter().enumerate() {
        let rid = parse_rid(format!("signed_by[{i}]"), m)?;
        let p = s.keys.pseudonym(rid.as_str());
        if !subjects.contains(&p) {
            return Err(invalid(
                format!("signed_by[{i}]"),
                "must be one of the covered members",
            ));
        }
        signers.push(p);
    }
    if req.purposes.is_empty() {
        return Err(invalid("purposes", "must list at least one purpose"));
    }
    if let Some(k) = &req.fact_kinds
        && k.is_empty()
    {
        return Err(invalid(
            "fact_kinds",
            "must not be empty (leave it out to cover everything the purposes need)",
        ));
    }
    let valid_until = parse_valid_until(&req.valid_until)?;
    let now = OffsetDateTime::now_utc();
    if valid_until <= now {
        return Err(invalid("valid_until", "must be in the future"));
    }
    if valid_until > now + MAX_LETTER_VALIDITY {
        return Err(invalid(
            "valid_until",
            format!(
                "must be at most {} days from now",
                MAX_LETTER_VALIDITY.whole_days()
            ),
        ));
    }
    let sha = req.letter_sha256.trim().to_ascii_lowercase();
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("letter_sha256", "must be 64 hex digits (SHA-256)"));
    }
    let resource = ResourceCtx {
        region: Some(division.clone()),
        department: None,
        ..Default::default()
    };
    let mut policy_ids = Vec::new();
    for purpose in &req.purposes {
        let ctx = RequestCtx {
            purpose: Some(*purpose),
            ..RequestCtx::default()
        };
        let d = s
            .authz
            .require_logged(
                &s.log,
                &id,
                Action::RecordAuthorization,
                &resource,
                &ctx,
                |policy_ids| {
                    entry(EntryParts {
                        id: &id,
                        action: LogAction::AuthorizationRecorded,
                        allowed: false,
                        policy_ids,
                        purpose: Some(*purpose),
                        case_ref: None,
                        departments: Vec::new(),
                        fact_kinds: Vec::new(),
                        outcome: Outcome::Denied,
                        request_id: rid.clone(),
                        subjects: &subjects,
                    })
                },
            )
            .await?;
        policy_ids.extend(d.policy_ids);
    }
    let mut row = AuthorizationRow {
        id: uuid::Uuid::new_v4().to_string(),
        created_ms: unix_ms(now),
        recorded_by: id.uri.clone(),
        registered_division: division.as_str().to_owned(),
        signed_by: serde_json::to_string(&signers).map_err(ApiError::internal)?,
        subjects: serde_json::to_string(&subjects).map_err(ApiError::internal)?,
        purposes: serde_json::to_string(&req.purposes).map_err(ApiError::internal)?,
        fact_kinds: req
            .fact_kinds
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(ApiError::internal)?,
        valid_until_ms: unix_ms(valid_until),
        letter_sha256: sha,
    };
    // One scanned letter, one record. The same letter sent again by whoever recorded it (a retry)
    // gets the record it already has (200); a hash on record for anything else is another letter.
    let mut status = StatusCode::CREATED;
    if let Some(existing) = store::letter_with_sha256(&s.store.db(), &row.letter_sha256).await? {
        let on_record = store::get_authorization(&s.store.db(), &existing).await?;
        if !on_record.as_ref().is_some_and(|r| same_letter(r, &row)) {
            return Err(ApiError::new(
            StatusCode::CONFLICT,
            "letter_already_recorded",
            "letter_sha256: 该授权书扫描件已登记为另一份授权书 / this letter's document is already on record as another letter",
        )
        .with_field("letter_sha256"));
        }
        status = StatusCode::OK;
        row.id = existing;
    } else {
        store::insert_authorization(&s.store.db(), &row).await?;
    }
    let e = entry(EntryParts {
        id: &id,
        action: LogAction::AuthorizationRecorded,
        allowed: true,
        policy_ids,
        purpose: req.purposes.first().copied(),
        case_ref: None,
        departments: Vec::new(),
        fact_kinds: req.fact_kinds.clone().unwrap_or_default(),
        outcome: Outcome::Succeeded,
        request_id: rid,
        subjects: &subjects,
    })?;
    let logged = s.log.append(e).await?;
    Ok((
        status,
        Json(AuthorizationRecorded {
            id: row.id,
            valid_until: now_rfc3339(valid_until),
            members: subjects.len(),
            log_index: logged.index,
        }),
    ))
}

/// The letter on record is this one: same recorder, household, signers, members, purposes, fact
/// kinds and validity (its id and recording time aside).
fn same_letter(on_record: &AuthorizationRow, sent: &AuthorizationRow) -> bool {
    on_record.recorded_by == sent.recorded_by
        && on_record.registered_division == sent.registered_division
        && on_record.signed_by == sent.signed_by
        && on_record.subjects == sent.subjects
        && on_record.purposes == sent.purposes
        && on_record.fact_kinds == sent.fact_kinds
        && on_record.valid_until_ms == sent.valid_until_ms
        && on_record.letter_sha256 == sent.letter_sha256
}

// === Verifications ===

/// One member as the caseworker enters it.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberInput {
    /// 公民身份号码 (GB 11643-1999, valid check digit).
    #[schemars(pattern(RESIDENT_ID_PATTERN))]
    pub resident_id: String,
    /// 姓名: 1-64 characters, no control characters, at most 4 digits.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// `applicant`, `spouse`, … (see `schemas::Relation`); exactly one applicant.
    #[schemars(with = "Relation")]
    pub relation: String,
}

/// The household as the caseworker enters it.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HouseholdInput {
    #[schemars(pattern(DIVISION_PATTERN))]
    pub registered_division: String,
    #[schemars(length(min = 1, max = 30))]
    pub members: Vec<MemberInput>,
}

/// `POST /v1/verifications` body.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationRequest {
    pub household: HouseholdInput,
    pub purpose: Purpose,
    /// 案件编号: identifier characters only, no run of 15 or more digits. Kept for a transition
    /// period: with `case_id` it may be left out (it then is the case id).
    #[serde(default)]
    #[schemars(length(min = 1, max = 256), pattern(r"^[A-Za-z0-9._:/@+-]{1,256}$"))]
    pub case_ref: String,
    /// 救助案件: the id of the case (`POST /v1/cases`) this verification is for; the caller must be
    /// one who may work on the case (Cedar `read_case_notes`).
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub case_id: Option<String>,
    #[serde(default)]
    pub urgency: Urgency,
    /// The letter on record; may be absent only for an emergency temporary-assistance check.
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub authorization_id: Option<String>,
    /// 申报: declared income and assets, compared with the verified figures (see
    /// [`super::aggregate::Declared`]).
    #[serde(default)]
    pub declared: Option<Declared>,
    /// Ask every department afresh instead of reusing valid facts from an earlier verification of
    /// the same household (once-only reuse is the default).
    #[serde(default)]
    pub force_fresh: bool,
    /// How long to wait for the report; past it the answer is 202 with the id (the verification
    /// goes on). Absent: wait for completion (bounded by the urgency's deadline).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

fn validate_case_ref(c: &str) -> Result<(), ApiError> {
    let ok_chars = c
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+".contains(&b));
    let mut run = 0;
    let mut long_digits = false;
    for b in c.bytes() {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        long_digits |= run >= 15;
    }
    if c.is_empty() || c.len() > 256 || !ok_chars || long_digits {
        return Err(invalid(
            "case_ref",
            "must be 1-256 characters of A-Z a-z 0-9 - _ . : / @ + without 15 or more consecutive digits",
        ));
    }
    Ok(())
}

/// Parse the household; errors name the member and field.
fn parse_household(h: &HouseholdInput) -> Result<Household, ApiError> {
    let division = parse_division("household.registered_division", &h.registered_division)?;
    let mut members = Vec::with_capacity(h.members.len());
    for (i, m) in h.members.iter().enumerate() {
        let resident_id = parse_rid(format!("members[{i}].resident_id"), &m.resident_id)?;
        let relation = Relation::from_code(m.relation.trim()).ok_or_else(|| {
            invalid(
                format!("members[{i}].relation"),
                "unknown relation code (e.g. applicant, spouse, child, parent)",
            )
        })?;
        members.push(Member {
            resident_id,
            name: m.name.trim().to_owned(),
            relation,
        });
    }
    let household = Household {
        registered_division: division,
        members,
    };
    household
        .validate()
        .map_err(|e| invalid(e.field.clone(), e.rule))?;
    Ok(household)
}

/// What the letter on record says about this request, and why it does not cover it. A letter
/// covers only when the household's applicant is among its signers (`applicant` is a pseudonym).
pub(super) async fn authorization_status(
    s: &AppState,
    auth_id: Option<&str>,
    division: &DivisionCode,
    subjects: &[String],
    applicant: &str,
    purpose: Purpose,
    planned: &BTreeSet<FactKind>,
) -> Result<(AuthorizationStatus, Option<String>), ApiError> {
    let letter = letter_on_record(s, auth_id).await?;
    judge_letter(
        auth_id,
        letter.as_ref(),
        division,
        subjects,
        applicant,
        purpose,
        planned,
    )
}

/// The letter `auth_id` names, as stored (`None` without an id or without such a letter). Letters
/// are never changed once recorded, so one read serves every judgement of a request
/// ([`judge_letter`]).
pub(super) async fn letter_on_record(
    s: &AppState,
    auth_id: Option<&str>,
) -> Result<Option<AuthorizationRow>, ApiError> {
    match auth_id {
        Some(id) => Ok(store::get_authorization(&s.store.db(), id).await?),
        None => Ok(None),
    }
}

/// [`authorization_status`] on a letter already read: `auth_id` the id the request names, `row`
/// the letter on record under it (if any).
pub(super) fn judge_letter(
    auth_id: Option<&str>,
    row: Option<&AuthorizationRow>,
    division: &DivisionCode,
    subjects: &[String],
    applicant: &str,
    purpose: Purpose,
    planned: &BTreeSet<FactKind>,
) -> Result<(AuthorizationStatus, Option<String>), ApiError> {
    if auth_id.is_none() {
        return Ok((AuthorizationStatus::default(), None));
    }
    let Some(row) = row else {
        return Ok((
            AuthorizationStatus::default(),
            Some("未找到该授权书 / no authorization letter with this id is on record".into()),
        ));
    };
    let valid = row.valid_until_ms > unix_ms(OffsetDateTime::now_utc());
    let covered: Vec<String> = serde_json::from_str(&row.subjects).map_err(ApiError::internal)?;
    let signers: Vec<String> = serde_json::from_str(&row.signed_by).map_err(ApiError::internal)?;
    let purposes: Vec<Purpose> = serde_json::from_str(&row.purposes).map_err(ApiError::internal)?;
    let kinds: Option<Vec<FactKind>> = row
        .fact_kinds
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(ApiError::internal)?;
    let mut problem = None;
    if !valid {
        problem = Some("授权书已过期 / the letter has expired".to_owned());
    } else if row.registered_division != division.as_str() {
        problem = Some(
            "授权书登记的户籍地与本户不符 / the letter was recorded for another registered division"
                .to_owned(),
        );
    } else if let Some(i) = subjects.iter().position(|p| !covered.contains(p)) {
        problem = Some(format!(
            "授权书未覆盖 members[{i}] / the letter does not cover members[{i}]"
        ));
    } else if !signers.iter().any(|p| p == applicant) {
        problem = Some(
            "授权书未经申请人本人签字 / the applicant is not among the letter's signers".to_owned(),
        );
    } else if !purposes.contains(&purpose) {
        problem = Some(format!(
            "授权书未覆盖用途 {purpose} / the letter does not cover the purpose {purpose}"
        ));
    } else if let Some(kinds) = &kinds {
        let missing: Vec<String> = planned
            .iter()
            .filter(|k| !kinds.contains(k))
            .map(|k| k.to_string())
            .collect();
        if !missing.is_empty() {
            problem = Some(format!(
                "授权书未覆盖事实类别 {m} / the letter does not cover the fact kinds {m}",
                m = missing.join(", ")
            ));
        }
    }
    let covers = valid && problem.is_none();
    Ok((
        AuthorizationStatus {
            present: true,
            valid,
            covers,
        },
        problem,
    ))
}

/// The hash that an `Idempotency-Key` binds: of the request as parsed, not as sent. The typed
/// request is serialized with every default filled in and the household as parsed (trimmed
/// resident IDs, relation codes), so key order, whitespace and an explicit default do not make
/// a different request. `wait_ms` is how long the caller waits, not what it asks: left out.
/// Resident IDs enter as their keyed pseudonyms, so the stored hash cannot be searched for an ID.
fn canonical_request_sha(
    req: &VerificationRequest,
    household: &Household,
    pseudonym: impl Fn(&str) -> String,
) -> Result<String, ApiError> {
    let members: Vec<Value> = household
        .members
        .iter()
        .map(|m| serde_json::json!([pseudonym(m.resident_id.as_str()), m.name, m.relation]))
        .collect();
    let canonical = serde_json::json!({
        "registered_division": household.registered_division,
        "members": members,
        "purpose": req.purpose,
        "case_ref": req.case_ref,
        "urgency": req.urgency,
        "authorization_id": req.authorization_id.as_deref().map(str::trim),
        "declared": req.declared.clone().unwrap_or_default(),
        "force_fresh": req.force_fresh,
    });
    let mut canonical = canonical;
    if let Some(case_id) = &req.case_id {
        canonical["case_id"] = Value::String(case_id.trim().to_owned());
    }
    let bytes = serde_json::to_vec(&canonical).map_err(ApiError::internal)?;
    Ok(hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        &bytes,
    )))
}

/// The `Idempotency-Key` header, if any: 1-128 characters of `A-Z a-z 0-9 - _ . :`.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        invalid(
            "Idempotency-Key",
            "must be 1-128 characters of A-Z a-z 0-9 - _ . :",
        )
    };
    let k = v.to_str().map_err(|_| bad())?.trim();
    if k.is_empty()
        || k.len() > 128
        || !k
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(bad());
    }
    Ok(Some(k.to_owned()))
}

pub(crate) async fn request_verification(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    JsonObject(mut req): JsonObject<VerificationRequest>,
) -> Result<Response, ApiError> {
    let idem = idempotency_key(&headers)?;
    if let Some(case_id) = &req.case_id {
        let case_id = case_id.trim().to_owned();
        if req.case_ref.is_empty() {
            req.case_ref = case_id.clone();
        }
        req.case_id = Some(case_id);
    }
    let household = parse_household(&req.household)?;
    let request_sha = canonical_request_sha(&req, &household, |r| s.keys.pseudonym(r))?;
    validate_case_ref(&req.case_ref)?;
    if let Some((field, rule)) = req.declared.as_ref().and_then(Declared::invalid_field) {
        return Err(invalid(field, rule));
    }
    if let Some(a) = &req.authorization_id
        && (a.trim().is_empty() || a.len() > 128)
    {
        return Err(invalid("authorization_id", "must be 1-128 characters"));
    }
    let rid = request_id(&headers);
    let verification_id = uuid::Uuid::new_v4().to_string();
    let (req_purpose, req_case_ref) = (req.purpose, req.case_ref.clone());
    let running_subjects: Vec<String> = household
        .members
        .iter()
        .map(|m| s.keys.pseudonym(m.resident_id.as_str()))
        .collect();
    let wait = req.wait_ms.map(std::time::Duration::from_millis);
    let respond_async = super::progress::prefers_async(&headers);
    if let Some(case_id) = &req.case_id {
        may_link_case(&s, &id, &rid, case_id, &req, &running_subjects).await?;
    }
    let db = s.store.db();
    if let Some(key) = &idem
        && !store::reserve_key_logged(&s.log, &id.uri, key, &verification_id, &request_sha).await?
    {
        let key = key.as_str();
        // The same key again: the verification it produced, never a second one.
        return match store::get_key(&db, &id.uri, key).await? {
            Some((_, sha)) if sha != request_sha => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency-Key: already used for a different request",
            )
            .with_field("Idempotency-Key")),
            Some((vid, _)) => match store::get_verification(&db, &vid).await? {
                Some(row) => Ok(view_report(&s, &id, row, rid, LogAction::ReportViewed)
                    .await?
                    .into_response()),
                None if s.verify.is_running(&vid) => Ok(running(&vid)),
                None => Err(in_progress()),
            },
            None => Err(in_progress()),
        };
    }
    // The verification runs in its own task: it completes (and is stored) even when the caller
    // stops waiting or disconnects.
    let task = {
        let (s, id, rid, vid) = (s.clone(), id.clone(), rid.clone(), verification_id.clone());
        async move {
            let result = super::pipeline::run(&s, &id, &rid, req, household, vid.clone()).await;
            let (result, error) = super::progress::ended(result).await;
            s.progress.finish(&vid, error);
            if let Some(key) = &idem
                && !matches!(&result, Ok(r) if r.status() == StatusCode::OK)
            {
                // Nothing was produced (refused, limited or failed): the key may be used again.
                if let Err(e) = store::release_key(&s.store.db(), &id.uri, key, &vid).await {
                    tracing::error!(error = %e, "releasing an idempotency key failed");
                }
            }
            s.verify.finished(&vid);
            result
        }
    };
    s.progress
        .start(&verification_id, &id.uri, req_purpose, &req_case_ref);
    s.verify.started(
        &verification_id,
        super::Running {
            requester: id.uri.clone(),
            purpose: req_purpose,
            case_ref: req_case_ref,
            subjects: running_subjects,
        },
    );
    // The task keeps the request's trace (a child span), so the departments' `traceparent` and
    // the exported spans share one trace id even when the answer is sent before the task ends.
    let span = tracing::info_span!("verification", verification_id = %verification_id);
    let mut handle = tokio::spawn(tracing::Instrument::instrument(task, span));
    if respond_async {
        // The task goes on and stores the report (or records its error on the progress board).
        return Ok(running(&verification_id));
    }
    let joined = match wait {
        None => (&mut handle).await,
        Some(w) => match tokio::time::timeout(w, &mut handle).await {
            Ok(joined) => joined,
            Err(_) => return Ok(running(&verification_id)),
        },
    };
    joined.map_err(ApiError::internal)?
}

/// A verification naming a case (`case_id`): the case must exist (422 `case_not_found`) and the
/// caller be one who may work on it (Cedar `read_case_notes`: jurisdiction over the case's
/// township); a refusal is a denied `verification_requested` entry and 403.
async fn may_link_case(
    s: &AppState,
    id: &Identity,
    rid: &str,
    case_id: &str,
    req: &VerificationRequest,
    subjects: &[String],
) -> Result<(), ApiError> {
    let Some(case) = crate::cases::store::get_case(&s.store.db(), case_id).await? else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "case_not_found",
            "case_id: 未找到该救助案件 / no case with this id",
        )
        .with_field("case_id"));
    };
    let resource = ResourceCtx {
        region: Some(DivisionCode::parse(&case.township).map_err(ApiError::internal)?),
        requester: Some(case.filed_by.clone()),
        case_state: Some(case.state.clone()),
        ..Default::default()
    };
    s.authz
        .require_logged(
            &s.log,
            id,
            Action::ReadCaseNotes,
            &resource,
            &RequestCtx::default(),
            |policy_ids| {
                entry(EntryParts {
                    id,
                    action: LogAction::VerificationRequested,
                    allowed: false,
                    policy_ids,
                    purpose: Some(req.purpose),
                    case_ref: Some(req.case_ref.clone()),
                    departments: Vec::new(),
                    fact_kinds: Vec::new(),
                    outcome: Outcome::Denied,
                    request_id: rid.to_owned(),
                    subjects,
                })
            },
        )
        .await
        .map(|_| ())
}

/// 202: the verification is still running; `GET /v1/verifications/{id}` gives the report.
fn running(id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "id": id,
            "status": "running",
            "location": format!("/v1/verifications/{id}"),
            "progress": format!("/v1/verifications/{id}/progress"),
        })),
    )
        .into_response()
}

fn in_progress() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "in_progress",
        "此 Idempotency-Key 的核对仍在进行，请稍后重试 / a verification with this Idempotency-Key is still running; retry shortly",
    )
}

/// Withhold from `report` the raw figures `who` may not see: raw figures stay only for the fact
/// kinds the purpose's profile marks raw-visible and only when Cedar's `view_raw_values` allows
/// them; categorical indications stay. True when anything was withheld.
pub(super) fn withhold_raw_values(
    s: &AppState,
    who: &Identity,
    region: &DivisionCode,
    report: &mut Report,
) -> bool {
    let engine = s.authz.engine();
    let candidates: BTreeSet<FactKind> = report
        .members
        .iter()
        .flat_map(|m| m.facts.iter().map(|f| f.kind))
        .filter(|k| engine.profiles().raw_visible(report.purpose, *k))
        .collect();
    let allowed = !candidates.is_empty()
        && s.authz
            .decide(
                who,
                Action::ViewRawValues,
                &ResourceCtx {
                    region: Some(region.clone()),
                    department: None,
                    ..Default::default()
                },
                &RequestCtx {
                    purpose: Some(report.purpose),
                    raw_fact_kinds: candidates.iter().copied().collect(),
                    ..RequestCtx::default()
                },
            )
            .allowed;
    super::report::apply_raw_visibility(report, |k| allowed && candidates.contains(&k))
}

/// The view of a stored report that `who` may see ([`withhold_raw_values`]), signed by the hub
/// once: a view identical to a signed stored report keeps its signature; any other is signed.
fn raw_value_view(
    s: &AppState,
    who: &Identity,
    region: &DivisionCode,
    mut report: Report,
) -> Result<Report, ApiError> {
    let withheld = withhold_raw_values(s, who, region, &mut report);
    if withheld || report.signature.is_none() {
        super::report::sign(&mut report, &s.keys.signing).map_err(ApiError::internal)?;
    }
    Ok(report)
}

/// A stored verification, or the 202 of one still running (decided with Cedar's
/// `poll_verification` first: only the requester's identity URI; a refusal is logged as a denied
/// `report_viewed`), or 404. An allowed poll discloses nothing but "still running" and writes no
/// entry; the view of the finished report is logged.
async fn stored(
    s: &AppState,
    id: &Identity,
    rid: &str,
    vid: &str,
) -> Result<Result<VerificationRow, Response>, ApiError> {
    if let Some(row) = store::get_verification(&s.store.db(), vid).await? {
        return Ok(Ok(row));
    }
    let Some(running) = s.verify.running(vid) else {
        return Err(ApiError::not_found("no verification with this id"));
    };
    let resource = ResourceCtx {
        requester: Some(running.requester.clone()),
        ..Default::default()
    };
    s.authz
        .require_logged(
            &s.log,
            id,
            Action::PollVerification,
            &resource,
            &RequestCtx::default(),
            |policy_ids| {
                entry(EntryParts {
                    id,
                    action: LogAction::ReportViewed,
                    allowed: false,
                    policy_ids,
                    purpose: Some(running.purpose),
                    case_ref: Some(running.case_ref.clone()),
                    departments: Vec::new(),
                    fact_kinds: Vec::new(),
                    outcome: Outcome::Denied,
                    request_id: rid.to_owned(),
                    subjects: &running.subjects,
                })
            },
        )
        .await?;
    Ok(Err(self::running(vid)))
}

pub(crate) async fn get_verification(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(vid): Path<String>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let row = match stored(&s, &id, &rid, &vid).await? {
        Ok(row) => row,
        Err(still_running) => return Ok(still_running),
    };
    Ok(view_report(&s, &id, row, rid, LogAction::ReportViewed)
        .await?
        .into_response())
}

/// The printable zh-CN page of a stored report (for the case file); logged as `report_printed`.
async fn print_verification(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(vid): Path<String>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let row = match stored(&s, &id, &rid, &vid).await? {
        Ok(row) => row,
        Err(still_running) => return Ok(still_running),
    };
    let Json(report) = view_report(&s, &id, row, rid, LogAction::ReportPrinted).await?;
    let page = super::print::render(&report).map_err(ApiError::internal)?;
    Ok(axum::response::Html(page).into_response())
}

/// A stored report for `id`, as Cedar's `view_report` decides (jurisdiction, and `requester-only`:
/// the row's requester URI against the caller's); logged either way with the deciding policies.
async fn view_report(
    s: &AppState,
    id: &Identity,
    row: VerificationRow,
    rid: String,
    action: LogAction,
) -> Result<Json<Report>, ApiError> {
    let report: Report = serde_json::from_str(&row.report).map_err(ApiError::internal)?;
    let resource = ResourceCtx {
        region: Some(DivisionCode::parse(&row.registered_division).map_err(ApiError::internal)?),
        requester: Some(row.requested_by.clone()),
        ..Default::default()
    };
    let ctx = RequestCtx {
        purpose: Some(report.purpose),
        ..RequestCtx::default()
    };
    let subjects: Vec<String> = report.members.iter().map(|m| m.pseudonym.clone()).collect();
    // Logged either way (a view is an access): one entry, allowed or denied, then the answer.
    let (allowed, policy_ids, err) =
        match Authz::verdict(s.authz.decide(id, Action::ViewReport, &resource, &ctx)) {
            Ok(d) => (true, d.policy_ids, None),
            Err((d, e)) => (false, d.policy_ids, Some(e)),
        };
    s.log
        .append(entry(EntryParts {
            id,
            action,
            allowed,
            policy_ids,
            purpose: Some(report.purpose),
            case_ref: Some(row.case_ref.clone()),
            departments: Vec::new(),
            fact_kinds: Vec::new(),
            outcome: if allowed {
                Outcome::Succeeded
            } else {
                Outcome::Denied
            },
            request_id: rid,
            subjects: &subjects,
        })?)
        .await?;
    match err {
        Some(e) => Err(e),
        None => {
            let mut report = report;
            // Only an emergency check run without its letter has a follow-up to look up.
            let follow_up = match report.letter_due_by {
                Some(_) => store::get_follow_up(&s.store.db(), &row.id).await?,
                None => None,
            };
            if let Some(f) = follow_up {
                let now = follow_up_now(&f, s.authz.engine().calendar())?;
                if report.letter_follow_up.as_ref() != Some(&now) {
                    report.letter_follow_up = Some(now);
                    report.signature = None;
                }
            }
            let region =
                DivisionCode::parse(&row.registered_division).map_err(ApiError::internal)?;
            Ok(Json(raw_value_view(s, id, &region, report)?))
        }
    }
}

fn beijing_today() -> time::Date {
    OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+8))
        .date()
}

/// A stored follow-up as of today. The due date is derived, not read back: 5 working days from the
/// Beijing date the check ran, on the calendar loaded now. So a date that was provisional (counted
/// Monday–Friday because its year had no calendar file) is corrected once that year's file is
/// loaded; the stored `due_by` is what was computed at the time, and orders the lists.
fn follow_up_now(
    f: &FollowUpRow,
    calendar: &policies::WorkingCalendar,
) -> Result<super::report::LetterFollowUp, ApiError> {
    let beijing = time::macros::offset!(+8);
    let created = OffsetDateTime::from_unix_timestamp_nanos(i128::from(f.created_ms) * 1_000_000)
        .map_err(ApiError::internal)?;
    let due = super::report::letter_due_by(calendar, created.to_offset(beijing).date());
    let attached = match (&f.authorization_id, f.attached_ms) {
        (Some(a), Some(ms)) => Some((
            a.clone(),
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .map_err(ApiError::internal)?,
        )),
        _ => None,
    };
    Ok(super::report::follow_up(due, attached, beijing_today()))
}

/// `POST /v1/verifications/{id}/letter` body: the letter recorded after an emergency check.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachLetter {
    #[schemars(length(min = 1, max = 128))]
    pub authorization_id: String,
}

/// The answer: where the follow-up stands now.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct LetterAttached {
    pub verification_id: String,
    pub letter_follow_up: super::report::LetterFollowUp,
    pub log_index: u64,
}

/// 补登授权书: attach the letter recorded after an emergency verification ran without one. Cedar's
/// `record_authorization` decides (jurisdiction, and `requester-only`: only the identity URI that
/// requested the verification) before the body is read. Every attempt past the lookup leaves
/// exactly one entry: denied, failed (the letter does not fit) or succeeded; everything is
/// validated before the entry, and the entry is durable before the letter is attached, so no
/// letter is ever attached without its entry.
async fn attach_letter(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(vid): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<LetterAttached>, ApiError> {
    let db = s.store.db();
    let Some(row) = store::get_verification(&db, &vid).await? else {
        return Err(ApiError::not_found("no verification with this id"));
    };
    let report: Report = serde_json::from_str(&row.report).map_err(ApiError::internal)?;
    let division = DivisionCode::parse(&row.registered_division).map_err(ApiError::internal)?;
    let subjects: Vec<String> = report.members.iter().map(|m| m.pseudonym.clone()).collect();
    let rid = request_id(&headers);
    let log_entry = |allowed: bool, policy_ids: Vec<String>, outcome: Outcome| {
        entry(EntryParts {
            id: &id,
            action: LogAction::LetterAttached,
            allowed,
            policy_ids,
            purpose: Some(report.purpose),
            case_ref: Some(row.case_ref.clone()),
            departments: Vec::new(),
            fact_kinds: Vec::new(),
            outcome,
            request_id: rid.clone(),
            subjects: &subjects,
        })
    };
    let d = s
        .authz
        .require_logged(
            &s.log,
            &id,
            Action::RecordAuthorization,
            &ResourceCtx {
                region: Some(division.clone()),
                requester: Some(row.requested_by.clone()),
                ..Default::default()
            },
            &RequestCtx {
                purpose: Some(report.purpose),
                ..RequestCtx::default()
            },
            |policy_ids| log_entry(false, policy_ids, Outcome::Denied),
        )
        .await?;
    let checked = check_letter(&s, &vid, body, &report, &division, &subjects).await;
    let auth_id = match checked {
        Ok(auth_id) => auth_id,
        Err(e) => {
            s.log
                .append(log_entry(true, d.policy_ids, Outcome::Failed)?)
                .await?;
            return Err(e);
        }
    };
    // Durable entry first: a failure here attaches nothing.
    let logged = s
        .log
        .append(log_entry(true, d.policy_ids, Outcome::Succeeded)?)
        .await?;
    let now = OffsetDateTime::now_utc();
    if !store::attach_letter(&db, &vid, &auth_id, unix_ms(now)).await? {
        // Lost a race with a concurrent attach of the same verification (checked just above);
        // the entry stands for this allowed attempt.
        return Err(already_attached());
    }
    let f = store::get_follow_up(&db, &vid)
        .await?
        .ok_or_else(|| ApiError::internal("follow-up vanished"))?;
    Ok(Json(LetterAttached {
        verification_id: vid,
        letter_follow_up: follow_up_now(&f, s.authz.engine().calendar())?,
        log_index: logged.index,
    }))
}

fn already_attached() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "letter_already_attached",
        "此核对已补登授权书 / a letter is already attached to this verification",
    )
}

/// Everything about a letter to attach that can be checked before writing: the body, that a
/// letter is due and not yet attached, and that the letter covers every member, the purpose and
/// every fact kind asked. Returns the authorization id.
async fn check_letter(
    s: &AppState,
    vid: &str,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
    report: &Report,
    division: &DivisionCode,
    subjects: &[String],
) -> Result<String, ApiError> {
    let body = json_object(body)?;
    let req: AttachLetter = parse_body(body)?;
    let auth_id = req.authorization_id.trim();
    if auth_id.is_empty() || auth_id.len() > 128 {
        return Err(invalid("authorization_id", "must be 1-128 characters"));
    }
    let Some(f) = store::get_follow_up(&s.store.db(), vid).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_letter_due",
            "此核对已引用有效授权书，无需补登 / this verification already cited a covering letter",
        ));
    };
    if f.authorization_id.is_some() {
        return Err(already_attached());
    }
    let asked: BTreeSet<FactKind> = report
        .departments
        .iter()
        .flat_map(|d| d.fact_kinds.iter().copied())
        .collect();
    let applicant = report
        .members
        .iter()
        .find(|m| m.relation == Relation::Applicant.code())
        .map(|m| m.pseudonym.clone())
        .unwrap_or_default();
    let (status, problem) = authorization_status(
        s,
        Some(auth_id),
        division,
        subjects,
        &applicant,
        report.purpose,
        &asked,
    )
    .await?;
    if !status.covers {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "letter_does_not_cover",
            format!(
                "授权书不覆盖此核对 / the letter does not cover this verification: {}",
                problem.unwrap_or_default()
            ),
        )
        .with_field("authorization_id"));
    }
    Ok(auth_id.to_owned())
}

/// `GET /v1/follow-ups` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpQuery {
    /// `open` (default: no letter yet, pending or overdue), `overdue`, or `all`.
    #[serde(default)]
    #[schemars(regex(pattern = r"^(open|overdue|all)$"))]
    pub status: Option<String>,
}

/// One of the caller's emergency cases awaiting (or having received) its letter. No personal data.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct FollowUpItem {
    pub verification_id: String,
    pub case_ref: String,
    pub registered_division: String,
    pub created_at: String,
    #[serde(flatten)]
    pub follow_up: super::report::LetterFollowUp,
}

/// The caller's letter follow-ups.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct FollowUps {
    pub follow_ups: Vec<FollowUpItem>,
    /// How many of them are overdue.
    pub overdue: usize,
}

/// 待补交授权书: the caller's own emergency cases and where their letters stand (overdue first by
/// due date). Lists case references only, never members.
pub(crate) async fn list_follow_ups(
    State(s): State<AppState>,
    Caller(id): Caller,
    Query(q): Query<FollowUpQuery>,
) -> Result<Json<FollowUps>, ApiError> {
    let filter = q.status.as_deref().unwrap_or("open");
    if !["open", "overdue", "all"].contains(&filter) {
        return Err(invalid("status", "must be open, overdue or all"));
    }
    // The caller's own, by full identity URI (a namesake principal elsewhere sees none of them).
    let rows = store::list_follow_ups(&s.store.db(), &id.uri, filter != "all", 1000).await?;
    let mut items = Vec::with_capacity(rows.len());
    let engine = s.authz.engine();
    for r in rows {
        let f = follow_up_now(&r, engine.calendar())?;
        if filter == "overdue" && f.status != super::report::FollowUpStatus::Overdue {
            continue;
        }
        let created =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(r.created_ms) * 1_000_000)
                .map_err(ApiError::internal)?;
        items.push(FollowUpItem {
            verification_id: r.verification_id,
            case_ref: r.case_ref,
            registered_division: r.registered_division,
            created_at: now_rfc3339(created),
            follow_up: f,
        });
    }
    let overdue = items
        .iter()
        .filter(|i| i.follow_up.status == super::report::FollowUpStatus::Overdue)
        .count();
    Ok(Json(FollowUps {
        follow_ups: items,
        overdue,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_household(body: Value, expected: Result<usize, &str>) {
        let h: HouseholdInput = serde_json::from_value(body).unwrap();
        match (parse_household(&h), expected) {
            (Ok(h), Ok(n)) => assert_eq!(h.members.len(), n),
            (Err(e), Err(field)) => {
                assert_eq!(e.field.as_deref(), Some(field), "{}", e.message);
                for m in &h.members {
                    assert!(!e.message.contains(&m.resident_id), "{}", e.message);
                }
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn household_errors_name_member_and_field_without_the_id() {
        let good = "370811199001011234";
        let good = {
            // Compute a valid check digit for the 17-digit prefix.
            let prefix = &good[..17];
            let w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
            let sum: u32 = prefix
                .bytes()
                .zip(w)
                .map(|(b, w)| u32::from(b - b'0') * w)
                .sum();
            format!("{prefix}{}", b"10X98765432"[(sum % 11) as usize] as char)
        };
        let mut bad = good.clone();
        bad.replace_range(17..18, if good.ends_with('0') { "1" } else { "0" });
        let m = |rid: &str, rel: &str| serde_json::json!({"resident_id": rid, "name": "张三", "relation": rel});
        check_household(
            serde_json::json!({"registered_division": "370811002", "members": [m(&good, "applicant")]}),
            Ok(1),
        );
        check_household(
            serde_json::json!({"registered_division": "370811002", "members": [m(&good, "applicant"), m(&bad, "spouse")]}),
            Err("members[1].resident_id"),
        );
        check_household(
            serde_json::json!({"registered_division": "370811002", "members": [m(&good, "boss")]}),
            Err("members[0].relation"),
        );
        check_household(
            serde_json::json!({"registered_division": "37", "members": [m(&good, "applicant")]}),
            Err("household.registered_division"),
        );
        check_household(
            serde_json::json!({"registered_division": "370811002", "members": []}),
            Err("members"),
        );
    }

    #[test]
    fn case_refs_are_identifiers() {
        for (c, ok) in [
            ("case-2026-001", true),
            ("", false),
            ("案件1", false),
            ("id370811199001011234", false),
        ] {
            assert_eq!(validate_case_ref(c).is_ok(), ok, "{c}");
        }
    }
}
