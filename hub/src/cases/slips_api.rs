//! Routes of referral slips (转办单), the 分办—反馈 half of the closed loop; described in
//! `/v1/openapi.json` by [`crate::api::openapi`].
//!
//! - `POST /v1/cases/{id}/slips` (开具转办单): decided (`issue_slip`, on the case's township)
//!   before the body is read; the case must be accepted and not yet decided (409 `case_stage`);
//!   the due date is the kind's default period or the caseworker's `due_on`, up to the kind's
//!   limit (`policies/clocks.toml`). One `slip_issued` entry, durable before the slip is written.
//! - `GET /v1/slips` (转办单列表): the slips addressed to the caller (a department: its department
//!   code; a caseworker: their township, or their county's townships), newest first, each decided
//!   with Cedar (`list_slips`); no personal data, nothing logged.
//! - `GET /v1/slips/{id}` (查看转办单): the slip with what is asked and the applicant's name,
//!   resident ID and phone, so the receiving party knows whom to help. One `slip_read` entry.
//! - `POST /v1/slips/{id}/accept` (签收), `POST /v1/slips/{id}/feedback` (反馈): one move of
//!   [`super::slips`], decided (`answer_slip`) before the body is read; 409 `illegal_transition`
//!   names the slip's state and the allowed moves. One `slip_moved` entry, durable before the
//!   move is written.
//!
//! Every refusal by policy is logged too, with the case applicant's pseudonym.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use policies::{Action, RequestCtx, ResourceCtx};
use schemas::access_log::{Action as LogAction, Outcome};
use schemas::cases::{SlipKind, SlipResult};
use schemas::division::DivisionLevel;
use schemas::{Department, DivisionCode, Identity, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::api::{
    Applicant, MAX_AMOUNT_FEN, Personal, TOWNSHIP_PATTERN, case_entry, invalid, ms, opt_text,
    page_limit, parse_body, personal_aad, rfc3339, seal_error, text, township,
};
use super::model::CaseState;
use super::slips::{self, DueOnProblem, SlipMove, SlipState};
use super::slips_store::{self as store, SlipFilter, SlipMoveRow, SlipRow};
use crate::api::{ApiError, AppState, Path, Query, json_object, request_id};
use crate::identity::Caller;

/// The routes of this module, merged into the main router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cases/{id}/slips", post(issue_slip))
        .route("/v1/slips", get(list_slips))
        .route("/v1/slips/{id}", get(read_slip))
        .route("/v1/slips/{id}/accept", post(accept_slip))
        .route("/v1/slips/{id}/feedback", post(answer_slip))
}

/// The case stages a slip may be issued in: accepted and not yet decided.
pub const OPEN_FOR_SLIPS: [CaseState; 4] = [
    CaseState::Accepted,
    CaseState::Helped,
    CaseState::Investigated,
    CaseState::WithCounty,
];

// ==== shapes ====

/// `POST /v1/cases/{id}/slips` body: 转办单.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueSlipRequest {
    /// 转办单类型; decides the receiving department (`township`: `to_township`).
    pub kind: SlipKind,
    /// 转办事项: what is asked, 1-2000 characters.
    #[schemars(length(min = 1, max = 2000))]
    pub asked: String,
    /// 办理期限 (YYYY-MM-DD, Beijing time): today or later and not later than the kind's limit
    /// (`policies/clocks.toml`); without it, the kind's default period.
    #[serde(default)]
    #[schemars(length(min = 10, max = 10))]
    pub due_on: Option<String>,
    /// 转入乡镇 (9 digits): required for kind `township`, refused otherwise; not the case's own.
    #[serde(default)]
    #[schemars(pattern(TOWNSHIP_PATTERN))]
    pub to_township: Option<String>,
}

/// `POST /v1/slips/{id}/accept` body: 签收.
#[derive(Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptSlipBody {
    /// Move only if the slip is still at this version (else 409 `version_mismatch`).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
}

/// `POST /v1/slips/{id}/feedback` body: 反馈. Allowed from `issued` too (it implies 签收).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlipFeedbackBody {
    /// 办理结果.
    pub result: SlipResult,
    /// 反馈内容: what was done, 1-2000 characters.
    #[schemars(length(min = 1, max = 2000))]
    pub text: String,
    /// 无法办理的原因: required when the result is `not_possible`, 1-1000 characters.
    #[serde(default)]
    #[schemars(length(min = 1, max = 1000))]
    pub reason: Option<String>,
    /// Amount granted or paid, in fen, if any.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100_000_000))]
    pub amount_fen: Option<i64>,
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
}

