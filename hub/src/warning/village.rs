//! 村级报告: `POST /v1/village-reports` (a village assistant reports what it saw in a household
//! of its village) and `GET /v1/village-reports` (filtered, paginated, scoped like the warning
//! queue).
//!
//! `POST` runs these stages: gate (Cedar `file_village_report` on the caller's own division: only a
//! village assistant may file, 403 logged) → body (closed set of observations, the household
//! head's resident ID in the body, a known 12-digit village of this hub's region, a note: 400
//! naming the field) → place (the household's registered village from the monitoring list or its
//! latest case wins over the one reported: jurisdiction comes from registration data) → Cedar again
//! on that village (`village-assistant-own-village`, 403 logged with the household's pseudonym)
//! → seal, log (`village_report_filed`), store with its event and the rule evaluation in one
//! transaction → 201 with the warning it raised or joined.
//!
//! Invariants:
//! - No resident ID in clear anywhere: the report row and its event hold the keyed pseudonym; the
//!   resident ID and the note are sealed (the report bound to its id, the event like a department
//!   event, so converting its warning to a case finds the resident ID the same way).
//! - A report is an event of department `village`, kind `village.<observation>`, in `dept_events`:
//!   the warning rules (`policies/warnings.toml`, rules `village_*`) read it like any other, so a
//!   warning lands in the household's township queue with the village recorded.
//! - Every read (the list) and every filing is an access-log entry, a refusal too. The list carries
//!   no resident ID and no note.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use policies::{Action, RequestCtx, ResourceCtx};
use schemas::access_log::{Action as LogAction, Outcome};
use schemas::division::DivisionLevel;
use schemas::{DivisionCode, Identity, ResidentId, Urgency};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::store::{self as wstore, EventRow, VillageReportRow};
use super::{entry, invalid, ms, seal_error};
use crate::api::{ApiError, AppState, Query, json_object, request_id};
use crate::cases::clocks::beijing;
use crate::identity::Caller;

/// The path of both routes.
pub const PATH: &str = "/v1/village-reports";

/// The department code of a village report's event in `dept_events`.
pub const DEPARTMENT: &str = "village";

/// The placement of a village report's event: placed by the report's village (never unmatched).
pub const PLACEMENT: &str = "village_report";

pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(list_reports).post(file_report))
}

/// 观察到的情况: what the assistant saw (a closed set; the note says more).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Observation {
    /// 失去收入来源: the household lost its income.
    NoIncome,
    /// 重病重伤: a member is seriously ill or injured.
    SeriousIllness,
    /// 残疾失能: a member is disabled or cannot look after themselves.
    Disability,
    /// 住房安全隐患: the house is unsafe.
    DangerousHouse,
    /// 独居无人照料: a member lives alone without care.
    LivingAlone,
    /// 其他困难: another hardship (the note says which).
    Other,
}

impl Observation {
    pub const ALL: [Observation; 6] = [
        Observation::NoIncome,
        Observation::SeriousIllness,
        Observation::Disability,
        Observation::DangerousHouse,
        Observation::LivingAlone,
        Observation::Other,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Observation::NoIncome => "no_income",
            Observation::SeriousIllness => "serious_illness",
            Observation::Disability => "disability",
            Observation::DangerousHouse => "dangerous_house",
            Observation::LivingAlone => "living_alone",
            Observation::Other => "other",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.code() == code)
    }

    /// The event kind the warning rules read.
    pub fn kind(self) -> String {
        format!("{DEPARTMENT}.{}", self.code())
    }
}

/// `POST /v1/village-reports` body.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VillageReportRequest {
    /// 户主公民身份号码: the household head's resident ID (18 characters).
    pub resident_id: String,
    /// 村（社区）: the household's village (12 digits), a known village of this hub's region. The
    /// household's registered village, when the hub knows it, takes precedence.
    #[schemars(pattern(crate::cases::api::VILLAGE_PATTERN))]
    pub village: String,
    pub observation: Observation,
    /// 情况说明: what the assistant saw, 1-1000 characters.
    #[schemars(length(min = 1, max = 1000))]
    pub note: String,
}

