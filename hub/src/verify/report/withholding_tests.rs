//! Nothing withheld leaks (issue 10, finding 3): for every purpose profile in `policies/profiles/`
//! × every raw-visibility rule (the profile's own with the Cedar `view_raw_values` outcome for
//! several callers, every single kind flipped, all, none and pseudo-random subsets), a report whose
//! every fact kind carries a distinctive sentinel value is aggregated with the profile's income rule
//! and the shipped local standard, then viewed. Neither the JSON view nor the printable page may
//! contain a withheld value, nor any figure derived from one (monthly amounts, member and household
//! sums, per-capita values, the verified side, difference and tolerance of a discrepancy), in any
//! of the forms the hub writes numbers (fen, `1234.56`, `1,234.56`); every shown value must appear.
//!
//! The figures that must be withheld are computed here from the sentinels and the profile, never
//! taken from the hub's own `sources` lists, so a figure that forgets a source fails the test.

use std::collections::BTreeSet;

use policies::{Action, PolicyEngine, RequestCtx, ResourceCtx};
use schemas::catalogue::ValueType;
use schemas::{DivisionCode, FactKind, FactValue, Identity, MonthAmount, Purpose, Role, Urgency};
use serde_json::Value;
use time::Date;
use time::macros::date;

use super::*;
use crate::verify::aggregate::{self, Declared, monthly_fen};
use crate::verify::print;

const AS_OF: Date = date!(2026 - 11 - 29);
const TOWNSHIP: &str = "370811002";
/// m1 and m2 are alive; m3 is registered as deceased (not counted, facts still shown or withheld).
const MEMBERS: usize = 3;

/// A 9-digit value, distinct for every (member, kind, month).
fn sentinel(member: usize, kind: usize, month: usize) -> i64 {
    300_000_000 + member as i64 * 50_000_000 + kind as i64 * 1_234_567 + month as i64 * 10_007 + 89
}

fn value_of(member: usize, kind_index: usize, kind: FactKind) -> FactValue {
    let spec = kind.spec();
    let n = sentinel(member, kind_index, 0);
    match spec.value_type {
        ValueType::Bool => FactValue::Bool(true),
        ValueType::Count => FactValue::Count(n as u32),
        ValueType::MoneyFen => FactValue::MoneyFen(n),
        ValueType::AreaDm2 => FactValue::AreaDm2(n),
        ValueType::Days => FactValue::Days(n as u32),
        ValueType::Code => FactValue::Code(spec.codes.last().expect("codes").to_string()),
        ValueType::Division => FactValue::Division(DivisionCode::parse(TOWNSHIP).unwrap()),
        ValueType::OptionalDate => {
            FactValue::OptionalDate((member == MEMBERS - 1).then_some(date!(2026 - 10 - 01)))
        }
        ValueType::MonthlyFen => {
            let mut month = schemas::YearMonth::of(AS_OF);
            let mut months = Vec::new();
            for i in 0..12 {
                month = month.previous();
                months.push(MonthAmount {
                    month,
                    fen: sentinel(member, kind_index, i + 1),
                });
            }
            FactValue::MonthlyFen(months)
        }
    }
}

