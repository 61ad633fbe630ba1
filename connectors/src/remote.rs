//! `RemoteConnector`: connector protocol v1 over HTTPS with mTLS to one department.
//!
//! Per department: its own rustls client configuration (its CA only, the hub's client certificate;
//! see [`crate::tls`]), a timeout, a concurrency bound, a retry policy and a circuit breaker.
//!
//! # Retry policy (and why)
//!
//! A query is retried **only when the connection could not be established** (TCP connect refused
//! or timed out, TLS handshake failed): then no byte of the query reached the department. Once the
//! request may have been delivered, it is never re-sent, even though a department could deduplicate
//! by `request_id`: a department logs every query it answers (an access to personal data), and the
//! hub's access log records one entry per (actor, action, department); a blind re-send could make
//! the department's log show an access the hub's log does not. The caller may retry the whole
//! verification, which is logged as a new access. Retries back off exponentially
//! (`base_backoff · 2^n`, plus up to 50 % jitter) and never run past the deadline.
//!
//! # Deadline
//!
//! Everything — waiting for a concurrency slot, connecting, retries, reading the body — happens
//! inside `min(caller deadline, start + per-department timeout)`; when it passes the query fails
//! with `timeout`, whichever step it was in.
//!
//! # Trace context
//!
//! Every query runs in a `department_query` span (department code and request id, nothing else)
//! and carries that span's W3C `traceparent` (see [`crate::trace`]).
//!
//! Invariant: an answer is accepted only through [`schemas::protocol::receive_answer`] (JSON Schema,
//! Ed25519 signature under a configured department key, binding to the query); otherwise the whole
//! answer is rejected.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng as _;
use schemas::protocol::{AnswerError, QUERY_PATH, receive_answer};
use schemas::{Department, DepartmentKey, FactKind, FactQuery, ProtocolError, ProtocolErrorCode};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use crate::{Connector, ConnectorError, VerifiedAnswer};

/// The largest answer body accepted (a household's facts are a few kilobytes).
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// When to retry. See the module documentation for the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total connection attempts, at least 1.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled for each further one.
    pub base_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_backoff: Duration::from_millis(100),
        }
    }
}

/// Settings for one department. Build with [`RemoteConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub department: Department,
    /// `https://host:port` of the department's connector; the query goes to [`QUERY_PATH`].
    pub base_url: String,
    /// The department's answer-signing keys (more than one during a key rotation).
    pub keys: Vec<DepartmentKey>,
    /// Fact kinds the department is configured to serve.
    pub served: Vec<FactKind>,
    /// Total time for one query, all attempts included.
    pub timeout: Duration,
    /// Time for one TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Queries in flight to this department at once; more wait (inside their deadline).
    pub max_concurrent: usize,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
}

