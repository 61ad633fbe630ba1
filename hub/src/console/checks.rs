//! 家庭经济状况核对 in the console (issue 13 item 2): the household check form, the check page with
//! each department's status as it arrives, the report, and the caller's own checks.
//!
//! - `GET /console/checks/new` (`?rows=N` for more member rows; no script needed) and
//!   `POST /console/checks/new` (multipart: the members, purpose, urgency, the caseworker's
//!   declaration, the applicant's declared income and the letter 授权书 as a file with its signed
//!   date, valid-until date and signers). The post records the letter through
//!   `POST /v1/authorizations`' handler (its SHA-256 is the document's) and starts the check
//!   through `POST /v1/verifications`' handler with `Prefer: respond-async`, then 303 to the
//!   check page. A refusal of either handler is shown next to the form field at fault, in
//!   Chinese, with the form as typed (the file must be chosen again).
//! - `GET /console/checks/{id}`: while the check runs, each department's state from
//!   `GET /v1/verifications/{id}/progress`' handler; `check.js` polls that route every 500 ms
//!   and updates the rows (without script, the page's 刷新 link shows the same). When the check is
//!   done, the report through `GET /v1/verifications/{id}`' handler (logged `report_viewed`), in
//!   the printed report's words (`verify::print::sections`), with a link to its print view.
//! - `GET /console/checks`: 我的核对 — `GET /v1/verifications` (stored), the progress board's
//!   running or failed checks of the caller, and `GET /v1/follow-ups` (letters still due).
//!
//! As everywhere in the console, the decisions are the API handlers' (Cedar), not this module's.

use std::collections::HashMap;

use askama::Template;
use axum::Json;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use schemas::{Identity, Purpose, Relation, Urgency};
use serde::Deserialize;

use super::format::{division_zh, rfc3339_zh};
use super::pages::{Layout, error_page, html, short, with_cookie};
use super::{assets, csrf};
use crate::api::{ApiError, AppState, JsonObject, Path};
use crate::identity::Caller;
use crate::verify::api::{HouseholdInput, MemberInput, VerificationRequest};
use crate::verify::progress::{CheckStatus, DepartmentProgress, Progress};
use crate::verify::report::Report;

/// Member rows the form shows by default (empty rows are ignored).
const DEFAULT_ROWS: usize = 4;
/// The most member rows (the API's limit on a household).
const MAX_ROWS: usize = 30;

/// One member row as typed.
#[derive(Debug, Default, Clone)]
pub struct MemberRow {
    name: String,
    resident_id: String,
    relation: String,
    signed: bool,
}

impl MemberRow {
    fn is_empty(&self) -> bool {
        self.name.trim().is_empty() && self.resident_id.trim().is_empty()
    }
}

/// The form as typed (kept on a refusal; the letter's bytes are not sent back).
#[derive(Debug, Default)]
pub struct CheckForm {
    csrf: String,
    /// The form's own `Idempotency-Key` (made when the empty form is shown, kept when it is shown
    /// again with an error): sending the same form twice (a double click, the back button and
    /// send again) starts one check, and the second answer leads to the same check page.
    idem: String,
    purpose: String,
    urgency: String,
    case_ref: String,
    registered_division: String,
    rows: Vec<MemberRow>,
    declaration: bool,
    declared_income: String,
    signed_on: String,
    valid_until: String,
    letter: Vec<u8>,
}

pub struct Choice {
    code: &'static str,
    name: &'static str,
    selected: bool,
}

/// A member row as the template shows it, with its field names and its error, if any.
pub struct RowView {
    n: usize,
    row: MemberRow,
    relations: Vec<Choice>,
    f_name: String,
    f_rid: String,
    f_relation: String,
    f_signed: String,
}

#[derive(Template)]
#[template(path = "console/new_check.html")]
struct NewCheckPage {
    layout: Layout,
    csrf: String,
    error: Option<String>,
    /// The same text, for the field's own note.
    error_text: String,
    error_detail: String,
    error_field: String,
    purposes: Vec<Choice>,
    urgencies: Vec<Choice>,
    rows: Vec<RowView>,
    more_rows: usize,
    f: CheckForm,
}

fn choices<T: Copy>(
    all: &[T],
    current: &str,
    code: impl Fn(T) -> &'static str,
    name: impl Fn(T) -> &'static str,
) -> Vec<Choice> {
    all.iter()
        .map(|&x| Choice {
            code: code(x),
            name: name(x),
            selected: code(x) == current,
        })
        .collect()
}