/// The complete report of `purpose`: every department answered every kind it has, every member
/// has a sentinel for every kind, and the applicant declared amounts far from all of them (so that
/// every declared field is a discrepancy).
fn complete_report(engine: &PolicyEngine, purpose: Purpose) -> Report {
    let members: Vec<MemberReport> = (0..MEMBERS)
        .map(|m| MemberReport {
            subject_ref: format!("m{}", m + 1),
            name: format!("成员{}", m + 1),
            relation: if m == 0 { "applicant" } else { "child" }.into(),
            pseudonym: format!("p{m}"),
            facts: FactKind::BUILT_IN
                .iter()
                .enumerate()
                .map(|(i, k)| ReportedFact {
                    kind: *k,
                    value: Some(value_of(m, i, *k)),
                    withheld: None,
                    period_from: "2025-11-01".into(),
                    period_to: "2026-10-31".into(),
                    department: k.spec().department,
                    answered_at: "2026-11-29T01:00:00Z".into(),
                    key_id: "k".into(),
                    reused_from: None,
                })
                .collect(),
            notes: Vec::new(),
        })
        .collect();
    let departments: Vec<DepartmentReport> = schemas::Department::ALL
        .iter()
        .map(|d| DepartmentReport {
            department: *d,
            name_zh: d.name_zh().into(),
            status: DepartmentStatus::Answered,
            status_text: DepartmentStatus::Answered.text().into(),
            fact_kinds: FactKind::BUILT_IN
                .iter()
                .copied()
                .filter(|k| k.spec().department == *d)
                .collect(),
            answered_at: Some("2026-11-29T01:00:00Z".into()),
            key_id: Some("k".into()),
            signature: Some("c2ln".into()),
            detail: None,
            reused_from: None,
            elapsed_ms: 12,
            log_index: Some(7),
            log_receipt: None,
        })
        .collect();
    let division = DivisionCode::parse(TOWNSHIP).unwrap();
    let standard = engine.standards().in_force(&division, AS_OF.year());
    assert!(standard.is_some(), "a shipped standard for {TOWNSHIP}");
    let declared = Declared {
        household_monthly_income_fen: Some(1),
        properties_owned: Some(0),
        floor_area_dm2: Some(1),
        financial_assets_fen: Some(1),
    };
    let aggregation = aggregate::aggregate(&aggregate::Inputs {
        members: &members,
        departments: &departments,
        income: engine.profiles().income(purpose),
        standard,
        county: "370811",
        as_of: AS_OF,
        declared: Some(&declared),
    });
    Report {
        id: "v-sentinel".into(),
        created_at: "2026-11-29T01:00:00Z".into(),
        requested_by: "cw-0001".into(),
        registered_division: TOWNSHIP.into(),
        purpose,
        case_ref: "case-sentinel".into(),
        urgency: Urgency::Normal,
        authorization_id: Some("a-1".into()),
        emergency_without_letter: false,
        letter_due_by: None,
        deadline_ms: 45_000,
        complete: true,
        departments,
        members,
        log_index: 3,
        log_receipt: None,
        letter_follow_up: None,
        aggregation: Some(aggregation),
        signature: None,
    }
}

/// One number a view must not show (or must show), with the kinds it depends on.
#[derive(Debug)]
struct Number {
    what: String,
    value: i64,
    depends_on: BTreeSet<FactKind>,
}

fn number(what: impl Into<String>, value: i64, depends_on: &[FactKind]) -> Number {
    Number {
        what: what.into(),
        value,
        depends_on: depends_on.iter().copied().collect(),
    }
}

fn value(m: usize, kind: FactKind) -> FactValue {
    let i = FactKind::BUILT_IN.iter().position(|k| *k == kind).unwrap();
    value_of(m, i, kind)
}