/// The warning a report raised or joined.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct ReportWarning {
    pub id: String,
    pub rule: String,
    pub tier: Urgency,
    /// True when the report attached to an open warning of the household.
    pub attached: bool,
}

/// `POST /v1/village-reports` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct VillageReportFiled {
    pub report: VillageReportSummary,
    /// The warnings the report raised or joined (none when no rule fired).
    pub warnings: Vec<ReportWarning>,
    pub log_index: u64,
}

/// 村级报告: a report without personal data (no resident ID, no note).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct VillageReportSummary {
    /// Report id (UUIDv7).
    pub id: String,
    /// 户籍所在乡镇 (9 digits).
    pub township: String,
    /// 村（社区） (12 digits).
    pub village: String,
    /// The village's name, when it is a known village.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub village_name: Option<String>,
    pub observation: Observation,
    pub created_at: String,
    /// The identity URI of the assistant who filed it.
    pub filed_by: String,
    /// The warning it raised or joined, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning_id: Option<String>,
}

/// `GET /v1/village-reports` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct VillageReportList {
    /// Newest first.
    pub reports: Vec<VillageReportSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/village-reports` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VillageReportQuery {
    /// A county (6 digits) or township (9 digits).
    #[serde(default)]
    pub township: Option<String>,
    /// A village (12 digits).
    #[serde(default)]
    pub village: Option<String>,
    #[serde(default)]
    pub observation: Option<Observation>,
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The name of a known village of Jining.
pub fn village_name(code: &str) -> Option<String> {
    connectors::sim::villages::Villages::jining()
        .village(code)
        .map(|v| v.name.clone())
}

/// A village code as a caller gives it: 12 digits, of this hub's region, a known village.
pub fn known_village(field: &str, v: &str, region: &str) -> Result<DivisionCode, ApiError> {
    let d = DivisionCode::parse(v.trim()).map_err(|e| invalid(field, e))?;
    if d.level() != DivisionLevel::Village {
        return Err(invalid(field, "must be a village code (12 digits)"));
    }
    if !d.as_str().starts_with(region) {
        return Err(invalid(
            field,
            format!("must be a village of this hub's region ({region}…)"),
        ));
    }
    if village_name(d.as_str()).is_none() {
        return Err(invalid(field, "is not a known village (村/居委会) code"));
    }
    Ok(d)
}

fn report_aad(id: &str) -> Vec<u8> {
    format!("jsj-village-report/1 {id}").into_bytes()
}

fn region(d: &DivisionCode) -> ResourceCtx {
    ResourceCtx {
        region: Some(d.clone()),
        ..Default::default()
    }
}

/// Cedar on a report's region; a refusal is logged (with the household when known), then 403.
#[allow(clippy::too_many_arguments)]
async fn decide(
    s: &AppState,
    id: &Identity,
    action: Action,
    log: LogAction,
    at: &DivisionCode,
    rid: &str,
    subject: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    s.authz
        .require_logged(
            &s.log,
            id,
            action,
            &region(at),
            &RequestCtx::default(),
            |policy_ids| {
                entry(
                    id,
                    log,
                    false,
                    Outcome::Denied,
                    policy_ids,
                    rid,
                    None,
                    subject,
                )
            },
        )
        .await
        .map(|d| d.policy_ids)
}

/// The village a report is judged and stored under: the household's registered village when the
/// hub knows it; else the reported one, when it lies in the registered township (or none is
/// known); else the registered township (which no village assistant's division contains).
fn judged_region(
    reported: &DivisionCode,
    registered_township: Option<&str>,
    registered_village: Option<&str>,
) -> DivisionCode {
    if let Some(v) = registered_village.and_then(|v| DivisionCode::parse(v).ok()) {
        return v;
    }
    match registered_township.and_then(|t| DivisionCode::parse(t).ok()) {
        Some(t) if !t.contains(reported) => t,
        _ => reported.clone(),
    }
}

async fn file_report(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    decide(
        &s,
        &id,
        Action::FileVillageReport,
        LogAction::VillageReportFiled,
        &id.division,
        &rid,
        None,
    )
    .await?;
    let req: VillageReportRequest = crate::cases::api::parse_body(json_object(body)?)?;
    let resident_id =
        ResidentId::parse(req.resident_id.trim()).map_err(|e| invalid("resident_id", e))?;
    let reported = known_village("village", &req.village, &s.tls.rules().division_prefix)?;
    let note = req.note.trim();
    let n = note.chars().count();
    if n == 0 || n > 1000 || note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(
            "note",
            "must be 1-1000 characters without control characters",
        ));
    }
    let subject = s.keys.pseudonym(resident_id.as_str());
    let db = s.store.db();
    let (_, reg_township, reg_village) = wstore::place(&db, &subject).await?;
    let village = judged_region(&reported, reg_township.as_deref(), reg_village.as_deref());
    let policy_ids = decide(
        &s,
        &id,
        Action::FileVillageReport,
        LogAction::VillageReportFiled,
        &village,
        &rid,
        Some(&subject),
    )
    .await?;
    let Some(township) = village
        .township()
        .filter(|_| village.level() == DivisionLevel::Village)
    else {
        return Err(invalid(
            "village",
            "must lie in the household's registered township",
        ));
    };
    let report_id = uuid::Uuid::now_v7().to_string();
    let now = OffsetDateTime::now_utc();
    let now_ms = ms(now);
    let observation = req.observation;
    let (report_key, report_sealed) = s
        .keys
        .seal(
            &report_aad(&report_id),
            serde_json::json!({"resident_id": resident_id.as_str(), "note": note})
                .to_string()
                .as_bytes(),
        )
        .map_err(seal_error)?;
    let mut details = Map::new();
    details.insert("observation".into(), Value::from(observation.code()));
    // The event as the rules and a conversion read it: the same shape as a department event.
    let event = serde_json::json!({
        "event_id": report_id,
        "department": DEPARTMENT,
        "kind": observation.kind(),
        "subject": {"resident_id": resident_id.as_str()},
        "village": village.as_str(),
        "details": details,
        "filed_by": id.uri,
    });
    let (event_key, event_sealed) = s
        .keys
        .seal(
            &super::events::event_aad(&report_id),
            event.to_string().as_bytes(),
        )
        .map_err(seal_error)?;
    // Durable entry first: a failure here stores nothing.
    let logged = s
        .log
        .append(entry(
            &id,
            LogAction::VillageReportFiled,
            true,
            Outcome::Succeeded,
            policy_ids,
            &rid,
            Some(&report_id),
            Some(&subject),
        )?)
        .await?;
    let row = EventRow {
        event_id: report_id.clone(),
        received_ms: now_ms,
        pushed_by: id.uri.clone(),
        department: DEPARTMENT.to_owned(),
        kind: observation.kind(),
        occurred_ms: now_ms,
        issued_ms: now_ms,
        subject: subject.clone(),
        body_hash: s
            .keys
            .pseudonym(&format!("jsj-village-report/1 {report_id}")),
        sealed: event_sealed,
        key_id: event_key,
        signature: "null".into(),
        placement: PLACEMENT.to_owned(),
        receipt_placement: PLACEMENT.to_owned(),
        township: Some(township.to_string()),
        village: Some(village.to_string()),
        placed_ms: Some(now_ms),
        log_index: logged.index as i64,
    };
    let report = VillageReportRow {
        id: report_id.clone(),
        created_ms: now_ms,
        filed_by: id.uri.clone(),
        township: township.to_string(),
        village: village.to_string(),
        subject,
        observation: observation.code().to_owned(),
        observed_ms: now_ms,
        sealed: report_sealed,
        key_id: report_key,
        warning_id: None,
        log_index: logged.index as i64,
    };
    let engine = s.authz.engine();
    let raised = super::rules::insert_village_report(&db, &engine, &row, &details, &report)
        .await?
        .ok_or_else(|| ApiError::internal("a new report id was taken"))?;
    let report = VillageReportRow {
        warning_id: raised.first().map(|r| r.warning_id.clone()),
        ..report
    };
    let mut warnings = Vec::new();
    for w in raised {
        metrics::counter!("hub_warnings_signals_total", "rule" => w.rule.clone(), "tier" => w.tier.clone(), "attached" => if w.attached { "true" } else { "false" }).increment(1);
        warnings.push(ReportWarning {
            tier: serde_json::from_value(Value::String(w.tier))
                .map_err(|_| ApiError::internal("rule tier"))?,
            id: w.warning_id,
            rule: w.rule,
            attached: w.attached,
        });
    }
    metrics::counter!("hub_village_reports_total", "observation" => observation.code())
        .increment(1);
    tracing::info!(report_id = %report.id, village = %report.village, observation = observation.code(), "village report filed");
    Ok((
        StatusCode::CREATED,
        Json(VillageReportFiled {
            report: summary(&report)?,
            warnings,
            log_index: logged.index,
        }),
    )
        .into_response())
}

fn summary(r: &VillageReportRow) -> Result<VillageReportSummary, ApiError> {
    Ok(VillageReportSummary {
        id: r.id.clone(),
        township: r.township.clone(),
        village: r.village.clone(),
        village_name: village_name(&r.village),
        observation: Observation::from_code(&r.observation)
            .ok_or_else(|| ApiError::internal("village report row: unknown observation"))?,
        created_at: beijing(r.created_ms),
        filed_by: r.filed_by.clone(),
        warning_id: r.warning_id.clone(),
    })
}

async fn list_reports(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    q: Result<Query<VillageReportQuery>, ApiError>,
) -> Result<Json<VillageReportList>, ApiError> {
    let rid = request_id(&headers);
    let policy_ids = decide(
        &s,
        &id,
        Action::ListVillageReports,
        LogAction::VillageReportRead,
        &id.division,
        &rid,
        None,
    )
    .await?;
    let Query(q) = q?;
    let limit = crate::cases::api::page_limit(q.limit)?;
    let township = q
        .township
        .as_deref()
        .map(|t| match DivisionCode::parse(t.trim()) {
            Ok(d) if d.level() != DivisionLevel::Village => {
                Ok(crate::cases::api::division_prefix(&d).to_owned())
            }
            _ => Err(invalid(
                "township",
                "must be a county (6 digits) or township (9 digits) code",
            )),
        })
        .transpose()?;
    let village = super::village_filter(q.village.as_deref())?;
    let before = super::cursor_filter(q.cursor.as_deref())?;
    let filter = wstore::VillageReportFilter {
        division: crate::cases::api::division_prefix(&id.division).to_owned(),
        township,
        village,
        observation: q.observation.map(|o| o.code().to_owned()),
        before,
        limit,
    };
    let rows = wstore::list_village_reports(&s.store.db(), &filter).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let mut reports = Vec::new();
    for row in &rows {
        let at = DivisionCode::parse(&row.village).map_err(ApiError::internal)?;
        let seen = s
            .authz
            .decide(
                &id,
                Action::ListVillageReports,
                &region(&at),
                &RequestCtx::default(),
            )
            .allowed;
        if seen {
            reports.push(summary(row)?);
        }
    }
    s.log
        .append(entry(
            &id,
            LogAction::VillageReportRead,
            true,
            Outcome::Succeeded,
            policy_ids,
            &rid,
            None,
            None,
        )?)
        .await?;
    Ok(Json(VillageReportList {
        reports,
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> DivisionCode {
        DivisionCode::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_registered_village_wins_over_the_reported_one() {
        let reported = code("370811002001");
        let check = |t: Option<&str>, v: Option<&str>, expected: &str| {
            assert_eq!(
                judged_region(&reported, t, v).as_str(),
                expected,
                "{t:?} {v:?}"
            );
        };
        check(None, None, "370811002001");
        check(Some("370811002"), None, "370811002001");
        check(Some("370811002"), Some("370811002003"), "370811002003");
        check(Some("370811003"), None, "370811003");
    }

    #[test]
    fn observations_and_village_codes() {
        for o in Observation::ALL {
            assert_eq!(Observation::from_code(o.code()), Some(o));
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                Value::String(o.code().into())
            );
        }
        assert_eq!(Observation::NoIncome.kind(), "village.no_income");
        assert!(known_village("village", "370811002001", "3708").is_ok());
        for bad in ["370811002", "370811002999", "110101001001", "37081100200x"] {
            let e = known_village("village", bad, "3708").unwrap_err();
            assert_eq!(e.field.as_deref(), Some("village"), "{bad}");
        }
    }
}
