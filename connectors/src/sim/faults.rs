//! 故障开关: fault switches for simulated departments, settable at runtime.
//!
//! A [`FaultSwitch`] holds the one [`Fault`] a department currently exhibits. The protocol server
//! ([`crate::adapter::server`]) consults it on every query; the production `connector` binary never
//! changes it from [`Fault::None`]. Tests and the demo flip it through
//! [`crate::sim::SimDepartment::set_fault`] or the admin endpoint `PUT /sim/fault` (body: the
//! [`Fault`] JSON, e.g. `{"fault":"delay","delay_ms":1500}`).
//!
//! What a client observes for each fault:
//!
//! | fault | observable behaviour |
//! |---|---|
//! | `none` | a correct signed answer |
//! | `delay` | a correct signed answer after `delay_ms` milliseconds |
//! | `hang` | no response at all (the connection stays open until the client gives up) |
//! | `refuse` | HTTP 403 with a protocol error body, code `forbidden` (or the `code` given) |
//! | `malformed_json` | HTTP 200, `content-type: application/json`, a truncated JSON body |
//! | `bad_signature` | HTTP 200 with a well-formed signed answer whose signature does not verify |
//! | `close_connection` | the TLS connection is closed without any HTTP response |

use std::sync::Mutex;
use std::time::Duration;

use schemas::ProtocolErrorCode;
use serde::{Deserialize, Serialize};

/// One fault a simulated department can exhibit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Behave correctly.
    #[default]
    None,
    /// Answer correctly, but only after a delay.
    Delay { delay_ms: u64 },
    /// Never answer.
    Hang,
    /// Refuse the whole query with a protocol error.
    Refuse {
        #[serde(default = "default_refusal")]
        code: ProtocolErrorCode,
    },
    /// Return a truncated JSON body with status 200.
    MalformedJson,
    /// Return an answer whose signature does not verify.
    BadSignature,
    /// Close the connection without answering.
    CloseConnection,
}

fn default_refusal() -> ProtocolErrorCode {
    ProtocolErrorCode::Forbidden
}

impl Fault {
    /// A delay fault.
    pub fn delay(d: Duration) -> Fault {
        Fault::Delay {
            delay_ms: d.as_millis() as u64,
        }
    }

    /// A refusal with code `forbidden`.
    pub fn refuse() -> Fault {
        Fault::Refuse {
            code: ProtocolErrorCode::Forbidden,
        }
    }
}

/// The current fault of one department (shared between the handle and the server).
#[derive(Debug, Default)]
pub struct FaultSwitch(Mutex<Fault>);

impl FaultSwitch {
    pub fn get(&self) -> Fault {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, fault: Fault) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str, expected: Fault) {
        assert_eq!(
            serde_json::from_str::<Fault>(json).unwrap(),
            expected,
            "{json}"
        );
        let back = serde_json::to_string(&expected).unwrap();
        assert_eq!(serde_json::from_str::<Fault>(&back).unwrap(), expected);
    }

    #[test]
    fn faults_have_a_json_form() {
        check(r#"{"fault":"none"}"#, Fault::None);
        check(
            r#"{"fault":"delay","delay_ms":250}"#,
            Fault::delay(Duration::from_millis(250)),
        );
        check(r#"{"fault":"hang"}"#, Fault::Hang);
        check(r#"{"fault":"refuse"}"#, Fault::refuse());
        check(
            r#"{"fault":"refuse","code":"overloaded"}"#,
            Fault::Refuse {
                code: ProtocolErrorCode::Overloaded,
            },
        );
        check(r#"{"fault":"malformed_json"}"#, Fault::MalformedJson);
        check(r#"{"fault":"bad_signature"}"#, Fault::BadSignature);
        check(r#"{"fault":"close_connection"}"#, Fault::CloseConnection);
        assert!(serde_json::from_str::<Fault>(r#"{"fault":"explode"}"#).is_err());
    }
}