/// What is sealed with a slip: what is asked and whom to help.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct SlipPersonal {
    applicant: Applicant,
    asked: String,
}

/// 反馈: the receiving party's feedback (sealed at rest).
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
pub struct SlipFeedback {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_fen: Option<i64>,
}

/// A slip without personal data (list items, answers to moves, the case view).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct SlipSummary {
    /// Slip id (UUIDv7).
    pub id: String,
    pub case_id: String,
    pub kind: SlipKind,
    /// 承办部门: the department code it is addressed to (every kind but `township`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_department: Option<Department>,
    /// 转入乡镇: the township it is addressed to (kind `township`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_township: Option<String>,
    pub state: SlipState,
    pub issued_at: String,
    /// The full identity URI of the caseworker who issued it.
    pub issued_by: String,
    /// 办理期限 (RFC 3339, +08:00).
    pub due_at: String,
    /// 暂定: the due date was counted into a year without an official calendar file.
    pub due_provisional: bool,
    /// 已超期: no feedback and past `due_at`.
    pub overdue: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    /// 办理结果, once answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<SlipResult>,
    /// Increases with every move; send it back as `expected_version`.
    pub version: i64,
    /// The moves the slip's state allows.
    pub allowed: Vec<SlipMove>,
}

/// A slip as the case view shows it: the summary, and what is asked and the feedback where the
/// reader may read the caseworkers' records.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct CaseSlip {
    #[serde(flatten)]
    pub summary: SlipSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asked: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<SlipFeedback>,
}

/// `GET /v1/slips/{id}`: the slip with whom to help and what is asked.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct SlipView {
    #[serde(flatten)]
    pub summary: SlipSummary,
    /// 申请人: name, resident ID and phone, from the case.
    pub applicant: Applicant,
    pub asked: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<SlipFeedback>,
}

/// The answer to issuing or moving a slip.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct SlipChanged {
    #[serde(flatten)]
    pub slip: SlipSummary,
    /// Index of the access-log entry of this change.
    pub log_index: u64,
}

/// `GET /v1/slips` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct SlipList {
    pub slips: Vec<SlipSummary>,
    /// Pass as `cursor` for the next page; absent on the last page. A page may hold fewer than
    /// `limit` slips (those the caller may not see are left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/slips` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlipListQuery {
    #[serde(default)]
    pub state: Option<SlipState>,
    /// `true`: only slips without feedback past their due time; `false`: only the others.
    #[serde(default)]
    pub overdue: Option<bool>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

// ==== helpers ====

fn slip_not_found() -> ApiError {
    ApiError::not_found("no slip with this id")
}

fn personal_slip_aad(slip_id: &str) -> Vec<u8> {
    format!("jsj-slip/1 personal {slip_id}").into_bytes()
}

fn feedback_aad(slip_id: &str) -> Vec<u8> {
    format!("jsj-slip/1 feedback {slip_id}").into_bytes()
}

fn state_of(row: &SlipRow) -> Result<SlipState, ApiError> {
    SlipState::from_code(&row.state).ok_or_else(|| ApiError::internal("slip row: unknown state"))
}

/// What Cedar knows of a slip: its case's township and whom it is addressed to. No personal data.
fn resource(row: &SlipRow) -> Result<ResourceCtx, ApiError> {
    Ok(ResourceCtx {
        region: Some(DivisionCode::parse(&row.region).map_err(ApiError::internal)?),
        department: row.to_department.as_deref().and_then(Department::from_code),
        to_township: row
            .to_township
            .as_deref()
            .map(DivisionCode::parse)
            .transpose()
            .map_err(ApiError::internal)?,
        ..Default::default()
    })
}

pub(super) fn summary(row: &SlipRow, now_ms: i64) -> Result<SlipSummary, ApiError> {
    let bad = |what: &str| ApiError::internal(format!("slip row: unknown {what}"));
    let state = state_of(row)?;
    Ok(SlipSummary {
        id: row.id.clone(),
        case_id: row.case_id.clone(),
        kind: SlipKind::from_code(&row.kind).ok_or_else(|| bad("kind"))?,
        to_department: row
            .to_department
            .as_deref()
            .map(|d| Department::from_code(d).ok_or_else(|| bad("department")))
            .transpose()?,
        to_township: row.to_township.clone(),
        state,
        issued_at: rfc3339(row.issued_ms),
        issued_by: row.issued_by.clone(),
        due_at: beijing(row.due_ms),
        due_provisional: row.due_provisional,
        overdue: slips::overdue(state, row.due_ms, now_ms),
        accepted_at: row.accepted_ms.map(rfc3339),
        answered_at: row.answered_ms.map(rfc3339),
        result: row
            .result
            .as_deref()
            .map(|r| SlipResult::from_code(r).ok_or_else(|| bad("result")))
            .transpose()?,
        version: row.version,
        allowed: slips::allowed(state),
    })
}

