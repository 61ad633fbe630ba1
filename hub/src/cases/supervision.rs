//! 督导: timeliness figures for county supervisors (issue 11 item 6) — per township and stage, how
//! many statutory clocks were met within their limit, how long the stages took (median, p90), and
//! how many are open and already overdue; as JSON or as a CSV file for the county's spreadsheet.
//!
//! `GET /v1/supervision/timeliness?division=370811&from=2026-01-01&to=2026-12-31[&format=csv]`
//!
//! - The figures are derived, never stored: every case filed in the window (Beijing dates,
//!   `from` inclusive, `to` inclusive) whose current township lies in `division` is read with its
//!   timeline, and its clocks are computed by [`super::clocks`] exactly as `GET /v1/cases/{id}`
//!   shows them, at the time of the request. Two queries, whatever the number of cases.
//! - Durations run from the stage's start to the move that met it: first help (先行救助) from
//!   filing; materials, initial opinion and decision from acceptance (受理). Wall-clock hours.
//! - `share_within_limit` is met-in-time ÷ (met + open-and-overdue): a stage that is already late
//!   counts against the township before it is finished; `null` when nothing is decided yet.
//! - Who: Cedar's `supervise` (`cases.cedar`): county-level (and city-level) caseworkers, for a
//!   division inside their own. No personal data is read or answered (ids, tiers, times only), so
//!   nothing is logged.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use policies::{Action, RequestCtx, ResourceCtx};
use schemas::division::DivisionLevel;
use schemas::{DivisionCode, Urgency};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, UtcOffset};

use super::clocks::{self, ClockKind, ClockStatus, Timeline};
use crate::api::{ApiError, AppState, Query};
use crate::identity::Caller;
use crate::store::{Db, StoreError, on_db};

/// The routes of this module, merged into the cases router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/supervision/timeliness", get(timeliness))
        .route(
            "/v1/supervision/slips",
            get(super::supervision_slips::slips),
        )
}

/// Most cases one report reads; a wider window is refused (narrow `from`/`to` or `division`).
pub const MAX_CASES: i64 = 200_000;
/// Longest window, in days.
pub const MAX_WINDOW_DAYS: i64 = 731;
/// The window when `from` is not given: the last 365 days.
pub const DEFAULT_WINDOW_DAYS: i64 = 365;

pub(super) const BEIJING: UtcOffset = time::macros::offset!(+8);

/// `GET /v1/supervision/timeliness` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelinessQuery {
    /// A city or county (6 digits) or township (9 digits) inside the caller's division; the
    /// caller's own division when absent.
    #[serde(default)]
    pub division: Option<String>,
    /// First filing date counted (YYYY-MM-DD, Beijing time); 365 days before `to` when absent.
    #[serde(default)]
    pub from: Option<String>,
    /// Last filing date counted (YYYY-MM-DD, Beijing time); today when absent.
    #[serde(default)]
    pub to: Option<String>,
    /// `json` (default) or `csv` (UTF-8 with a byte-order mark, for spreadsheets).
    #[serde(default)]
    pub format: Option<String>,
}

/// One township's figures for one stage (or the division's, when `township` is absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StageFigures {
    /// Township code (9 digits); absent on the division's totals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub township: Option<String>,
    /// 乡镇名称, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub township_name: Option<String>,
    /// The statutory clock (环节).
    pub stage: ClockKind,
    /// Cases in which this clock runs or ran.
    pub clocks: u64,
    /// 已完成.
    pub met: u64,
    /// 按时完成: met no later than the deadline.
    pub met_within_limit: u64,
    /// 未完成.
    pub open: u64,
    /// 未完成且已超期.
    pub open_overdue: u64,
    /// 按时完成率: met_within_limit ÷ (met + open_overdue); absent when that is 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_within_limit: Option<f64>,
    /// 用时中位数 (hours, met clocks); absent when none is met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_hours: Option<f64>,
    /// 用时 P90 (hours, met clocks); absent when none is met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_hours: Option<f64>,
}