const URGENCIES: [Urgency; 3] = [Urgency::Normal, Urgency::Urgent, Urgency::Emergency];

/// A refusal as the form shows it: the form field at fault, the Chinese text, the API's own
/// message in small print.
struct FormError {
    field: String,
    zh: String,
    detail: String,
}

fn new_check_page(
    s: &AppState,
    who: &Identity,
    f: CheckForm,
    error: Option<(StatusCode, FormError)>,
) -> Response {
    let status = error.as_ref().map(|(s, _)| *s).unwrap_or(StatusCode::OK);
    let rows = f
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| RowView {
            n: i + 1,
            relations: choices(
                &Relation::ALL,
                &r.relation,
                Relation::code,
                Relation::name_zh,
            ),
            row: r.clone(),
            f_name: format!("m{i}_name"),
            f_rid: format!("m{i}_resident_id"),
            f_relation: format!("m{i}_relation"),
            f_signed: format!("m{i}_signed"),
        })
        .collect();
    let (error_field, error, error_detail) = match error {
        Some((_, e)) => (e.field, Some(e.zh), e.detail),
        None => (String::new(), None, String::new()),
    };
    let page = NewCheckPage {
        layout: Layout::new(s, "家庭经济状况核对 / New household check", who),
        csrf: csrf::token(&s.keys, who),
        error_text: error.clone().unwrap_or_default(),
        error,
        error_detail,
        error_field,
        purposes: choices(&Purpose::ALL, &f.purpose, Purpose::code, Purpose::name_zh),
        urgencies: choices(&URGENCIES, &f.urgency, Urgency::code, Urgency::name_zh),
        rows,
        more_rows: (f.rows.len() + 2).min(MAX_ROWS),
        f,
    };
    with_cookie(html(status, page.render()), s, who)
}

/// `GET /console/checks/new?rows=N`.
#[derive(Debug, Default, Deserialize)]
pub struct NewCheckQuery {
    #[serde(default)]
    rows: Option<usize>,
}

/// `GET /console/checks/new`: the empty form, the household registered in the caller's township.
pub async fn new_check(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<Query<NewCheckQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let n = q
        .ok()
        .and_then(|q| q.0.rows)
        .unwrap_or(DEFAULT_ROWS)
        .clamp(1, MAX_ROWS);
    let mut rows = vec![MemberRow::default(); n];
    rows[0].relation = Relation::Applicant.code().into();
    rows[0].signed = true;
    let f = CheckForm {
        purpose: Purpose::DibaoApplication.code().into(),
        urgency: Urgency::Normal.code().into(),
        case_ref: format!("jc-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        registered_division: if id.division.as_str().len() == 9 {
            id.division.as_str().to_owned()
        } else {
            String::new()
        },
        rows,
        idem: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    new_check_page(&s, &id, f, None)
}

fn unreadable() -> FormError {
    FormError {
        field: String::new(),
        zh: "表单无法读取，请重新填写 / the form could not be read".into(),
        detail: String::new(),
    }
}

/// Read the multipart form (the letter as bytes, every other field as text).
async fn read_form(mut mp: Multipart) -> Result<CheckForm, FormError> {
    let mut f = CheckForm::default();
    let mut rows: HashMap<usize, MemberRow> = HashMap::new();
    while let Some(field) = mp.next_field().await.map_err(|_| unreadable())? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "letter" {
            f.letter = field.bytes().await.map_err(|_| unreadable())?.to_vec();
            continue;
        }
        let text = field.text().await.map_err(|_| unreadable())?;
        match name.as_str() {
            "csrf" => f.csrf = text,
            "idem" => f.idem = text,
            "purpose" => f.purpose = text,
            "urgency" => f.urgency = text,
            "case_ref" => f.case_ref = text,
            "registered_division" => f.registered_division = text,
            "declaration" => f.declaration = !text.is_empty(),
            "declared_income" => f.declared_income = text,
            "signed_on" => f.signed_on = text,
            "valid_until" => f.valid_until = text,
            other => {
                let Some((i, part)) = other
                    .strip_prefix('m')
                    .and_then(|r| r.split_once('_'))
                    .and_then(|(i, p)| Some((i.parse::<usize>().ok()?, p)))
                    .filter(|(i, _)| *i < MAX_ROWS)
                else {
                    continue;
                };
                let r = rows.entry(i).or_default();
                match part {
                    "name" => r.name = text,
                    "resident_id" => r.resident_id = text,
                    "relation" => r.relation = text,
                    "signed" => r.signed = !text.is_empty(),
                    _ => {}
                }
            }
        }
    }
    let n = rows.keys().max().map_or(DEFAULT_ROWS, |m| m + 1);
    f.rows = (0..n)
        .map(|i| rows.remove(&i).unwrap_or_default())
        .collect();
    Ok(f)
}

