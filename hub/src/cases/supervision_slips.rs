//! 督导 · 转办单: the referral slips issued from a county's cases, for its supervisors (issue 11
//! item 6) — every slip with its state and lateness, filterable by issuing township, state and
//! lateness, and per township how many were answered within their limit; as JSON or as a CSV file.
//!
//! `GET /v1/supervision/slips?division=370811&from=2026-01-01&to=2026-12-31[&state=][&overdue=][&format=csv]`
//!
//! - The slips issued in the window (Beijing dates, both ends inclusive) from cases whose township
//!   lies in `division`. One query, whatever their number; more than [`MAX_SLIPS`] is refused.
//! - A slip is 已超期 (overdue) when it has no feedback past its due time, and 逾期反馈 (answered
//!   late) when its feedback came after it; `late_hours` says by how much.
//! - `share_within_limit` per township: answered in time ÷ (answered + open and overdue), like
//!   the timeliness report's.
//! - Who: Cedar's `supervise`, as for the timeliness figures ([`super::supervision::scope`]). No
//!   personal data is read or answered (ids, kinds, addressees, times, the result code — never
//!   the applicant, what is asked or the feedback text), so nothing is logged.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemas::cases::SlipKind;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::slips::SlipState;
use super::supervision::{BEIJING, Scope, csv_download, invalid, scope, township_name};
use crate::api::{ApiError, AppState, Query};
use crate::identity::Caller;
use crate::store::{Db, StoreError, on_db};

/// Most slips one report reads; a wider window is refused (narrow `from`/`to` or `division`).
pub const MAX_SLIPS: i64 = 200_000;

/// `GET /v1/supervision/slips` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlipSupervisionQuery {
    /// A city or county (6 digits) or township (9 digits) inside the caller's division: the
    /// township of the case the slip was issued from. The caller's own division when absent.
    #[serde(default)]
    pub division: Option<String>,
    /// First issue date counted (YYYY-MM-DD, Beijing time); 365 days before `to` when absent.
    #[serde(default)]
    pub from: Option<String>,
    /// Last issue date counted (YYYY-MM-DD, Beijing time); today when absent.
    #[serde(default)]
    pub to: Option<String>,
    /// Only the slips in this state (the per-township figures always count every slip).
    #[serde(default)]
    pub state: Option<String>,
    /// `true`: only the slips without feedback past their due time; `false`: only the others.
    #[serde(default)]
    pub overdue: Option<String>,
    /// `json` (default) or `csv` (the listed slips; UTF-8 with a byte-order mark).
    #[serde(default)]
    pub format: Option<String>,
}

/// One slip as a supervisor sees it: no personal data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SupervisedSlip {
    pub id: String,
    pub case_id: String,
    /// The township of the case it was issued from (9 digits).
    pub township: String,
    /// 乡镇名称, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub township_name: Option<String>,
    /// 转办单类型 (code).
    pub kind: String,
    /// 转办单类型 (Chinese).
    pub kind_name: String,
    /// The department it is addressed to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_department: Option<String>,
    /// The township it is addressed to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_township: Option<String>,
    pub state: SlipState,
    /// RFC 3339, Beijing time.
    pub issued_at: String,
    /// RFC 3339, Beijing time.
    pub due_at: String,
    /// The due time reaches into a year without a calendar file (computed Monday–Friday).
    pub due_provisional: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    /// The feedback's result code (`done`, `partly_done`, `not_possible`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// 已超期: no feedback and past its due time.
    pub overdue: bool,
    /// 逾期反馈: the feedback came after the due time.
    pub answered_late: bool,
    /// Hours past the due time: until now when overdue, until the feedback when answered late.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_hours: Option<f64>,
}

/// One issuing township's slips (or the division's, when `township` is absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SlipFigures {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub township: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub township_name: Option<String>,
    /// 转办数.
    pub issued: u64,
    /// 已反馈.
    pub answered: u64,
    /// 按时反馈.
    pub answered_within_limit: u64,
    /// 未反馈.
    pub open: u64,
    /// 未反馈且已超期.
    pub open_overdue: u64,
    /// 按时反馈率: answered_within_limit ÷ (answered + open_overdue); absent when that is 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_within_limit: Option<f64>,
}

/// `GET /v1/supervision/slips` answer.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SlipSupervision {
    pub division: String,
    pub from: String,
    pub to: String,
    /// When lateness was evaluated (RFC 3339).
    pub computed_at: String,
    /// The slips matching the filters, most overdue first, then by issue time.
    pub slips: Vec<SupervisedSlip>,
    /// Per issuing township, every slip in the window (filters not applied).
    pub townships: Vec<SlipFigures>,
    /// The division's totals.
    pub totals: SlipFigures,
}

