//! The protocol v1 server a department runs: mTLS accept loop, routes, query handling, signing
//! and the query log.
//!
//! Routes:
//! - `POST /jsj-connector/1/query` ([`schemas::protocol::QUERY_PATH`]; `POST /v1/query` is an
//!   alias): a [`FactQuery`] in, a [`SignedAnswer`] out (200), or a [`ProtocolError`] body with
//!   the status of its code (400/403/422/429/500).
//! - `GET /healthz`: `{"status":"ok","department":…,"protocol":"jsj-connector/1"}`.
//!
//! Trace context: a query's W3C `traceparent` (sent by the hub) is continued — the query is
//! handled in a `department_answer` span whose parent is the hub's `department_query` span — and
//! recorded in the [`QueryLog`] (see [`crate::trace`]).
//!
//! Invariants:
//! - A query asking for a fact kind the source does not serve is refused whole with
//!   `fact_kind_not_served` (HTTP 422) and the field `fact_kinds[i]`; nothing is looked up.
//! - Every query that reaches the handler is logged once (`tracing`, target `connector::query`)
//!   with request id, purpose, fact kinds and subject counts — never a resident ID number — and
//!   recorded in the in-memory [`QueryLog`].
//! - Every 200 answer is signed with the department key over the protocol's canonical bytes.
//! - The accept loop bounds concurrent connections and the TLS handshake time; a failed handshake
//!   (no client certificate, wrong CA) never reaches HTTP.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use ring::signature::Ed25519KeyPair;
use schemas::protocol::{PROTOCOL_V1, QUERY_PATH, query_digest_of_value};
use schemas::{
    DepartmentAnswer, DepartmentKey, FactKind, FactQuery, ProtocolError, ProtocolErrorCode,
    Purpose, SignedAnswer, SubjectOutcome, SubjectResult,
};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

use super::source::FactSource;
use crate::sim::faults::{Fault, FaultSwitch};

/// The alias of [`QUERY_PATH`].
pub const QUERY_PATH_ALIAS: &str = "/v1/query";

/// Limits of the accept loop.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a client may take to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Most connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

// === query log ===

/// One received query, as the department's log keeps it (no resident ID numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueryRecord {
    pub request_id: Uuid,
    pub purpose: Purpose,
    pub fact_kinds: Vec<FactKind>,
    /// The opaque `subject_ref`s of the query (e.g. `m1`), not resident IDs.
    pub subject_refs: Vec<String>,
    pub found: usize,
    pub unknown: usize,
    pub refused: usize,
    /// `None` when answered; the protocol error code when the whole query was refused.
    pub refusal: Option<ProtocolErrorCode>,
    /// The W3C `traceparent` the query came with, when valid (trace and span ids only).
    pub traceparent: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// Counter and bounded in-memory log of received queries.
#[derive(Debug)]
pub struct QueryLog {
    /// Queries that reached the handler (parsed or not).
    received: AtomicU64,
    records: Mutex<VecDeque<QueryRecord>>,
    capacity: usize,
}

impl QueryLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            received: AtomicU64::new(0),
            records: Mutex::new(VecDeque::new()),
            capacity,
        }
    }

    /// Number of query requests received (including refused and unparseable ones).
    pub fn count(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// The most recent parsed queries, oldest first.
    pub fn records(&self) -> Vec<QueryRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn push(&self, r: QueryRecord) {
        let mut g = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if g.len() == self.capacity {
            g.pop_front();
        }
        g.push_back(r);
    }
}

// === service ===

/// Everything a query handler needs; shared by all connections.
pub struct Service {
    pub source: Arc<dyn FactSource>,
    pub key: Arc<Ed25519KeyPair>,
    /// Always [`Fault::None`] in the production adapter; simulated departments flip it.
    pub faults: Arc<FaultSwitch>,
    pub log: Arc<QueryLog>,
}

impl Service {
    pub fn new(source: Arc<dyn FactSource>, key: Ed25519KeyPair) -> Self {
        Self {
            source,
            key: Arc::new(key),
            faults: Arc::new(FaultSwitch::default()),
            log: Arc::new(QueryLog::new(10_000)),
        }
    }

    /// The department's public key as the hub configures it.
    pub fn public_key(&self) -> DepartmentKey {
        DepartmentKey::of(&self.key)
    }

    /// Handle one query body: validate, refuse or look up, sign. Logs and records the query.
    pub async fn answer(&self, body: &[u8]) -> Result<SignedAnswer, ProtocolError> {
        self.answer_traced(body, None).await
    }

