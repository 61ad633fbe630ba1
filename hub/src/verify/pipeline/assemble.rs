//! 汇总 (assemble): the report from what the fan-out brought back — per member the facts (asked or
//! reused, each with its provenance), per department its status, and the aggregation (核算) against
//! the local standard in force for the household's county. Pure: no I/O, no signature, no
//! department log indexes and no receipts (those are [`super::seal`]'s, known once the entries
//! are sequenced).

use policies::PolicyEngine;
use schemas::Household;
use time::OffsetDateTime;

use super::fan_out::{Asked, Reused};
use crate::verify::api::{VerificationRequest, now_rfc3339};
use crate::verify::report::{
    DepartmentReport, DepartmentStatus, MemberReport, Report, follow_up, letter_due_by,
    merge_answer, reused_text,
};

/// What a report is assembled from.
pub(crate) struct Input<'a> {
    /// Profiles (income rule), standards and the calendar in force.
    pub engine: &'a PolicyEngine,
    pub verification_id: &'a str,
    /// The requester's principal id (shown in the report).
    pub requested_by: &'a str,
    pub req: &'a VerificationRequest,
    /// The household, its region the authoritative one.
    pub household: &'a Household,
    /// The members' pseudonyms, in the household's order.
    pub subjects: &'a [String],
    /// Whether a letter covers the verification (otherwise a follow-up is due).
    pub letter_covers: bool,
    pub created: OffsetDateTime,
    pub deadline_ms: u64,
    /// The allowed `verification_requested` entry.
    pub request_log_index: u64,
    pub reused: Vec<Reused>,
    pub asked: Vec<Asked>,
}

