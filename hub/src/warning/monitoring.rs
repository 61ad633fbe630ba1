//! 低收入人口动态监测名单: the households civil affairs keeps under monitoring, by category (低保边缘
//! `dibao_edge`, 支出型困难 `expenditure_hardship`, 易返贫致贫 `poverty_risk`, and those of
//! `[monitoring] categories`), with the household head's resident ID, the registered township
//! (9 digits) and village (12 digits, optional, inside the township), since when, why, and whether
//! the entry is `active` or `removed`.
//!
//! - `POST /v1/monitoring/uploads` (批量导入): `text/csv` (a header row naming the columns
//!   `category,resident_id,township,village,since,reason,status`; `village` and `status` may be
//!   left out) or `application/x-ndjson` (one JSON object a line, the same fields). The body is
//!   read as a stream, line by line, and written in transactions of [`BATCH`] households, so an
//!   upload of any size up to [`MAX_UPLOAD_BYTES`] is never held in memory. Upsert by (head's
//!   pseudonym, category): a line that changes nothing writes nothing, so re-uploading a file is
//!   harmless. A bad line is counted and reported (line number, field, rule; never its values);
//!   the others are applied. An upload cut off midway (a dropped connection, 413) has applied the
//!   batches committed before; re-uploading the file completes it.
//! - `POST /v1/monitoring/households` (one household, JSON) and
//!   `POST /v1/monitoring/households/remove` (`{resident_id, category}` in the body, never in a URL).
//!
//! After every change, department events kept as unmatched whose person is now on the list are
//! placed ([`super::rules::place_unmatched`], which also runs the warning rules on them). One `monitoring_changed` access-log entry per
//! upload (its id as `case_ref`) or per household (its pseudonym as subject), durable before
//! anything is written.

use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt as _;
use policies::Action;
use schemas::access_log::{Action as LogAction, Outcome};
use schemas::division::DivisionLevel;
use schemas::{DivisionCode, Identity, ResidentId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::events::may_monitor;
use super::store::{self, HouseholdRow, Written};
use super::{entry, ms, seal_error};
use crate::api::{ApiError, AppState, json_object, request_id};
use crate::identity::Caller;

pub const UPLOAD_PATH: &str = "/v1/monitoring/uploads";
/// The body limit of an upload (this route only; `server.max_body_bytes` elsewhere).
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;
/// Households written per transaction.
pub const BATCH: usize = 1000;
/// The longest line of an upload, in bytes.
pub const MAX_LINE: usize = 4096;
/// At most this many rejected lines are listed in the answer (all are counted).
pub const MAX_REJECTIONS_LISTED: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(UPLOAD_PATH, post(upload))
        .route("/v1/monitoring/households", post(put_household))
        .route("/v1/monitoring/households/remove", post(remove_household))
}

/// A resident ID (GB 11643-1999).
const RESIDENT_ID_PATTERN: &str = crate::verify::api::RESIDENT_ID_PATTERN;

/// 监测对象: one household under monitoring, as civil affairs enters it (a JSON body, or one line
/// of an upload).
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitoredHousehold {
    /// 监测类别: `dibao_edge` (低保边缘), `expenditure_hardship` (支出型困难), `poverty_risk`
    /// (易返贫致贫), or a category of `[monitoring] categories`.
    #[schemars(length(min = 2, max = 32))]
    pub category: String,
    /// 户主公民身份号码 (the household head's resident ID).
    #[schemars(pattern(RESIDENT_ID_PATTERN))]
    pub resident_id: String,
    /// 户籍所在乡镇 (9 digits, in this hub's region).
    #[schemars(pattern(r"^(0[1-9]|[1-9][0-9])[0-9]{7}$"))]
    pub township: String,
    /// 户籍所在村（社区） (12 digits, inside `township`).
    #[serde(default)]
    #[schemars(pattern(r"^(0[1-9]|[1-9][0-9])[0-9]{10}$"))]
    pub village: Option<String>,
    /// 纳入监测日期, `YYYY-MM-DD`, not in the future.
    #[schemars(length(min = 10, max = 10))]
    pub since: String,
    /// 纳入监测原因: 1-500 characters.
    #[schemars(length(min = 1, max = 500))]
    pub reason: String,
    /// `active` (default) or `removed`.
    #[serde(default)]
    pub status: Option<MonitoringStatus>,
}

