//! 核对流水线: one household verification as named stages, each a function with typed input and
//! output, in the order they run. `POST /v1/verifications` ([`super::api`]) parses and validates
//! the body, reserves the `Idempotency-Key`, and calls [`run`]:
//!
//! 1. [`gate`] — 准入: the letter on record, Cedar `request_verification` on the declared household,
//!    the anti-trawling caps, the registration check with civil affairs, Cedar again on the
//!    authoritative region; then the `registration_checked` and allowed `verification_requested`
//!    entries in one group commit.
//! 2. [`plan`] — 计划: which department is asked for which fact kinds, and which departments'
//!    answers to an earlier verification are reused instead (一次采集).
//! 3. [`fan_out`] — 并发查询: one query per department, all at once, each with its
//!    `department_queried` entry prepared as it ends (one completion point per department); then
//!    the `evidence_reused` entries prepared.
//! 4. [`assemble`] — 汇总: the report's members and departments from the answers, and the
//!    aggregation (核算).
//! 5. [`seal`] — 封存: the department entries, the receipts, the hub's signature (once per view)
//!    and the stored row, durable together in ONE group commit of the access log; then the view
//!    the caller may see.
//!
//! Invariants:
//! - No department (civil affairs included) is asked before the gate's first decision and the caps;
//!   no other department before the second decision on the authoritative region.
//! - A refusal anywhere in the gate is exactly one denied `verification_requested` entry (durable
//!   before the answer) and nothing stored.
//! - The allowed `verification_requested` entry is durable before any department but civil affairs
//!   is asked; the department entries and the stored report commit together (one transaction,
//!   shared with concurrent appends), before the caller is answered: no report without its entries.
//! - Every stage refers to people by keyed pseudonyms ([`Asker::subjects`]); resident IDs appear only
//!   inside the department queries.

pub(crate) mod assemble;
pub(crate) mod fan_out;
pub(crate) mod gate;
pub(crate) mod plan;
pub(crate) mod seal;

use axum::response::Response;
use schemas::access_log::{AccessLogEntry, Action as LogAction, Outcome};
use schemas::{Department, FactKind, Household, Identity, Purpose};

use super::api::{EntryParts, VerificationRequest, entry};
use crate::api::{ApiError, AppState};

/// One verification as its access-log entries name it: who asks, under which request id, for what
/// purpose and case, about whom (pseudonyms only). Every stage writes its entries through it.
pub(crate) struct Asker<'a> {
    pub s: &'a AppState,
    pub id: &'a Identity,
    pub rid: &'a str,
    pub purpose: Purpose,
    pub case_ref: &'a str,
    /// The members' keyed pseudonyms, in the household's order.
    pub subjects: &'a [String],
}

impl Asker<'_> {
    /// An entry of this verification; `allowed` unless the outcome is `denied`.
    pub(crate) fn entry(
        &self,
        action: LogAction,
        policy_ids: Vec<String>,
        departments: Vec<Department>,
        fact_kinds: Vec<FactKind>,
        outcome: Outcome,
    ) -> Result<AccessLogEntry, ApiError> {
        entry(EntryParts {
            id: self.id,
            action,
            allowed: outcome != Outcome::Denied,
            policy_ids,
            purpose: Some(self.purpose),
            case_ref: Some(self.case_ref.to_owned()),
            departments,
            fact_kinds,
            outcome,
            request_id: self.rid.to_owned(),
            subjects: self.subjects,
        })
    }

    /// The denied `verification_requested` entry of a refusal by `policy_ids`.
    pub(crate) fn refused(&self, policy_ids: Vec<String>) -> Result<AccessLogEntry, ApiError> {
        self.entry(
            LogAction::VerificationRequested,
            policy_ids,
            Vec::new(),
            Vec::new(),
            Outcome::Denied,
        )
    }
}

