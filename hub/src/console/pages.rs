//! The console's first pages: the caseworker's queue, the case page and the open-case form.
//!
//! Each page calls the API's own handler function for its data (see the module invariants in
//! [`super`]) and turns the typed answer into a view of display strings for its template.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use schemas::Identity;
use schemas::Urgency;
use schemas::cases::{Channel, Hardship};
use serde::Deserialize;
use time::OffsetDateTime;

use super::format::{division_zh, principal_of, rfc3339_zh, role_zh};
use super::{assets, csrf};
use crate::api::{ApiError, AppState, Path, Query};
use crate::cases::api::{CaseListQuery, CaseView};
use crate::cases::clocks::{Clock, ClockKind, ClockStatus};
use crate::cases::model::{CaseState, Move};
use crate::cases::slips_api::{SlipListQuery, SlipSummary};
use crate::cases::store::CaseOrder;
use crate::identity::Caller;

/// What every page shows at the top: who you are, and the stylesheet.
pub struct Layout {
    pub title: String,
    pub css: String,
    pub me_name: String,
    pub me_role: &'static str,
    pub me_division: String,
    pub me_principal: String,
    /// The pages the caller may open (each decided by Cedar).
    pub nav: Vec<super::roles::NavLink>,
}

impl Layout {
    pub(crate) fn new(s: &AppState, title: impl Into<String>, who: &Identity) -> Layout {
        Layout {
            nav: super::roles::nav(s, who),
            title: title.into(),
            css: assets::url("console.css"),
            me_name: who.display_name.clone(),
            me_role: role_zh(who.role),
            me_division: division_zh(who.division.as_str()),
            me_principal: who.principal.clone(),
        }
    }
}

pub(crate) fn html(status: StatusCode, page: Result<String, askama::Error>) -> Response {
    match page {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// The page for an error of the API's handlers: 403 says why in Chinese (the policy's reason).
#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    layout: Layout,
    heading: &'static str,
    message: String,
    code: &'static str,
}

pub(crate) fn error_page(s: &AppState, who: &Identity, e: ApiError) -> Response {
    let heading = match e.status {
        StatusCode::FORBIDDEN => "无权访问 / Not permitted",
        StatusCode::NOT_FOUND => "未找到 / Not found",
        s if s.is_client_error() => "请求有误 / Bad request",
        _ => "系统错误 / Internal error",
    };
    let page = ErrorPage {
        layout: Layout::new(s, heading, who),
        heading,
        message: e.message,
        code: e.code,
    };
    html(e.status, page.render())
}

/// `GET /console` → `/console/`.
pub async fn to_console() -> Redirect {
    Redirect::permanent("/console/")
}

// ==== the queue ====

/// Cases on one page of the queue.
const QUEUE_PAGE: u32 = 100;

/// `GET /console/?state=…&tier=…&sort=…`: the filters as typed (empty means all) and the order.
#[derive(Debug, Default, Deserialize)]
pub struct QueueFilter {
    #[serde(default)]
    state: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    sort: String,
    /// The page to show: `next_cursor` of the previous one (in the same order).
    #[serde(default)]
    cursor: String,
}

/// The queue's orders (`?sort=`), by query string so that no script is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueSort {
    /// 按时限: overdue first, then under a quarter of the time left, then the nearest deadline
    /// (the default).
    Clock,
    /// 按登记时间: the longest waiting first.
    Opened,
    /// 按阶段: in the order of the stages, the most pressing first within one.
    State,
}

impl QueueSort {
    const ALL: [QueueSort; 3] = [QueueSort::Clock, QueueSort::Opened, QueueSort::State];