/// The form field an API error's `field` names: members are numbered among the filled rows,
/// signers among the signed ones.
fn form_field(api_field: &str, used: &[usize], signers: &[usize]) -> String {
    let f = api_field.strip_prefix("household.").unwrap_or(api_field);
    let indexed = |prefix: &str| -> Option<(usize, String)> {
        let rest = f.strip_prefix(prefix)?;
        let (i, tail) = rest.split_once(']')?;
        Some((i.parse().ok()?, tail.trim_start_matches('.').to_owned()))
    };
    if let Some((i, tail)) = indexed("members[") {
        let row = used.get(i).copied().unwrap_or(i);
        let part = if tail.is_empty() {
            "resident_id"
        } else {
            tail.as_str()
        };
        return format!("m{row}_{part}");
    }
    if let Some((i, _)) = indexed("signed_by[") {
        return format!("m{}_signed", signers.get(i).copied().unwrap_or(i));
    }
    match f {
        "letter_sha256" => "letter".into(),
        "declared.household_monthly_income_fen" => "declared_income".into(),
        "purposes" | "purposes[0]" => "purpose".into(),
        other => other.to_owned(),
    }
}

/// What was wrong with a form field, in Chinese.
fn field_zh(field: &str) -> Option<String> {
    let row = |f: &str| {
        f.strip_prefix('m')
            .and_then(|r| r.split_once('_'))
            .and_then(|(i, p)| Some((i.parse::<usize>().ok()? + 1, p.to_owned())))
    };
    if let Some((n, part)) = row(field) {
        let what = match part.as_str() {
            "resident_id" => "公民身份号码无效（位数、出生日期或校验位不符）",
            "name" => "姓名须为1至64个字符，不含控制字符",
            "relation" => "与申请人关系无效（须有且仅有一名“本人”）",
            "signed" => "签字人须为所列家庭成员，且申请人本人须签字",
            _ => "填写有误",
        };
        return Some(format!("第{n}行成员：{what}"));
    }
    Some(
        match field {
            "registered_division" => "户籍地代码须为6位（县）或9位（乡镇）行政区划代码",
            "purpose" => "请选择核对用途",
            "urgency" => "请选择紧急程度",
            "case_ref" => {
                "案件编号须为1至256个字母、数字或 - _ . : / @ +，且不得含15位以上连续数字"
            }
            "declaration" => "请确认经办人声明",
            "declared_income" => "申报家庭月收入须为不小于0的金额（元，最多两位小数）",
            "signed_on" => "授权书签署日期须为不晚于今天的日期",
            "valid_until" => "授权书有效期须晚于今天、不早于签署日期，且不超过一年",
            "letter" => "请上传申请人签字的授权书扫描件（每份扫描件只能登记一次）",
            "members" => "家庭成员有误：须有且仅有一名申请人本人，同一人不得重复填写",
            _ => return None,
        }
        .to_owned(),
    )
}

/// An API refusal for the form: the field at fault in the form's terms, in Chinese.
fn form_error(e: &ApiError, used: &[usize], signers: &[usize]) -> FormError {
    let field = e
        .field
        .as_deref()
        .map(|f| form_field(f, used, signers))
        .unwrap_or_default();
    let zh = field_zh(&field).unwrap_or_else(|| e.message.clone());
    FormError {
        field,
        zh,
        detail: e.message.clone(),
    }
}

fn console_error(field: &str) -> (StatusCode, FormError) {
    (
        StatusCode::BAD_REQUEST,
        FormError {
            field: field.to_owned(),
            zh: field_zh(field).unwrap_or_default(),
            detail: String::new(),
        },
    )
}

