//! Routes of cases (救助案件) and of a caseworker's verification list; described in
//! `/v1/openapi.json` by [`crate::api::openapi`].
//!
//! - `POST /v1/cases` (登记救助申请): decided before the body is read (may the caller open a case
//!   through any channel at all?), then for the township and channel of the body; an
//!   `Idempotency-Key` makes a retried filing one case (the same key with another request: 422).
//! - `GET /v1/cases` (案件列表): the cases the caller may see, newest first, a page at a time; no
//!   personal data in the list.
//! - `GET /v1/cases/{id}` (查看案件): the case with its applicant and timeline; the caseworkers'
//!   records only where Cedar's `read_case_notes` allows. One `case_read` entry.
//! - `POST /v1/cases/{id}/{move}`: one move of [`super::model`], decided (`move_case`, with the
//!   case's stage) before the body is read; 409 `illegal_transition` names the stage and the
//!   allowed moves. One `case_moved` entry, durable before the move is written.
//! - `GET /v1/verifications` (核对列表): the caller's own verifications, newest first.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use policies::{Action, RequestCtx, ResourceCtx};
use schemas::access_log::{
    AccessLogEntry, Action as LogAction, Actor, Decision as LogDecision, Effect, FORMAT_V1,
    Outcome, SubjectPseudonym,
};
use schemas::cases::{AssistanceType, Channel, FirstHelpKind, Hardship};
use schemas::division::DivisionLevel;
use schemas::{DivisionCode, Identity, Purpose, ResidentId, Urgency};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::clocks::{self, Clock, Timeline};
use super::escalation;
use super::model::{self, CaseState, Move};
use super::store::{self, CaseRow, EventRow, Filed, Followups, MoveRow};
use crate::api::{ApiError, AppState, Path, Query, json_object, request_id};
use crate::identity::Caller;
use crate::keys::SealError;
use crate::notify::{Notice, NotificationKind};
use crate::verify::api::{RESIDENT_ID_PATTERN, idempotency_key};

/// The routes of this module, merged into the main router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cases", post(open_case).get(list_cases))
        .route("/v1/cases/search", post(search_cases))
        .route("/v1/cases/{id}", get(read_case))
        .route("/v1/cases/{id}/accept", post(accept))
        .route("/v1/cases/{id}/transfer", post(transfer))
        .route("/v1/cases/{id}/first-help", post(first_help))
        .route("/v1/cases/{id}/investigation", post(investigation))
        .route("/v1/cases/{id}/hand-to-county", post(hand_to_county))
        .route("/v1/cases/{id}/decision", post(decision))
        .route("/v1/cases/{id}/close", post(close))
        .merge(super::supervision::routes())
}

/// A township code (9 digits).
pub const TOWNSHIP_PATTERN: &str = r"^(0[1-9]|[1-9][0-9])[0-9]{7}$";
/// A village code (12 digits).
pub const VILLAGE_PATTERN: &str = r"^(0[1-9]|[1-9][0-9])[0-9]{10}$";
/// A county or township code (6 or 9 digits).
pub const DIVISION_FILTER_PATTERN: &str = r"^(0[1-9]|[1-9][0-9])[0-9]{4}([0-9]{3})?$";
/// A phone number: digits, optionally a leading + and dashes.
pub const PHONE_PATTERN: &str = r"^\+?[0-9][0-9-]{4,19}$";
/// Largest page of a list.
pub const MAX_PAGE: u32 = 200;
/// Largest cash amount of first help or an approval, in fen (one million yuan).
pub const MAX_AMOUNT_FEN: i64 = 100_000_000;

// ==== errors ====

pub(super) fn invalid(field: impl Into<String>, rule: impl std::fmt::Display) -> ApiError {
    let field = field.into();
    ApiError::bad_request(
        "validation_failed",
        field.clone(),
        format!("{field}: {rule}"),
    )
}

pub(super) fn seal_error(e: SealError) -> ApiError {
    match e {
        SealError::Unconfigured => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "data_key_unconfigured",
            "本枢纽未配置数据加密密钥，不能登记或查看案件 / no data-encryption key is configured; cases cannot be opened or read",
        ),
        other => ApiError::internal(other),
    }
}

/// The 409 of a move the case's stage does not allow: the stage and the allowed moves.
fn illegal(e: model::IllegalTransition) -> Response {
    let allowed: Vec<&str> = e.allowed.iter().map(|m| m.code()).collect();
    let message = match e.why {
        Some(why) => why.to_owned(),
        None => format!(
            "案件当前阶段为「{}」，不能执行此操作 / the case is {}; this move is not allowed from there",
            e.state.name_zh(),
            e.state.code()
        ),
    };
    (
        StatusCode::CONFLICT,
        Json(serde_json::json!({
            "error": { "code": "illegal_transition", "message": message },
            "state": e.state,
            "allowed": allowed,
        })),
    )
        .into_response()
}

fn case_changed() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "case_changed",
        "案件已被他人更新，请刷新后重试 / the case was changed meanwhile; read it again and retry",
    )
}

fn not_found() -> ApiError {
    ApiError::not_found("no case with this id")
}

// ==== access log ====

#[allow(clippy::too_many_arguments)]
pub(super) fn case_entry(
    id: &Identity,
    action: LogAction,
    allowed: bool,
    outcome: Outcome,
    policy_ids: Vec<String>,
    rid: &str,
    case_id: Option<&str>,
    subject: Option<&str>,
) -> Result<AccessLogEntry, ApiError> {
    let subjects = subject
        .map(SubjectPseudonym::parse)
        .transpose()
        .map_err(ApiError::internal)?
        .into_iter()
        .collect();
    let mut e = AccessLogEntry {
        format: FORMAT_V1.into(),
        time: OffsetDateTime::now_utc(),
        actor: Actor {
            uri: id.uri.clone(),
            principal: id.principal.clone(),
            role: id.role,
            organisation: id.organisation.clone(),
            division: id.division.clone(),
        },
        action,
        purpose: None,
        case_ref: case_id.map(str::to_owned),
        decision: LogDecision {
            effect: if allowed { Effect::Allow } else { Effect::Deny },
            policy_ids,
        },
        departments: Vec::new(),
        fact_kinds: Vec::new(),
        outcome,
        request_id: rid.to_owned(),
        subjects,
    };
    e.normalize();
    Ok(e)
}

/// What Cedar knows of a stored case: its township, who filed it, its stage. No personal data.
fn resource(row: &CaseRow) -> Result<ResourceCtx, ApiError> {
    case_resource(&row.township, &row.filed_by, &row.state)
}

