//! 预警队列: the township warning queue. `GET /v1/warnings` (filtered, paginated),
//! `GET /v1/warnings/{id}` (with its signals), and the moves `acknowledge` (首次联系), `dismiss`
//! (排除, a reason required) and `convert` (转为案件: opens a case, channel `warning`, the tier
//! and hardship from the warning, linked both ways).
//!
//! States: `open` → `acknowledged` → (`dismissed` | `converted`); `open` may also be dismissed or
//! converted directly. Any other move is 409 `illegal_transition` with the state and the allowed
//! moves, like cases.
//!
//! Invariants: Cedar decides every read and move (`list_warnings`, `read_warning`,
//! `handle_warning` in `warning.cedar` and `village.cedar`: a township caseworker its township's
//! warnings, a county supervisor the county's, a village assistant reads its village's and moves
//! none); every read — the list included — and every move is an access-log
//! entry, a refusal too. No resident ID in any answer: a warning shows the household's township,
//! village and the kinds, departments and times of its signals.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use policies::{Action, RequestCtx, ResourceCtx};
use schemas::access_log::{Action as LogAction, Outcome};
use schemas::cases::{Channel, Hardship};
use schemas::{DivisionCode, Identity, Urgency};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::store::{self as wstore, WarningRow};
use super::{entry, invalid, ms, seal_error};
use crate::api::{ApiError, AppState, Path, Query, json_object, request_id};
use crate::cases::api::{Applicant, OpenCaseRequest, Opened};
use crate::cases::clocks::beijing;
use crate::identity::Caller;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/warnings", get(list_warnings))
        .route("/v1/warnings/{id}", get(read_warning))
        .route("/v1/warnings/{id}/acknowledge", post(acknowledge))
        .route("/v1/warnings/{id}/dismiss", post(dismiss))
        .route("/v1/warnings/{id}/convert", post(convert))
}

/// 预警状态.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WarningState {
    /// 待处置
    Open,
    /// 已联系
    Acknowledged,
    /// 已排除
    Dismissed,
    /// 已转为案件
    Converted,
}

impl WarningState {
    pub fn code(self) -> &'static str {
        match self {
            WarningState::Open => "open",
            WarningState::Acknowledged => "acknowledged",
            WarningState::Dismissed => "dismissed",
            WarningState::Converted => "converted",
        }
    }
    pub fn from_code(c: &str) -> Option<Self> {
        [
            WarningState::Open,
            WarningState::Acknowledged,
            WarningState::Dismissed,
            WarningState::Converted,
        ]
        .into_iter()
        .find(|s| s.code() == c)
    }
    pub fn name_zh(self) -> &'static str {
        match self {
            WarningState::Open => "待处置",
            WarningState::Acknowledged => "已联系",
            WarningState::Dismissed => "已排除",
            WarningState::Converted => "已转为案件",
        }
    }
    /// The moves allowed from here.
    pub fn allowed(self) -> Vec<&'static str> {
        match self {
            WarningState::Open => vec!["acknowledge", "dismiss", "convert"],
            WarningState::Acknowledged => vec!["dismiss", "convert"],
            WarningState::Dismissed | WarningState::Converted => vec![],
        }
    }
}

/// 预警: a warning without personal data.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct WarningSummary {
    /// Warning id (UUIDv7).
    pub id: String,
    /// The rule that raised it (`policies/warnings.toml`).
    pub rule: String,
    /// The rule's name, Chinese then English (empty when the rule is no longer loaded).
    pub rule_name: String,
    pub state: WarningState,
    pub tier: Urgency,
    /// The hardship of the case it converts to.
    pub hardship: Hardship,
    /// 户籍所在乡镇 (9 digits): the queue it is in.
    pub township: String,
    /// 村（社区） (12 digits), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub village: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// 首次联系时限: the first-contact deadline, RFC 3339 +08:00.
    pub first_contact_due_at: String,
    /// Counted Monday–Friday into a year without a calendar file.
    pub provisional: bool,
    /// Not yet contacted and past the deadline.
    pub overdue: bool,
    /// How many signals (events) it carries.
    pub signals: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
    /// The case it was converted to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_id: Option<String>,
    pub version: i64,
    /// The moves allowed now.
    pub allowed: Vec<String>,
}