/// `12.5` yuan → 1250 fen; empty is none.
fn yuan_to_fen(s: &str) -> Result<Option<i64>, ()> {
    let s = s.trim().trim_start_matches('¥').replace(',', "");
    if s.is_empty() {
        return Ok(None);
    }
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    if int.is_empty()
        || frac.len() > 2
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() > 12
    {
        return Err(());
    }
    let yuan: i64 = int.parse().map_err(|_| ())?;
    let fen: i64 = format!("{frac:0<2}").parse().map_err(|_| ())?;
    Ok(Some(yuan * 100 + fen))
}

fn parse_date(s: &str) -> Option<time::Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), &fmt).ok()
}

/// The API handlers' headers for a console post: the request id, and whatever `extra` adds.
fn api_headers(headers: &HeaderMap, extra: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(v) = headers.get("x-request-id") {
        h.insert("x-request-id", v.clone());
    }
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(*k, v);
        }
    }
    h
}

/// `extra` headers and, when the form carries a well-formed key of its own, `Idempotency-Key`
/// (a form without one, or with a mangled one, still runs: as a check without a key).
fn idempotent<'a>(key: &'a str, extra: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
    let mut h = extra.to_vec();
    let key = key.trim();
    if (1..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        h.push(("idempotency-key", key));
    }
    h
}

/// `POST /console/checks/new`: CSRF (Origin and cookie before the body is read, the token after),
/// the letter through `POST /v1/authorizations`, the check through `POST /v1/verifications` with
/// `Prefer: respond-async`; 303 to the check page.
pub async fn submit_check(
    State(s): State<AppState>,
    Caller(id): Caller,
    uri: Uri,
    headers: HeaderMap,
    mp: Result<Multipart, MultipartRejection>,
) -> Response {
    let expected = csrf::token(&s.keys, &id);
    let host = csrf::host_of(&headers, &uri);
    let refused = |e: csrf::CsrfError| {
        error_page(
            &s,
            &id,
            ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", e.text()),
        )
    };
    if let Err(e) = csrf::check(&headers, host.as_deref(), &expected, &expected) {
        return refused(e);
    }
    let f = match mp {
        Ok(mp) => read_form(mp).await,
        Err(_) => Err(unreadable()),
    };
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            return new_check_page(
                &s,
                &id,
                CheckForm {
                    rows: vec![MemberRow::default(); DEFAULT_ROWS],
                    idem: uuid::Uuid::new_v4().to_string(),
                    ..Default::default()
                },
                Some((StatusCode::BAD_REQUEST, e)),
            );
        }
    };
    if let Err(e) = csrf::check(&headers, host.as_deref(), &expected, &f.csrf) {
        return refused(e);
    }
    match start_check(&s, &id, &headers, &f).await {
        Ok(vid) => Redirect::to(&format!("/console/checks/{vid}")).into_response(),
        Err(Refusal::Page(e)) => error_page(&s, &id, e),
        Err(Refusal::Form(status, e)) => new_check_page(&s, &id, f, Some((status, e))),
    }
}

enum Refusal {
    /// Not about a field: the error page (a policy refusal, a fault).
    Page(ApiError),
    /// The form again, with the field at fault.
    Form(StatusCode, FormError),
}