fn beijing(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(|t| t.to_offset(time::macros::offset!(+8)))
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn open_personal(s: &AppState, row: &SlipRow) -> Result<SlipPersonal, ApiError> {
    let plain = s
        .keys
        .open(&row.key_id, &personal_slip_aad(&row.id), &row.personal)
        .map_err(seal_error)?;
    serde_json::from_slice(&plain).map_err(ApiError::internal)
}

fn open_feedback(s: &AppState, row: &SlipRow) -> Result<Option<SlipFeedback>, ApiError> {
    let (Some(sealed), Some(key_id)) = (&row.feedback, &row.feedback_key_id) else {
        return Ok(None);
    };
    let plain = s
        .keys
        .open(key_id, &feedback_aad(&row.id), sealed)
        .map_err(seal_error)?;
    Ok(Some(
        serde_json::from_slice(&plain).map_err(ApiError::internal)?,
    ))
}

/// The slips of a case for its view; what is asked and the feedback only with `notes`.
pub(super) async fn case_slips(
    s: &AppState,
    case_id: &str,
    notes: bool,
    now_ms: i64,
) -> Result<Vec<CaseSlip>, ApiError> {
    let mut out = Vec::new();
    for row in store::slips_of_case(&s.store.db(), case_id).await? {
        let (asked, feedback) = if notes {
            (Some(open_personal(s, &row)?.asked), open_feedback(s, &row)?)
        } else {
            (None, None)
        };
        out.push(CaseSlip {
            summary: summary(&row, now_ms)?,
            asked,
            feedback,
        });
    }
    Ok(out)
}

/// 409 `slips_open`: the case cannot close while these slips have no feedback.
pub(super) async fn refuse_close_with_open_slips(
    s: &AppState,
    case_id: &str,
) -> Result<Option<Response>, ApiError> {
    let open = store::unanswered_of_case(&s.store.db(), case_id).await?;
    if open.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": {
                    "code": "slips_open",
                    "message": format!(
                        "案件尚有{}张转办单未反馈，不能办结 / {} referral slip(s) of this case have no feedback yet; the case cannot close",
                        open.len(),
                        open.len()
                    ),
                },
                "slips": open,
            })),
        )
            .into_response(),
    ))
}

fn illegal(e: slips::IllegalSlipMove) -> Response {
    let allowed: Vec<&str> = e.allowed.iter().map(|m| m.code()).collect();
    (
        StatusCode::CONFLICT,
        Json(serde_json::json!({
            "error": {
                "code": "illegal_transition",
                "message": format!(
                    "转办单当前状态为「{}」，不能执行此操作 / the slip is {}; this move is not allowed from there",
                    e.state.name_zh(),
                    e.state.code()
                ),
            },
            "state": e.state,
            "allowed": allowed,
        })),
    )
        .into_response()
}

// ==== issuing ====

/// A checked slip request: whom it goes to and when it is due.
struct Checked {
    kind: SlipKind,
    to_department: Option<Department>,
    to_township: Option<DivisionCode>,
    asked: String,
    due: slips::Due,
}

