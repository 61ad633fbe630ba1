//! 模拟人口: a deterministic synthetic population of Jining households, the ground truth behind the
//! seven simulated departments.
//!
//! [`Population::generate`] turns a [`PopulationConfig`] (seed, household count, reference date,
//! income thresholds) into households and people. One [`Person`] record holds everything every
//! department knows about that person (wages, pension, illness, disability, property, education,
//! justice, assistance status, death), so the departments' views — derived from it in
//! [`super::facts`] — always agree with each other.
//!
//! Invariants:
//! - Same config ⇒ byte-identical population (own RNG, no clocks, no hash-map iteration order).
//! - Every resident ID is valid (GB 11643: region = the person's county code, real birth date, sex
//!   parity of the sequence number, check digit) and unique in the population.
//! - Money is integer fen (分); areas are integer square decimetres (dm², 0.01 m²).
//! - The awkward cases real data has are present and listed per household in [`Household::cases`]:
//!   people unknown to a department, recent deaths, households split across townships, and
//!   per-capita income just above and just below the threshold.

use std::collections::{BTreeMap, HashMap};

use schemas::household::Relation;
use schemas::resident_id::Sex;
use schemas::{Department, DivisionCode, ResidentId};
use time::{Date, Month};

use super::divisions::Divisions;
use super::rng::SimRng;

/// 1 yuan (元) in fen (分).
pub const YUAN: i64 = 100;

/// What to generate.
#[derive(Debug, Clone)]
pub struct PopulationConfig {
    /// Seed: the same seed gives the same population.
    pub seed: u64,
    /// Number of households (a household has 1 to 7 people, about 3 on average).
    pub households: usize,
    /// The reference date the data describes (the last 12 months end the month before it).
    pub as_of: Date,
    /// 低保标准: monthly per-capita income threshold in fen used for the planted near-threshold
    /// households, unless a county has its own in `county_thresholds_fen`.
    pub default_threshold_fen: i64,
    /// Per-county thresholds (6-digit county code → fen per person per month).
    pub county_thresholds_fen: BTreeMap<String, i64>,
}

impl PopulationConfig {
    /// A config with the default reference date (2026-11-01) and threshold (960 yuan/month).
    pub fn new(seed: u64, households: usize) -> Self {
        Self {
            seed,
            households,
            as_of: time::macros::date!(2026 - 11 - 01),
            default_threshold_fen: 960 * YUAN,
            county_thresholds_fen: BTreeMap::new(),
        }
    }

    /// The threshold that applies in a county.
    pub fn threshold_fen(&self, county: &DivisionCode) -> i64 {
        self.county_thresholds_fen
            .get(county.as_str())
            .copied()
            .unwrap_or(self.default_threshold_fen)
    }
}

/// Index of a household in [`Population::households`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HouseholdId(pub u32);

/// Index of a person in [`Population::persons`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonId(pub u32);

/// 婚姻状况 (民政).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaritalStatus {
    Unmarried,
    Married,
    Divorced,
    Widowed,
}

/// 救助状态 (民政): the assistance a person currently receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssistanceStatus {
    None,
    /// 低保: minimum living allowance
    Dibao,
    /// 特困: extreme-poverty support
    Tekun,
    /// 孤儿: orphan
    Orphan,
    /// 事实无人抚养儿童 / 困境儿童: child in hardship
    ChildInHardship,
}

/// 就业状态 (人社).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Employment {
    Employed,
    /// 灵活就业: flexible / irregular work
    Flexible,
    Unemployed,
    Retired,
    Student,
    /// Children, homemakers and others outside the labour force.
    NotInLabourForce,
}

/// Labor and social-security record (人社).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labor {
    pub employment: Employment,
    /// 月工资: wages per month over the last 12 months, oldest first, fen.
    pub monthly_wages_fen: [i64; 12],
    /// 养老金: monthly pension, fen (0 = none).
    pub pension_monthly_fen: i64,
    /// 失业保险金: monthly unemployment benefit, fen (0 = none).
    pub unemployment_benefit_monthly_fen: i64,
    /// Months with social-insurance contributions in the last 12 months.
    pub insured_months_12m: u8,
    /// Personal social-insurance contributions paid in the last 12 months, fen.
    pub contributions_12m_fen: i64,
}

impl Labor {
    /// Sum of wages over the 12 months, fen.
    pub fn wages_12m_fen(&self) -> i64 {
        self.monthly_wages_fen.iter().sum()
    }
}