type Row = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// The slips issued in `[from_ms, to_ms)` from cases whose township starts with `prefix`.
/// `None` when there are more than [`MAX_SLIPS`].
async fn load(
    db: &Db,
    prefix: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Option<Vec<Row>>, StoreError> {
    let like = format!("{prefix}%");
    let (n,): (i64,) = on_db!(db, p, _DB => {
        sqlx::query_as("SELECT COUNT(*) FROM slips WHERE region LIKE $1 AND issued_ms >= $2 AND issued_ms < $3")
            .bind(&like)
            .bind(from_ms)
            .bind(to_ms)
            .fetch_one(p)
            .await?
    });
    if n > MAX_SLIPS {
        return Ok(None);
    }
    let rows: Vec<Row> = on_db!(db, p, _DB => {
        sqlx::query_as(
            "SELECT id, case_id, kind, to_department, to_township, region, state, issued_ms, due_ms, \
             due_provisional, accepted_ms, answered_ms, result FROM slips \
             WHERE region LIKE $1 AND issued_ms >= $2 AND issued_ms < $3 ORDER BY issued_ms, id",
        )
        .bind(&like)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(p)
        .await?
    });
    Ok(Some(rows))
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| t.to_offset(BEIJING).format(&Rfc3339).unwrap_or_default())
        .unwrap_or_default()
}

fn hours(ms: i64) -> f64 {
    (ms as f64 / 3_600_000.0 * 10.0).round() / 10.0
}

fn slip(r: Row, now_ms: i64) -> Result<SupervisedSlip, ApiError> {
    let (
        id,
        case_id,
        kind,
        to_department,
        to_township,
        township,
        state,
        issued,
        due,
        prov,
        acc,
        ans,
        result,
    ) = r;
    let state = SlipState::from_code(&state)
        .ok_or_else(|| ApiError::internal("slip row: unknown state"))?;
    let overdue = super::slips::overdue(state, due, now_ms);
    let answered_late = ans.is_some_and(|a| a > due);
    let late_hours = if overdue {
        Some(hours(now_ms - due))
    } else {
        ans.filter(|a| *a > due).map(|a| hours(a - due))
    };
    Ok(SupervisedSlip {
        township_name: township_name(&township),
        kind_name: SlipKind::from_code(&kind)
            .map(|k| k.name_zh().to_owned())
            .unwrap_or_else(|| kind.clone()),
        id,
        case_id,
        township,
        kind,
        to_department,
        to_township,
        state,
        issued_at: rfc3339(issued),
        due_at: rfc3339(due),
        due_provisional: prov != 0,
        accepted_at: acc.map(rfc3339),
        answered_at: ans.map(rfc3339),
        result,
        overdue,
        answered_late,
        late_hours,
    })
}

#[derive(Default)]
struct Count {
    issued: u64,
    answered: u64,
    within: u64,
    open: u64,
    overdue: u64,
}

impl Count {
    fn add(&mut self, s: &SupervisedSlip) {
        self.issued += 1;
        if s.state == SlipState::Answered {
            self.answered += 1;
            if !s.answered_late {
                self.within += 1;
            }
        } else {
            self.open += 1;
            if s.overdue {
                self.overdue += 1;
            }
        }
    }

    fn figures(self, township: Option<String>) -> SlipFigures {
        let decided = self.answered + self.overdue;
        SlipFigures {
            township_name: township.as_deref().and_then(township_name),
            township,
            issued: self.issued,
            answered: self.answered,
            answered_within_limit: self.within,
            open: self.open,
            open_overdue: self.overdue,
            share_within_limit: (decided > 0)
                .then(|| (self.within as f64 / decided as f64 * 10_000.0).round() / 10_000.0),
        }
    }
}

/// The listed slips as CSV: a header in Chinese and English, one row per slip. UTF-8 with a
/// byte-order mark so spreadsheets read the Chinese.
pub fn csv(r: &SlipSupervision) -> String {
    let mut out = String::from("\u{feff}");
    out.push_str(
        "转办单 slip,案件 case,乡镇代码 township,乡镇 township_name,类型 kind,类型名称 kind_name,接收部门 to_department,接收乡镇 to_township,状态 state,状态名称 state_name,转办时间 issued_at,期限 due_at,签收时间 accepted_at,反馈时间 answered_at,结果 result,已超期 overdue,逾期反馈 answered_late,超期小时 late_hours\r\n",
    );
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    for s in &r.slips {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
            s.id,
            s.case_id,
            s.township,
            s.township_name.as_deref().unwrap_or(""),
            s.kind,
            s.kind_name,
            opt(&s.to_department),
            opt(&s.to_township),
            s.state.code(),
            s.state.name_zh(),
            s.issued_at,
            s.due_at,
            opt(&s.accepted_at),
            opt(&s.answered_at),
            opt(&s.result),
            if s.overdue { "是" } else { "否" },
            if s.answered_late { "是" } else { "否" },
            s.late_hours.map(|h| h.to_string()).unwrap_or_default(),
        ));
    }
    out
}

