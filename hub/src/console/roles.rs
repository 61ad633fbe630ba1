//! The console's pages for the other roles (issue 13 items 3–6): the county supervisor's
//! timeliness page, the auditor's log search and verified entries, the department operator's
//! referral slips and connection figures, and the admin's status page.
//!
//! As everywhere in the console (see [`super`]), a page calls the API's own handler functions or
//! the very Cedar decision their routes make; nothing here compares roles or divisions:
//! - 督导 `GET /console/supervision`: `GET /v1/supervision/timeliness`, `GET /v1/escalations`,
//!   `GET /v1/supervision/slips` and `GET /v1/cases?overdue=true` (no personal data, not logged).
//! - 审计 `GET /console/audit`: `read_log` (as `GET /log/checkpoint`); `POST /console/audit`:
//!   `POST /v1/log/search` (one `log_searched` entry per search, the resident ID pseudonymised by
//!   the hub and travelling in the POST body only); `GET /console/audit/entries/{index}`: decided
//!   like an entry bundle (`read_log`, a denial logged) and recorded as `log_searched`, then its
//!   inclusion proof verified here against the latest signed checkpoint;
//!   `POST /console/audit/subject-report`: `POST /v1/log/subject-report` (`format=html`).
//! - 部门 `GET /console/slips`: `GET /v1/slips`; `GET /console/slips/{id}`: `GET /v1/slips/{id}`
//!   (logged `slip_read`); `POST /console/slips/{id}/accept|feedback`: the API's moves (logged
//!   `slip_moved`). The connection figures of the caller's own department (if it is one) are
//!   aggregates of the stored verification reports and the live circuit breaker (no personal
//!   data); the unmatched events through `GET /v1/events/unmatched` (civil affairs only, logged).
//! - 管理 `GET /console/admin`: `administer` (as `GET /v1/admin/clients`).

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use policies::{Action, RequestCtx, ResourceCtx};
use schemas::cases::SlipResult;
use schemas::{Department, Identity};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::csrf;
use super::format::{datetime_zh, division_zh, money_zh, principal_of, rfc3339_zh, role_zh};
use super::pages::{Layout, error_page, html, short, with_cookie};
use crate::api::{ApiError, AppState, Path, Query};
use crate::cases::clocks::ClockKind;
use crate::cases::escalation_api::{EscalatedClock, EscalationQuery, EscalationState};
use crate::cases::supervision::{StageFigures, Timeliness, TimelinessQuery};
use crate::cases::supervision_slips::{SlipSupervision, SlipSupervisionQuery};
use crate::identity::Caller;
use crate::store::on_db;

// ==== navigation ====

/// A link of the top navigation.
pub struct NavLink {
    pub href: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

/// The links the caller may open, each decided by Cedar as the page's first decision decides.
pub fn nav(s: &AppState, who: &Identity) -> Vec<NavLink> {
    let may = |action: Action, r: &ResourceCtx| {
        s.authz
            .decide(who, action, r, &RequestCtx::default())
            .allowed
    };
    let own = ResourceCtx {
        region: Some(who.division.clone()),
        ..Default::default()
    };
    let mut out = Vec::new();
    let list_cases = ResourceCtx {
        region: Some(who.division.clone()),
        requester: Some(who.uri.clone()),
        ..Default::default()
    };
    if may(Action::ListCases, &list_cases) {
        out.push(NavLink {
            href: "/console/",
            zh: "我的待办",
            en: "Queue",
        });
        out.push(NavLink {
            href: "/console/cases/new",
            zh: "登记申请",
            en: "Open a case",
        });
    }
    if may(Action::ListVerifications, &list_cases) {
        out.push(NavLink {
            href: "/console/checks",
            zh: "我的核对",
            en: "Checks",
        });
    }
    if may(Action::Supervise, &own) {
        out.push(NavLink {
            href: "/console/supervision",
            zh: "督导",
            en: "Supervision",
        });
    }
    if may(
        Action::ListSlips,
        &crate::cases::slips_api::addressee(who).0,
    ) {
        out.push(NavLink {
            href: "/console/slips",
            zh: "转办单办理",
            en: "Slips",
        });
    }
    if may(Action::ReadLog, &ResourceCtx::default()) {
        out.push(NavLink {
            href: "/console/audit",
            zh: "访问日志审计",
            en: "Audit",
        });
    }
    if may(Action::Administer, &ResourceCtx::default()) {
        out.push(NavLink {
            href: "/console/admin",
            zh: "系统管理",
            en: "Admin",
        });
    }
    out
}

/// A JSON answer of an API handler (a `Response`) read back into its type.
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(r: Response) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20)
        .await
        .map_err(ApiError::internal)?;
    serde_json::from_slice(&bytes).map_err(ApiError::internal)
}

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn ms_zh(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(datetime_zh)
        .unwrap_or_else(|_| "—".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.0}%", x * 100.0))
        .unwrap_or_else(|| "—".into())
}

fn hours(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1} 小时"))
        .unwrap_or_else(|| "—".into())
}

fn stage_zh(k: ClockKind) -> &'static str {
    match k {
        ClockKind::FirstHelp => "先行救助",
        ClockKind::Materials => "补充完善材料",
        ClockKind::InitialOpinion => "调查初审意见",
        ClockKind::Decision => "审批决定",
    }
}

/// The chart's colour of a stage (presentation attributes: the CSP allows no inline style).
fn stage_colour(k: ClockKind) -> &'static str {
    match k {
        ClockKind::FirstHelp => "#c62828",
        ClockKind::Materials => "#e0a100",
        ClockKind::InitialOpinion => "#1565c0",
        ClockKind::Decision => "#2e7d32",
    }
}

// ==== 督导 (supervisor) ====