fn case_resource(township: &str, filed_by: &str, state: &str) -> Result<ResourceCtx, ApiError> {
    Ok(ResourceCtx {
        region: Some(DivisionCode::parse(township).map_err(ApiError::internal)?),
        requester: Some(filed_by.to_owned()),
        case_state: Some(state.to_owned()),
        ..Default::default()
    })
}

/// The moves `who` may make on the case as read: those its stage allows (the state machine's
/// `allowed`) that Cedar permits too, decided exactly as [`run_move`] decides them. For showing
/// the console's forms only: nothing is logged, and the move itself is decided again.
pub(crate) fn permitted_moves(s: &AppState, who: &Identity, v: &CaseView) -> Vec<Move> {
    let Ok(r) = case_resource(&v.summary.township, &v.filed_by, v.summary.state.code()) else {
        return Vec::new();
    };
    v.summary
        .allowed
        .iter()
        .copied()
        .filter(|mv| {
            let ctx = RequestCtx {
                case_move: Some(mv.code().to_owned()),
                ..Default::default()
            };
            s.authz.decide(who, Action::MoveCase, &r, &ctx).allowed
        })
        .collect()
}

// ==== shapes ====

/// 申请人: the applicant as the intake enters them.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Applicant {
    /// 公民身份号码 (GB 11643-1999, valid check digit).
    #[schemars(pattern(RESIDENT_ID_PATTERN))]
    pub resident_id: String,
    /// 姓名: 1-64 characters, no control characters, at most 4 digits.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// 联系电话.
    #[schemars(pattern(PHONE_PATTERN))]
    pub phone: String,
}

/// `POST /v1/cases` body: 救助申请.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenCaseRequest {
    /// 受理渠道; an intake system files through its own channel only.
    pub channel: Channel,
    /// 紧急程度: `emergency` (急难, help within 2 h), `urgent` (24 h), `normal`.
    pub tier: Urgency,
    pub applicant: Applicant,
    /// 户籍所在乡镇 (9 digits): the township of the household's registered address, which accepts
    /// the case.
    #[schemars(pattern(TOWNSHIP_PATTERN))]
    pub township: String,
    /// 户籍所在村（社区） (12 digits, inside `township`), when known.
    #[serde(default)]
    #[schemars(pattern(VILLAGE_PATTERN))]
    pub village: Option<String>,
    /// 困难类型.
    pub hardship: Hardship,
    /// 困难情况描述: 1-2000 characters.
    #[schemars(length(min = 1, max = 2000))]
    pub description: String,
}

/// The personal fields of a case, sealed at rest.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
pub struct Personal {
    pub applicant: Applicant,
    pub description: String,
}

/// A case without personal data (answers to filings and moves, list items).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct CaseSummary {
    /// Case id (UUIDv7).
    pub id: String,
    pub state: CaseState,
    pub tier: Urgency,
    pub channel: Channel,
    pub hardship: Hardship,
    pub township: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub village: Option<String>,
    /// `approved` or `refused`, once decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Increases with every move; send it back as `expected_version` to move only what you saw.
    pub version: i64,
    /// The moves the case's stage allows.
    pub allowed: Vec<Move>,
}

/// One event of a case's timeline.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct CaseEvent {
    pub seq: i64,
    /// `open` or a move.
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_state: Option<CaseState>,
    pub to_state: CaseState,
    /// The full identity URI of who made it.
    pub actor: String,
    pub at: String,
    /// The township the case is with after the event.
    pub township: String,
    /// The move's body (reason, record, amounts), where the caller may read the caseworkers'
    /// records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// `GET /v1/cases/{id}`: the case with its applicant and timeline.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct CaseView {
    #[serde(flatten)]
    pub summary: CaseSummary,
    pub applicant: Applicant,
    pub description: String,
    /// The full identity URI that filed it.
    pub filed_by: String,
    pub events: Vec<CaseEvent>,
    /// 办理时限: the statutory clocks (first help for emergency and urgent cases from filing;
    /// materials, initial opinion and decision from acceptance, on the official working-day
    /// calendar), computed at the time of the request.
    pub clocks: Vec<Clock>,
    /// 转办单: the referral slips issued from the case, oldest first, with their state, due date
    /// and `overdue`; what is asked and the feedback where the caller may read the caseworkers'
    /// records.
    pub slips: Vec<super::slips_api::CaseSlip>,
    /// 预警: the warning this case was converted from (channel `warning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_id: Option<String>,
}

/// The answer to a filing or a move.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct CaseChanged {
    #[serde(flatten)]
    pub case: CaseSummary,
    /// Index of the access-log entry of this change.
    pub log_index: u64,
}

/// A list item: the case without personal data, and its nearest open statutory clock.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct CaseListItem {
    #[serde(flatten)]
    pub summary: CaseSummary,
    /// 最近时限: the earliest deadline among the case's open clocks (RFC 3339, +08:00); absent
    /// when no clock is open. See `clocks` on `GET /v1/cases/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_due_at: Option<String>,
    /// 已超期: some open clock is past its deadline.
    pub overdue: bool,
}

/// `GET /v1/cases` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct CaseList {
    pub cases: Vec<CaseListItem>,
    /// Pass as `cursor` for the next page; absent on the last page. A page may hold fewer than
    /// `limit` cases (those the caller may not see are left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/cases` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseListQuery {
    #[serde(default)]
    pub state: Option<CaseState>,
    #[serde(default)]
    pub tier: Option<Urgency>,
    /// A county (6 digits) or township (9 digits).
    #[serde(default)]
    pub township: Option<String>,
    /// `newest` (the default), `oldest` (the longest waiting first) or `due` (the nearest open
    /// deadline first, overdue ones first of all; cases without an open clock last).
    #[serde(default)]
    pub order: Option<store::CaseOrder>,
    /// From `next_cursor` of the previous page, with the same `order`.
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    /// `true`: only cases with an overdue clock (filtered in the database on the stored nearest
    /// open deadline, so pages are full). `false`: only cases without one.
    #[serde(default)]
    pub overdue: Option<bool>,
}

// ---- move bodies ----

/// The fields every move accepts.
#[derive(Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// 备注: 1-1000 characters.
    #[serde(default)]
    #[schemars(length(min = 1, max = 1000))]
    pub note: Option<String>,
    /// Move only if the case is still at this version (else 409 `version_mismatch`).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
}

/// `POST /v1/cases/{id}/transfer` body: 分办 to the township of the registered address.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The township (9 digits) the case goes to; not the one it is with.
    #[schemars(pattern(TOWNSHIP_PATTERN))]
    pub to_township: String,
    /// 分办理由: 1-1000 characters.
    #[schemars(length(min = 1, max = 1000))]
    pub reason: String,
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
}

