//! HTTP routes of the access log: C2SP tlog-tiles under `/log/` (checkpoint, hash tiles, entry
//! bundles), proofs, receipts and the verifier key under `/v1/log/`, and the auditors' search and
//! subject access report ("谁查看了我的数据 / who looked at my data").
//!
//! Who may read is Cedar's alone (`Authz::decide`, no role check here): `read_log` for the
//! checkpoint, tiles, proofs, receipts, key and rotations, `search_log` for searches and
//! `read_subject_access_report` for subject reports (auditors; admins never). Searches, subject
//! reports and tiles (entry bundles carry the pseudonymous record of accesses) are accesses to
//! personal data: each appends exactly one entry (`log_searched` / `subject_access_report`, or a
//! `denied` entry naming the deciding policies) and answers only after that entry is durable. The
//! decision comes before the body is read, so a malformed body cannot keep a denial out of the log.
//! Resident IDs travel only in POST bodies and are pseudonymised here; they are never logged or
//! echoed.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use policies::{Action as PolicyAction, RequestCtx, ResourceCtx};
use schemas::access_log::{
    AccessLogEntry, Action, Actor, Decision, Effect, FORMAT_V1, Outcome, pseudonymize,
};
use schemas::{Identity, ResidentId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tlog::tile::{TilePath, encode_bundle, parse_tile_path, read_tile_data};

use super::LogError;
use super::store::SearchFilter;
use crate::api::{ApiError, AppState, json_object, request_id};
use crate::identity::Caller;

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::BadRequest { field, rule } => {
                ApiError::bad_request("validation_failed", field, format!("{field}: {rule}"))
            }
            LogError::InvalidEntry(e) => {
                ApiError::bad_request("validation_failed", e.field.clone(), e.to_string())
            }
            LogError::NotSequencer => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "log_unavailable",
                "the access log cannot accept entries on this replica now; retry",
            ),
            other => ApiError::internal(other),
        }
    }
}

/// The log's routes, merged into the main router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/log/checkpoint", get(checkpoint))
        .route("/log/{*path}", get(tile))
        .route("/v1/log/vkey", get(vkey))
        .route("/v1/log/rotations", get(rotations))
        .route("/v1/log/proof/inclusion", get(inclusion))
        .route("/v1/log/proof/consistency", get(consistency))
        .route("/v1/log/receipt", get(receipt))
        .route("/v1/log/search", post(search))
        .route("/v1/log/subject-report", post(subject_report))
}

fn text(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

/// A query string, judged after the decision (so that a malformed one never answers before it).
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|_| {
        ApiError::bad_request(
            "validation_failed",
            "query",
            "query: expected non-negative integers (index, size, old, new)",
        )
    })
}

/// `read_log` for the routes that carry hashes and signatures only (no entries): a denial is
/// answered 403 without an access-log entry, as nothing personal was asked for.
pub(crate) fn may_read_log(s: &AppState, id: &Identity) -> Result<(), ApiError> {
    s.authz
        .require(
            id,
            PolicyAction::ReadLog,
            &ResourceCtx::default(),
            &RequestCtx::default(),
        )
        .map(|_| ())
        .map_err(|(_, e)| e)
}

async fn checkpoint(State(s): State<AppState>, Caller(id): Caller) -> Result<Response, ApiError> {
    may_read_log(&s, &id)?;
    let mut r = text("text/plain; charset=utf-8", s.log.served_checkpoint());
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    Ok(r)
}