/// Whether a household is under monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MonitoringStatus {
    /// 监测中
    Active,
    /// 已退出监测
    Removed,
}

impl MonitoringStatus {
    fn code(self) -> &'static str {
        match self {
            MonitoringStatus::Active => "active",
            MonitoringStatus::Removed => "removed",
        }
    }
}

/// `POST /v1/monitoring/households/remove` body.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveHousehold {
    #[schemars(pattern(RESIDENT_ID_PATTERN))]
    pub resident_id: String,
    #[schemars(length(min = 2, max = 32))]
    pub category: String,
}

/// What writing one household did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HouseholdResult {
    Inserted,
    Updated,
    Unchanged,
    Removed,
}

/// The answer to a change of one household (no resident ID).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct HouseholdChanged {
    pub result: HouseholdResult,
    pub category: String,
    /// Department events of this person placed by the change (they were unmatched).
    pub events_placed: u64,
    /// Index of the access-log entry of the change.
    pub log_index: u64,
}

/// One rejected line of an upload: where and why, never its values.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
pub struct RejectedLine {
    /// 1-based line number in the file (the CSV header is line 1).
    pub line: u64,
    pub field: String,
    pub rule: String,
}

/// The answer to an upload.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct UploadResult {
    pub upload_id: String,
    /// `csv` or `ndjson`.
    pub format: String,
    /// Households added to the list.
    pub inserted: u64,
    /// Households whose entry changed.
    pub updated: u64,
    /// Lines that changed nothing (already on the list as given).
    pub unchanged: u64,
    /// Lines refused (not applied).
    pub rejected: u64,
    /// The first rejected lines (at most 100).
    pub rejections: Vec<RejectedLine>,
    /// Department events placed because their person is now on the list.
    pub events_placed: u64,
    /// Index of the access-log entry of the upload.
    pub log_index: u64,
}

// ==== checking one household ====

/// A problem with one household: the field and the rule (no value).
type Problem = (String, String);

fn problem(field: &str, rule: impl Into<String>) -> Problem {
    (field.to_owned(), rule.into())
}

fn parse_date(v: &str) -> Option<time::Date> {
    time::Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// Check one household and make its row (pseudonym, sealed ID and reason, content hash).
fn household_row(
    s: &AppState,
    h: &MonitoredHousehold,
    by: &str,
    upload_id: Option<&str>,
    now: OffsetDateTime,
) -> Result<Result<HouseholdRow, Problem>, ApiError> {
    let category = h.category.trim();
    if !s.warning.categories.contains(category) {
        return Ok(Err(problem(
            "category",
            "not a monitoring category of this hub",
        )));
    }
    let resident_id = match ResidentId::parse(h.resident_id.trim()) {
        Ok(r) => r,
        Err(e) => return Ok(Err(problem("resident_id", e.to_string()))),
    };
    let region = &s.tls.rules().division_prefix;
    let township = match DivisionCode::parse(h.township.trim()) {
        Ok(d)
            if d.level() == DivisionLevel::Township && d.as_str().starts_with(region.as_str()) =>
        {
            d
        }
        Ok(_) | Err(_) => {
            return Ok(Err(problem(
                "township",
                format!("must be a township code (9 digits) of this hub's region ({region}…)"),
            )));
        }
    };
    let village = match h
        .village
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(v) if v.len() == 12 && v.bytes().all(|b| b.is_ascii_digit()) => {
            if !v.starts_with(township.as_str()) {
                return Ok(Err(problem("village", "must lie inside `township`")));
            }
            Some(v.to_owned())
        }
        Some(_) => {
            return Ok(Err(problem(
                "village",
                "must be a village code (12 digits)",
            )));
        }
    };
    let since = match parse_date(h.since.trim()) {
        Some(d) if d <= (now + time::Duration::days(1)).date() => d,
        Some(_) => return Ok(Err(problem("since", "must not be in the future"))),
        None => return Ok(Err(problem("since", "must be a date, YYYY-MM-DD"))),
    };
    let reason = h.reason.trim();
    let n = reason.chars().count();
    if n == 0 || n > 500 || reason.chars().any(char::is_control) {
        return Ok(Err(problem(
            "reason",
            "must be 1-500 characters, no control characters",
        )));
    }
    let status = h.status.unwrap_or(MonitoringStatus::Active).code();
    let subject = s.keys.pseudonym(resident_id.as_str());
    let since = since.to_string();
    let plain = serde_json::to_vec(&serde_json::json!({
        "resident_id": resident_id.as_str(),
        "reason": reason,
    }))
    .map_err(ApiError::internal)?;
    let (key_id, sealed) = s
        .keys
        .seal(&household_aad(&subject, category), &plain)
        .map_err(seal_error)?;
    let content = serde_json::json!([township.as_str(), village, since, reason, status]);
    Ok(Ok(HouseholdRow {
        content_hash: s
            .keys
            .pseudonym(&format!("jsj-monitoring-content/1 {category} {content}")),
        subject,
        category: category.to_owned(),
        township: township.as_str().to_owned(),
        village,
        since,
        status: status.to_owned(),
        sealed,
        key_id,
        updated_ms: ms(now),
        updated_by: by.to_owned(),
        upload_id: upload_id.map(str::to_owned),
    }))
}

