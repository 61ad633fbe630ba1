//! 核对进度: the progress board of running verifications — per verification, who asked and, per
//! department asked, where its query stands (`pending`, `answered`, `reused`, `unavailable`,
//! `timeout`, `refused`) with the time it took. `GET /v1/verifications/{id}/progress` reads it;
//! the console's check page polls that route to show each department's status as it arrives.
//!
//! Invariants:
//! - No personal data: an entry holds the requester's identity URI (to decide who may read it),
//!   department codes, states, times and, for a failed check, the API error's code, message and
//!   field (messages never carry resident IDs). Members are not on the board at all.
//! - Bounded: a finished entry is kept [`KEEP_FINISHED`] and then dropped; past [`MAX_ENTRIES`]
//!   the oldest finished entries go first. Running entries end with their task (every path of
//!   `request_verification`'s task calls [`ProgressBoard::finish`]).
//! - Per process, like the 202 answers: after the board forgets a check (or on another replica),
//!   the progress of a stored verification is read from its report (every department final).
//! - Only the identity that requested a verification reads its progress (Cedar
//!   `poll_verification`, `requester-only`); anyone else gets 404, so ids do not leak.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use policies::{Action, RequestCtx, ResourceCtx};
use schemas::{Department, Purpose};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::report::{DepartmentStatus, Report};
use crate::api::{ApiError, AppState, Path};
use crate::identity::Caller;

/// How long a finished check stays on the board (the console's page reads the end state, then the
/// stored report).
pub const KEEP_FINISHED: Duration = Duration::from_secs(10 * 60);
/// The most entries the board holds (past it the oldest finished entries are dropped first).
pub const MAX_ENTRIES: usize = 10_000;

/// Where one department's query stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DepartmentState {
    /// 待答复: asked, no answer yet.
    Pending,
    /// 已答复
    Answered,
    /// 复用: a still-valid answer to an earlier verification is reused (not asked again).
    Reused,
    /// 不可用 (down, circuit open, not configured, malformed or unverifiable answer)
    Unavailable,
    /// 超时
    Timeout,
    /// 部门拒绝
    Refused,
}

impl DepartmentState {
    /// The state of a department's finished part of a report.
    pub fn of(status: DepartmentStatus) -> DepartmentState {
        match status {
            DepartmentStatus::Answered => DepartmentState::Answered,
            DepartmentStatus::Reused => DepartmentState::Reused,
            DepartmentStatus::TimedOut => DepartmentState::Timeout,
            DepartmentStatus::Refused => DepartmentState::Refused,
            DepartmentStatus::Unavailable
            | DepartmentStatus::Malformed
            | DepartmentStatus::BadSignature => DepartmentState::Unavailable,
        }
    }

    /// Chinese first, English second.
    pub fn text(self) -> &'static str {
        match self {
            DepartmentState::Pending => "待答复 / pending",
            DepartmentState::Answered => "已答复 / answered",
            DepartmentState::Reused => "复用已有答复 / reused",
            DepartmentState::Unavailable => "不可用 / unavailable",
            DepartmentState::Timeout => "超时 / timed out",
            DepartmentState::Refused => "部门拒绝 / refused",
        }
    }
}

/// Where the whole check stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// 核对中
    Running,
    /// 已完成: the report is stored (`GET /v1/verifications/{id}`).
    Done,
    /// 未完成: refused, limited or failed; `error` says why.
    Failed,
}

/// One department on the board.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DepartmentProgress {
    pub department: Department,
    pub name_zh: String,
    pub state: DepartmentState,
    /// The state in Chinese and English.
    pub state_text: String,
    /// Time since the query was sent (pending), or the time it took; 0 when reused.
    pub elapsed_ms: u64,
}

/// Why a check ended without a report: the API error it ended with.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProgressError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /v1/verifications/{id}/progress`. No personal data.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Progress {
    pub id: String,
    pub status: CheckStatus,
    pub purpose: Purpose,
    /// 案件编号 (identifier characters only, never a resident ID).
    pub case_ref: String,
    /// RFC 3339, when the check was requested.
    pub started_at: String,
    /// The departments asked (or reused), in department order; empty until the policy decision
    /// and the registration check are through and the queries go out.
    pub departments: Vec<DepartmentProgress>,
    /// Where the stored report is, once `done`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Why the check ended without a report, once `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ProgressError>,
}

