//! 计划 (plan): which department is asked for which fact kinds, all members in one query per
//! department, and which departments are not asked because their answer to an earlier
//! verification of the same household can be reused (一次采集, [`crate::verify::reuse`]).
//!
//! [`earlier_reports`] reads the candidates from the store (only under a covering letter and
//! without `force_fresh`; the caller decides); [`plan`] itself is pure.

use std::collections::BTreeMap;

use schemas::protocol::{ProtocolVersion, QuerySubject};
use schemas::{Department, FactKind, FactQuery, Household, Purpose};
use time::OffsetDateTime;

use crate::api::{ApiError, AppState};
use crate::verify::report::Report;
use crate::verify::reuse::{self, Reusable};

/// What the plan is made from.
pub(crate) struct Input<'a> {
    /// The purpose profile's plan: fact kinds per department.
    pub wanted: &'a BTreeMap<Department, Vec<FactKind>>,
    /// The household, its region the authoritative one.
    pub household: &'a Household,
    /// The members' pseudonyms, in the household's order.
    pub subjects: &'a [String],
    pub purpose: Purpose,
    /// The letter's id or `emergency:<verification id>`.
    pub authorization_ref: &'a str,
    /// When the verification was admitted (the queries' `issued_at` and as-of date).
    pub created: OffsetDateTime,
    /// Stored reports of earlier verifications of this household, newest first (JSON); empty when
    /// nothing may be reused.
    pub earlier: &'a [String],
}

/// The plan: the queries to send and the parts to reuse.
#[derive(Debug)]
pub(crate) struct Plan {
    /// One query per department still to ask (in department order).
    pub queries: Vec<(Department, FactQuery)>,
    /// Departments not asked: their earlier answer, ready to reuse.
    pub reused: BTreeMap<Department, Reusable>,
    /// The fact kinds of every planned department (asked or reused).
    pub kinds: BTreeMap<Department, Vec<FactKind>>,
}

/// The earlier reports of this household that could hold reusable answers: those inside the
/// longest validity window of the kinds wanted, newest first.
pub(crate) async fn earlier_reports(
    s: &AppState,
    applicant: &str,
    household: &Household,
    wanted: &BTreeMap<Department, Vec<FactKind>>,
    created: OffsetDateTime,
) -> Result<Vec<String>, ApiError> {
    let longest = wanted
        .values()
        .flatten()
        .map(|k| k.spec().validity_days)
        .max()
        .unwrap_or(0);
    let since = crate::verify::api::unix_ms(created) - i64::from(longest) * 86_400_000;
    Ok(crate::verify::store::recent_reports(
        &s.store.db(),
        applicant,
        household.registered_division.as_str(),
        since,
    )
    .await?)
}

