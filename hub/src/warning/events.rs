//! 部门事件: `POST /v1/events` (one signed event, `application/json`, or a batch of them,
//! `application/x-ndjson`) and `GET /v1/events/unmatched`.
//!
//! `POST /v1/events` runs these stages, each refusing the whole event:
//! gate (may the caller push events at all? Cedar `push_event` on its own endpoint) → department
//! (the event's `department` must be configured: 422 `unknown_department`; and be the caller's:
//! Cedar `push_event` on that department's endpoint, 403 logged) → [`receive_event`] (schema,
//! signature under the department's configured key, freshness, details) → kind (built-in or
//! `[events] kinds`: else 422 `unknown_kind`) → replay (same `event_id`: 200 with the first
//! receipt, or 409 `event_id_reused`) → place (monitoring list, then latest case, else
//! unmatched) → seal → **one group commit** of the `event_received` entry, the event's row and
//! the warning rules' writes ([`crate::log::AccessLog::append_with`]: the log's single writer
//! makes everything queued meanwhile durable in one transaction, one fsync) → 201 with the
//! receipt. The answer still comes only after durability, and an event is never stored without
//! its entry nor its warnings.
//!
//! A batch (`application/x-ndjson`, at most [`MAX_BATCH_EVENTS`] events, one a line, blank lines
//! skipped) runs the gate once, then every event through the same stages concurrently (so they
//! share group commits), and answers 200 with one `application/x-ndjson` line per event, in order:
//! `{"line": n, "status": 201|200, "receipt": {...}}` or `{"line": n, "status": 4xx, "error":
//! {"code", "message", "field"}}` — what a single push of that line would have answered.
//! Idempotent per event id as single pushes are. Departments push in bulk in practice.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use policies::{Action, RequestCtx, ResourceCtx};
use schemas::access_log::{Action as LogAction, Outcome};
use schemas::events::{EventError, ReceivedEvent, receive_event};
use schemas::{Department, Identity};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::store::{self, EventRow, Placement};
use super::{entry, ms, rfc3339, seal_error};
use crate::api::{ApiError, AppState, Query, request_id};
use crate::identity::Caller;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(schemas::events::EVENTS_PATH, post(push_event))
        .route("/v1/events/unmatched", get(list_unmatched))
}

/// 事件回执: the hub's receipt of an event.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
pub struct EventReceipt {
    /// The event's id, as the department sent it.
    pub event_id: String,
    /// When the hub first received it (RFC 3339).
    pub received_at: String,
    /// True when the hub placed the person (on the monitoring list or through a case) on receipt;
    /// false when the event is kept as unmatched.
    pub matched: bool,
    /// Index of the access-log entry of the receipt.
    pub log_index: u64,
}

/// One event the hub could not place (no resident ID, no pseudonym).
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct UnmatchedEvent {
    pub event_id: String,
    pub department: String,
    pub kind: String,
    pub occurred_at: String,
    pub received_at: String,
}