fn check_issue(
    s: &AppState,
    req: &IssueSlipRequest,
    case_township: &str,
    now: OffsetDateTime,
) -> Result<Checked, ApiError> {
    text("asked", &req.asked, 2000)?;
    let to_township = match (req.kind, &req.to_township) {
        (SlipKind::Township, None) => {
            return Err(invalid("to_township", "required for kind township"));
        }
        (SlipKind::Township, Some(t)) => {
            let t = township("to_township", t, &s.tls.rules().division_prefix)?;
            if t.as_str() == case_township {
                return Err(invalid(
                    "to_township",
                    "must be another township than the case's",
                ));
            }
            Some(t)
        }
        (_, Some(_)) => {
            return Err(invalid("to_township", "only for kind township"));
        }
        (_, None) => None,
    };
    let due_on = req
        .due_on
        .as_deref()
        .map(|d| {
            time::Date::parse(
                d.trim(),
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map_err(|_| invalid("due_on", "must be a date, YYYY-MM-DD"))
        })
        .transpose()?;
    let engine = s.authz.engine();
    let due = slips::due(
        engine.deadlines().slip(req.kind),
        now,
        due_on,
        engine.calendar(),
    )
    .map_err(|p| match p {
        DueOnProblem::InThePast => invalid("due_on", "must be today or later"),
        DueOnProblem::BeyondLimit(limit) => invalid(
            "due_on",
            format!("must not be later than {limit}, the limit for this kind of slip"),
        ),
    })?;
    Ok(Checked {
        kind: req.kind,
        to_department: req.kind.department(),
        to_township,
        asked: req.asked.trim().to_owned(),
        due,
    })
}

/// Whether `who` may issue a slip from the case as read: its stage is open for slips and Cedar
/// permits `issue_slip` in its township, decided as [`issue_slip`] decides it. For showing the
/// console's form only: nothing is logged, and issuing is decided again.
pub(crate) fn may_issue_slip(
    s: &AppState,
    who: &Identity,
    township: &str,
    state: CaseState,
) -> bool {
    let Ok(region) = DivisionCode::parse(township) else {
        return false;
    };
    OPEN_FOR_SLIPS.contains(&state)
        && s.authz
            .decide(
                who,
                Action::IssueSlip,
                &ResourceCtx {
                    region: Some(region),
                    ..Default::default()
                },
                &RequestCtx::default(),
            )
            .allowed
}

pub(crate) async fn issue_slip(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(case_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let db = s.store.db();
    let case = super::store::get_case(&db, &case_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no case with this id"))?;
    let entry = |allowed: bool, outcome: Outcome, policy_ids: Vec<String>| {
        case_entry(
            &id,
            LogAction::SlipIssued,
            allowed,
            outcome,
            policy_ids,
            &rid,
            Some(&case.id),
            Some(&case.applicant),
        )
    };
    let decided = s
        .authz
        .require_logged(
            &s.log,
            &id,
            Action::IssueSlip,
            &ResourceCtx {
                region: Some(DivisionCode::parse(&case.township).map_err(ApiError::internal)?),
                ..Default::default()
            },
            &RequestCtx::default(),
            |policy_ids| entry(false, Outcome::Denied, policy_ids),
        )
        .await?;
    let req: IssueSlipRequest = parse_body(json_object(body)?)?;
    let now = OffsetDateTime::now_utc();
    let c = check_issue(&s, &req, &case.township, now)?;
    let open_states: Vec<&str> = OPEN_FOR_SLIPS.iter().map(|st| st.code()).collect();
    if !open_states.contains(&case.state.as_str()) {
        return Err(case_stage(&case.state));
    }
    let personal: Personal = {
        let plain = s
            .keys
            .open(&case.key_id, &personal_aad(&case.id), &case.personal)
            .map_err(seal_error)?;
        serde_json::from_slice(&plain).map_err(ApiError::internal)?
    };
    let slip_id = uuid::Uuid::now_v7().to_string();
    let plain = serde_json::to_vec(&SlipPersonal {
        applicant: personal.applicant,
        asked: c.asked,
    })
    .map_err(ApiError::internal)?;
    let (key_id, sealed) = s
        .keys
        .seal(&personal_slip_aad(&slip_id), &plain)
        .map_err(seal_error)?;
    let row = SlipRow {
        id: slip_id.clone(),
        case_id: case.id.clone(),
        kind: c.kind.code().to_owned(),
        to_department: c.to_department.map(|d| d.code().to_owned()),
        to_township: c.to_township.map(|t| t.as_str().to_owned()),
        region: case.township.clone(),
        applicant: case.applicant.clone(),
        state: SlipState::Issued.code().to_owned(),
        issued_ms: ms(now),
        issued_by: id.uri.clone(),
        due_ms: ms(c.due.at),
        due_provisional: c.due.provisional,
        accepted_ms: None,
        accepted_by: None,
        answered_ms: None,
        answered_by: None,
        result: None,
        personal: sealed,
        key_id,
        feedback: None,
        feedback_key_id: None,
        version: 1,
    };
    // Durable entry first: a failure here issues nothing.
    let logged = s
        .log
        .append(entry(true, Outcome::Succeeded, decided.policy_ids)?)
        .await?;
    if !store::insert_slip(&db, &row, &open_states).await? {
        // Decided or closed meanwhile.
        let now_state = super::store::get_case(&db, &case.id)
            .await?
            .map_or(case.state.clone(), |c| c.state);
        return Err(case_stage(&now_state));
    }
    tracing::info!(slip_id = %row.id, case_id = %row.case_id, kind = %row.kind, "referral slip issued");
    Ok((
        StatusCode::CREATED,
        Json(SlipChanged {
            slip: summary(&row, ms(now))?,
            log_index: logged.index,
        }),
    )
        .into_response())
}

/// 409 `case_stage`: slips are issued from accepted cases not yet decided.
fn case_stage(state: &str) -> ApiError {
    let zh = CaseState::from_code(state).map_or("未知", |s| s.name_zh());
    ApiError::new(
        StatusCode::CONFLICT,
        "case_stage",
        format!(
            "案件当前阶段为「{zh}」，只能在受理后、决定前开具转办单 / the case is {state}; slips are issued from accepted cases that are not yet decided"
        ),
    )
}

// ==== reading and listing ====

pub(crate) async fn read_slip(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(slip_id): Path<String>,
) -> Result<Json<SlipView>, ApiError> {
    let rid = request_id(&headers);
    let row = store::get_slip(&s.store.db(), &slip_id)
        .await?
        .ok_or_else(slip_not_found)?;
    let entry = |allowed: bool, outcome: Outcome, policy_ids: Vec<String>| {
        case_entry(
            &id,
            LogAction::SlipRead,
            allowed,
            outcome,
            policy_ids,
            &rid,
            Some(&row.case_id),
            Some(&row.applicant),
        )
    };
    let decided = s
        .authz
        .require_logged(
            &s.log,
            &id,
            Action::ReadSlip,
            &resource(&row)?,
            &RequestCtx::default(),
            |policy_ids| entry(false, Outcome::Denied, policy_ids),
        )
        .await?;
    let personal = open_personal(&s, &row)?;
    let feedback = open_feedback(&s, &row)?;
    s.log
        .append(entry(true, Outcome::Succeeded, decided.policy_ids)?)
        .await?;
    Ok(Json(SlipView {
        summary: summary(&row, ms(OffsetDateTime::now_utc()))?,
        applicant: personal.applicant,
        asked: personal.asked,
        feedback,
    }))
}

/// Whom the caller receives slips as: a department code, or a township prefix.
pub(crate) fn addressee(id: &Identity) -> (ResourceCtx, Option<String>, Option<String>) {
    let mut r = ResourceCtx {
        region: Some(id.division.clone()),
        ..Default::default()
    };
    match id.role {
        Role::Department => {
            r.department = Department::from_code(&id.organisation);
            (r, r_code(&id.organisation), None)
        }
        Role::Caseworker => {
            r.to_township = Some(id.division.clone());
            let prefix = match id.division.level() {
                DivisionLevel::Province => &id.division.as_str()[..2],
                DivisionLevel::City => &id.division.as_str()[..4],
                DivisionLevel::County | DivisionLevel::Township | DivisionLevel::Village => {
                    id.division.as_str()
                }
            };
            (r, None, Some(prefix.to_owned()))
        }
        _ => (r, None, None),
    }
}

fn r_code(org: &str) -> Option<String> {
    Department::from_code(org).map(|d| d.code().to_owned())
}

/// 转办单列表: decided once for the caller (`list_slips` on a slip addressed to it), then slip by
/// slip; the list carries no personal data, so nothing is logged.
pub(crate) async fn list_slips(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<Query<SlipListQuery>, ApiError>,
) -> Result<Json<SlipList>, ApiError> {
    let (own, department, township_prefix) = addressee(&id);
    s.authz
        .require(&id, Action::ListSlips, &own, &RequestCtx::default())
        .map_err(|(_, e)| e)?;
    let Query(q) = q?;
    let limit = page_limit(q.limit)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            uuid::Uuid::parse_str(c)
                .map(|u| u.to_string())
                .map_err(|_| invalid("cursor", "must be a cursor from a previous page"))
        })
        .transpose()?;
    let now_ms = ms(OffsetDateTime::now_utc());
    let filter = SlipFilter {
        department,
        township_prefix,
        state: q.state.map(|st| st.code().to_owned()),
        overdue: q.overdue,
        now_ms,
        before,
        limit,
    };
    let rows = store::list_slips(&s.store.db(), &filter).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let mut out = Vec::new();
    for row in &rows {
        let seen = s
            .authz
            .decide(
                &id,
                Action::ListSlips,
                &resource(row)?,
                &RequestCtx::default(),
            )
            .allowed;
        if seen {
            out.push(summary(row, now_ms)?);
        }
    }
    Ok(Json(SlipList {
        slips: out,
        next_cursor,
    }))
}

// ==== moves ====

async fn run_slip_move(
    s: AppState,
    id: std::sync::Arc<Identity>,
    headers: HeaderMap,
    slip_id: String,
    mv: SlipMove,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let db = s.store.db();
    let row = store::get_slip(&db, &slip_id)
        .await?
        .ok_or_else(slip_not_found)?;
    let entry = |allowed: bool, outcome: Outcome, policy_ids: Vec<String>| {
        case_entry(
            &id,
            LogAction::SlipMoved,
            allowed,
            outcome,
            policy_ids,
            &rid,
            Some(&row.case_id),
            Some(&row.applicant),
        )
    };
    let decided = s
        .authz
        .require_logged(
            &s.log,
            &id,
            Action::AnswerSlip,
            &resource(&row)?,
            &RequestCtx::default(),
            |policy_ids| entry(false, Outcome::Denied, policy_ids),
        )
        .await?;
    let body = json_object(body)?;
    let (expected_version, answer) = match mv {
        SlipMove::Accept => {
            let b: AcceptSlipBody = parse_body(body)?;
            (b.expected_version, None)
        }
        SlipMove::Answer => {
            let b: SlipFeedbackBody = parse_body(body)?;
            text("text", &b.text, 2000)?;
            opt_text("reason", &b.reason, 1000)?;
            if b.result == SlipResult::NotPossible && b.reason.is_none() {
                return Err(invalid(
                    "reason",
                    "required when the result is not_possible",
                ));
            }
            if let Some(a) = b.amount_fen
                && !(0..=MAX_AMOUNT_FEN).contains(&a)
            {
                return Err(invalid("amount_fen", format!("must be 0-{MAX_AMOUNT_FEN}")));
            }
            let fb = SlipFeedback {
                text: b.text.trim().to_owned(),
                reason: b.reason.as_deref().map(|r| r.trim().to_owned()),
                amount_fen: b.amount_fen,
            };
            let plain = serde_json::to_vec(&fb).map_err(ApiError::internal)?;
            let (key_id, sealed) = s
                .keys
                .seal(&feedback_aad(&row.id), &plain)
                .map_err(seal_error)?;
            (
                b.expected_version,
                Some((b.result.code().to_owned(), sealed, key_id)),
            )
        }
    };
    if let Some(v) = expected_version
        && v != row.version
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "version_mismatch",
            format!(
                "expected_version: the slip is at version {}; read it again",
                row.version
            ),
        )
        .with_field("expected_version"));
    }
    let to = match slips::next(state_of(&row)?, mv) {
        Ok(to) => to,
        Err(e) => return Ok(illegal(e)),
    };
    let now = ms(OffsetDateTime::now_utc());
    let m = SlipMoveRow {
        state: to.code().to_owned(),
        at_ms: now,
        by: id.uri.clone(),
        answer,
    };
    // Durable entry first: a failure here moves nothing.
    let logged = s
        .log
        .append(entry(true, Outcome::Succeeded, decided.policy_ids)?)
        .await?;
    if !store::apply_slip_move(&db, &row.id, row.version, &m).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "slip_changed",
            "转办单已被他人更新，请刷新后重试 / the slip was changed meanwhile; read it again and retry",
        ));
    }
    tracing::info!(slip_id = %row.id, action = mv.code(), from = %row.state, to = to.code(), "referral slip moved");
    let moved = store::get_slip(&db, &row.id)
        .await?
        .ok_or_else(slip_not_found)?;
    Ok(Json(SlipChanged {
        slip: summary(&moved, now)?,
        log_index: logged.index,
    })
    .into_response())
}

/// 签收: the receiving party accepts the slip.
pub(crate) async fn accept_slip(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(slip_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    run_slip_move(s, id, headers, slip_id, SlipMove::Accept, body).await
}

/// 反馈: the receiving party records the result (from `issued` too: it implies 签收).
pub(crate) async fn answer_slip(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(slip_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    run_slip_move(s, id, headers, slip_id, SlipMove::Answer, body).await
}
