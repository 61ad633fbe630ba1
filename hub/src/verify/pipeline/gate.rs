//! 准入 (gate): may this verification run at all? In order: what the letter on record says, Cedar
//! `request_verification` on the household as declared (size rules included, so an oversized or
//! padded household is refused before anyone is asked), the anti-trawling caps counted in the
//! database, the registration check with civil affairs (户籍核验), Cedar again on the region civil
//! affairs gives, and finally the allowed `verification_requested` entry.
//!
//! Every refusal is one denied entry, durable before the 403 leaves (before the registration check
//! through [`crate::authz::enforce_logged`]). A cap answers 429 with its own policy id in the entry.
//!
//! The `registration_checked` entry is appended with the entry of the decision that follows it
//! (the allowed `verification_requested` one, or the denial) in one group commit, not on its own:
//! between them only the letter on the authoritative region is read and Cedar decides, nothing
//! leaves the hub, and the pair is durable before any other department is asked or the caller is
//! answered. When civil affairs cannot answer, its entry is appended alone before the 503.

use std::collections::{BTreeMap, BTreeSet};

use axum::response::Response;
use policies::{Action, AuthorizationStatus, Decision, RequestCtx, ResourceCtx};
use schemas::access_log::{Action as LogAction, Outcome};
use schemas::{Department, DivisionCode, FactKind, Household, Identity, Relation, Urgency};
use time::OffsetDateTime;

use super::Asker;
use crate::api::ApiError;
use crate::authz::{Authz, enforce_logged};
use crate::verify::api::{VerificationRequest, judge_letter, letter_on_record};
use crate::verify::report::DepartmentStatus;

/// Policy id recorded when the applicant's registered division cannot be established.
pub(crate) const REGISTRATION_POLICY: &str = "hub-registration-unknown";

/// What the gate judges.
pub(crate) struct Request<'a> {
    pub req: &'a VerificationRequest,
    /// The household as declared (its `registered_division` is only a first filter).
    pub household: &'a Household,
    /// The applicant's pseudonym.
    pub applicant: &'a str,
    /// The purpose profile's plan: fact kinds per department (what the letter must cover).
    pub wanted: &'a BTreeMap<Department, Vec<FactKind>>,
    pub verification_id: &'a str,
}

/// A verification let through, with what the later stages need.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The policies that allowed it (on the authoritative region): every later entry names them.
    pub policy_ids: Vec<String>,
    /// The letter as judged on the authoritative region.
    pub letter: AuthorizationStatus,
    /// Where civil affairs says the applicant is registered.
    pub region: DivisionCode,
    /// The urgency's deadline, which bounds the registration check and the fan-out.
    pub deadline: tokio::time::Instant,
    pub deadline_ms: u64,
    /// The letter's id, or `emergency:<verification id>` without one (sent to the departments).
    pub authorization_ref: String,
    /// When the request was admitted: the report's `created_at` and the facts' as-of date.
    pub created: OffsetDateTime,
    /// The allowed `verification_requested` entry.
    pub request_log_index: u64,
    /// The registration check's round trip to civil affairs, for `Server-Timing`.
    pub registration: std::time::Duration,
}

/// The gate's answer when it does not refuse with an error.
pub(crate) enum Gate {
    Admitted(Box<Admitted>),
    /// A cap was reached: the 429 (with `Retry-After`) to send; the denial is logged.
    Limited(Response),
}

/// The household's size as the rules of `trawling.cedar` count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HouseholdSize {
    pub members: u32,
    /// Members whose relation to the applicant is `other`.
    pub unrelated: u32,
}

impl HouseholdSize {
    pub(crate) fn of(household: &Household) -> HouseholdSize {
        HouseholdSize {
            members: household.members.len() as u32,
            unrelated: household
                .members
                .iter()
                .filter(|m| m.relation == Relation::Other)
                .count() as u32,
        }
    }
}

