//! 案件办理: the case page's actions and the outcome notice (结果告知书) to print.
//!
//! - The forms on the case page: 受理, 先行救助, 入户调查与初审意见, 转交县级, 审批决定, 办结 and
//!   开具转办单. A form is shown only when the case's stage allows the move (the state machine's
//!   `allowed`, as the API reports it) and Cedar permits it to the caller
//!   ([`crate::cases::api::permitted_moves`], [`crate::cases::slips_api::may_issue_slip`]); the
//!   templates hold no rule of their own.
//! - `POST /console/cases/{id}/{step}`: the CSRF checks, then the API's own move
//!   (`cases::api::run_move`, the function behind `POST /v1/cases/{id}/<move>`) or
//!   `slips_api::issue_slip` with the form turned into the API's JSON body, so the same Cedar
//!   decision, validation, 409s and access-log entry apply. Success is a 303 back to the case page;
//!   a refusal of the input (4xx with its code and field) re-renders the case page with the message
//!   in Chinese next to the form and the typed values kept.
//! - `GET /console/cases/{id}/notice`: the outcome notice of a decided case, read through
//!   `GET /v1/cases/{id}`'s handler (one `case_read` entry), from its compiled template with its
//!   own print stylesheet (`notice.css`, A4 under `@media print`).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use policies::Period;
use schemas::Identity;
use schemas::cases::{AssistanceType, FirstHelpKind, SlipKind};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::format::{BEIJING, date_zh, division_zh, money_zh, rfc3339_zh};
use super::pages::{Choice, error_page, html, masked, render_case, short, with_cookie};
use super::roles::{bad_form, csrf_guard, fen_of, opt, read_json};
use super::{assets, csrf};
use crate::api::{ApiError, AppState, Path};
use crate::cases::api::CaseView;
use crate::cases::model::Move;
use crate::identity::Caller;

// ==== the forms ====

/// Every action form's fields as typed (one struct: each step reads its own, and a refused post
/// is shown again with what was typed).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CaseForm {
    #[serde(default)]
    pub(super) csrf: String,
    /// The case's version the page showed: sent as `expected_version`, so a second click or a
    /// stale page moves nothing.
    #[serde(default)]
    pub(super) version: String,
    #[serde(default)]
    pub(super) note: String,
    // 先行救助
    #[serde(default)]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) amount: String,
    #[serde(default)]
    pub(super) given_at: String,
    #[serde(default)]
    pub(super) given_by: String,
    // 入户调查与初审意见
    #[serde(default)]
    pub(super) visited_at: String,
    #[serde(default)]
    pub(super) visited_by: String,
    #[serde(default)]
    pub(super) findings: String,
    #[serde(default)]
    pub(super) verification_ids: String,
    #[serde(default)]
    pub(super) recommendation: String,
    #[serde(default)]
    pub(super) assistance_type: String,
    #[serde(default)]
    pub(super) opinion: String,
    // 转交县级
    #[serde(default)]
    pub(super) reason: String,
    // 审批决定
    #[serde(default)]
    pub(super) decision: String,
    #[serde(default)]
    pub(super) reason_for_applicant: String,
    // 转办单
    #[serde(default)]
    pub(super) slip_kind: String,
    #[serde(default)]
    pub(super) asked: String,
    #[serde(default)]
    pub(super) due_on: String,
    #[serde(default)]
    pub(super) to_township: String,
}

/// A step of the case page: the URL segment, and the move (`None`: issuing a slip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Move(Move),
    Slip,
}

impl Step {
    fn parse(segment: &str) -> Option<Step> {
        Some(match segment {
            "accept" => Step::Move(Move::Accept),
            "first-help" => Step::Move(Move::FirstHelp),
            "investigation" => Step::Move(Move::Investigate),
            "hand-to-county" => Step::Move(Move::HandToCounty),
            "decision" => Step::Move(Move::Decide),
            "close" => Step::Move(Move::Close),
            "slips" => Step::Slip,
            _ => return None,
        })
    }

    fn segment(self) -> &'static str {
        match self {
            Step::Move(Move::Accept) => "accept",
            Step::Move(Move::FirstHelp) => "first-help",
            Step::Move(Move::Investigate) => "investigation",
            Step::Move(Move::HandToCounty) => "hand-to-county",
            Step::Move(Move::Decide) => "decision",
            Step::Move(Move::Close) => "close",
            Step::Move(Move::Transfer) => "transfer",
            Step::Slip => "slips",
        }
    }
}