/// `POST /v1/cases/{id}/first-help` body: 先行救助.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirstHelpBody {
    pub kind: FirstHelpKind,
    /// Amount in fen: required for cash; for in-kind help or a service, its value if known.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100_000_000))]
    pub amount_fen: Option<i64>,
    /// When it was given (RFC 3339), not in the future.
    #[schemars(length(min = 20, max = 64))]
    pub given_at: String,
    /// 救助人: who gave it, 1-64 characters.
    #[schemars(length(min = 1, max = 64))]
    pub given_by: String,
    /// 1-1000 characters.
    #[serde(default)]
    #[schemars(length(min = 1, max = 1000))]
    pub note: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
}

/// 入户调查记录.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HomeVisit {
    /// RFC 3339, not in the future.
    #[schemars(length(min = 20, max = 64))]
    pub visited_at: String,
    /// Who visited (at least two people by the rules; 1-5 names of 1-64 characters).
    #[schemars(length(min = 1, max = 5), inner(length(min = 1, max = 64)))]
    pub visited_by: Vec<String>,
    /// 调查情况: 1-4000 characters.
    #[schemars(length(min = 1, max = 4000))]
    pub findings: String,
}

/// 初审意见 recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    Approve,
    Refuse,
}

/// 调查初审意见.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InitialOpinion {
    pub recommendation: Recommendation,
    #[serde(default)]
    pub assistance_type: Option<AssistanceType>,
    /// 1-2000 characters.
    #[schemars(length(min = 1, max = 2000))]
    pub text: String,
}

/// `POST /v1/cases/{id}/investigation` body.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InvestigationBody {
    pub home_visit: HomeVisit,
    /// Verifications (核对) run for this case: each must name this case (`case_id`, or `case_ref`
    /// equal to the case id).
    #[serde(default)]
    #[schemars(length(max = 20), inner(length(min = 1, max = 128)))]
    pub verification_ids: Vec<String>,
    pub initial_opinion: InitialOpinion,
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
}

/// `POST /v1/cases/{id}/hand-to-county` body: 转交县级.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandToCountyBody {
    /// 1-1000 characters.
    #[schemars(length(min = 1, max = 1000))]
    pub reason: String,
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// 批准
    Approved,
    /// 不予批准
    Refused,
}

/// `POST /v1/cases/{id}/decision` body: 审批决定.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub decision: DecisionOutcome,
    /// Required when approved.
    #[serde(default)]
    pub assistance_type: Option<AssistanceType>,
    /// Amount granted, in fen, when approved.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100_000_000))]
    pub amount_fen: Option<i64>,
    /// 告知: the reason explained to the applicant; required when refused, 1-2000 characters.
    #[serde(default)]
    #[schemars(length(min = 1, max = 2000))]
    pub reason_for_applicant: Option<String>,
    /// 1-1000 characters.
    #[serde(default)]
    #[schemars(length(min = 1, max = 1000))]
    pub note: Option<String>,
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
}

// ==== parsing ====

pub(crate) fn parse_body<T: serde::de::DeserializeOwned + schemars::JsonSchema + 'static>(
    body: Value,
) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    crate::api::extract::parse_object(&bytes)
}

pub(super) fn text(field: &str, v: &str, max: usize) -> Result<(), ApiError> {
    let n = v.trim().chars().count();
    if n == 0 || n > max {
        return Err(invalid(field, format!("must be 1-{max} characters")));
    }
    Ok(())
}

pub(super) fn opt_text(field: &str, v: &Option<String>, max: usize) -> Result<(), ApiError> {
    v.as_deref().map_or(Ok(()), |v| text(field, v, max))
}

pub(super) fn township(field: &str, v: &str, region: &str) -> Result<DivisionCode, ApiError> {
    let d = DivisionCode::parse(v.trim()).map_err(|e| invalid(field, e))?;
    if d.level() != DivisionLevel::Township {
        return Err(invalid(field, "must be a township code (9 digits)"));
    }
    if !d.as_str().starts_with(region) {
        return Err(invalid(
            field,
            format!("must be a township of this hub's region ({region}…)"),
        ));
    }
    Ok(d)
}

fn past_time(field: &str, v: &str) -> Result<OffsetDateTime, ApiError> {
    let t = OffsetDateTime::parse(v.trim(), &Rfc3339)
        .map_err(|_| invalid(field, "must be an RFC 3339 time"))?;
    // A few minutes of clock skew between the caller and the hub.
    if t > OffsetDateTime::now_utc() + time::Duration::minutes(5) {
        return Err(invalid(field, "must not be in the future"));
    }
    Ok(t)
}

/// A filing, checked field by field; errors name the field and never quote it.
struct Filing {
    resident_id: ResidentId,
    township: DivisionCode,
    village: Option<String>,
}

fn check_filing(req: &OpenCaseRequest, region: &str) -> Result<Filing, ApiError> {
    let resident_id = ResidentId::parse(req.applicant.resident_id.trim())
        .map_err(|e| invalid("applicant.resident_id", e))?;
    if let Some(problem) = schemas::household::name_problem(&req.applicant.name) {
        return Err(invalid("applicant.name", problem));
    }
    let phone = req.applicant.phone.trim();
    let phone_ok = (5..=20).contains(&phone.len())
        && phone
            .strip_prefix('+')
            .unwrap_or(phone)
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i > 0 && b == b'-'));
    if !phone_ok {
        return Err(invalid(
            "applicant.phone",
            "must be 5-20 characters: digits, dashes, optionally a leading +",
        ));
    }
    let township = township("township", &req.township, region)?;
    let village = match req.village.as_deref().map(str::trim) {
        None => None,
        Some(v) => {
            if v.len() != 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("village", "must be a village code (12 digits)"));
            }
            if !v.starts_with(township.as_str()) {
                return Err(invalid("village", "must lie inside `township`"));
            }
            Some(v.to_owned())
        }
    };
    text("description", &req.description, 2000)?;
    Ok(Filing {
        resident_id,
        township,
        village,
    })
}

pub(super) fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn summary(row: &CaseRow) -> Result<CaseSummary, ApiError> {
    let bad = |what: &str| ApiError::internal(format!("case row: unknown {what}"));
    let state = CaseState::from_code(&row.state).ok_or_else(|| bad("state"))?;
    let tier = tier_of(row)?;
    Ok(CaseSummary {
        id: row.id.clone(),
        state,
        tier,
        channel: Channel::from_code(&row.channel).ok_or_else(|| bad("channel"))?,
        hardship: Hardship::from_code(&row.hardship).ok_or_else(|| bad("hardship"))?,
        township: row.township.clone(),
        village: row.village.clone(),
        outcome: row.outcome.clone(),
        created_at: rfc3339(row.created_ms),
        updated_at: rfc3339(row.updated_ms),
        version: row.version,
        allowed: model::allowed(state, tier),
    })
}