/// Health and medical-insurance record (卫健/医保), last 12 months.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub medical_total_fen: i64,
    pub medical_reimbursed_fen: i64,
    pub medical_out_of_pocket_fen: i64,
    /// 大病: a serious illness code, e.g. `malignant_tumour`.
    pub serious_illness: Option<&'static str>,
    /// 慢性病: a chronic illness code, e.g. `hypertension`.
    pub chronic_illness: Option<&'static str>,
    pub hospital_stays_12m: u32,
    pub hospital_days_12m: u32,
}

/// 学段: education stage (教育).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Preschool,
    Primary,
    JuniorSecondary,
    SeniorSecondary,
    /// 中职
    SecondaryVocational,
    /// 高职
    HigherVocational,
    Undergraduate,
}

/// Current enrolment (教育).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolment {
    pub stage: Stage,
    /// Fees per school year, fen.
    pub annual_fees_fen: i64,
    /// Education aid received in the last 12 months, fen.
    pub aid_12m_fen: i64,
}

/// Housing record (住建 + 住房公积金).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Housing {
    pub properties: u32,
    /// Total floor area of the properties, square decimetres (0.01 m²).
    pub floor_area_dm2: i64,
    /// 公租房: lives in public rental housing.
    pub public_rental: bool,
    /// 住房公积金: provident-fund account balance, fen (0 = no account).
    pub provident_fund_balance_fen: i64,
    /// Monthly provident-fund deposit, fen.
    pub provident_fund_monthly_fen: i64,
}

/// 司法: correctional status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CorrectionalStatus {
    None,
    /// 服刑: serving a prison sentence
    Imprisoned,
    /// 社区矫正: community correction
    CommunityCorrection,
}

/// Justice record (司法).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Justice {
    pub status: CorrectionalStatus,
    /// 法律援助: received legal aid in the last 12 months.
    pub legal_aid_12m: bool,
}

/// 残疾类别.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisabilityCategory {
    Visual,
    Hearing,
    Speech,
    Physical,
    Intellectual,
    Mental,
    Multiple,
}

/// Disability record (残联): only people holding a 残疾人证 have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disability {
    pub category: DisabilityCategory,
    /// 等级: 1 (most severe) to 4.
    pub grade: u8,
    /// 困难残疾人生活补贴: monthly, fen (0 = none).
    pub living_subsidy_monthly_fen: i64,
    /// 重度残疾人护理补贴: monthly, fen (0 = none).
    pub care_subsidy_monthly_fen: i64,
}

/// One person: the single source every department's view is derived from.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: PersonId,
    pub resident_id: ResidentId,
    /// A synthetic Chinese name.
    pub name: String,
    pub sex: Sex,
    pub birth: Date,
    pub household: HouseholdId,
    pub relation: Relation,
    /// Index into [`Divisions::townships`] of where this person actually lives/is registered; differs
    /// from the household's township for split households.
    pub township: usize,
    /// 死亡日期 (民政 death registration).
    pub death: Option<Date>,
    pub marital: MaritalStatus,
    pub assistance: AssistanceStatus,
    pub labor: Labor,
    pub health: Health,
    pub education: Option<Enrolment>,
    pub housing: Housing,
    pub justice: Justice,
    pub disability: Option<Disability>,
    /// Departments that have no record of this person (bit = position in [`Department::ALL`]).
    unknown_mask: u8,
}

impl Person {
    /// Whether `department` has a record of this person (if not, it answers "unknown").
    pub fn known_to(&self, department: Department) -> bool {
        self.unknown_mask & dept_bit(department) == 0
    }

    /// Age in whole years on `on`.
    pub fn age_on(&self, on: Date) -> i32 {
        age_between(self.birth, on)
    }

    pub fn is_alive_on(&self, on: Date) -> bool {
        self.death.is_none_or(|d| d > on)
    }

    /// The 9-digit township code.
    pub fn township_code(&self) -> &'static DivisionCode {
        &Divisions::jining().townships[self.township].code
    }

    /// The 6-digit county code (also the region part of the resident ID).
    pub fn county_code(&self) -> &'static DivisionCode {
        let d = Divisions::jining();
        &d.counties[d.townships[self.township].county].code
    }

    /// Income counted for the household per-capita test: mean monthly wages over the 12 months +
    /// pension + unemployment benefit, fen (rounded down).
    pub fn monthly_income_fen(&self) -> i64 {
        self.labor.wages_12m_fen() / 12
            + self.labor.pension_monthly_fen
            + self.labor.unemployment_benefit_monthly_fen
    }
}

fn dept_bit(d: Department) -> u8 {
    1 << Department::ALL.iter().position(|x| *x == d).unwrap_or(0)
}

/// Which side of the threshold a planted household lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Above,
    Below,
}

