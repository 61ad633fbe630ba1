//! The crate API as the hub uses it: decisions with their reasons, profiles' plans and raw
//! visibility, local standards.

use policies::{Action, AuthorizationStatus, Decision, PolicyEngine, RequestCtx, ResourceCtx};
use schemas::catalogue::FactKind;
use schemas::{Department, DivisionCode, Identity, Purpose, Role, Urgency};

fn engine() -> PolicyEngine {
    PolicyEngine::load(PolicyEngine::shipped_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn identity(role: Role, organisation: &str, division: &str) -> Identity {
    Identity {
        uri: format!("spiffe://jishijiu.jining/{role}/{organisation}/{division}/p-1"),
        principal: "p-1".into(),
        role,
        organisation: organisation.into(),
        division: DivisionCode::parse(division).expect("division"),
        display_name: "测试".into(),
        serial: "01".into(),
    }
}

fn household(region: &str) -> ResourceCtx {
    ResourceCtx {
        region: Some(DivisionCode::parse(region).expect("region")),
        department: None,
        ..Default::default()
    }
}

fn verification(purpose: Purpose, urgency: Urgency, letter: AuthorizationStatus) -> RequestCtx {
    RequestCtx {
        purpose: Some(purpose),
        urgency,
        authorization: letter,
        raw_fact_kinds: vec![],
        ..Default::default()
    }
}

fn check(d: &Decision, allowed: bool, ids: &[&str], reason: Option<&str>) {
    assert_eq!(d.allowed, allowed, "{d:?}");
    assert_eq!(d.policy_ids, ids, "{d:?}");
    assert_eq!(d.reason.as_deref(), reason, "{d:?}");
    assert!(d.errors.is_empty(), "{d:?}");
}

#[test]
fn denials_carry_chinese_first_reasons() {
    let e = engine();
    let other = identity(Role::Caseworker, "mz-370811005", "370811005");
    let d = e.authorize(
        &other,
        Action::RequestVerification,
        &household("370811002"),
        &verification(
            Purpose::DibaoApplication,
            Urgency::Normal,
            AuthorizationStatus::VALID,
        ),
    );
    check(
        &d,
        false,
        &["township-caseworker-own-township"],
        Some(
            "无权办理其他乡镇（街道）登记的家庭 / not permitted for households registered outside your township",
        ),
    );

    // two forbids at once: both reasons, in policy-id order
    let d = e.authorize(
        &other,
        Action::RequestVerification,
        &household("370811002"),
        &verification(
            Purpose::DibaoApplication,
            Urgency::Normal,
            AuthorizationStatus::default(),
        ),
    );
    assert!(!d.allowed);
    assert_eq!(
        d.policy_ids,
        [
            "authorization-letter-required",
            "township-caseworker-own-township"
        ]
    );
    let reason = d.reason.expect("reason");
    assert!(
        reason.starts_with("缺少有效的核对授权书") && reason.contains("；无权办理其他乡镇"),
        "{reason}"
    );

    // nothing permits (and no forbid applies): a role-and-action sentence. (Admins are refused
    // household work by an explicit forbid, `admin-no-personal-data`.)
    let auditor = identity(Role::Auditor, "sj-370800", "370800");
    let d = e.authorize(
        &auditor,
        Action::ViewReport,
        &household("370811002"),
        &verification(
            Purpose::AnnualReview,
            Urgency::Normal,
            AuthorizationStatus::VALID,
        ),
    );
    check(
        &d,
        false,
        &[],
        Some("审计员无权查看核对报告 / the auditor role may not perform view_report"),
    );
}

#[test]
fn allowed_decisions_name_the_permit() {
    let e = engine();
    let county = identity(Role::Caseworker, "mz-370811", "370811");
    for town in ["370811002", "370811005", "370811018"] {
        let d = e.authorize(
            &county,
            Action::RequestVerification,
            &household(town),
            &verification(
                Purpose::HousingAid,
                Urgency::Normal,
                AuthorizationStatus::VALID,
            ),
        );
        check(&d, true, &["caseworker-request-verification"], None);
    }
}

#[test]
fn a_department_is_refused_everything_but_its_own_protocol_endpoints_and_slips() {
    let e = engine();
    let labor = identity(Role::Department, "labor", "370800");
    let ctx = verification(
        Purpose::DibaoApplication,
        Urgency::Normal,
        AuthorizationStatus::VALID,
    );
    for action in Action::ALL {
        for dept in Department::ALL {
            let resource = ResourceCtx {
                region: Some(DivisionCode::parse("370811002").expect("code")),
                department: Some(dept),
                ..Default::default()
            };
            let d = e.authorize(&labor, action, &resource, &ctx);
            // Its own protocol endpoints, and the referral slips (转办单) addressed to it.
            let own_protocol = matches!(
                action,
                Action::AnswerQuery
                    | Action::PushEvent
                    | Action::ReadSlip
                    | Action::ListSlips
                    | Action::AnswerSlip
            ) && dept == Department::Labor;
            assert_eq!(d.allowed, own_protocol, "{action} on {dept}: {d:?}");
            assert!(d.errors.is_empty(), "{d:?}");
        }
    }
}

#[test]
fn malformed_requests_fail_closed() {
    let e = engine();
    let cw = identity(Role::Caseworker, "mz-370811002", "370811002");
    let d = e.authorize(
        &cw,
        Action::ViewReport,
        &household("370811002"),
        &RequestCtx::default(),
    );
    assert!(!d.allowed);
    assert_eq!(
        d.errors,
        ["context.purpose: required for action view_report"]
    );
    assert_eq!(
        d.reason.as_deref(),
        Some("请求未说明核对用途 / the request names no purpose")
    );
}

#[test]
fn the_engine_is_cheap_to_share() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<PolicyEngine>();
    let e = engine();
    let clone = e.clone();
    assert_eq!(
        e.policy_ids().collect::<Vec<_>>(),
        clone.policy_ids().collect::<Vec<_>>()
    );
}

// ---- profiles ----

fn check_plan(purpose: Purpose, expected: &[(Department, &[FactKind])]) {
    let e = engine();
    let plan = e.profiles().plan(purpose);
    let got: Vec<(Department, Vec<FactKind>)> = plan.into_iter().collect();
    let want: Vec<(Department, Vec<FactKind>)> =
        expected.iter().map(|(d, k)| (*d, k.to_vec())).collect();
    assert_eq!(got, want, "{purpose}");
}

#[test]
fn plans_ask_only_what_the_purpose_needs() {
    use FactKind as K;
    check_plan(
        Purpose::TemporaryAssistance,
        &[
            (
                Department::CivilAffairs,
                &[K::AssistanceStatus, K::DeathRegistration],
            ),
            (
                Department::Health,
                &[
                    K::MedicalExpensesOutOfPocket,
                    K::SeriousIllness,
                    K::HospitalStays,
                ],
            ),
            (Department::Housing, &[K::PropertiesOwned]),
            (Department::Labor, &[K::EmploymentStatus, K::MonthlyWages]),
        ],
    );
    check_plan(
        Purpose::EducationAid,
        &[
            (Department::CivilAffairs, &[K::AssistanceStatus]),
            (
                Department::Education,
                &[K::Enrolment, K::TuitionFees, K::EducationAidReceived],
            ),
            (
                Department::Labor,
                &[K::MonthlyWages, K::Pension, K::UnemploymentBenefit],
            ),
            (Department::Disability, &[K::DisabilityCertificate]),
        ],
    );
    // every purpose's plan only asks each department facts it serves
    let e = engine();
    for p in Purpose::ALL {
        for (dept, kinds) in e.profiles().plan(p) {
            assert!(!kinds.is_empty());
            assert!(kinds.iter().all(|k| k.department() == dept), "{p} {dept}");
        }
    }
}

#[test]
fn raw_visibility_follows_the_profile() {
    let e = engine();
    let check = |p: Purpose, k: FactKind, expected: bool| {
        assert_eq!(e.profiles().raw_visible(p, k), expected, "{p} {k}");
    };
    check(Purpose::DibaoApplication, FactKind::MonthlyWages, true);
    check(
        Purpose::DibaoApplication,
        FactKind::MedicalExpensesOutOfPocket,
        false,
    );
    check(
        Purpose::MedicalAssistance,
        FactKind::MedicalExpensesOutOfPocket,
        true,
    );
    check(Purpose::MedicalAssistance, FactKind::MonthlyWages, false);
    check(Purpose::EducationAid, FactKind::TuitionFees, true);
    check(Purpose::TekunSupport, FactKind::DisabilityGrade, false);
}

#[test]
fn income_components_count_wages_pension_and_benefit() {
    let e = engine();
    let income = e.profiles().income(Purpose::DibaoApplication);
    assert_eq!(
        income.counted,
        [
            FactKind::MonthlyWages,
            FactKind::Pension,
            FactKind::UnemploymentBenefit
        ]
    );
    assert_eq!(income.deducted, [FactKind::SocialInsuranceContributions]);
    // disability subsidies never count as income
    for p in Purpose::ALL {
        let i = e.profiles().income(p);
        assert!(!i.counted.contains(&FactKind::LivingSubsidy), "{p}");
        assert!(!i.counted.contains(&FactKind::CareSubsidy), "{p}");
    }
}

// ---- standards ----

#[test]
fn standards_cover_all_eleven_counties_for_2026() {
    let e = engine();
    let s = e.standards();
    assert_eq!(s.years(), [2026]);
    for (code, name) in policies::standards::JINING_COUNTIES {
        let county = DivisionCode::parse(code).expect("code");
        let st = s.for_county(&county, 2026).expect("standard");
        assert_eq!(st.name, name);
        assert!(st.example, "2026 values are examples");
        assert!(st.dibao_line_fen > 0);
        assert_eq!(s.for_county(&county, 2025), None);
    }
}

#[test]
fn a_township_resolves_to_its_county_standard() {
    let e = engine();
    let town = DivisionCode::parse("370811002").expect("code");
    let st = e.standards().for_county(&town, 2026).expect("standard");
    assert_eq!(st.county.as_str(), "370811");
    assert_eq!(st.dibao_line_fen, 105_000);
    assert!(st.tolerance.within(110_000, 100_000));
    assert!(!st.tolerance.within(111_000, 100_000));
    let elsewhere = DivisionCode::parse("370102").expect("code");
    assert_eq!(e.standards().for_county(&elsewhere, 2026), None);
}
