//! 一次采集、多次复用 (once-only): reuse a department's answer to an earlier verification of the same
//! household instead of asking the department again.
//!
//! A department's part of an earlier report is reused, whole, when all of these hold:
//! - the earlier verification is of the same household (same applicant pseudonym) and every member of
//!   the current household was a member of it;
//! - the department answered it (or that verification itself reused an answer; the provenance then
//!   points at the verification where the department actually answered);
//! - every fact kind asked of the department now was asked then;
//! - for every such kind, the answer is younger than the kind's validity window
//!   ([`schemas::catalogue::FactSpec::validity_days`]);
//! - the current verification cites a letter that covers it (checked by the caller; an emergency
//!   check without a letter always asks afresh), and the caller did not ask for fresh queries.
//!
//! Otherwise the department is asked. Reuse is per department, never per fact, so each department's
//! facts in a report come from one signed answer.

use schemas::{Department, FactKind};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::report::{DepartmentStatus, MemberNote, Report, ReportedFact};

/// A department's earlier answer, ready to reuse.
#[derive(Debug, Clone)]
pub struct Reusable {
    /// The verification in which the department answered.
    pub source: String,
    /// When it answered (RFC 3339).
    pub answered_at: String,
    pub key_id: Option<String>,
    pub signature: Option<String>,
    /// Per current member (in the order of `pseudonyms`), the facts and notes to carry over.
    pub members: Vec<(Vec<ReportedFact>, Vec<MemberNote>)>,
}

/// The youngest reusable answer of `department` among `earlier` (newest first) for the members
/// `pseudonyms` and the kinds `kinds`, as of `now`.
pub fn find(
    earlier: &[Report],
    department: Department,
    kinds: &[FactKind],
    pseudonyms: &[String],
    now: OffsetDateTime,
) -> Option<Reusable> {
    earlier
        .iter()
        .find_map(|r| from_report(r, department, kinds, pseudonyms, now))
}