/// Associated data of a household's sealed fields.
pub fn household_aad(subject: &str, category: &str) -> Vec<u8> {
    format!("jsj-monitoring/1 {subject} {category}").into_bytes()
}

fn parse_json<T: serde::de::DeserializeOwned + schemars::JsonSchema + 'static>(
    body: Result<Json<Value>, JsonRejection>,
) -> Result<T, ApiError> {
    let bytes = serde_json::to_vec(&json_object(body)?).map_err(ApiError::internal)?;
    crate::api::extract::parse_object(&bytes)
}

fn invalid((field, rule): Problem) -> ApiError {
    ApiError::bad_request(
        "validation_failed",
        field.clone(),
        format!("{field}: {rule}"),
    )
}

fn log_change(
    id: &Identity,
    policy_ids: Vec<String>,
    rid: &str,
    case_ref: Option<&str>,
    subject: Option<&str>,
) -> Result<schemas::access_log::AccessLogEntry, ApiError> {
    entry(
        id,
        LogAction::MonitoringChanged,
        true,
        Outcome::Succeeded,
        policy_ids,
        rid,
        case_ref,
        subject,
    )
}

// ==== one by one ====

async fn put_household(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let policy_ids = may_monitor(
        &s,
        &id,
        Action::ManageMonitoring,
        LogAction::MonitoringChanged,
        &rid,
    )
    .await?;
    let h: MonitoredHousehold = parse_json(body)?;
    let now = OffsetDateTime::now_utc();
    let row = household_row(&s, &h, &id.uri, None, now)?.map_err(invalid)?;
    let logged = s
        .log
        .append(log_change(&id, policy_ids, &rid, None, Some(&row.subject))?)
        .await?;
    let db = s.store.db();
    let written = store::upsert_households(&db, std::slice::from_ref(&row)).await?;
    let placed = super::rules::place_unmatched(&s, Some(&row.subject), ms(now)).await?;
    let (status, result) = match written.first() {
        Some(Written::Inserted) => (StatusCode::CREATED, HouseholdResult::Inserted),
        Some(Written::Updated) => (StatusCode::OK, HouseholdResult::Updated),
        _ => (StatusCode::OK, HouseholdResult::Unchanged),
    };
    tracing::info!(category = %row.category, township = %row.township, result = ?result, "monitoring list: household written");
    Ok((
        status,
        Json(HouseholdChanged {
            result,
            category: row.category,
            events_placed: placed,
            log_index: logged.index,
        }),
    )
        .into_response())
}