/// `GET /v1/supervision/timeliness` answer.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Timeliness {
    pub division: String,
    /// First filing date counted (YYYY-MM-DD).
    pub from: String,
    /// Last filing date counted (YYYY-MM-DD).
    pub to: String,
    /// When the clocks were evaluated (RFC 3339).
    pub computed_at: String,
    /// Cases counted.
    pub cases: u64,
    /// Per township and stage, townships in code order, stages in clock order.
    pub townships: Vec<StageFigures>,
    /// The division's totals per stage.
    pub totals: Vec<StageFigures>,
}

pub(super) fn invalid(field: &str, rule: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("validation_failed", field, format!("{field}: {rule}"))
}

fn date(field: &str, v: &str) -> Result<Date, ApiError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(v.trim(), &fmt).map_err(|_| invalid(field, "must be a date, YYYY-MM-DD"))
}

fn start_ms(d: Date) -> i64 {
    let t = d.midnight().assume_offset(BEIJING);
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// One case as the figures need it: no personal data.
struct CaseFacts {
    township: String,
    tier: String,
    timeline: Timeline,
}

/// The cases filed in `[from_ms, to_ms)` whose township starts with `prefix`, with their timelines
/// (two queries). `None` when there are more than [`MAX_CASES`].
async fn load(
    db: &Db,
    prefix: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Option<Vec<CaseFacts>>, StoreError> {
    let like = format!("{prefix}%");
    let (n,): (i64,) = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT COUNT(*) FROM cases WHERE township LIKE $1 AND created_ms >= $2 AND created_ms < $3")
            .bind(&like)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_one(p)
            .await?
    });
    if n > MAX_CASES {
        return Ok(None);
    }
    type CaseT = (String, i64, String, String);
    let cases: Vec<CaseT> = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT id, created_ms, township, tier FROM cases WHERE township LIKE $1 AND created_ms >= $2 AND created_ms < $3")
            .bind(&like)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(p)
            .await?
    });
    type EventT = (String, String, i64);
    let events: Vec<EventT> = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT e.case_id, e.action, e.at_ms FROM case_events e JOIN cases c ON c.id = e.case_id \
             WHERE c.township LIKE $1 AND c.created_ms >= $2 AND c.created_ms < $3 ORDER BY e.case_id, e.seq")
            .bind(&like)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(p)
            .await?
    });
    let mut by_case: BTreeMap<&str, Vec<(&str, i64)>> = BTreeMap::new();
    for (case_id, action, at) in &events {
        by_case
            .entry(case_id.as_str())
            .or_default()
            .push((action.as_str(), *at));
    }
    Ok(Some(
        cases
            .iter()
            .map(|(id, created_ms, township, tier)| CaseFacts {
                township: township.clone(),
                tier: tier.clone(),
                timeline: Timeline::from_events(
                    *created_ms,
                    by_case.get(id.as_str()).into_iter().flatten().copied(),
                ),
            })
            .collect(),
    ))
}

/// Accumulates one (township, stage) cell.
#[derive(Default)]
struct Cell {
    clocks: u64,
    met: u64,
    within: u64,
    open: u64,
    overdue: u64,
    hours: Vec<f64>,
}