/// A refused post: which form, the message in Chinese, the field at fault, what was typed.
pub struct Failed {
    pub(super) step: &'static str,
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) field: String,
    pub(super) form: CaseForm,
}

/// A slip kind to choose, with its default and longest period.
pub struct SlipChoice {
    pub(super) code: &'static str,
    pub(super) name: String,
    pub(super) selected: bool,
}

/// What the case page's action card shows.
pub struct Actions {
    pub(super) csrf: String,
    pub(super) version: i64,
    pub(super) accept: bool,
    pub(super) first_help: bool,
    pub(super) investigate: bool,
    pub(super) hand_to_county: bool,
    pub(super) decide: bool,
    pub(super) close: bool,
    pub(super) slip: bool,
    /// 结果告知书: the case has a decision to print.
    pub(super) notice: bool,
    pub(super) first_help_kinds: Vec<Choice>,
    pub(super) assistance_types: Vec<Choice>,
    pub(super) slip_kinds: Vec<SlipChoice>,
    /// `datetime-local` default: now, Beijing time.
    pub(super) now_local: String,
    pub(super) me: String,
    pub(super) error: Option<Failed>,
    pub(super) f: CaseForm,
}

impl Actions {
    pub(super) fn any(&self) -> bool {
        self.accept
            || self.first_help
            || self.investigate
            || self.hand_to_county
            || self.decide
            || self.close
            || self.slip
    }

    /// The error of `step`'s form, if that form was the one refused.
    pub(super) fn error_of(&self, step: &str) -> Option<&Failed> {
        self.error.as_ref().filter(|e| e.step == step)
    }

    pub(super) fn bad(&self, field: &str) -> bool {
        self.error.as_ref().is_some_and(|e| e.field == field)
    }
}

fn period_zh(p: Period) -> String {
    match p {
        Period::Hours(h) => format!("{h}小时"),
        Period::WorkingDays(d) => format!("{d}个工作日"),
    }
}

fn local_now() -> String {
    let b = OffsetDateTime::now_utc().to_offset(BEIJING);
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}",
        b.year(),
        u8::from(b.month()),
        b.day(),
        b.hour(),
        b.minute()
    )
}

/// The action card of the case `v` for `who`.
pub(super) fn actions(
    s: &AppState,
    who: &Identity,
    v: &CaseView,
    error: Option<Failed>,
) -> Actions {
    let moves = crate::cases::api::permitted_moves(s, who, v);
    let may = |m: Move| moves.contains(&m);
    let f = error.as_ref().map(|e| e.form.clone()).unwrap_or_default();
    let engine = s.authz.engine();
    let choose = |code: &'static str, name: &'static str, current: &str| Choice {
        code,
        name,
        selected: code == current,
    };
    Actions {
        csrf: csrf::token(&s.keys, who),
        version: v.summary.version,
        accept: may(Move::Accept),
        first_help: may(Move::FirstHelp),
        investigate: may(Move::Investigate),
        hand_to_county: may(Move::HandToCounty),
        decide: may(Move::Decide),
        close: may(Move::Close),
        slip: crate::cases::slips_api::may_issue_slip(s, who, &v.summary.township, v.summary.state),
        notice: v.events.iter().any(|e| e.action == Move::Decide.code()),
        first_help_kinds: FirstHelpKind::ALL
            .iter()
            .map(|k| choose(k.code(), k.name_zh(), &f.kind))
            .collect(),
        assistance_types: AssistanceType::ALL
            .iter()
            .map(|k| choose(k.code(), k.name_zh(), &f.assistance_type))
            .collect(),
        slip_kinds: SlipKind::ALL
            .iter()
            .map(|k| {
                let p = engine.deadlines().slip(*k);
                let to = k.department().map_or("另一乡镇", |d| d.name_zh());
                SlipChoice {
                    code: k.code(),
                    name: format!(
                        "{} → {}（默认{}，最长{}）",
                        k.name_zh(),
                        to,
                        period_zh(p.due),
                        period_zh(p.max)
                    ),
                    selected: k.code() == f.slip_kind,
                }
            })
            .collect(),
        now_local: local_now(),
        me: who.display_name.clone(),
        error,
        f,
    }
}

