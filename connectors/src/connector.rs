//! The `Connector` trait: how the hub asks one department for facts, whatever the transport.
//!
//! Invariant: a `Connector` returns either a [`VerifiedAnswer`] — schema-checked, signature
//! verified under the department's configured key, and bound to the query — or a
//! [`ConnectorError`]. Nothing in between: an answer is never half-used.

use std::time::Duration;

use futures::future::BoxFuture;
use schemas::protocol::AnswerSignature;
use schemas::{Department, DepartmentAnswer, FactKind, FactQuery};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::ConnectorError;

/// An answer that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAnswer {
    /// The typed answer.
    pub answer: DepartmentAnswer,
    /// The department's signature over `answer_json`.
    pub signature: AnswerSignature,
    /// The `answer` object exactly as received: what the signature covers. Keep it as evidence.
    pub answer_json: serde_json::Value,
    /// When the hub received it.
    pub received_at: OffsetDateTime,
    /// Time from the first attempt to the verified answer.
    pub elapsed: Duration,
    /// Connection attempts made (more than 1 only after connect failures).
    pub attempts: u32,
}

/// A way to reach one department.
pub trait Connector: Send + Sync {
    /// The department this connector reaches.
    fn department(&self) -> Department;

    /// The fact kinds this department is configured to serve. Asking for others is an
    /// `invalid_query` and nothing is sent.
    fn served_fact_kinds(&self) -> &[FactKind];

    /// Ask the department. Resolves by `deadline` at the latest (with `timeout`), never panics.
    fn query<'a>(
        &'a self,
        query: &'a FactQuery,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<VerifiedAnswer, ConnectorError>>;

    /// The circuit breaker's state, for connectors that have one (the console's department page).
    fn circuit_state(&self) -> Option<crate::breaker::BreakerState> {
        None
    }
}