impl Cell {
    fn figures(mut self, township: Option<String>, stage: ClockKind) -> StageFigures {
        self.hours.sort_by(f64::total_cmp);
        let decided = self.met + self.overdue;
        let name = township.as_deref().and_then(township_name);
        StageFigures {
            township_name: name,
            township,
            stage,
            clocks: self.clocks,
            met: self.met,
            met_within_limit: self.within,
            open: self.open,
            open_overdue: self.overdue,
            share_within_limit: (decided > 0)
                .then(|| round(self.within as f64 / decided as f64, 4)),
            median_hours: quantile(&self.hours, 0.5).map(|h| round(h, 1)),
            p90_hours: quantile(&self.hours, 0.9).map(|h| round(h, 1)),
        }
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

pub(super) fn township_name(code: &str) -> Option<String> {
    let d = DivisionCode::parse(code).ok()?;
    connectors::sim::divisions::Divisions::jining()
        .township(&d)
        .map(|t| t.name.clone())
}

fn parse_ms(rfc3339: &str) -> Option<i64> {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn stage_order(k: ClockKind) -> u8 {
    match k {
        ClockKind::FirstHelp => 0,
        ClockKind::Materials => 1,
        ClockKind::InitialOpinion => 2,
        ClockKind::Decision => 3,
    }
}

/// The figures of `cases` at `now`, per township and stage, and the totals per stage.
fn figures(
    cases: &[CaseFacts],
    calendar: &policies::WorkingCalendar,
    periods: &policies::CasePeriods,
    now: OffsetDateTime,
) -> Result<(Vec<StageFigures>, Vec<StageFigures>), ApiError> {
    let mut cells: BTreeMap<(String, u8), (ClockKind, Cell)> = BTreeMap::new();
    let mut totals: BTreeMap<u8, (ClockKind, Cell)> = BTreeMap::new();
    for c in cases {
        let tier: Urgency = serde_json::from_value(Value::String(c.tier.clone()))
            .map_err(|_| ApiError::internal("case row: unknown tier"))?;
        for clock in clocks::clocks(tier, &c.timeline, calendar, periods, now) {
            let start = match clock.kind {
                ClockKind::FirstHelp => Some(c.timeline.filed_ms),
                _ => c.timeline.accepted_ms,
            };
            let due = parse_ms(&clock.due_at);
            let met = clock.met_at.as_deref().and_then(parse_ms);
            for cell in [
                &mut cells
                    .entry((c.township.clone(), stage_order(clock.kind)))
                    .or_insert_with(|| (clock.kind, Cell::default()))
                    .1,
                &mut totals
                    .entry(stage_order(clock.kind))
                    .or_insert_with(|| (clock.kind, Cell::default()))
                    .1,
            ] {
                cell.clocks += 1;
                match clock.status {
                    ClockStatus::Met => {
                        cell.met += 1;
                        if let (Some(m), Some(d)) = (met, due)
                            && m <= d
                        {
                            cell.within += 1;
                        }
                        if let (Some(m), Some(s)) = (met, start) {
                            cell.hours.push((m - s).max(0) as f64 / 3_600_000.0);
                        }
                    }
                    ClockStatus::Overdue => {
                        cell.open += 1;
                        cell.overdue += 1;
                    }
                    ClockStatus::Running | ClockStatus::DueSoon => cell.open += 1,
                }
            }
        }
    }
    let townships = cells
        .into_iter()
        .map(|((township, _), (kind, cell))| cell.figures(Some(township), kind))
        .collect();
    let totals = totals
        .into_values()
        .map(|(kind, cell)| cell.figures(None, kind))
        .collect();
    Ok((townships, totals))
}

fn stage_zh(k: ClockKind) -> &'static str {
    match k {
        ClockKind::FirstHelp => "先行救助",
        ClockKind::Materials => "补充完善材料",
        ClockKind::InitialOpinion => "调查初审意见",
        ClockKind::Decision => "审批决定",
    }
}

fn stage_code(k: ClockKind) -> &'static str {
    match k {
        ClockKind::FirstHelp => "first_help",
        ClockKind::Materials => "materials",
        ClockKind::InitialOpinion => "initial_opinion",
        ClockKind::Decision => "decision",
    }
}

/// The report as CSV: a header in Chinese and English, one row per township and stage, then the
/// totals (乡镇 = 合计). UTF-8 with a byte-order mark so spreadsheets read the Chinese.
pub fn csv(t: &Timeliness) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(
        "乡镇代码 township,乡镇 township_name,环节 stage,环节名称 stage_name,计时数 clocks,已完成 met,按时完成 met_within_limit,未完成 open,已超期 open_overdue,按时完成率 share_within_limit,用时中位数(小时) median_hours,用时P90(小时) p90_hours\r\n",
    );
    let num = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for f in t.townships.iter().chain(&t.totals) {
        let (code, name) = match &f.township {
            Some(code) => (code.as_str(), f.township_name.as_deref().unwrap_or("")),
            None => (t.division.as_str(), "合计 total"),
        };
        out.push_str(&format!(
            "{code},{name},{},{},{},{},{},{},{},{},{},{}\r\n",
            stage_code(f.stage),
            stage_zh(f.stage),
            f.clocks,
            f.met,
            f.met_within_limit,
            f.open,
            f.open_overdue,
            num(f.share_within_limit),
            num(f.median_hours),
            num(f.p90_hours),
        ));
    }
    out
}