fn tier_of(row: &CaseRow) -> Result<Urgency, ApiError> {
    serde_json::from_value(Value::String(row.tier.clone()))
        .map_err(|_| ApiError::internal("case row: unknown tier"))
}

/// Associated data of a case's personal fields and of its events' details.
pub(super) fn personal_aad(case_id: &str) -> Vec<u8> {
    format!("jsj-case/1 personal {case_id}").into_bytes()
}

fn event_aad(case_id: &str, seq: i64) -> Vec<u8> {
    format!("jsj-case/1 event {case_id} {seq}").into_bytes()
}

// ==== opening ====

/// Before the body is read: may the caller open a case through any channel, for a household in
/// its own division? When not, the refusal is logged (no subject: the body is not read) and 403.
async fn may_open_cases(s: &AppState, id: &Identity, rid: &str) -> Result<(), ApiError> {
    let resource = ResourceCtx {
        region: Some(id.division.clone()),
        ..Default::default()
    };
    let ctx = |c: Channel| RequestCtx {
        channel: Some(c.code().to_owned()),
        ..Default::default()
    };
    if Channel::ALL.iter().any(|c| {
        s.authz
            .decide(id, Action::OpenCase, &resource, &ctx(*c))
            .allowed
    }) {
        return Ok(());
    }
    s.authz
        .require_logged(
            &s.log,
            id,
            Action::OpenCase,
            &resource,
            &ctx(Channel::WalkIn),
            |policy_ids| {
                case_entry(
                    id,
                    LogAction::CaseOpened,
                    false,
                    Outcome::Denied,
                    policy_ids,
                    rid,
                    None,
                    None,
                )
            },
        )
        .await
        .map(|_| ())
}

/// The hash an `Idempotency-Key` binds: the filing as parsed, keyed (HMAC with the pseudonym
/// key), so the stored hash cannot be searched for a person.
fn filing_hash(s: &AppState, req: &OpenCaseRequest, f: &Filing) -> Result<String, ApiError> {
    let canonical = serde_json::json!({
        "channel": req.channel,
        "tier": req.tier,
        "resident_id": f.resident_id.as_str(),
        "name": req.applicant.name.trim(),
        "phone": req.applicant.phone.trim(),
        "township": f.township.as_str(),
        "village": f.village,
        "hardship": req.hardship,
        "description": req.description.trim(),
    });
    Ok(s.keys.pseudonym(&format!("jsj-case-filing/1 {canonical}")))
}

async fn existing_filing(
    s: &AppState,
    case_id: &str,
    sha: &str,
    request_sha: &str,
) -> Result<Opened, ApiError> {
    if sha != request_sha {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "Idempotency-Key: already used for a different filing",
        )
        .with_field("Idempotency-Key"));
    }
    let row = store::get_case(&s.store.db(), case_id)
        .await?
        .ok_or_else(|| ApiError::internal("idempotency key names a missing case"))?;
    Ok(Opened::Existing(summary(&row)?))
}

/// What filing a case did: a new case (with its access-log index), or the case an
/// `Idempotency-Key` already named.
pub(crate) enum Opened {
    New(CaseChanged),
    Existing(CaseSummary),
}

impl Opened {
    fn into_response(self) -> Response {
        match self {
            Opened::New(c) => (StatusCode::CREATED, Json(c)).into_response(),
            Opened::Existing(c) => (StatusCode::OK, Json(c)).into_response(),
        }
    }
}

pub(crate) async fn open_case(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    may_open_cases(&s, &id, &rid).await?;
    let idem = idempotency_key(&headers)?;
    let req: OpenCaseRequest = parse_body(json_object(body)?)?;
    Ok(file_case(&s, &id, &rid, &req, idem).await?.into_response())
}

/// File a case (checked, decided by Cedar, logged, stored): `POST /v1/cases`, and a warning
/// converted to a case (channel `warning`).
pub(crate) async fn file_case(
    s: &AppState,
    id: &Identity,
    rid: &str,
    req: &OpenCaseRequest,
    idem: Option<String>,
) -> Result<Opened, ApiError> {
    let (s, id, rid) = (s.clone(), id.clone(), rid.to_owned());
    let filing = check_filing(req, &s.tls.rules().division_prefix)?;
    let applicant = s.keys.pseudonym(filing.resident_id.as_str());
    let request_sha = filing_hash(&s, req, &filing)?;
    let db = s.store.db();
    if let Some(key) = &idem
        && let Some((case_id, sha)) = store::case_for_key(&db, &id.uri, key).await?
    {
        return existing_filing(&s, &case_id, &sha, &request_sha).await;
    }
    let decided = s
        .authz
        .require_logged(
            &s.log,
            &id,
            Action::OpenCase,
            &ResourceCtx {
                region: Some(filing.township.clone()),
                requester: Some(id.uri.clone()),
                ..Default::default()
            },
            &RequestCtx {
                channel: Some(req.channel.code().to_owned()),
                ..Default::default()
            },
            |policy_ids| {
                case_entry(
                    &id,
                    LogAction::CaseOpened,
                    false,
                    Outcome::Denied,
                    policy_ids,
                    &rid,
                    None,
                    Some(&applicant),
                )
            },
        )
        .await?;
    let case_id = uuid::Uuid::now_v7().to_string();
    let personal = Personal {
        applicant: Applicant {
            resident_id: filing.resident_id.as_str().to_owned(),
            name: req.applicant.name.trim().to_owned(),
            phone: req.applicant.phone.trim().to_owned(),
        },
        description: req.description.trim().to_owned(),
    };
    let plain = serde_json::to_vec(&personal).map_err(ApiError::internal)?;
    let (key_id, sealed) = s
        .keys
        .seal(&personal_aad(&case_id), &plain)
        .map_err(seal_error)?;
    let now = ms(OffsetDateTime::now_utc());
    let row = CaseRow {
        id: case_id.clone(),
        created_ms: now,
        updated_ms: now,
        filed_by: id.uri.clone(),
        channel: req.channel.code().to_owned(),
        tier: req.tier.code().to_owned(),
        hardship: req.hardship.code().to_owned(),
        state: CaseState::Received.code().to_owned(),
        township: filing.township.as_str().to_owned(),
        village: filing.village.clone(),
        applicant: applicant.clone(),
        personal: sealed,
        key_id,
        outcome: None,
        version: 1,
    };
    let first = EventRow {
        case_id: case_id.clone(),
        seq: 1,
        at_ms: now,
        action: "open".into(),
        from_state: None,
        to_state: row.state.clone(),
        actor: id.uri.clone(),
        township: row.township.clone(),
        details: None,
        key_id: None,
    };
    // Durable entry first: a failure here files nothing.
    let logged = s
        .log
        .append(case_entry(
            &id,
            LogAction::CaseOpened,
            true,
            Outcome::Succeeded,
            decided.policy_ids,
            &rid,
            Some(&case_id),
            Some(&applicant),
        )?)
        .await?;
    let key = idem.as_deref().map(|k| (k, request_sha.as_str()));
    let followups = Followups {
        due: case_due(&s, &row, std::slice::from_ref(&first))?.1,
        ..Default::default()
    };
    match store::insert_case(&db, &row, &first, key, &followups).await? {
        Filed::New => {}
        // A concurrent retry with the same key filed it first.
        Filed::Existing { case_id, sha256 } => {
            return existing_filing(&s, &case_id, &sha256, &request_sha).await;
        }
    }
    tracing::info!(case_id = %case_id, tier = %row.tier, channel = %row.channel, township = %row.township, "case opened");
    Ok(Opened::New(CaseChanged {
        case: summary(&row)?,
        log_index: logged.index,
    }))
}