/// The Cedar resource of a household verification: its region (the declared one first, then the
/// authoritative one), the relations registered elsewhere, and its size.
pub(crate) fn household_resource(
    region: Option<DivisionCode>,
    members_elsewhere: Vec<Relation>,
    size: HouseholdSize,
) -> ResourceCtx {
    ResourceCtx {
        region,
        department: None,
        members_elsewhere,
        requester: None,
        member_count: size.members,
        unrelated_count: size.unrelated,
        case_state: None,
        to_township: None,
    }
}

/// The Cedar context of a verification request: purpose, urgency and the letter's status.
pub(crate) fn request_ctx(req: &VerificationRequest, letter: AuthorizationStatus) -> RequestCtx {
    RequestCtx {
        purpose: Some(req.purpose),
        urgency: req.urgency,
        authorization: letter,
        raw_fact_kinds: Vec::new(),
        ..Default::default()
    }
}

/// Cedar's `request_verification`, worded for the caseworker: a refusal also names what is wrong
/// with the letter (`problem`), in brackets after the policy's reason.
#[allow(clippy::result_large_err)]
pub(crate) fn policy(
    authz: &Authz,
    id: &Identity,
    resource: &ResourceCtx,
    ctx: &RequestCtx,
    problem: Option<&str>,
) -> Result<Decision, (Decision, ApiError)> {
    Authz::verdict(authz.decide(id, Action::RequestVerification, resource, ctx)).map_err(
        |(d, mut err)| {
            if let Some(p) = problem {
                err.message = format!("{}（{p}）", err.message);
            }
            (d, err)
        },
    )
}

/// Run the gate: a refusal is `Err` (logged), a cap `Ok(Gate::Limited)` (logged), and a
/// verification let through `Ok(Gate::Admitted)` after its request entry is durable.
pub(crate) async fn gate(a: &Asker<'_>, r: &Request<'_>) -> Result<Gate, ApiError> {
    let s = a.s;
    let req = r.req;
    let planned: BTreeSet<FactKind> = r.wanted.values().flatten().copied().collect();
    // The letter is read once and judged on each region (letters never change once recorded).
    let on_record = letter_on_record(s, req.authorization_id.as_deref()).await?;
    let letter_on = |division: &DivisionCode| {
        judge_letter(
            req.authorization_id.as_deref(),
            on_record.as_ref(),
            division,
            a.subjects,
            r.applicant,
            req.purpose,
            &planned,
        )
    };

    // First decision, on the declared division and the household's size.
    let (letter, problem) = letter_on(&r.household.registered_division)?;
    let size = HouseholdSize::of(r.household);
    let ctx = request_ctx(req, letter);
    let verdict = policy(
        &s.authz,
        a.id,
        &household_resource(
            Some(r.household.registered_division.clone()),
            Vec::new(),
            size,
        ),
        &ctx,
        problem.as_deref(),
    );
    if let Err((d, _)) = &verdict {
        crate::ratelimit::alert_on_trawling_rules(&s.authz.engine(), &a.id.uri, d);
    }
    let first = enforce_logged(&s.log, verdict, |ids| a.refused(ids)).await?;

    // Anti-trawling caps (crate::ratelimit), per identity URI and counted in the database: distinct
    // households and distinct people (every member) per hour, letterless emergency or urgent
    // checks per day. Counted before civil affairs is asked about anyone, durable in a share of
    // the access log's group commit (not a write transaction and a commit of their own).
    let lookup = crate::ratelimit::Lookup {
        principal_uri: &a.id.uri,
        verification_id: r.verification_id,
        household: r.applicant,
        people: a.subjects,
        // Letterless checks of either tier that may run before the letter (emergency, urgent).
        emergency_without_letter: matches!(req.urgency, Urgency::Emergency | Urgency::Urgent)
            && !letter.covers,
    };
    if let Err(limit) = s.limits.note_lookup_logged(&s.log, &lookup).await? {
        s.log
            .append(a.refused(vec![limit.policy_id().into()])?)
            .await?;
        return Ok(Gate::Limited(limit.response()));
    }

    // The urgency's deadline bounds the whole check: the registration query and the fan-out.
    let deadline_dur = s.verify.deadline(req.urgency);
    let deadline = tokio::time::Instant::now() + deadline_dur;
    let authorization_ref = req
        .authorization_id
        .clone()
        .unwrap_or_else(|| format!("emergency:{}", r.verification_id));

    // Jurisdiction from authoritative data: where civil affairs says the members are registered.
    // The declared division above was only a first filter; the decision that counts is this one.
    let registration_started = std::time::Instant::now();
    let (registration, registration_entry) =
        check_registration(a, r, &authorization_ref, first.policy_ids, deadline).await?;
    let registration_elapsed = registration_started.elapsed();
    let region = registration.region(r.household);
    let (letter, problem) = match &region {
        Some(division) => match letter_on(division) {
            Ok(on) => on,
            Err(e) => {
                s.log.append(registration_entry).await?;
                return Err(e);
            }
        },
        None => (letter, problem),
    };
    let verdict = policy(
        &s.authz,
        a.id,
        &household_resource(
            region.clone(),
            registration.members_elsewhere(r.household),
            size,
        ),
        &RequestCtx {
            authorization: letter,
            ..ctx
        },
        problem.as_deref(),
    );
    let decision = match verdict {
        Ok(d) => d,
        Err((d, e)) => {
            with_registration(s, registration_entry, a.refused(d.policy_ids)).await?;
            return Err(e);
        }
    };
    let Some(region) = region else {
        // Cedar refuses a household without a region; never run one even if a policy changed.
        with_registration(
            s,
            registration_entry,
            a.refused(vec![REGISTRATION_POLICY.into()]),
        )
        .await?;
        return Err(ApiError::forbidden(
            "无法确认申请人的户籍登记地 / the applicant's registered division cannot be established",
        ));
    };

    let created = OffsetDateTime::now_utc();
    let request_entry = a.entry(
        LogAction::VerificationRequested,
        decision.policy_ids.clone(),
        r.wanted.keys().copied().collect(),
        planned.iter().copied().collect(),
        Outcome::Succeeded,
    );
    let logged = with_registration(s, registration_entry, request_entry).await?;
    let request_logged = logged
        .get(1)
        .ok_or_else(|| ApiError::internal("the request entry was not placed"))?;
    Ok(Gate::Admitted(Box::new(Admitted {
        policy_ids: decision.policy_ids,
        letter,
        region,
        deadline,
        deadline_ms: deadline_dur.as_millis() as u64,
        authorization_ref,
        created,
        request_log_index: request_logged.index,
        registration: registration_elapsed,
    })))
}