async fn tile(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    crate::api::Path(path): crate::api::Path<String>,
) -> Result<Response, ApiError> {
    // Entry bundles are the pseudonymous record of accesses: decided like a search, and a denial
    // is logged (as `log_searched`), before the path is even parsed.
    gate(
        &s,
        &id,
        PolicyAction::ReadLog,
        Action::LogSearched,
        &request_id(&headers),
        None,
    )
    .await?;
    let parsed = parse_tile_path(&path)
        .map_err(|e| ApiError::bad_request("validation_failed", "path", e.to_string()))?;
    let (t, is_entries) = match parsed {
        TilePath::Hashes(t) => (t, false),
        TilePath::Entries(t) => (t, true),
    };
    let shift = 8 * u32::from(t.level);
    let end = t.n.saturating_mul(256).saturating_add(u64::from(t.width));
    // The tile's entries at level 0, for a head another replica may have moved past ours.
    let needed = if shift >= 64 {
        u64::MAX
    } else {
        end.saturating_mul(1 << shift)
    };
    let size = if needed == u64::MAX {
        s.log.head().size
    } else {
        s.log.head_at_least(needed).await?.size
    };
    let available = if shift >= 64 { 0 } else { size >> shift };
    if end > available {
        return Err(ApiError::not_found("tile not in the log yet"));
    }
    let body = if is_entries {
        let first = t.n * 256;
        let entries = super::store::read_entries(s.log.db(), first, end).await?;
        if entries.len() as u64 != end - first {
            // Served as stored so that auditors see (and name) the damage.
            tracing::error!(bundle = %t.entries_path(), "access log: entries missing below the head");
        }
        encode_bundle(&entries).map_err(ApiError::internal)?
    } else {
        s.log.with_reader(|r| read_tile_data(&t, r)).await?
    };
    let mut r = text("application/octet-stream", body);
    if t.is_full() {
        r.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
    }
    Ok(r)
}

async fn vkey(State(s): State<AppState>, Caller(id): Caller) -> Result<Response, ApiError> {
    may_read_log(&s, &id)?;
    Ok(text(
        "text/plain; charset=utf-8",
        format!("{}\n", s.log.vkey()),
    ))
}

/// Every recorded key/origin rotation, oldest first: each carries the note that verified with the
/// old key and the note the new key signed over the same size and root, so an auditor carries
/// their trust from one key to the next (see `deploy/RUNBOOK.md`).
async fn rotations(
    State(s): State<AppState>,
    Caller(id): Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    may_read_log(&s, &id)?;
    let rotations = super::store::read_rotations(s.log.db()).await?;
    Ok(Json(serde_json::json!({ "rotations": rotations })))
}

#[derive(Debug, Deserialize)]
struct InclusionQuery {
    index: u64,
    size: Option<u64>,
}

/// An inclusion or consistency proof (base64 hashes) and the current signed checkpoint.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProofBody {
    pub proof: Vec<String>,
    pub checkpoint: String,
}

async fn inclusion(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Json<ProofBody>, ApiError> {
    may_read_log(&s, &id)?;
    let q = query(q)?;
    let head = s
        .log
        .head_at_least(q.size.unwrap_or(0).max(q.index.saturating_add(1)))
        .await?;
    let proof = s
        .log
        .inclusion_proof(q.index, q.size.unwrap_or(head.size))
        .await?;
    Ok(Json(ProofBody {
        proof: proof.iter().map(|h| h.to_base64()).collect(),
        checkpoint: head.note,
    }))
}

#[derive(Debug, Deserialize)]
struct ConsistencyQuery {
    old: u64,
    new: Option<u64>,
}

async fn consistency(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ProofBody>, ApiError> {
    may_read_log(&s, &id)?;
    let q = query(q)?;
    let head = s.log.head_at_least(q.new.unwrap_or(0)).await?;
    let proof = s
        .log
        .consistency_proof(q.old, q.new.unwrap_or(head.size))
        .await?;
    Ok(Json(ProofBody {
        proof: proof.iter().map(|h| h.to_base64()).collect(),
        checkpoint: head.note,
    }))
}

#[derive(Debug, Deserialize)]
struct ReceiptQuery {
    index: u64,
}

async fn receipt(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<Query<ReceiptQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    may_read_log(&s, &id)?;
    let q = query(q)?;
    let r = s.log.receipt(q.index).await?;
    Ok(text("text/plain; charset=utf-8", r.to_text()))
}

/// `POST /v1/log/search` body: every filter optional, combined with AND.
#[derive(Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// 身份证号: pseudonymised on the hub, never stored or echoed.
    #[serde(default)]
    pub resident_id: Option<String>,
    /// Actor principal id, e.g. `cw-0001`.
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub case_ref: Option<String>,
    /// RFC 3339, inclusive.
    #[serde(default)]
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    #[serde(default)]
    pub to: Option<String>,
    /// Most results (default and maximum 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// One matching entry.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Found {
    pub index: u64,
    /// A `jsj-access-log/1` entry (schemas/src/access_log.rs): actor, action, purpose, case_ref,
    /// decision, departments, fact_kinds, outcome, request_id and subject pseudonyms.
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub entry: AccessLogEntry,
}

/// Search results; `logged_as` is the index of the entry recording this search.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SearchResponse {
    /// Log size searched (entries before this search's own entry).
    pub size: u64,
    pub logged_as: u64,
    pub entries: Vec<Found>,
}