async fn remove_household(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let policy_ids = may_monitor(
        &s,
        &id,
        Action::ManageMonitoring,
        LogAction::MonitoringChanged,
        &rid,
    )
    .await?;
    let r: RemoveHousehold = parse_json(body)?;
    let resident_id = ResidentId::parse(r.resident_id.trim())
        .map_err(|e| invalid(problem("resident_id", e.to_string())))?;
    let category = r.category.trim();
    if !s.warning.categories.contains(category) {
        return Err(invalid(problem(
            "category",
            "not a monitoring category of this hub",
        )));
    }
    let subject = s.keys.pseudonym(resident_id.as_str());
    let db = s.store.db();
    if !matches!(store::household(&db, &subject, category).await?, Some((st, _)) if st == "active")
    {
        return Err(ApiError::not_found(
            "该户不在此类别的监测名单中 / no active monitoring entry for this person and category",
        ));
    }
    let logged = s
        .log
        .append(log_change(&id, policy_ids, &rid, None, Some(&subject))?)
        .await?;
    let now = ms(OffsetDateTime::now_utc());
    store::remove_household(&db, &subject, category, now, &id.uri).await?;
    Ok((
        StatusCode::OK,
        Json(HouseholdChanged {
            result: HouseholdResult::Removed,
            category: category.to_owned(),
            events_placed: 0,
            log_index: logged.index,
        }),
    )
        .into_response())
}

// ==== bulk upload ====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Ndjson,
}

impl Format {
    fn of(headers: &HeaderMap) -> Option<Format> {
        let ct = headers
            .get(header::CONTENT_TYPE)?
            .to_str()
            .ok()?
            .split(';')
            .next()?
            .trim()
            .to_ascii_lowercase();
        match ct.as_str() {
            "text/csv" => Some(Format::Csv),
            "application/x-ndjson" | "application/jsonl" => Some(Format::Ndjson),
            _ => None,
        }
    }
    fn code(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }
}

/// The columns of a CSV upload.
const COLUMNS: [&str; 7] = [
    "category",
    "resident_id",
    "township",
    "village",
    "since",
    "reason",
    "status",
];
const REQUIRED_COLUMNS: [&str; 5] = ["category", "resident_id", "township", "since", "reason"];

/// The fields of one CSV line (RFC 4180 quoting within the line; no line breaks inside a field).
fn csv_fields(line: &str) -> Result<Vec<String>, &'static str> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cur.push(c);
            }
        } else {
            match c {
                ',' => out.push(std::mem::take(&mut cur)),
                '"' if cur.is_empty() => quoted = true,
                _ => cur.push(c),
            }
        }
    }
    if quoted {
        return Err("a quoted field is not closed");
    }
    out.push(cur);
    Ok(out)
}

/// The CSV header: which column is which. Errors name the header (line 1).
fn csv_header(line: &str) -> Result<Vec<usize>, ApiError> {
    let bad = |rule: String| {
        ApiError::bad_request(
            "validation_failed",
            "header",
            format!("header (line 1): {rule}"),
        )
    };
    let names = csv_fields(line).map_err(|r| bad(r.to_owned()))?;
    let mut order = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let n = n.trim();
        let Some(col) = COLUMNS.iter().position(|c| *c == n) else {
            return Err(bad(format!(
                "column {} is not one of {}",
                i + 1,
                COLUMNS.join(", ")
            )));
        };
        if order.contains(&col) {
            return Err(bad(format!("column {} is named twice", i + 1)));
        }
        order.push(col);
    }
    for r in REQUIRED_COLUMNS {
        if !order.iter().any(|c| COLUMNS[*c] == r) {
            return Err(bad(format!("the column `{r}` is required")));
        }
    }
    Ok(order)
}

fn csv_household(line: &str, order: &[usize]) -> Result<MonitoredHousehold, Problem> {
    let fields = csv_fields(line).map_err(|r| problem("line", r))?;
    if fields.len() != order.len() {
        return Err(problem(
            "line",
            format!("has {} fields, the header {}", fields.len(), order.len()),
        ));
    }
    let mut v: [Option<String>; 7] = Default::default();
    for (f, col) in fields.into_iter().zip(order) {
        v[*col] = Some(f);
    }
    let take = |i: usize| v[i].clone().unwrap_or_default();
    let status = match v[6].as_deref().map(str::trim) {
        None | Some("") | Some("active") => None,
        Some("removed") => Some(MonitoringStatus::Removed),
        Some(_) => return Err(problem("status", "must be active or removed")),
    };
    Ok(MonitoredHousehold {
        category: take(0),
        resident_id: take(1),
        township: take(2),
        village: v[3].clone(),
        since: take(4),
        reason: take(5),
        status,
    })
}