/// `GET /console/supervision?from=…&to=…` (YYYY-MM-DD, Beijing dates; the API's defaults when empty).
#[derive(Debug, Default, Deserialize)]
pub struct SupervisionFilter {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

pub struct StageRow {
    township: String,
    stage: &'static str,
    clocks: u64,
    met: u64,
    met_within_limit: u64,
    open: u64,
    open_overdue: u64,
    share: String,
    median: String,
    p90: String,
    /// `overdue` when open clocks are overdue.
    class: &'static str,
}

pub struct Bar {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
    fill: &'static str,
    label: String,
    title: String,
}

pub struct AxisLabel {
    x: u32,
    y: u32,
    text: String,
}

pub struct Legend {
    x: u32,
    fill: &'static str,
    text: &'static str,
}

pub struct Chart {
    width: u32,
    height: u32,
    bars: Vec<Bar>,
    groups: Vec<AxisLabel>,
    ticks: Vec<AxisLabel>,
    legend: Vec<Legend>,
    base_y: u32,
}

pub struct EscalationLine {
    case_id: String,
    short_case: String,
    what: String,
    tier: &'static str,
    township: String,
    due: String,
    escalated: String,
}

pub struct OverdueSlipLine {
    case_id: String,
    short_case: String,
    kind: String,
    to: String,
    township: String,
    due: String,
    late: String,
}

pub struct OverdueCaseLine {
    id: String,
    short_id: String,
    tier: &'static str,
    state: &'static str,
    township: String,
    due: String,
}

#[derive(Template)]
#[template(path = "console/supervision.html")]
struct SupervisionPage {
    layout: Layout,
    division: String,
    from: String,
    to: String,
    computed: String,
    cases: u64,
    rows: Vec<StageRow>,
    totals: Vec<StageRow>,
    chart: Chart,
    escalations: Vec<EscalationLine>,
    overdue_slips: Vec<OverdueSlipLine>,
    overdue_cases: Vec<OverdueCaseLine>,
    csv_timeliness: String,
    csv_slips: String,
}

fn stage_row(f: &StageFigures) -> StageRow {
    StageRow {
        township: f
            .township_name
            .clone()
            .or_else(|| f.township.as_deref().map(division_zh))
            .unwrap_or_else(|| "合计 / total".into()),
        stage: stage_zh(f.stage),
        clocks: f.clocks,
        met: f.met,
        met_within_limit: f.met_within_limit,
        open: f.open,
        open_overdue: f.open_overdue,
        share: pct(f.share_within_limit),
        median: hours(f.median_hours),
        p90: hours(f.p90_hours),
        class: if f.open_overdue > 0 { "overdue" } else { "" },
    }
}

/// Grouped bars: one group per township, one bar per stage, the height its share within the limit.
fn chart(t: &Timeliness) -> Chart {
    let stages = [
        ClockKind::FirstHelp,
        ClockKind::Materials,
        ClockKind::InitialOpinion,
        ClockKind::Decision,
    ];
    let mut townships: Vec<(String, String)> = Vec::new();
    for f in &t.townships {
        if let Some(code) = &f.township
            && !townships.iter().any(|(c, _)| c == code)
        {
            let name = f.township_name.clone().unwrap_or_else(|| division_zh(code));
            townships.push((code.clone(), name));
        }
    }
    let (left, top, plot_h, bar_w, gap) = (40u32, 30u32, 160u32, 14u32, 24u32);
    let group_w = bar_w * stages.len() as u32 + gap;
    let width = (left + group_w * townships.len().max(1) as u32 + 20).max(480);
    let base_y = top + plot_h;
    let mut bars = Vec::new();
    let mut groups = Vec::new();
    for (gi, (code, name)) in townships.iter().enumerate() {
        let gx = left + gap / 2 + gi as u32 * group_w;
        for (si, stage) in stages.iter().enumerate() {
            let f = t
                .townships
                .iter()
                .find(|f| f.township.as_deref() == Some(code.as_str()) && f.stage == *stage);
            let share = f.and_then(|f| f.share_within_limit);
            let h = share
                .map(|v| (v.clamp(0.0, 1.0) * f64::from(plot_h)).round() as u32)
                .unwrap_or(0);
            bars.push(Bar {
                x: gx + si as u32 * bar_w,
                y: base_y - h,
                w: bar_w - 2,
                h,
                fill: stage_colour(*stage),
                label: share
                    .map(|v| format!("{:.0}", v * 100.0))
                    .unwrap_or_default(),
                title: format!("{name} {} {}", stage_zh(*stage), pct(share)),
            });
        }
        groups.push(AxisLabel {
            x: gx + bar_w * stages.len() as u32 / 2,
            y: base_y + 16,
            text: name.clone(),
        });
    }
    let ticks = [0u32, 50, 100]
        .iter()
        .map(|p| AxisLabel {
            x: left - 6,
            y: base_y - plot_h * p / 100 + 4,
            text: format!("{p}%"),
        })
        .collect();
    let legend = stages
        .iter()
        .enumerate()
        .map(|(i, s)| Legend {
            x: left + i as u32 * 120,
            fill: stage_colour(*s),
            text: stage_zh(*s),
        })
        .collect();
    Chart {
        width,
        height: base_y + 30,
        bars,
        groups,
        ticks,
        legend,
        base_y,
    }
}

fn clock_what(c: EscalatedClock) -> &'static str {
    match c {
        EscalatedClock::FirstHelp => "先行救助超期",
        EscalatedClock::Materials => "补充材料超期",
        EscalatedClock::InitialOpinion => "调查初审超期",
        EscalatedClock::Decision => "审批决定超期",
        EscalatedClock::Slip => "转办单超期未反馈",
    }
}