/// Record the letter (if one was uploaded) and start the check; the verification id.
async fn start_check(
    s: &AppState,
    id: &Identity,
    headers: &HeaderMap,
    f: &CheckForm,
) -> Result<String, Refusal> {
    let form = |field: &str| {
        let (st, e) = console_error(field);
        Refusal::Form(st, e)
    };
    let purpose = Purpose::from_code(f.purpose.trim()).ok_or_else(|| form("purpose"))?;
    let urgency = URGENCIES
        .into_iter()
        .find(|u| u.code() == f.urgency.trim())
        .ok_or_else(|| form("urgency"))?;
    if !f.declaration {
        return Err(form("declaration"));
    }
    let used: Vec<usize> = (0..f.rows.len())
        .filter(|&i| !f.rows[i].is_empty())
        .collect();
    if used.is_empty() {
        return Err(form("m0_name"));
    }
    let signers: Vec<usize> = used.iter().copied().filter(|&i| f.rows[i].signed).collect();
    let declared_income = yuan_to_fen(&f.declared_income).map_err(|()| form("declared_income"))?;
    let api = |e: ApiError| match e.status {
        st if st.is_client_error() && st != StatusCode::FORBIDDEN => {
            Refusal::Form(st, form_error(&e, &used, &signers))
        }
        _ => Refusal::Page(e),
    };
    let division = f.registered_division.trim().to_owned();
    // 授权书: required for a normal check; an urgent or emergency one may run before it.
    let authorization_id = if f.letter.is_empty() {
        if urgency == Urgency::Normal {
            return Err(form("letter"));
        }
        None
    } else {
        let today = time::OffsetDateTime::now_utc()
            .to_offset(super::format::BEIJING)
            .date();
        let signed_on = parse_date(&f.signed_on)
            .filter(|d| *d <= today)
            .ok_or_else(|| form("signed_on"))?;
        let valid_until = parse_date(&f.valid_until)
            .filter(|d| *d >= signed_on)
            .ok_or_else(|| form("valid_until"))?;
        if signers.is_empty() {
            return Err(form(&format!("m{}_signed", used[0])));
        }
        let rid = |i: &usize| f.rows[*i].resident_id.trim().to_owned();
        let body = serde_json::json!({
            "registered_division": division,
            "signed_by": signers.iter().map(rid).collect::<Vec<_>>(),
            "members": used.iter().map(rid).collect::<Vec<_>>(),
            "purposes": [purpose],
            "valid_until": valid_until.to_string(),
            "letter_sha256": hex::encode(ring::digest::digest(&ring::digest::SHA256, &f.letter)),
        });
        let (_, Json(recorded)) = crate::verify::api::record_authorization(
            State(s.clone()),
            Caller(id.clone().into()),
            api_headers(headers, &[]),
            Ok(Json(body)),
        )
        .await
        .map_err(api)?;
        Some(recorded.id)
    };
    let mut declared = None;
    if let Some(fen) = declared_income {
        declared = Some(crate::verify::aggregate::Declared {
            household_monthly_income_fen: Some(fen),
            ..Default::default()
        });
    }
    let req = VerificationRequest {
        household: HouseholdInput {
            registered_division: division,
            members: used
                .iter()
                .map(|&i| MemberInput {
                    resident_id: f.rows[i].resident_id.trim().to_owned(),
                    name: f.rows[i].name.trim().to_owned(),
                    relation: f.rows[i].relation.trim().to_owned(),
                })
                .collect(),
        },
        purpose,
        case_ref: f.case_ref.trim().to_owned(),
        case_id: None,
        urgency,
        authorization_id,
        declared,
        force_fresh: false,
        wait_ms: None,
    };
    let res = crate::verify::api::request_verification(
        State(s.clone()),
        Caller(id.clone().into()),
        api_headers(
            headers,
            &idempotent(&f.idem, &[("prefer", "respond-async")]),
        ),
        JsonObject(req),
    )
    .await
    .map_err(api)?;
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    match v["id"].as_str() {
        Some(vid) if status == StatusCode::ACCEPTED || status == StatusCode::OK => {
            Ok(vid.to_owned())
        }
        _ => Err(Refusal::Page(ApiError::new(
            status,
            "verification_not_started",
            v["error"]["message"]
                .as_str()
                .unwrap_or("核对未能开始 / the check did not start")
                .to_owned(),
        ))),
    }
}

// ==== the check page ====

pub struct DeptLine {
    code: &'static str,
    name: String,
    state: &'static str,
    state_text: String,
    elapsed: String,
}

/// `35 毫秒` under a second, `1.2 秒` from one.
fn seconds(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms} 毫秒");
    }
    format!("{}.{} 秒", ms / 1000, (ms % 1000) / 100)
}

fn dept_line(d: &DepartmentProgress) -> DeptLine {
    DeptLine {
        code: d.department.code(),
        name: d.name_zh.clone(),
        state: state_code(d.state),
        state_text: d.state_text.clone(),
        elapsed: seconds(d.elapsed_ms),
    }
}

fn state_code(s: crate::verify::progress::DepartmentState) -> &'static str {
    use crate::verify::progress::DepartmentState as D;
    match s {
        D::Pending => "pending",
        D::Answered => "answered",
        D::Reused => "reused",
        D::Unavailable => "unavailable",
        D::Timeout => "timeout",
        D::Refused => "refused",
    }
}

fn status_zh(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Running => "核对中 / running",
        CheckStatus::Done => "已完成 / done",
        CheckStatus::Failed => "未完成 / ended without a report",
    }
}

