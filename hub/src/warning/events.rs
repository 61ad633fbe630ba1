//! 部门事件: `POST /v1/events` (one signed event, `application/json`, or a batch of them,
//! `application/x-ndjson`) and `GET /v1/events/unmatched`.
//!
//! `POST /v1/events` runs these stages, each refusing the whole event:
//! gate (may the caller push events at all? Cedar `push_event` on its own endpoint) → department
//! (the event's `department` must be configured: 422 `unknown_department`; and be the caller's:
//! Cedar `push_event` on that department's endpoint, 403 logged) → [`receive_parsed`] (schema,
//! signature under the department's configured key, freshness, details) → kind (built-in or
//! `[events] kinds`: else 422 `unknown_kind`) → replay (same `event_id`: 200 with the first
//! receipt, or 409 `event_id_reused`) → place (monitoring list, then latest case, else
//! unmatched) → seal → **one group commit** of the `event_received` entry, the event's row and
//! the warning rules' writes ([`crate::log::AccessLog::append_many_with`]: the log's single
//! writer makes everything queued meanwhile durable in one transaction, one fsync) → 201 with
//! the receipt. The answer still comes only after durability, and an event is never stored
//! without its entry nor its warnings.
//!
//! A batch (`application/x-ndjson`, at most [`MAX_BATCH_EVENTS`] events, one a line, blank lines
//! skipped) runs the gate once, then all its events through the same stages **as one pipeline**
//! ([`ingest`]; a single push is a pipeline of one): every line checked (its pure part, parsed
//! once, on all cores for a batch of [`INLINE_LINES`] or more; Cedar once per department), one query for the replay check of all ids, one look-up of all the persons'
//! places, and one group of entries whose attached work writes the rows in multi-row INSERTs
//! and evaluates the rules for all of them in order over one [`super::rules::Ledger`] (so two
//! events about one household attach or raise the tier as if pushed one by one). It answers 200
//! with one `application/x-ndjson` line per event, in order: `{"line": n, "status": 201|200,
//! "receipt": {...}}` or `{"line": n, "status": 4xx, "error": {"code", "message", "field"}}` —
//! what single pushes of the lines, one after the other, would have answered (a line repeating
//! an earlier line's event id is answered as a replay of it). Idempotent per event id as single
//! pushes are. Departments push in bulk in practice.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use policies::{Action, RequestCtx, ResourceCtx};
use schemas::access_log::{Action as LogAction, Outcome};
use schemas::events::{EventError, ReceivedEvent, receive_parsed};
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

/// The `event.department` of a parsed body, if it has one (before the body is judged).
fn claimed_department(v: &Value) -> Option<String> {
    v.get("event")?
        .get("department")?
        .as_str()
        .map(str::to_owned)
}

/// The keyed hash of the canonical event: the same signed event has the same, another does not.
fn body_hash(s: &AppState, canonical: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical);
    s.keys.pseudonym(&format!(
        "jsj-event-body/1 {}",
        hex::encode(digest.as_ref())
    ))
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

/// 409: the event id is taken by another event.
fn id_reused() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "event_id_reused",
        "event.event_id: 该事件编号已用于另一事件 / already used for a different event",
    )
    .with_field("event.event_id")
}

/// The answer to an event id seen before: the same event gets its receipt again (200, nothing
/// re-applied); another event under that id is 409.
fn seen_before(row: &EventRow, hash: &str) -> Result<(StatusCode, EventReceipt), ApiError> {
    if row.body_hash != hash {
        return Err(id_reused());
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
        let answer = ingest(&s, &id, &rid, &[body]).await.pop();
        let (status, receipt) = answer.unwrap_or_else(|| Err(ApiError::internal("no answer")))?;
        return Ok((status, Json(receipt)).into_response());
    }
    push_batch(&s, &id, &rid, &body).await
}

/// The non-blank lines of a batch body with their 1-based line numbers, trimmed.
fn batch_lines(body: &[u8]) -> Vec<(usize, &[u8])> {
    body.split(|b| *b == b'\n')
        .enumerate()
        .map(|(n, part)| (n + 1, part.trim_ascii()))
        .filter(|(_, part)| !part.is_empty())
        .collect()
}