/// Every number the report holds or derives, computed independently from the sentinels: the raw
/// values (each month of a series, its total and average), the monthly amounts, the members' and
/// the household's income, the asset sums and per-capita values, and each discrepancy's verified
/// figure, difference and tolerance.
fn numbers(engine: &PolicyEngine, purpose: Purpose) -> Vec<Number> {
    let mut out = Vec::new();
    for m in 0..MEMBERS {
        for &kind in FactKind::BUILT_IN {
            let v = value(m, kind);
            let what = |s: &str| format!("m{} {kind} {s}", m + 1);
            match &v {
                FactValue::Count(n) | FactValue::Days(n) => {
                    out.push(number(what("value"), i64::from(*n), &[kind]))
                }
                FactValue::MoneyFen(n) | FactValue::AreaDm2(n) => {
                    out.push(number(what("value"), *n, &[kind]))
                }
                FactValue::MonthlyFen(months) => {
                    for x in months {
                        out.push(number(what(&format!("{}", x.month)), x.fen, &[kind]));
                    }
                    let total: i64 = months.iter().map(|x| x.fen).sum();
                    out.push(number(what("total"), total, &[kind]));
                }
                _ => {}
            }
            if let Some(monthly) = monthly_fen(kind, &v) {
                out.push(number(what("monthly"), monthly, &[kind]));
            }
        }
    }
    let counted = [0usize, 1];
    let rule = engine.profiles().income(purpose);
    let income_kinds: Vec<FactKind> = rule.counted.iter().chain(&rule.deducted).copied().collect();
    let member_income = |m: usize| -> i64 {
        let plus: i64 = rule
            .counted
            .iter()
            .filter_map(|k| monthly_fen(*k, &value(m, *k)))
            .sum();
        let minus: i64 = rule
            .deducted
            .iter()
            .filter_map(|k| monthly_fen(*k, &value(m, *k)))
            .sum();
        plus - minus
    };
    let mut household_income = 0;
    for m in counted {
        let income = member_income(m);
        household_income += income;
        out.push(number(format!("m{} income", m + 1), income, &income_kinds));
    }
    let per_capita = |total: i64| total / counted.len() as i64;
    out.push(number("household income", household_income, &income_kinds));
    out.push(number(
        "household income per capita",
        per_capita(household_income),
        &income_kinds,
    ));
    let sum = |kind: FactKind| -> i64 {
        counted
            .iter()
            .map(|m| match value(*m, kind) {
                FactValue::Count(n) => i64::from(n),
                FactValue::MoneyFen(n) | FactValue::AreaDm2(n) => n,
                _ => 0,
            })
            .sum()
    };
    let properties = sum(FactKind::PropertiesOwned);
    let area = sum(FactKind::FloorAreaOwned);
    let financial = sum(FactKind::ProvidentFundBalance);
    out.push(number(
        "properties",
        properties,
        &[FactKind::PropertiesOwned],
    ));
    out.push(number("floor area", area, &[FactKind::FloorAreaOwned]));
    out.push(number(
        "floor area per capita",
        per_capita(area),
        &[FactKind::FloorAreaOwned],
    ));
    out.push(number(
        "financial assets",
        financial,
        &[FactKind::ProvidentFundBalance],
    ));
    out.push(number(
        "financial assets per capita",
        per_capita(financial),
        &[FactKind::ProvidentFundBalance],
    ));
    // Discrepancies: every declared field is 1 (0 properties), far below the sentinels.
    let tol = engine
        .standards()
        .in_force(&DivisionCode::parse(TOWNSHIP).unwrap(), AS_OF.year())
        .unwrap()
        .tolerance
        .clone();
    let compared = [
        ("income", household_income, 1, income_kinds.clone()),
        (
            "financial assets",
            financial,
            1,
            vec![FactKind::ProvidentFundBalance],
        ),
        ("floor area", area, 1, vec![FactKind::FloorAreaOwned]),
        ("properties", properties, 0, vec![FactKind::PropertiesOwned]),
    ];
    for (what, verified, declared, kinds) in compared {
        out.push(number(
            format!("{what} difference"),
            (declared - verified).abs(),
            &kinds,
        ));
        let allowed = match what {
            "floor area" => (verified * i64::from(tol.percent) / 100).max(100),
            "properties" => 0,
            _ => tol.allowed(verified),
        };
        out.push(number(format!("{what} tolerance"), allowed, &kinds));
    }
    out
}

/// The forms in which a number can be written: fen (or dm², a count), `1234.56` and `1,234.56`.
fn forms(n: i64) -> Vec<String> {
    let n = n.abs();
    let int = (n / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    vec![
        n.to_string(),
        format!("{int}.{:02}", n % 100),
        format!("{grouped}.{:02}", n % 100),
    ]
}

/// Whether `text` contains `needle` as a whole number (not inside a longer run of digits or
/// letters, so a hash or a longer figure does not count).
fn contains_number(text: &str, needle: &str) -> bool {
    let bytes = text.as_bytes();
    text.match_indices(needle).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + needle.len()).copied();
        let boundary = |b: Option<u8>| !b.is_some_and(|b| b.is_ascii_alphanumeric());
        boundary(before) && boundary(after)
    })
}

/// A caseworker of the township, as Cedar sees one.
fn identity(role: Role, organisation: &str) -> Identity {
    Identity {
        uri: format!("spiffe://jishijiu.jining/{role}/{organisation}/{TOWNSHIP}/p-1"),
        principal: "p-1".into(),
        role,
        organisation: organisation.into(),
        division: DivisionCode::parse(TOWNSHIP).unwrap(),
        display_name: "测试".into(),
        serial: "01".into(),
    }
}

