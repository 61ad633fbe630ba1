//! The hub's HTTP API on the mTLS port: routes, the error type, and cross-cutting layers.
//!
//! Every error leaves as JSON `{"error": {"code", "message", "field"?}}` with a stable `code`.
//! The full error chain goes to the log; callers never see internal detail.
//!
//! Invariant: a request body over `server.max_body_bytes` gets 413 `payload_too_large` (field
//! `body`) on HTTP/1 and HTTP/2 alike, whether the size is declared (`content-length`) or found
//! while reading ([`limit_body`]). Test `connections::bodies_over_the_limit_get_413_on_both_protocols`.
//! The one exception is the monitoring list's streamed upload, whose limit is
//! [`crate::warning::body_limit`] (64 MiB).
//!
//! Invariant: every request reaching a handler carries a valid `x-request-id` (1-128 characters of
//! `A-Z a-z 0-9 - _ . : / @ +`, no run of 15 digits): a missing or malformed one is replaced by a
//! generated UUID before anything else runs ([`normalize_request_id`]), and the response's
//! `x-request-id` tells the caller which id the hub used. A bad header is never a reason to answer
//! before the policy decision, nor to skip an access-log entry. Test
//! `e2e::authz_table::a_malformed_request_id_is_replaced_and_the_denial_logged`.
//!
//! Architecture invariant: only `hub` knows this API. The OpenAPI 3.1 description is served at
//! `/v1/openapi.json`.

pub mod extract;
pub mod openapi;
pub(crate) mod ops;

pub use extract::{JsonObject, Path, Query};

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::identity::Caller;
use crate::keys::HubKeys;
use crate::store::Store;
use crate::tls::TlsState;

/// Shared state of every handler: one `Arc` around [`Services`], because axum clones a route's
/// handler (and with it this state) for every request, more than once when middleware sits in
/// between; a clone is then one atomic increment, not one per service.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    pub store: Arc<dyn Store>,
    pub tls: Arc<TlsState>,
    pub keys: Arc<HubKeys>,
    /// The access log (访问日志).
    pub log: Arc<crate::log::AccessLog>,
    pub authz: Arc<crate::authz::Authz>,
    pub limits: Arc<crate::ratelimit::RateLimits>,
    /// Department connectors and verification settings (核对).
    pub verify: Arc<crate::verify::VerifyService>,
    /// 核对进度: the departments' states of the verifications running in this process.
    pub progress: Arc<crate::verify::progress::ProgressBoard>,
    /// Department events and the monitoring list (监测预警): freshness, kinds, categories.
    pub warning: Arc<crate::warning::WarningSettings>,
    pub started: Instant,
}

/// Knobs for the router's layers.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
}

/// The error body every endpoint returns.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    /// Stable machine code, e.g. `validation_failed`, `forbidden`.
    pub code: String,
    /// Human message; names the field at fault where there is one.
    pub message: String,
    /// JSON path of the field at fault, e.g. `members[2].resident_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// An API error: status + stable code + message (+ field).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn bad_request(
        code: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message).with_field(field)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// A fault of ours; the detail goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the request id identifies it in the hub's log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

/// The OpenAPI 3.1 document ([`openapi::document`], the one generator).
async fn openapi() -> Json<serde_json::Value> {
    Json(openapi::document())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept this method",
    )
}