/// What a supervision request covers, once the caller is known to supervise it.
pub(super) struct Scope {
    pub division: DivisionCode,
    pub from: Date,
    pub to: Date,
    /// `[from_ms, to_ms)`: the window as unix ms (Beijing days).
    pub from_ms: i64,
    pub to_ms: i64,
    pub csv: bool,
    pub now: OffsetDateTime,
}

/// Decides `supervise` for the caller's own division (who is a supervisor) and then for the
/// requested one, and parses the window and the format; the same for every supervision report.
pub(super) fn scope(
    s: &AppState,
    id: &schemas::Identity,
    division: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    format: Option<&str>,
) -> Result<Scope, ApiError> {
    // Decided for the caller's own division before anything else is read: who is a supervisor.
    let decide = |region: &DivisionCode| {
        s.authz
            .require(
                id,
                Action::Supervise,
                &ResourceCtx {
                    region: Some(region.clone()),
                    ..Default::default()
                },
                &RequestCtx::default(),
            )
            .map(|_| ())
            .map_err(|(_, e)| e)
    };
    decide(&id.division)?;
    let division = match division {
        None => id.division.clone(),
        Some(d) => DivisionCode::parse(d.trim()).map_err(|e| invalid("division", e))?,
    };
    // Cases are kept per township: a province is too wide and a village (12 digits) too narrow.
    if matches!(
        division.level(),
        DivisionLevel::Province | DivisionLevel::Village
    ) {
        return Err(invalid(
            "division",
            "must be a city or county (6 digits) or a township (9 digits)",
        ));
    }
    let csv = match format.map(str::trim) {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(invalid("format", "must be json or csv")),
    };
    let now = OffsetDateTime::now_utc();
    let to = match to {
        Some(v) => date("to", v)?,
        None => now.to_offset(BEIJING).date(),
    };
    let from = match from {
        Some(v) => date("from", v)?,
        None => to - time::Duration::days(DEFAULT_WINDOW_DAYS - 1),
    };
    if from > to {
        return Err(invalid("from", "must not be after `to`"));
    }
    if (to - from).whole_days() >= MAX_WINDOW_DAYS {
        return Err(invalid(
            "from",
            format!("the window must be at most {MAX_WINDOW_DAYS} days"),
        ));
    }
    decide(&division)?;
    let Some(next_day) = to.next_day() else {
        return Err(invalid("to", "is out of range"));
    };
    Ok(Scope {
        division,
        from,
        to,
        from_ms: start_ms(from),
        to_ms: start_ms(next_day),
        csv,
        now,
    })
}