struct Dept {
    state: DepartmentState,
    elapsed_ms: u64,
}

struct Entry {
    /// The requester's full identity URI: who may read this entry (Cedar `requester-only`).
    requester: String,
    purpose: Purpose,
    case_ref: String,
    started_utc: OffsetDateTime,
    status: CheckStatus,
    /// When it started (orders a requester's list).
    started_at: Instant,
    /// When the queries went out (pending departments count from here).
    asked_at: Option<Instant>,
    departments: BTreeMap<Department, Dept>,
    error: Option<ProgressError>,
    /// When it finished (for expiry).
    finished_at: Option<Instant>,
}

/// The in-memory board (one per process, in `AppState`).
#[derive(Default)]
pub struct ProgressBoard {
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for ProgressBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressBoard")
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl ProgressBoard {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A verification has started (before its policy decision); drops expired entries.
    pub fn start(&self, id: &str, requester_uri: &str, purpose: Purpose, case_ref: &str) {
        let mut m = self.lock();
        prune(&mut m, Instant::now(), MAX_ENTRIES.saturating_sub(1));
        m.insert(
            id.to_owned(),
            Entry {
                requester: requester_uri.to_owned(),
                purpose,
                case_ref: case_ref.to_owned(),
                started_utc: OffsetDateTime::now_utc(),
                status: CheckStatus::Running,
                started_at: Instant::now(),
                asked_at: None,
                departments: BTreeMap::new(),
                error: None,
                finished_at: None,
            },
        );
    }

    /// The fan-out starts: `asked` are queried now (pending), `reused` are not asked again.
    pub fn asked(
        &self,
        id: &str,
        asked: impl IntoIterator<Item = Department>,
        reused: impl IntoIterator<Item = Department>,
    ) {
        let mut m = self.lock();
        let Some(e) = m.get_mut(id) else { return };
        e.asked_at = Some(Instant::now());
        for d in asked {
            e.departments.insert(
                d,
                Dept {
                    state: DepartmentState::Pending,
                    elapsed_ms: 0,
                },
            );
        }
        for d in reused {
            e.departments.insert(
                d,
                Dept {
                    state: DepartmentState::Reused,
                    elapsed_ms: 0,
                },
            );
        }
    }

    /// One department's query ended.
    pub fn department_done(
        &self,
        id: &str,
        department: Department,
        status: DepartmentStatus,
        elapsed_ms: u64,
    ) {
        if let Some(e) = self.lock().get_mut(id) {
            e.departments.insert(
                department,
                Dept {
                    state: DepartmentState::of(status),
                    elapsed_ms,
                },
            );
        }
    }

    /// The check ended: with its report stored (`None`), or with this error.
    pub fn finish(&self, id: &str, error: Option<ProgressError>) {
        if let Some(e) = self.lock().get_mut(id) {
            e.status = if error.is_some() {
                CheckStatus::Failed
            } else {
                CheckStatus::Done
            };
            e.error = error;
            e.finished_at = Some(Instant::now());
        }
    }

    /// The requester's URI and the progress of a check on the board.
    fn read(&self, id: &str) -> Option<(String, Progress)> {
        let now = Instant::now();
        let m = self.lock();
        let e = m.get(id)?;
        let departments = e
            .departments
            .iter()
            .map(|(d, p)| DepartmentProgress {
                department: *d,
                name_zh: d.name_zh().to_owned(),
                state: p.state,
                state_text: p.state.text().to_owned(),
                elapsed_ms: match (p.state, e.asked_at) {
                    (DepartmentState::Pending, Some(at)) => {
                        let end = e.finished_at.unwrap_or(now);
                        end.saturating_duration_since(at).as_millis() as u64
                    }
                    _ => p.elapsed_ms,
                },
            })
            .collect();
        Some((
            e.requester.clone(),
            Progress {
                id: id.to_owned(),
                status: e.status,
                purpose: e.purpose,
                case_ref: e.case_ref.clone(),
                started_at: rfc3339(e.started_utc),
                departments,
                location: (e.status == CheckStatus::Done)
                    .then(|| format!("/v1/verifications/{id}")),
                error: e.error.clone(),
            },
        ))
    }

    /// The checks on the board that `requester_uri` started (the full identity URI, as stored
    /// rows are listed), newest first: their progress without departments.
    pub fn of_requester(&self, requester_uri: &str) -> Vec<Progress> {
        let m = self.lock();
        let mut mine: Vec<(Instant, Progress)> = m
            .iter()
            .filter(|(_, e)| e.requester == requester_uri)
            .map(|(id, e)| {
                (
                    e.started_at,
                    Progress {
                        id: id.clone(),
                        status: e.status,
                        purpose: e.purpose,
                        case_ref: e.case_ref.clone(),
                        started_at: rfc3339(e.started_utc),
                        departments: Vec::new(),
                        location: None,
                        error: e.error.clone(),
                    },
                )
            })
            .collect();
        mine.sort_by_key(|(started, _)| std::cmp::Reverse(*started));
        mine.into_iter().map(|(_, p)| p).collect()
    }

    /// How many entries the board holds (tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when the board is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `Prefer: respond-async` (RFC 7240): answer 202 at once and run the check in the background.
pub fn prefers_async(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|p| {
                p.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("respond-async"))
            })
        })
    })
}