/// Plan the queries: every department with fact kinds to ask, except those whose answer can be
/// reused. Earlier reports are parsed newest first and only as many as it takes.
pub(crate) fn plan(input: &Input<'_>) -> Plan {
    let wanted = input.wanted;
    let mut reused: BTreeMap<Department, Reusable> = BTreeMap::new();
    let reusable_departments = wanted.values().filter(|k| !k.is_empty()).count();
    for json in input.earlier {
        if reused.len() == reusable_departments {
            break;
        }
        let Ok(report) = serde_json::from_str::<Report>(json) else {
            continue;
        };
        for (d, kinds) in wanted {
            if kinds.is_empty() || reused.contains_key(d) {
                continue;
            }
            if let Some(r) = reuse::from_report(&report, *d, kinds, input.subjects, input.created) {
                reused.insert(*d, r);
            }
        }
    }
    let as_of = input.created.to_offset(time::macros::offset!(+8)).date();
    let subjects: Vec<QuerySubject> = input
        .household
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| QuerySubject {
            subject_ref: format!("m{}", i + 1),
            resident_id: m.resident_id.clone(),
        })
        .collect();
    let queries = wanted
        .iter()
        .filter(|(d, kinds)| !kinds.is_empty() && !reused.contains_key(d))
        .map(|(d, kinds)| {
            (
                *d,
                FactQuery {
                    protocol: ProtocolVersion,
                    request_id: uuid::Uuid::new_v4(),
                    department: *d,
                    purpose: input.purpose,
                    authorization_ref: input.authorization_ref.to_owned(),
                    as_of,
                    issued_at: input.created,
                    subjects: subjects.clone(),
                    fact_kinds: kinds.clone(),
                },
            )
        })
        .collect();
    Plan {
        queries,
        reused,
        kinds: wanted.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::pipeline::fixtures::household;
    use crate::verify::report::DepartmentStatus;
    use crate::verify::reuse::tests::report;
    use schemas::Relation;
    use time::macros::datetime;

    /// Plan for labour (pension) and health, with these earlier reports; the departments asked
    /// and the departments reused (with the verification they come from).
    fn check(
        subjects: &[&str],
        earlier: &[String],
        asked: &[Department],
        reused: &[(Department, &str)],
    ) {
        let wanted = BTreeMap::from([
            (Department::Labor, vec![FactKind::Pension]),
            (Department::Health, vec![FactKind::SeriousIllness]),
            (Department::Justice, vec![]),
        ]);
        let subjects: Vec<String> = subjects.iter().map(|s| (*s).to_owned()).collect();
        let mut relations = vec![Relation::Child; subjects.len()];
        relations[0] = Relation::Applicant;
        let household = household(&relations);
        let p = plan(&Input {
            wanted: &wanted,
            household: &household,
            subjects: &subjects,
            purpose: schemas::Purpose::DibaoApplication,
            authorization_ref: "letter-1",
            created: datetime!(2026-11-29 12:00 UTC),
            earlier,
        });
        // In department order (the plan's map order).
        let got: Vec<Department> = p.queries.iter().map(|(d, _)| *d).collect();
        let mut want = asked.to_vec();
        want.sort();
        assert_eq!(got, want);
        let got: Vec<(Department, &str)> = p
            .reused
            .iter()
            .map(|(d, r)| (*d, r.source.as_str()))
            .collect();
        assert_eq!(got, reused);
        for (d, q) in &p.queries {
            assert_eq!(q.department, *d);
            assert_eq!(q.fact_kinds, wanted[d]);
            assert_eq!(q.subjects.len(), subjects.len(), "all members in one query");
            assert_eq!(q.authorization_ref, "letter-1");
            assert_eq!(q.as_of, time::macros::date!(2026 - 11 - 29));
        }
        assert_eq!(p.kinds, wanted);
    }

    #[test]
    fn plan_asks_every_department_with_kinds_unless_an_earlier_answer_is_reused() {
        let at = "2026-11-20T12:00:00Z";
        let json = |r: Report| serde_json::to_string(&r).expect("report json");
        let answered = json(report("v1", at, DepartmentStatus::Answered, &["a", "b"]));
        let timed_out = json(report("v0", at, DepartmentStatus::TimedOut, &["a", "b"]));
        // Nothing earlier: every department with kinds is asked (justice has none).
        check(
            &["a", "b"],
            &[],
            &[Department::Labor, Department::Health],
            &[],
        );
        // Labour answered nine days ago: reused, health still asked.
        check(
            &["a", "b"],
            std::slice::from_ref(&answered),
            &[Department::Health],
            &[(Department::Labor, "v1")],
        );
        // A timed-out answer is passed over for an older one that can be reused; an unreadable
        // stored report is skipped, never fatal.
        check(
            &["a", "b"],
            &[timed_out, "{not a report".to_owned(), answered.clone()],
            &[Department::Health],
            &[(Department::Labor, "v1")],
        );
        // A new member the earlier household did not have: asked afresh.
        check(
            &["a", "b", "c"],
            &[answered],
            &[Department::Labor, Department::Health],
            &[],
        );
    }
}