fn parse_time(field: &'static str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    v.as_deref()
        .map(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| {
                    ApiError::bad_request(
                        "validation_failed",
                        field,
                        format!("{field}: must be an RFC 3339 time"),
                    )
                })
        })
        .transpose()
}

fn pseudonym_of(s: &AppState, field: &'static str, rid: &str) -> Result<String, ApiError> {
    let rid = ResidentId::parse(rid.trim()).map_err(|e| {
        ApiError::bad_request(
            "validation_failed",
            field,
            format!("{field}: not a valid resident ID ({e})"),
        )
    })?;
    Ok(pseudonymize(s.keys.pseudonym_key(), rid.as_str())
        .as_str()
        .to_owned())
}

pub(crate) fn entry_for(
    id: &Identity,
    action: Action,
    allowed: bool,
    policy_ids: Vec<String>,
    request_id: String,
    case_ref: Option<String>,
    subject: Option<&str>,
) -> Result<AccessLogEntry, ApiError> {
    let subjects = match subject {
        Some(p) => {
            vec![schemas::access_log::SubjectPseudonym::parse(p).map_err(ApiError::internal)?]
        }
        None => Vec::new(),
    };
    Ok(AccessLogEntry {
        format: FORMAT_V1.into(),
        time: time::OffsetDateTime::now_utc(),
        actor: Actor {
            uri: id.uri.clone(),
            principal: id.principal.clone(),
            role: id.role,
            organisation: id.organisation.clone(),
            division: id.division.clone(),
        },
        action,
        purpose: None,
        case_ref,
        decision: Decision {
            effect: if allowed { Effect::Allow } else { Effect::Deny },
            policy_ids,
        },
        departments: Vec::new(),
        fact_kinds: Vec::new(),
        outcome: if allowed {
            Outcome::Succeeded
        } else {
            Outcome::Denied
        },
        request_id,
        subjects,
    })
}

/// Decides `action` with Cedar; a denial is recorded (one entry naming the deciding policies)
/// before the 403 is returned. Returns the allowing policy ids.
pub(crate) async fn gate(
    s: &AppState,
    id: &Identity,
    action: PolicyAction,
    logged_as: Action,
    rid: &str,
    subject: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let d = s
        .authz
        .require_logged(
            &s.log,
            id,
            action,
            &ResourceCtx::default(),
            &RequestCtx::default(),
            |policy_ids| {
                entry_for(
                    id,
                    logged_as,
                    false,
                    policy_ids,
                    rid.to_owned(),
                    None,
                    subject,
                )
            },
        )
        .await?;
    Ok(d.policy_ids)
}

/// A typed request from a JSON object; the message never echoes a value (it could be an ID).
fn typed<T: serde::de::DeserializeOwned + schemars::JsonSchema + 'static>(
    v: Value,
) -> Result<T, ApiError> {
    // The same path-aware, value-free errors as every JSON body (`api::extract`).
    let bytes = serde_json::to_vec(&v).map_err(ApiError::internal)?;
    crate::api::extract::parse_object(&bytes)
}

/// The pseudonym of the body's `resident_id`, if it is one (for a denial entry: best effort, so
/// that the person's subject report shows the refused attempt).
fn subject_if_valid(s: &AppState, body: &Result<Json<Value>, JsonRejection>) -> Option<String> {
    let rid = body.as_ref().ok()?.0.get("resident_id")?.as_str()?;
    pseudonym_of(s, "resident_id", rid).ok()
}