/// A batch push: one signed event a line (blank lines skipped), judged and stored together
/// ([`ingest`]: each line answered as a single push of it would be); the answer is 200 with one
/// line per event, in order.
async fn push_batch(
    s: &AppState,
    id: &Identity,
    rid: &str,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let lines = batch_lines(body);
    if lines.is_empty() || lines.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::bad_request(
            "malformed",
            "body",
            format!("body: must hold 1-{MAX_BATCH_EVENTS} events, one a line"),
        ));
    }
    let bodies: Vec<Bytes> = lines.iter().map(|(_, l)| body.slice_ref(l)).collect();
    let answers = ingest(s, id, rid, &bodies).await;
    let mut out = Vec::with_capacity(answers.len() * 160);
    for ((line, _), answer) in lines.iter().zip(answers) {
        let a = match answer {
            Ok((status, receipt)) => BatchLine {
                line: *line,
                status: status.as_u16(),
                receipt: Some(receipt),
                error: None,
            },
            Err(e) => BatchLine {
                line: *line,
                status: e.status.as_u16(),
                receipt: None,
                error: Some(crate::api::ErrorDetail {
                    code: e.code.to_owned(),
                    message: e.message,
                    field: e.field,
                }),
            },
        };
        serde_json::to_writer(&mut out, &a).map_err(ApiError::internal)?;
        out.push(b'\n');
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        out,
    )
        .into_response())
}

/// What a push answers for one event: its receipt (201 stored now, 200 seen before) or its
/// refusal.
type Answer = Result<(StatusCode, EventReceipt), ApiError>;

/// The same error again (one failure shared by several events of a batch).
fn again(e: &ApiError) -> ApiError {
    ApiError {
        status: e.status,
        code: e.code,
        message: e.message.clone(),
        field: e.field.clone(),
    }
}

/// An event that passed the checks: signed, fresh, of an accepted kind, pushed by its department.
struct Checked {
    received: ReceivedEvent,
    event_id: String,
    /// [`canonical`], computed once: hashed here, sealed in the row.
    canonical: Vec<u8>,
    /// [`body_hash`].
    hash: String,
    /// The policies that allowed the push (for its log entry).
    policy_ids: Vec<String>,
}

/// Stage 1a of a line, pure (no database, no Cedar, no log): the body parsed once, the
/// department it claims, and [`receive_parsed`]'s verdict (schema, signature, freshness,
/// details) with the canonical event (what the signature covers; hashed here, sealed in the row)
/// and its [`body_hash`]. The verdict is only used after stage 1b has judged the department.
struct Prechecked {
    claimed: Option<String>,
    received: Result<(ReceivedEvent, Vec<u8>, String), ApiError>,
}

fn precheck(s: &AppState, body: &[u8], now: OffsetDateTime) -> Prechecked {
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let claimed = parsed.as_ref().ok().and_then(claimed_department);
    let received = receive_parsed(
        parsed,
        |code| s.verify.department_keys(code),
        now,
        s.warning.freshness,
    )
    .map(|(received, canonical)| {
        let hash = body_hash(s, &canonical);
        (received, canonical, hash)
    })
    .map_err(|e| refused(&e));
    Prechecked { claimed, received }
}

/// Fewer lines than this are prechecked on the request's task; more are split in chunks, one per
/// core, run on the blocking pool (the hub's per-line cost is this CPU: JSON, schema, Ed25519).
const INLINE_LINES: usize = 32;

