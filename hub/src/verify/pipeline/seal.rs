//! 封存 (seal and store): the verification's department entries (`department_queried`,
//! `evidence_reused`), its receipts, the caller's view (raw figures withheld as Cedar's
//! `view_raw_values` decides), the hub's signature and the stored row (with the letter follow-up
//! when no letter covered the check), made durable in ONE group commit of the access log
//! ([`crate::log::AccessLog::append_many_with`]): the entries, the signed checkpoint covering them
//! and the row share one transaction with every append queued meanwhile. The caller is answered
//! only after that commit.
//!
//! Invariants:
//! - No stored report without its entries: the row is written inside the batch transaction, after
//!   the entries are sequenced (its log indexes and receipts name them). If the row's write fails,
//!   its savepoint rolls it back, the entries still commit (the departments were asked) and the
//!   caller gets a 500; a failed batch commits neither.
//! - Every receipt (the request entry's and each department's) is against the one checkpoint
//!   signed in that transaction.
//! - Signed once: the view is signed, and the stored report carries that same signature when the
//!   view is the report unchanged (nothing withheld). When something is withheld the stored report
//!   is kept unsigned; every later view of it is signed when it is shown
//!   ([`crate::verify::api`]'s `raw_value_view`), so no signature is made that nobody sees.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemas::access_log::AccessLogEntry;
use schemas::{Department, DivisionCode};
use time::OffsetDateTime;

use super::Asker;
use crate::api::ApiError;
use crate::keys::HubKeys;
use crate::log::{Attached, AttachedFuture, Placed, TxConn};
use crate::verify::api::{VerificationRequest, unix_ms, withhold_raw_values};
use crate::verify::report::{Report, sign};
use crate::verify::store::{self, FollowUpRow, VerificationRow};

/// What is sealed.
pub(crate) struct Input<'a> {
    /// The assembled report (unsigned, no department log indexes, no receipts).
    pub report: Report,
    pub req: &'a VerificationRequest,
    /// The applicant's pseudonym (the household's key for reuse).
    pub applicant: String,
    pub created: OffsetDateTime,
    /// One entry per department of the report (asked or reused), in the report's order.
    pub entries: Vec<(Department, AccessLogEntry)>,
}

/// Entries, receipts, view, signature and row in one group commit; the 200 with the caller's view.
pub(crate) async fn seal(a: &Asker<'_>, input: Input<'_>) -> Result<Response, ApiError> {
    let s = a.s;
    let Input {
        report,
        req,
        applicant,
        created,
        entries,
    } = input;
    let region = DivisionCode::parse(&report.registered_division).map_err(ApiError::internal)?;
    // What is withheld depends on who asks and on the facts, not on the log indexes.
    let mut view = report.clone();
    let withheld = withhold_raw_values(s, a.id, &region, &mut view);

    // Rows name the requester by full identity URI: ownership is decided in Cedar against the
    // caller's URI (`requester-only`), never by principal id alone.
    let follow_up = report.letter_due_by.as_ref().map(|due_by| FollowUpRow {
        verification_id: report.id.clone(),
        requested_by: a.id.uri.clone(),
        registered_division: report.registered_division.clone(),
        case_ref: req.case_ref.clone(),
        created_ms: unix_ms(created),
        due_by: due_by.clone(),
        authorization_id: None,
        attached_ms: None,
    });
    let row = VerificationRow {
        id: report.id.clone(),
        created_ms: unix_ms(created),
        requested_by: a.id.uri.clone(),
        registered_division: report.registered_division.clone(),
        household: applicant,
        purpose: req.purpose.code().to_owned(),
        case_ref: req.case_ref.clone(),
        urgency: req.urgency.code().to_owned(),
        authorization_id: req.authorization_id.clone(),
        report: String::new(),
        case_id: req.case_id.clone(),
    };
    let (departments, entries): (Vec<Department>, Vec<AccessLogEntry>) =
        entries.into_iter().unzip();
    let outcome: Outcome = Arc::new(Mutex::new(None));
    let work = SealWrite {
        report,
        view,
        withheld,
        departments,
        row,
        follow_up,
        keys: s.keys.clone(),
        outcome: outcome.clone(),
    };
    if entries.is_empty() {
        // A purpose that asks no department (a profile may have an empty `[ask]`): nothing to
        // append; the report is placed against the current checkpoint and stored on its own.
        let mut work = work;
        let receipts = s.log.receipts(&[work.report.log_index]).await?;
        let placed = Placed {
            indexes: Vec::new(),
            checkpoint_size: s.log.head().size,
            receipts,
        };
        work.place(&placed).map_err(ApiError::internal)?;
        store::insert_verification(&s.store.db(), &work.row, work.follow_up.as_ref()).await?;
        return Ok((StatusCode::OK, Json(work.view)).into_response());
    }
    s.log.append_many_with(entries, Box::new(work)).await?;
    // Durable now (or the row was rolled back and the outcome says why).
    let done = outcome.lock().unwrap_or_else(|p| p.into_inner()).take();
    match done {
        Some(Ok(view)) => Ok((StatusCode::OK, Json(*view)).into_response()),
        Some(Err(e)) => Err(ApiError::internal(format!("report not stored: {e}"))),
        None => Err(ApiError::internal(
            "report not stored: the seal did not run",
        )),
    }
}