/// The error a finished check ended with, for the board: an [`ApiError`], or an answer other than
/// the report (a limit's 429), whose JSON error body is read and the answer rebuilt unchanged.
pub async fn ended(
    result: Result<Response, ApiError>,
) -> (Result<Response, ApiError>, Option<ProgressError>) {
    match result {
        Err(e) => {
            let err = ProgressError {
                code: e.code.to_owned(),
                message: e.message.clone(),
                field: e.field.clone(),
            };
            (Err(e), Some(err))
        }
        Ok(r) if r.status() == StatusCode::OK => (Ok(r), None),
        Ok(r) => {
            let (parts, body) = r.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .map(|v| v["error"].clone());
            let text = |k: &str| {
                detail
                    .as_ref()
                    .and_then(|d| d[k].as_str())
                    .map(str::to_owned)
            };
            let err = ProgressError {
                code: text("code").unwrap_or_else(|| parts.status.as_u16().to_string()),
                message: text("message").unwrap_or_default(),
                field: text("field"),
            };
            (
                Ok(Response::from_parts(parts, axum::body::Body::from(bytes))),
                Some(err),
            )
        }
    }
}

/// Drop finished entries older than [`KEEP_FINISHED`]; then, while more than `max` remain, the
/// oldest finished ones.
fn prune(m: &mut HashMap<String, Entry>, now: Instant, max: usize) {
    m.retain(|_, e| {
        e.finished_at
            .is_none_or(|t| now.saturating_duration_since(t) < KEEP_FINISHED)
    });
    if m.len() <= max {
        return;
    }
    let mut finished: Vec<(Instant, String)> = m
        .iter()
        .filter_map(|(k, e)| e.finished_at.map(|t| (t, k.clone())))
        .collect();
    finished.sort();
    let excess = m.len() - max;
    for (_, k) in finished.into_iter().take(excess) {
        m.remove(&k);
    }
}

/// The progress of a stored verification, read from its report (every department final).
fn from_report(report: &Report) -> Progress {
    Progress {
        id: report.id.clone(),
        status: CheckStatus::Done,
        purpose: report.purpose,
        case_ref: report.case_ref.clone(),
        started_at: report.created_at.clone(),
        departments: report
            .departments
            .iter()
            .map(|d| {
                let state = DepartmentState::of(d.status);
                DepartmentProgress {
                    department: d.department,
                    name_zh: d.name_zh.clone(),
                    state,
                    state_text: state.text().to_owned(),
                    elapsed_ms: d.elapsed_ms,
                }
            })
            .collect(),
        location: Some(format!("/v1/verifications/{}", report.id)),
        error: None,
    }
}

/// May `id` poll a check requested by `requester`? (Cedar `poll_verification`; `requester-only`.)
fn may_poll(s: &AppState, id: &schemas::Identity, requester: &str) -> bool {
    let resource = ResourceCtx {
        requester: Some(requester.to_owned()),
        ..Default::default()
    };
    s.authz
        .require(
            id,
            Action::PollVerification,
            &resource,
            &RequestCtx::default(),
        )
        .is_ok()
}

