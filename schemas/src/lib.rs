//! Shared vocabulary of Jishijiu Hub (济时救数据共享核对枢纽).
//!
//! Pure types and their JSON Schemas; no I/O. Every other crate in the workspace depends on this one,
//! and this one depends on no workspace crate.
//!
//! # Layout
//! - [`cases`]: the vocabulary of cases (救助案件): intake channels, hardship kinds, first help,
//!   assistance types.
//! - [`division`]: administrative-division codes (行政区划代码), 6-digit county, 9-digit township.
//! - [`identity`]: the caller identity the hub derives from a verified client certificate.
//! - [`vocab`]: departments (部门), purposes (核对用途) and urgency (紧急程度).
//! - [`resident_id`]: resident identity numbers (公民身份号码, GB 11643-1999), masked in logs.
//! - [`household`]: households (家庭), members and their relation to the applicant (与申请人关系).
//! - [`catalogue`]: the fact catalogue (事实目录): fact kinds, value types, units, periods, validity.
//! - [`protocol`]: connector protocol v1 (`jsj-connector/1`): query, signed answer, error body,
//!   canonical bytes, Ed25519 signing and verification, the receiver pipeline.
//! - [`validate`]: JSON Schema validation against the committed files in `schemas/json/`.
//! - [`wire`]: date, instant and month encodings shared by the protocol types.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod cases;
pub mod catalogue;
pub mod division;
pub mod events;
pub mod household;
pub mod identity;
pub mod protocol;
pub mod resident_id;
pub mod shape;
pub mod validate;
pub mod vocab;
pub mod wire;

pub use catalogue::{
    FactDecl, FactKind, FactKindError, FactSpec, FactValue, MonthAmount, PeriodKind,
    ReferencePeriod, Unit, ValueType,
};
pub use division::DivisionCode;
pub use household::{Household, Member, Relation};
pub use identity::{Identity, Role};
pub use protocol::{
    DepartmentAnswer, DepartmentKey, Fact, FactQuery, ProtocolError, ProtocolErrorCode,
    QuerySubject, SignedAnswer, SubjectOutcome, SubjectResult,
};
pub use resident_id::{ResidentId, ResidentIdError, Sex};
pub use vocab::{Department, Purpose, Urgency};
pub use wire::YearMonth;