// ==== reading ====

pub(crate) async fn read_case(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(case_id): Path<String>,
) -> Result<Json<CaseView>, ApiError> {
    let rid = request_id(&headers);
    let db = s.store.db();
    let row = store::get_case(&db, &case_id)
        .await?
        .ok_or_else(not_found)?;
    let resource = resource(&row)?;
    let decided = s
        .authz
        .require_logged(
            &s.log,
            &id,
            Action::ReadCase,
            &resource,
            &RequestCtx::default(),
            |policy_ids| {
                case_entry(
                    &id,
                    LogAction::CaseRead,
                    false,
                    Outcome::Denied,
                    policy_ids,
                    &rid,
                    Some(&row.id),
                    Some(&row.applicant),
                )
            },
        )
        .await?;
    let notes = s
        .authz
        .decide(
            &id,
            Action::ReadCaseNotes,
            &resource,
            &RequestCtx::default(),
        )
        .allowed;
    let plain = s
        .keys
        .open(&row.key_id, &personal_aad(&row.id), &row.personal)
        .map_err(seal_error)?;
    let personal: Personal = serde_json::from_slice(&plain).map_err(ApiError::internal)?;
    let rows = store::events(&db, &row.id).await?;
    let now = OffsetDateTime::now_utc();
    let clocks = case_clocks(&s, &row, &rows, now)?;
    let slips = super::slips_api::case_slips(&s, &row.id, notes, ms(now)).await?;
    let mut events = Vec::new();
    for e in rows {
        let details = match (&e.details, &e.key_id) {
            (Some(sealed), Some(key_id)) if notes => {
                let plain = s
                    .keys
                    .open(key_id, &event_aad(&row.id, e.seq), sealed)
                    .map_err(seal_error)?;
                Some(serde_json::from_slice(&plain).map_err(ApiError::internal)?)
            }
            _ => None,
        };
        let state = |c: &str| {
            CaseState::from_code(c).ok_or_else(|| ApiError::internal("case event: unknown state"))
        };
        events.push(CaseEvent {
            seq: e.seq,
            action: e.action,
            from_state: e.from_state.as_deref().map(state).transpose()?,
            to_state: state(&e.to_state)?,
            actor: e.actor,
            at: rfc3339(e.at_ms),
            township: e.township,
            details,
        });
    }
    s.log
        .append(case_entry(
            &id,
            LogAction::CaseRead,
            true,
            Outcome::Succeeded,
            decided.policy_ids,
            &rid,
            Some(&row.id),
            Some(&row.applicant),
        )?)
        .await?;
    let warning_id = if row.channel == Channel::Warning.code() {
        crate::warning::store::warning_of_case(&s.store.db(), &row.id).await?
    } else {
        None
    };
    Ok(Json(CaseView {
        summary: summary(&row)?,
        applicant: personal.applicant,
        description: personal.description,
        filed_by: row.filed_by,
        events,
        clocks,
        slips,
        warning_id,
    }))
}

/// The case's statutory clocks at `now` ([`clocks`]), on the engine's working-day calendar.
fn case_clocks(
    s: &AppState,
    row: &CaseRow,
    events: &[EventRow],
    now: OffsetDateTime,
) -> Result<Vec<Clock>, ApiError> {
    let timeline = Timeline::from_events(
        row.created_ms,
        events.iter().map(|e| (e.action.as_str(), e.at_ms)),
    );
    let engine = s.authz.engine();
    Ok(clocks::clocks(
        tier_of(row)?,
        &timeline,
        engine.calendar(),
        &engine.deadlines().case,
        now,
    ))
}

/// The clocks of `row` with timeline `events` at now, and the stored deadline columns they give
/// ([`escalation::case_due`]).
fn case_due(
    s: &AppState,
    row: &CaseRow,
    events: &[EventRow],
) -> Result<(Vec<Clock>, escalation::Due), ApiError> {
    let timeline = Timeline::from_events(
        row.created_ms,
        events.iter().map(|e| (e.action.as_str(), e.at_ms)),
    );
    let engine = s.authz.engine();
    Ok(escalation::case_due(
        tier_of(row)?,
        &timeline,
        engine.calendar(),
        &engine.deadlines().case,
        OffsetDateTime::now_utc(),
    ))
}

/// The notification a move causes, if any (no personal data: ids, kinds, township, times).
fn move_notice(row: &CaseRow, mv: Move, m: &MoveRow) -> Option<Notice> {
    let (kind, extra) = match mv {
        Move::Accept => (
            NotificationKind::CaseAccepted,
            serde_json::json!({ "accepted_at": escalation::rfc3339(m.at_ms) }),
        ),
        Move::Decide => (
            NotificationKind::CaseDecided,
            serde_json::json!({
                "outcome": m.outcome,
                "decided_at": escalation::rfc3339(m.at_ms),
            }),
        ),
        _ => return None,
    };
    let mut payload = serde_json::json!({
        "case_id": row.id,
        "tier": row.tier,
        "channel": row.channel,
        "township": m.township,
        "county": escalation::county_of(&m.township),
    });
    if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
        p.extend(e);
    }
    Some(Notice {
        kind,
        case_id: Some(row.id.clone()),
        dedup_key: None,
        payload,
    })
}