pub(crate) async fn search(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<SearchResponse>, ApiError> {
    let rid = request_id(&headers);
    let policy_ids = gate(
        &s,
        &id,
        PolicyAction::SearchLog,
        Action::LogSearched,
        &rid,
        subject_if_valid(&s, &body).as_deref(),
    )
    .await?;
    let req: SearchRequest = typed(json_object(body)?)?;
    let subject = req
        .resident_id
        .as_deref()
        .map(|r| pseudonym_of(&s, "resident_id", r))
        .transpose()?;
    let filter = SearchFilter {
        subject: subject.clone(),
        actor: req.actor.clone(),
        case_ref: req.case_ref.clone(),
        from_ms: parse_time("from", &req.from)?,
        to_ms: parse_time("to", &req.to)?,
        limit: i64::from(req.limit.unwrap_or(1000).clamp(1, 1000)),
    };
    let size = s.log.head().size;
    let case_ref = req
        .case_ref
        .clone()
        .filter(|c| schemas::access_log::SubjectPseudonym::parse(c).is_err());
    let mut entry = entry_for(
        &id,
        Action::LogSearched,
        true,
        policy_ids,
        rid,
        case_ref,
        subject.as_deref(),
    )?;
    if entry.validate().is_err() {
        // A case reference that is not a valid identifier is searched for but not recorded.
        entry.case_ref = None;
    }
    let logged = s.log.append(entry).await?;
    let entries = found(&s, &filter, size).await?;
    Ok(Json(SearchResponse {
        size,
        logged_as: logged.index,
        entries,
    }))
}

async fn found(s: &AppState, filter: &SearchFilter, size: u64) -> Result<Vec<Found>, ApiError> {
    let rows = super::store::search(s.log.db(), filter, size).await?;
    rows.into_iter()
        .map(|(index, data)| {
            let entry = schemas::access_log::decode(&data).map_err(ApiError::internal)?;
            Ok(Found { index, entry })
        })
        .collect()
}

/// `POST /v1/log/subject-report` body.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectReportRequest {
    /// 身份证号 of the person asking "who looked at my data".
    pub resident_id: String,
    /// `json` (default) or `html` (printable zh-CN page).
    #[serde(default)]
    pub format: Option<String>,
}

/// The subject access report as JSON.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SubjectReport {
    /// Log size covered.
    pub size: u64,
    /// The entry recording this report.
    pub logged_as: u64,
    pub generated_at: String,
    pub accesses: Vec<Found>,
}

pub(crate) async fn subject_report(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    // The person's registered division is not established here (the body holds only an ID), so
    // the household has no region: Cedar lets auditors read and refuses caseworkers
    // (`subject-access-report-needs-registration`) and admins.
    let subject = subject_if_valid(&s, &body);
    let policy_ids = s
        .authz
        .require_logged(
            &s.log,
            &id,
            PolicyAction::ReadSubjectAccessReport,
            &ResourceCtx::default(),
            &RequestCtx::default(),
            |policy_ids| {
                entry_for(
                    &id,
                    Action::SubjectAccessReport,
                    false,
                    policy_ids,
                    rid.clone(),
                    None,
                    subject.as_deref(),
                )
            },
        )
        .await?
        .policy_ids;
    let req: SubjectReportRequest = typed(json_object(body)?)?;
    let html = match req.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "validation_failed",
                "format",
                "format: must be json or html",
            ));
        }
    };
    let subject = pseudonym_of(&s, "resident_id", &req.resident_id)?;
    let size = s.log.head().size;
    let entry = entry_for(
        &id,
        Action::SubjectAccessReport,
        true,
        policy_ids,
        rid,
        None,
        Some(&subject),
    )?;
    let logged = s.log.append(entry).await?;
    let filter = SearchFilter {
        subject: Some(subject),
        limit: 100_000,
        ..Default::default()
    };
    let accesses = found(&s, &filter, size).await?;
    let generated_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let report = SubjectReport {
        size,
        logged_as: logged.index,
        generated_at,
        accesses,
    };
    if html {
        let page = render_html(&report, &s.log.head().note).map_err(ApiError::internal)?;
        Ok(Html(page).into_response())
    } else {
        Ok(Json(report).into_response())
    }
}

