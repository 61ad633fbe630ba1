//! 并发查询 (fan-out): every planned query sent at once, each bounded by the urgency's deadline;
//! each ends with its `department_queried` entry (its outcome) prepared; then one `evidence_reused`
//! entry per reused department is prepared.
//!
//! The entries are not appended here: [`super::seal`] appends them with the stored report in one
//! group commit, so a verification's department entries and its report become durable together
//! (no report without its entries) and the caller is answered only after that commit. What was
//! durable before any department was asked stays so: the allowed `verification_requested` entry
//! (the gate's), naming every department and fact kind about to be asked. A crash between here
//! and the seal therefore loses no acknowledged entry (nothing was answered) and leaves the
//! request's entry saying who was to be asked.
//!
//! The loop in [`fan_out`] is the one place where a department's outcome becomes known; the
//! `on_done` callback is called there, once per department, in the order the departments finish.
//!
//! A query whose entry cannot be built fails the verification (after every query has ended):
//! nothing is reported that the log does not record.

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use schemas::access_log::{AccessLogEntry, Action as LogAction, Outcome};
use schemas::{Department, FactKind, FactQuery};

use super::Asker;
use super::plan::Plan;
use crate::api::ApiError;
use crate::verify::report::DepartmentStatus;

/// One department asked, and how it ended.
#[derive(Debug)]
pub(crate) struct Asked {
    pub department: Department,
    pub kinds: Vec<FactKind>,
    pub result: Result<connectors::VerifiedAnswer, connectors::ConnectorError>,
    pub elapsed_ms: u64,
    /// The round trip as the hub saw it (query sent to answer checked), for `Server-Timing`.
    pub elapsed: std::time::Duration,
    /// The `department_queried` entry, appended at the seal.
    pub entry: AccessLogEntry,
}

impl Asked {
    /// The department's status in the report.
    pub(crate) fn status(&self) -> DepartmentStatus {
        match &self.result {
            Ok(_) => DepartmentStatus::Answered,
            Err(e) => DepartmentStatus::of_error(e),
        }
    }
}

/// A department whose earlier answer is reused, with its `evidence_reused` entry.
#[derive(Debug)]
pub(crate) struct Reused {
    pub department: Department,
    pub kinds: Vec<FactKind>,
    pub answer: crate::verify::reuse::Reusable,
    /// The `evidence_reused` entry, appended at the seal.
    pub entry: AccessLogEntry,
}

/// Ask every department of `queries` at once. Returns the departments in the order of `queries`
/// (so that the report does not depend on which answered first). `on_done` is called as each
/// department's outcome becomes known.
pub(crate) async fn fan_out(
    a: &Asker<'_>,
    policy_ids: &[String],
    queries: &[(Department, FactQuery)],
    deadline: tokio::time::Instant,
    mut on_done: impl FnMut(&Asked),
) -> Result<Vec<Asked>, ApiError> {
    let mut pending: FuturesUnordered<_> = queries
        .iter()
        .enumerate()
        .map(|(i, (department, query))| async move {
            (i, ask(a, policy_ids, *department, query, deadline).await)
        })
        .collect();
    let mut done: Vec<(usize, Asked)> = Vec::with_capacity(queries.len());
    let mut unlogged = false;
    while let Some((i, asked)) = pending.next().await {
        // The per-department completion point: the query has ended and its entry is prepared.
        match asked {
            Some(asked) => {
                on_done(&asked);
                done.push((i, asked));
            }
            None => unlogged = true,
        }
    }
    if unlogged {
        return Err(ApiError::internal(
            "a department query's access-log entry could not be built",
        ));
    }
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, asked)| asked).collect())
}

/// One department's query and its entry; `None` when the entry could not be built.
async fn ask(
    a: &Asker<'_>,
    policy_ids: &[String],
    department: Department,
    query: &FactQuery,
    deadline: tokio::time::Instant,
) -> Option<Asked> {
    let started = std::time::Instant::now();
    let result = crate::verify::metrics::ask(
        a.s.verify.connector(department),
        department,
        query,
        deadline,
    )
    .await;
    let elapsed = started.elapsed();
    let elapsed_ms = elapsed.as_millis() as u64;
    let status = match &result {
        Ok(_) => DepartmentStatus::Answered,
        Err(e) => DepartmentStatus::of_error(e),
    };
    let entry = a
        .entry(
            LogAction::DepartmentQueried,
            policy_ids.to_vec(),
            vec![department],
            query.fact_kinds.clone(),
            status.outcome(),
        )
        .inspect_err(|e| {
            tracing::error!(error = %e.message, department = %department, "access-log entry not built");
        })
        .ok()?;
    Some(Asked {
        department,
        kinds: query.fact_kinds.clone(),
        result,
        elapsed_ms,
        elapsed,
        entry,
    })
}

/// One `evidence_reused` entry per reused department (appended at the seal), in department
/// order. Takes the plan whole: its queries have been asked.
pub(crate) fn record_reuse(
    a: &Asker<'_>,
    policy_ids: &[String],
    plan: Plan,
) -> Result<Vec<Reused>, ApiError> {
    let Plan { reused, kinds, .. } = plan;
    let kinds_of = |d: &Department| kinds.get(d).cloned().unwrap_or_default();
    reused
        .into_iter()
        .map(|(department, answer)| {
            Ok(Reused {
                entry: a.entry(
                    LogAction::EvidenceReused,
                    policy_ids.to_vec(),
                    vec![department],
                    kinds_of(&department),
                    Outcome::Succeeded,
                )?,
                department,
                kinds: kinds_of(&department),
                answer,
            })
        })
        .collect()
}