/// `GET /v1/events/unmatched` answer.
#[derive(Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct UnmatchedList {
    /// Oldest first.
    pub events: Vec<UnmatchedEvent>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /v1/events/unmatched` query.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnmatchedQuery {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The 4xx of a refused event: a stable code and the field, never a value.
fn refused(e: &EventError) -> ApiError {
    let (status, code) = match e {
        EventError::Malformed { .. } => (StatusCode::BAD_REQUEST, "malformed"),
        EventError::UnknownKey => (StatusCode::UNPROCESSABLE_ENTITY, "unknown_key"),
        EventError::BadSignature => (StatusCode::UNPROCESSABLE_ENTITY, "bad_signature"),
        EventError::Stale(_) => (StatusCode::UNPROCESSABLE_ENTITY, "stale_event"),
        EventError::Details { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_details"),
    };
    ApiError::new(status, code, e.to_string()).with_field(e.field())
}

fn unknown_department() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_department",
        "event.department: 不是本枢纽配置的部门 / not a department configured at this hub",
    )
    .with_field("event.department")
}

fn endpoint(department: Department) -> ResourceCtx {
    ResourceCtx {
        department: Some(department),
        ..Default::default()
    }
}

/// Cedar `push_event` on `department`'s endpoint; a refusal is logged, then 403.
async fn may_push(
    s: &AppState,
    id: &Identity,
    department: Department,
    rid: &str,
) -> Result<Vec<String>, ApiError> {
    s.authz
        .require_logged(
            &s.log,
            id,
            Action::PushEvent,
            &endpoint(department),
            &RequestCtx::default(),
            |policy_ids| {
                entry(
                    id,
                    LogAction::EventReceived,
                    false,
                    Outcome::Denied,
                    policy_ids,
                    rid,
                    None,
                    None,
                )
            },
        )
        .await
        .map(|d| d.policy_ids)
}

/// The `event.department` of a body, if it has one (before the body is judged).
fn claimed_department(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("event")?
        .get("department")?
        .as_str()
        .map(str::to_owned)
}

/// The keyed hash of the canonical event: the same signed event has the same, another does not.
fn body_hash(s: &AppState, r: &ReceivedEvent) -> Result<String, ApiError> {
    let canonical = schemas::protocol::canonical_json(&r.event_json)
        .map_err(|_| ApiError::internal("event not canonical"))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
    Ok(s.keys.pseudonym(&format!(
        "jsj-event-body/1 {}",
        hex::encode(digest.as_ref())
    )))
}

/// Associated data of a sealed event.
pub fn event_aad(event_id: &str) -> Vec<u8> {
    format!("jsj-event/1 {event_id}").into_bytes()
}

fn receipt(row: &EventRow) -> EventReceipt {
    EventReceipt {
        event_id: row.event_id.clone(),
        received_at: rfc3339(row.received_ms),
        matched: row.receipt_placement != Placement::Unmatched.code(),
        log_index: row.log_index.max(0) as u64,
    }
}

/// The answer to an event id seen before: the same event gets its receipt again (200, nothing
/// re-applied); another event under that id is 409.
fn seen_before(row: &EventRow, hash: &str) -> Result<(StatusCode, EventReceipt), ApiError> {
    if row.body_hash != hash {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "event_id_reused",
            "event.event_id: 该事件编号已用于另一事件 / already used for a different event",
        )
        .with_field("event.event_id"));
    }
    metrics::counter!("hub_events_replayed_total", "department" => row.department.clone())
        .increment(1);
    Ok((StatusCode::OK, receipt(row)))
}

/// The media type of a push: one event (`application/json`), a batch (`application/x-ndjson`),
/// or neither.
fn media(headers: &HeaderMap) -> Option<bool> {
    let v = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())?
        .trim_start()
        .to_ascii_lowercase();
    if v.starts_with("application/json") {
        Some(false)
    } else if v.starts_with("application/x-ndjson") {
        Some(true)
    } else {
        None
    }
}

/// Most events in one batch push (the body limit, `server.max_body_bytes`, applies too).
pub const MAX_BATCH_EVENTS: usize = 1000;

/// Events of one batch in flight at once (their log entries and rows share group commits).
const BATCH_IN_FLIGHT: usize = 256;

/// One line of a batch push's answer: the event's receipt (201 new, 200 seen before) or its
/// refusal (the same code and field as a single push would get).
#[derive(Debug, Serialize)]
struct BatchLine {
    /// 1-based line number in the request body.
    line: usize,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<EventReceipt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<crate::api::ErrorDetail>,
}

async fn push_event(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    // Gate: a department pushing on its own endpoint. Other roles are decided on some endpoint, so
    // that Cedar names the policy that refuses them (`protocol-departments-only`).
    let own = Department::from_code(&id.organisation).unwrap_or(Department::CivilAffairs);
    may_push(&s, &id, own, &rid).await?;
    let Some(batch) = media(&headers) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "content-type: must be application/json (one event) or application/x-ndjson (a batch)",
        )
        .with_field("content-type"));
    };
    let body =
        body.map_err(|_| ApiError::bad_request("malformed", "body", "body: could not be read"))?;
    if !batch {
        let (status, receipt) = ingest(&s, &id, &rid, &body).await?;
        return Ok((status, Json(receipt)).into_response());
    }
    push_batch(&s, &id, &rid, &body).await
}

/// A batch push: one signed event a line (blank lines skipped), each judged and stored as a
/// single push would be, concurrently, so that their entries and rows share group commits; the
/// answer is 200 with one line per event, in order.
async fn push_batch(
    s: &AppState,
    id: &Identity,
    rid: &str,
    body: &Bytes,
) -> Result<Response, ApiError> {
    use futures::StreamExt as _;
    // Owned slices of the body (no copy), so that the stream's items borrow nothing.
    let mut lines: Vec<(usize, Bytes)> = Vec::new();
    let mut start = 0;
    for (n, part) in body.split(|b| *b == b'\n').enumerate() {
        let end = start + part.len();
        if !part.trim_ascii().is_empty() {
            lines.push((n + 1, body.slice(start..end)));
        }
        start = end + 1;
    }
    if lines.is_empty() || lines.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::bad_request(
            "malformed",
            "body",
            format!("body: must hold 1-{MAX_BATCH_EVENTS} events, one a line"),
        ));
    }
    let answers: Vec<BatchLine> = futures::stream::iter(lines)
        .map(|(line, l)| async move {
            match ingest(s, id, rid, l.trim_ascii()).await {
                Ok((status, receipt)) => BatchLine {
                    line,
                    status: status.as_u16(),
                    receipt: Some(receipt),
                    error: None,
                },
                Err(e) => BatchLine {
                    line,
                    status: e.status.as_u16(),
                    receipt: None,
                    error: Some(crate::api::ErrorDetail {
                        code: e.code.to_owned(),
                        message: e.message,
                        field: e.field,
                    }),
                },
            }
        })
        .buffered(BATCH_IN_FLIGHT)
        .collect()
        .await;
    let mut out = Vec::with_capacity(answers.len() * 160);
    for a in &answers {
        serde_json::to_writer(&mut out, a).map_err(ApiError::internal)?;
        out.push(b'\n');
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        out,
    )
        .into_response())
}

/// What the group commit does for one event: its row and the warning rules, in the access log's
/// batch transaction (see [`crate::log::Attached`]).
struct EventWrite {
    row: EventRow,
    details: serde_json::Map<String, Value>,
    engine: std::sync::Arc<policies::PolicyEngine>,
    outcome: WriteOutcome,
}

/// What an [`EventWrite`] did: `Some(Ok(None))` the id was taken meanwhile; `None` not run.
type WriteOutcome =
    std::sync::Arc<std::sync::Mutex<Option<Result<Option<Vec<super::rules::Raised>>, String>>>>;

impl crate::log::Attached for EventWrite {
    fn write<'a>(
        &'a mut self,
        conn: crate::log::TxConn<'a>,
        placed: &'a crate::log::Placed,
    ) -> crate::log::AttachedFuture<'a> {
        Box::pin(async move {
            // `append_with`: a group of one entry.
            let r = match placed.indexes.first() {
                Some(index) => {
                    self.row.log_index = *index as i64;
                    super::rules::insert_event_in(conn, &self.engine, &self.row, &self.details)
                        .await
                        .map_err(|e| e.to_string())
                }
                None => Err("no access-log entry was placed for the event".to_owned()),
            };
            let ok = r.is_ok();
            if let Ok(mut o) = self.outcome.lock() {
                *o = Some(r);
            }
            ok
        })
    }
}

/// One signed event after the gate: department, signature, kind, replay, place, seal, then the
/// `event_received` entry, the row and the warning rules made durable in one group commit.
async fn ingest(
    s: &AppState,
    id: &Identity,
    rid: &str,
    body: &[u8],
) -> Result<(StatusCode, EventReceipt), ApiError> {
    // The department the event names: configured, and the caller's (Cedar).
    let mut checked = None;
    let mut policy_ids = Vec::new();
    if let Some(code) = claimed_department(body) {
        let department = Department::from_code(&code)
            .filter(|_| !s.verify.department_keys(&code).is_empty())
            .ok_or_else(unknown_department)?;
        policy_ids = may_push(s, id, department, rid).await?;
        checked = Some(code);
    }
    let now = OffsetDateTime::now_utc();
    let received = receive_event(
        body,
        |code| s.verify.department_keys(code),
        now,
        s.warning.freshness,
    )
    .map_err(|e| refused(&e))?;
    let event = &received.event;
    if checked.as_deref() != Some(event.department.as_str()) {
        // Unreachable: a body that passed the schema names its department.
        return Err(ApiError::internal("event department not decided"));
    }
    // The kind: one the department's entry in `policies/departments.toml` lists (the built-ins'
    // own kinds by default), or one the hub's `[events] kinds` adds.
    let listed = s
        .authz
        .engine()
        .departments()
        .may_push(&event.department, &event.kind);
    if !listed && !s.warning.extra_kinds.contains(&event.kind) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_kind",
            "event.kind: 不是本枢纽接受的事件类型 / not an event kind this hub accepts",
        )
        .with_field("event.kind"));
    }
    let event_id = event.event_id.to_string();
    let hash = body_hash(s, &received)?;
    let db = s.store.db();
    if let Some(row) = store::get_event(&db, &event_id).await? {
        return seen_before(&row, &hash);
    }
    let row = build_row(s, id, &received, &event_id, hash.clone(), now).await?;
    let log_entry = entry(
        id,
        LogAction::EventReceived,
        true,
        Outcome::Succeeded,
        policy_ids,
        rid,
        Some(&event_id),
        Some(&row.subject),
    )?;
    let outcome = std::sync::Arc::new(std::sync::Mutex::new(None));
    let write = EventWrite {
        row: row.clone(),
        details: received.event.details.clone(),
        engine: s.authz.engine(),
        outcome: outcome.clone(),
    };
    // Durable when this returns: the entry, the row and its warnings, in one commit.
    let logged = s.log.append_with(log_entry, Box::new(write)).await?;
    let done = outcome.lock().map(|mut o| o.take()).unwrap_or_default();
    let raised = match done {
        Some(Ok(Some(raised))) => raised,
        Some(Ok(None)) => {
            // A concurrent push of the same id stored first.
            let first = store::get_event(&db, &event_id)
                .await?
                .ok_or_else(|| ApiError::internal("event id taken but not found"))?;
            return seen_before(&first, &hash);
        }
        Some(Err(e)) => return Err(ApiError::internal(e)),
        None => return Err(ApiError::internal("event not written")),
    };
    let row = EventRow {
        log_index: logged.index as i64,
        ..row
    };
    for w in &raised {
        metrics::counter!("hub_warnings_signals_total", "rule" => w.rule.clone(), "tier" => w.tier.clone(), "attached" => if w.attached { "true" } else { "false" }).increment(1);
    }
    metrics::counter!("hub_events_received_total", "department" => row.department.clone(), "kind" => row.kind.clone(), "placement" => row.placement.clone()).increment(1);
    if row.placement == Placement::Unmatched.code() {
        metrics::counter!("hub_events_unmatched_total", "department" => row.department.clone(), "kind" => row.kind.clone()).increment(1);
    }
    tracing::info!(event_id = %event_id, department = %row.department, kind = %row.kind, placement = %row.placement, "department event received");
    Ok((StatusCode::CREATED, receipt(&row)))
}

/// Place the person and seal the event (the canonical `event` as received, which the signature
/// covers, so it can be re-verified later).
async fn build_row(
    s: &AppState,
    id: &Identity,
    r: &ReceivedEvent,
    event_id: &str,
    body_hash: String,
    now: OffsetDateTime,
) -> Result<EventRow, ApiError> {
    let subject = s.keys.pseudonym(r.event.subject.resident_id.as_str());
    let (placement, township, village) = store::place(&s.store.db(), &subject).await?;
    let canonical = schemas::protocol::canonical_json(&r.event_json)
        .map_err(|_| ApiError::internal("event not canonical"))?;
    let (key_id, sealed) = s
        .keys
        .seal(&event_aad(event_id), &canonical)
        .map_err(seal_error)?;
    let now_ms = ms(now);
    Ok(EventRow {
        event_id: event_id.to_owned(),
        received_ms: now_ms,
        pushed_by: id.uri.clone(),
        department: r.event.department.clone(),
        kind: r.event.kind.clone(),
        occurred_ms: ms(r.event.occurred_at),
        issued_ms: ms(r.event.issued_at),
        subject,
        body_hash,
        sealed,
        key_id,
        signature: serde_json::to_string(&r.signature).map_err(ApiError::internal)?,
        placement: placement.code().to_owned(),
        receipt_placement: placement.code().to_owned(),
        township,
        village,
        placed_ms: (placement != Placement::Unmatched).then_some(now_ms),
        log_index: 0,
    })
}

/// Decide `read_monitoring` or `manage_monitoring` for the caller; a refusal is logged, then 403.
pub(super) async fn may_monitor(
    s: &AppState,
    id: &Identity,
    action: Action,
    log_action: LogAction,
    rid: &str,
) -> Result<Vec<String>, ApiError> {
    s.authz
        .require_logged(
            &s.log,
            id,
            action,
            &ResourceCtx::default(),
            &RequestCtx::default(),
            |policy_ids| {
                entry(
                    id,
                    log_action,
                    false,
                    Outcome::Denied,
                    policy_ids,
                    rid,
                    None,
                    None,
                )
            },
        )
        .await
        .map(|d| d.policy_ids)
}

const MAX_PAGE: u32 = 200;

pub(crate) async fn list_unmatched(
    State(s): State<AppState>,
    Caller(id): Caller,
    headers: HeaderMap,
    q: Result<Query<UnmatchedQuery>, ApiError>,
) -> Result<Json<UnmatchedList>, ApiError> {
    let rid = request_id(&headers);
    let policy_ids = may_monitor(
        &s,
        &id,
        Action::ReadMonitoring,
        LogAction::MonitoringRead,
        &rid,
    )
    .await?;
    let Query(q) = q?;
    let limit = match q.limit {
        None => 50,
        Some(n) if (1..=MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::bad_request(
                "validation_failed",
                "limit",
                format!("limit: must be 1-{MAX_PAGE}"),
            ));
        }
    };
    let after = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.split_once('.')
                .and_then(|(ms, id)| {
                    let ms = ms.parse::<i64>().ok()?;
                    uuid::Uuid::parse_str(id).ok()?;
                    Some((ms, id.to_owned()))
                })
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "validation_failed",
                        "cursor",
                        "cursor: must be a cursor from a previous page",
                    )
                })?,
        ),
    };
    let rows = store::unmatched_events(&s.store.db(), after, i64::from(limit)).await?;
    s.log
        .append(entry(
            &id,
            LogAction::MonitoringRead,
            true,
            Outcome::Succeeded,
            policy_ids,
            &rid,
            None,
            None,
        )?)
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| {
            rows.last()
                .map(|r| format!("{}.{}", r.received_ms, r.event_id))
        })
        .flatten();
    Ok(Json(UnmatchedList {
        events: rows
            .into_iter()
            .map(|r| UnmatchedEvent {
                occurred_at: rfc3339(r.occurred_ms),
                received_at: rfc3339(r.received_ms),
                event_id: r.event_id,
                department: r.department,
                kind: r.kind,
            })
            .collect(),
        next_cursor,
    }))
}