/// 疑难情形: an awkward case real data has, recorded where it was planted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwkwardCase {
    /// The department has no record of this member (a data gap, not a structural one such as a
    /// child unknown to the labor bureau).
    UnknownToDepartment {
        member: PersonId,
        department: Department,
    },
    /// The member died within the 180 days before the reference date (registered with civil
    /// affairs; other departments' records simply stop).
    RecentDeath { member: PersonId, date: Date },
    /// The member lives in another township than the household's registered one.
    SplitAcrossTownships {
        member: PersonId,
        township: DivisionCode,
    },
    /// Per-capita monthly income (see [`Household::monthly_income_per_capita_fen`]) lies within
    /// 20 yuan of the county threshold. Every member is alive, known to every department that
    /// holds their income, has constant wages over the 12 months, no pension, benefit, disability
    /// subsidy or personal social-insurance contribution, so any
    /// reasonable income definition gives exactly `per_capita_fen`.
    IncomeNearThreshold {
        threshold_fen: i64,
        per_capita_fen: i64,
        side: Side,
    },
}

/// 家庭: a household (applicant first in `members`).
#[derive(Debug, Clone)]
pub struct Household {
    pub id: HouseholdId,
    /// Index into [`Divisions::townships`] of the registered township.
    pub township: usize,
    pub members: Vec<PersonId>,
    pub cases: Vec<AwkwardCase>,
}

impl Household {
    pub fn township_code(&self) -> &'static DivisionCode {
        &Divisions::jining().townships[self.township].code
    }

    pub fn county_code(&self) -> &'static DivisionCode {
        let d = Divisions::jining();
        &d.counties[d.townships[self.township].county].code
    }

    pub fn applicant(&self) -> PersonId {
        self.members[0]
    }

    /// Ground truth: per-capita monthly income over the members alive on `as_of`, fen (rounded
    /// down), with [`Person::monthly_income_fen`] as the income of a member.
    pub fn monthly_income_per_capita_fen(&self, population: &Population) -> i64 {
        let as_of = population.config.as_of;
        let living: Vec<&Person> = self
            .members
            .iter()
            .map(|&m| population.person(m))
            .filter(|p| p.is_alive_on(as_of))
            .collect();
        if living.is_empty() {
            return 0;
        }
        living.iter().map(|p| p.monthly_income_fen()).sum::<i64>() / living.len() as i64
    }
}

/// The generated population with lookups.
#[derive(Debug, Clone)]
pub struct Population {
    pub config: PopulationConfig,
    persons: Vec<Person>,
    households: Vec<Household>,
    by_resident_id: HashMap<String, PersonId>,
}

impl Population {
    /// Generate the population for `config` (deterministic).
    pub fn generate(config: PopulationConfig) -> Population {
        Generator::new(config).run()
    }

    pub fn persons(&self) -> &[Person] {
        &self.persons
    }

    pub fn households(&self) -> &[Household] {
        &self.households
    }

    pub fn person(&self, id: PersonId) -> &Person {
        &self.persons[id.0 as usize]
    }

    pub fn household(&self, id: HouseholdId) -> &Household {
        &self.households[id.0 as usize]
    }

    /// The person with this resident ID, if any.
    pub fn find(&self, resident_id: &ResidentId) -> Option<&Person> {
        self.by_resident_id
            .get(resident_id.as_str())
            .map(|&id| self.person(id))
    }

    /// The members of a household, applicant first.
    pub fn members(&self, id: HouseholdId) -> impl Iterator<Item = &Person> {
        self.household(id).members.iter().map(|&m| self.person(m))
    }

    /// The household as a caseworker would declare it in a verification request
    /// (`schemas::Household`: registered township, members with resident IDs, names, relations;
    /// the applicant first). Deceased members are included: the hub must notice them.
    pub fn household_declaration(&self, id: HouseholdId) -> schemas::Household {
        let h = self.household(id);
        schemas::Household {
            registered_division: h.township_code().clone(),
            members: self
                .members(id)
                .map(|p| schemas::Member {
                    resident_id: p.resident_id.clone(),
                    name: p.name.clone(),
                    relation: p.relation,
                })
                .collect(),
        }
    }

    /// Households with at least one case matching `pred`.
    pub fn households_with(
        &self,
        pred: impl Fn(&AwkwardCase) -> bool,
    ) -> impl Iterator<Item = &Household> {
        self.households
            .iter()
            .filter(move |h| h.cases.iter().any(&pred))
    }

    /// The 12 months the monthly figures cover, oldest first, as (year, month).
    pub fn months(&self) -> [(i32, Month); 12] {
        let mut out = [(0, Month::January); 12];
        let (mut y, mut m) = (self.config.as_of.year(), self.config.as_of.month());
        for slot in out.iter_mut().rev() {
            m = m.previous();
            if m == Month::December {
                y -= 1;
            }
            *slot = (y, m);
        }
        out
    }
}

