//! Each department's view of a simulated [`Person`]: the typed fact values protocol v1 carries.
//!
//! This is the only place that turns the ground truth of [`super::population`] into
//! [`FactValue`]s, so the in-process simulated departments ([`super::server`]) and the SQL export
//! ([`super::export`]) agree by construction.
//!
//! Monthly series: the population's 12 monthly figures are the 12 months before its reference date;
//! they are labelled with the months of the query's reference period by position (oldest first),
//! so a query made as of any date receives a complete 12-month series. Set
//! [`super::PopulationConfig::as_of`] to the date the demo queries for to make the labels exact.

use schemas::{Department, Fact, FactKind, FactValue, MonthAmount, YearMonth};
use time::Date;

use super::population::{
    AssistanceStatus, CorrectionalStatus, DisabilityCategory, Employment, MaritalStatus, Person,
    Stage,
};

/// The fact of `kind` about `person`, for a query made as of `as_of`.
pub fn fact(person: &Person, kind: FactKind, as_of: Date) -> Fact {
    let period = kind.spec().period.period_for(as_of);
    Fact {
        kind,
        value: value(person, kind, as_of),
        period,
    }
}

/// Whether the department has a record of `person` as of `as_of` (deaths do not remove records).
pub fn known(person: &Person, department: Department) -> bool {
    person.known_to(department)
}

/// The value of `kind` for `person`.
pub fn value(person: &Person, kind: FactKind, as_of: Date) -> FactValue {
    use FactKind as K;
    use FactValue as V;
    let code = |s: &str| V::Code(s.to_owned());
    match kind {
        K::MaritalStatus => code(marital_code(person.marital)),
        K::AssistanceStatus => code(assistance_code(person.assistance)),
        K::DeathRegistration => V::OptionalDate(person.death.filter(|d| *d <= as_of)),
        K::RegisteredDivision => V::Division(person.township_code().clone()),
        K::MedicalExpensesTotal => V::MoneyFen(person.health.medical_total_fen),
        K::MedicalExpensesReimbursed => V::MoneyFen(person.health.medical_reimbursed_fen),
        K::MedicalExpensesOutOfPocket => V::MoneyFen(person.health.medical_out_of_pocket_fen),
        K::SeriousIllness => code(if person.health.serious_illness.is_some() {
            "serious"
        } else if person.health.chronic_illness.is_some() {
            "chronic"
        } else {
            "none"
        }),
        K::HospitalStays => V::Count(person.health.hospital_stays_12m),
        K::InpatientDays => V::Days(person.health.hospital_days_12m),
        K::Enrolment => code(
            person
                .education
                .as_ref()
                .map_or("not_enrolled", |e| stage_code(e.stage)),
        ),
        K::TuitionFees => V::MoneyFen(person.education.as_ref().map_or(0, |e| e.annual_fees_fen)),
        K::EducationAidReceived => {
            V::MoneyFen(person.education.as_ref().map_or(0, |e| e.aid_12m_fen))
        }
        K::PropertiesOwned => V::Count(person.housing.properties),
        K::FloorAreaOwned => V::AreaDm2(person.housing.floor_area_dm2),
        K::PublicRentalHousing => V::Bool(person.housing.public_rental),
        K::ProvidentFundBalance => V::MoneyFen(person.housing.provident_fund_balance_fen),
        K::ProvidentFundMonthlyContribution => {
            V::MoneyFen(person.housing.provident_fund_monthly_fen)
        }
        K::EmploymentStatus => code(employment_code(person.labor.employment)),
        K::MonthlyWages => V::MonthlyFen(monthly(&person.labor.monthly_wages_fen, as_of)),
        K::Pension => V::MoneyFen(person.labor.pension_monthly_fen),
        K::UnemploymentBenefit => V::MoneyFen(person.labor.unemployment_benefit_monthly_fen),
        K::SocialInsuranceContributions => V::MoneyFen(person.labor.contributions_12m_fen),
        K::CustodyStatus => code(match person.justice.status {
            CorrectionalStatus::None => "none",
            CorrectionalStatus::Imprisoned => "imprisoned",
            CorrectionalStatus::CommunityCorrection => "community_correction",
        }),
        K::LegalAid => V::Bool(person.justice.legal_aid_12m),
        K::DisabilityCertificate => V::Bool(person.disability.is_some()),
        K::DisabilityCategory => code(
            person
                .disability
                .as_ref()
                .map_or("none", |d| category_code(d.category)),
        ),
        K::DisabilityGrade => code(match person.disability.as_ref().map(|d| d.grade) {
            None => "none",
            Some(1) => "1",
            Some(2) => "2",
            Some(3) => "3",
            Some(_) => "4",
        }),
        K::LivingSubsidy => V::MoneyFen(
            person
                .disability
                .as_ref()
                .map_or(0, |d| d.living_subsidy_monthly_fen),
        ),
        K::CareSubsidy => V::MoneyFen(
            person
                .disability
                .as_ref()
                .map_or(0, |d| d.care_subsidy_monthly_fen),
        ),
        _ => declared_value(person, kind, as_of),
    }
}