pub(super) fn opt(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// `GET /console/supervision`: 督导 — the county's overdue and escalated items and timeliness per
/// township and stage (table, SVG chart, CSV links).
pub async fn supervision(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<axum::extract::Query<SupervisionFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let f = q.map(|q| q.0).unwrap_or_default();
    let r = crate::cases::supervision::timeliness(
        State(s.clone()),
        Caller(id.clone()),
        Ok(Query(TimelinessQuery {
            division: None,
            from: opt(&f.from),
            to: opt(&f.to),
            format: None,
        })),
    )
    .await;
    let t: Timeliness = match r {
        Ok(r) => match read_json(r).await {
            Ok(t) => t,
            Err(e) => return error_page(&s, &id, e),
        },
        Err(e) => return error_page(&s, &id, e),
    };
    let escalations = match crate::cases::escalation_api::list_escalations(
        State(s.clone()),
        Caller(id.clone()),
        Ok(Query(EscalationQuery {
            state: Some(EscalationState::Open),
            township: None,
            cursor: None,
            limit: Some(100),
        })),
    )
    .await
    {
        Ok(axum::Json(l)) => l.escalations,
        Err(e) => return error_page(&s, &id, e),
    };
    let slips: SlipSupervision = match crate::cases::supervision_slips::slips(
        State(s.clone()),
        Caller(id.clone()),
        Ok(Query(SlipSupervisionQuery {
            division: None,
            from: Some(t.from.clone()),
            to: Some(t.to.clone()),
            state: None,
            overdue: Some("true".into()),
            format: None,
        })),
    )
    .await
    {
        Ok(r) => match read_json(r).await {
            Ok(v) => v,
            Err(e) => return error_page(&s, &id, e),
        },
        Err(e) => return error_page(&s, &id, e),
    };
    let overdue_cases = match crate::cases::api::list_cases(
        State(s.clone()),
        Caller(id.clone()),
        Ok(Query(crate::cases::api::CaseListQuery {
            state: None,
            tier: None,
            township: None,
            order: Some(crate::cases::store::CaseOrder::Due),
            cursor: None,
            limit: Some(100),
            overdue: Some(true),
        })),
    )
    .await
    {
        Ok(axum::Json(l)) => l
            .cases
            .iter()
            .map(|c| OverdueCaseLine {
                id: c.summary.id.clone(),
                short_id: short(&c.summary.id),
                tier: c.summary.tier.name_zh(),
                state: c.summary.state.name_zh(),
                township: division_zh(&c.summary.township),
                due: c
                    .next_due_at
                    .as_deref()
                    .map(rfc3339_zh)
                    .unwrap_or_else(|| "—".into()),
            })
            .collect(),
        Err(e) => return error_page(&s, &id, e),
    };
    let page = SupervisionPage {
        layout: Layout::new(&s, "督导 / Supervision", &id),
        division: division_zh(&t.division),
        csv_timeliness: format!(
            "/v1/supervision/timeliness?from={}&to={}&format=csv",
            t.from, t.to
        ),
        csv_slips: format!(
            "/v1/supervision/slips?from={}&to={}&format=csv",
            t.from, t.to
        ),
        from: t.from.clone(),
        to: t.to.clone(),
        computed: rfc3339_zh(&t.computed_at),
        cases: t.cases,
        rows: t.townships.iter().map(stage_row).collect(),
        totals: t.totals.iter().map(stage_row).collect(),
        chart: chart(&t),
        escalations: escalations
            .iter()
            .map(|e| EscalationLine {
                case_id: e.case_id.clone(),
                short_case: short(&e.case_id),
                what: match &e.slip {
                    Some(sl) => format!(
                        "{}（{}）",
                        clock_what(e.clock),
                        sl.to_department
                            .map(|d| d.name_zh().to_owned())
                            .or_else(|| sl.to_township.as_deref().map(division_zh))
                            .unwrap_or_default()
                    ),
                    None => clock_what(e.clock).to_owned(),
                },
                tier: e.tier.name_zh(),
                township: division_zh(&e.township),
                due: rfc3339_zh(&e.due_at),
                escalated: rfc3339_zh(&e.escalated_at),
            })
            .collect(),
        overdue_slips: slips
            .slips
            .iter()
            .map(|sl| OverdueSlipLine {
                case_id: sl.case_id.clone(),
                short_case: short(&sl.case_id),
                kind: sl.kind_name.clone(),
                to: sl
                    .to_department
                    .as_deref()
                    .and_then(Department::from_code)
                    .map(|d| d.name_zh().to_owned())
                    .or_else(|| sl.to_township.as_deref().map(division_zh))
                    .unwrap_or_else(|| "—".into()),
                township: sl
                    .township_name
                    .clone()
                    .unwrap_or_else(|| division_zh(&sl.township)),
                due: rfc3339_zh(&sl.due_at),
                late: hours(sl.late_hours),
            })
            .collect(),
        overdue_cases,
    };
    with_cookie(html(StatusCode::OK, page.render()), &s, &id)
}

// ==== 审计 (auditor) ====

/// Entries per page of the search results.
const PAGE: usize = 20;

/// The access-log actions and their Chinese names (the search form's choice and the results).
const ACTIONS: &[(&str, &str)] = &[
    ("verification_requested", "发起核对"),
    ("department_queried", "部门查询"),
    ("report_viewed", "查看报告"),
    ("report_printed", "打印报告"),
    ("log_searched", "检索日志"),
    ("subject_access_report", "个人查询报告"),
    ("authorization_recorded", "登记授权书"),
    ("evidence_reused", "证据复用"),
    ("letter_attached", "补登授权书"),
    ("registration_checked", "户籍核验"),
    ("case_opened", "登记案件"),
    ("case_read", "查看案件"),
    ("case_searched", "查找案件"),
    ("case_moved", "办理案件"),
    ("slip_issued", "转办"),
    ("slip_read", "查看转办单"),
    ("slip_moved", "办理转办单"),
    ("event_received", "接收部门事件"),
    ("monitoring_changed", "更新监测名单"),
    ("monitoring_read", "查看监测信息"),
    ("warning_read", "查看预警"),
    ("warning_moved", "处置预警"),
];

fn code_of<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn action_zh(code: &str) -> String {
    ACTIONS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, zh)| (*zh).to_owned())
        .unwrap_or_else(|| code.to_owned())
}

fn outcome_zh(code: &str) -> &'static str {
    match code {
        "succeeded" => "成功",
        "denied" => "拒绝",
        "refused_by_department" => "部门拒绝",
        "timed_out" => "超时",
        "unavailable" => "不可用",
        _ => "失败",
    }
}

/// The search form as typed (posted: the resident ID never goes into a URL).
#[derive(Debug, Default, Deserialize)]
pub struct AuditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    resident_id: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    case_ref: String,
    #[serde(default)]
    action: String,
    /// YYYY-MM-DD (Beijing), inclusive.
    #[serde(default)]
    from: String,
    /// YYYY-MM-DD (Beijing), inclusive.
    #[serde(default)]
    to: String,
    #[serde(default)]
    page: String,
}

pub struct FoundLine {
    index: u64,
    time: String,
    actor: String,
    role: &'static str,
    action: String,
    case_ref: String,
    effect: &'static str,
    effect_class: &'static str,
    outcome: &'static str,
    subjects: usize,
}

pub struct Choice {
    code: &'static str,
    name: &'static str,
    selected: bool,
}

pub struct AlertLine {
    pattern: String,
    count: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    layout: Layout,
    csrf: String,
    f: AuditForm,
    actions: Vec<Choice>,
    error: Option<String>,
    error_field: String,
    searched: bool,
    found: Vec<FoundLine>,
    total: usize,
    page: usize,
    pages: Vec<usize>,
    logged_as: String,
    size: u64,
    root: String,
    verified: bool,
    verify_error: String,
    verified_at: String,
    alerts: Vec<AlertLine>,
}

