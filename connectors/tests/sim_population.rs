//! Population tests: determinism, valid and unique resident IDs at 100k scale, the awkward cases,
//! and consistency of one person's data across the seven departments' views.

use std::collections::HashSet;

use connectors::sim::divisions::Divisions;
use connectors::sim::facts;
use connectors::sim::population::{CorrectionalStatus, Employment};
use connectors::sim::{AwkwardCase, Population, PopulationConfig, PopulationSource, Side};
use schemas::{Department, FactKind, FactValue, ResidentId, SubjectOutcome};
use std::sync::Arc;

fn fingerprint(p: &Population) -> Vec<String> {
    p.persons()
        .iter()
        .map(|x| {
            format!(
                "{}|{}|{:?}|{}|{:?}|{:?}|{}",
                x.resident_id.expose(),
                x.name,
                x.relation,
                x.township,
                x.labor.monthly_wages_fen,
                x.death,
                x.housing.floor_area_dm2
            )
        })
        .collect()
}

#[test]
fn same_seed_same_population_and_other_seed_differs() {
    let a = Population::generate(PopulationConfig::new(7, 2_000));
    let b = Population::generate(PopulationConfig::new(7, 2_000));
    let c = Population::generate(PopulationConfig::new(8, 2_000));
    assert_eq!(fingerprint(&a), fingerprint(&b));
    assert_ne!(fingerprint(&a), fingerprint(&c));
    assert_eq!(a.households().len(), 2_000);
}

#[test]
fn a_hundred_thousand_people_have_valid_unique_ids_in_real_counties() {
    let pop = Population::generate(PopulationConfig::new(2026, 36_000));
    assert!(
        pop.persons().len() >= 100_000,
        "{} people",
        pop.persons().len()
    );
    let divisions = Divisions::jining();
    let counties: HashSet<&str> = divisions.counties.iter().map(|c| c.code.as_str()).collect();
    let mut seen = HashSet::with_capacity(pop.persons().len());
    for p in pop.persons() {
        let parsed = ResidentId::parse(p.resident_id.expose()).expect("valid GB 11643 number");
        assert!(
            seen.insert(parsed.expose().to_owned()),
            "duplicate resident id"
        );
        assert!(
            counties.contains(parsed.region()),
            "region {}",
            parsed.region()
        );
        assert_eq!(parsed.birth_date(), p.birth);
        assert_eq!(parsed.sex(), p.sex);
        let h = pop.household(p.household);
        assert_eq!(parsed.region(), h.county_code().as_str());
        assert!(divisions.township(p.township_code()).is_some());
        assert!(pop.find(&parsed).is_some_and(|q| q.id == p.id));
    }
}

#[test]
fn awkward_cases_are_present_and_match_the_ground_truth() {
    let pop = Arc::new(Population::generate(PopulationConfig::new(11, 20_000)));
    let as_of = pop.config.as_of;
    let (mut unknown, mut deaths, mut split, mut above, mut below) = (0, 0, 0, 0, 0);
    for h in pop.households() {
        for case in &h.cases {
            match case {
                AwkwardCase::UnknownToDepartment { member, department } => {
                    unknown += 1;
                    let p = pop.person(*member);
                    assert!(!p.known_to(*department));
                    let src = PopulationSource::new(pop.clone(), *department);
                    let kinds: Vec<FactKind> = FactKind::served_by(*department).collect();
                    assert!(matches!(
                        src.outcome(&p.resident_id, &kinds, as_of),
                        SubjectOutcome::Unknown { .. }
                    ));
                }
                AwkwardCase::RecentDeath { member, date } => {
                    deaths += 1;
                    let p = pop.person(*member);
                    assert!(*date < as_of && (as_of - *date).whole_days() <= 180);
                    assert_eq!(
                        facts::value(p, FactKind::DeathRegistration, as_of),
                        FactValue::OptionalDate(Some(*date))
                    );
                    assert_eq!(
                        facts::value(p, FactKind::Pension, as_of),
                        FactValue::MoneyFen(0)
                    );
                }
                AwkwardCase::SplitAcrossTownships { member, township } => {
                    split += 1;
                    let p = pop.person(*member);
                    assert_eq!(p.township_code(), township);
                    assert_ne!(p.township_code(), h.township_code());
                }
                AwkwardCase::IncomeNearThreshold {
                    threshold_fen,
                    per_capita_fen,
                    side,
                } => {
                    assert_eq!(h.monthly_income_per_capita_fen(&pop), *per_capita_fen);
                    assert_eq!(*threshold_fen, pop.config.threshold_fen(h.county_code()));
                    let diff = per_capita_fen - threshold_fen;
                    match side {
                        Side::Above => {
                            above += 1;
                            assert!((1..=2_000).contains(&diff), "{diff}");
                        }
                        Side::Below => {
                            below += 1;
                            assert!((-2_000..=-1).contains(&diff), "{diff}");
                        }
                    }
                    // Independent check from the labor department's answers alone.
                    let mut total = 0;
                    for m in pop.members(h.id) {
                        assert!(m.death.is_none());
                        if let FactValue::MonthlyFen(months) =
                            facts::value(m, FactKind::MonthlyWages, as_of)
                        {
                            let first = months[0].fen;
                            assert!(months.iter().all(|x| x.fen == first), "constant wages");
                            total += first;
                        }
                        assert_eq!(
                            facts::value(m, FactKind::Pension, as_of),
                            FactValue::MoneyFen(0)
                        );
                        assert_eq!(
                            facts::value(m, FactKind::UnemploymentBenefit, as_of),
                            FactValue::MoneyFen(0)
                        );
                    }
                    assert_eq!(total / h.members.len() as i64, *per_capita_fen);
                }
            }
        }
    }
    for (name, n) in [
        ("unknown", unknown),
        ("deaths", deaths),
        ("split", split),
        ("above", above),
        ("below", below),
    ] {
        assert!(n >= 20, "{name}: only {n}");
    }
}