    fn code(self) -> &'static str {
        match self {
            QueueSort::Clock => "clock",
            QueueSort::Opened => "opened",
            QueueSort::State => "state",
        }
    }

    /// The order the store lists cases in for this sort, so that a page holds the first cases
    /// of the whole queue in that order (the page is then sorted finely by [`sort_cases`]).
    fn order(self) -> CaseOrder {
        match self {
            QueueSort::Clock | QueueSort::State => CaseOrder::Due,
            QueueSort::Opened => CaseOrder::Oldest,
        }
    }

    fn parse(code: &str) -> QueueSort {
        QueueSort::ALL
            .into_iter()
            .find(|s| s.code() == code)
            .unwrap_or(QueueSort::Clock)
    }
}

/// The sort links of the queue's column heads, keeping the filters.
pub struct SortLinks {
    current: &'static str,
    clock: String,
    opened: String,
    state: String,
}

/// The queue's address in order `by`, keeping the filters.
fn queue_href(by: QueueSort, state: Option<CaseState>, tier: Option<Urgency>) -> String {
    let mut q = format!("/console/?sort={}", by.code());
    if let Some(st) = state {
        q.push_str(&format!("&state={}", st.code()));
    }
    if let Some(t) = tier {
        q.push_str(&format!("&tier={}", t.code()));
    }
    q
}

fn sort_links(current: QueueSort, state: Option<CaseState>, tier: Option<Urgency>) -> SortLinks {
    let href = |by: QueueSort| queue_href(by, state, tier);
    SortLinks {
        current: current.code(),
        clock: href(QueueSort::Clock),
        opened: href(QueueSort::Opened),
        state: href(QueueSort::State),
    }
}

/// Order the queue's lines by `by`.
fn sort_cases(cases: &mut [CaseLine], by: QueueSort) {
    let rank = |c: &CaseLine| match c.clock {
        "overdue" => 0,
        "soon" => 1,
        _ => 2,
    };
    // No deadline sorts after every deadline.
    let due = |c: &CaseLine| c.due_ms.unwrap_or(i64::MAX);
    let pressing = |a: &CaseLine, b: &CaseLine| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| due(a).cmp(&due(b)))
            .then_with(|| a.created_ms.cmp(&b.created_ms))
    };
    match by {
        QueueSort::Clock => cases.sort_by(pressing),
        QueueSort::Opened => {
            cases.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then_with(|| pressing(a, b)))
        }
        QueueSort::State => cases.sort_by(|a, b| {
            a.state_order
                .cmp(&b.state_order)
                .then_with(|| pressing(a, b))
        }),
    }
}

pub struct Choice {
    pub(super) code: &'static str,
    pub(super) name: &'static str,
    pub(super) selected: bool,
}

pub struct CaseLine {
    id: String,
    short_id: String,
    state: &'static str,
    tier: &'static str,
    tier_class: &'static str,
    hardship: &'static str,
    channel: &'static str,
    township: String,
    created: String,
    due: String,
    /// `overdue`, `soon` or empty.
    clock: &'static str,
    clock_text: &'static str,
    /// For sorting: the nearest deadline and the filing (ms), the stage's place in the flow.
    due_ms: Option<i64>,
    created_ms: i64,
    state_order: CaseState,
}

pub struct SlipLine {
    case_id: String,
    short_case: String,
    kind: &'static str,
    to: String,
    state: &'static str,
    issued: String,
    due: String,
    clock: &'static str,
    clock_text: &'static str,
}

#[derive(Template)]
#[template(path = "console/queue.html")]
struct QueuePage {
    layout: Layout,
    states: Vec<Choice>,
    tiers: Vec<Choice>,
    cases: Vec<CaseLine>,
    sort: SortLinks,
    /// 下一页 / 第一页 links when the queue has more cases than one page.
    next_page: Option<String>,
    first_page: Option<String>,
    slips: Vec<SlipLine>,
    slips_refused: Option<String>,
}