/// The kinds a view shows for `who`, decided as the hub decides it (`raw_value_view` in
/// `verify::api`): the raw kinds present that the profile marks raw-visible, asked of Cedar's
/// `view_raw_values`; none when Cedar refuses. `ask_extra` adds a kind to the question (Cedar
/// must then refuse).
fn cedar_rule(
    engine: &PolicyEngine,
    report: &Report,
    who: &Identity,
    ask_extra: Option<FactKind>,
) -> (bool, BTreeSet<FactKind>) {
    let candidates: BTreeSet<FactKind> = report
        .members
        .iter()
        .flat_map(|m| m.facts.iter().map(|f| f.kind))
        .filter(|k| engine.profiles().raw_visible(report.purpose, *k))
        .collect();
    let mut asked: Vec<FactKind> = candidates.iter().copied().collect();
    asked.extend(ask_extra);
    let allowed = !asked.is_empty()
        && engine
            .authorize(
                who,
                Action::ViewRawValues,
                &ResourceCtx {
                    region: Some(DivisionCode::parse(TOWNSHIP).unwrap()),
                    department: None,
                    ..Default::default()
                },
                &RequestCtx {
                    purpose: Some(report.purpose),
                    raw_fact_kinds: asked,
                    ..RequestCtx::default()
                },
            )
            .allowed;
    (allowed, if allowed { candidates } else { BTreeSet::new() })
}

/// Every rule to try for one profile: (name, the kinds shown raw).
fn rules(engine: &PolicyEngine, report: &Report) -> Vec<(String, BTreeSet<FactKind>)> {
    let purpose = report.purpose;
    let caseworker = identity(Role::Caseworker, "xuzhuang");
    let (allowed, own) = cedar_rule(engine, report, &caseworker, None);
    assert!(
        allowed,
        "{purpose}: a caseworker sees the profile's raw kinds"
    );
    assert!(
        !own.is_empty(),
        "{purpose}: the profile marks some kind raw"
    );
    let mut out = vec![("profile, view_raw_values allowed".to_owned(), own.clone())];
    let unmarked = FactKind::BUILT_IN
        .iter()
        .copied()
        .find(|k| is_raw_kind(*k) && !own.contains(k))
        .expect("a raw kind the profile does not mark");
    let (allowed, none) = cedar_rule(engine, report, &caseworker, Some(unmarked));
    assert!(
        !allowed,
        "{purpose}: Cedar refuses a kind the profile does not mark"
    );
    out.push(("view_raw_values refused".to_owned(), none));
    for (role, org) in [
        (Role::Auditor, "supervision"),
        (Role::Admin, "ops"),
        (Role::Department, "labor"),
    ] {
        let (_, shown) = cedar_rule(engine, report, &identity(role, org), None);
        out.push((format!("view_raw_values as {role}"), shown));
    }
    for &k in FactKind::BUILT_IN {
        let mut flipped = own.clone();
        if !flipped.remove(&k) {
            flipped.insert(k);
        }
        out.push((format!("profile with {k} flipped"), flipped));
    }
    out.push((
        "everything shown".into(),
        FactKind::BUILT_IN.iter().copied().collect(),
    ));
    out.push(("nothing shown".into(), BTreeSet::new()));
    // Pseudo-random subsets (xorshift, fixed seed per purpose: reproducible).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (purpose as u64 + 1);
    for i in 0..48 {
        let mut shown = BTreeSet::new();
        for &k in FactKind::BUILT_IN {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(2) {
                shown.insert(k);
            }
        }
        out.push((format!("random subset {i}"), shown));
    }
    out
}