/// A `datetime-local` value (Beijing time, `2026-11-30T09:05` or with seconds) as RFC 3339;
/// anything else is passed on as typed, for the API to refuse with its field.
fn beijing_rfc3339(v: &str) -> String {
    let v = v.trim();
    let with_seconds = match v.len() {
        16 => format!("{v}:00"),
        _ => v.to_owned(),
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    match time::PrimitiveDateTime::parse(&with_seconds, &fmt) {
        Ok(t) => t
            .assume_offset(BEIJING)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| v.to_owned()),
        Err(_) => v.to_owned(),
    }
}

/// Names typed as `张三、李四` (or with commas or spaces).
fn names(v: &str) -> Vec<String> {
    v.split(['、', ',', '，', ';', '；', ' ', '\u{3000}'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The API's JSON body of `step` from the form.
fn body_of(step: Step, f: &CaseForm) -> Result<Value, ApiError> {
    let mut b = match step {
        Step::Move(Move::Accept | Move::Close) => json!({}),
        Step::Move(Move::FirstHelp) => {
            let mut b = json!({
                "kind": f.kind.trim(),
                "given_at": beijing_rfc3339(&f.given_at),
                "given_by": f.given_by.trim(),
            });
            if let Some(fen) = fen_of(&f.amount)? {
                b["amount_fen"] = json!(fen);
            }
            b
        }
        Step::Move(Move::Investigate) => {
            let mut opinion = json!({
                "recommendation": f.recommendation.trim(),
                "text": f.opinion.trim(),
            });
            if let Some(t) = opt(&f.assistance_type) {
                opinion["assistance_type"] = Value::String(t);
            }
            json!({
                "home_visit": {
                    "visited_at": beijing_rfc3339(&f.visited_at),
                    "visited_by": names(&f.visited_by),
                    "findings": f.findings.trim(),
                },
                "verification_ids": f.verification_ids.split_whitespace().collect::<Vec<_>>(),
                "initial_opinion": opinion,
            })
        }
        Step::Move(Move::HandToCounty) => json!({ "reason": f.reason.trim() }),
        Step::Move(Move::Decide) => {
            let mut b = json!({ "decision": f.decision.trim() });
            if let Some(t) = opt(&f.assistance_type) {
                b["assistance_type"] = Value::String(t);
            }
            if let Some(fen) = fen_of(&f.amount)? {
                b["amount_fen"] = json!(fen);
            }
            if let Some(r) = opt(&f.reason_for_applicant) {
                b["reason_for_applicant"] = Value::String(r);
            }
            b
        }
        Step::Move(Move::Transfer) => {
            json!({ "to_township": f.to_township.trim(), "reason": f.reason.trim() })
        }
        Step::Slip => {
            let mut b = json!({ "kind": f.slip_kind.trim(), "asked": f.asked.trim() });
            if let Some(d) = opt(&f.due_on) {
                b["due_on"] = Value::String(d);
            }
            if let Some(t) = opt(&f.to_township) {
                b["to_township"] = Value::String(t);
            }
            return Ok(b);
        }
    };
    // The bodies with a `note` (the others refuse unknown fields).
    let note_allowed = matches!(
        step,
        Step::Move(Move::Accept | Move::Close | Move::FirstHelp | Move::Decide)
    );
    if note_allowed && let Some(n) = opt(&f.note) {
        b["note"] = Value::String(n);
    }
    if let Ok(v) = f.version.trim().parse::<i64>() {
        b["expected_version"] = json!(v);
    }
    Ok(b)
}

/// A field of the API in Chinese, for the message next to the form.
fn field_zh(field: &str) -> &'static str {
    match field {
        "note" => "备注",
        "kind" => "救助方式",
        "amount_fen" => "金额",
        "given_at" => "救助时间",
        "given_by" => "救助人",
        "home_visit.visited_at" => "入户时间",
        f if f.starts_with("home_visit.visited_by") => "入户人员",
        "home_visit.findings" => "调查情况",
        f if f.starts_with("verification_ids") => "核对编号",
        "initial_opinion.recommendation" => "初审意见",
        "initial_opinion.assistance_type" | "assistance_type" => "救助类型",
        "initial_opinion.text" => "初审意见说明",
        "reason" => "理由",
        "decision" => "审批决定",
        "reason_for_applicant" => "告知申请人的理由",
        "asked" => "转办事项",
        "due_on" => "办理期限",
        "to_township" => "转入乡镇",
        "expected_version" => "案件版本",
        _ => "",
    }
}

/// The label of a move's detail on the timeline: its field in Chinese, else the key as stored.
pub(super) fn detail_label(path: &str) -> String {
    match field_zh(path) {
        "" => path.to_owned(),
        zh => zh.to_owned(),
    }
}

/// A move's detail value as a caseworker reads it: codes named, times in Beijing time.
pub(super) fn detail_value(key: &str, v: &str) -> String {
    let named = match key {
        "kind" => FirstHelpKind::from_code(v).map(FirstHelpKind::name_zh),
        "assistance_type" => AssistanceType::from_code(v).map(AssistanceType::name_zh),
        "decision" => match v {
            "approved" => Some("批准"),
            "refused" => Some("不予批准"),
            _ => None,
        },
        "recommendation" => match v {
            "approve" => Some("建议批准"),
            "refuse" => Some("建议不予批准"),
            _ => None,
        },
        _ => None,
    };
    match named {
        Some(zh) => zh.to_owned(),
        None if key.ends_with("_at") => rfc3339_zh(v),
        None if key == "to_township" => division_zh(v),
        None => v.to_owned(),
    }
}

/// The Chinese message of a refusal: what to fix first, then the API's own words.
fn message_zh(e: &ApiError) -> String {
    let lead = match e.code {
        "validation_failed" => "填写有误，请修改后重新提交",
        "version_mismatch" | "case_changed" => "案件已被更新，请查看最新办理过程后重试",
        "verification_not_linked" => "核对编号不属于本案件",
        "illegal_transition" | "slips_open" | "case_stage" => "当前不能执行此操作",
        _ => "操作未完成",
    };
    let field = e.field.as_deref().map(field_zh).unwrap_or("");
    if field.is_empty() {
        format!("{lead}：{}", e.message)
    } else {
        format!("{lead}（{field}）：{}", e.message)
    }
}

/// A move's answer that is not a success (409 with the API's error body) as an [`ApiError`].
async fn refusal_of(r: Response) -> ApiError {
    let status = r.status();
    let body = read_json::<Value>(r).await.unwrap_or(Value::Null);
    let code = match body["error"]["code"].as_str() {
        Some("illegal_transition") => "illegal_transition",
        Some("slips_open") => "slips_open",
        Some("version_mismatch") => "version_mismatch",
        _ => "refused",
    };
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or("此操作不可用 / this move is not allowed now")
        .to_owned();
    let mut e = ApiError::new(status, code, message);
    e.field = body["error"]["field"].as_str().map(str::to_owned);
    e
}

/// `POST /console/cases/{id}/{step}`: CSRF checks, then the API's move or slip issue with the
/// form as its body; 303 back to the case page, or the page again with the refusal in Chinese.
pub async fn case_step(
    State(s): State<AppState>,
    Caller(id): Caller,
    uri: Uri,
    headers: HeaderMap,
    Path((case_id, segment)): Path<(String, String)>,
    form: Result<Form<CaseForm>, FormRejection>,
) -> Response {
    // The CSRF checks come first: a post that is not our form is refused before it is read.
    let field = form.as_ref().map(|f| f.0.csrf.as_str()).unwrap_or("");
    if let Some(r) = csrf_guard(&s, &id, &uri, &headers, field) {
        return r;
    }
    let Some(step) = Step::parse(&segment) else {
        return error_page(&s, &id, ApiError::not_found("no such step"));
    };
    let Ok(Form(f)) = form else {
        return error_page(&s, &id, bad_form());
    };
    let mut api_headers = HeaderMap::new();
    if let Some(v) = headers.get("x-request-id") {
        api_headers.insert("x-request-id", v.clone());
    }
    let res = match body_of(step, &f) {
        Err(e) => Err(e),
        Ok(body) => match step {
            Step::Move(mv) => {
                crate::cases::api::run_move(
                    s.clone(),
                    id.clone(),
                    api_headers,
                    case_id.clone(),
                    mv,
                    Ok(axum::Json(body)),
                )
                .await
            }
            Step::Slip => {
                crate::cases::slips_api::issue_slip(
                    State(s.clone()),
                    Caller(id.clone()),
                    api_headers,
                    Path(case_id.clone()),
                    Ok(axum::Json(body)),
                )
                .await
            }
        },
    };
    let e = match res {
        Ok(r) if r.status().is_success() => {
            return Redirect::to(&format!("/console/cases/{case_id}")).into_response();
        }
        Ok(r) => refusal_of(r).await,
        Err(e) if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND => {
            return error_page(&s, &id, e);
        }
        Err(e) if e.status.is_client_error() => e,
        Err(e) => return error_page(&s, &id, e),
    };
    let failed = Failed {
        step: step.segment(),
        status: e.status,
        message: message_zh(&e),
        field: e.field.clone().unwrap_or_default(),
        form: f,
    };
    render_case(&s, &id, headers, case_id, Some(failed)).await
}

// ==== 结果告知书 ====

/// 结果告知书: the decision told to the household, to print and sign.
#[derive(Template)]
#[template(path = "console/notice.html")]
struct NoticePage {
    css: String,
    js: String,
    case_id: String,
    number: String,
    name: String,
    resident_id: String,
    filed_on: String,
    hardship: &'static str,
    approved: bool,
    assistance: String,
    amount: String,
    reason: String,
    first_help: Vec<String>,
    office: String,
    decided_on: String,
    printed_at: String,
}

/// The office that decided, from the decider's division: a county's 民政局, a street's 办事处, a
/// town's 人民政府.
fn office_zh(division: &str) -> String {
    let name = division_zh(division);
    if division.len() == 6 {
        format!("{name}民政局")
    } else if name.ends_with("街道") {
        format!("{name}办事处")
    } else {
        format!("{name}人民政府")
    }
}

/// The division segment of an identity URI (`spiffe://<domain>/<role>/<org>/<division>/<who>`).
fn division_of(uri: &str) -> &str {
    uri.trim_start_matches("spiffe://")
        .split('/')
        .nth(3)
        .unwrap_or("")
}

fn notice_of(v: &CaseView) -> Result<NoticePage, ApiError> {
    let decided = v
        .events
        .iter()
        .rev()
        .find(|e| e.action == Move::Decide.code())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "not_decided",
                "案件尚未作出审批决定，没有结果告知书 / the case has no decision yet",
            )
        })?;
    let d = decided.details.clone().unwrap_or(Value::Null);
    let fen = |v: &Value| v["amount_fen"].as_i64().map(money_zh);
    let assistance = d["assistance_type"]
        .as_str()
        .and_then(AssistanceType::from_code)
        .map(|t| t.name_zh().to_owned())
        .unwrap_or_default();
    let first_help = v
        .events
        .iter()
        .filter(|e| e.action == Move::FirstHelp.code())
        .map(|e| {
            let det = e.details.clone().unwrap_or(Value::Null);
            let kind = det["kind"]
                .as_str()
                .and_then(FirstHelpKind::from_code)
                .map_or("先行救助", |k| k.name_zh());
            let at = det["given_at"].as_str().map(rfc3339_zh).unwrap_or_default();
            match fen(&det) {
                Some(m) => format!("{at} {kind} {m}"),
                None => format!("{at} {kind}"),
            }
        })
        .collect();
    let decided_on =
        OffsetDateTime::parse(&decided.at, &time::format_description::well_known::Rfc3339)
            .map(date_zh)
            .unwrap_or_default();
    let filed_on = OffsetDateTime::parse(
        &v.summary.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(date_zh)
    .unwrap_or_default();
    Ok(NoticePage {
        css: assets::url("notice.css"),
        js: assets::url("notice.js"),
        case_id: v.summary.id.clone(),
        number: short(&v.summary.id),
        name: v.applicant.name.clone(),
        resident_id: masked(&v.applicant.resident_id),
        filed_on,
        hardship: v.summary.hardship.name_zh(),
        approved: d["decision"].as_str() == Some("approved"),
        assistance,
        amount: fen(&d).unwrap_or_default(),
        reason: d["reason_for_applicant"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        first_help,
        office: office_zh(division_of(&decided.actor)),
        decided_on,
        printed_at: super::format::datetime_zh(OffsetDateTime::now_utc()),
    })
}

/// `GET /console/cases/{id}/notice`: the outcome notice, through `GET /v1/cases/{id}`'s handler.
pub async fn notice(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(case_id): Path<String>,
) -> Response {
    let view = match crate::cases::api::read_case(
        State(s.clone()),
        Caller(id.clone()),
        headers,
        Path(case_id),
    )
    .await
    {
        Ok(axum::Json(v)) => v,
        Err(e) => return error_page(&s, &id, e),
    };
    match notice_of(&view) {
        Ok(page) => with_cookie(html(StatusCode::OK, page.render()), &s, &id),
        Err(e) => error_page(&s, &id, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> CaseForm {
        CaseForm {
            version: "3".into(),
            ..Default::default()
        }
    }

    #[test]
    fn first_help_in_yuan_and_beijing_time_becomes_the_api_body() {
        let f = CaseForm {
            kind: "cash".into(),
            amount: "¥1,500.5".into(),
            given_at: "2026-11-30T09:05".into(),
            given_by: "王芳".into(),
            note: " 送至医院 ".into(),
            ..form()
        };
        let b = body_of(Step::Move(Move::FirstHelp), &f).expect("body");
        assert_eq!(
            b,
            json!({"kind": "cash", "amount_fen": 150050, "given_at": "2026-11-30T09:05:00+08:00",
                   "given_by": "王芳", "note": "送至医院", "expected_version": 3})
        );
    }

    #[test]
    fn a_bad_amount_names_the_field_before_the_api_is_called() {
        let f = CaseForm {
            decision: "approved".into(),
            amount: "12.345".into(),
            ..form()
        };
        let e = body_of(Step::Move(Move::Decide), &f).expect_err("refused");
        assert_eq!(e.field.as_deref(), Some("amount_fen"));
        assert!(
            message_zh(&e).starts_with("填写有误，请修改后重新提交（金额）"),
            "{}",
            message_zh(&e)
        );
    }

    #[test]
    fn an_investigation_lists_the_visitors_and_verifications() {
        let f = CaseForm {
            visited_at: "2026-11-30T10:00:30".into(),
            visited_by: "张三、李四, 王五".into(),
            findings: "家中无劳动力".into(),
            verification_ids: "v-1  v-2".into(),
            recommendation: "approve".into(),
            assistance_type: "temporary_assistance".into(),
            opinion: "建议给予临时救助".into(),
            ..form()
        };
        let b = body_of(Step::Move(Move::Investigate), &f).expect("body");
        assert_eq!(
            b["home_visit"]["visited_by"],
            json!(["张三", "李四", "王五"])
        );
        assert_eq!(b["home_visit"]["visited_at"], "2026-11-30T10:00:30+08:00");
        assert_eq!(b["verification_ids"], json!(["v-1", "v-2"]));
        assert_eq!(
            b["initial_opinion"]["assistance_type"],
            "temporary_assistance"
        );
    }

    #[test]
    fn a_slip_has_no_version_and_hand_to_county_no_note() {
        let f = CaseForm {
            slip_kind: "medical_assistance".into(),
            asked: "协助办理医疗救助".into(),
            note: "x".into(),
            ..form()
        };
        let b = body_of(Step::Slip, &f).expect("body");
        assert_eq!(
            b,
            json!({"kind": "medical_assistance", "asked": "协助办理医疗救助"})
        );
        let f = CaseForm {
            reason: "金额超出乡镇审批权限".into(),
            note: "x".into(),
            ..form()
        };
        let b = body_of(Step::Move(Move::HandToCounty), &f).expect("body");
        assert_eq!(
            b,
            json!({"reason": "金额超出乡镇审批权限", "expected_version": 3})
        );
    }

    #[test]
    fn timeline_details_read_in_chinese() {
        assert_eq!(detail_label("home_visit.findings"), "调查情况");
        assert_eq!(detail_label("amount_fen"), "金额");
        assert_eq!(detail_label("something_new"), "something_new");
        assert_eq!(detail_value("kind", "cash"), "现金");
        assert_eq!(
            detail_value("assistance_type", "temporary_assistance"),
            "临时救助"
        );
        assert_eq!(detail_value("recommendation", "approve"), "建议批准");
        assert_eq!(
            detail_value("given_at", "2026-11-30T09:05:00+08:00"),
            "2026年11月30日 09:05"
        );
        assert_eq!(detail_value("note", "cash"), "cash");
    }

    #[test]
    fn steps_round_trip_and_unknown_ones_are_refused() {
        for seg in [
            "accept",
            "first-help",
            "investigation",
            "hand-to-county",
            "decision",
            "close",
            "slips",
        ] {
            assert_eq!(Step::parse(seg).map(Step::segment), Some(seg));
        }
        assert_eq!(Step::parse("transfer"), None);
        assert_eq!(Step::parse("delete"), None);
    }

    #[test]
    fn the_deciding_office_is_named_by_its_division() {
        assert_eq!(office_zh("370811"), "任城区民政局");
        assert_eq!(office_zh("370811002"), "许庄街道办事处");
        assert_eq!(office_zh("370811102"), "长沟镇人民政府");
        assert_eq!(
            division_of("spiffe://hub.example/caseworker/civil-affairs/370811006/cw-01"),
            "370811006"
        );
    }
}