// === generation ===

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "孔", "颜",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "秀", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
    "明", "超", "霞", "平", "刚", "桂", "英", "华", "建", "国", "文", "玉", "兰", "志", "红", "海",
    "鑫", "宇", "浩", "婷", "雪", "晨", "欣", "博", "涵", "梓", "轩", "怡", "佳", "俊", "宁", "慧",
];
const SERIOUS: &[&str] = &[
    "malignant_tumour",
    "uremia",
    "leukaemia",
    "severe_mental_illness",
    "organ_transplant",
];
const CHRONIC: &[&str] = &[
    "hypertension",
    "diabetes",
    "coronary_heart_disease",
    "copd",
    "chronic_kidney_disease",
];

/// Economic class of a household; drives wage levels and assistance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Poor,
    LowIncome,
    Ordinary,
}

/// What a member looks like before the per-person attributes are drawn.
struct Draft {
    relation: Relation,
    sex: Sex,
    age: i32,
}

struct Generator {
    config: PopulationConfig,
    persons: Vec<Person>,
    households: Vec<Household>,
    /// Next sequence slot per (county index, birth julian day, sex).
    seq: HashMap<(usize, i32, bool), u16>,
    by_resident_id: HashMap<String, PersonId>,
}

impl Generator {
    fn new(config: PopulationConfig) -> Self {
        let cap = config.households * 3;
        Self {
            config,
            persons: Vec::with_capacity(cap),
            households: Vec::with_capacity(0),
            seq: HashMap::with_capacity(cap),
            by_resident_id: HashMap::with_capacity(cap),
        }
    }

    fn run(mut self) -> Population {
        self.households.reserve(self.config.households);
        for h in 0..self.config.households {
            let mut rng = SimRng::derive(self.config.seed, h as u64);
            self.household(HouseholdId(h as u32), &mut rng);
        }
        Population {
            config: self.config,
            persons: self.persons,
            households: self.households,
            by_resident_id: self.by_resident_id,
        }
    }