/// The trawling alerts counted since this process started (`hub_trawling_alerts_total`).
fn trawling_alerts() -> Vec<AlertLine> {
    let text = crate::telemetry::prometheus().render();
    text.lines()
        .filter(|l| l.starts_with("hub_trawling_alerts_total{"))
        .filter_map(|l| {
            let pattern = l.split("pattern=\"").nth(1)?.split('"').next()?.to_owned();
            let count = l.rsplit(' ').next()?.to_owned();
            Some(AlertLine {
                pattern: match pattern.as_str() {
                    "distinct_households" => "一小时内查询过多不同家庭 / many households in an hour".into(),
                    "distinct_people" => "一小时内查询过多不同人员 / many people in an hour".into(),
                    "emergency_without_letter" => {
                        "无授权书的急难、紧急核对过多 / many emergency checks without a letter".into()
                    }
                    "household_members" => {
                        "单次核对成员过多或与申请人无关 / too many or unrelated members in one check".into()
                    }
                    other => other.to_owned(),
                },
                count,
            })
        })
        .collect()
}

fn audit_page(
    s: &AppState,
    who: &Identity,
    f: AuditForm,
    result: Option<Result<crate::log::api::SearchResponse, ApiError>>,
) -> Response {
    let head = s.log.head();
    let verified = crate::log::integrity::verify_note(
        &head.note,
        s.log.origin(),
        s.log.vkey(),
        head.size,
        head.root,
    );
    let page = f.page.trim().parse::<usize>().unwrap_or(1).max(1);
    let (status, error, error_field, searched, mut found, logged_as) = match result {
        None => (StatusCode::OK, None, String::new(), false, Vec::new(), None),
        Some(Ok(r)) => (
            StatusCode::OK,
            None,
            String::new(),
            true,
            r.entries,
            Some(r.logged_as),
        ),
        Some(Err(e)) => (
            e.status,
            Some(e.message),
            e.field.unwrap_or_default(),
            false,
            Vec::new(),
            None,
        ),
    };
    let action = f.action.trim().to_owned();
    if !action.is_empty() {
        found.retain(|x| code_of(&x.entry.action) == action);
    }
    // Newest first.
    found.reverse();
    let total = found.len();
    let pages = total.div_ceil(PAGE).max(1);
    let page = page.min(pages);
    let lines = found
        .iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .map(|x| {
            let e = &x.entry;
            let allow = code_of(&e.decision.effect) == "allow";
            FoundLine {
                index: x.index,
                time: datetime_zh(e.time),
                actor: e.actor.principal.clone(),
                role: role_zh(e.actor.role),
                action: action_zh(&code_of(&e.action)),
                case_ref: e.case_ref.clone().unwrap_or_default(),
                effect: if allow { "允许" } else { "拒绝" },
                effect_class: if allow { "" } else { "overdue" },
                outcome: outcome_zh(&code_of(&e.outcome)),
                subjects: e.subjects.len(),
            }
        })
        .collect();
    let actions = ACTIONS
        .iter()
        .map(|(c, n)| Choice {
            code: c,
            name: n,
            selected: *c == action,
        })
        .collect();
    let p = AuditPage {
        layout: Layout::new(s, "访问日志审计 / Audit", who),
        csrf: csrf::token(&s.keys, who),
        actions,
        error,
        error_field,
        searched,
        found: lines,
        total,
        page,
        pages: (1..=pages).collect(),
        logged_as: logged_as.map(|i| i.to_string()).unwrap_or_default(),
        size: head.size,
        root: head.root.to_base64(),
        verified: verified.is_ok(),
        verify_error: verified.err().unwrap_or_default(),
        verified_at: datetime_zh(OffsetDateTime::now_utc()),
        alerts: trawling_alerts(),
        f,
    };
    with_cookie(html(status, p.render()), s, who)
}

/// `GET /console/audit`: the search form, the log's latest checkpoint (its signature verified
/// now) and the trawling alerts; decided as `GET /log/checkpoint` (`read_log`).
pub async fn audit(State(s): State<AppState>, Caller(id): Caller) -> Response {
    if let Err(e) = crate::log::api::may_read_log(&s, &id) {
        return error_page(&s, &id, e);
    }
    audit_page(&s, &id, AuditForm::default(), None)
}

pub(super) fn csrf_guard(
    s: &AppState,
    id: &Identity,
    uri: &Uri,
    headers: &HeaderMap,
    field: &str,
) -> Option<Response> {
    let expected = csrf::token(&s.keys, id);
    let host = csrf::host_of(headers, uri);
    csrf::check(headers, host.as_deref(), &expected, field)
        .err()
        .map(|e| {
            error_page(
                s,
                id,
                ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", e.text()),
            )
        })
}

pub(super) fn bad_form() -> ApiError {
    ApiError::bad_request(
        "validation_failed",
        "body",
        "表单无法读取 / the form could not be read",
    )
}

/// A Beijing date (YYYY-MM-DD) as the RFC 3339 start of that day, or of the next day.
fn day_start(field: &'static str, v: &str, next: bool) -> Result<Option<String>, ApiError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let d = time::Date::parse(v, &fmt).map_err(|_| {
        ApiError::bad_request(
            "validation_failed",
            field,
            format!("{field}: 日期格式应为 YYYY-MM-DD / must be a date, YYYY-MM-DD"),
        )
    })?;
    let d = if next { d.next_day().unwrap_or(d) } else { d };
    Ok(Some(format!("{d}T00:00:00+08:00")))
}

/// `POST /console/audit`: CSRF checks, then `POST /v1/log/search`'s handler (its Cedar decision
/// and its `log_searched` entry); the action filter and the pages are applied to its answer.
pub async fn audit_search(
    State(s): State<AppState>,
    Caller(id): Caller,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<AuditForm>, FormRejection>,
) -> Response {
    let field = form.as_ref().map(|f| f.0.csrf.as_str()).unwrap_or("");
    if let Some(r) = csrf_guard(&s, &id, &uri, &headers, field) {
        return r;
    }
    let Ok(Form(f)) = form else {
        return error_page(&s, &id, bad_form());
    };
    let mut body = serde_json::Map::new();
    for (k, v) in [
        ("resident_id", &f.resident_id),
        ("actor", &f.actor),
        ("case_ref", &f.case_ref),
    ] {
        if let Some(v) = opt(v) {
            body.insert(k.into(), Value::String(v));
        }
    }
    let times =
        day_start("from", &f.from, false).and_then(|a| Ok((a, day_start("to", &f.to, true)?)));
    let (from, to) = match times {
        Ok(t) => t,
        Err(e) => return audit_page(&s, &id, f, Some(Err(e))),
    };
    if let Some(t) = from {
        body.insert("from".into(), Value::String(t));
    }
    if let Some(t) = to {
        body.insert("to".into(), Value::String(t));
    }
    let mut api_headers = HeaderMap::new();
    if let Some(v) = headers.get("x-request-id") {
        api_headers.insert("x-request-id", v.clone());
    }
    let r = crate::log::api::search(
        State(s.clone()),
        Caller(id.clone()),
        api_headers,
        Ok(axum::Json(Value::Object(body))),
    )
    .await;
    match r {
        Ok(axum::Json(found)) => audit_page(&s, &id, f, Some(Ok(found))),
        Err(e) if e.status == StatusCode::FORBIDDEN => error_page(&s, &id, e),
        Err(e) if e.status.is_client_error() => audit_page(&s, &id, f, Some(Err(e))),
        Err(e) => error_page(&s, &id, e),
    }
}

