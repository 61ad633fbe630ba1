//! The caller identity (调用方身份) the hub derives from a verified client certificate.
//!
//! The identity comes from the certificate's URI SAN, never from its CN. The URI form is
//!
//! ```text
//! spiffe://<trust-domain>/<role>/<organisation>/<division>/<principal>
//! ```
//!
//! e.g. `spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-0001`. The display name is
//! the subject CN (display only, never used for a decision). Parsing lives in the hub's TLS layer;
//! this module holds the pure type so that `policies` can reason about it.

use serde::{Deserialize, Serialize};

use crate::DivisionCode;

/// The role a certificate grants.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 经办人: township/street window caseworker, or county (city, province) officer
    Caseworker,
    /// 协作部门: a partner department's system
    Department,
    /// 审计员: supervision, data-protection officer
    Auditor,
    /// 管理员: operator
    Admin,
    /// 受理渠道: an intake system that files cases (救助申请) on behalf of applicants — the 12345
    /// hotline platform, the 一码求助 QR service. Its organisation is its channel code
    /// ([`crate::cases::Channel`]); it is not a caseworker and never moves a case.
    Intake,
    /// 村级救助协理员: a village assistant. Its division is a 12-digit village code; it files
    /// village reports (村级报告) about households of its village and sees that village's warnings
    /// and reports, nothing else. A role of its own (not a caseworker with a village division) so
    /// that no caseworker permit reaches it by accident: Cedar denies it everything that
    /// `village.cedar` does not permit.
    VillageAssistant,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Caseworker,
        Role::Department,
        Role::Auditor,
        Role::Admin,
        Role::Intake,
        Role::VillageAssistant,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Role::Caseworker => "caseworker",
            Role::Department => "department",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Intake => "intake",
            Role::VillageAssistant => "village_assistant",
        }
    }

    pub fn from_code(code: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Who is calling: derived from a verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Identity {
    /// The full URI SAN the identity came from.
    pub uri: String,
    /// Stable principal id (the last URI path segment), e.g. `cw-0001`.
    pub principal: String,
    pub role: Role,
    /// Organisation: a department code (`civil_affairs`, …) for departments, an office id otherwise.
    pub organisation: String,
    /// Administrative division the identity acts for: 6-digit county, 9-digit township, or the
    /// 12-digit village of a village assistant.
    pub division: DivisionCode,
    /// Display name (subject CN), for display only.
    pub display_name: String,
    /// Certificate serial number, hex.
    pub serial: String,
}