/// What the seal's write did: the signed view once the row is written, or why not.
type Outcome = Arc<Mutex<Option<Result<Box<Report>, String>>>>;

/// The seal's part of the group commit: places the entries in the report and its view, signs the
/// view, stores the row (see [`crate::log::Attached`]).
struct SealWrite {
    report: Report,
    view: Report,
    withheld: bool,
    /// The department of each entry, in the group's order.
    departments: Vec<Department>,
    /// The row, its `report` filled in at the write.
    row: VerificationRow,
    follow_up: Option<FollowUpRow>,
    keys: Arc<HubKeys>,
    outcome: Outcome,
}

impl SealWrite {
    /// Indexes and receipts into the report and the view, the view signed, the report as JSON.
    fn place(&mut self, placed: &Placed) -> Result<(), String> {
        let want = 1 + self.departments.len();
        if placed.indexes.len() != self.departments.len() || placed.receipts.len() != want {
            return Err(format!(
                "{} entries and {} receipts placed for {} departments",
                placed.indexes.len(),
                placed.receipts.len(),
                self.departments.len()
            ));
        }
        let request = placed.receipts[0].to_text();
        for r in [&mut self.report, &mut self.view] {
            r.log_receipt = Some(request.clone());
        }
        for ((department, index), receipt) in self
            .departments
            .iter()
            .zip(&placed.indexes)
            .zip(&placed.receipts[1..])
        {
            let text = receipt.to_text();
            for r in [&mut self.report, &mut self.view] {
                let d = r
                    .departments
                    .iter_mut()
                    .find(|d| d.department == *department)
                    .ok_or_else(|| format!("no department {department} in the report"))?;
                d.log_index = Some(*index);
                d.log_receipt = Some(text.clone());
            }
        }
        sign(&mut self.view, &self.keys.signing)?;
        if !self.withheld {
            // The same bytes: the view's signature is the stored report's.
            self.report.signature.clone_from(&self.view.signature);
        }
        self.row.report = serde_json::to_string(&self.report).map_err(|e| e.to_string())?;
        Ok(())
    }
}

impl Attached for SealWrite {
    fn write<'a>(&'a mut self, conn: TxConn<'a>, placed: &'a Placed) -> AttachedFuture<'a> {
        Box::pin(async move {
            let r = match self.place(placed) {
                Ok(()) => store::insert_verification_in(conn, &self.row, self.follow_up.as_ref())
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            let ok = r.is_ok();
            *self.outcome.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(r.map(|()| Box::new(self.view.clone())));
            ok
        })
    }

    /// The request entry's receipt first, then one per department entry.
    fn receipts_for(&self) -> Option<Vec<u64>> {
        Some(vec![self.report.log_index])
    }
}