#[derive(Template)]
#[template(path = "console/audit_entry.html")]
struct EntryPage {
    layout: Layout,
    index: u64,
    time: String,
    actor: String,
    actor_uri: String,
    role: &'static str,
    division: String,
    action: String,
    purpose: String,
    case_ref: String,
    effect: &'static str,
    policies: String,
    outcome: &'static str,
    departments: String,
    fact_kinds: String,
    request_id: String,
    subjects: Vec<String>,
    leaf: String,
    proof_len: usize,
    checkpoint_size: u64,
    verified: bool,
    verify_error: String,
    verified_at: String,
    receipt: String,
}

/// `GET /console/audit/entries/{index}`: one entry with its inclusion proof, verified here
/// against the latest signed checkpoint.
pub async fn audit_entry(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(index): Path<String>,
) -> Response {
    let rid = crate::api::request_id(&headers);
    // Decided like an entry bundle (`GET /log/tile/entries/…`): a denial is logged.
    let policy_ids = match crate::log::api::gate(
        &s,
        &id,
        Action::ReadLog,
        schemas::access_log::Action::LogSearched,
        &rid,
        None,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return error_page(&s, &id, e),
    };
    let head = s.log.head();
    let Some(index) = index.trim().parse::<u64>().ok().filter(|i| *i < head.size) else {
        return error_page(
            &s,
            &id,
            ApiError::not_found("日志中没有这一条 / no entry with this index in the log"),
        );
    };
    let result = async {
        let logged = crate::log::api::entry_for(
            &id,
            schemas::access_log::Action::LogSearched,
            true,
            policy_ids,
            rid.clone(),
            None,
            None,
        )?;
        s.log.append(logged).await?;
        let rows = crate::log::store::read_entries_indexed(s.log.db(), index, index + 1).await?;
        let (_, bytes) = rows
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("access log: entry missing below the head"))?;
        let entry = schemas::access_log::decode(&bytes).map_err(ApiError::internal)?;
        let receipt = s.log.receipt(index).await?;
        Ok::<_, ApiError>((bytes, entry, receipt))
    }
    .await;
    let (bytes, e, receipt) = match result {
        Ok(v) => v,
        Err(e) => return error_page(&s, &id, e),
    };
    let verified = receipt
        .verify(&bytes, s.log.origin(), s.log.vkey(), s.log.witness_policy())
        .map_err(|e| e.to_string());
    let checkpoint_size = verified
        .as_ref()
        .map(|c| c.checkpoint.size)
        .unwrap_or_default();
    let page = EntryPage {
        layout: Layout::new(&s, format!("日志条目 #{index} / Log entry"), &id),
        index,
        time: datetime_zh(e.time),
        actor: e.actor.principal.clone(),
        actor_uri: e.actor.uri.clone(),
        role: role_zh(e.actor.role),
        division: division_zh(e.actor.division.as_str()),
        action: action_zh(&code_of(&e.action)),
        purpose: e
            .purpose
            .as_ref()
            .map(|p| format!("{} ({})", p.name_zh(), p.code()))
            .unwrap_or_else(|| "—".into()),
        case_ref: e.case_ref.clone().unwrap_or_else(|| "—".into()),
        effect: if code_of(&e.decision.effect) == "allow" {
            "允许"
        } else {
            "拒绝"
        },
        policies: e.decision.policy_ids.join("、"),
        outcome: outcome_zh(&code_of(&e.outcome)),
        departments: e
            .departments
            .iter()
            .map(|d| d.name_zh())
            .collect::<Vec<_>>()
            .join("、"),
        fact_kinds: e
            .fact_kinds
            .iter()
            .map(|k| k.spec().name_zh)
            .collect::<Vec<_>>()
            .join("、"),
        request_id: e.request_id.clone(),
        subjects: e.subjects.iter().map(|p| p.as_str().to_owned()).collect(),
        leaf: tlog::hash::leaf_hash(&bytes).to_base64(),
        proof_len: receipt.proof.len(),
        checkpoint_size,
        verified: verified.is_ok(),
        verify_error: verified.err().unwrap_or_default(),
        verified_at: datetime_zh(OffsetDateTime::now_utc()),
        receipt: receipt.to_text(),
    };
    with_cookie(html(StatusCode::OK, page.render()), &s, &id)
}

#[derive(Debug, Default, Deserialize)]
pub struct SubjectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    resident_id: String,
}

/// `POST /console/audit/subject-report`: the printable subject-access report (谁查看了我的数据)
/// through `POST /v1/log/subject-report`'s handler (its decision and its entry).
pub async fn subject_report(
    State(s): State<AppState>,
    Caller(id): Caller,
    uri: Uri,
    headers: HeaderMap,
    form: Result<Form<SubjectForm>, FormRejection>,
) -> Response {
    let field = form.as_ref().map(|f| f.0.csrf.as_str()).unwrap_or("");
    if let Some(r) = csrf_guard(&s, &id, &uri, &headers, field) {
        return r;
    }
    let Ok(Form(f)) = form else {
        return error_page(&s, &id, bad_form());
    };
    let mut api_headers = HeaderMap::new();
    if let Some(v) = headers.get("x-request-id") {
        api_headers.insert("x-request-id", v.clone());
    }
    match crate::log::api::subject_report(
        State(s.clone()),
        Caller(id.clone()),
        api_headers,
        Ok(axum::Json(
            json!({"resident_id": f.resident_id.trim(), "format": "html"}),
        )),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => error_page(&s, &id, e),
    }
}

