//! Shared vocabulary of Jishijiu Hub (济时救数据共享核对枢纽).
//!
//! Pure types and their JSON Schemas; no I/O. Every other crate in the workspace depends on this one,
//! and this one depends on no workspace crate.
//!
//! # Layout
//! - [`division`]: administrative-division codes (行政区划代码), 6-digit county, 9-digit township.
//! - [`identity`]: the caller identity the hub derives from a verified client certificate.
//! - [`vocab`]: departments (部门), purposes (核对用途) and urgency (紧急程度).
#![forbid(unsafe_code)]

pub mod division;
pub mod identity;
pub mod vocab;

pub use division::DivisionCode;
pub use identity::{Identity, Role};
pub use vocab::{Department, Purpose, Urgency};
