//! `GET /v1/escalations` (督办队列): the county supervisor's queue of overdue stages
//! ([`super::escalation`]). A county caseworker (division of 6 digits) sees its county's, a
//! township caseworker its township's; decided by Cedar (`list_escalations`, jurisdiction as for
//! every case action). The list carries no personal data (case id, clock, tier, township, times;
//! for an overdue referral slip its id, kind and addressee), so nothing is logged.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use policies::{Action, RequestCtx, ResourceCtx};
use schemas::cases::SlipKind;
use schemas::division::DivisionLevel;
use schemas::{Department, DivisionCode};
use serde::{Deserialize, Serialize};

use super::clocks::ClockKind;
use super::escalation::{self, EscalationFilter, rfc3339};
use crate::api::{ApiError, AppState, Query};
use crate::identity::Caller;

/// The routes of this module, merged into the main router.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/escalations", get(list_escalations))
}

/// Largest page.
pub const MAX_PAGE: u32 = 200;

/// Open or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalationState {
    /// 督办中: the clock is still not met.
    Open,
    /// 已办结: the clock was met after the escalation.
    Resolved,
}

/// `GET /v1/escalations` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalationQuery {
    /// Only open or only resolved escalations (default: both).
    #[serde(default)]
    pub state: Option<EscalationState>,
    /// A township (9 digits) or county (6 digits) inside the caller's division.
    #[serde(default)]
    pub township: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    /// 1-200, default 50.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// 超期督办: one overdue stage of a case (no personal data).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct EscalationItem {
    pub id: String,
    pub case_id: String,
    /// The statutory clock that was missed, or `slip`: a referral slip without feedback past its
    /// due time (then `slip` names it).
    pub clock: EscalatedClock,
    /// 转办单: the overdue slip, for `clock = slip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slip: Option<EscalatedSlip>,
    pub tier: schemas::Urgency,
    pub township: String,
    /// The township's county (first 6 digits).
    pub county: String,
    /// The missed deadline, RFC 3339 +08:00.
    pub due_at: String,
    /// When the scan escalated it.
    pub escalated_at: String,
    /// When the clock was met afterwards; absent while open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    pub state: EscalationState,
}

/// What was missed: a case's statutory clock, or a referral slip's due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalatedClock {
    /// 先行救助时限.
    FirstHelp,
    /// 补充完善材料时限.
    Materials,
    /// 调查初审意见时限.
    InitialOpinion,
    /// 审批决定时限.
    Decision,
    /// 转办单办理期限: a slip without feedback past its due time.
    Slip,
}

impl From<ClockKind> for EscalatedClock {
    fn from(k: ClockKind) -> Self {
        match k {
            ClockKind::FirstHelp => EscalatedClock::FirstHelp,
            ClockKind::Materials => EscalatedClock::Materials,
            ClockKind::InitialOpinion => EscalatedClock::InitialOpinion,
            ClockKind::Decision => EscalatedClock::Decision,
        }
    }
}

/// The overdue slip of a slip's escalation (no personal data).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct EscalatedSlip {
    /// Slip id (`GET /v1/slips/{id}`).
    pub id: String,
    pub kind: SlipKind,
    /// 承办部门: the department that has not answered (every kind but `township`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_department: Option<Department>,
    /// 转入乡镇 (kind `township`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_township: Option<String>,
}

/// `GET /v1/escalations` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct EscalationList {
    pub escalations: Vec<EscalationItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A stored code back into its enum.
fn parse<T: serde::de::DeserializeOwned>(what: &str, v: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
        .map_err(|_| ApiError::internal(format!("escalation row: unknown {what}")))
}

fn invalid(field: &str, rule: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("validation_failed", field, format!("{field}: {rule}"))
}

/// The digits every division inside `d` shares.
fn prefix(d: &DivisionCode) -> &str {
    match d.level() {
        DivisionLevel::Province => &d.as_str()[..2],
        DivisionLevel::City => &d.as_str()[..4],
        DivisionLevel::County | DivisionLevel::Township | DivisionLevel::Village => d.as_str(),
    }
}

/// 督办队列: decided for the caller's division (or the township asked for), then listed by
/// division prefix in SQL, newest first.
pub(crate) async fn list_escalations(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<Query<EscalationQuery>, ApiError>,
) -> Result<Json<EscalationList>, ApiError> {
    let decide = |region: DivisionCode| {
        s.authz
            .require(
                &id,
                Action::ListEscalations,
                &ResourceCtx {
                    region: Some(region),
                    ..Default::default()
                },
                &RequestCtx::default(),
            )
            .map(|_| ())
            .map_err(|(_, e)| e)
    };
    decide(id.division.clone())?;
    let Query(q) = q?;
    let limit = match q.limit.unwrap_or(50) {
        n @ 1..=MAX_PAGE => i64::from(n),
        _ => return Err(invalid("limit", format!("must be 1-{MAX_PAGE}"))),
    };
    let township = q
        .township
        .as_deref()
        .map(|t| DivisionCode::parse(t.trim()).map_err(|e| invalid("township", e)))
        .transpose()?;
    if let Some(t) = &township {
        decide(t.clone())?;
    }
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            uuid::Uuid::parse_str(c)
                .map(|u| u.to_string())
                .map_err(|_| invalid("cursor", "must be a cursor from a previous page"))
        })
        .transpose()?;
    let filter = EscalationFilter {
        division: prefix(&id.division).to_owned(),
        township: township.as_ref().map(|t| prefix(t).to_owned()),
        open: q.state.map(|st| st == EscalationState::Open),
        before,
        limit,
    };
    let rows = escalation::list(&s.store.db(), &filter).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let mut escalations = Vec::with_capacity(rows.len());
    for r in rows {
        let (clock, slip) = match r.slip {
            Some(sl) => (
                EscalatedClock::Slip,
                Some(EscalatedSlip {
                    kind: SlipKind::from_code(&sl.kind)
                        .ok_or_else(|| ApiError::internal("escalation row: unknown slip kind"))?,
                    to_department: sl
                        .to_department
                        .as_deref()
                        .map(|d| {
                            Department::from_code(d).ok_or_else(|| {
                                ApiError::internal("escalation row: unknown department")
                            })
                        })
                        .transpose()?,
                    to_township: sl.to_township,
                    id: sl.id,
                }),
            ),
            None => (parse::<ClockKind>("clock", &r.clock)?.into(), None),
        };
        escalations.push(EscalationItem {
            clock,
            slip,
            tier: parse("tier", &r.tier)?,
            id: r.id,
            case_id: r.case_id,
            township: r.township,
            county: r.county,
            due_at: rfc3339(r.due_ms),
            escalated_at: rfc3339(r.escalated_ms),
            resolved_at: r.resolved_ms.map(rfc3339),
            state: if r.resolved_ms.is_some() {
                EscalationState::Resolved
            } else {
                EscalationState::Open
            },
        });
    }
    Ok(Json(EscalationList {
        escalations,
        next_cursor,
    }))
}