/// A list item: the summary with the nearest open clock (one timeline read per case).
fn list_item(
    s: &AppState,
    row: &CaseRow,
    events: &[store::EventRow],
    now: OffsetDateTime,
) -> Result<CaseListItem, ApiError> {
    let (next_due_at, overdue) = clocks::nearest_open(&case_clocks(s, row, events, now)?);
    Ok(CaseListItem {
        summary: summary(row)?,
        next_due_at,
        overdue,
    })
}

/// The digits every division inside `d` shares (a city lists its counties' townships).
pub(crate) fn division_prefix(d: &DivisionCode) -> &str {
    match d.level() {
        DivisionLevel::Province => &d.as_str()[..2],
        DivisionLevel::City => &d.as_str()[..4],
        DivisionLevel::County | DivisionLevel::Township | DivisionLevel::Village => d.as_str(),
    }
}

/// A case list's cursor: the last case's id, prefixed by its deadline key in `due` order.
fn case_cursor(pos: &store::CasePos, order: store::CaseOrder) -> String {
    match order {
        store::CaseOrder::Due => format!("{}_{}", pos.due_ms, pos.id),
        _ => pos.id.clone(),
    }
}

fn parse_case_cursor(c: &str, order: store::CaseOrder) -> Result<store::CasePos, ApiError> {
    let bad = || {
        invalid(
            "cursor",
            "must be a cursor from a previous page in the same order",
        )
    };
    let (due_ms, id) = match order {
        store::CaseOrder::Due => {
            let (due, id) = c.split_once('_').ok_or_else(bad)?;
            (due.parse::<i64>().map_err(|_| bad())?, id)
        }
        _ => (0, c),
    };
    let id = uuid::Uuid::parse_str(id).map_err(|_| bad())?.to_string();
    Ok(store::CasePos { id, due_ms })
}

pub(crate) fn page_limit(limit: Option<u32>) -> Result<i64, ApiError> {
    match limit.unwrap_or(50) {
        n @ 1..=MAX_PAGE => Ok(i64::from(n)),
        _ => Err(invalid("limit", format!("must be 1-{MAX_PAGE}"))),
    }
}

/// 案件列表: decided once for the caller (`list_cases` on a case of its own division that it
/// filed), then case by case; the list carries no personal data, so nothing is logged.
pub(crate) async fn list_cases(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<Query<CaseListQuery>, ApiError>,
) -> Result<Json<CaseList>, ApiError> {
    s.authz
        .require(
            &id,
            Action::ListCases,
            &ResourceCtx {
                region: Some(id.division.clone()),
                requester: Some(id.uri.clone()),
                ..Default::default()
            },
            &RequestCtx::default(),
        )
        .map_err(|(_, e)| e)?;
    let Query(q) = q?;
    let limit = page_limit(q.limit)?;
    let township = q
        .township
        .as_deref()
        .map(|t| DivisionCode::parse(t.trim()).map_err(|e| invalid("township", e)))
        .transpose()?;
    let order = q.order.unwrap_or_default();
    let after = q
        .cursor
        .as_deref()
        .map(|c| parse_case_cursor(c, order))
        .transpose()?;
    let filter = store::CaseFilter {
        division: division_prefix(&id.division).to_owned(),
        filed_by: id.uri.clone(),
        state: q.state.map(|s| s.code().to_owned()),
        tier: q.tier.map(|t| t.code().to_owned()),
        township: township.map(|t| division_prefix(&t).to_owned()),
        order,
        after,
        limit,
        overdue: q.overdue.map(|o| (o, ms(OffsetDateTime::now_utc()))),
    };
    let rows = store::list_cases(&s.store.db(), &filter).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|(_, pos)| case_cursor(pos, order)))
        .flatten();
    let now = OffsetDateTime::now_utc();
    let mut seen = Vec::new();
    for (row, _) in &rows {
        let allowed = s
            .authz
            .decide(
                &id,
                Action::ListCases,
                &resource(row)?,
                &RequestCtx::default(),
            )
            .allowed;
        if allowed {
            seen.push(row);
        }
    }
    // The timelines of the whole page in one query (the clocks are computed from them).
    let ids: Vec<&str> = seen.iter().map(|r| r.id.as_str()).collect();
    let events = store::events_of(&s.store.db(), &ids).await?;
    let mut cases = Vec::new();
    for row in seen {
        let timeline = events.get(&row.id).map(Vec::as_slice).unwrap_or_default();
        let item = list_item(&s, row, timeline, now)?;
        if q.overdue.is_none_or(|want| item.overdue == want) {
            cases.push(item);
        }
    }
    Ok(Json(CaseList { cases, next_cursor }))
}

/// `POST /v1/cases/search` body: 按身份证号查找案件.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseSearch {
    /// 公民身份号码 of the applicant (looked up by its keyed pseudonym).
    #[schemars(pattern(RESIDENT_ID_PATTERN))]
    pub resident_id: String,
}

/// Most cases a look-up returns.
const MAX_SEARCH: i64 = 100;

