//! 救助案件: the case at the centre of the closed loop 申请—受理—分办—反馈 (apply, accept,
//! dispatch, feed back). One household, one need, one timeline.
//!
//! - [`model`]: the stages and moves, one state machine in pure code; anything else is 409
//!   `illegal_transition` naming the current stage and the allowed moves.
//! - [`clocks`]: the statutory clocks (办理时限) of a case's stages, pure code on the official
//!   working-day calendar, their durations policy data (`policies/clocks.toml`); shown on
//!   `GET /v1/cases/{id}` and as `next_due_at`/`overdue` in lists.
//! - [`slips`]: referral slips (转办单), pure code: issued → accepted (签收) → answered (反馈),
//!   feedback from `issued` implying acceptance; due dates per slip kind from `clocks.toml`.
//! - [`slips_store`]: the `slips` table (`0009_referral_slips.sql`).
//! - [`slips_api`]: `POST /v1/cases/{id}/slips`, `GET /v1/slips`, `GET /v1/slips/{id}`,
//!   `POST /v1/slips/{id}/{accept,feedback}`; the case view lists the case's slips.
//! - [`escalation`]: 超期督办, the stored nearest deadline (`next_due_ms`, kept by every filing
//!   and move) and the escalation scan into the county supervisor's queue
//!   (`GET /v1/escalations`, in [`api`]).
//! - [`store`]: the `cases`, `case_events` and `case_idempotency` tables (SQLite and PostgreSQL).
//! - [`api`]: `POST /v1/cases`, `GET /v1/cases`, `POST /v1/cases/search` (by resident ID, looked
//!   up by keyed pseudonym), `GET /v1/cases/{id}`, the moves
//!   `POST /v1/cases/{id}/{accept,transfer,first-help,investigation,hand-to-county,decision,close}`,
//!   and `GET /v1/verifications` (a caseworker's own verifications).
//! - [`supervision`]: `GET /v1/supervision/timeliness` (督导), timeliness per township and stage
//!   for county supervisors, as JSON or CSV.
//!
//! Invariants:
//! - The resident ID never leaves the request in clear except into the sealed blob: the row holds
//!   the applicant's keyed pseudonym, and the personal fields (resident ID, name, phone,
//!   description) and every event's details are AES-256-GCM sealed under the data key whose id
//!   the row names ([`crate::keys::HubKeys::seal`]), bound to the case id (and event number).
//!   Held by `keys::tests` and e2e `cases::the_resident_id_is_nowhere_in_clear_on_{sqlite,postgres}`.
//! - Who may open, read, list and move a case is Cedar's (`policies/policies/cases.cedar`):
//!   jurisdiction (the case's township inside the caller's division), role (intake systems file
//!   through their own channel and read back only their own filings, without the caseworkers'
//!   records; departments, auditors and admins get nothing), stage (a case handed to the county
//!   is the county's). Every read of a case and every change, allowed or refused, is one access-log
//!   entry (`case_read`, `case_opened`, `case_moved`), durable before the answer and before the
//!   change is written.
//! - Every move records who, when, from which stage to which, and why; a move is written only at
//!   the version it was decided on (a concurrent move gets 409 `case_changed`).
//! - 件件有落实、有反馈: no slip ends without feedback, and a case does not close while one of its
//!   slips has none (409 `slips_open`, naming them). A slip's personal data (whom to help, what is
//!   asked) and its feedback are sealed like the case's, bound to the slip id; a department sees
//!   only slips addressed to its department code, a township only those to its township
//!   (`policies/policies/slips.cedar`); every read and move, allowed or refused, is one entry
//!   (`slip_issued`, `slip_read`, `slip_moved`).

pub mod api;
pub mod clocks;
pub mod escalation;
pub mod escalation_api;
pub mod model;
pub mod slips;
pub mod slips_api;
pub mod slips_store;
pub mod store;
pub mod supervision;
pub mod supervision_slips;