    /// As [`Service::answer`], recording the query's valid `traceparent`.
    pub async fn answer_traced(
        &self,
        body: &[u8],
        traceparent: Option<String>,
    ) -> Result<SignedAnswer, ProtocolError> {
        self.log.received.fetch_add(1, Ordering::SeqCst);
        let (query, raw) = parse_query(body).inspect_err(|e| {
            // Protocol error messages never contain resident ID numbers (schemas masks them).
            tracing::warn!(
                target: "connector::query",
                request_id = ?e.request_id,
                department = %self.source.department(),
                code = e.code.code(),
                field = e.field.as_deref().unwrap_or(""),
                "refused query: {}",
                e.message
            );
        })?;
        let department = self.source.department();
        let mut record = QueryRecord {
            request_id: query.request_id,
            purpose: query.purpose,
            fact_kinds: query.fact_kinds.clone(),
            subject_refs: query
                .subjects
                .iter()
                .map(|s| s.subject_ref.clone())
                .collect(),
            found: 0,
            unknown: 0,
            refused: 0,
            refusal: None,
            traceparent,
            received_at: OffsetDateTime::now_utc(),
        };
        let result = self.answer_parsed(&query, &raw, &mut record).await;
        let kinds = join_kinds(&query.fact_kinds);
        match &result {
            Ok(_) => tracing::info!(
                target: "connector::query",
                request_id = %query.request_id,
                department = %department,
                purpose = %query.purpose,
                fact_kinds = %kinds,
                subjects = query.subjects.len(),
                found = record.found,
                unknown = record.unknown,
                refused = record.refused,
                "answered query"
            ),
            Err(e) => {
                record.refusal = Some(e.code);
                tracing::warn!(
                    target: "connector::query",
                    request_id = %query.request_id,
                    department = %department,
                    purpose = %query.purpose,
                    fact_kinds = %kinds,
                    subjects = query.subjects.len(),
                    code = e.code.code(),
                    "refused query: {}",
                    e.message
                );
            }
        }
        self.log.push(record);
        result
    }

    async fn answer_parsed(
        &self,
        query: &FactQuery,
        raw: &Value,
        record: &mut QueryRecord,
    ) -> Result<SignedAnswer, ProtocolError> {
        let department = self.source.department();
        if query.department != department {
            return Err(ProtocolError::new(
                ProtocolErrorCode::WrongDepartment,
                format!(
                    "this connector answers for {department}, the query is addressed to {}",
                    query.department
                ),
            )
            .with_field("department")
            .with_request_id(query.request_id));
        }
        if let Some((i, k)) = query
            .fact_kinds
            .iter()
            .enumerate()
            .find(|(_, k)| !self.source.serves(**k))
        {
            return Err(ProtocolError::new(
                ProtocolErrorCode::FactKindNotServed,
                format!("{department} does not serve fact kind {k}"),
            )
            .with_field(format!("fact_kinds[{i}]"))
            .with_request_id(query.request_id));
        }
        let mut results = Vec::with_capacity(query.subjects.len());
        for s in &query.subjects {
            let outcome = self
                .source
                .lookup(&s.resident_id, &query.fact_kinds, query.as_of)
                .await
                .map_err(|e| {
                    tracing::error!(
                        target: "connector::query",
                        request_id = %query.request_id,
                        subject_ref = %s.subject_ref,
                        "fact source failed: {e}"
                    );
                    ProtocolError::new(
                        ProtocolErrorCode::Internal,
                        "the department's data source failed; see the connector log",
                    )
                    .with_request_id(query.request_id)
                })?;
            match &outcome {
                SubjectOutcome::Found { .. } => record.found += 1,
                SubjectOutcome::Unknown { .. } => record.unknown += 1,
                SubjectOutcome::Refused { .. } => record.refused += 1,
            }
            results.push(SubjectResult {
                subject_ref: s.subject_ref.clone(),
                outcome,
            });
        }
        let query_digest = query_digest_of_value(raw).map_err(|e| {
            ProtocolError::new(ProtocolErrorCode::BadRequest, e.to_string())
                .with_request_id(query.request_id)
        })?;
        let answer = DepartmentAnswer {
            protocol: schemas::protocol::ProtocolVersion,
            request_id: query.request_id,
            department,
            answered_at: OffsetDateTime::now_utc(),
            query_digest,
            results,
        };
        SignedAnswer::sign(answer, &self.key).map_err(|e| {
            ProtocolError::new(ProtocolErrorCode::Internal, format!("signing failed: {e}"))
                .with_request_id(query.request_id)
        })
    }
}

fn join_kinds(kinds: &[FactKind]) -> String {
    kinds.iter().map(|k| k.code()).collect::<Vec<_>>().join(",")
}