/// One signal of a warning.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct WarningSignal {
    pub event_id: String,
    pub department: String,
    pub kind: String,
    pub occurred_at: String,
    pub received_at: String,
    /// The amount the event carries towards an amount rule, in fen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_fen: Option<i64>,
    /// The tier this signal asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<Urgency>,
    /// True when `[repeat]` raised its tier.
    pub raised: bool,
}

/// `GET /v1/warnings/{id}` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct WarningView {
    #[serde(flatten)]
    pub warning: WarningSummary,
    /// Oldest first.
    pub signals_detail: Vec<WarningSignal>,
    /// The dismissal reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dismissed_reason: Option<String>,
    /// Index of the access-log entry of this read.
    pub log_index: u64,
}

/// `GET /v1/warnings` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct WarningList {
    /// Newest first.
    pub warnings: Vec<WarningSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/warnings` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WarningQuery {
    #[serde(default)]
    pub state: Option<WarningState>,
    #[serde(default)]
    pub tier: Option<Urgency>,
    /// A county (6 digits) or township (9 digits) inside the caller's jurisdiction.
    #[serde(default)]
    pub township: Option<String>,
    /// A village (12 digits).
    #[serde(default)]
    pub village: Option<String>,
    /// Only warnings past (true) or within (false) their first-contact deadline, not yet
    /// contacted.
    #[serde(default)]
    pub overdue: Option<bool>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// `POST /v1/warnings/{id}/acknowledge` body: 首次联系.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeBody {
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
}

/// `POST /v1/warnings/{id}/dismiss` body: 排除.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissBody {
    /// 排除理由: 1-1000 characters.
    #[schemars(length(min = 1, max = 1000))]
    pub reason: String,
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub expected_version: Option<i64>,
}

/// `POST /v1/warnings/{id}/convert` body: 转为案件. The resident ID is the one of the warning's
/// first signal; the caseworker adds what the department did not send.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvertBody {
    /// 申请人姓名.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// 联系电话.
    #[schemars(pattern(crate::cases::api::PHONE_PATTERN))]
    pub phone: String,
    /// 困难情况描述: 1-2000 characters.
    #[schemars(length(min = 1, max = 2000))]
    pub description: String,
    /// 困难类型; the rule's when absent.
    #[serde(default)]
    pub hardship: Option<Hardship>,
}

/// `POST /v1/warnings/{id}/convert` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct WarningConverted {
    pub warning: WarningSummary,
    /// The case opened (or the one opened by an earlier conversion of this warning).
    pub case_id: String,
    pub log_index: u64,
}

/// `acknowledge` or `dismiss` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct WarningChanged {
    #[serde(flatten)]
    pub warning: WarningSummary,
    pub log_index: u64,
}

fn not_found() -> ApiError {
    ApiError::not_found("no warning with this id")
}

fn illegal(state: WarningState) -> Response {
    (
        StatusCode::CONFLICT,
        Json(serde_json::json!({
            "error": {
                "code": "illegal_transition",
                "message": format!(
                    "预警当前状态为「{}」，不能执行此操作 / the warning is {}; this move is not allowed from there",
                    state.name_zh(),
                    state.code()
                ),
            },
            "state": state,
            "allowed": state.allowed(),
        })),
    )
        .into_response()
}

fn changed() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "warning_changed",
        "预警已被他人更新，请刷新后重试 / the warning was changed meanwhile; read it again and retry",
    )
}

/// A warning's region is its village when known, else its township: a village assistant sees its
/// village's warnings, a township (county) everything below it (`village.cedar`).
fn resource(row: &WarningRow) -> Result<ResourceCtx, ApiError> {
    let at = row.village.as_deref().unwrap_or(&row.township);
    Ok(ResourceCtx {
        region: Some(DivisionCode::parse(at).map_err(ApiError::internal)?),
        case_state: Some(row.state.clone()),
        ..Default::default()
    })
}

fn summary(s: &AppState, row: &WarningRow, now_ms: i64) -> Result<WarningSummary, ApiError> {
    let bad = |what: &str| ApiError::internal(format!("warning row: unknown {what}"));
    let state = WarningState::from_code(&row.state).ok_or_else(|| bad("state"))?;
    let tier: Urgency =
        serde_json::from_value(Value::String(row.tier.clone())).map_err(|_| bad("tier"))?;
    let engine = s.authz.engine();
    Ok(WarningSummary {
        id: row.id.clone(),
        rule: row.rule.clone(),
        rule_name: engine
            .warnings()
            .rule(&row.rule)
            .map(|r| format!("{} / {}", r.name_zh, r.name_en))
            .unwrap_or_default(),
        state,
        tier,
        hardship: Hardship::from_code(&row.hardship).ok_or_else(|| bad("hardship"))?,
        township: row.township.clone(),
        village: row.village.clone(),
        created_at: beijing(row.created_ms),
        updated_at: beijing(row.updated_ms),
        first_contact_due_at: beijing(row.due_ms),
        provisional: row.provisional != 0,
        overdue: state == WarningState::Open && now_ms > row.due_ms,
        signals: row.signals,
        acknowledged_at: row.acknowledged_ms.map(beijing),
        case_id: row.case_id.clone(),
        version: row.version,
        allowed: state.allowed().into_iter().map(str::to_owned).collect(),
    })
}

/// Cedar on one warning; a refusal is logged (subject: the household), then 403.
async fn decide(
    s: &AppState,
    id: &Identity,
    action: Action,
    log: LogAction,
    row: &WarningRow,
    rid: &str,
) -> Result<Vec<String>, ApiError> {
    let ctx = resource(row)?;
    s.authz
        .require_logged(
            &s.log,
            id,
            action,
            &ctx,
            &RequestCtx::default(),
            |policy_ids| {
                entry(
                    id,
                    log,
                    false,
                    Outcome::Denied,
                    policy_ids,
                    rid,
                    Some(&row.id),
                    Some(&row.household),
                )
            },
        )
        .await
        .map(|d| d.policy_ids)
}

async fn load(s: &AppState, warning_id: &str) -> Result<WarningRow, ApiError> {
    if uuid::Uuid::parse_str(warning_id).is_err() {
        return Err(not_found());
    }
    wstore::get_warning(&s.store.db(), warning_id)
        .await?
        .ok_or_else(not_found)
}

async fn list_warnings(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    q: Result<Query<WarningQuery>, ApiError>,
) -> Result<Json<WarningList>, ApiError> {
    let rid = request_id(&headers);
    let own = ResourceCtx {
        region: Some(id.division.clone()),
        ..Default::default()
    };
    let policy_ids = s
        .authz
        .require_logged(
            &s.log,
            &id,
            Action::ListWarnings,
            &own,
            &RequestCtx::default(),
            |policy_ids| {
                entry(
                    &id,
                    LogAction::WarningRead,
                    false,
                    Outcome::Denied,
                    policy_ids,
                    &rid,
                    None,
                    None,
                )
            },
        )
        .await?
        .policy_ids;
    let Query(q) = q?;
    let limit = crate::cases::api::page_limit(q.limit)?;
    let township = q
        .township
        .as_deref()
        .map(|t| {
            DivisionCode::parse(t.trim())
                .map_err(|e| invalid("township", e))
                .map(|d| crate::cases::api::division_prefix(&d).to_owned())
        })
        .transpose()?;
    let village = super::village_filter(q.village.as_deref())?;
    let before = super::cursor_filter(q.cursor.as_deref())?;
    let now = ms(OffsetDateTime::now_utc());
    // A village assistant's queue is its village's part of its township's: the township prefix
    // and the village (another village asked for lists nothing).
    let (division, village) = match id.division.township() {
        Some(t) if id.division.level() == schemas::division::DivisionLevel::Village => {
            let own = id.division.to_string();
            let asked_other = village.as_ref().is_some_and(|v| *v != own);
            (
                t.to_string(),
                Some(if asked_other { String::new() } else { own }),
            )
        }
        _ => (
            crate::cases::api::division_prefix(&id.division).to_owned(),
            village,
        ),
    };
    let filter = wstore::WarningFilter {
        division,
        township,
        village,
        state: q.state.map(|s| s.code().to_owned()),
        tier: q.tier.map(|t| t.code().to_owned()),
        overdue: q.overdue.map(|o| (o, now)),
        before,
        limit,
    };
    let rows = wstore::list_warnings(&s.store.db(), &filter).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let mut warnings = Vec::new();
    for row in &rows {
        let seen = s
            .authz
            .decide(
                &id,
                Action::ListWarnings,
                &resource(row)?,
                &RequestCtx::default(),
            )
            .allowed;
        if seen {
            warnings.push(summary(&s, row, now)?);
        }
    }
    s.log
        .append(entry(
            &id,
            LogAction::WarningRead,
            true,
            Outcome::Succeeded,
            policy_ids,
            &rid,
            None,
            None,
        )?)
        .await?;
    Ok(Json(WarningList {
        warnings,
        next_cursor,
    }))
}

async fn read_warning(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(warning_id): Path<String>,
) -> Result<Json<WarningView>, ApiError> {
    let rid = request_id(&headers);
    let row = load(&s, &warning_id).await?;
    let policy_ids = decide(
        &s,
        &id,
        Action::ReadWarning,
        LogAction::WarningRead,
        &row,
        &rid,
    )
    .await?;
    let db = s.store.db();
    let signals = wstore::signals_of(&db, &row.id).await?;
    let dismissed_reason = match (&row.reason, &row.key_id) {
        (Some(sealed), Some(key_id)) => {
            let plain = s
                .keys
                .open(key_id, &reason_aad(&row.id), sealed)
                .map_err(seal_error)?;
            Some(String::from_utf8(plain).map_err(ApiError::internal)?)
        }
        _ => None,
    };
    let logged = s
        .log
        .append(entry(
            &id,
            LogAction::WarningRead,
            true,
            Outcome::Succeeded,
            policy_ids,
            &rid,
            Some(&row.id),
            Some(&row.household),
        )?)
        .await?;
    let now = ms(OffsetDateTime::now_utc());
    Ok(Json(WarningView {
        warning: summary(&s, &row, now)?,
        signals_detail: signals
            .into_iter()
            .map(|g| WarningSignal {
                event_id: g.event_id,
                department: g.department,
                kind: g.kind,
                occurred_at: beijing(g.occurred_ms),
                received_at: beijing(g.received_ms),
                amount_fen: g.amount_fen,
                tier: g
                    .tier
                    .and_then(|t| serde_json::from_value(Value::String(t)).ok()),
                raised: g.raised != 0,
            })
            .collect(),
        dismissed_reason,
        log_index: logged.index,
    }))
}

fn reason_aad(warning_id: &str) -> Vec<u8> {
    format!("jsj-warning/1 reason {warning_id}").into_bytes()
}

/// Parse a move's body, decide it, and check the move is allowed from the warning's state.
/// `Err(Ok(response))` is the 409 of an illegal move.
async fn gate<T: serde::de::DeserializeOwned + schemars::JsonSchema + 'static>(
    s: &AppState,
    id: &Identity,
    warning_id: &str,
    mv: &str,
    body: Result<Json<Value>, JsonRejection>,
    rid: &str,
) -> Result<Result<(WarningRow, T, Vec<String>), Response>, ApiError> {
    let row = load(s, warning_id).await?;
    let policy_ids = decide(
        s,
        id,
        Action::HandleWarning,
        LogAction::WarningMoved,
        &row,
        rid,
    )
    .await?;
    let body: T = crate::cases::api::parse_body(json_object(body)?)?;
    let state = WarningState::from_code(&row.state)
        .ok_or_else(|| ApiError::internal("warning row: unknown state"))?;
    if !state.allowed().contains(&mv) {
        return Ok(Err(illegal(state)));
    }
    Ok(Ok((row, body, policy_ids)))
}

fn check_version(row: &WarningRow, expected: Option<i64>) -> Result<(), ApiError> {
    match expected {
        Some(v) if v != row.version => Err(changed()),
        _ => Ok(()),
    }
}

async fn log_move(
    s: &AppState,
    id: &Identity,
    policy_ids: Vec<String>,
    rid: &str,
    row: &WarningRow,
) -> Result<u64, ApiError> {
    Ok(s.log
        .append(entry(
            id,
            LogAction::WarningMoved,
            true,
            Outcome::Succeeded,
            policy_ids,
            rid,
            Some(&row.id),
            Some(&row.household),
        )?)
        .await?
        .index)
}

async fn acknowledge(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(warning_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let (row, b, policy_ids) =
        match gate::<AcknowledgeBody>(&s, &id, &warning_id, "acknowledge", body, &rid).await? {
            Ok(x) => x,
            Err(r) => return Ok(r),
        };
    check_version(&row, b.expected_version)?;
    let log_index = log_move(&s, &id, policy_ids, &rid, &row).await?;
    let now = ms(OffsetDateTime::now_utc());
    let change = wstore::Change {
        state: WarningState::Acknowledged.code(),
        acknowledged_ms: Some(now),
        closed: None,
        reason: None,
        case_id: None,
    };
    apply(&s, &row, &change, now, log_index).await
}

/// Store a move (its log entry already durable) and answer the moved warning.
async fn apply(
    s: &AppState,
    row: &WarningRow,
    change: &wstore::Change,
    now: i64,
    log_index: u64,
) -> Result<Response, ApiError> {
    let row = wstore::move_warning(&s.store.db(), row, change, now)
        .await?
        .ok_or_else(changed)?;
    Ok(Json(WarningChanged {
        warning: summary(s, &row, now)?,
        log_index,
    })
    .into_response())
}

async fn dismiss(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(warning_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let (row, b, policy_ids) =
        match gate::<DismissBody>(&s, &id, &warning_id, "dismiss", body, &rid).await? {
            Ok(x) => x,
            Err(r) => return Ok(r),
        };
    let n = b.reason.trim().chars().count();
    if n == 0 || n > 1000 {
        return Err(invalid("reason", "must be 1-1000 characters"));
    }
    check_version(&row, b.expected_version)?;
    let (key_id, sealed) = s
        .keys
        .seal(&reason_aad(&row.id), b.reason.trim().as_bytes())
        .map_err(seal_error)?;
    let log_index = log_move(&s, &id, policy_ids, &rid, &row).await?;
    let now = ms(OffsetDateTime::now_utc());
    let change = wstore::Change {
        state: WarningState::Dismissed.code(),
        acknowledged_ms: None,
        closed: Some(id.uri.clone()),
        reason: Some((sealed, key_id)),
        case_id: None,
    };
    apply(&s, &row, &change, now, log_index).await
}

async fn convert(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(warning_id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let (row, b, policy_ids) =
        match gate::<ConvertBody>(&s, &id, &warning_id, "convert", body, &rid).await? {
            Ok(x) => x,
            Err(r) => return Ok(r),
        };
    // The resident ID of the warning's first signal, from the sealed event.
    let db = s.store.db();
    let event = wstore::get_event(&db, &row.first_event)
        .await?
        .ok_or_else(|| ApiError::internal("warning names a missing event"))?;
    let plain = s
        .keys
        .open(
            &event.key_id,
            &super::events::event_aad(&event.event_id),
            &event.sealed,
        )
        .map_err(seal_error)?;
    let ev: Value = serde_json::from_slice(&plain).map_err(ApiError::internal)?;
    let resident_id = ev["subject"]["resident_id"]
        .as_str()
        .ok_or_else(|| ApiError::internal("sealed event has no resident id"))?
        .to_owned();
    let tier: Urgency = serde_json::from_value(Value::String(row.tier.clone()))
        .map_err(|_| ApiError::internal("warning row: unknown tier"))?;
    let req = OpenCaseRequest {
        channel: Channel::Warning,
        tier,
        applicant: Applicant {
            resident_id,
            name: b.name,
            phone: b.phone,
        },
        township: row.township.clone(),
        village: row.village.clone(),
        hardship: b
            .hardship
            .or_else(|| Hardship::from_code(&row.hardship))
            .unwrap_or(Hardship::Other),
        description: b.description,
    };
    // The warning's id as the filing's idempotency key: a retried conversion is one case.
    let idem = Some(format!("warning-{}", row.id));
    let case = match crate::cases::api::file_case(&s, &id, &rid, &req, idem).await? {
        Opened::New(c) => c.case,
        Opened::Existing(c) => c,
    };
    let log_index = log_move(&s, &id, policy_ids, &rid, &row).await?;
    let now = ms(OffsetDateTime::now_utc());
    let change = wstore::Change {
        state: WarningState::Converted.code(),
        acknowledged_ms: None,
        closed: Some(id.uri.clone()),
        reason: None,
        case_id: Some(case.id.clone()),
    };
    let row = wstore::move_warning(&db, &row, &change, now)
        .await?
        .ok_or_else(changed)?;
    tracing::info!(warning_id = %row.id, case_id = %case.id, "warning converted to a case");
    Ok((
        StatusCode::CREATED,
        Json(WarningConverted {
            warning: summary(&s, &row, now)?,
            case_id: case.id,
            log_index,
        }),
    )
        .into_response())
}
