//! Where a department's facts come from: the [`FactSource`] trait the protocol server calls.
//!
//! Two implementations exist: [`super::sql::SqlFactSource`] (a department's own database through a
//! mapping file) and [`crate::sim::server::PopulationSource`] (the simulator). The server does all
//! protocol work — validation, refusal of unserved kinds, signing, logging — so a source only
//! answers "what do you know about this person".

use std::future::Future;
use std::pin::Pin;

use schemas::{Department, FactKind, ResidentId, SubjectOutcome};
use time::Date;

/// A boxed, sendable future (the trait is used as `dyn FactSource`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source failure. The message goes to the department's log, never to the hub: it must not
/// contain a resident ID number.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// The facts one department can give about one person.
pub trait FactSource: Send + Sync + 'static {
    /// The department this source speaks for.
    fn department(&self) -> Department;

    /// Whether `kind` is configured (a query asking for anything else is refused whole).
    fn serves(&self, kind: FactKind) -> bool;

    /// The outcome for one person: `Found` with exactly one fact per kind in `kinds` (all served),
    /// `Unknown` when there is no record, `Refused` when the record may not be released.
    fn lookup<'a>(
        &'a self,
        subject: &'a ResidentId,
        kinds: &'a [FactKind],
        as_of: Date,
    ) -> BoxFuture<'a, Result<SubjectOutcome, SourceError>>;
}