/// Parse and validate a query body: JSON, protocol tag, JSON Schema, types, protocol rules.
fn parse_query(body: &[u8]) -> Result<(FactQuery, Value), ProtocolError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ProtocolError::new(
            ProtocolErrorCode::BadRequest,
            format!("body is not JSON: {e}"),
        )
    })?;
    let request_id = v
        .get("request_id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    let with_id = |e: ProtocolError| match request_id {
        Some(id) => e.with_request_id(id),
        None => e,
    };
    match v.get("protocol").and_then(Value::as_str) {
        Some(PROTOCOL_V1) => {}
        Some(other) => {
            return Err(with_id(
                ProtocolError::new(
                    ProtocolErrorCode::UnsupportedProtocol,
                    format!(
                        "protocol {other:?} is not supported; this connector speaks {PROTOCOL_V1}"
                    ),
                )
                .with_field("protocol"),
            ));
        }
        None => {
            return Err(with_id(
                ProtocolError::new(ProtocolErrorCode::BadRequest, "must be a string")
                    .with_field("protocol"),
            ));
        }
    }
    schemas::validate::fact_query(&v).map_err(|e| {
        with_id(ProtocolError::new(
            ProtocolErrorCode::BadRequest,
            e.to_string(),
        ))
    })?;
    let query: FactQuery = serde_json::from_value(v.clone()).map_err(|e| {
        with_id(ProtocolError::new(
            ProtocolErrorCode::BadRequest,
            format!("not a fact query: {e}"),
        ))
    })?;
    query.validate()?;
    Ok((query, v))
}

// === HTTP ===

/// Per-connection handle a handler uses to drop its own connection (the `close_connection` fault)
/// or to wait until the connection ends (the `hang` fault).
#[derive(Clone)]
pub struct ConnHandle {
    close: CancellationToken,
}

/// The protocol routes for `service` (no admin routes).
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route(QUERY_PATH, post(query_handler))
        .route(QUERY_PATH_ALIAS, post(query_handler))
        .route("/healthz", get(healthz))
        .with_state(service)
}

fn error_response(e: ProtocolError) -> Response {
    let status =
        StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(e)).into_response()
}

async fn query_handler(
    State(service): State<Arc<Service>>,
    Extension(conn): Extension<ConnHandle>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The hub's trace continues here (W3C `traceparent`, see crate::trace): this span is a child
    // of the hub's `department_query` span when the header is valid.
    let span = tracing::info_span!(
        "department_answer",
        department = service.source.department().code()
    );
    let traced = crate::trace::continue_trace(&span, &headers);
    let traceparent = traced
        .then(|| headers.get(crate::trace::TRACEPARENT))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    query_inner(service, conn, traceparent, body)
        .instrument(span)
        .await
}

async fn query_inner(
    service: Arc<Service>,
    conn: ConnHandle,
    traceparent: Option<String>,
    body: Bytes,
) -> Response {
    let fault = service.faults.get();
    match fault {
        Fault::None | Fault::MalformedJson | Fault::BadSignature => {}
        Fault::Delay { delay_ms } => tokio::time::sleep(Duration::from_millis(delay_ms)).await,
        Fault::Hang => {
            service.log.received.fetch_add(1, Ordering::SeqCst);
            conn.close.cancelled().await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        Fault::CloseConnection => {
            service.log.received.fetch_add(1, Ordering::SeqCst);
            conn.close.cancel();
            // The connection task drops the connection (and this future) right away.
            std::future::pending::<()>().await;
        }
        Fault::Refuse { code } => {
            service.log.received.fetch_add(1, Ordering::SeqCst);
            let mut e = ProtocolError::new(
                code,
                "the department refuses this query (simulated refusal)",
            );
            if let Ok(v) = serde_json::from_slice::<Value>(&body)
                && let Some(id) = v
                    .get("request_id")
                    .and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok())
            {
                e = e.with_request_id(id);
            }
            return error_response(e);
        }
    }
    match service.answer_traced(&body, traceparent).await {
        Ok(mut signed) => match fault {
            Fault::MalformedJson => {
                let text = serde_json::to_string(&signed).unwrap_or_default();
                let cut = text.len() / 2;
                let truncated = text.as_bytes()[..cut].to_vec();
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    truncated,
                )
                    .into_response()
            }
            Fault::BadSignature => {
                let engine = base64::engine::general_purpose::STANDARD;
                let mut sig = engine.decode(&signed.signature.value).unwrap_or_default();
                if let Some(b) = sig.first_mut() {
                    *b ^= 0x01;
                }
                signed.signature.value = engine.encode(sig);
                Json(signed).into_response()
            }
            _ => Json(signed).into_response(),
        },
        Err(e) => error_response(e),
    }
}

async fn healthz(State(service): State<Arc<Service>>) -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "department": service.source.department(),
        "protocol": PROTOCOL_V1,
    }))
    .into_response()
}

/// Serve `app` over mTLS on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let limit = Arc::new(Semaphore::new(options.max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let conn_token = shutdown.child_token();
        let handshake_timeout = options.handshake_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(stream, peer, acceptor, app, conn_token, handshake_timeout).await;
        });
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    close: CancellationToken,
    handshake_timeout: Duration,
) {
    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let app = app.layer(Extension(ConnHandle {
        close: close.clone(),
    }));
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        }
        _ = close.cancelled() => {
            tracing::debug!(%peer, "connection closed by the server");
        }
    }
}