pub(crate) fn short(id: &str) -> String {
    id.chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

pub(crate) fn parse_ms(rfc3339: &str) -> Option<i64> {
    OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Red when overdue, amber when under a quarter of the time from `start` to `due` is left.
fn clock_class(
    overdue: bool,
    start: Option<i64>,
    due: Option<i64>,
    now: i64,
) -> (&'static str, &'static str) {
    if overdue {
        return ("overdue", "已超期");
    }
    match (start, due) {
        (Some(s), Some(d)) if d > s && (d - now) * 4 < (d - s) => ("soon", "即将到期"),
        (_, Some(_)) => ("", "计时中"),
        _ => ("", "—"),
    }
}

fn tier_class(t: Urgency) -> &'static str {
    match t {
        Urgency::Emergency => "tier-emergency",
        Urgency::Urgent => "tier-urgent",
        Urgency::Normal => "tier-normal",
    }
}

fn slip_line(sl: &SlipSummary, now: i64) -> SlipLine {
    let (clock, clock_text) = if sl.answered_at.is_some() {
        ("", "已反馈")
    } else {
        clock_class(
            sl.overdue,
            parse_ms(&sl.issued_at),
            parse_ms(&sl.due_at),
            now,
        )
    };
    SlipLine {
        case_id: sl.case_id.clone(),
        short_case: short(&sl.case_id),
        kind: sl.kind.name_zh(),
        to: match (&sl.to_department, &sl.to_township) {
            (Some(d), _) => d.name_zh().to_owned(),
            (None, Some(t)) => division_zh(t),
            (None, None) => "—".to_owned(),
        },
        state: sl.state.name_zh(),
        issued: rfc3339_zh(&sl.issued_at),
        due: rfc3339_zh(&sl.due_at),
        clock,
        clock_text,
    }
}

/// `GET /console/` and `/console/queue`: 我的待办 — the cases and referral slips of my division,
/// through `GET /v1/cases` and `GET /v1/slips` (lists carry no personal data, so nothing is
/// logged, as through the API).
pub async fn queue(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<axum::extract::Query<QueueFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let f = q.map(|q| q.0).unwrap_or_default();
    let state = CaseState::ALL.iter().copied().find(|c| c.code() == f.state);
    let tier = [Urgency::Emergency, Urgency::Urgent, Urgency::Normal]
        .into_iter()
        .find(|t| t.code() == f.tier);
    let by = QueueSort::parse(&f.sort);
    let query = CaseListQuery {
        state,
        tier,
        township: None,
        order: Some(by.order()),
        cursor: (!f.cursor.is_empty()).then(|| f.cursor.clone()),
        limit: Some(QUEUE_PAGE),
        overdue: None,
    };
    let list =
        match crate::cases::api::list_cases(State(s.clone()), Caller(id.clone()), Ok(Query(query)))
            .await
        {
            Ok(axum::Json(l)) => l,
            Err(e) => return error_page(&s, &id, e),
        };
    let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut cases: Vec<CaseLine> = list
        .cases
        .iter()
        .map(|c| {
            let due = c.next_due_at.as_deref().and_then(parse_ms);
            let created = parse_ms(&c.summary.created_at);
            let (clock, clock_text) = clock_class(c.overdue, created, due, now);
            CaseLine {
                id: c.summary.id.clone(),
                short_id: short(&c.summary.id),
                state: c.summary.state.name_zh(),
                tier: c.summary.tier.name_zh(),
                tier_class: tier_class(c.summary.tier),
                hardship: c.summary.hardship.name_zh(),
                channel: c.summary.channel.name_zh(),
                township: division_zh(&c.summary.township),
                created: rfc3339_zh(&c.summary.created_at),
                due: c
                    .next_due_at
                    .as_deref()
                    .map(rfc3339_zh)
                    .unwrap_or_else(|| "—".into()),
                clock,
                clock_text,
                due_ms: due,
                created_ms: created.unwrap_or_default(),
                state_order: c.summary.state,
            }
        })
        .collect();
    sort_cases(&mut cases, by);
    // Cursors are digits, '_', '-' and hex: nothing to escape in a query string.
    let next_page = list
        .next_cursor
        .as_deref()
        .map(|c| format!("{}&cursor={c}", queue_href(by, state, tier)));
    let first_page = (!f.cursor.is_empty()).then(|| queue_href(by, state, tier));
    let (slips, slips_refused) = match crate::cases::slips_api::list_slips(
        State(s.clone()),
        Caller(id.clone()),
        Ok(Query(SlipListQuery {
            state: None,
            overdue: None,
            cursor: None,
            limit: Some(100),
        })),
    )
    .await
    {
        Ok(axum::Json(l)) => (l.slips.iter().map(|sl| slip_line(sl, now)).collect(), None),
        Err(e) => (Vec::new(), Some(e.message)),
    };
    let states = CaseState::ALL
        .iter()
        .map(|c| Choice {
            code: c.code(),
            name: c.name_zh(),
            selected: Some(*c) == state,
        })
        .collect();
    let tiers = [Urgency::Emergency, Urgency::Urgent, Urgency::Normal]
        .into_iter()
        .map(|t| Choice {
            code: t.code(),
            name: t.name_zh(),
            selected: Some(t) == tier,
        })
        .collect();
    let page = QueuePage {
        layout: Layout::new(&s, "我的待办 / My queue", &id),
        states,
        tiers,
        cases,
        sort: sort_links(by, state, tier),
        next_page,
        first_page,
        slips,
        slips_refused,
    };
    with_cookie(html(StatusCode::OK, page.render()), &s, &id)
}

/// Every page sets the form token's cookie, so that the first form posted already has it.
pub(crate) fn with_cookie(mut res: Response, s: &AppState, who: &Identity) -> Response {
    if let Ok(v) = HeaderValue::from_str(&csrf::cookie(&csrf::token(&s.keys, who))) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

// ==== the case page ====

pub struct ClockLine {
    kind: &'static str,
    due: String,
    status: &'static str,
    class: &'static str,
    met: String,
}

pub struct EventLine {
    at: String,
    action: &'static str,
    from: &'static str,
    to: &'static str,
    actor: String,
    township: String,
    details: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/case.html")]
struct CasePage {
    layout: Layout,
    id: String,
    state: &'static str,
    tier: &'static str,
    tier_class: &'static str,
    hardship: &'static str,
    channel: &'static str,
    township: String,
    village: String,
    outcome: &'static str,
    name: String,
    phone: String,
    resident_id: String,
    description: String,
    filed_by: String,
    created: String,
    updated: String,
    allowed: String,
    clocks: Vec<ClockLine>,
    events: Vec<EventLine>,
    slips: Vec<SlipLine>,
    actions: super::casework::Actions,
}

fn clock_kind_zh(k: ClockKind) -> &'static str {
    match k {
        ClockKind::FirstHelp => "先行救助",
        ClockKind::Materials => "补充完善材料",
        ClockKind::InitialOpinion => "调查初审意见",
        ClockKind::Decision => "审批决定",
    }
}

fn clock_line(c: &Clock) -> ClockLine {
    let (status, class) = match c.status {
        ClockStatus::Running => ("计时中", ""),
        ClockStatus::DueSoon => ("即将到期", "soon"),
        ClockStatus::Met => ("已完成", "met"),
        ClockStatus::Overdue => ("已超期", "overdue"),
    };
    ClockLine {
        kind: clock_kind_zh(c.kind),
        due: rfc3339_zh(&c.due_at),
        status,
        class,
        met: c.met_at.as_deref().map(rfc3339_zh).unwrap_or_default(),
    }
}

fn move_zh(code: &str) -> &'static str {
    match Move::ALL.iter().find(|m| m.code() == code) {
        Some(Move::Accept) => "受理",
        Some(Move::Transfer) => "转办乡镇",
        Some(Move::FirstHelp) => "先行救助",
        Some(Move::Investigate) => "入户调查、初审",
        Some(Move::HandToCounty) => "转交县级审批",
        Some(Move::Decide) => "审批决定",
        Some(Move::Close) => "办结",
        None if code == "open" => "登记申请",
        None => "其他",
    }
}

/// A resident ID as the page shows it: region and last four digits only.
pub(super) fn masked(rid: &str) -> String {
    let n = rid.chars().count();
    if n < 10 {
        return "*".repeat(n);
    }
    let head: String = rid.chars().take(6).collect();
    let tail: String = rid.chars().skip(n - 4).collect();
    format!("{head}********{tail}")
}

/// A move's details (records, reasons, amounts) as label/value pairs in Chinese: nested records
/// flattened (`home_visit.findings` → 调查情况), codes named, times and money the Chinese way.
fn details(v: &Option<serde_json::Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(serde_json::Value::Object(m)) = v {
        flatten("", m, &mut out);
    }
    out
}

fn flatten(
    prefix: &str,
    m: &serde_json::Map<String, serde_json::Value>,
    out: &mut Vec<(String, String)>,
) {
    use serde_json::Value;
    for (k, v) in m {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let text = match v {
            Value::Object(inner) => {
                flatten(&path, inner, out);
                continue;
            }
            Value::Array(a) if a.is_empty() => continue,
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("、"),
            Value::Number(n) if k.ends_with("_fen") => n
                .as_i64()
                .map(super::format::money_zh)
                .unwrap_or_else(|| n.to_string()),
            Value::String(s) => super::casework::detail_value(k, s),
            other => other.to_string(),
        };
        out.push((super::casework::detail_label(&path), text));
    }
}

fn case_view(layout: Layout, v: CaseView, actions: super::casework::Actions) -> CasePage {
    let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let sm = &v.summary;
    CasePage {
        layout,
        id: sm.id.clone(),
        state: sm.state.name_zh(),
        tier: sm.tier.name_zh(),
        tier_class: tier_class(sm.tier),
        hardship: sm.hardship.name_zh(),
        channel: sm.channel.name_zh(),
        township: division_zh(&sm.township),
        village: sm.village.clone().unwrap_or_else(|| "—".into()),
        outcome: match sm.outcome.as_deref() {
            Some("approved") => "批准",
            Some("refused") => "不予批准",
            Some(_) => "已决定",
            None => "尚未决定",
        },
        name: v.applicant.name.clone(),
        phone: v.applicant.phone.clone(),
        resident_id: masked(&v.applicant.resident_id),
        description: v.description.clone(),
        filed_by: principal_of(&v.filed_by).to_owned(),
        created: rfc3339_zh(&sm.created_at),
        updated: rfc3339_zh(&sm.updated_at),
        allowed: if sm.allowed.is_empty() {
            "无".into()
        } else {
            sm.allowed
                .iter()
                .map(|m| move_zh(m.code()))
                .collect::<Vec<_>>()
                .join("、")
        },
        clocks: v.clocks.iter().map(clock_line).collect(),
        events: v
            .events
            .iter()
            .map(|e| EventLine {
                at: rfc3339_zh(&e.at),
                action: move_zh(&e.action),
                from: e.from_state.map(|s| s.name_zh()).unwrap_or(""),
                to: e.to_state.name_zh(),
                actor: principal_of(&e.actor).to_owned(),
                township: division_zh(&e.township),
                details: details(&e.details),
            })
            .collect(),
        slips: v.slips.iter().map(|c| slip_line(&c.summary, now)).collect(),
        actions,
    }
}

/// `GET /console/cases/{id}`: the case through `GET /v1/cases/{id}`'s handler — the same Cedar
/// decision, the same `case_read` access-log entry (allowed or refused) — with the forms of the
/// moves the caller may make ([`super::casework`]).
pub async fn case_page(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(case_id): Path<String>,
) -> Response {
    render_case(&s, &id, headers, case_id, None).await
}

/// The case page, with a refused form's message next to that form (its status the refusal's).
pub(super) async fn render_case(
    s: &AppState,
    id: &Identity,
    headers: HeaderMap,
    case_id: String,
    failed: Option<super::casework::Failed>,
) -> Response {
    match crate::cases::api::read_case(
        State(s.clone()),
        Caller(id.clone().into()),
        headers,
        Path(case_id),
    )
    .await
    {
        Ok(axum::Json(view)) => {
            let status = failed.as_ref().map_or(StatusCode::OK, |f| f.status);
            let title = format!("救助案件 {} / Case", short(&view.summary.id));
            let actions = super::casework::actions(s, id, &view, failed);
            let page = case_view(Layout::new(s, title, id), view, actions);
            with_cookie(html(status, page.render()), s, id)
        }
        Err(e) => error_page(s, id, e),
    }
}

// ==== the open-case form ====

/// The form's fields as typed (kept on a refusal so nothing is lost).
#[derive(Debug, Default, Deserialize)]
pub struct NewCaseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    resident_id: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    township: String,
    #[serde(default)]
    village: String,
    #[serde(default)]
    hardship: String,
    #[serde(default)]
    description: String,
}