pub(crate) async fn slips(
    State(s): State<AppState>,
    Caller(id): Caller,
    q: Result<Query<SlipSupervisionQuery>, ApiError>,
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
    let state = match q.state.as_deref().map(str::trim) {
        None => None,
        Some(v) => Some(
            SlipState::from_code(v)
                .ok_or_else(|| invalid("state", "must be issued, accepted or answered"))?,
        ),
    };
    let overdue = match q.overdue.as_deref().map(str::trim) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(invalid("overdue", "must be true or false")),
    };
    let rows = load(
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
                "统计范围内转办单超过 {MAX_SLIPS} 件，请缩小日期范围或区划 / more than {MAX_SLIPS} slips in the window; narrow `from`/`to` or `division`"
            ),
        )
        .with_field("from")
    })?;
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut per_township: BTreeMap<String, Count> = BTreeMap::new();
    let mut totals = Count::default();
    let mut listed = Vec::new();
    for r in rows {
        let sl = slip(r, now_ms)?;
        per_township
            .entry(sl.township.clone())
            .or_default()
            .add(&sl);
        totals.add(&sl);
        if state.is_none_or(|st| st == sl.state) && overdue.is_none_or(|o| o == sl.overdue) {
            listed.push(sl);
        }
    }
    // Most overdue first, then the order of issue.
    listed.sort_by(|a, b| {
        let la = if a.overdue { a.late_hours } else { None };
        let lb = if b.overdue { b.late_hours } else { None };
        lb.unwrap_or(-1.0)
            .total_cmp(&la.unwrap_or(-1.0))
            .then_with(|| a.issued_at.cmp(&b.issued_at))
    });
    let report = SlipSupervision {
        division: division.as_str().to_owned(),
        from: from.to_string(),
        to: to.to_string(),
        computed_at: now.to_offset(BEIJING).format(&Rfc3339).unwrap_or_default(),
        slips: listed,
        townships: per_township
            .into_iter()
            .map(|(t, c)| c.figures(Some(t)))
            .collect(),
        totals: totals.figures(None),
    };
    if !csv_out {
        return Ok(Json(report).into_response());
    }
    let name = format!(
        "slips-{}-{}-{}.csv",
        report.division, report.from, report.to
    );
    Ok(csv_download(csv(&report), &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, due: i64, answered: Option<i64>) -> Row {
        (
            "s1".into(),
            "c1".into(),
            "medical_assistance".into(),
            Some("health".into()),
            None,
            "370811005".into(),
            state.into(),
            0,
            due,
            0,
            answered,
            answered,
            answered.map(|_| "done".to_owned()),
        )
    }

    #[test]
    fn lateness_and_shares_count_answered_late_and_open_overdue_against_the_township() {
        let h = 3_600_000;
        let now = 100 * h;
        let on_time = slip(row("answered", 50 * h, Some(40 * h)), now).expect("slip");
        let late = slip(row("answered", 50 * h, Some(62 * h)), now).expect("slip");
        let overdue = slip(row("accepted", 90 * h, None), now).expect("slip");
        let running = slip(row("issued", 120 * h, None), now).expect("slip");
        assert!(!on_time.answered_late && !on_time.overdue && on_time.late_hours.is_none());
        assert!(late.answered_late && late.late_hours == Some(12.0));
        assert!(overdue.overdue && overdue.late_hours == Some(10.0));
        assert!(!running.overdue && running.late_hours.is_none());
        assert_eq!(late.kind_name, "医疗救助");
        let mut c = Count::default();
        for s in [&on_time, &late, &overdue, &running] {
            c.add(s);
        }
        let f = c.figures(Some("370811005".into()));
        assert_eq!(
            (
                f.issued,
                f.answered,
                f.answered_within_limit,
                f.open,
                f.open_overdue
            ),
            (4, 2, 1, 2, 1)
        );
        // 1 in time ÷ (2 answered + 1 open overdue).
        assert_eq!(f.share_within_limit, Some(0.3333));
        let r = SlipSupervision {
            division: "370811".into(),
            from: "2026-01-01".into(),
            to: "2026-12-31".into(),
            computed_at: String::new(),
            slips: vec![late],
            townships: vec![],
            totals: f,
        };
        let text = csv(&r);
        assert!(text.starts_with('\u{feff}'));
        assert_eq!(text.lines().count(), 2);
        assert!(
            text.contains(",医疗救助,health,,answered,已反馈,"),
            "{text}"
        );
    }
}