impl RemoteConfig {
    /// Defaults: every catalogue kind of the department, 10 s timeout, 2 s connect timeout,
    /// 16 concurrent queries, 3 connect attempts, breaker 5 failures / 30 s.
    pub fn new(
        department: Department,
        base_url: impl Into<String>,
        keys: Vec<DepartmentKey>,
    ) -> Self {
        Self {
            department,
            base_url: base_url.into(),
            keys,
            served: FactKind::served_by(department).collect(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_concurrent: 16,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// A connector to one department over HTTPS + mTLS.
#[derive(Debug)]
pub struct RemoteConnector {
    config: RemoteConfig,
    url: reqwest::Url,
    client: reqwest::Client,
    /// Bounds queries in flight to this department.
    limiter: Arc<Semaphore>,
    breaker: CircuitBreaker,
}

impl RemoteConnector {
    /// Build the connector. `tls` comes from [`crate::tls::client_config`] for this department.
    pub fn new(config: RemoteConfig, tls: rustls::ClientConfig) -> Result<Self, ConnectorError> {
        let department = config.department;
        let hub_config = |detail: String| ConnectorError::HubConfig { department, detail };
        let base = reqwest::Url::parse(&config.base_url)
            .map_err(|e| hub_config(format!("base_url: {e}")))?;
        if base.scheme() != "https" {
            return Err(hub_config("base_url: must be https".into()));
        }
        let url = base
            .join(QUERY_PATH)
            .map_err(|e| hub_config(format!("base_url: {e}")))?;
        if config.keys.is_empty() {
            return Err(hub_config(
                "keys: at least one department key is required".into(),
            ));
        }
        if config.max_concurrent == 0 {
            return Err(hub_config("max_concurrent: must be at least 1".into()));
        }
        if let Some(k) = config.served.iter().find(|k| k.department() != department) {
            return Err(hub_config(format!(
                "served: {k} belongs to {}",
                k.department()
            )));
        }
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| hub_config(format!("http client: {}", chain(&e))))?;
        Ok(Self {
            limiter: Arc::new(Semaphore::new(config.max_concurrent)),
            breaker: CircuitBreaker::new(config.breaker),
            url,
            client,
            config,
        })
    }

    /// The circuit breaker's current state (for metrics and the console).
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    async fn run(
        &self,
        query: &FactQuery,
        deadline: Instant,
    ) -> Result<VerifiedAnswer, ConnectorError> {
        let department = self.config.department;
        self.check_query(query)?;
        let permit =
            self.breaker
                .try_acquire()
                .map_err(|retry_in| ConnectorError::CircuitOpen {
                    department,
                    retry_in,
                })?;
        let start = Instant::now();
        let own_deadline = start + self.config.timeout;
        // When the caller's deadline is the earlier one, a timeout says nothing about the
        // department's health (it was not given its full timeout): it does not count for the breaker.
        let callers_deadline_first = deadline < own_deadline;
        let deadline = deadline.min(own_deadline);
        let outcome =
            match tokio::time::timeout_at(deadline, self.attempt_all(query, deadline)).await {
                Ok(r) => r,
                Err(_) => Err(ConnectorError::Timeout {
                    department,
                    after: start.elapsed(),
                }),
            };
        match &outcome {
            Err(ConnectorError::Timeout { .. }) if callers_deadline_first => drop(permit),
            Err(e) if e.counts_against_department() => permit.failure(),
            _ => permit.success(),
        }
        match &outcome {
            Ok(a) => tracing::debug!(
                department = department.code(),
                request_id = %query.request_id,
                attempts = a.attempts,
                elapsed_ms = a.elapsed.as_millis() as u64,
                "department answered"
            ),
            Err(e) => tracing::warn!(
                department = department.code(),
                request_id = %query.request_id,
                code = e.code(),
                fault = e.fault().code(),
                error = %e,
                "department query failed"
            ),
        }
        outcome.map(|mut a| {
            a.elapsed = start.elapsed();
            a
        })
    }

    fn check_query(&self, query: &FactQuery) -> Result<(), ConnectorError> {
        let department = self.config.department;
        let invalid = |error: ProtocolError| ConnectorError::InvalidQuery { department, error };
        if query.department != department {
            return Err(invalid(
                ProtocolError::new(
                    ProtocolErrorCode::WrongDepartment,
                    format!(
                        "query is for {}, this connector reaches {department}",
                        query.department
                    ),
                )
                .with_field("department"),
            ));
        }
        query.validate().map_err(invalid)?;
        if let Some((i, k)) = query
            .fact_kinds
            .iter()
            .enumerate()
            .find(|(_, k)| !self.config.served.contains(k))
        {
            return Err(invalid(
                ProtocolError::new(
                    ProtocolErrorCode::FactKindNotServed,
                    format!("{department} is not configured to serve {k}"),
                )
                .with_field(format!("fact_kinds[{i}]")),
            ));
        }
        Ok(())
    }

    async fn attempt_all(
        &self,
        query: &FactQuery,
        deadline: Instant,
    ) -> Result<VerifiedAnswer, ConnectorError> {
        let department = self.config.department;
        // Waiting for a slot counts against the deadline (the caller of run() bounds it).
        let _slot = self
            .limiter
            .acquire()
            .await
            .map_err(|_| ConnectorError::HubConfig {
                department,
                detail: "connector closed".into(),
            })?;
        let body = serde_json::to_vec(query).map_err(|e| ConnectorError::InvalidQuery {
            department,
            error: ProtocolError::new(
                ProtocolErrorCode::BadRequest,
                format!("does not serialize: {e}"),
            ),
        })?;
        // W3C trace context of this query's span (the same on every attempt): the department
        // continues the hub's trace (see crate::trace).
        let trace = crate::trace::headers_of(&tracing::Span::current());
        let max_attempts = self.config.retry.max_attempts.max(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let sent = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, "application/json")
                .headers(trace.clone())
                .body(body.clone())
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) if e.is_connect() && attempt < max_attempts => {
                    let backoff = self.backoff(attempt);
                    if Instant::now() + backoff >= deadline {
                        return Err(self.transport_error(&e));
                    }
                    tracing::debug!(department = department.code(), attempt, error = %chain(&e), "connect failed; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                Err(e) => return Err(self.transport_error(&e)),
            };
            let status = response.status().as_u16();
            let bytes = read_limited(response).await.map_err(|e| match e {
                ReadError::TooLarge => ConnectorError::Malformed {
                    department,
                    detail: format!("answer larger than {MAX_ANSWER_BYTES} bytes"),
                },
                ReadError::Transport(e) => self.transport_error(&e),
            })?;
            return self.interpret(status, &bytes, query, attempt);
        }
    }

    fn interpret(
        &self,
        status: u16,
        bytes: &[u8],
        query: &FactQuery,
        attempts: u32,
    ) -> Result<VerifiedAnswer, ConnectorError> {
        let department = self.config.department;
        if status != 200 {
            let error = serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .filter(|v| schemas::validate::protocol_error(v).is_ok())
                .and_then(|v| serde_json::from_value::<ProtocolError>(v).ok());
            return Err(match error {
                Some(error) => ConnectorError::Refused {
                    department,
                    status,
                    error,
                },
                None => ConnectorError::BadStatus { department, status },
            });
        }
        let received = receive_answer(bytes, query, &self.config.keys).map_err(|e| match e {
            AnswerError::Malformed(_) | AnswerError::Mismatch { .. } => ConnectorError::Malformed {
                department,
                detail: e.to_string(),
            },
            AnswerError::UnknownKey(_) | AnswerError::BadSignature => {
                ConnectorError::BadSignature {
                    department,
                    detail: e.to_string(),
                }
            }
        })?;
        Ok(VerifiedAnswer {
            answer: received.answer,
            signature: received.signature,
            answer_json: received.answer_json,
            received_at: OffsetDateTime::now_utc(),
            elapsed: Duration::ZERO,
            attempts,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.config.retry.base_backoff * 2u32.saturating_pow(attempt - 1);
        let jitter = rand::rng().random_range(0.0..0.5);
        base.mul_f64(1.0 + jitter)
    }

    fn transport_error(&self, e: &reqwest::Error) -> ConnectorError {
        let department = self.config.department;
        if e.is_timeout() {
            ConnectorError::Timeout {
                department,
                after: self.config.timeout,
            }
        } else {
            ConnectorError::Unavailable {
                department,
                detail: chain(e),
            }
        }
    }
}

impl Connector for RemoteConnector {
    fn department(&self) -> Department {
        self.config.department
    }

    fn served_fact_kinds(&self) -> &[FactKind] {
        &self.config.served
    }

    fn query<'a>(
        &'a self,
        query: &'a FactQuery,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<VerifiedAnswer, ConnectorError>> {
        // The span whose context goes to the department (`traceparent`): a child of the caller's.
        let span = tracing::info_span!(
            "department_query",
            department = self.config.department.code(),
            request_id = %query.request_id,
        );
        Box::pin(self.run(query, deadline).instrument(span))
    }

    fn circuit_state(&self) -> Option<BreakerState> {
        Some(self.breaker.state())
    }
}

enum ReadError {
    TooLarge,
    Transport(reqwest::Error),
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(ReadError::TooLarge);
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// An error and its sources, `: `-separated (reqwest's top-level message alone says little).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