// ==== 部门 (department operator) ====

pub struct DeptSlipLine {
    id: String,
    short_case: String,
    kind: &'static str,
    state: &'static str,
    issued: String,
    due: String,
    clock: &'static str,
    clock_text: &'static str,
    result: &'static str,
}

pub struct DeptFigures {
    department: String,
    window: String,
    queries: usize,
    answered: usize,
    errors: usize,
    error_rate: String,
    timeouts: usize,
    timeout_rate: String,
    p50: String,
    p95: String,
    breaker: String,
    breaker_class: &'static str,
    events: Vec<(String, i64)>,
    events_total: i64,
    unmatched: i64,
    unmatched_listed: Option<usize>,
    unmatched_refused: String,
}

#[derive(Template)]
#[template(path = "console/slips.html")]
struct SlipsPage {
    layout: Layout,
    slips: Vec<DeptSlipLine>,
    figures: Option<DeptFigures>,
}

fn result_zh(r: Option<SlipResult>) -> &'static str {
    r.map(|r| r.name_zh()).unwrap_or("")
}

/// Days of verification reports the department figures cover.
const FIGURE_DAYS: i64 = 7;

/// The caller's department as the hub sees it: queries over the last [`FIGURE_DAYS`] days from
/// the stored verification reports (no personal data read: department entries only), the live
/// circuit breaker, and the events it pushed.
async fn dept_figures(
    s: &AppState,
    id: &Identity,
    headers: &HeaderMap,
    dept: Department,
) -> Result<DeptFigures, ApiError> {
    let db = s.store.db();
    let since = now_ms() - FIGURE_DAYS * 86_400_000;
    let reports: Vec<(String,)> = on_db!(&db, p, _DB => {
        sqlx::query_as("SELECT report FROM verifications WHERE created_ms >= $1 ORDER BY created_ms DESC LIMIT 5000")
            .bind(since)
            .fetch_all(p)
            .await
            .map_err(crate::store::StoreError::from)?
    });
    let code = dept.code();
    let (mut queries, mut answered, mut errors, mut timeouts) = (0usize, 0usize, 0usize, 0usize);
    let mut elapsed: Vec<u64> = Vec::new();
    for (r,) in &reports {
        let Ok(v) = serde_json::from_str::<Value>(r) else {
            continue;
        };
        for d in v["departments"].as_array().into_iter().flatten() {
            if d["department"].as_str() != Some(code) {
                continue;
            }
            match d["status"].as_str().unwrap_or_default() {
                "reused" => continue,
                "answered" => answered += 1,
                "timed_out" => timeouts += 1,
                _ => errors += 1,
            }
            queries += 1;
            if let Some(ms) = d["elapsed_ms"].as_u64() {
                elapsed.push(ms);
            }
        }
    }
    elapsed.sort_unstable();
    let q = |p: f64| -> String {
        if elapsed.is_empty() {
            return "—".into();
        }
        let i = ((elapsed.len() as f64 - 1.0) * p).round() as usize;
        format!("{} 毫秒", elapsed[i.min(elapsed.len() - 1)])
    };
    let rate = |n: usize| {
        if queries == 0 {
            "—".to_owned()
        } else {
            format!("{:.1}%", n as f64 * 100.0 / queries as f64)
        }
    };
    let (breaker, breaker_class) = match s.verify.connector(dept).and_then(|c| c.circuit_state()) {
        Some(connectors::BreakerState::Closed {
            consecutive_failures,
        }) => (
            format!("闭合（正常）/ closed — 连续失败 {consecutive_failures} 次"),
            "",
        ),
        Some(connectors::BreakerState::Open { retry_in }) => (
            format!(
                "断开 / open — {} 秒后试探 / probe in {} s",
                retry_in.as_secs(),
                retry_in.as_secs()
            ),
            "overdue",
        ),
        Some(connectors::BreakerState::HalfOpen { .. }) => {
            ("半开（试探中）/ half-open".to_owned(), "soon")
        }
        None => ("未配置连接 / no connector configured".to_owned(), ""),
    };
    let events: Vec<(String, i64)> = on_db!(&db, p, _DB => {
        sqlx::query_as("SELECT placement, COUNT(*) FROM dept_events WHERE department = $1 GROUP BY placement ORDER BY placement")
            .bind(code)
            .fetch_all(p)
            .await
            .map_err(crate::store::StoreError::from)?
    });
    let events_total = events.iter().map(|(_, n)| n).sum();
    let unmatched = events
        .iter()
        .filter(|(p, _)| p == "unmatched")
        .map(|(_, n)| *n)
        .sum();
    let mut api_headers = HeaderMap::new();
    if let Some(v) = headers.get("x-request-id") {
        api_headers.insert("x-request-id", v.clone());
    }
    // The unmatched list is asked only when Cedar lets the caller read it (the same decision as
    // `GET /v1/events/unmatched`): a page view is not an attempt to be logged as refused.
    let may_list = s
        .authz
        .decide(
            id,
            Action::ReadMonitoring,
            &ResourceCtx::default(),
            &RequestCtx::default(),
        )
        .allowed;
    let (unmatched_listed, unmatched_refused) = if may_list {
        match crate::warning::events::list_unmatched(
            State(s.clone()),
            Caller(id.clone().into()),
            api_headers,
            Ok(Query(crate::warning::events::UnmatchedQuery {
                cursor: None,
                limit: Some(200),
            })),
        )
        .await
        {
            Ok(axum::Json(l)) => (Some(l.events.len()), String::new()),
            Err(e) => (None, e.message),
        }
    } else {
        (
            None,
            "只有民政部门可以查看 / only civil affairs may read it".to_owned(),
        )
    };
    Ok(DeptFigures {
        department: dept.name_zh().to_owned(),
        window: format!("近 {FIGURE_DAYS} 天 / last {FIGURE_DAYS} days"),
        queries,
        answered,
        errors,
        error_rate: rate(errors),
        timeouts,
        timeout_rate: rate(timeouts),
        p50: q(0.5),
        p95: q(0.95),
        breaker,
        breaker_class,
        events: events
            .into_iter()
            .map(|(p, n)| {
                let name = match p.as_str() {
                    "unmatched" => "未匹配 / unmatched".to_owned(),
                    "monitored" => "监测对象 / monitored".to_owned(),
                    "case" => "在办案件 / open case".to_owned(),
                    other => other.to_owned(),
                };
                (name, n)
            })
            .collect(),
        events_total,
        unmatched,
        unmatched_listed,
        unmatched_refused,
    })
}

