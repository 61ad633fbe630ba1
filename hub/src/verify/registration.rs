//! 户籍核验: jurisdiction from authoritative registration data, never from the caller's word.
//!
//! Before any other department is asked, the hub asks civil affairs (民政) for every member's
//! registered division ([`FactKind::RegisteredDivision`]) in one query, logged as one
//! `registration_checked` access-log entry. The household's region for every later policy decision,
//! the letter check, once-only reuse and the stored report is the **applicant's** registered
//! division from that answer; the `registered_division` a request declares is only a first filter.
//! Members registered elsewhere (分户登记) are passed to Cedar by their relation to the applicant, and
//! the split-household rule in `policies/policies/jurisdiction.cedar` decides.
//!
//! Invariants:
//! - Only the division code is fetched before the final authorization decision; no other fact of a
//!   household outside the caller's jurisdiction is ever asked for.
//! - When civil affairs cannot answer, the verification does not run (fail closed, 503
//!   `registration_unavailable`); a member civil affairs does not know has no registered division,
//!   which no jurisdiction covers for the applicant and which counts as "registered elsewhere" for
//!   any other member.
//! - A refusal never says where a person is registered.

use schemas::protocol::{ProtocolVersion, QuerySubject};
use schemas::{
    Department, DivisionCode, FactKind, FactQuery, FactValue, Household, Purpose, Relation,
    SubjectOutcome,
};
use time::OffsetDateTime;

use crate::api::ApiError;

/// What civil affairs says about where the household's members are registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// Per member, in request order: the registered division, or `None` when civil affairs has no
    /// record (or refused to say).
    pub divisions: Vec<Option<DivisionCode>>,
}

impl Registration {
    /// The household's region: the applicant's registered division (the first member's when the
    /// household names no applicant).
    pub fn region(&self, household: &Household) -> Option<DivisionCode> {
        let i = applicant_index(household);
        self.divisions.get(i).cloned().flatten()
    }

    /// The relations (to the applicant) of the members registered outside the region, or whose
    /// registration is unknown.
    pub fn members_elsewhere(&self, household: &Household) -> Vec<Relation> {
        let region = self.region(household);
        let applicant = applicant_index(household);
        household
            .members
            .iter()
            .zip(&self.divisions)
            .enumerate()
            .filter(|(i, (_, d))| *i != applicant && (d.is_none() || **d != region))
            .map(|(_, (m, _))| m.relation)
            .collect()
    }
}

fn applicant_index(household: &Household) -> usize {
    household
        .members
        .iter()
        .position(|m| m.relation == Relation::Applicant)
        .unwrap_or(0)
}

/// The query civil affairs receives: every member, the registered division only.
pub fn query(
    household: &Household,
    purpose: Purpose,
    authorization_ref: &str,
    issued_at: OffsetDateTime,
) -> FactQuery {
    FactQuery {
        protocol: ProtocolVersion,
        request_id: uuid::Uuid::new_v4(),
        department: Department::CivilAffairs,
        purpose,
        authorization_ref: authorization_ref.to_owned(),
        as_of: issued_at.to_offset(time::macros::offset!(+8)).date(),
        issued_at,
        subjects: household
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| QuerySubject {
                subject_ref: format!("m{}", i + 1),
                resident_id: m.resident_id.clone(),
            })
            .collect(),
        fact_kinds: vec![FactKind::RegisteredDivision],
    }
}

/// Read the members' registered divisions from civil affairs' verified answer.
pub fn from_answer(household: &Household, answer: &connectors::VerifiedAnswer) -> Registration {
    let divisions = (0..household.members.len())
        .map(|i| {
            let subject_ref = format!("m{}", i + 1);
            answer
                .answer
                .results
                .iter()
                .find(|r| r.subject_ref == subject_ref)
                .and_then(|r| match &r.outcome {
                    SubjectOutcome::Found { facts } => {
                        facts.iter().find_map(|f| match (f.kind, &f.value) {
                            (FactKind::RegisteredDivision, FactValue::Division(d)) => {
                                Some(d.clone())
                            }
                            _ => None,
                        })
                    }
                    _ => None,
                })
        })
        .collect();
    Registration { divisions }
}

/// 503: civil affairs could not say where the members are registered, so nothing else is asked.
pub fn unavailable() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "registration_unavailable",
        "无法向民政部门核实户籍登记地，核对未进行，请稍后重试 / civil affairs could not confirm where the \
         members are registered; the check did not run, retry later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::{Member, ResidentId};

    fn household(relations: &[Relation]) -> Household {
        let ids = [
            "37081119800101001X",
            "370811198001010028",
            "370811198001010036",
            "370811198001010044",
        ];
        Household {
            registered_division: DivisionCode::parse("370811005").unwrap(),
            members: relations
                .iter()
                .zip(ids)
                .map(|(r, id)| Member {
                    resident_id: ResidentId::parse(id).unwrap(),
                    name: "成员".into(),
                    relation: *r,
                })
                .collect(),
        }
    }

    fn d(s: &str) -> Option<DivisionCode> {
        Some(DivisionCode::parse(s).unwrap())
    }

    #[test]
    fn the_region_is_the_applicants_registration_not_the_declared_one() {
        let h = household(&[Relation::Spouse, Relation::Applicant, Relation::Other]);
        let r = Registration {
            divisions: vec![d("370811002"), d("370811002"), d("370812001")],
        };
        assert_eq!(r.region(&h), d("370811002"));
        assert_eq!(r.members_elsewhere(&h), vec![Relation::Other]);
    }

    #[test]
    fn unknown_registrations_count_as_elsewhere_and_leave_no_region() {
        let h = household(&[Relation::Applicant, Relation::Child]);
        let r = Registration {
            divisions: vec![d("370811002"), None],
        };
        assert_eq!(r.members_elsewhere(&h), vec![Relation::Child]);
        let r = Registration {
            divisions: vec![None, d("370811002")],
        };
        assert_eq!(r.region(&h), None);
        assert_eq!(r.members_elsewhere(&h), vec![Relation::Child]);
    }
}