#[derive(Template)]
#[template(path = "console/new_case.html")]
struct NewCasePage {
    layout: Layout,
    csrf: String,
    error: Option<String>,
    error_field: String,
    channels: Vec<Choice>,
    tiers: Vec<Choice>,
    hardships: Vec<Choice>,
    f: NewCaseForm,
}

fn new_case_page(
    s: &AppState,
    who: &Identity,
    f: NewCaseForm,
    error: Option<ApiError>,
) -> Response {
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let choose = |code: &'static str, name: &'static str, current: &str| Choice {
        code,
        name,
        selected: code == current,
    };
    let page = NewCasePage {
        layout: Layout::new(s, "登记救助申请 / Open a case", who),
        csrf: csrf::token(&s.keys, who),
        error_field: error
            .as_ref()
            .and_then(|e| e.field.clone())
            .unwrap_or_default(),
        error: error.map(|e| e.message),
        channels: Channel::ALL
            .iter()
            .map(|c| choose(c.code(), c.name_zh(), &f.channel))
            .collect(),
        tiers: [Urgency::Emergency, Urgency::Urgent, Urgency::Normal]
            .into_iter()
            .map(|t| choose(t.code(), t.name_zh(), &f.tier))
            .collect(),
        hardships: Hardship::ALL
            .iter()
            .map(|h| choose(h.code(), h.name_zh(), &f.hardship))
            .collect(),
        f,
    };
    with_cookie(html(status, page.render()), s, who)
}