/// `GET /console/slips`: 转办单办理 — the slips addressed to the caller (`GET /v1/slips`), and for a
/// department its connection figures as the hub sees them.
pub async fn slips(State(s): State<AppState>, Caller(id): Caller, headers: HeaderMap) -> Response {
    let list = match crate::cases::slips_api::list_slips(
        State(s.clone()),
        Caller(id.clone()),
        Ok(Query(crate::cases::slips_api::SlipListQuery {
            state: None,
            overdue: None,
            cursor: None,
            limit: Some(200),
        })),
    )
    .await
    {
        Ok(axum::Json(l)) => l,
        Err(e) => return error_page(&s, &id, e),
    };
    let now = now_ms();
    let slips = list
        .slips
        .iter()
        .map(|sl| {
            let (clock, clock_text) = if sl.answered_at.is_some() {
                ("", "已反馈")
            } else if sl.overdue {
                ("overdue", "已超期")
            } else {
                let issued = super::pages::parse_ms(&sl.issued_at);
                let due = super::pages::parse_ms(&sl.due_at);
                match (issued, due) {
                    (Some(i), Some(d)) if d > i && (d - now) * 4 < (d - i) => ("soon", "即将到期"),
                    _ => ("", "计时中"),
                }
            };
            DeptSlipLine {
                id: sl.id.clone(),
                short_case: short(&sl.case_id),
                kind: sl.kind.name_zh(),
                state: sl.state.name_zh(),
                issued: rfc3339_zh(&sl.issued_at),
                due: rfc3339_zh(&sl.due_at),
                clock,
                clock_text,
                result: result_zh(sl.result),
            }
        })
        .collect();
    let figures = match Department::from_code(&id.organisation) {
        Some(d) => match dept_figures(&s, &id, &headers, d).await {
            Ok(f) => Some(f),
            Err(e) => return error_page(&s, &id, e),
        },
        None => None,
    };
    let page = SlipsPage {
        layout: Layout::new(&s, "转办单办理 / Referral slips", &id),
        slips,
        figures,
    };
    with_cookie(html(StatusCode::OK, page.render()), &s, &id)
}

#[derive(Template)]
#[template(path = "console/slip.html")]
struct SlipPage {
    layout: Layout,
    csrf: String,
    id: String,
    short_case: String,
    kind: &'static str,
    state: &'static str,
    issued: String,
    due: String,
    accepted: String,
    answered: String,
    result: &'static str,
    name: String,
    phone: String,
    asked: String,
    feedback: String,
    feedback_amount: String,
    feedback_reason: String,
    may_accept: bool,
    may_answer: bool,
    results: Vec<Choice>,
    error: Option<String>,
    error_field: String,
}

async fn slip_page(
    s: &AppState,
    id: &Identity,
    headers: HeaderMap,
    slip_id: String,
    error: Option<ApiError>,
) -> Response {
    let v = match crate::cases::slips_api::read_slip(
        State(s.clone()),
        Caller(id.clone().into()),
        headers,
        Path(slip_id),
    )
    .await
    {
        Ok(axum::Json(v)) => v,
        Err(e) => return error_page(s, id, e),
    };
    let sm = &v.summary;
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let page = SlipPage {
        layout: Layout::new(s, format!("转办单 {} / Slip", short(&sm.id)), id),
        csrf: csrf::token(&s.keys, id),
        id: sm.id.clone(),
        short_case: short(&sm.case_id),
        kind: sm.kind.name_zh(),
        state: sm.state.name_zh(),
        issued: rfc3339_zh(&sm.issued_at),
        due: rfc3339_zh(&sm.due_at),
        accepted: sm
            .accepted_at
            .as_deref()
            .map(rfc3339_zh)
            .unwrap_or_default(),
        answered: sm
            .answered_at
            .as_deref()
            .map(rfc3339_zh)
            .unwrap_or_default(),
        result: result_zh(sm.result),
        name: v.applicant.name.clone(),
        phone: v.applicant.phone.clone(),
        asked: v.asked.clone(),
        feedback: v
            .feedback
            .as_ref()
            .map(|f| f.text.clone())
            .unwrap_or_default(),
        feedback_amount: v
            .feedback
            .as_ref()
            .and_then(|f| f.amount_fen)
            .map(money_zh)
            .unwrap_or_default(),
        feedback_reason: v
            .feedback
            .as_ref()
            .and_then(|f| f.reason.clone())
            .unwrap_or_default(),
        may_accept: sm.allowed.contains(&crate::cases::slips::SlipMove::Accept),
        may_answer: sm.allowed.contains(&crate::cases::slips::SlipMove::Answer),
        results: SlipResult::ALL
            .iter()
            .map(|r| Choice {
                code: r.code(),
                name: r.name_zh(),
                selected: false,
            })
            .collect(),
        error_field: error
            .as_ref()
            .and_then(|e| e.field.clone())
            .unwrap_or_default(),
        error: error.map(|e| e.message),
    };
    with_cookie(html(status, page.render()), s, id)
}

/// `GET /console/slips/{id}`: the slip with whom to help and what is asked, through
/// `GET /v1/slips/{id}`'s handler (its decision and its `slip_read` entry), with the forms to
/// accept it and to record the feedback.
pub async fn slip(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    Path(slip_id): Path<String>,
) -> Response {
    slip_page(&s, &id, headers, slip_id, None).await
}

#[derive(Debug, Default, Deserialize)]
pub struct SlipForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    reason: String,
    /// Yuan, as typed (`1234.56`).
    #[serde(default)]
    amount: String,
}

/// Yuan as typed into fen; `None` when empty.
pub(super) fn fen_of(v: &str) -> Result<Option<i64>, ApiError> {
    let v = v.trim().trim_start_matches('¥').replace(',', "");
    if v.is_empty() {
        return Ok(None);
    }
    let bad = || {
        ApiError::bad_request(
            "validation_failed",
            "amount_fen",
            "金额应为元，最多两位小数 / amount: yuan with at most two decimals",
        )
    };
    let (yuan, fen) = v.split_once('.').unwrap_or((&v, ""));
    if yuan.is_empty() || fen.len() > 2 || !yuan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !fen.bytes().all(|b| b.is_ascii_digit()) || yuan.len() > 9 {
        return Err(bad());
    }
    let y: i64 = yuan.parse().map_err(|_| bad())?;
    let f: i64 = format!("{fen:0<2}").parse().map_err(|_| bad())?;
    Ok(Some(y * 100 + f))
}