/// Every `{"sources": [...]}` figure of a view is withheld exactly when one of its sources is.
fn check_figures(v: &Value, shows: &dyn Fn(FactKind) -> bool, ctx: &str, path: &str) {
    match v {
        Value::Object(o) => {
            if let Some(sources) = o.get("sources") {
                let kinds: Vec<FactKind> = serde_json::from_value(sources.clone()).unwrap();
                let all_shown = kinds.iter().all(|k| shows(*k));
                assert_eq!(o.contains_key("value"), all_shown, "{ctx}: {path}: {v}");
                assert_eq!(o.contains_key("withheld"), !all_shown, "{ctx}: {path}: {v}");
            }
            for (k, x) in o {
                check_figures(x, shows, ctx, &format!("{path}.{k}"));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                check_figures(x, shows, ctx, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

fn indication_codes(r: &Report) -> Vec<aggregate::IndicationCode> {
    let a = r.aggregation.as_ref().unwrap();
    a.indications.iter().map(|i| i.code).collect()
}

#[test]
fn no_view_shows_a_withheld_value_or_a_figure_derived_from_one() {
    let engine = PolicyEngine::load(PolicyEngine::shipped_dir()).unwrap();
    let profile_files = std::fs::read_dir(PolicyEngine::shipped_dir().join("profiles"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "toml")
        })
        .count();
    assert_eq!(profile_files, Purpose::ALL.len(), "one profile per purpose");
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let key = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public = ring::signature::KeyPair::public_key(&key).as_ref().to_vec();
    let mut views = 0;
    for purpose in Purpose::ALL {
        let mut stored = complete_report(&engine, purpose);
        sign(&mut stored, &key).unwrap();
        let codes = indication_codes(&stored);
        // The sentinel household is above every limit, and every declared field differs.
        for code in [
            aggregate::IndicationCode::IncomeNotBelowLine,
            aggregate::IndicationCode::PropertiesAboveLimit,
            aggregate::IndicationCode::FloorAreaAboveLimit,
            aggregate::IndicationCode::FinancialAssetsAboveLimit,
        ] {
            assert!(codes.contains(&code), "{purpose}: {code:?} in {codes:?}");
        }
        assert_eq!(
            stored.aggregation.as_ref().unwrap().discrepancies.len(),
            4,
            "{purpose}"
        );
        let numbers = numbers(&engine, purpose);
        for (rule, shown) in rules(&engine, &stored) {
            let ctx = format!("{purpose} / {rule}");
            let shows = |k: FactKind| !is_raw_kind(k) || shown.contains(&k);
            let mut view = stored.clone();
            let changed = apply_raw_visibility(&mut view, |k| shown.contains(&k));
            let withholds = FactKind::BUILT_IN.iter().any(|k| !shows(*k));
            assert_eq!(changed, withholds, "{ctx}");
            if changed {
                sign(&mut view, &key).unwrap();
            }
            let json = serde_json::to_value(&view).unwrap();
            assert_eq!(verify_signature(&json, &public), Ok(()), "{ctx}");
            let text = serde_json::to_string(&json).unwrap();
            let page = print::render(&view).unwrap();
            check_figures(&json, &shows, &ctx, "");
            // Categorical indications stay.
            assert_eq!(indication_codes(&view), codes, "{ctx}");
            for n in &numbers {
                let hidden = n.depends_on.iter().any(|k| !shows(*k));
                if n.value.abs() < 1_000 {
                    continue; // too short to tell apart from other numbers
                }
                for form in forms(n.value) {
                    if hidden {
                        assert!(
                            !contains_number(&text, &form),
                            "{ctx}: JSON view shows withheld {} as {form}",
                            n.what
                        );
                        assert!(
                            !contains_number(&page, &form),
                            "{ctx}: page shows withheld {} as {form}",
                            n.what
                        );
                    }
                }
            }
            // What is shown is really there: every shown raw value in the JSON (and printed), and
            // every household figure whose sources are all shown.
            for m in 0..MEMBERS {
                for &kind in FactKind::BUILT_IN
                    .iter()
                    .filter(|k| is_raw_kind(**k) && shows(**k))
                {
                    let v = value(m, kind);
                    let raw = match &v {
                        FactValue::MonthlyFen(months) => months[0].fen,
                        FactValue::Count(n) | FactValue::Days(n) => i64::from(*n),
                        FactValue::MoneyFen(n) | FactValue::AreaDm2(n) => *n,
                        _ => unreachable!("raw kinds only"),
                    };
                    assert!(
                        contains_number(&text, &raw.to_string()),
                        "{ctx}: m{} {kind} shown",
                        m + 1
                    );
                    // The printed cell holds the value's Chinese text (its English half is
                    // left out for room).
                    let printed = print::value_text(&v);
                    let zh = printed.split(" / ").next().unwrap_or(&printed);
                    assert!(page.contains(zh), "{ctx}: m{} {kind} printed", m + 1);
                }
            }
            const HOUSEHOLD: [&str; 7] = [
                "household income",
                "household income per capita",
                "properties",
                "floor area",
                "floor area per capita",
                "financial assets",
                "financial assets per capita",
            ];
            for n in numbers.iter().filter(|n| {
                n.depends_on.iter().all(|k| shows(*k)) && HOUSEHOLD.contains(&n.what.as_str())
            }) {
                assert!(
                    contains_number(&text, &n.value.to_string()),
                    "{ctx}: {} shown in JSON",
                    n.what
                );
                let printed = match n.what.as_str() {
                    "properties" => n.value.to_string(),
                    w if w.starts_with("floor") => aggregate::m2(n.value),
                    _ => aggregate::yuan(n.value),
                };
                assert!(
                    contains_number(
                        &page,
                        printed.trim_start_matches('¥').trim_end_matches(" m²")
                    ),
                    "{ctx}: {} printed",
                    n.what
                );
            }
            views += 1;
        }
    }
    assert!(views > 7 * 30, "{views}");
}

#[test]
fn a_withheld_discrepancy_names_the_declared_amount_but_not_the_verified_one() {
    let engine = PolicyEngine::load(PolicyEngine::shipped_dir()).unwrap();
    let stored = complete_report(&engine, Purpose::HousingAid);
    let mut view = stored.clone();
    // Wages and contributions withheld (as the housing-aid profile does): the income figures go.
    apply_raw_visibility(&mut view, |k| {
        k.spec().department == schemas::Department::Housing
    });
    let a = view.aggregation.as_ref().unwrap();
    let d = a
        .discrepancies
        .iter()
        .find(|d| d.field == aggregate::DeclaredField::HouseholdMonthlyIncomeFen)
        .unwrap();
    assert!(d.verified.value().is_none() && d.allowed_difference.value().is_none());
    assert_eq!(d.verified.withheld(), Some(aggregate::WITHHELD_FIGURE_TEXT));
    assert!(
        d.text.starts_with("申报 ¥0.01 与核对结果相差超过容差"),
        "{}",
        d.text
    );
    // The floor area is housing's: shown, and the text states it.
    let d = a
        .discrepancies
        .iter()
        .find(|d| d.field == aggregate::DeclaredField::FloorAreaDm2)
        .unwrap();
    let verified = *d.verified.value().unwrap();
    assert!(d.text.contains(&aggregate::m2(verified)), "{}", d.text);
    let pc = a.household.monthly_income_per_capita_fen.as_ref().unwrap();
    assert!(pc.value().is_none());
    let line = a
        .indications
        .iter()
        .find(|i| i.code == aggregate::IndicationCode::IncomeNotBelowLine)
        .unwrap();
    assert!(line.text.contains("人均收入数额不予显示"), "{}", line.text);
}

#[test]
fn the_detail_of_a_rejected_answer_is_withheld_when_the_view_withholds_its_kinds() {
    let engine = PolicyEngine::load(PolicyEngine::shipped_dir()).unwrap();
    let mut stored = complete_report(&engine, Purpose::HousingAid);
    let quoted = "malformed: answer.results[0].facts[1].value: 123456789 is not of type \"array\"";
    for d in &mut stored.departments {
        if d.department == schemas::Department::Labor {
            d.status = DepartmentStatus::Malformed;
            d.detail = Some(quoted.into());
        }
        if d.department == schemas::Department::Housing {
            d.status = DepartmentStatus::Refused;
            d.detail = Some("refused: 123456789".into());
        }
    }
    let housing_only = |k: FactKind| k.spec().department == schemas::Department::Housing;
    let mut view = stored.clone();
    assert!(apply_raw_visibility(&mut view, housing_only));
    let detail = |r: &Report, d: schemas::Department| {
        r.departments
            .iter()
            .find(|x| x.department == d)
            .and_then(|x| x.detail.clone())
            .unwrap()
    };
    let labor = detail(&view, schemas::Department::Labor);
    assert_eq!(labor, format!("malformed: {DETAIL_WITHHELD_TEXT}"));
    assert!(!serde_json::to_string(&view).unwrap().contains(quoted));
    // Housing's kinds are all shown: its refusal text stays as the department gave it.
    assert_eq!(
        detail(&view, schemas::Department::Housing),
        "refused: 123456789"
    );
    assert!(!print::render(&view).unwrap().contains(quoted));
    // Shown in full when nothing of the department is withheld.
    let mut all = stored.clone();
    apply_raw_visibility(&mut all, |_| true);
    assert_eq!(detail(&all, schemas::Department::Labor), quoted);
}