/// [`precheck`] of every body, in order: inline for a few, else on all cores.
async fn precheck_all(s: &AppState, bodies: &[Bytes], now: OffsetDateTime) -> Vec<Prechecked> {
    if bodies.len() < INLINE_LINES {
        return bodies.iter().map(|b| precheck(s, b, now)).collect();
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
    let tasks: Vec<_> = bodies
        .chunks(bodies.len().div_ceil(cores))
        .map(|chunk| {
            let (s, chunk) = (s.clone(), chunk.to_vec());
            let n = chunk.len();
            let task = tokio::task::spawn_blocking(move || {
                chunk
                    .iter()
                    .map(|b| precheck(&s, b, now))
                    .collect::<Vec<_>>()
            });
            (n, task)
        })
        .collect();
    let mut out = Vec::with_capacity(bodies.len());
    for (n, task) in tasks {
        match task.await {
            Ok(done) => out.extend(done),
            Err(_) => out.extend((0..n).map(|_| Prechecked {
                claimed: None,
                received: Err(ApiError::internal("event check failed")),
            })),
        }
    }
    out
}

/// Stage 1b, per line in order (the prechecked verdict, but for a refusal's log entry): the
/// department the event names (configured, and the caller's: Cedar `push_event`, decided once
/// per department per push — `allowed` keeps the allowing decisions, a refusal is decided and
/// logged again for each line), then the precheck's verdict, then the kind.
async fn check(
    s: &AppState,
    id: &Identity,
    rid: &str,
    pre: Prechecked,
    allowed: &mut HashMap<String, Vec<String>>,
) -> Result<Checked, ApiError> {
    let mut checked = None;
    let mut policy_ids = Vec::new();
    if let Some(code) = pre.claimed {
        let department = Department::from_code(&code)
            .filter(|_| !s.verify.department_keys(&code).is_empty())
            .ok_or_else(unknown_department)?;
        policy_ids = match allowed.get(&code) {
            Some(ids) => ids.clone(),
            None => {
                let ids = may_push(s, id, department, rid).await?;
                allowed.insert(code.clone(), ids.clone());
                ids
            }
        };
        checked = Some(code);
    }
    let (received, canonical, hash) = pre.received?;
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
    Ok(Checked {
        received,
        event_id,
        canonical,
        hash,
        policy_ids,
    })
}

/// Where the checked events of a push go after the replay check.
#[derive(Debug, Default, PartialEq, Eq)]
struct Sorted {
    /// Indexes (into the checked events) of the events to store: the first of each id not seen.
    fresh: Vec<usize>,
    /// Indexes of the events whose id the hub holds already.
    seen: Vec<usize>,
    /// (checked index, index into `fresh`): a later line with an id an earlier fresh line has.
    twins: Vec<(usize, usize)>,
}

/// Stage 2's decision (pure): given the event ids in line order and which of them are stored,
/// which to store, which were seen before, and which repeat an earlier line of the same push.
fn sort_by_replay(ids: &[&str], stored: &dyn Fn(&str) -> bool) -> Sorted {
    let mut sorted = Sorted::default();
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, event_id) in ids.iter().enumerate() {
        if stored(event_id) {
            sorted.seen.push(i);
        } else if let Some(k) = first.get(event_id) {
            sorted.twins.push((i, *k));
        } else {
            first.insert(event_id, sorted.fresh.len());
            sorted.fresh.push(i);
        }
    }
    sorted
}

/// What the group commit does for a push's new events: their rows and the warning rules, in the
/// access log's batch transaction (see [`crate::log::Attached`]).
struct EventsWrite {
    rows: Vec<EventRow>,
    details: Vec<serde_json::Map<String, Value>>,
    engine: std::sync::Arc<policies::PolicyEngine>,
    outcome: WriteOutcome,
}

/// What an [`EventsWrite`] did, per event: `None` its id was taken meanwhile, else what the rules
/// raised.
type WriteOutcome = crate::log::Outcome<Result<Vec<Option<Vec<super::rules::Raised>>>, String>>;

impl crate::log::Attached for EventsWrite {
    fn write<'a>(
        &'a mut self,
        conn: crate::log::TxConn<'a>,
        placed: &'a crate::log::Placed,
    ) -> crate::log::AttachedFuture<'a> {
        Box::pin(async move {
            // One entry per row, in the same order.
            let r = if placed.indexes.len() == self.rows.len() {
                for (row, index) in self.rows.iter_mut().zip(&placed.indexes) {
                    row.log_index = *index as i64;
                }
                super::rules::insert_events_in(conn, &self.engine, &self.rows, &self.details)
                    .await
                    .map_err(|e| e.to_string())
            } else {
                Err("the events' access-log entries were not placed".to_owned())
            };
            let ok = r.is_ok();
            self.outcome.set(r);
            ok
        })
    }
}

/// The events of a push (one, or a batch's lines), as one pipeline: check every line (stage 1,
/// [`precheck_all`] then [`check`] in line order) → ONE query for the replay check of all their ids (stage 2: an id stored before is
/// answered by [`seen_before`]; a later line repeating an earlier line's id gets that line's
/// answer, 200 with its receipt for the same event, 409 for another) → ONE look-up of the places
/// of all their persons (stage 3, [`store::place_many`]) → seal → ONE group commit of their
/// `event_received` entries, their rows and the warning rules' writes (stage 4,
/// [`crate::log::AccessLog::append_many_with`], [`super::rules::insert_events_in`]). Answers
/// per body, in order; every answer comes after the commit.
async fn ingest(s: &AppState, id: &Identity, rid: &str, bodies: &[Bytes]) -> Vec<Answer> {
    let now = OffsetDateTime::now_utc();
    let mut answers: Vec<Option<Answer>> = bodies.iter().map(|_| None).collect();
    // Stage 1.
    let prechecked = precheck_all(s, bodies, now).await;
    let mut allowed = HashMap::new();
    let mut checked: Vec<(usize, Checked)> = Vec::with_capacity(bodies.len());
    for (i, pre) in prechecked.into_iter().enumerate() {
        match check(s, id, rid, pre, &mut allowed).await {
            Ok(c) => checked.push((i, c)),
            Err(e) => answers[i] = Some(Err(e)),
        }
    }
    if let Err(e) = store_checked(s, id, rid, now, &checked, &mut answers).await {
        for (i, _) in &checked {
            answers[*i].get_or_insert_with(|| Err(again(&e)));
        }
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(ApiError::internal("event not answered"))))
        .collect()
}