/// A CSV body as a download named `name`.
pub(super) fn csv_download(body: String, name: &str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

pub(crate) async fn timeliness(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<Query<TimelinessQuery>, ApiError>,
) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let Scope {
        division,
        from,
        to,
        from_ms,
        to_ms,
        csv: csv_out,
        now,
    } = scope(
        &s,
        &id,
        q.division.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
        q.format.as_deref(),
    )?;
    let cases = load(
        &s.store.db(),
        super::api::division_prefix(&division),
        from_ms,
        to_ms,
    )
    .await?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "range_too_large",
            format!(
                "统计范围内案件超过 {MAX_CASES} 件，请缩小日期范围或区划 / more than {MAX_CASES} cases in the window; narrow `from`/`to` or `division`"
            ),
        )
        .with_field("from")
    })?;
    let engine = s.authz.engine();
    let (townships, totals) = figures(&cases, engine.calendar(), &engine.deadlines().case, now)?;
    let report = Timeliness {
        division: division.as_str().to_owned(),
        from: from.to_string(),
        to: to.to_string(),
        computed_at: now.to_offset(BEIJING).format(&Rfc3339).unwrap_or_default(),
        cases: cases.len() as u64,
        townships,
        totals,
    };
    if !csv_out {
        return Ok(Json(report).into_response());
    }
    let name = format!(
        "timeliness-{}-{}-{}.csv",
        report.division, report.from, report.to
    );
    Ok(csv_download(csv(&report), &name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cal() -> policies::WorkingCalendar {
        policies::WorkingCalendar::load_dir(policies::WorkingCalendar::shipped_dir())
            .expect("shipped calendar")
    }

    fn ms(t: OffsetDateTime) -> i64 {
        (t.unix_timestamp_nanos() / 1_000_000) as i64
    }

    fn statutory() -> policies::Deadlines {
        policies::Deadlines::statutory()
    }

    fn case(township: &str, tier: &str, t: Timeline) -> CaseFacts {
        CaseFacts {
            township: township.into(),
            tier: tier.into(),
            timeline: t,
        }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[3.0], 0.9), Some(3.0));
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(5.0));
        assert_eq!(quantile(&v, 0.9), Some(9.0));
    }

    #[test]
    fn first_help_in_time_late_and_missing_count_per_township() {
        let filed = datetime!(2026-11-02 09:00 +8);
        let now = datetime!(2026-11-02 15:00 +8);
        let emergency = |help_after_min: Option<i64>| Timeline {
            filed_ms: ms(filed),
            accepted_ms: Some(ms(filed + time::Duration::minutes(10))),
            first_help_ms: help_after_min.map(|m| ms(filed + time::Duration::minutes(m))),
            ..Default::default()
        };
        let cases = vec![
            // Xuzhuang: one in 60 min, one in 180 min (late), one never (overdue by now).
            case("370811002", "emergency", emergency(Some(60))),
            case("370811002", "emergency", emergency(Some(180))),
            case("370811002", "emergency", emergency(None)),
            // Liying: one in 30 min.
            case("370811005", "emergency", emergency(Some(30))),
            // A normal case has no first-help clock.
            case("370811005", "normal", emergency(None)),
        ];
        let (townships, totals) = figures(&cases, &cal(), &statutory().case, now).expect("figures");
        let get = |t: &str, k: ClockKind| {
            townships
                .iter()
                .find(|f| f.township.as_deref() == Some(t) && f.stage == k)
                .cloned()
                .expect("cell")
        };
        let x = get("370811002", ClockKind::FirstHelp);
        assert_eq!(
            (x.clocks, x.met, x.met_within_limit, x.open, x.open_overdue),
            (3, 2, 1, 1, 1)
        );
        assert_eq!(x.share_within_limit, Some(round(1.0 / 3.0, 4)));
        assert_eq!(x.median_hours, Some(1.0));
        assert_eq!(x.p90_hours, Some(3.0));
        assert_eq!(x.township_name.as_deref(), Some("许庄街道"));
        let l = get("370811005", ClockKind::FirstHelp);
        assert_eq!((l.clocks, l.met, l.met_within_limit), (1, 1, 1));
        assert_eq!(l.share_within_limit, Some(1.0));
        let total = totals
            .iter()
            .find(|f| f.stage == ClockKind::FirstHelp)
            .expect("total");
        assert_eq!((total.clocks, total.met, total.met_within_limit), (4, 3, 2));
        assert_eq!(total.open_overdue, 1);
        // Materials (5 working days from acceptance) are running for all five.
        let m = totals
            .iter()
            .find(|f| f.stage == ClockKind::Materials)
            .expect("materials");
        assert_eq!((m.clocks, m.open, m.open_overdue), (5, 5, 0));
        assert_eq!(m.share_within_limit, None);
    }

    #[test]
    fn csv_has_a_bom_a_bilingual_header_and_a_totals_row() {
        let filed = datetime!(2026-11-02 09:00 +8);
        let t = Timeline {
            filed_ms: ms(filed),
            accepted_ms: Some(ms(filed)),
            first_help_ms: Some(ms(filed + time::Duration::minutes(90))),
            ..Default::default()
        };
        let (townships, totals) = figures(
            &[case("370811002", "urgent", t)],
            &cal(),
            &statutory().case,
            datetime!(2026-11-03 09:00 +8),
        )
        .expect("figures");
        let report = Timeliness {
            division: "370811".into(),
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            computed_at: String::new(),
            cases: 1,
            townships,
            totals,
        };
        let text = csv(&report);
        assert!(text.starts_with('\u{feff}'));
        let lines: Vec<&str> = text.trim_end().split("\r\n").collect();
        assert!(lines[0].contains("按时完成率 share_within_limit"));
        assert!(
            lines.iter().any(
                |l| l.starts_with("370811002,许庄街道,first_help,先行救助,1,1,1,0,0,1,1.5,1.5")
            )
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("370811,合计 total,first_help"))
        );
        // Every row has the header's number of columns.
        let cols = lines[0].split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == cols));
    }
}