/// The safety net under every route: an error answer that is not JSON (a layer's own answer, such
/// as the timeout's 408) becomes the JSON error object with a code named after its status. Handlers
/// and extractors answer with [`ApiError`] already; this catches what they do not produce.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // The console's pages answer errors as pages (text/html) on purpose.
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_json || is_page {
        return response;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let mut out = ApiError::new(
        status,
        code,
        status.canonical_reason().unwrap_or("error").to_owned(),
    )
    .into_response();
    // Keep the headers that matter to the client (Retry-After, Connection, x-request-id).
    for name in [header::RETRY_AFTER, header::CONNECTION] {
        if let Some(v) = response.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// Count and time every request by route template and status.
async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("hub_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status).increment(1);
    metrics::histogram!("hub_http_request_duration_seconds", "route" => route, "method" => method)
        .record(start.elapsed().as_secs_f64());
    response
}

/// The one answer to a body over the limit.
fn payload_too_large(max: usize) -> Response {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("请求体超过 {max} 字节上限 / the request body exceeds the limit of {max} bytes"),
    )
    .with_field("body")
    .into_response()
}

/// Bodies over `max` bytes get 413 `payload_too_large`: at once when `content-length` says so,
/// otherwise when a handler reads past the limit (the body is wrapped in `Limited`, and whatever the
/// handler then answers is replaced by the JSON error), so HTTP/1 and HTTP/2 answer alike. On
/// HTTP/1 the rest of such a body is never read, so the answer says `Connection: close` (and hyper
/// closes the connection) instead of leaving the client to find the connection dropped.
async fn limit_body(State(max): State<usize>, req: Request, next: Next) -> Response {
    let http1 = req.version() < http::Version::HTTP_2;
    let refuse = || {
        let mut response = payload_too_large(max);
        if http1 {
            response
                .headers_mut()
                .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        response
    };
    // The monitoring list's bulk upload is streamed, so it may be larger (and only it).
    let max = crate::warning::body_limit(req.uri().path()).unwrap_or(max);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return refuse();
    }
    // Set when the body hits the limit, however the handler then words its error.
    let over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = over.clone();
    let req = req.map(|body| {
        use http_body_util::BodyExt;
        axum::body::Body::new(http_body_util::Limited::new(body, max).map_err(move |e| {
            if e.is::<http_body_util::LengthLimitError>() {
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            e
        }))
    });
    let response = next.run(req).await;
    if over.load(std::sync::atomic::Ordering::Relaxed)
        || response.status() == StatusCode::PAYLOAD_TOO_LARGE
    {
        return refuse();
    }
    response
}

/// True when `v` may serve as a request id: it goes into access-log entries verbatim, so it obeys
/// their text rule (`schemas::access_log`), with at most 128 characters.
fn valid_request_id(v: &[u8]) -> bool {
    let mut run = 0;
    !v.is_empty()
        && v.len() <= 128
        && v.iter().all(|&b| {
            run = if b.is_ascii_digit() { run + 1 } else { 0 };
            run < 15 && (b.is_ascii_alphanumeric() || b"-_.:/@+".contains(&b))
        })
}

/// Replace every `x-request-id` that is not a [`valid_request_id`] (or more than one) with a
/// generated UUID, so that no header can make the hub answer before the policy decision or keep a
/// denial out of the access log. The replacement travels back in the response header.
async fn normalize_request_id(mut req: Request, next: Next) -> Response {
    let name = HeaderName::from_static("x-request-id");
    let values: Vec<_> = req.headers().get_all(&name).iter().collect();
    let ok = values.len() == 1 && valid_request_id(values[0].as_bytes());
    if !values.is_empty() && !ok {
        let fresh = uuid::Uuid::new_v4().to_string();
        req.headers_mut().remove(&name);
        if let Ok(v) = http::HeaderValue::from_str(&fresh) {
            req.headers_mut().insert(name, v);
        }
    }
    next.run(req).await
}

/// The request id of a request that passed [`normalize_request_id`] (a fresh UUID otherwise).
pub fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .filter(|v| valid_request_id(v.as_bytes()))
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// A JSON object body taken as `Result<Json<Value>, JsonRejection>`, so that the handler decides
/// (and logs a denial) before the body is judged. Errors never echo the body.
pub fn json_object(
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<serde_json::Value, ApiError> {
    use axum::extract::rejection::JsonRejection;
    match body {
        Ok(Json(v @ serde_json::Value::Object(_))) => Ok(v),
        Ok(_) => Err(ApiError::bad_request(
            "validation_failed",
            "body",
            "body: must be a JSON object",
        )),
        Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "content-type: must be application/json",
        )
        .with_field("content-type")),
        Err(_) => Err(ApiError::bad_request(
            "validation_failed",
            "body",
            "body: not valid JSON",
        )),
    }
}

/// Build the API router with its layers.
///
/// The layers go on as one `ServiceBuilder` stack in a single `Router::layer` call: each call
/// wraps every route in a boxed service of its own, and axum clones a route's whole chain for every
/// request (with ten calls, ten boxes and the handler state, again below each `from_fn`; the
/// profile is in BENCHMARKS.md, issue 14, P4). They sit on the routes, not around the router,
/// because the span and the metrics name the matched route.
pub fn router(state: AppState, opts: &RouterOptions) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    // Outermost first.
    let layers = tower::ServiceBuilder::new()
        // A malformed id is replaced before anything reads it.
        .layer(axum::middleware::from_fn(normalize_request_id))
        .layer(SetRequestIdLayer::new(x_request_id.clone(), FastRequestId))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id = req
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-");
            let principal = req
                .extensions()
                .get::<Caller>()
                .map(|c| c.0.principal.as_str())
                .unwrap_or("-");
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(|m| m.as_str())
                .unwrap_or("-");
            tracing::info_span!("request", request_id, method = %req.method(), route, principal)
        }))
        .layer(PropagateRequestIdLayer::new(x_request_id))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            opts.request_timeout,
        ))
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(axum::middleware::from_fn_with_state(
            opts.max_body_bytes,
            limit_body,
        ))
        // `limit_body` enforces `max_body_bytes`; axum's own 2 MiB default would get in its way.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            crate::ratelimit::limit_requests,
        ));
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/v1/whoami", get(ops::whoami))
        .route("/v1/admin/clients", get(ops::clients))
        .route("/v1/openapi.json", get(openapi))
        .merge(crate::log::api::routes())
        .merge(crate::verify::api::routes())
        .merge(crate::cases::api::routes())
        .merge(crate::cases::slips_api::routes())
        .merge(crate::cases::escalation_api::routes())
        .merge(crate::warning::routes())
        .merge(crate::console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(layers)
        .with_state(state)
}

/// Request ids for requests that come without one: random (v4) UUIDs from the thread's CSPRNG
/// (`rand`), not one `getrandom` system call per request as `MakeRequestUuid` does.
#[derive(Clone, Copy)]
struct FastRequestId;

impl tower_http::request_id::MakeRequestId for FastRequestId {
    fn make_request_id<B>(&mut self, _: &http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut buf = uuid::Uuid::encode_buffer();
        http::HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf))
            .ok()
            .map(RequestId::new)
    }
}