/// Stages 2-4 of [`ingest`] for the checked events; fills their answers. An `Err` is the answer
/// of every checked event not answered yet.
async fn store_checked(
    s: &AppState,
    id: &Identity,
    rid: &str,
    now: OffsetDateTime,
    checked: &[(usize, Checked)],
    answers: &mut [Option<Answer>],
) -> Result<(), ApiError> {
    if checked.is_empty() {
        return Ok(());
    }
    let db = s.store.db();
    // Stage 2: the replay check, one query.
    let ids: Vec<&str> = checked.iter().map(|(_, c)| c.event_id.as_str()).collect();
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let stored = store::get_events(&db, &distinct).await?;
    let sorted = sort_by_replay(&ids, &|event_id| stored.contains_key(event_id));
    for &k in &sorted.seen {
        let (i, c) = &checked[k];
        if let Some(row) = stored.get(&c.event_id) {
            answers[*i] = Some(seen_before(row, &c.hash));
        }
    }
    // Stage 3: where the persons are, one look-up.
    let subjects: Vec<String> = sorted
        .fresh
        .iter()
        .map(|&k| {
            s.keys
                .pseudonym(checked[k].1.received.event.subject.resident_id.as_str())
        })
        .collect();
    let mut distinct: Vec<&str> = subjects.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let places = store::place_many(&db, &distinct).await?;
    // Seal, and the entries.
    let mut rows = Vec::with_capacity(sorted.fresh.len());
    let mut details = Vec::with_capacity(sorted.fresh.len());
    let mut entries = Vec::with_capacity(sorted.fresh.len());
    for (&k, subject) in sorted.fresh.iter().zip(subjects) {
        let c = &checked[k].1;
        let place = places.get(&subject).cloned();
        let row = build_row(s, id, c, subject, place, now)?;
        entries.push(entry(
            id,
            LogAction::EventReceived,
            true,
            Outcome::Succeeded,
            c.policy_ids.clone(),
            rid,
            Some(&c.event_id),
            Some(&row.subject),
        )?);
        details.push(c.received.event.details.clone());
        rows.push(row);
    }
    // Stage 4: durable when this returns: the entries, the rows and their warnings, in one commit.
    let mut receipts: Vec<Option<(String, EventReceipt)>> = vec![None; rows.len()];
    if !rows.is_empty() {
        let outcome = WriteOutcome::default();
        let write = EventsWrite {
            rows: rows.clone(),
            details,
            engine: s.authz.engine(),
            outcome: outcome.clone(),
        };
        let logged = s.log.append_many_with(entries, Box::new(write)).await?;
        let done = outcome.take();
        let written = match done {
            Some(Ok(written)) if written.len() == rows.len() => written,
            Some(Ok(_)) => return Err(ApiError::internal("events not all written")),
            Some(Err(e)) => return Err(ApiError::internal(e)),
            None => return Err(ApiError::internal("events not written")),
        };
        for (n, ((row, raised), logged)) in rows.into_iter().zip(written).zip(logged).enumerate() {
            let (i, c) = &checked[sorted.fresh[n]];
            let answer = match raised {
                Some(raised) => {
                    let row = EventRow {
                        log_index: logged.index as i64,
                        ..row
                    };
                    received_metrics(&row, &raised);
                    Ok((StatusCode::CREATED, receipt(&row)))
                }
                None => {
                    // A concurrent push of the same id stored first.
                    match store::get_event(&db, &c.event_id).await? {
                        Some(first) => {
                            receipts[n] = Some((first.body_hash.clone(), receipt(&first)));
                            answers[*i] = Some(seen_before(&first, &c.hash));
                            continue;
                        }
                        None => Err(ApiError::internal("event id taken but not found")),
                    }
                }
            };
            if let Ok((_, r)) = &answer {
                receipts[n] = Some((c.hash.clone(), r.clone()));
            }
            answers[*i] = Some(answer);
        }
    }
    // A later line repeating an earlier line's event id: answered against what that line stored.
    for &(k, f) in &sorted.twins {
        let (i, c) = &checked[k];
        let first = sorted.fresh[f];
        let answer = match (&receipts[f], &answers[checked[first].0]) {
            (Some((hash, r)), _) if *hash == c.hash => {
                metrics::counter!("hub_events_replayed_total", "department" => c.received.event.department.clone())
                    .increment(1);
                Ok((StatusCode::OK, r.clone()))
            }
            (Some(_), _) => Err(id_reused()),
            (None, Some(Err(e))) => Err(again(e)),
            (None, _) => Err(ApiError::internal("event not answered")),
        };
        answers[*i] = Some(answer);
    }
    Ok(())
}