/// `GET /console/cases/new`: the form, prefilled with the caller's township.
pub async fn new_case(State(s): State<AppState>, Caller(id): Caller) -> Response {
    let f = NewCaseForm {
        channel: Channel::WalkIn.code().into(),
        tier: Urgency::Normal.code().into(),
        township: if id.division.as_str().len() == 9 {
            id.division.as_str().to_owned()
        } else {
            String::new()
        },
        ..Default::default()
    };
    new_case_page(&s, &id, f, None)
}

/// `POST /console/cases`: CSRF checks, then `POST /v1/cases`'s handler with the form as its JSON
/// body (the same validation, Cedar decision and `case_opened` entry); 303 to the new case.
pub async fn open_case(
    State(s): State<AppState>,
    Caller(id): Caller,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<NewCaseForm>, FormRejection>,
) -> Response {
    // The CSRF checks come first: a post that is not our form is refused before it is read.
    let field = form.as_ref().map(|f| f.0.csrf.as_str()).unwrap_or("");
    let expected = csrf::token(&s.keys, &id);
    let host = csrf::host_of(&headers, &uri);
    if let Err(e) = csrf::check(&headers, host.as_deref(), &expected, field) {
        return error_page(
            &s,
            &id,
            ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", e.text()),
        );
    }
    let Ok(Form(f)) = form else {
        return error_page(
            &s,
            &id,
            ApiError::bad_request(
                "validation_failed",
                "body",
                "表单无法读取 / the form could not be read",
            ),
        );
    };
    let mut body = serde_json::json!({
        "channel": f.channel.trim(),
        "tier": f.tier.trim(),
        "applicant": {
            "resident_id": f.resident_id.trim(),
            "name": f.name.trim(),
            "phone": f.phone.trim(),
        },
        "township": f.township.trim(),
        "hardship": f.hardship.trim(),
        "description": f.description.trim(),
    });
    if !f.village.trim().is_empty() {
        body["village"] = serde_json::Value::String(f.village.trim().to_owned());
    }
    // The API handler reads only the request id from the headers here (no Idempotency-Key: a
    // browser form posts once per click, and a double click opens the form's case only once
    // because the redirect replaces the page).
    let mut api_headers = HeaderMap::new();
    if let Some(v) = headers.get("x-request-id") {
        api_headers.insert("x-request-id", v.clone());
    }
    let res = crate::cases::api::open_case(
        State(s.clone()),
        Caller(id.clone()),
        api_headers,
        Ok(axum::Json(body)),
    )
    .await;
    match res {
        Ok(r) => {
            let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let case_id = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            match case_id {
                Some(cid) => Redirect::to(&format!("/console/cases/{cid}")).into_response(),
                None => error_page(
                    &s,
                    &id,
                    ApiError::internal("open_case answered without an id"),
                ),
            }
        }
        Err(e) if e.status == StatusCode::FORBIDDEN => error_page(&s, &id, e),
        Err(e) if e.status.is_client_error() => new_case_page(&s, &id, f, Some(e)),
        Err(e) => error_page(&s, &id, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(
        name: &str,
        clock: &'static str,
        due: Option<i64>,
        created: i64,
        st: CaseState,
    ) -> CaseLine {
        CaseLine {
            id: name.into(),
            short_id: name.into(),
            state: st.name_zh(),
            tier: "",
            tier_class: "",
            hardship: "",
            channel: "",
            township: String::new(),
            created: String::new(),
            due: String::new(),
            clock,
            clock_text: "",
            due_ms: due,
            created_ms: created,
            state_order: st,
        }
    }

    fn order(by: QueueSort) -> Vec<String> {
        let mut cases = vec![
            line("late-no-clock", "", None, 1, CaseState::Decided),
            line("running", "", Some(5_000), 2, CaseState::Received),
            line("soon", "soon", Some(9_000), 3, CaseState::Helped),
            line("overdue", "overdue", Some(8_000), 4, CaseState::Accepted),
            line("running-earlier", "", Some(4_000), 5, CaseState::Received),
        ];
        sort_cases(&mut cases, by);
        cases.into_iter().map(|c| c.id).collect()
    }

    #[test]
    fn the_queue_sorts_by_clock_opened_or_state() {
        assert_eq!(
            order(QueueSort::Clock),
            [
                "overdue",
                "soon",
                "running-earlier",
                "running",
                "late-no-clock"
            ]
        );
        assert_eq!(
            order(QueueSort::Opened),
            [
                "late-no-clock",
                "running",
                "soon",
                "overdue",
                "running-earlier"
            ]
        );
        assert_eq!(
            order(QueueSort::State),
            [
                "running-earlier",
                "running",
                "overdue",
                "soon",
                "late-no-clock"
            ]
        );
        assert_eq!(QueueSort::parse("nonsense"), QueueSort::Clock);
    }

    #[test]
    fn sort_links_keep_the_filters() {
        let l = sort_links(
            QueueSort::Opened,
            Some(CaseState::Helped),
            Some(Urgency::Emergency),
        );
        assert_eq!(l.current, "opened");
        assert_eq!(l.state, "/console/?sort=state&state=helped&tier=emergency");
        assert_eq!(
            sort_links(QueueSort::Clock, None, None).clock,
            "/console/?sort=clock"
        );
    }

    #[test]
    fn a_clock_is_red_when_overdue_and_amber_in_its_last_quarter() {
        assert_eq!(clock_class(true, Some(0), Some(100), 50).0, "overdue");
        assert_eq!(clock_class(false, Some(0), Some(100), 80).0, "soon");
        assert_eq!(clock_class(false, Some(0), Some(100), 70).0, "");
        assert_eq!(clock_class(false, None, None, 70).1, "—");
    }
}