fn ndjson_household(line: &str) -> Result<MonitoredHousehold, Problem> {
    crate::api::extract::parse_object::<MonitoredHousehold>(line.as_bytes()).map_err(|e| {
        let field = e.field.clone().unwrap_or_else(|| "line".into());
        let rule = e
            .message
            .strip_prefix(&format!("{field}: "))
            .unwrap_or(&e.message)
            .to_owned();
        (field, rule)
    })
}

/// The state of one upload while its lines stream in.
struct Upload<'a> {
    s: &'a AppState,
    by: String,
    id: String,
    format: Format,
    now: OffsetDateTime,
    header: Option<Vec<usize>>,
    batch: Vec<HouseholdRow>,
    result: UploadResult,
}

impl Upload<'_> {
    fn reject(&mut self, line: u64, (field, rule): Problem) {
        self.result.rejected += 1;
        if self.result.rejections.len() < MAX_REJECTIONS_LISTED {
            self.result
                .rejections
                .push(RejectedLine { line, field, rule });
        }
    }

    /// One line of the file (without its line break).
    async fn line(&mut self, no: u64, raw: &[u8]) -> Result<(), ApiError> {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = if no == 1 {
            raw.strip_prefix("\u{feff}".as_bytes()).unwrap_or(raw)
        } else {
            raw
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            self.reject(no, problem("line", "not UTF-8 (save the file as UTF-8)"));
            return Ok(());
        };
        if text.trim().is_empty() {
            return Ok(());
        }
        let parsed = match (self.format, &self.header) {
            (Format::Csv, None) => {
                self.header = Some(csv_header(text)?);
                return Ok(());
            }
            (Format::Csv, Some(order)) => csv_household(text, order),
            (Format::Ndjson, _) => ndjson_household(text),
        };
        let h = match parsed {
            Ok(h) => h,
            Err(p) => {
                self.reject(no, p);
                return Ok(());
            }
        };
        match household_row(self.s, &h, &self.by, Some(&self.id), self.now)? {
            Ok(row) => self.batch.push(row),
            Err(p) => self.reject(no, p),
        }
        if self.batch.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Write the batch in one transaction.
    async fn flush(&mut self) -> Result<(), ApiError> {
        let written = store::upsert_households(&self.s.store.db(), &self.batch).await?;
        for w in written {
            match w {
                Written::Inserted => self.result.inserted += 1,
                Written::Updated => self.result.updated += 1,
                Written::Unchanged => self.result.unchanged += 1,
            }
        }
        self.batch.clear();
        Ok(())
    }
}

