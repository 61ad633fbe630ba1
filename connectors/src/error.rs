//! `ConnectorError`: every way a department query can fail, with a stable machine code and whose
//! fault it was (the department, the hub, or the caller).
//!
//! Invariant: messages name the department, the rule and the detail, never a resident ID number
//! (answers carry subject refs only, and schema errors are masked by `schemas::validate`).

use std::time::Duration;

use schemas::{Department, ProtocolError, ProtocolErrorCode};

/// Whose fault a failure was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// 部门: the department was slow, down, or answered wrongly.
    Department,
    /// 枢纽: the hub is misconfigured or sent something the department rightly refused.
    Hub,
    /// 调用方: the caller asked for something invalid.
    Caller,
}

impl Fault {
    pub fn code(self) -> &'static str {
        match self {
            Fault::Department => "department",
            Fault::Hub => "hub",
            Fault::Caller => "caller",
        }
    }
}

/// A failed department query. Codes are stable: see [`ConnectorError::code`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// `timeout`: no complete answer before the deadline (per-department timeout or the caller's).
    #[error("{department}: no answer within {after:?}")]
    Timeout {
        department: Department,
        after: Duration,
    },
    /// `unavailable`: the connection could not be made (refused, TLS handshake failed) or was
    /// closed before an answer arrived.
    #[error("{department}: unavailable: {detail}")]
    Unavailable {
        department: Department,
        detail: String,
    },
    /// `circuit_open`: the breaker is open after repeated failures; the department was not asked.
    #[error("{department}: circuit open after repeated failures; next attempt in {retry_in:?}")]
    CircuitOpen {
        department: Department,
        retry_in: Duration,
    },
    /// `bad_status`: an HTTP status other than 200 without a protocol error body.
    #[error("{department}: unexpected HTTP status {status}")]
    BadStatus { department: Department, status: u16 },
    /// `malformed`: the answer is not JSON, fails the JSON Schema, or does not answer the query.
    #[error("{department}: malformed answer: {detail}")]
    Malformed {
        department: Department,
        detail: String,
    },
    /// `bad_signature`: the answer's signature does not verify under the department's key.
    #[error("{department}: answer signature rejected: {detail}")]
    BadSignature {
        department: Department,
        detail: String,
    },
    /// `refused`: the department refused the whole query with a protocol error body.
    #[error("{department}: refused the query (HTTP {status}): {error}")]
    Refused {
        department: Department,
        status: u16,
        error: ProtocolError,
    },
    /// `invalid_query`: the query breaks a protocol rule, or asks for a fact kind this connector's
    /// department does not serve; it was not sent.
    #[error("{department}: invalid query: {error}")]
    InvalidQuery {
        department: Department,
        error: ProtocolError,
    },
    /// `hub_config`: the hub's own configuration is unusable (TLS material, URL, keys).
    #[error("{department}: hub configuration: {detail}")]
    HubConfig {
        department: Department,
        detail: String,
    },
}