fn status_code(s: CheckStatus) -> &'static str {
    match s {
        CheckStatus::Running => "running",
        CheckStatus::Done => "done",
        CheckStatus::Failed => "failed",
    }
}

#[derive(Template)]
#[template(path = "console/check.html")]
struct CheckPage {
    layout: Layout,
    id: String,
    short_id: String,
    purpose: &'static str,
    case_ref: String,
    started: String,
    status: &'static str,
    status_text: &'static str,
    /// The progress route the script polls (only while running).
    poll: Option<String>,
    script: String,
    departments: Vec<DeptLine>,
    error: Option<String>,
    error_code: String,
    report: Option<crate::verify::print::Sections>,
}

/// `GET /console/checks/{id}`: the check's progress (`GET /v1/verifications/{id}/progress`:
/// the requester only, others 404), and, once done, its report (`GET /v1/verifications/{id}`:
/// Cedar `view_report`, logged `report_viewed`).
pub async fn check_page(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(vid): Path<String>,
) -> Response {
    let progress: Progress = match crate::verify::progress::read_progress(
        State(s.clone()),
        Caller(id.clone()),
        Path(vid.clone()),
    )
    .await
    {
        Ok(Json(p)) => p,
        Err(e) => return error_page(&s, &id, e),
    };
    let mut report = None;
    if progress.status == CheckStatus::Done {
        let res = crate::verify::api::get_verification(
            State(s.clone()),
            Caller(id.clone()),
            api_headers(&headers, &[]),
            Path(vid.clone()),
        )
        .await;
        match res {
            Ok(r) if r.status() == StatusCode::OK => {
                let bytes = axum::body::to_bytes(r.into_body(), 64 << 20)
                    .await
                    .unwrap_or_default();
                match serde_json::from_slice::<Report>(&bytes) {
                    Ok(rep) => report = Some(crate::verify::print::sections(&rep)),
                    Err(e) => return error_page(&s, &id, ApiError::internal(e)),
                }
            }
            Ok(_) => {}
            Err(e) => return error_page(&s, &id, e),
        }
    }
    let running = progress.status == CheckStatus::Running;
    let page = CheckPage {
        layout: Layout::new(&s, format!("家庭核对 {} / Check", short(&vid)), &id),
        short_id: short(&vid),
        purpose: progress.purpose.name_zh(),
        case_ref: progress.case_ref.clone(),
        started: rfc3339_zh(&progress.started_at),
        status: status_code(progress.status),
        status_text: status_zh(progress.status),
        poll: running.then(|| format!("/v1/verifications/{vid}/progress")),
        script: assets::url("check.js"),
        departments: progress.departments.iter().map(dept_line).collect(),
        error_code: progress
            .error
            .as_ref()
            .map(|e| e.code.clone())
            .unwrap_or_default(),
        error: progress.error.map(|e| e.message),
        report,
        id: vid,
    };
    with_cookie(html(StatusCode::OK, page.render()), &s, &id)
}

// ==== my checks ====

pub struct CheckLine {
    id: String,
    short_id: String,
    started: String,
    purpose: &'static str,
    urgency: &'static str,
    case_ref: String,
    division: String,
    status: &'static str,
    status_text: &'static str,
    letter: String,
    letter_class: &'static str,
}

#[derive(Template)]
#[template(path = "console/checks.html")]
struct ChecksPage {
    layout: Layout,
    checks: Vec<CheckLine>,
    letters_open: usize,
    letters_overdue: usize,
    follow_ups_refused: Option<String>,
}