async fn upload(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let policy_ids = may_monitor(
        &s,
        &id,
        Action::ManageMonitoring,
        LogAction::MonitoringChanged,
        &rid,
    )
    .await?;
    let format = Format::of(&headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "content-type: must be text/csv or application/x-ndjson",
        )
        .with_field("content-type")
    })?;
    let upload_id = uuid::Uuid::now_v7().to_string();
    // Durable before anything is written.
    let logged = s
        .log
        .append(log_change(&id, policy_ids, &rid, Some(&upload_id), None)?)
        .await?;
    let mut up = Upload {
        s: &s,
        by: id.uri.clone(),
        id: upload_id.clone(),
        format,
        now: OffsetDateTime::now_utc(),
        header: None,
        batch: Vec::with_capacity(BATCH),
        result: UploadResult {
            upload_id: upload_id.clone(),
            format: format.code().to_owned(),
            inserted: 0,
            updated: 0,
            unchanged: 0,
            rejected: 0,
            rejections: Vec::new(),
            events_placed: 0,
            log_index: logged.index,
        },
    };
    // Line by line as the chunks arrive: at most one line (MAX_LINE) and one batch in memory.
    let mut stream = body.into_data_stream();
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE);
    let mut too_long = false;
    let mut no: u64 = 1;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request("malformed", "body", "body: could not be read to the end")
        })?;
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let (piece, ended) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = if ended { &rest[piece.len() + 1..] } else { &[] };
            if !too_long {
                if line.len() + piece.len() > MAX_LINE {
                    too_long = true;
                    line.clear();
                } else {
                    line.extend_from_slice(piece);
                }
            }
            if ended {
                if too_long {
                    up.reject(no, problem("line", format!("longer than {MAX_LINE} bytes")));
                } else {
                    up.line(no, &line).await?;
                }
                line.clear();
                too_long = false;
                no += 1;
            }
        }
    }
    if too_long {
        up.reject(no, problem("line", format!("longer than {MAX_LINE} bytes")));
    } else if !line.is_empty() {
        up.line(no, &line).await?;
    }
    if format == Format::Csv && up.header.is_none() {
        return Err(ApiError::bad_request(
            "validation_failed",
            "header",
            "header (line 1): missing; the first line names the columns",
        ));
    }
    up.flush().await?;
    let now = ms(up.now);
    let mut result = up.result;
    result.events_placed = super::rules::place_unmatched(&s, None, now).await?;
    store::insert_upload(
        &s.store.db(),
        &store::UploadRow {
            id: upload_id.clone(),
            created_ms: now,
            uploaded_by: id.uri.clone(),
            format: format.code().to_owned(),
            inserted: result.inserted as i64,
            updated: result.updated as i64,
            unchanged: result.unchanged as i64,
            rejected: result.rejected as i64,
            log_index: logged.index as i64,
        },
    )
    .await?;
    tracing::info!(upload_id = %upload_id, format = format.code(), inserted = result.inserted, updated = result.updated, unchanged = result.unchanged, rejected = result.rejected, events_placed = result.events_placed, "monitoring list uploaded");
    Ok((StatusCode::OK, Json(result)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_split_and_unquote() {
        let check = |line: &str, want: Result<Vec<&str>, &str>| {
            assert_eq!(
                csv_fields(line),
                want.map(|v| v.into_iter().map(str::to_owned).collect()),
                "{line}"
            );
        };
        check("a,b,c", Ok(vec!["a", "b", "c"]));
        check("a,,c", Ok(vec!["a", "", "c"]));
        check(r#""a,b",c"#, Ok(vec!["a,b", "c"]));
        check(r#""say ""hi""",x"#, Ok(vec![r#"say "hi""#, "x"]));
        check(r#""open,x"#, Err("a quoted field is not closed"));
        check("", Ok(vec![""]));
    }

    #[test]
    fn the_header_names_known_columns_once() {
        assert!(csv_header("category,resident_id,township,since,reason").is_ok());
        assert!(csv_header("category,resident_id,township,village,since,reason,status").is_ok());
        for (bad, why) in [
            (
                "category,resident_id,township,since",
                "`reason` is required",
            ),
            (
                "category,resident_id,township,since,reason,name",
                "column 6",
            ),
            (
                "category,category,resident_id,township,since,reason",
                "named twice",
            ),
        ] {
            let e = csv_header(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("header"));
            assert!(e.message.contains(why), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn a_csv_line_maps_to_a_household_by_the_header() {
        let order = csv_header("resident_id,category,township,since,reason,status").unwrap();
        let h = csv_household(
            "X,dibao_edge,370811002,2026-01-01,\"病,残\",removed",
            &order,
        )
        .unwrap();
        assert_eq!(h.category, "dibao_edge");
        assert_eq!(h.reason, "病,残");
        assert_eq!(h.status, Some(MonitoringStatus::Removed));
        assert_eq!(
            csv_household("a,b", &order).unwrap_err().0,
            "line",
            "wrong field count"
        );
        assert_eq!(
            csv_household("X,dibao_edge,370811002,2026-01-01,r,maybe", &order)
                .unwrap_err()
                .0,
            "status"
        );
    }
}