impl ConnectorError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ConnectorError::Timeout { .. } => "timeout",
            ConnectorError::Unavailable { .. } => "unavailable",
            ConnectorError::CircuitOpen { .. } => "circuit_open",
            ConnectorError::BadStatus { .. } => "bad_status",
            ConnectorError::Malformed { .. } => "malformed",
            ConnectorError::BadSignature { .. } => "bad_signature",
            ConnectorError::Refused { .. } => "refused",
            ConnectorError::InvalidQuery { .. } => "invalid_query",
            ConnectorError::HubConfig { .. } => "hub_config",
        }
    }

    /// Whose fault it was.
    pub fn fault(&self) -> Fault {
        match self {
            ConnectorError::Timeout { .. }
            | ConnectorError::Unavailable { .. }
            | ConnectorError::CircuitOpen { .. }
            | ConnectorError::Malformed { .. }
            | ConnectorError::BadSignature { .. } => Fault::Department,
            ConnectorError::BadStatus { status, .. } => {
                if *status >= 500 || *status == 429 {
                    Fault::Department
                } else {
                    Fault::Hub
                }
            }
            ConnectorError::Refused { error, .. } => match error.code {
                ProtocolErrorCode::Overloaded | ProtocolErrorCode::Internal => Fault::Department,
                _ => Fault::Hub,
            },
            ConnectorError::InvalidQuery { .. } => Fault::Caller,
            ConnectorError::HubConfig { .. } => Fault::Hub,
        }
    }

    /// The department concerned.
    pub fn department(&self) -> Department {
        match self {
            ConnectorError::Timeout { department, .. }
            | ConnectorError::Unavailable { department, .. }
            | ConnectorError::CircuitOpen { department, .. }
            | ConnectorError::BadStatus { department, .. }
            | ConnectorError::Malformed { department, .. }
            | ConnectorError::BadSignature { department, .. }
            | ConnectorError::Refused { department, .. }
            | ConnectorError::InvalidQuery { department, .. }
            | ConnectorError::HubConfig { department, .. } => *department,
        }
    }

    /// True when the outcome shows the department unhealthy (counts against the circuit breaker).
    pub fn counts_against_department(&self) -> bool {
        match self {
            ConnectorError::Timeout { .. }
            | ConnectorError::Unavailable { .. }
            | ConnectorError::Malformed { .. }
            | ConnectorError::BadSignature { .. } => true,
            ConnectorError::BadStatus { status, .. } => *status >= 500,
            ConnectorError::Refused { error, .. } => error.code == ProtocolErrorCode::Internal,
            ConnectorError::CircuitOpen { .. }
            | ConnectorError::InvalidQuery { .. }
            | ConnectorError::HubConfig { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(e: ConnectorError, code: &str, fault: Fault, counts: bool) {
        assert_eq!(
            (e.code(), e.fault(), e.counts_against_department()),
            (code, fault, counts),
            "{e}"
        );
        assert_eq!(e.department(), Department::Housing);
    }

    #[test]
    fn codes_and_faults() {
        let d = Department::Housing;
        let pe = |c| ProtocolError::new(c, "x");
        check(
            ConnectorError::Timeout {
                department: d,
                after: Duration::from_secs(1),
            },
            "timeout",
            Fault::Department,
            true,
        );
        check(
            ConnectorError::Unavailable {
                department: d,
                detail: "refused".into(),
            },
            "unavailable",
            Fault::Department,
            true,
        );
        check(
            ConnectorError::CircuitOpen {
                department: d,
                retry_in: Duration::ZERO,
            },
            "circuit_open",
            Fault::Department,
            false,
        );
        check(
            ConnectorError::BadStatus {
                department: d,
                status: 502,
            },
            "bad_status",
            Fault::Department,
            true,
        );
        check(
            ConnectorError::BadStatus {
                department: d,
                status: 404,
            },
            "bad_status",
            Fault::Hub,
            false,
        );
        check(
            ConnectorError::Malformed {
                department: d,
                detail: "x".into(),
            },
            "malformed",
            Fault::Department,
            true,
        );
        check(
            ConnectorError::BadSignature {
                department: d,
                detail: "x".into(),
            },
            "bad_signature",
            Fault::Department,
            true,
        );
        check(
            ConnectorError::Refused {
                department: d,
                status: 422,
                error: pe(ProtocolErrorCode::FactKindNotServed),
            },
            "refused",
            Fault::Hub,
            false,
        );
        check(
            ConnectorError::Refused {
                department: d,
                status: 429,
                error: pe(ProtocolErrorCode::Overloaded),
            },
            "refused",
            Fault::Department,
            false,
        );
        check(
            ConnectorError::InvalidQuery {
                department: d,
                error: pe(ProtocolErrorCode::BadRequest),
            },
            "invalid_query",
            Fault::Caller,
            false,
        );
        check(
            ConnectorError::HubConfig {
                department: d,
                detail: "x".into(),
            },
            "hub_config",
            Fault::Hub,
            false,
        );
    }
}