#[test]
fn one_person_is_consistent_across_departments() {
    let pop = Population::generate(PopulationConfig::new(3, 5_000));
    let as_of = pop.config.as_of;
    let code = |p, k| match facts::value(p, k, as_of) {
        FactValue::Code(c) => c,
        other => panic!("{k}: {other:?}"),
    };
    let mut checked = 0;
    for p in pop.persons() {
        let cert = facts::value(p, FactKind::DisabilityCertificate, as_of) == FactValue::Bool(true);
        assert_eq!(cert, code(p, FactKind::DisabilityCategory) != "none");
        assert_eq!(cert, code(p, FactKind::DisabilityGrade) != "none");
        if let FactValue::MoneyFen(care) = facts::value(p, FactKind::CareSubsidy, as_of) {
            assert_eq!(
                care > 0,
                ["1", "2"].contains(&code(p, FactKind::DisabilityGrade).as_str())
            );
        }
        // The disability federation pays the living subsidy only to people civil affairs assists.
        if facts::value(p, FactKind::LivingSubsidy, as_of) != FactValue::MoneyFen(0) {
            assert_ne!(code(p, FactKind::AssistanceStatus), "none");
            checked += 1;
        }
        // Prisoners earn no wages; pensioners are retired; students are enrolled.
        if p.justice.status == CorrectionalStatus::Imprisoned {
            assert_eq!(code(p, FactKind::CustodyStatus), "imprisoned");
            assert_eq!(p.labor.wages_12m_fen(), 0);
        }
        if p.labor.pension_monthly_fen > 0 {
            assert_eq!(code(p, FactKind::EmploymentStatus), "retired");
        }
        if p.labor.employment == Employment::Student {
            assert_ne!(code(p, FactKind::Enrolment), "not_enrolled");
        }
        // Health figures add up.
        let m = |k| match facts::value(p, k, as_of) {
            FactValue::MoneyFen(v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            m(FactKind::MedicalExpensesTotal),
            m(FactKind::MedicalExpensesReimbursed) + m(FactKind::MedicalExpensesOutOfPocket)
        );
        // Every fact fits the catalogue.
        for &k in FactKind::BUILT_IN {
            let period = k.spec().period.period_for(as_of);
            k.spec()
                .check_value(&facts::value(p, k, as_of), &period)
                .unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    }
    assert!(checked > 0, "no living subsidies at all");
    for d in Department::ALL {
        let known = pop.persons().iter().filter(|p| p.known_to(d)).count();
        assert!(known > 0 && known < pop.persons().len(), "{d}: {known}");
    }
}

#[test]
fn households_convert_to_valid_declarations() {
    let pop = Population::generate(PopulationConfig::new(4, 500));
    for h in pop.households() {
        let decl = pop.household_declaration(h.id);
        decl.validate()
            .unwrap_or_else(|e| panic!("household {}: {e}", h.id.0));
        assert_eq!(decl.members.len(), h.members.len());
        assert_eq!(decl.members[0].relation, schemas::Relation::Applicant);
        assert_eq!(&decl.registered_division, h.township_code());
        let json = serde_json::to_value(&decl).unwrap();
        let back: schemas::Household = serde_json::from_value(json).unwrap();
        assert_eq!(back, decl);
    }
}

/// Issue 16: every simulated figure stays inside a plausible range for Jining, in the unit the
/// catalogue states, so a unit slip (floor areas once came out 100× too large: 5,322 m² per person)
/// cannot recur. Ranges are generous bounds of real life, not the generator's own parameters.
#[test]
fn simulated_figures_are_plausible_for_jining() {
    const YUAN: i64 = 100;
    let pop = Population::generate(PopulationConfig::new(2026, 5_000));
    let as_of = pop.config.as_of;
    let money = |p, k| match facts::value(p, k, as_of) {
        FactValue::MoneyFen(v) => v,
        other => panic!("{k}: {other:?}"),
    };
    let in_range = |name: &str, v: i64, lo: i64, hi: i64| {
        assert!(
            v == 0 || (lo..=hi).contains(&v),
            "{name}: {v} outside 0 or {lo}..={hi}"
        );
    };
    let mut per_person_m2 = Vec::new();
    for h in pop.households() {
        let members: Vec<_> = pop.members(h.id).collect();
        let mut area_dm2 = 0;
        for p in &members {
            // 住房: each property 20–300 m² (dm² = 0.01 m²).
            let FactValue::AreaDm2(area) = facts::value(p, FactKind::FloorAreaOwned, as_of) else {
                panic!("floor area is not an area");
            };
            let FactValue::Count(properties) = facts::value(p, FactKind::PropertiesOwned, as_of)
            else {
                panic!("properties is not a count");
            };
            let n = i64::from(properties);
            assert!(
                (20 * 100 * n..=300 * 100 * n).contains(&area),
                "floor area {area} dm² for {properties} properties"
            );
            area_dm2 += area;
            // 工资: 0, or ¥100–¥60,000 a month (part-time and informal work included).
            if let FactValue::MonthlyFen(months) = facts::value(p, FactKind::MonthlyWages, as_of) {
                for m in months {
                    in_range("monthly wages", m.fen, 100 * YUAN, 60_000 * YUAN);
                }
            }
            in_range(
                "pension",
                money(p, FactKind::Pension),
                100 * YUAN,
                20_000 * YUAN,
            );
            in_range(
                "unemployment benefit",
                money(p, FactKind::UnemploymentBenefit),
                500 * YUAN,
                5_000 * YUAN,
            );
            in_range(
                "medical costs, 12 months",
                money(p, FactKind::MedicalExpensesTotal),
                10 * YUAN,
                2_000_000 * YUAN,
            );
            in_range(
                "provident-fund balance",
                money(p, FactKind::ProvidentFundBalance),
                100 * YUAN,
                1_000_000 * YUAN,
            );
            in_range(
                "provident-fund monthly deposit",
                money(p, FactKind::ProvidentFundMonthlyContribution),
                10 * YUAN,
                20_000 * YUAN,
            );
            in_range(
                "tuition fees, a year",
                money(p, FactKind::TuitionFees),
                100 * YUAN,
                100_000 * YUAN,
            );
            in_range(
                "disability living subsidy",
                money(p, FactKind::LivingSubsidy),
                10 * YUAN,
                2_000 * YUAN,
            );
            in_range(
                "disability care subsidy",
                money(p, FactKind::CareSubsidy),
                10 * YUAN,
                2_000 * YUAN,
            );
            if let FactValue::Days(d) = facts::value(p, FactKind::InpatientDays, as_of) {
                assert!(d <= 366, "inpatient days {d}");
            }
        }
        per_person_m2.push(area_dm2 as f64 / 100.0 / members.len() as f64);
    }
    // Households with housing: the median floor area per person is that of a Chinese city
    // (about 30–45 m² in 2020s statistics); allow 10–100 m².
    per_person_m2.retain(|a| *a > 0.0);
    per_person_m2.sort_by(f64::total_cmp);
    let median = per_person_m2[per_person_m2.len() / 2];
    assert!(
        (10.0..=100.0).contains(&median),
        "median {median:.2} m² per person"
    );
}
