//! 部门指标: per-department metrics of every query the hub sends (`/metrics` on the admin port).
//!
//! | metric | type | labels | meaning |
//! |---|---|---|---|
//! | `hub_department_requests_total` | counter | `department`, `outcome` | queries, by outcome: `answered` or the connector error code (`timeout`, `unavailable`, `circuit_open`, `bad_status`, `malformed`, `bad_signature`, `refused`, `invalid_query`, `hub_config`) |
//! | `hub_department_errors_total` | counter | `department`, `code` | failed queries that were the department's fault (`ConnectorError::fault`), by error code |
//! | `hub_department_timeouts_total` | counter | `department` | queries that got no answer before their deadline |
//! | `hub_department_request_duration_seconds` | histogram | `department` | time from asking to the verified answer or the error, for queries that were sent |
//! | `hub_department_circuit_state` | gauge | `department` | the circuit breaker: 0 closed, 1 half-open, 2 open (refreshed on every query and every scrape) |
//!
//! Invariant: the labels are department codes and fixed outcome codes; never a resident ID, a
//! request id or an error message.

use std::sync::Arc;
use std::time::Duration;

use connectors::{BreakerState, Connector, ConnectorError, Fault, VerifiedAnswer};
use schemas::{Department, FactQuery};

use super::VerifyService;

pub const DEPARTMENT_REQUESTS: &str = "hub_department_requests_total";
pub const DEPARTMENT_ERRORS: &str = "hub_department_errors_total";
pub const DEPARTMENT_TIMEOUTS: &str = "hub_department_timeouts_total";
pub const DEPARTMENT_DURATION: &str = "hub_department_request_duration_seconds";
pub const DEPARTMENT_CIRCUIT: &str = "hub_department_circuit_state";

/// Buckets of [`DEPARTMENT_DURATION`] in seconds: departments answer in tens of milliseconds and
/// time out after 10 s by default.
pub const DEPARTMENT_DURATION_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The gauge value of a breaker state: 0 closed, 1 half-open, 2 open.
pub fn circuit_value(state: BreakerState) -> f64 {
    match state {
        BreakerState::Closed { .. } => 0.0,
        BreakerState::HalfOpen { .. } => 1.0,
        BreakerState::Open { .. } => 2.0,
    }
}

/// Ask `department` through its connector (an unconfigured one is `unavailable`), recording the
/// query's metrics. The one way the pipeline asks a department.
pub(crate) async fn ask(
    connector: Option<&Arc<dyn Connector>>,
    department: Department,
    query: &FactQuery,
    deadline: tokio::time::Instant,
) -> Result<VerifiedAnswer, ConnectorError> {
    let started = std::time::Instant::now();
    let result = match connector {
        Some(c) => c.query(query, deadline).await,
        None => Err(ConnectorError::Unavailable {
            department,
            detail: "not configured in [departments]".into(),
        }),
    };
    record(department, &result, started.elapsed());
    if let Some(state) = connector.and_then(|c| c.circuit_state()) {
        metrics::gauge!(DEPARTMENT_CIRCUIT, "department" => department.code())
            .set(circuit_value(state));
    }
    result
}

/// Count one query's outcome and time.
pub(crate) fn record(
    department: Department,
    result: &Result<VerifiedAnswer, ConnectorError>,
    elapsed: Duration,
) {
    let d = department.code();
    let outcome = match result {
        Ok(_) => "answered",
        Err(e) => e.code(),
    };
    metrics::counter!(DEPARTMENT_REQUESTS, "department" => d, "outcome" => outcome).increment(1);
    if let Err(e) = result
        && e.fault() == Fault::Department
    {
        metrics::counter!(DEPARTMENT_ERRORS, "department" => d, "code" => e.code()).increment(1);
    }
    if let Err(ConnectorError::Timeout { .. }) = result {
        metrics::counter!(DEPARTMENT_TIMEOUTS, "department" => d).increment(1);
    }
    // Only queries that went out: a fast refusal by the breaker or a query the hub could not
    // send says nothing about the department's latency.
    let sent = !matches!(
        result,
        Err(ConnectorError::CircuitOpen { .. }
            | ConnectorError::InvalidQuery { .. }
            | ConnectorError::HubConfig { .. })
    );
    if sent {
        metrics::histogram!(DEPARTMENT_DURATION, "department" => d).record(elapsed.as_secs_f64());
    }
}

/// Set every configured department's circuit-breaker gauge (before each scrape: an open breaker
/// turns half-open by the clock, with no query to notice).
pub fn refresh_circuit_gauges(verify: &VerifyService) {
    for (department, connector) in &verify.connectors {
        if let Some(state) = connector.circuit_state() {
            metrics::gauge!(DEPARTMENT_CIRCUIT, "department" => department.code())
                .set(circuit_value(state));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_states_map_to_stable_values() {
        assert_eq!(
            circuit_value(BreakerState::Closed {
                consecutive_failures: 3
            }),
            0.0
        );
        assert_eq!(
            circuit_value(BreakerState::HalfOpen {
                trial_in_flight: true
            }),
            1.0
        );
        assert_eq!(
            circuit_value(BreakerState::Open {
                retry_in: Duration::from_secs(1)
            }),
            2.0
        );
    }
}