/// Appends the `registration_checked` entry with the next decision's entry in one group commit
/// (their places, in that order); if that entry could not be built, the registration entry alone,
/// and the error.
async fn with_registration(
    s: &crate::api::AppState,
    registration: schemas::access_log::AccessLogEntry,
    next: Result<schemas::access_log::AccessLogEntry, ApiError>,
) -> Result<Vec<crate::log::Appended>, ApiError> {
    match next {
        Ok(next) => Ok(s.log.append_many(vec![registration, next]).await?),
        Err(e) => {
            s.log.append(registration).await?;
            Err(e)
        }
    }
}

/// 户籍核验: ask civil affairs where every member is registered (one query, before any other
/// department) and fail closed when civil affairs cannot answer (its `registration_checked` entry
/// appended first). On an answer, the entry is returned for the caller to append with the next
/// decision's entry. See [`crate::verify::registration`].
async fn check_registration(
    a: &Asker<'_>,
    r: &Request<'_>,
    authorization_ref: &str,
    policy_ids: Vec<String>,
    deadline: tokio::time::Instant,
) -> Result<
    (
        crate::verify::registration::Registration,
        schemas::access_log::AccessLogEntry,
    ),
    ApiError,
> {
    let query = crate::verify::registration::query(
        r.household,
        r.req.purpose,
        authorization_ref,
        OffsetDateTime::now_utc(),
    );
    let result = crate::verify::metrics::ask(
        a.s.verify.connector(Department::CivilAffairs),
        Department::CivilAffairs,
        &query,
        deadline,
    )
    .await;
    let outcome = match &result {
        Ok(_) => Outcome::Succeeded,
        Err(e) => DepartmentStatus::of_error(e).outcome(),
    };
    let entry = a.entry(
        LogAction::RegistrationChecked,
        policy_ids,
        vec![Department::CivilAffairs],
        vec![FactKind::RegisteredDivision],
        outcome,
    )?;
    match result {
        Ok(answer) => Ok((
            crate::verify::registration::from_answer(r.household, &answer),
            entry,
        )),
        Err(e) => {
            a.s.log.append(entry).await?;
            tracing::warn!(error = %e, "registration check with civil affairs failed");
            Err(crate::verify::registration::unavailable())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::pipeline::fixtures::{TOWNSHIP, household, request};
    use schemas::Role;

    fn authz() -> std::sync::Arc<Authz> {
        Authz::load(&policies::PolicyEngine::shipped_dir()).expect("shipped policies")
    }

    fn caseworker(division: &str) -> Identity {
        Identity {
            uri: format!("spiffe://jishijiu.jining/caseworker/mz-{division}/{division}/cw-1"),
            principal: "cw-1".into(),
            role: Role::Caseworker,
            organisation: format!("mz-{division}"),
            division: DivisionCode::parse(division).expect("division"),
            display_name: "测试".into(),
            serial: "01".into(),
        }
    }

    /// The gate's policy step for one caseworker, household size and letter: `Ok(())` or the
    /// refusal's status, deciding policies and message.
    fn check(
        who: &str,
        size: (u32, u32),
        urgency: Urgency,
        letter: AuthorizationStatus,
        problem: Option<&str>,
        expected: Result<(), (&str, &str)>,
    ) {
        let size = HouseholdSize {
            members: size.0,
            unrelated: size.1,
        };
        let resource = household_resource(
            Some(DivisionCode::parse(TOWNSHIP).expect("township")),
            Vec::new(),
            size,
        );
        let got = policy(
            &authz(),
            &caseworker(who),
            &resource,
            &request_ctx(&request(urgency), letter),
            problem,
        );
        match (got, expected) {
            (Ok(d), Ok(())) => assert!(d.allowed && !d.policy_ids.is_empty()),
            (Err((d, e)), Err((policy_id, message_part))) => {
                assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
                assert_eq!(e.code, "forbidden");
                assert!(
                    d.policy_ids.iter().any(|p| p == policy_id),
                    "{:?}",
                    d.policy_ids
                );
                assert!(e.message.contains(message_part), "{}", e.message);
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn gate_refusals_name_the_rule_and_the_letters_problem() {
        let valid = AuthorizationStatus::VALID;
        // Own township, a covering letter, an ordinary household.
        check(TOWNSHIP, (3, 0), Urgency::Normal, valid, None, Ok(()));
        // Thirteen members: refused by the size rule before anyone is asked.
        check(
            TOWNSHIP,
            (13, 0),
            Urgency::Normal,
            valid,
            None,
            Err(("household-at-most-12-members", "最多列 12 名")),
        );
        // Three unrelated members.
        check(
            TOWNSHIP,
            (5, 3),
            Urgency::Normal,
            valid,
            None,
            Err(("household-at-most-2-unrelated", "2 名")),
        );
        // No covering letter for an ordinary check: the refusal says what is wrong with it.
        check(
            TOWNSHIP,
            (3, 0),
            Urgency::Normal,
            AuthorizationStatus::default(),
            Some("授权书已过期 / the letter has expired"),
            Err((
                "authorization-letter-required",
                "（授权书已过期 / the letter has expired）",
            )),
        );
        // A caseworker of another township has no jurisdiction over the household.
        check(
            "370811005",
            (3, 0),
            Urgency::Normal,
            valid,
            None,
            Err(("township-caseworker-own-township", "无权办理其他乡镇")),
        );
    }

    #[test]
    fn household_size_counts_members_and_unrelated_ones() {
        let household = household(&[Relation::Applicant, Relation::Spouse, Relation::Other]);
        assert_eq!(
            HouseholdSize::of(&household),
            HouseholdSize {
                members: 3,
                unrelated: 1
            }
        );
    }
}
