//! 策略: who may ask what, for which purpose, in which jurisdiction.
//!
//! The rules live as files beside this crate so that the bureau's legal staff can read and test
//! them: Cedar policies and their schema (`policies/`), purpose profiles (`profiles/`) and local
//! standards (`standards/`). This crate loads and validates them and evaluates requests. It does no
//! I/O except reading that directory at load time: no network, no database.
//!
//! # Layout
//! - [`engine`]: [`PolicyEngine`] — load + strict validation, [`PolicyEngine::authorize`] →
//!   [`Decision`] (allowed, deciding policy ids, the caseworker-readable reason).
//! - [`action`]: [`Action`] — the API operations, one Cedar action each.
//! - [`profiles`]: [`Profiles`] — per purpose, the fact kinds asked of each department, raw
//!   visibility, income components.
//! - [`standards`]: [`Standards`] — per county and year, the 低保 line, asset limits, tolerance.
//! - [`calendar`]: [`WorkingCalendar`] — China's official working days (holidays, 调休 make-up
//!   days) per year, from the State Council's notices; deadlines in working days, provisional when a
//!   year has no file.
//! - [`deadlines`]: [`Deadlines`] — the clocks' durations (`clocks.toml`): the case clocks and each
//!   referral-slip kind's default and longest period.
//! - [`departments`]: [`Departments`] — the department directory (`departments.toml`): code,
//!   names, fact kinds and event kinds of each department, the seven built-ins always present.
//! - [`warnings`]: [`WarningRules`] — the early-warning rules (`warnings.toml`): which events
//!   raise a warning of which tier for whom, evaluated purely at ingest and by `hub policy check`.
//! - [`table`]: [`run_decision_table`] — run a decision table against an engine.
//! - [`error`]: [`PolicyError`] — every load error names the file and line (Cedar) or key (TOML).
#![forbid(unsafe_code)]

pub mod action;
pub mod calendar;
pub mod deadlines;
pub mod departments;
pub mod engine;
pub mod error;
pub mod profiles;
pub mod standards;
pub mod table;
mod toml_util;
pub mod warnings;

pub use action::Action;
pub use calendar::{CalendarError, CalendarYear, Day, DayKind, Deadline, WorkingCalendar};
pub use deadlines::{CasePeriods, Deadlines, Period, SlipPeriods};
pub use departments::{DepartmentSpec, Departments};
pub use engine::{AuthorizationStatus, Decision, PolicyEngine, RequestCtx, ResourceCtx};
pub use error::{PolicyError, SourceProblem};
pub use profiles::{IncomeRule, Profiles, PurposeProfile};
pub use standards::{AssetLimits, LocalStandard, Standards, Tolerance};
pub use table::{CaseFailure, TableReport, run_decision_table};
pub use warnings::{History, HouseholdFacts, Signal, Verdict, WarningRule, WarningRules, Who};