/// `GET /v1/verifications/{id}/progress`: the board's entry, or the stored report's departments
/// once the board has forgotten it. Someone other than the requester gets the same 404 as for an
/// unknown id. Nothing personal is read or disclosed, so nothing is logged.
pub async fn read_progress(
    State(s): State<AppState>,
    Caller(id): Caller,
    Path(vid): Path<String>,
) -> Result<Json<Progress>, ApiError> {
    let not_found = || ApiError::not_found("no verification with this id");
    if let Some((requester, progress)) = s.progress.read(&vid) {
        return if may_poll(&s, &id, &requester) {
            Ok(Json(progress))
        } else {
            Err(not_found())
        };
    }
    let Some(row) = super::store::get_verification(&s.store.db(), &vid).await? else {
        return Err(not_found());
    };
    if !may_poll(&s, &id, &row.requested_by) {
        return Err(not_found());
    }
    let report: Report = serde_json::from_str(&row.report).map_err(ApiError::internal)?;
    Ok(Json(from_report(&report)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board_with(n: usize) -> ProgressBoard {
        let b = ProgressBoard::default();
        for i in 0..n {
            b.start(
                &format!("v{i}"),
                "spiffe://t/caseworker/o/370811002/cw",
                Purpose::DibaoApplication,
                "case-1",
            );
        }
        b
    }

    #[test]
    fn departments_go_from_pending_to_their_final_state() {
        let b = board_with(1);
        let (_, p) = b.read("v0").expect("on the board");
        assert_eq!(p.status, CheckStatus::Running);
        assert!(p.departments.is_empty());
        b.asked(
            "v0",
            [Department::Housing, Department::Labor],
            [Department::Education],
        );
        let (_, p) = b.read("v0").expect("on the board");
        let states: Vec<_> = p.departments.iter().map(|d| d.state).collect();
        assert!(states.contains(&DepartmentState::Pending));
        assert!(states.contains(&DepartmentState::Reused));
        b.department_done("v0", Department::Housing, DepartmentStatus::TimedOut, 1234);
        b.department_done("v0", Department::Labor, DepartmentStatus::BadSignature, 7);
        b.finish("v0", None);
        let (who, p) = b.read("v0").expect("on the board");
        assert!(who.ends_with("/cw"));
        assert_eq!(p.status, CheckStatus::Done);
        assert_eq!(p.location.as_deref(), Some("/v1/verifications/v0"));
        let of = |d: Department| {
            p.departments
                .iter()
                .find(|x| x.department == d)
                .map(|x| (x.state, x.elapsed_ms))
        };
        assert_eq!(
            of(Department::Housing),
            Some((DepartmentState::Timeout, 1234))
        );
        assert_eq!(
            of(Department::Labor),
            Some((DepartmentState::Unavailable, 7))
        );
        assert_eq!(
            of(Department::Education),
            Some((DepartmentState::Reused, 0))
        );
    }

    #[test]
    fn a_failed_check_keeps_its_error_and_unknown_ids_are_ignored() {
        let b = board_with(1);
        b.department_done("nope", Department::Housing, DepartmentStatus::Answered, 1);
        b.finish(
            "v0",
            Some(ProgressError {
                code: "forbidden".into(),
                message: "无权".into(),
                field: None,
            }),
        );
        let (_, p) = b.read("v0").expect("on the board");
        assert_eq!(p.status, CheckStatus::Failed);
        assert_eq!(p.error.map(|e| e.code).as_deref(), Some("forbidden"));
        assert!(p.location.is_none());
        assert!(b.read("nope").is_none());
    }

    #[test]
    fn finished_entries_expire_and_the_board_is_bounded() {
        let b = board_with(5);
        b.finish("v1", None);
        b.finish("v3", None);
        let mut m = b.lock();
        // Past the keep time both finished entries go, running ones stay.
        prune(&mut m, Instant::now() + KEEP_FINISHED, usize::MAX);
        assert_eq!(m.len(), 3);
        assert!(m.contains_key("v0") && !m.contains_key("v1") && !m.contains_key("v3"));
        drop(m);
        // Over the cap the oldest finished go first; running entries are never dropped.
        b.finish("v0", None);
        b.finish("v2", None);
        let mut m = b.lock();
        prune(&mut m, Instant::now(), 2);
        assert_eq!(m.len(), 2);
        assert!(m.contains_key("v4"), "the running entry stays");
        assert!(
            m.contains_key("v2") && !m.contains_key("v0"),
            "oldest first"
        );
    }
}