fn action_zh(a: Action) -> &'static str {
    match a {
        Action::VerificationRequested => "发起核对 / verification requested",
        Action::DepartmentQueried => "部门查询 / department queried",
        Action::ReportViewed => "查看报告 / report viewed",
        Action::ReportPrinted => "打印报告 / report printed",
        Action::LogSearched => "检索日志 / log searched",
        Action::SubjectAccessReport => "个人查询报告 / subject access report",
        Action::AuthorizationRecorded => "登记授权书 / authorization recorded",
        Action::EvidenceReused => "复用已有核对结果 / evidence reused",
        Action::LetterAttached => "补登授权书 / letter attached after an emergency check",
        Action::RegistrationChecked => "户籍核验 / registered division checked with civil affairs",
        Action::CaseOpened => "登记救助案件 / case opened",
        Action::CaseRead => "查看救助案件 / case read",
        Action::CaseMoved => "办理救助案件 / case moved",
        Action::CaseSearched => "按身份证号查找案件 / cases looked up by resident ID",
        Action::SlipIssued => "开具转办单 / referral slip issued",
        Action::SlipRead => "查看转办单 / referral slip read",
        Action::SlipMoved => "办理转办单（签收、反馈）/ referral slip accepted or answered",
        Action::EventReceived => "接收部门事件 / department event received",
        Action::MonitoringChanged => "更新低收入人口监测名单 / monitoring list changed",
        Action::MonitoringRead => "查看监测信息 / monitoring information read",
        Action::WarningRead => "查看预警 / warning read",
        Action::WarningMoved => {
            "处置预警（确认、排除、转为案件）/ warning acknowledged, dismissed or converted"
        }
        Action::VillageReportFiled => "提交村级报告 / village report filed",
        Action::VillageReportRead => "查看村级报告 / village reports read",
    }
}

fn outcome_zh(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "成功 / succeeded",
        Outcome::Denied => "拒绝 / denied",
        Outcome::RefusedByDepartment => "部门拒绝 / refused by department",
        Outcome::TimedOut => "超时 / timed out",
        Outcome::Unavailable => "不可用 / unavailable",
        Outcome::Failed => "失败 / failed",
    }
}

/// One row of the subject access report.
pub struct AccessLine {
    index: u64,
    when: String,
    who: String,
    who_note: String,
    action: &'static str,
    departments: String,
    purpose: &'static str,
    case_ref: String,
    outcome: &'static str,
}

/// 谁查看了我的数据 (`hub/templates/print/subject_report.html`).
#[derive(askama::Template)]
#[template(path = "print/subject_report.html")]
struct SubjectReportPage {
    generated_at: String,
    count: usize,
    size: u64,
    logged_as: u64,
    rows: Vec<AccessLine>,
    checkpoint: String,
}

/// The printable zh-CN page: 谁查看了我的数据 / who looked at my data.
pub fn render_html(r: &SubjectReport, checkpoint: &str) -> Result<String, askama::Error> {
    use crate::console::format::{datetime_zh, division_zh, rfc3339_zh, role_zh};
    use askama::Template;
    let rows = r
        .accesses
        .iter()
        .map(|f| {
            let e = &f.entry;
            let depts: Vec<&str> = e.departments.iter().map(|d| d.name_zh()).collect();
            AccessLine {
                index: f.index,
                when: datetime_zh(e.time),
                who: format!(
                    "{}{}",
                    division_zh(e.actor.division.as_str()),
                    role_zh(e.actor.role)
                ),
                who_note: format!("{} · {}", e.actor.principal, e.actor.organisation),
                action: action_zh(e.action),
                departments: if depts.is_empty() {
                    "—".to_owned()
                } else {
                    depts.join("、")
                },
                purpose: e.purpose.map(|p| p.name_zh()).unwrap_or("—"),
                case_ref: e.case_ref.clone().unwrap_or_else(|| "—".to_owned()),
                outcome: outcome_zh(e.outcome),
            }
        })
        .collect();
    SubjectReportPage {
        generated_at: rfc3339_zh(&r.generated_at),
        count: r.accesses.len(),
        size: r.size,
        logged_as: r.logged_as,
        rows,
        checkpoint: checkpoint.to_owned(),
    }
    .render()
}