/// The answer of `department` in one earlier report, if it can be reused (see the module rules).
pub fn from_report(
    r: &Report,
    department: Department,
    kinds: &[FactKind],
    pseudonyms: &[String],
    now: OffsetDateTime,
) -> Option<Reusable> {
    let d = r.departments.iter().find(|d| d.department == department)?;
    if !d.status.has_facts() || !kinds.iter().all(|k| d.fact_kinds.contains(k)) {
        return None;
    }
    let answered_at = d.answered_at.as_deref()?;
    let obtained = OffsetDateTime::parse(answered_at, &Rfc3339).ok()?;
    let age = now - obtained;
    if age.is_negative()
        || kinds
            .iter()
            .any(|k| age >= time::Duration::days(i64::from(k.spec().validity_days)))
    {
        return None;
    }
    let source = match d.status {
        DepartmentStatus::Reused => d.reused_from.clone()?,
        _ => r.id.clone(),
    };
    let mut members = Vec::with_capacity(pseudonyms.len());
    for p in pseudonyms {
        let m = r.members.iter().find(|m| &m.pseudonym == p)?;
        let facts = m
            .facts
            .iter()
            .filter(|f| f.department == department && kinds.contains(&f.kind))
            .map(|f| ReportedFact {
                reused_from: Some(source.clone()),
                ..f.clone()
            })
            .collect();
        let notes = m
            .notes
            .iter()
            .filter(|n| n.department == department)
            .cloned()
            .collect();
        members.push((facts, notes));
    }
    Some(Reusable {
        source,
        answered_at: answered_at.to_owned(),
        key_id: d.key_id.clone(),
        signature: d.signature.clone(),
        members,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::verify::report::{DepartmentReport, MemberReport};
    use schemas::{FactValue, Purpose, Urgency};
    use time::macros::datetime;

    fn fact(kind: FactKind, at: &str) -> ReportedFact {
        ReportedFact {
            kind,
            value: Some(FactValue::MoneyFen(100)),
            withheld: None,
            period_from: "2026-11-01".into(),
            period_to: "2026-11-30".into(),
            department: kind.spec().department,
            answered_at: at.into(),
            key_id: "k".into(),
            reused_from: None,
        }
    }

    /// An earlier report in which labour answered (pension and unemployment benefit) for `people`.
    pub(crate) fn report(id: &str, at: &str, status: DepartmentStatus, people: &[&str]) -> Report {
        let kinds = vec![FactKind::Pension, FactKind::UnemploymentBenefit];
        Report {
            id: id.into(),
            created_at: at.into(),
            requested_by: "cw".into(),
            registered_division: "370811002".into(),
            purpose: Purpose::DibaoApplication,
            case_ref: "c".into(),
            urgency: Urgency::Normal,
            authorization_id: Some("a".into()),
            emergency_without_letter: false,
            letter_due_by: None,
            deadline_ms: 1,
            complete: true,
            departments: vec![DepartmentReport {
                department: Department::Labor,
                name_zh: "人社".into(),
                status,
                status_text: String::new(),
                fact_kinds: kinds.clone(),
                answered_at: Some(at.into()),
                key_id: Some("k".into()),
                signature: Some("sig".into()),
                detail: None,
                reused_from: (status == DepartmentStatus::Reused).then(|| "first".to_owned()),
                elapsed_ms: 1,
                log_index: Some(1),
                log_receipt: None,
            }],
            members: people
                .iter()
                .enumerate()
                .map(|(i, p)| MemberReport {
                    subject_ref: format!("m{}", i + 1),
                    name: "x".into(),
                    relation: "applicant".into(),
                    pseudonym: (*p).into(),
                    facts: kinds.iter().map(|k| fact(*k, at)).collect(),
                    notes: Vec::new(),
                })
                .collect(),
            log_index: 0,
            log_receipt: None,
            letter_follow_up: None,
            aggregation: None,
            signature: None,
        }
    }

    #[test]
    fn reuses_only_what_is_valid_complete_and_answered() {
        let now = datetime!(2026-11-29 12:00 UTC);
        let at = "2026-11-20T12:00:00Z";
        let pension = [FactKind::Pension];
        let ab = ["a".to_owned(), "b".to_owned()];
        let r = report("v1", at, DepartmentStatus::Answered, &["a", "b"]);
        let got = find(
            std::slice::from_ref(&r),
            Department::Labor,
            &pension,
            &ab,
            now,
        )
        .unwrap();
        assert_eq!(got.source, "v1");
        assert_eq!(got.members.len(), 2);
        assert_eq!(got.members[1].0.len(), 1, "only the kinds asked now");
        assert_eq!(got.members[0].0[0].reused_from.as_deref(), Some("v1"));
        // A member not in the earlier household: ask.
        let abc = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        assert!(
            find(
                std::slice::from_ref(&r),
                Department::Labor,
                &pension,
                &abc,
                now
            )
            .is_none()
        );
        // A kind not asked then: ask.
        assert!(
            find(
                std::slice::from_ref(&r),
                Department::Labor,
                &[FactKind::MonthlyWages],
                &ab,
                now
            )
            .is_none()
        );
        // Another department: ask.
        assert!(find(std::slice::from_ref(&r), Department::Health, &[], &ab, now).is_none());
        // Past the validity window (30 days for the pension): ask.
        let late = datetime!(2026-12-20 12:00 UTC);
        assert!(
            find(
                std::slice::from_ref(&r),
                Department::Labor,
                &pension,
                &ab,
                late
            )
            .is_none()
        );
        // A department that did not answer: ask.
        let t = report("v2", at, DepartmentStatus::TimedOut, &["a", "b"]);
        assert!(find(&[t], Department::Labor, &pension, &ab, now).is_none());
        // Reuse of a reuse points at the original answer.
        let rr = report("v3", at, DepartmentStatus::Reused, &["a", "b"]);
        assert_eq!(
            find(&[rr], Department::Labor, &pension, &ab, now)
                .unwrap()
                .source,
            "first"
        );
    }
}