/// The counters and the trace line of an event stored now.
fn received_metrics(row: &EventRow, raised: &[super::rules::Raised]) {
    for w in raised {
        metrics::counter!("hub_warnings_signals_total", "rule" => w.rule.clone(), "tier" => w.tier.clone(), "attached" => if w.attached { "true" } else { "false" }).increment(1);
    }
    metrics::counter!("hub_events_received_total", "department" => row.department.clone(), "kind" => row.kind.clone(), "placement" => row.placement.clone()).increment(1);
    if row.placement == Placement::Unmatched.code() {
        metrics::counter!("hub_events_unmatched_total", "department" => row.department.clone(), "kind" => row.kind.clone()).increment(1);
    }
    tracing::info!(event_id = %row.event_id, department = %row.department, kind = %row.kind, placement = %row.placement, "department event received");
}

/// The event's row: its person's pseudonym and place ([`store::place_many`]'s answer, `None`
/// unmatched), and the event sealed (the canonical `event` as received, which the signature
/// covers, so it can be re-verified later).
fn build_row(
    s: &AppState,
    id: &Identity,
    c: &Checked,
    subject: String,
    place: Option<(Placement, String, Option<String>)>,
    now: OffsetDateTime,
) -> Result<EventRow, ApiError> {
    let r = &c.received;
    let (placement, township, village) = match place {
        Some((p, t, v)) => (p, Some(t), v),
        None => (Placement::Unmatched, None, None),
    };
    let (key_id, sealed) = s
        .keys
        .seal(&event_aad(&c.event_id), &c.canonical)
        .map_err(seal_error)?;
    let now_ms = ms(now);
    Ok(EventRow {
        event_id: c.event_id.clone(),
        received_ms: now_ms,
        pushed_by: id.uri.clone(),
        department: r.event.department.clone(),
        kind: r.event.kind.clone(),
        occurred_ms: ms(r.event.occurred_at),
        issued_ms: ms(r.event.issued_at),
        subject,
        body_hash: c.hash.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_lines_skip_blanks_and_keep_line_numbers() {
        let body = b"{\"a\":1}\n\n  \r\n {\"b\":2} \r\n{\"c\":3}";
        let got: Vec<(usize, &[u8])> = batch_lines(body);
        assert_eq!(
            got,
            [
                (1, &b"{\"a\":1}"[..]),
                (4, &b"{\"b\":2}"[..]),
                (5, &b"{\"c\":3}"[..]),
            ]
        );
        assert!(batch_lines(b"\n \n").is_empty());
    }

    #[test]
    fn replay_sorting_stores_the_first_of_each_new_id_once() {
        let check = |ids: &[&str], stored: &[&str], expected: Sorted| {
            let got = sort_by_replay(ids, &|id| stored.contains(&id));
            assert_eq!(got, expected, "{ids:?} with {stored:?} stored");
        };
        check(
            &["a", "b", "c"],
            &[],
            Sorted {
                fresh: vec![0, 1, 2],
                ..Sorted::default()
            },
        );
        // A stored id is seen before, every time; a new id repeated is stored by its first line.
        check(
            &["a", "old", "b", "a", "old", "a"],
            &["old"],
            Sorted {
                fresh: vec![0, 2],
                seen: vec![1, 4],
                twins: vec![(3, 0), (5, 0)],
            },
        );
        check(&[], &[], Sorted::default());
    }
}