/// 按身份证号查找案件: a person's cases the caller may see, newest first (the ID in the body, never
/// in a URL; looked up by keyed pseudonym). Decided before the body is read (`list_cases` for the
/// caller's own division); every look-up, allowed or refused, is one `case_searched` entry naming
/// the person's pseudonym (when the refused body held a valid ID).
async fn search_cases(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<CaseList>, ApiError> {
    let rid = request_id(&headers);
    let subject = body
        .as_ref()
        .ok()
        .and_then(|b| b.0.get("resident_id")?.as_str().map(str::to_owned))
        .and_then(|r| ResidentId::parse(r.trim()).ok())
        .map(|r| s.keys.pseudonym(r.as_str()));
    let decided = s
        .authz
        .require_logged(
            &s.log,
            &id,
            Action::ListCases,
            &ResourceCtx {
                region: Some(id.division.clone()),
                requester: Some(id.uri.clone()),
                ..Default::default()
            },
            &RequestCtx::default(),
            |policy_ids| {
                case_entry(
                    &id,
                    LogAction::CaseSearched,
                    false,
                    Outcome::Denied,
                    policy_ids,
                    &rid,
                    None,
                    subject.as_deref(),
                )
            },
        )
        .await?;
    let req: CaseSearch = parse_body(json_object(body)?)?;
    let applicant = ResidentId::parse(req.resident_id.trim())
        .map(|r| s.keys.pseudonym(r.as_str()))
        .map_err(|e| invalid("resident_id", e))?;
    let rows = store::cases_of_applicant(&s.store.db(), &applicant, MAX_SEARCH).await?;
    let now = OffsetDateTime::now_utc();
    let mut cases = Vec::new();
    for row in &rows {
        let seen = s
            .authz
            .decide(
                &id,
                Action::ListCases,
                &resource(row)?,
                &RequestCtx::default(),
            )
            .allowed;
        if seen {
            let events = store::events(&s.store.db(), &row.id).await?;
            cases.push(list_item(&s, row, &events, now)?);
        }
    }
    s.log
        .append(case_entry(
            &id,
            LogAction::CaseSearched,
            true,
            Outcome::Succeeded,
            decided.policy_ids,
            &rid,
            None,
            Some(&applicant),
        )?)
        .await?;
    Ok(Json(CaseList {
        cases,
        next_cursor: None,
    }))
}

// ==== moves ====

/// A parsed move body and what it changes besides the stage.
struct Checked {
    details: Value,
    expected_version: Option<i64>,
    to_township: Option<String>,
    outcome: Option<&'static str>,
}

fn checked<T: Serialize>(body: &T, expected_version: Option<i64>) -> Result<Checked, ApiError> {
    let mut details = serde_json::to_value(body).map_err(ApiError::internal)?;
    if let Value::Object(o) = &mut details {
        o.remove("expected_version");
        o.retain(|_, v| !v.is_null());
    }
    Ok(Checked {
        details,
        expected_version,
        to_township: None,
        outcome: None,
    })
}

/// Parse and check the body of `mv` for the case `row` (a transfer goes elsewhere; investigated
/// verifications name this case; a refusal is explained).
async fn check_move(
    s: &AppState,
    mv: Move,
    row: &CaseRow,
    body: Value,
) -> Result<Checked, ApiError> {
    match mv {
        Move::Accept | Move::Close => {
            let b: NoteBody = parse_body(body)?;
            opt_text("note", &b.note, 1000)?;
            checked(&b, b.expected_version)
        }
        Move::Transfer => {
            let b: TransferBody = parse_body(body)?;
            let to = township(
                "to_township",
                &b.to_township,
                &s.tls.rules().division_prefix,
            )?;
            if to.as_str() == row.township {
                return Err(invalid(
                    "to_township",
                    "must be another township than the one the case is with",
                ));
            }
            text("reason", &b.reason, 1000)?;
            let mut c = checked(&b, b.expected_version)?;
            c.to_township = Some(to.as_str().to_owned());
            Ok(c)
        }
        Move::FirstHelp => {
            let b: FirstHelpBody = parse_body(body)?;
            if b.kind == FirstHelpKind::Cash && b.amount_fen.is_none() {
                return Err(invalid("amount_fen", "required for cash"));
            }
            if let Some(a) = b.amount_fen
                && !(0..=MAX_AMOUNT_FEN).contains(&a)
            {
                return Err(invalid("amount_fen", format!("must be 0-{MAX_AMOUNT_FEN}")));
            }
            past_time("given_at", &b.given_at)?;
            text("given_by", &b.given_by, 64)?;
            opt_text("note", &b.note, 1000)?;
            checked(&b, b.expected_version)
        }
        Move::Investigate => {
            let b: InvestigationBody = parse_body(body)?;
            past_time("home_visit.visited_at", &b.home_visit.visited_at)?;
            if b.home_visit.visited_by.is_empty() || b.home_visit.visited_by.len() > 5 {
                return Err(invalid("home_visit.visited_by", "must list 1-5 people"));
            }
            for (i, v) in b.home_visit.visited_by.iter().enumerate() {
                text(&format!("home_visit.visited_by[{i}]"), v, 64)?;
            }
            text("home_visit.findings", &b.home_visit.findings, 4000)?;
            text("initial_opinion.text", &b.initial_opinion.text, 2000)?;
            if b.verification_ids.len() > 20 {
                return Err(invalid("verification_ids", "at most 20"));
            }
            for (i, v) in b.verification_ids.iter().enumerate() {
                let field = format!("verification_ids[{i}]");
                let linked = store::verification_case(&s.store.db(), v.trim())
                    .await?
                    .is_some_and(|(case_id, case_ref)| {
                        case_id.as_deref() == Some(row.id.as_str()) || case_ref == row.id
                    });
                if !linked {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "verification_not_linked",
                        format!("{field}: no verification of this case has this id"),
                    )
                    .with_field(field));
                }
            }
            checked(&b, b.expected_version)
        }
        Move::HandToCounty => {
            let b: HandToCountyBody = parse_body(body)?;
            text("reason", &b.reason, 1000)?;
            checked(&b, b.expected_version)
        }
        Move::Decide => {
            let b: DecisionBody = parse_body(body)?;
            match b.decision {
                DecisionOutcome::Approved if b.assistance_type.is_none() => {
                    return Err(invalid("assistance_type", "required when approved"));
                }
                DecisionOutcome::Refused if b.reason_for_applicant.is_none() => {
                    return Err(invalid(
                        "reason_for_applicant",
                        "required when refused: the reason explained to the applicant",
                    ));
                }
                _ => {}
            }
            if let Some(a) = b.amount_fen
                && !(0..=MAX_AMOUNT_FEN).contains(&a)
            {
                return Err(invalid("amount_fen", format!("must be 0-{MAX_AMOUNT_FEN}")));
            }
            opt_text("reason_for_applicant", &b.reason_for_applicant, 2000)?;
            opt_text("note", &b.note, 1000)?;
            let mut c = checked(&b, b.expected_version)?;
            c.outcome = Some(match b.decision {
                DecisionOutcome::Approved => "approved",
                DecisionOutcome::Refused => "refused",
            });
            Ok(c)
        }
    }
}