/// Run one verification through the stages (the key, if any, is already reserved for
/// `verification_id`). 200 with the caller's view of the stored report, 429 from the caps, or the
/// error of the stage that stopped it.
pub(crate) async fn run(
    s: &AppState,
    id: &Identity,
    rid: &str,
    req: VerificationRequest,
    mut household: Household,
    verification_id: String,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let engine = s.authz.engine();
    let subjects: Vec<String> = household
        .members
        .iter()
        .map(|m| s.keys.pseudonym(m.resident_id.as_str()))
        .collect();
    let applicant = household
        .applicant()
        .map(|a| s.keys.pseudonym(a.resident_id.as_str()))
        .unwrap_or_else(|| subjects[0].clone());
    let asker = Asker {
        s,
        id,
        rid,
        purpose: req.purpose,
        case_ref: &req.case_ref,
        subjects: &subjects,
    };
    let wanted = engine.profiles().plan(req.purpose);

    let admitted = match gate::gate(
        &asker,
        &gate::Request {
            req: &req,
            household: &household,
            applicant: &applicant,
            wanted: &wanted,
            verification_id: &verification_id,
        },
    )
    .await?
    {
        gate::Gate::Admitted(a) => a,
        gate::Gate::Limited(answer) => return Ok(answer),
    };
    household.registered_division = admitted.region.clone();

    let earlier = if admitted.letter.covers && !req.force_fresh {
        plan::earlier_reports(s, &applicant, &household, &wanted, admitted.created).await?
    } else {
        Vec::new()
    };
    let plan = plan::plan(&plan::Input {
        wanted: &wanted,
        household: &household,
        subjects: &subjects,
        purpose: req.purpose,
        authorization_ref: &admitted.authorization_ref,
        created: admitted.created,
        earlier: &earlier,
    });

    // The progress board (`verify::progress`): who is asked, who is reused, each outcome as it
    // becomes known.
    s.progress.asked(
        &verification_id,
        plan.queries.iter().map(|(d, _)| *d),
        plan.reused.keys().copied(),
    );
    let asked = fan_out::fan_out(
        &asker,
        &admitted.policy_ids,
        &plan.queries,
        admitted.deadline,
        |asked| {
            s.progress.department_done(
                &verification_id,
                asked.department,
                asked.status(),
                asked.elapsed_ms,
            )
        },
    )
    .await?;
    let slowest = asked.iter().map(|a| a.elapsed).max().unwrap_or_default();
    let reused = fan_out::record_reuse(&asker, &admitted.policy_ids, plan)?;
    // The entries the seal appends with the report, in the report's department order.
    let mut entries: Vec<_> = reused
        .iter()
        .map(|r| (r.department, r.entry.clone()))
        .chain(asked.iter().map(|a| (a.department, a.entry.clone())))
        .collect();
    entries.sort_by_key(|(d, _)| *d);

    let report = assemble::assemble(&assemble::Input {
        engine: &engine,
        verification_id: &verification_id,
        requested_by: &id.principal,
        req: &req,
        household: &household,
        subjects: &subjects,
        letter_covers: admitted.letter.covers,
        created: admitted.created,
        deadline_ms: admitted.deadline_ms,
        request_log_index: admitted.request_log_index,
        reused,
        asked,
    });

    let mut response = seal::seal(
        &asker,
        seal::Input {
            report,
            req: &req,
            applicant,
            created: admitted.created,
            entries,
        },
    )
    .await?;
    response.headers_mut().insert(
        axum::http::header::HeaderName::from_static("server-timing"),
        server_timing(admitted.registration, slowest, started.elapsed()),
    );
    Ok(response)
}

/// The `Server-Timing` header of a verification's answer (milliseconds, three decimals):
/// `registration` the registration check's round trip to civil affairs, `fanout` the slowest
/// department's round trip in the fan-out (query sent to answer checked; 0 when every department
/// was reused), `verify` the whole pipeline in the hub (gate to seal). What the hub adds over the
/// departments is the caller's latency less `fanout` (and less `registration`, a sequential round
/// trip before the fan-out). Timings only: nothing about the household or the caller.
pub(crate) fn server_timing(
    registration: std::time::Duration,
    slowest: std::time::Duration,
    total: std::time::Duration,
) -> axum::http::HeaderValue {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let text = format!(
        "registration;dur={:.3};desc=\"civil affairs registration check\", \
         fanout;dur={:.3};desc=\"slowest department\", verify;dur={:.3}",
        ms(registration),
        ms(slowest),
        ms(total)
    );
    axum::http::HeaderValue::from_str(&text).unwrap_or_else(|_| {
        // Digits, letters and punctuation only: never reached.
        axum::http::HeaderValue::from_static("verify")
    })
}

#[cfg(test)]
mod server_timing_tests {
    use std::time::Duration;

    #[test]
    fn server_timing_names_each_round_trip_in_milliseconds() {
        let v = super::server_timing(
            Duration::from_micros(1_500),
            Duration::from_micros(12_345),
            Duration::from_micros(20_000),
        );
        assert_eq!(
            v.to_str().expect("ascii"),
            "registration;dur=1.500;desc=\"civil affairs registration check\", \
             fanout;dur=12.345;desc=\"slowest department\", verify;dur=20.000"
        );
    }
}

/// Households and requests for the stages' unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use schemas::{DivisionCode, Household, Member, Relation, ResidentId, Urgency};

    use crate::verify::api::VerificationRequest;

    /// The township every fixture household is registered in (许庄街道).
    pub(crate) const TOWNSHIP: &str = "370811002";

    /// A resident ID with a valid check digit for a 17-digit prefix.
    pub(crate) fn resident_id(prefix: &str) -> ResidentId {
        let w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
        let sum: u32 = prefix
            .bytes()
            .zip(w)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        let id = format!("{prefix}{}", b"10X98765432"[(sum % 11) as usize] as char);
        ResidentId::parse(&id).expect("resident id")
    }

    /// A household of `relations`, the first being the applicant's.
    pub(crate) fn household(relations: &[Relation]) -> Household {
        Household {
            registered_division: DivisionCode::parse(TOWNSHIP).expect("township"),
            members: relations
                .iter()
                .enumerate()
                .map(|(i, relation)| Member {
                    resident_id: resident_id(&format!("37081119900101{:03}", i + 1)),
                    name: format!("成员{}", i + 1),
                    relation: *relation,
                })
                .collect(),
        }
    }

    /// A 低保 request of this urgency for the fixture township.
    pub(crate) fn request(urgency: Urgency) -> VerificationRequest {
        serde_json::from_value(serde_json::json!({
            "household": {"registered_division": TOWNSHIP, "members": []},
            "purpose": "dibao_application",
            "case_ref": "case-1",
            "urgency": urgency,
            "authorization_id": "letter-1",
        }))
        .expect("request")
    }
}