    fn household(&mut self, id: HouseholdId, rng: &mut SimRng) {
        let divisions = Divisions::jining();
        let township = rng.below(divisions.townships.len() as u64) as usize;
        let county_code = divisions.counties[divisions.townships[township].county]
            .code
            .clone();
        let as_of = self.config.as_of;

        // 2% of households are planted just above or below the threshold.
        let near_threshold = rng.chance(0.02);
        let class = if near_threshold {
            Class::LowIncome
        } else {
            match rng.weighted(&[10, 15, 75]) {
                0 => Class::Poor,
                1 => Class::LowIncome,
                _ => Class::Ordinary,
            }
        };
        let drafts = compose(rng, near_threshold);
        let surname = *rng.pick(SURNAMES);

        let first = self.persons.len() as u32;
        let mut members = Vec::with_capacity(drafts.len());
        let mut cases = Vec::new();
        for draft in &drafts {
            let pid = PersonId(self.persons.len() as u32);
            let person = self.person(pid, id, township, draft, surname, class, rng);
            self.persons.push(person);
            members.push(pid);
        }

        // Marital status and household-level assistance, now that the composition is known.
        let has_spouse = drafts.iter().any(|d| d.relation == Relation::Spouse);
        let applicant_age = drafts[0].age;
        for &m in &members {
            let p = &mut self.persons[m.0 as usize];
            p.marital = match p.relation {
                Relation::Applicant | Relation::Spouse if has_spouse => MaritalStatus::Married,
                Relation::Applicant if applicant_age >= 65 => MaritalStatus::Widowed,
                Relation::Applicant if applicant_age >= 30 && rng.chance(0.5) => {
                    MaritalStatus::Divorced
                }
                Relation::Parent if rng.chance(0.3) => MaritalStatus::Widowed,
                Relation::Parent => MaritalStatus::Married,
                _ => MaritalStatus::Unmarried,
            };
        }
        if class == Class::Poor && !near_threshold {
            let tekun = drafts.len() == 1 && applicant_age >= 60;
            let on_assistance = tekun || rng.chance(0.8);
            if on_assistance {
                for &m in &members {
                    let p = &mut self.persons[m.0 as usize];
                    p.assistance = if tekun {
                        AssistanceStatus::Tekun
                    } else {
                        AssistanceStatus::Dibao
                    };
                }
            }
            // A child whose parent is imprisoned or severely disabled is a child in hardship.
            let parent_in_trouble = members.iter().any(|&m| {
                let p = &self.persons[m.0 as usize];
                matches!(p.relation, Relation::Applicant | Relation::Spouse)
                    && (p.justice.status == CorrectionalStatus::Imprisoned
                        || p.disability.as_ref().is_some_and(|d| d.grade <= 2))
            });
            if parent_in_trouble {
                for &m in &members {
                    let p = &mut self.persons[m.0 as usize];
                    if p.relation == Relation::Child && p.age_on(as_of) < 18 {
                        p.assistance = AssistanceStatus::ChildInHardship;
                    }
                }
            }
        }
        // Poor households with a severely disabled member get the living subsidy.
        for &m in &members {
            let on_dibao = self.persons[m.0 as usize].assistance != AssistanceStatus::None;
            if let Some(d) = self.persons[m.0 as usize].disability.as_mut()
                && on_dibao
            {
                d.living_subsidy_monthly_fen = 100 * YUAN;
            }
        }

        if near_threshold {
            let threshold = self.config.threshold_fen(&county_code);
            let side = if rng.chance(0.5) {
                Side::Above
            } else {
                Side::Below
            };
            let delta = rng.range(1, 20 * YUAN);
            let per_capita = match side {
                Side::Above => threshold + delta,
                Side::Below => threshold - delta,
            };
            self.plant_income(&members, per_capita);
            cases.push(AwkwardCase::IncomeNearThreshold {
                threshold_fen: threshold,
                per_capita_fen: per_capita,
                side,
            });
        } else {
            // Recent deaths: 1% of households lose an adult member within the last 180 days.
            if rng.chance(0.01) {
                let adults: Vec<PersonId> = members
                    .iter()
                    .copied()
                    .filter(|&m| self.persons[m.0 as usize].age_on(as_of) >= 40)
                    .collect();
                if !adults.is_empty() {
                    let m = *rng.pick(&adults);
                    let date = as_of - time::Duration::days(rng.range(1, 180));
                    self.kill(m, date);
                    cases.push(AwkwardCase::RecentDeath { member: m, date });
                }
            }
            // Split households: 3% have a member living in another township.
            if members.len() > 1 && rng.chance(0.03) {
                let m = members[1 + rng.below(members.len() as u64 - 1) as usize];
                let mut other = rng.below(divisions.townships.len() as u64) as usize;
                if other == township {
                    other = (other + 1) % divisions.townships.len();
                }
                self.persons[m.0 as usize].township = other;
                cases.push(AwkwardCase::SplitAcrossTownships {
                    member: m,
                    township: divisions.townships[other].code.clone(),
                });
            }
            // Data gaps: each member is unknown to each department with probability 1.5%.
            for &m in &members {
                for (i, dept) in Department::ALL.iter().enumerate() {
                    let p = &mut self.persons[m.0 as usize];
                    if p.unknown_mask & (1 << i) == 0 && rng.chance(0.015) {
                        p.unknown_mask |= 1 << i;
                        cases.push(AwkwardCase::UnknownToDepartment {
                            member: m,
                            department: *dept,
                        });
                    }
                }
            }
        }

        // Resident IDs last: region = the county of birth registration (the household's county).
        let county_idx = divisions.townships[township].county;
        for i in first..self.persons.len() as u32 {
            let rid = self.resident_id(county_idx, i);
            self.by_resident_id
                .insert(rid.as_str().to_owned(), PersonId(i));
            self.persons[i as usize].resident_id = rid;
        }

        self.households.push(Household {
            id,
            township,
            members,
            cases,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn person(
        &self,
        id: PersonId,
        household: HouseholdId,
        township: usize,
        draft: &Draft,
        surname: &str,
        class: Class,
        rng: &mut SimRng,
    ) -> Person {
        let as_of = self.config.as_of;
        let age = draft.age;
        // Birth: `age` years and 0..364 days before the reference date.
        let birth = Date::from_julian_day(
            as_of.to_julian_day() - age * 365 - (age / 4) - rng.range(1, 364) as i32,
        )
        .unwrap_or(as_of);
        let mut name = String::with_capacity(9);
        name.push_str(surname);
        name.push_str(rng.pick::<&str>(GIVEN));
        if rng.chance(0.7) {
            name.push_str(rng.pick::<&str>(GIVEN));
        }
        let retire_age = if draft.sex == Sex::Male { 60 } else { 55 };

        // --- labor (人社)
        let mut labor = Labor {
            employment: Employment::NotInLabourForce,
            monthly_wages_fen: [0; 12],
            pension_monthly_fen: 0,
            unemployment_benefit_monthly_fen: 0,
            insured_months_12m: 0,
            contributions_12m_fen: 0,
        };
        let mut education = None;
        if (3..=17).contains(&age) || (18..=22).contains(&age) && rng.chance(0.4) {
            labor.employment = if age >= 16 {
                Employment::Student
            } else {
                Employment::NotInLabourForce
            };
            let stage = match age {
                3..=5 => Stage::Preschool,
                6..=11 => Stage::Primary,
                12..=14 => Stage::JuniorSecondary,
                15..=17 if rng.chance(0.3) => Stage::SecondaryVocational,
                15..=17 => Stage::SeniorSecondary,
                _ if rng.chance(0.4) => Stage::HigherVocational,
                _ => Stage::Undergraduate,
            };
            let annual_fees_fen = match stage {
                Stage::Primary | Stage::JuniorSecondary => 0,
                Stage::Preschool => rng.range(1_500, 6_000) * YUAN,
                Stage::SeniorSecondary | Stage::SecondaryVocational => rng.range(800, 3_000) * YUAN,
                Stage::HigherVocational | Stage::Undergraduate => rng.range(4_000, 8_000) * YUAN,
            };
            let aid_12m_fen = if class == Class::Poor || rng.chance(0.05) {
                rng.range(500, 3_000) * YUAN
            } else {
                0
            };
            education = Some(Enrolment {
                stage,
                annual_fees_fen,
                aid_12m_fen,
            });
        } else if age >= retire_age {
            labor.employment = Employment::Retired;
            labor.pension_monthly_fen = match class {
                // 城乡居民基础养老金 vs 职工养老金
                Class::Poor => rng.range(150, 300) * YUAN,
                Class::LowIncome => rng.range(200, 1_500) * YUAN,
                Class::Ordinary => rng.range(1_800, 5_000) * YUAN,
            };
        } else if age >= 16 {
            let (employed_p, lo, hi) = match class {
                Class::Poor => (0.35, 300, 1_200),
                Class::LowIncome => (0.6, 1_200, 2_800),
                Class::Ordinary => (0.85, 2_800, 14_000),
            };
            if rng.chance(employed_p) {
                let base = rng.range(lo, hi) * YUAN;
                let flexible = class != Class::Ordinary && rng.chance(0.4);
                labor.employment = if flexible {
                    Employment::Flexible
                } else {
                    Employment::Employed
                };
                for w in labor.monthly_wages_fen.iter_mut() {
                    *w = if flexible && rng.chance(0.25) {
                        0
                    } else {
                        base + rng.range(-(base / 10), base / 10)
                    };
                }
                if !flexible {
                    labor.insured_months_12m = 12;
                    // 8% pension + 2% medical + 0.5% unemployment of wages.
                    labor.contributions_12m_fen = labor.wages_12m_fen() * 105 / 1000;
                }
            } else if rng.chance(0.3) {
                labor.employment = Employment::Unemployed;
                if class != Class::Poor || rng.chance(0.5) {
                    labor.unemployment_benefit_monthly_fen = rng.range(1_400, 1_700) * YUAN;
                }
            }
        }

        // --- health (卫健/医保)
        let serious = rng.chance(if age >= 50 { 0.04 } else { 0.01 });
        let chronic = rng.chance(if age >= 55 { 0.3 } else { 0.04 });
        let medical_total_fen = if serious {
            rng.range(30_000, 300_000) * YUAN
        } else if chronic {
            rng.range(1_000, 12_000) * YUAN
        } else if rng.chance(0.6) {
            rng.range(50, 3_000) * YUAN
        } else {
            0
        };
        let reimbursed_pct = rng.range(45, 75);
        let medical_reimbursed_fen = medical_total_fen * reimbursed_pct / 100;
        let hospital_stays_12m = if serious {
            rng.range(1, 6) as u32
        } else if chronic && rng.chance(0.3) {
            1
        } else {
            0
        };
        let health = Health {
            medical_total_fen,
            medical_reimbursed_fen,
            medical_out_of_pocket_fen: medical_total_fen - medical_reimbursed_fen,
            serious_illness: serious.then(|| *rng.pick(SERIOUS)),
            chronic_illness: chronic.then(|| *rng.pick(CHRONIC)),
            hospital_stays_12m,
            hospital_days_12m: hospital_stays_12m * rng.range(3, 20) as u32,
        };

        // --- disability (残联)
        let disability = rng.chance(if age >= 60 { 0.06 } else { 0.02 }).then(|| {
            let category = *rng.pick(&[
                DisabilityCategory::Visual,
                DisabilityCategory::Hearing,
                DisabilityCategory::Speech,
                DisabilityCategory::Physical,
                DisabilityCategory::Physical,
                DisabilityCategory::Intellectual,
                DisabilityCategory::Mental,
                DisabilityCategory::Multiple,
            ]);
            let grade = rng.range(1, 4) as u8;
            Disability {
                category,
                grade,
                living_subsidy_monthly_fen: 0,
                care_subsidy_monthly_fen: if grade <= 2 { 100 * YUAN } else { 0 },
            }
        });

        // --- housing (住建)
        let adult_owner = matches!(draft.relation, Relation::Applicant | Relation::Spouse);
        let properties = if !adult_owner {
            u32::from(draft.relation == Relation::Parent && rng.chance(0.3))
        } else {
            match class {
                Class::Poor => u32::from(rng.chance(0.3)),
                Class::LowIncome => rng.range(0, 1) as u32,
                Class::Ordinary => rng.weighted(&[15, 60, 20, 5]) as u32,
            }
        };
        // 45.00–160.99 m² per property, in dm² (0.01 m²).
        let floor_area_dm2 = (0..properties)
            .map(|_| rng.range(45, 160) * 100 + rng.range(0, 99))
            .sum();
        let formal = labor.employment == Employment::Employed;
        let housing = Housing {
            properties,
            floor_area_dm2,
            public_rental: properties == 0 && class != Class::Ordinary && rng.chance(0.15),
            provident_fund_balance_fen: if formal && rng.chance(0.6) {
                rng.range(2_000, 120_000) * YUAN
            } else {
                0
            },
            provident_fund_monthly_fen: 0,
        };
        let mut housing = housing;
        if housing.provident_fund_balance_fen > 0 {
            housing.provident_fund_monthly_fen = labor.monthly_wages_fen[11] * 24 / 100;
        }

        // --- justice (司法)
        let status = if (18..70).contains(&age) {
            match rng.weighted(&[992, 3, 5]) {
                1 => CorrectionalStatus::Imprisoned,
                2 => CorrectionalStatus::CommunityCorrection,
                _ => CorrectionalStatus::None,
            }
        } else {
            CorrectionalStatus::None
        };
        if status == CorrectionalStatus::Imprisoned {
            // Wages stop and a pension is suspended while serving a sentence.
            labor.employment = Employment::NotInLabourForce;
            labor.pension_monthly_fen = 0;
            labor.unemployment_benefit_monthly_fen = 0;
            labor.monthly_wages_fen = [0; 12];
            labor.insured_months_12m = 0;
            labor.contributions_12m_fen = 0;
        }
        let justice = Justice {
            status,
            legal_aid_12m: age >= 18 && rng.chance(if class == Class::Poor { 0.03 } else { 0.005 }),
        };

        // Structural unknowns: the labor bureau has no record of children, the education bureau
        // none of people outside the school ages who are not enrolled.
        let mut unknown_mask = 0u8;
        if age < 16 {
            unknown_mask |= dept_bit(Department::Labor);
        }
        if education.is_none() && !(3..=30).contains(&age) {
            unknown_mask |= dept_bit(Department::Education);
        }

        Person {
            id,
            resident_id: placeholder_id(),
            name,
            sex: draft.sex,
            birth,
            household,
            relation: draft.relation,
            township,
            death: None,
            marital: MaritalStatus::Unmarried,
            assistance: AssistanceStatus::None,
            labor,
            health,
            education,
            housing,
            justice,
            disability,
            unknown_mask,
        }
    }

    /// Give a near-threshold household constant wages summing to `per_capita × members`, and clear
    /// everything else that some income definition might count.
    fn plant_income(&mut self, members: &[PersonId], per_capita: i64) {
        let total = per_capita * members.len() as i64;
        let earners: Vec<PersonId> = members
            .iter()
            .copied()
            .filter(|&m| {
                let p = &self.persons[m.0 as usize];
                matches!(p.relation, Relation::Applicant | Relation::Spouse)
            })
            .collect();
        for &m in members {
            let p = &mut self.persons[m.0 as usize];
            p.labor.pension_monthly_fen = 0;
            p.labor.unemployment_benefit_monthly_fen = 0;
            p.labor.monthly_wages_fen = [0; 12];
            // No disability subsidies either (some income definitions count them).
            p.disability = None;
            if p.justice.status == CorrectionalStatus::Imprisoned {
                p.justice.status = CorrectionalStatus::None;
            }
        }
        let n = earners.len() as i64;
        for (i, &m) in earners.iter().enumerate() {
            // The first earner takes the remainder so the shares add up exactly.
            let share = total / n + if i == 0 { total % n } else { 0 };
            let p = &mut self.persons[m.0 as usize];
            p.labor.employment = Employment::Employed;
            p.labor.monthly_wages_fen = [share; 12];
            // No personal contributions either: income definitions that deduct them (the 低保 rule
            // does) must still give exactly `per_capita`.
            p.labor.insured_months_12m = 0;
            p.labor.contributions_12m_fen = 0;
        }
    }

    /// Register a death: the records of other departments stop at the death month.
    fn kill(&mut self, m: PersonId, date: Date) {
        let months = {
            let mut out = [(0, Month::January); 12];
            let (mut y, mut mo) = (self.config.as_of.year(), self.config.as_of.month());
            for slot in out.iter_mut().rev() {
                mo = mo.previous();
                if mo == Month::December {
                    y -= 1;
                }
                *slot = (y, mo);
            }
            out
        };
        let p = &mut self.persons[m.0 as usize];
        p.death = Some(date);
        for (i, (y, mo)) in months.iter().enumerate() {
            if (*y, *mo as u8) > (date.year(), date.month() as u8) {
                p.labor.monthly_wages_fen[i] = 0;
            }
        }
        p.labor.pension_monthly_fen = 0;
        p.labor.unemployment_benefit_monthly_fen = 0;
        if p.labor.employment != Employment::Retired {
            p.labor.employment = Employment::NotInLabourForce;
        }
        p.justice.status = CorrectionalStatus::None;
    }

    /// Allocate a unique resident ID for person `i` born in county `county_idx`.
    fn resident_id(&mut self, county_idx: usize, i: u32) -> ResidentId {
        let divisions = Divisions::jining();
        let region = &divisions.counties[county_idx].code;
        let p = &self.persons[i as usize];
        let (mut birth, male) = (p.birth, p.sex == Sex::Male);
        loop {
            let key = (county_idx, birth.to_julian_day(), male);
            let slot = self.seq.entry(key).or_insert(0);
            if *slot < 499 {
                // 顺序码: odd for men, even for women; 001..999.
                let seq = 2 * *slot + if male { 1 } else { 2 };
                *slot += 1;
                // Region is a real Jining county code and birth lies within the last 100 years,
                // so every rule of `from_parts` holds; the fallback only guards a build defect.
                if let Ok(id) = ResidentId::from_parts(region.as_str(), birth, seq) {
                    self.persons[i as usize].birth = birth;
                    return id;
                }
            }
            birth = birth.previous_day().unwrap_or(birth);
        }
    }
}

/// The household's composition: relations, sexes and ages.
fn compose(rng: &mut SimRng, near_threshold: bool) -> Vec<Draft> {
    let mut out = Vec::with_capacity(5);
    let sex = |rng: &mut SimRng| {
        if rng.chance(0.5) {
            Sex::Male
        } else {
            Sex::Female
        }
    };
    // single, couple, couple+children, couple+children+parents, single parent+children, elderly couple
    let kind = if near_threshold {
        1 + rng.below(2) as usize
    } else {
        rng.weighted(&[15, 20, 40, 15, 5, 5])
    };
    let applicant_age = match kind {
        5 => rng.range(65, 90) as i32,
        0 => rng.range(20, 85) as i32,
        3 => rng.range(30, 55) as i32,
        _ if near_threshold => rng.range(25, 50) as i32,
        _ => rng.range(22, 58) as i32,
    };
    let applicant_sex = sex(rng);
    out.push(Draft {
        relation: Relation::Applicant,
        sex: applicant_sex,
        age: applicant_age,
    });
    if matches!(kind, 1..=3 | 5) {
        let other = if applicant_sex == Sex::Male {
            Sex::Female
        } else {
            Sex::Male
        };
        let spouse_age = (applicant_age + rng.range(-5, 5) as i32).clamp(20, 95);
        let spouse_age = if near_threshold {
            spouse_age.min(54)
        } else {
            spouse_age
        };
        out.push(Draft {
            relation: Relation::Spouse,
            sex: other,
            age: spouse_age,
        });
    }
    if matches!(kind, 2..=4) || (near_threshold && rng.chance(0.5)) {
        let n = rng.weighted(&[0, 50, 40, 10]);
        for _ in 0..n.max(1) {
            let max_age = (applicant_age - 20).max(0);
            let age = rng.range(0, max_age.min(30) as i64) as i32;
            out.push(Draft {
                relation: Relation::Child,
                sex: sex(rng),
                age,
            });
        }
    }
    if kind == 3 {
        for _ in 0..rng.range(1, 2) {
            let age = (applicant_age + rng.range(22, 35) as i32).min(100);
            out.push(Draft {
                relation: Relation::Parent,
                sex: sex(rng),
                age,
            });
        }
    }
    out
}

fn age_between(birth: Date, on: Date) -> i32 {
    let mut age = on.year() - birth.year();
    if (on.month() as u8, on.day()) < (birth.month() as u8, birth.day()) {
        age -= 1;
    }
    age
}

/// A stand-in replaced before the person is stored (see `Generator::resident_id`).
fn placeholder_id() -> ResidentId {
    static PLACEHOLDER: std::sync::OnceLock<ResidentId> = std::sync::OnceLock::new();
    PLACEHOLDER
        .get_or_init(|| {
            ResidentId::from_parts("370811", time::macros::date!(1970 - 01 - 01), 1)
                .expect("constant parts are valid")
        })
        .clone()
}