/// `POST /console/slips/{id}/accept` and `/feedback`: CSRF checks, then the API's move (its
/// decision and its `slip_moved` entry); 303 back to the slip.
pub async fn slip_move(
    State(s): State<AppState>,
    Caller(id): Caller,
    uri: Uri,
    headers: HeaderMap,
    Path((slip_id, step)): Path<(String, String)>,
    form: Result<Form<SlipForm>, FormRejection>,
) -> Response {
    let field = form.as_ref().map(|f| f.0.csrf.as_str()).unwrap_or("");
    if let Some(r) = csrf_guard(&s, &id, &uri, &headers, field) {
        return r;
    }
    let Ok(Form(f)) = form else {
        return error_page(&s, &id, bad_form());
    };
    let mut api_headers = HeaderMap::new();
    if let Some(v) = headers.get("x-request-id") {
        api_headers.insert("x-request-id", v.clone());
    }
    let res = match step.as_str() {
        "accept" => {
            crate::cases::slips_api::accept_slip(
                State(s.clone()),
                Caller(id.clone()),
                api_headers,
                Path(slip_id.clone()),
                Ok(axum::Json(json!({}))),
            )
            .await
        }
        "feedback" => {
            let mut body = json!({ "result": f.result.trim(), "text": f.text.trim() });
            if let Some(r) = opt(&f.reason) {
                body["reason"] = Value::String(r);
            }
            match fen_of(&f.amount) {
                Ok(Some(fen)) => body["amount_fen"] = json!(fen),
                Ok(None) => {}
                Err(e) => return slip_page(&s, &id, headers, slip_id, Some(e)).await,
            }
            crate::cases::slips_api::answer_slip(
                State(s.clone()),
                Caller(id.clone()),
                api_headers,
                Path(slip_id.clone()),
                Ok(axum::Json(body)),
            )
            .await
        }
        _ => return error_page(&s, &id, ApiError::not_found("no such step")),
    };
    match res {
        Ok(r) if r.status().is_success() => {
            Redirect::to(&format!("/console/slips/{slip_id}")).into_response()
        }
        Ok(r) => {
            // An illegal move (409 with the API's error body): shown on the slip.
            let status = r.status();
            let msg = read_json::<Value>(r)
                .await
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "此操作不可用 / this move is not allowed now".into());
            let e = ApiError::new(status, "illegal_move", msg);
            slip_page(&s, &id, headers, slip_id, Some(e)).await
        }
        Err(e) if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND => {
            error_page(&s, &id, e)
        }
        Err(e) if e.status.is_client_error() => slip_page(&s, &id, headers, slip_id, Some(e)).await,
        Err(e) => error_page(&s, &id, e),
    }
}

// ==== 管理 (admin) ====

pub struct ClientLine {
    principal: String,
    role: String,
    organisation: String,
    division: String,
    serial: String,
    first: String,
    last: String,
    connections: i64,
}

pub struct CrlLine {
    file: String,
    issuer: String,
    next_update: String,
    fresh: bool,
    revoked: usize,
}

#[derive(Template)]
#[template(path = "console/admin.html")]
struct AdminPage {
    layout: Layout,
    clients: Vec<ClientLine>,
    crls: Vec<CrlLine>,
    ready: bool,
    database: String,
    signing_key: String,
    calendar: String,
    policy_version: String,
    policy_loaded: String,
    policy_count: usize,
    outbox_pending: i64,
    webhooks: Vec<(String, i64, i64)>,
    log_size: u64,
    uptime: String,
}

/// `GET /console/admin`: identities seen recently (`GET /v1/admin/clients`' handler, decided
/// `administer`), CRL freshness and readiness (as `/readyz`), the policy set in force, the
/// notification outbox's backlog.
pub async fn admin(State(s): State<AppState>, Caller(id): Caller) -> Response {
    let mut seen = match crate::api::ops::clients(State(s.clone()), Caller(id.clone())).await {
        Ok(axum::Json(c)) => c,
        Err(e) => return error_page(&s, &id, e),
    };
    seen.sort_by_key(|c| std::cmp::Reverse(c.last_seen_ms));
    let clients = seen
        .iter()
        .take(50)
        .map(|c| ClientLine {
            principal: principal_of(&c.uri).to_owned(),
            role: schemas::Role::from_code(&c.role)
                .map(|r| role_zh(r).to_owned())
                .unwrap_or_else(|| c.role.clone()),
            organisation: c.organisation.clone(),
            division: division_zh(&c.division),
            serial: c.serial.clone(),
            first: ms_zh(c.first_seen_ms),
            last: ms_zh(c.last_seen_ms),
            connections: c.connections,
        })
        .collect();
    let (_, axum::Json(ready)) = crate::api::ops::readyz(State(s.clone())).await;
    let db = s.store.db();
    let pending = match crate::notify::deliver::pending(&db).await {
        Ok(n) => n,
        Err(e) => return error_page(&s, &id, e.into()),
    };
    let mut webhooks: Vec<(String, i64, i64)> = match crate::notify::deliver::summary(&db).await {
        Ok(m) => m.into_iter().map(|(w, (d, p))| (w, d, p)).collect(),
        Err(e) => return error_page(&s, &id, e.into()),
    };
    webhooks.sort();
    let engine = s.authz.engine();
    let up = s.started.elapsed().as_secs();
    let page = AdminPage {
        layout: Layout::new(&s, "系统管理 / Admin", &id),
        clients,
        crls: ready
            .crls
            .iter()
            .map(|c| CrlLine {
                file: c.file.clone(),
                issuer: c.issuer.clone(),
                next_update: c
                    .next_update
                    .as_deref()
                    .map(rfc3339_zh)
                    .unwrap_or_else(|| "—".into()),
                fresh: c.fresh,
                revoked: c.revoked,
            })
            .collect(),
        ready: ready.ready,
        database: ready.database.detail.clone(),
        signing_key: ready.signing_key.detail.clone(),
        calendar: ready.calendar.detail.clone(),
        policy_version: s.authz.version(),
        policy_loaded: datetime_zh(OffsetDateTime::from(s.authz.loaded_at())),
        policy_count: engine.policy_ids().count(),
        outbox_pending: pending,
        webhooks,
        log_size: s.log.head().size,
        uptime: format!("{} 小时 {} 分", up / 3600, (up % 3600) / 60),
    };
    with_cookie(html(StatusCode::OK, page.render()), &s, &id)
}