/// A fact kind declared in `departments.toml` (outside the built-in catalogue) has no ground
/// truth in the population: the simulator answers a value of its declared type, deterministic per
/// person and kind, non-zero (or true, or a code other than the first) for about one person in
/// ten, so a demo or test sees both cases.
fn declared_value(person: &Person, kind: FactKind, as_of: Date) -> FactValue {
    use FactValue as V;
    use schemas::ValueType as T;
    // FNV-1a over the resident ID and the kind's wire name.
    let h = person
        .resident_id
        .expose()
        .bytes()
        .chain([b'/'])
        .chain(kind.code().bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let hit = h % 10 == 0;
    let amount = if hit {
        ((h >> 8) % 5_000 + 1) as i64 * 100
    } else {
        0
    };
    let spec = kind.spec();
    match spec.value_type {
        T::Bool => V::Bool(hit),
        T::Count => V::Count(u32::from(hit)),
        T::Days => V::Days(if hit { ((h >> 8) % 30) as u32 + 1 } else { 0 }),
        T::MoneyFen => V::MoneyFen(amount),
        T::AreaDm2 => V::AreaDm2(amount),
        T::Code => {
            let i = if hit && spec.codes.len() > 1 {
                1 + (h >> 8) as usize % (spec.codes.len() - 1)
            } else {
                0
            };
            V::Code(spec.codes.get(i).copied().unwrap_or_default().to_owned())
        }
        T::OptionalDate => V::OptionalDate(None),
        T::MonthlyFen => V::MonthlyFen(monthly(&[amount / 12; 12], as_of)),
        T::Division => V::Division(person.township_code().clone()),
    }
}

/// The 12 months of the trailing reference period for `as_of`, oldest first.
pub fn trailing_months(as_of: Date) -> [YearMonth; 12] {
    let mut m = YearMonth::of(as_of);
    let mut out = [m; 12];
    for slot in out.iter_mut().rev() {
        m = m.previous();
        *slot = m;
    }
    out
}

fn monthly(amounts: &[i64; 12], as_of: Date) -> Vec<MonthAmount> {
    trailing_months(as_of)
        .iter()
        .zip(amounts)
        .map(|(&month, &fen)| MonthAmount { month, fen })
        .collect()
}

pub fn marital_code(m: MaritalStatus) -> &'static str {
    match m {
        MaritalStatus::Unmarried => "unmarried",
        MaritalStatus::Married => "married",
        MaritalStatus::Divorced => "divorced",
        MaritalStatus::Widowed => "widowed",
    }
}

pub fn assistance_code(a: AssistanceStatus) -> &'static str {
    match a {
        AssistanceStatus::None => "none",
        AssistanceStatus::Dibao => "dibao",
        AssistanceStatus::Tekun => "tekun",
        AssistanceStatus::Orphan => "orphan",
        AssistanceStatus::ChildInHardship => "child_in_hardship",
    }
}

pub fn employment_code(e: Employment) -> &'static str {
    match e {
        Employment::Employed => "employed",
        Employment::Flexible => "self_employed",
        Employment::Unemployed => "registered_unemployed",
        Employment::Retired => "retired",
        Employment::Student | Employment::NotInLabourForce => "not_in_labor_force",
    }
}

pub fn stage_code(s: Stage) -> &'static str {
    match s {
        Stage::Preschool => "preschool",
        Stage::Primary => "primary",
        Stage::JuniorSecondary => "junior_secondary",
        Stage::SeniorSecondary => "senior_secondary",
        Stage::SecondaryVocational => "secondary_vocational",
        Stage::HigherVocational => "higher_vocational",
        Stage::Undergraduate => "undergraduate",
    }
}

pub fn category_code(c: DisabilityCategory) -> &'static str {
    match c {
        DisabilityCategory::Visual => "visual",
        DisabilityCategory::Hearing => "hearing",
        DisabilityCategory::Speech => "speech",
        DisabilityCategory::Physical => "physical",
        DisabilityCategory::Intellectual => "intellectual",
        DisabilityCategory::Mental => "mental",
        DisabilityCategory::Multiple => "multiple",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Population, PopulationConfig};
    use schemas::{FactDecl, PeriodKind, Unit, ValueType};

    /// A kind declared in `departments.toml` gets a value of its declared type, the same for the
    /// same person every time, non-zero for some people and zero for most.
    #[test]
    fn declared_kinds_get_deterministic_values_of_their_type() {
        Department::register("sim_relief", "救灾", "relief").unwrap();
        let decl = |code: &str, value_type, unit, codes: &[&str]| FactDecl {
            code: code.into(),
            value_type,
            unit,
            period: PeriodKind::Trailing12Months,
            validity_days: 30,
            name_zh: "救助".into(),
            name_en: "relief".into(),
            codes: codes.iter().map(|c| (*c).to_owned()).collect(),
        };
        let money = FactKind::register(&decl(
            "sim_relief.amount_12m",
            ValueType::MoneyFen,
            Unit::Fen,
            &[],
        ))
        .unwrap();
        let status = FactKind::register(&decl(
            "sim_relief.status",
            ValueType::Code,
            Unit::None,
            &["none", "relocated", "rebuilding"],
        ))
        .unwrap();
        let pop = Population::generate(PopulationConfig::new(7, 200));
        let as_of = pop.config.as_of;
        let (mut paid, mut relocated) = (0, 0);
        for p in pop.persons() {
            for kind in [money, status] {
                let v = value(p, kind, as_of);
                assert_eq!(v, value(p, kind, as_of), "deterministic");
                let period = kind.spec().period.period_for(as_of);
                assert_eq!(kind.spec().check_value(&v, &period), Ok(()), "{v:?}");
            }
            paid += usize::from(value(p, money, as_of) != FactValue::MoneyFen(0));
            relocated += usize::from(value(p, status, as_of) != FactValue::Code("none".into()));
        }
        let n = pop.persons().len();
        assert!(paid > 0 && paid < n / 4, "{paid} of {n}");
        assert!(relocated > 0 && relocated < n / 4, "{relocated} of {n}");
    }
}
