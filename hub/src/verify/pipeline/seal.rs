//! 封存 (seal and store): the access-log receipts of the request entry and of every department's
//! entry (one pass, one checkpoint), the caller's view (raw figures withheld as Cedar's
//! `view_raw_values` decides), the hub's signature, and the stored row (with the letter follow-up
//! when no letter covered the check).
//!
//! Signed once: the view is signed, and the stored report carries that same signature when the view
//! is the report unchanged (nothing withheld). When something is withheld the stored report is kept
//! unsigned; every later view of it is signed when it is shown ([`crate::verify::api`]'s
//! `raw_value_view`), so no signature is made that nobody sees.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemas::DivisionCode;
use time::OffsetDateTime;

use super::Asker;
use crate::api::ApiError;
use crate::verify::api::{VerificationRequest, unix_ms, withhold_raw_values};
use crate::verify::report::{Report, sign};
use crate::verify::store::{self, FollowUpRow, VerificationRow};

/// What is sealed.
pub(crate) struct Input<'a> {
    /// The assembled report (unsigned, no receipts).
    pub report: Report,
    pub req: &'a VerificationRequest,
    /// The applicant's pseudonym (the household's key for reuse).
    pub applicant: String,
    pub created: OffsetDateTime,
}

/// Receipts, view, signature, store; the 200 with the caller's view.
pub(crate) async fn seal(a: &Asker<'_>, input: Input<'_>) -> Result<Response, ApiError> {
    let s = a.s;
    let Input {
        mut report,
        req,
        applicant,
        created,
    } = input;
    // Every receipt against one checkpoint, in one pass.
    let mut indexes = vec![report.log_index];
    indexes.extend(report.departments.iter().filter_map(|d| d.log_index));
    let mut receipts = s.log.receipts(&indexes).await?.into_iter();
    report.log_receipt = receipts.next().map(|r| r.to_text());
    for d in &mut report.departments {
        if d.log_index.is_some() {
            d.log_receipt = receipts.next().map(|r| r.to_text());
        }
    }

    let region = DivisionCode::parse(&report.registered_division).map_err(ApiError::internal)?;
    let mut view = report.clone();
    let withheld = withhold_raw_values(s, a.id, &region, &mut view);
    sign(&mut view, &s.keys.signing).map_err(ApiError::internal)?;
    if !withheld {
        // The same bytes: the view's signature is the stored report's.
        report.signature.clone_from(&view.signature);
    }

    let json = serde_json::to_string(&report).map_err(ApiError::internal)?;
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
    store::insert_verification(
        &s.store.db(),
        &VerificationRow {
            id: report.id.clone(),
            created_ms: unix_ms(created),
            requested_by: a.id.uri.clone(),
            registered_division: report.registered_division.clone(),
            household: applicant,
            purpose: req.purpose.code().to_owned(),
            case_ref: req.case_ref.clone(),
            urgency: req.urgency.code().to_owned(),
            authorization_id: req.authorization_id.clone(),
            report: json,
            case_id: req.case_id.clone(),
        },
        follow_up.as_ref(),
    )
    .await?;
    Ok((StatusCode::OK, Json(view)).into_response())
}
