//! 并发查询 (fan-out): every planned query sent at once, each bounded by the urgency's deadline,
//! each logged as one `department_queried` entry with its outcome as soon as it ends; then one
//! `evidence_reused` entry per reused department.
//!
//! The loop in [`fan_out`] is the one place where a department's outcome becomes known (after its
//! entry is durable); the `on_done` callback is called there, once per department, in the order
//! the departments finish.
//!
//! A query whose entry cannot be written fails the verification (after every query has ended):
//! nothing is reported that the log does not record.

use futures::StreamExt as _;
use futures::future::join_all;
use futures::stream::FuturesUnordered;
use schemas::access_log::{Action as LogAction, Outcome};
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
    /// The `department_queried` entry.
    pub log_index: u64,
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
    pub log_index: u64,
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
        // The per-department completion point: the query has ended and its entry is durable.
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
            "a department query could not be recorded in the access log",
        ));
    }
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, asked)| asked).collect())
}

/// One department's query and its entry; `None` when the entry could not be written.
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
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let mut asked = Asked {
        department,
        kinds: query.fact_kinds.clone(),
        result,
        elapsed_ms,
        log_index: 0,
    };
    let entry = a
        .entry(
            LogAction::DepartmentQueried,
            policy_ids.to_vec(),
            vec![department],
            query.fact_kinds.clone(),
            asked.status().outcome(),
        )
        .ok()?;
    match a.s.log.append(entry).await {
        Ok(logged) => {
            asked.log_index = logged.index;
            Some(asked)
        }
        Err(e) => {
            tracing::error!(error = %e, department = %department, "access log append failed");
            None
        }
    }
}

/// One `evidence_reused` entry per reused department, appended concurrently (one group commit),
/// in department order. Takes the plan whole: its queries have been asked.
pub(crate) async fn record_reuse(
    a: &Asker<'_>,
    policy_ids: &[String],
    plan: Plan,
) -> Result<Vec<Reused>, ApiError> {
    let Plan { reused, kinds, .. } = plan;
    let kinds_of = |d: &Department| kinds.get(d).cloned().unwrap_or_default();
    let entries = reused
        .keys()
        .map(|d| {
            a.entry(
                LogAction::EvidenceReused,
                policy_ids.to_vec(),
                vec![*d],
                kinds_of(d),
                Outcome::Succeeded,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let logged = join_all(entries.into_iter().map(|e| a.s.log.append(e)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(reused
        .into_iter()
        .zip(logged)
        .map(|((department, answer), logged)| Reused {
            department,
            kinds: kinds_of(&department),
            answer,
            log_index: logged.index,
        })
        .collect())
}