/// One move: decided (`move_case` with the case's stage) before the body is read, a refusal
/// logged; then the body, the version, the state machine; then the entry, then the write.
pub(crate) async fn run_move(
    s: AppState,
    id: std::sync::Arc<Identity>,
    headers: HeaderMap,
    case_id: String,
    mv: Move,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let db = s.store.db();
    let row = store::get_case(&db, &case_id)
        .await?
        .ok_or_else(not_found)?;
    let entry = |allowed: bool, outcome: Outcome, policy_ids: Vec<String>| {
        case_entry(
            &id,
            LogAction::CaseMoved,
            allowed,
            outcome,
            policy_ids,
            &rid,
            Some(&row.id),
            Some(&row.applicant),
        )
    };
    let decided = s
        .authz
        .require_logged(
            &s.log,
            &id,
            Action::MoveCase,
            &resource(&row)?,
            &RequestCtx {
                case_move: Some(mv.code().to_owned()),
                ..Default::default()
            },
            |policy_ids| entry(false, Outcome::Denied, policy_ids),
        )
        .await?;
    let c = check_move(&s, mv, &row, json_object(body)?).await?;
    if let Some(v) = c.expected_version
        && v != row.version
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "version_mismatch",
            format!(
                "expected_version: the case is at version {}; read it again",
                row.version
            ),
        )
        .with_field("expected_version"));
    }
    let state = CaseState::from_code(&row.state)
        .ok_or_else(|| ApiError::internal("case row: unknown state"))?;
    let to = match model::next(state, tier_of(&row)?, mv) {
        Ok(to) => to,
        Err(e) => return Ok(illegal(e)),
    };
    // 件件有反馈: no case closes while one of its referral slips has no feedback.
    if mv == Move::Close
        && let Some(refused) = super::slips_api::refuse_close_with_open_slips(&s, &row.id).await?
    {
        return Ok(refused);
    }
    let seq = row.version + 1;
    let plain = serde_json::to_vec(&c.details).map_err(ApiError::internal)?;
    let (key_id, sealed) = s
        .keys
        .seal(&event_aad(&row.id, seq), &plain)
        .map_err(seal_error)?;
    let now = ms(OffsetDateTime::now_utc());
    let township = c
        .to_township
        .clone()
        .unwrap_or_else(|| row.township.clone());
    let event = EventRow {
        case_id: row.id.clone(),
        seq,
        at_ms: now,
        action: mv.code().to_owned(),
        from_state: Some(row.state.clone()),
        to_state: to.code().to_owned(),
        actor: id.uri.clone(),
        township: township.clone(),
        details: Some(sealed),
        key_id: Some(key_id),
    };
    let m = MoveRow {
        state: to.code().to_owned(),
        township,
        outcome: c.outcome.map(str::to_owned),
        at_ms: now,
    };
    let mut timeline = store::events(&db, &row.id).await?;
    timeline.push(event.clone());
    let (after, due) = case_due(&s, &row, &timeline)?;
    let followups = Followups {
        due,
        met: escalation::met_kinds(&after),
        notices: move_notice(&row, mv, &m).into_iter().collect(),
    };
    // Durable entry first: a failure here moves nothing.
    let logged = s
        .log
        .append(entry(true, Outcome::Succeeded, decided.policy_ids)?)
        .await?;
    if !store::apply_move(&db, &row.id, row.version, &m, &event, &followups).await? {
        return Err(case_changed());
    }
    tracing::info!(case_id = %row.id, action = mv.code(), from = %row.state, to = to.code(), "case moved");
    let moved = store::get_case(&db, &row.id).await?.ok_or_else(not_found)?;
    Ok(Json(CaseChanged {
        case: summary(&moved)?,
        log_index: logged.index,
    })
    .into_response())
}

macro_rules! move_route {
    ($name:ident, $mv:expr, $doc:literal) => {
        #[doc = $doc]
        async fn $name(
            State(s): State<AppState>,
            Caller(id): Caller,
            headers: HeaderMap,
            Path(case_id): Path<String>,
            body: Result<Json<Value>, JsonRejection>,
        ) -> Result<Response, ApiError> {
            run_move(s, id, headers, case_id, $mv, body).await
        }
    };
}

move_route!(
    accept,
    Move::Accept,
    "受理: the township of the registered address accepts the case."
);
move_route!(
    transfer,
    Move::Transfer,
    "分办: the case goes to another township, with the reason."
);
move_route!(
    first_help,
    Move::FirstHelp,
    "先行救助: first help given (cash, in kind, service)."
);
move_route!(
    investigation,
    Move::Investigate,
    "入户调查: the home visit, linked verifications and the initial opinion."
);
move_route!(
    hand_to_county,
    Move::HandToCounty,
    "转交县级: the county decides."
);
move_route!(
    decision,
    Move::Decide,
    "审批决定: approved with the assistance type, or refused with the reason told to the applicant."
);
move_route!(close, Move::Close, "办结.");

// ==== a caseworker's verifications ====

/// `GET /v1/verifications` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationListQuery {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One of the caller's verifications (no personal data).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct VerificationItem {
    pub id: String,
    pub created_at: String,
    pub registered_division: String,
    pub purpose: Purpose,
    pub urgency: Urgency,
    pub case_ref: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
}

/// `GET /v1/verifications` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct VerificationList {
    pub verifications: Vec<VerificationItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// 核对列表: the caller's own verifications (by full identity URI), newest first, each in the
/// caller's jurisdiction (Cedar `list_verifications`); no personal data, nothing logged. Routed
/// by `verify::api` (the same path as `POST /v1/verifications`).
pub async fn list_verifications(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<Query<VerificationListQuery>, ApiError>,
) -> Result<Json<VerificationList>, ApiError> {
    let household = |region: DivisionCode| ResourceCtx {
        region: Some(region),
        requester: Some(id.uri.clone()),
        ..Default::default()
    };
    s.authz
        .require(
            &id,
            Action::ListVerifications,
            &household(id.division.clone()),
            &RequestCtx::default(),
        )
        .map_err(|(_, e)| e)?;
    let Query(q) = q?;
    let limit = page_limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.split_once('_')
                .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_owned())))
                .filter(|(_, id)| uuid::Uuid::parse_str(id).is_ok())
                .ok_or_else(|| invalid("cursor", "must be a cursor from a previous page"))
        })
        .transpose()?;
    let rows = store::list_verifications(&s.store.db(), &id.uri, before, limit).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| format!("{}_{}", r.created_ms, r.id)))
        .flatten();
    let mut verifications = Vec::new();
    for r in rows {
        let Ok(region) = DivisionCode::parse(&r.registered_division) else {
            continue;
        };
        let seen = s
            .authz
            .decide(
                &id,
                Action::ListVerifications,
                &household(region),
                &RequestCtx::default(),
            )
            .allowed;
        let (Some(purpose), Ok(urgency)) = (
            Purpose::from_code(&r.purpose),
            serde_json::from_value::<Urgency>(Value::String(r.urgency.clone())),
        ) else {
            continue;
        };
        if seen {
            verifications.push(VerificationItem {
                id: r.id,
                created_at: rfc3339(r.created_ms),
                registered_division: r.registered_division,
                purpose,
                urgency,
                case_ref: r.case_ref,
                case_id: r.case_id,
            });
        }
    }
    Ok(Json(VerificationList {
        verifications,
        next_cursor,
    }))
}