/// `GET /console/checks`: 我的核对 — the caller's stored checks (`GET /v1/verifications`: Cedar
/// `list_verifications`, no personal data), those still running or ended without a report (the
/// progress board), and each one's letter follow-up (`GET /v1/follow-ups?status=all`).
pub async fn my_checks(State(s): State<AppState>, Caller(id): Caller) -> Response {
    use crate::cases::api::VerificationListQuery;
    use crate::verify::report::FollowUpStatus;
    let list = match crate::cases::api::list_verifications(
        State(s.clone()),
        Caller(id.clone()),
        Ok(crate::api::Query(VerificationListQuery {
            cursor: None,
            limit: Some(100),
        })),
    )
    .await
    {
        Ok(Json(l)) => l,
        Err(e) => return error_page(&s, &id, e),
    };
    let (follow_ups, follow_ups_refused) = match crate::verify::api::list_follow_ups(
        State(s.clone()),
        Caller(id.clone()),
        crate::api::Query(crate::verify::api::FollowUpQuery {
            status: Some("all".into()),
        }),
    )
    .await
    {
        Ok(Json(f)) => (f.follow_ups, None),
        Err(e) => (Vec::new(), Some(e.message)),
    };
    let letter_of = |vid: &str| {
        follow_ups
            .iter()
            .find(|f| f.verification_id == vid)
            .map(|f| {
                let class = match f.follow_up.status {
                    FollowUpStatus::Overdue => "overdue",
                    FollowUpStatus::Pending => "soon",
                    _ => "",
                };
                (f.follow_up.text.clone(), class)
            })
            .unwrap_or_else(|| ("授权书在案 / letter on record".into(), ""))
    };
    let mut checks: Vec<CheckLine> = s
        .progress
        .of_requester(&id.uri)
        .into_iter()
        .filter(|p| p.status != CheckStatus::Done)
        .map(|p| CheckLine {
            short_id: short(&p.id),
            started: rfc3339_zh(&p.started_at),
            purpose: p.purpose.name_zh(),
            urgency: "—",
            case_ref: p.case_ref,
            division: "—".into(),
            status: status_code(p.status),
            status_text: status_zh(p.status),
            letter: "—".into(),
            letter_class: "",
            id: p.id,
        })
        .collect();
    checks.extend(list.verifications.into_iter().map(|v| {
        let (letter, letter_class) = letter_of(&v.id);
        CheckLine {
            short_id: short(&v.id),
            started: rfc3339_zh(&v.created_at),
            purpose: v.purpose.name_zh(),
            urgency: v.urgency.name_zh(),
            case_ref: v.case_ref,
            division: division_zh(&v.registered_division),
            status: status_code(CheckStatus::Done),
            status_text: status_zh(CheckStatus::Done),
            letter,
            letter_class,
            id: v.id,
        }
    }));
    let page = ChecksPage {
        layout: Layout::new(&s, "我的核对 / My checks", &id),
        checks,
        letters_open: follow_ups
            .iter()
            .filter(|f| {
                matches!(
                    f.follow_up.status,
                    FollowUpStatus::Pending | FollowUpStatus::Overdue
                )
            })
            .count(),
        letters_overdue: follow_ups
            .iter()
            .filter(|f| f.follow_up.status == FollowUpStatus::Overdue)
            .count(),
        follow_ups_refused,
    };
    with_cookie(html(StatusCode::OK, page.render()), &s, &id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_fields_name_the_form_row_at_fault() {
        // Rows 0 and 2 filled (row 1 left empty); rows 0 and 2 signed.
        let used = [0, 2];
        let signers = [0, 2];
        for (api, want) in [
            ("members[1].resident_id", "m2_resident_id"),
            ("household.members[1].name", "m2_name"),
            ("members[0].relation", "m0_relation"),
            ("members[1]", "m2_resident_id"),
            ("signed_by[1]", "m2_signed"),
            ("household.registered_division", "registered_division"),
            ("registered_division", "registered_division"),
            ("letter_sha256", "letter"),
            ("declared.household_monthly_income_fen", "declared_income"),
            ("valid_until", "valid_until"),
            ("case_ref", "case_ref"),
        ] {
            assert_eq!(form_field(api, &used, &signers), want, "{api}");
        }
        assert_eq!(
            field_zh("m2_resident_id").as_deref(),
            Some("第3行成员：公民身份号码无效（位数、出生日期或校验位不符）")
        );
        assert!(field_zh("authorization_id").is_none());
    }

    #[test]
    fn declared_income_is_read_in_yuan() {
        for (text, want) in [
            ("", Ok(None)),
            ("1234.56", Ok(Some(123_456))),
            ("¥1,234.5", Ok(Some(123_450))),
            ("0", Ok(Some(0))),
            ("-1", Err(())),
            ("1.234", Err(())),
            ("abc", Err(())),
            (".5", Err(())),
        ] {
            assert_eq!(yuan_to_fen(text), want, "{text}");
        }
    }

    #[test]
    fn elapsed_times_are_seconds() {
        assert_eq!(seconds(0), "0 毫秒");
        assert_eq!(seconds(35), "35 毫秒");
        assert_eq!(seconds(1234), "1.2 秒");
        assert_eq!(seconds(30_050), "30.0 秒");
    }
}