/// Assemble the (unsigned, receipt-less) report.
pub(crate) fn assemble(input: &Input<'_>) -> Report {
    let req = input.req;
    let mut members: Vec<MemberReport> = input
        .household
        .members
        .iter()
        .zip(input.subjects)
        .enumerate()
        .map(|(i, (m, pseudonym))| MemberReport {
            subject_ref: format!("m{}", i + 1),
            name: m.name.clone(),
            relation: m.relation.code().to_owned(),
            pseudonym: pseudonym.clone(),
            facts: Vec::new(),
            notes: Vec::new(),
        })
        .collect();
    let mut departments = Vec::with_capacity(input.reused.len() + input.asked.len());
    for r in &input.reused {
        for (m, (facts, notes)) in members.iter_mut().zip(&r.answer.members) {
            m.facts.extend(facts.iter().cloned());
            m.notes.extend(notes.iter().cloned());
        }
        departments.push(DepartmentReport {
            department: r.department,
            name_zh: r.department.name_zh().to_owned(),
            status: DepartmentStatus::Reused,
            status_text: reused_text(&r.answer.source, &r.answer.answered_at),
            fact_kinds: r.kinds.clone(),
            answered_at: Some(r.answer.answered_at.clone()),
            key_id: r.answer.key_id.clone(),
            signature: r.answer.signature.clone(),
            detail: None,
            reused_from: Some(r.answer.source.clone()),
            elapsed_ms: 0,
            // Placed by the seal, with the entry.
            log_index: None,
            log_receipt: None,
        });
    }
    for o in &input.asked {
        let status = o.status();
        let mut d = DepartmentReport {
            department: o.department,
            name_zh: o.department.name_zh().to_owned(),
            status,
            status_text: status.text().to_owned(),
            fact_kinds: o.kinds.clone(),
            answered_at: None,
            key_id: None,
            signature: None,
            detail: None,
            reused_from: None,
            elapsed_ms: o.elapsed_ms,
            // Placed by the seal, with the entry.
            log_index: None,
            log_receipt: None,
        };
        match &o.result {
            Ok(a) => {
                let at = now_rfc3339(a.answer.answered_at);
                merge_answer(&mut members, o.department, a, &at);
                d.answered_at = Some(at);
                d.key_id = Some(a.signature.key_id.clone());
                d.signature = Some(a.signature.value.clone());
            }
            Err(e) => d.detail = Some(format!("{}: {e}", e.code())),
        }
        departments.push(d);
    }
    departments.sort_by_key(|d| d.department);

    let as_of = input.created.to_offset(time::macros::offset!(+8)).date();
    let region = &input.household.registered_division;
    let aggregation = crate::verify::aggregate::aggregate(&crate::verify::aggregate::Inputs {
        members: &members,
        departments: &departments,
        income: input.engine.profiles().income(req.purpose),
        standard: input.engine.standards().in_force(region, as_of.year()),
        county: region.county().as_str(),
        as_of,
        declared: req.declared.as_ref(),
    });
    let due_by = (!input.letter_covers).then(|| letter_due_by(input.engine.calendar(), as_of));
    Report {
        id: input.verification_id.to_owned(),
        created_at: now_rfc3339(input.created),
        requested_by: input.requested_by.to_owned(),
        registered_division: region.as_str().to_owned(),
        purpose: req.purpose,
        case_ref: req.case_ref.clone(),
        urgency: req.urgency,
        authorization_id: req.authorization_id.clone(),
        emergency_without_letter: !input.letter_covers,
        letter_due_by: due_by.map(|d| d.date.to_string()),
        deadline_ms: input.deadline_ms,
        complete: departments.iter().all(|d| d.status.has_facts()),
        departments,
        members,
        log_index: input.request_log_index,
        log_receipt: None,
        letter_follow_up: due_by.map(|d| follow_up(d, None, as_of)),
        aggregation: Some(aggregation),
        signature: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::pipeline::fixtures::{household, request};
    use crate::verify::reuse::Reusable;
    use schemas::protocol::{
        AnswerSignature, DepartmentAnswer, Fact, ProtocolVersion, SignatureAlg, SubjectOutcome,
        SubjectResult,
    };
    use schemas::{Department, FactKind, FactValue, ReferencePeriod, Relation, Urgency};
    use time::macros::{date, datetime};

    /// Labour's signed answer: a pension for the first member, nothing known of the second.
    fn labour_answer() -> connectors::VerifiedAnswer {
        connectors::VerifiedAnswer {
            answer: DepartmentAnswer {
                protocol: ProtocolVersion,
                request_id: uuid::Uuid::nil(),
                department: Department::Labor,
                answered_at: datetime!(2026-11-29 04:00:01 UTC),
                query_digest: format!("sha256:{}", "0".repeat(64)),
                results: vec![
                    SubjectResult {
                        subject_ref: "m1".into(),
                        outcome: SubjectOutcome::Found {
                            facts: vec![Fact {
                                kind: FactKind::Pension,
                                value: FactValue::MoneyFen(150_000),
                                period: ReferencePeriod {
                                    from: date!(2026 - 11 - 01),
                                    to: date!(2026 - 11 - 30),
                                },
                            }],
                        },
                    },
                    SubjectResult {
                        subject_ref: "m2".into(),
                        outcome: SubjectOutcome::Unknown {
                            reason: "not insured".into(),
                        },
                    },
                ],
            },
            signature: AnswerSignature {
                alg: SignatureAlg::Ed25519,
                key_id: "ed25519:0123456789abcdef".into(),
                value: "sig".into(),
            },
            answer_json: serde_json::Value::Null,
            received_at: datetime!(2026-11-29 04:00:02 UTC),
            elapsed: std::time::Duration::from_millis(12),
            attempts: 1,
        }
    }

    /// An entry for the fixtures (assemble does not read it).
    fn entry() -> schemas::access_log::AccessLogEntry {
        use schemas::access_log::{Action, Actor, Decision, Effect, FORMAT_V1, Outcome};
        schemas::access_log::AccessLogEntry {
            format: FORMAT_V1.into(),
            time: datetime!(2026-11-29 04:00:00 UTC),
            actor: Actor {
                uri: "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-1".into(),
                principal: "cw-1".into(),
                role: schemas::Role::Caseworker,
                organisation: "mz-370811002".into(),
                division: schemas::DivisionCode::parse("370811002").expect("division"),
            },
            action: Action::DepartmentQueried,
            purpose: None,
            case_ref: Some("case-1".into()),
            decision: Decision {
                effect: Effect::Allow,
                policy_ids: vec!["p1".into()],
            },
            departments: Vec::new(),
            fact_kinds: Vec::new(),
            outcome: Outcome::Succeeded,
            request_id: "req-1".into(),
            subjects: Vec::new(),
        }
    }

    #[test]
    fn assemble_puts_each_answer_under_its_member_and_department() {
        let engine = PolicyEngine::load(PolicyEngine::shipped_dir()).expect("shipped policies");
        let req = request(Urgency::Normal);
        let household = household(&[Relation::Applicant, Relation::Spouse]);
        let subjects = ["p-1".to_owned(), "p-2".to_owned()];
        let housing_fact = crate::verify::report::ReportedFact {
            kind: FactKind::PropertiesOwned,
            value: Some(FactValue::Count(0)),
            withheld: None,
            period_from: "2026-11-20".into(),
            period_to: "2026-11-20".into(),
            department: Department::Housing,
            answered_at: "2026-11-20T02:00:00Z".into(),
            key_id: "ed25519:fedcba9876543210".into(),
            reused_from: Some("v-earlier".into()),
        };
        let report = assemble(&Input {
            engine: &engine,
            verification_id: "v-1",
            requested_by: "cw-1",
            req: &req,
            household: &household,
            subjects: &subjects,
            letter_covers: true,
            created: datetime!(2026-11-29 04:00:00 UTC),
            deadline_ms: 30_000,
            request_log_index: 10,
            reused: vec![Reused {
                department: Department::Housing,
                kinds: vec![FactKind::PropertiesOwned],
                answer: Reusable {
                    source: "v-earlier".into(),
                    answered_at: "2026-11-20T02:00:00Z".into(),
                    key_id: Some("ed25519:fedcba9876543210".into()),
                    signature: Some("old-sig".into()),
                    members: vec![(vec![housing_fact], Vec::new()), (Vec::new(), Vec::new())],
                },
                entry: entry(),
            }],
            asked: vec![
                Asked {
                    department: Department::Labor,
                    kinds: vec![FactKind::Pension],
                    result: Ok(labour_answer()),
                    elapsed_ms: 12,
                    elapsed: std::time::Duration::from_millis(12),
                    entry: entry(),
                },
                Asked {
                    department: Department::Health,
                    kinds: vec![FactKind::SeriousIllness],
                    result: Err(connectors::ConnectorError::Timeout {
                        department: Department::Health,
                        after: std::time::Duration::from_secs(30),
                    }),
                    elapsed_ms: 30_000,
                    elapsed: std::time::Duration::from_secs(30),
                    entry: entry(),
                },
            ],
        });
        assert_eq!(report.id, "v-1");
        assert_eq!(report.log_index, 10);
        assert_eq!(report.registered_division, "370811002");
        assert!(report.signature.is_none() && report.log_receipt.is_none());
        // Departments in department order, each with its status and provenance; the entries'
        // indexes are the seal's, once they are sequenced.
        let parts: Vec<(Department, DepartmentStatus, Option<u64>)> = report
            .departments
            .iter()
            .map(|d| (d.department, d.status, d.log_index))
            .collect();
        let mut want = vec![
            (Department::Labor, DepartmentStatus::Answered, None),
            (Department::Health, DepartmentStatus::TimedOut, None),
            (Department::Housing, DepartmentStatus::Reused, None),
        ];
        want.sort_by_key(|(d, _, _)| *d);
        assert_eq!(parts, want);
        let labour = report
            .departments
            .iter()
            .find(|d| d.department == Department::Labor)
            .expect("labour");
        assert_eq!(labour.answered_at.as_deref(), Some("2026-11-29T04:00:01Z"));
        assert_eq!(labour.signature.as_deref(), Some("sig"));
        let health = report
            .departments
            .iter()
            .find(|d| d.department == Department::Health)
            .expect("health");
        assert!(
            health
                .detail
                .as_deref()
                .is_some_and(|d| d.starts_with("timeout"))
        );
        assert_eq!(health.status_text, DepartmentStatus::TimedOut.text());
        // A department that did not answer leaves the report incomplete.
        assert!(!report.complete);
        // Facts under the member they belong to; the reused one keeps its provenance.
        let m1 = &report.members[0];
        assert_eq!(m1.pseudonym, "p-1");
        let kinds: Vec<FactKind> = m1.facts.iter().map(|f| f.kind).collect();
        assert!(kinds.contains(&FactKind::Pension) && kinds.contains(&FactKind::PropertiesOwned));
        assert_eq!(
            m1.facts
                .iter()
                .find(|f| f.kind == FactKind::PropertiesOwned)
                .and_then(|f| f.reused_from.as_deref()),
            Some("v-earlier")
        );
        assert_eq!(report.members[1].notes.len(), 1, "labour's unknown note");
        // A covering letter: no follow-up; the aggregation is there, with its gaps.
        assert!(!report.emergency_without_letter && report.letter_due_by.is_none());
        assert!(report.aggregation.is_some());
    }

    #[test]
    fn assemble_without_a_covering_letter_sets_the_follow_up() {
        let engine = PolicyEngine::load(PolicyEngine::shipped_dir()).expect("shipped policies");
        let req = request(Urgency::Emergency);
        let household = household(&[Relation::Applicant]);
        let report = assemble(&Input {
            engine: &engine,
            verification_id: "v-2",
            requested_by: "cw-1",
            req: &req,
            household: &household,
            subjects: &["p-1".to_owned()],
            letter_covers: false,
            // Friday 27 November 2026, Beijing: five working days later is Friday 4 December.
            created: datetime!(2026-11-27 04:00:00 UTC),
            deadline_ms: 5_000,
            request_log_index: 1,
            reused: Vec::new(),
            asked: Vec::new(),
        });
        assert!(report.emergency_without_letter);
        assert_eq!(report.letter_due_by.as_deref(), Some("2026-12-04"));
        assert!(report.letter_follow_up.is_some());
        assert!(report.complete, "nothing asked, nothing missing");
    }
}
