//! 事实目录: the fact catalogue — every fact kind a partner department can answer, with its value
//! type, unit, reference period and how long an answer stays valid.
//!
//! Invariants:
//! - A [`FactKind`]'s wire name `<department>.<fact>` (e.g. `labor.monthly_wages`) is stable
//!   forever. The built-in catalogue (the `catalogue!` table below) is fixed: a new built-in fact is
//!   a new entry, never a renamed one, and registering a built-in's name with another spec is
//!   refused. A department of `policies/departments.toml` declares its own kinds as data
//!   ([`FactDecl`], [`FactKind::register`]).
//! - The registry only grows (a kind once registered stays valid in this process); deserializing a
//!   fact kind accepts registered kinds only, so a caller cannot make it grow.
//! - Money is always an integer number of fen (分, 1/100 yuan) in an `i64`. Areas are integer
//!   square decimetres (1 dm² = 0.01 m²). No floating point anywhere in the catalogue or on the wire.
//! - A [`FactValue`] is checked against its kind's [`FactSpec`] ([`FactSpec::check_value`]) before
//!   anyone uses it: right type, a code from the allowed set, no negative amounts.

use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use time::{Date, Month};

use crate::Department;
use crate::wire::YearMonth;

/// The type of a fact's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// true / false
    Bool,
    /// a non-negative whole number
    Count,
    /// an amount of money in fen (分)
    MoneyFen,
    /// an area in square decimetres (0.01 m²)
    AreaDm2,
    /// a number of days
    Days,
    /// one code from the fact's allowed set
    Code,
    /// a date, or null when there is none (e.g. no death registered)
    OptionalDate,
    /// one amount in fen per calendar month, for the months of the reference period
    MonthlyFen,
    /// 行政区划代码: a county (6 digits) or township (9 digits) division code
    Division,
}

/// The unit a value is expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// no unit (booleans, codes, dates)
    None,
    /// 分 (total over the reference period)
    Fen,
    /// 分/月
    FenPerMonth,
    /// 分/学年
    FenPerAcademicYear,
    /// 平方分米 (0.01 m²)
    Dm2,
    /// 个/次: a count
    Count,
    /// 天
    Days,
}

/// How the reference period of a fact is derived from the query's `as_of` date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    /// the state on the `as_of` date (from = to = as_of)
    AsOf,
    /// the 12 complete calendar months before the month of `as_of`
    #[serde(rename = "trailing_12_months")]
    Trailing12Months,
    /// the calendar month containing `as_of`, up to `as_of` (a monthly amount currently paid)
    CurrentMonth,
    /// the academic year (1 September – 31 August) containing `as_of`
    AcademicYear,
}

/// 参考期: the period a fact describes, inclusive on both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferencePeriod {
    #[serde(with = "crate::wire::date")]
    #[schemars(schema_with = "crate::wire::date_schema")]
    pub from: Date,
    #[serde(with = "crate::wire::date")]
    #[schemars(schema_with = "crate::wire::date_schema")]
    pub to: Date,
}

impl PeriodKind {
    /// The reference period for a query made "as of" `as_of`.
    pub fn period_for(self, as_of: Date) -> ReferencePeriod {
        match self {
            PeriodKind::AsOf => ReferencePeriod {
                from: as_of,
                to: as_of,
            },
            PeriodKind::Trailing12Months => {
                let last = YearMonth::of(as_of).previous();
                let mut first = last;
                for _ in 0..11 {
                    first = first.previous();
                }
                ReferencePeriod {
                    from: first.first_day(),
                    to: last.last_day(),
                }
            }
            PeriodKind::CurrentMonth => ReferencePeriod {
                from: YearMonth::of(as_of).first_day(),
                to: as_of,
            },
            PeriodKind::AcademicYear => {
                let start_year = if as_of.month() as u8 >= Month::September as u8 {
                    as_of.year()
                } else {
                    as_of.year() - 1
                };
                ReferencePeriod {
                    from: Date::from_calendar_date(start_year, Month::September, 1)
                        .unwrap_or(as_of),
                    to: Date::from_calendar_date(start_year + 1, Month::August, 31)
                        .unwrap_or(as_of),
                }
            }
        }
    }
}

/// The typed value of one fact. On the wire: `{"type": "money_fen", "value": 123456}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum FactValue {
    Bool(bool),
    Count(u32),
    /// 分: integer fen
    MoneyFen(i64),
    /// 平方分米: integer square decimetres
    AreaDm2(i64),
    Days(u32),
    Code(String),
    OptionalDate(
        #[serde(with = "crate::wire::optional_date")]
        #[schemars(schema_with = "crate::wire::optional_date_schema")]
        Option<Date>,
    ),
    MonthlyFen(Vec<MonthAmount>),
    /// 行政区划代码: a 6- or 9-digit division code (e.g. the registered township)
    Division(crate::DivisionCode),
}

/// One month's amount in a [`FactValue::MonthlyFen`] series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonthAmount {
    pub month: YearMonth,
    /// 分
    pub fen: i64,
}

impl FactValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            FactValue::Bool(_) => ValueType::Bool,
            FactValue::Count(_) => ValueType::Count,
            FactValue::MoneyFen(_) => ValueType::MoneyFen,
            FactValue::AreaDm2(_) => ValueType::AreaDm2,
            FactValue::Days(_) => ValueType::Days,
            FactValue::Code(_) => ValueType::Code,
            FactValue::OptionalDate(_) => ValueType::OptionalDate,
            FactValue::MonthlyFen(_) => ValueType::MonthlyFen,
            FactValue::Division(_) => ValueType::Division,
        }
    }
}

/// Everything the catalogue says about one fact kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactSpec {
    pub kind: FactKind,
    /// The department that answers it.
    pub department: Department,
    pub value_type: ValueType,
    pub unit: Unit,
    pub period: PeriodKind,
    /// How many days an answer may be reused (once-only) before the department must be asked again.
    pub validity_days: u32,
    pub name_zh: &'static str,
    pub name_en: &'static str,
    /// For [`ValueType::Code`]: the allowed codes. Empty otherwise.
    pub codes: &'static [&'static str],
}

/// A fact kind's wire name: `<department code>.<fact>`, the fact part 1 to 64 lower-case letters,
/// digits and underscores starting with a letter (`labor.monthly_wages`).
pub const FACT_KIND_PATTERN: &str = r"^[a-z][a-z_]{1,31}\.[a-z][a-z0-9_]{0,63}$";

/// 事实种类: one kind of fact a department can answer. Wire name `<department>.<fact>`.
///
/// A `Copy` handle on the kind's interned wire name, designed like [`Department`]: the built-in
/// catalogue's kinds are associated constants (`FactKind::MonthlyWages`, usable as `match`
/// patterns) and always registered; a department declared in `policies/departments.toml` adds its
/// own with [`FactKind::register`]. Equality and hashing are by wire name; order puts the built-in
/// catalogue first, in catalogue order, then the others by wire name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FactKind(&'static str);

/// A fact kind declared outside the built-in catalogue (owned text, checked by
/// [`FactKind::register`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactDecl {
    /// The wire name, `<department>.<fact>`; the department (its code prefix) answers it.
    pub code: String,
    pub value_type: ValueType,
    pub unit: Unit,
    pub period: PeriodKind,
    pub validity_days: u32,
    pub name_zh: String,
    pub name_en: String,
    /// The allowed codes: required (non-empty) for [`ValueType::Code`], empty otherwise.
    pub codes: Vec<String>,
}

/// Why a fact kind cannot be registered; each variant names the declaration's field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactKindError {
    #[error(
        "code: {0:?} must be `<department>.<fact>`: a department code, a dot and 1 to 64 lower-case letters, digits and underscores starting with a letter"
    )]
    BadCode(String),
    #[error("code: department `{0}` is not registered")]
    UnknownDepartment(String),
    #[error("name_zh, name_en: must be 1 to 64 characters, no control characters")]
    BadName,
    #[error("validity_days: must be 1 to 3650")]
    BadValidity,
    #[error(
        "codes: a `code` fact lists 1 to 64 distinct codes (lower-case letters, digits, underscores); other value types list none"
    )]
    BadCodes,
    #[error("unit: {unit:?} does not fit value type {value_type:?}")]
    UnitMismatch { value_type: ValueType, unit: Unit },
    #[error("code: built-in fact kind `{0}` is defined by the catalogue and cannot be redefined")]
    BuiltInRedefined(&'static str),
}

/// Fact kinds registered besides the built-in catalogue (from `policies/departments.toml`).
static ADDED: RwLock<Vec<&'static FactSpec>> = RwLock::new(Vec::new());

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn text_ok(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= 64 && !s.chars().any(char::is_control)
}

fn fact_part_ok(fact: &str) -> bool {
    let b = fact.as_bytes();
    (1..=64).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// `true` for a wire name of [`FACT_KIND_PATTERN`].
pub fn fact_kind_code_ok(code: &str) -> bool {
    code.split_once('.')
        .is_some_and(|(d, f)| crate::vocab::department_code_ok(d) && fact_part_ok(f))
}

/// Which units a value type may be expressed in.
fn unit_fits(value_type: ValueType, unit: Unit) -> bool {
    use {Unit as U, ValueType as V};
    match value_type {
        V::Bool | V::Code | V::OptionalDate | V::Division => unit == U::None,
        V::Count => unit == U::Count,
        V::Days => unit == U::Days,
        V::AreaDm2 => unit == U::Dm2,
        V::MoneyFen => matches!(unit, U::Fen | U::FenPerMonth | U::FenPerAcademicYear),
        V::MonthlyFen => unit == U::FenPerMonth,
    }
}

impl FactDecl {
    /// The department code, the wire name's prefix.
    pub fn department_code(&self) -> &str {
        self.code.split_once('.').map_or("", |(d, _)| d)
    }

    /// Check the declaration on its own (wire name, names, validity, codes, unit, not a
    /// redefinition of a built-in); whether its department is registered is
    /// [`FactKind::register`]'s to check.
    pub fn check(&self) -> Result<(), FactKindError> {
        if !fact_kind_code_ok(&self.code) {
            return Err(FactKindError::BadCode(self.code.clone()));
        }
        if let Some(s) = BUILT_IN_SPECS.iter().find(|s| s.kind.0 == self.code)
            && !self.matches(s)
        {
            return Err(FactKindError::BuiltInRedefined(s.kind.0));
        }
        if !text_ok(&self.name_zh) || !text_ok(&self.name_en) {
            return Err(FactKindError::BadName);
        }
        if !(1..=3650).contains(&self.validity_days) {
            return Err(FactKindError::BadValidity);
        }
        let is_code = self.value_type == ValueType::Code;
        let codes_ok = if is_code {
            (1..=64).contains(&self.codes.len())
                && self.codes.iter().enumerate().all(|(i, c)| {
                    !c.is_empty()
                        && c.len() <= 48
                        && c.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                        && !self.codes[..i].contains(c)
                })
        } else {
            self.codes.is_empty()
        };
        if !codes_ok {
            return Err(FactKindError::BadCodes);
        }
        if !unit_fits(self.value_type, self.unit) {
            return Err(FactKindError::UnitMismatch {
                value_type: self.value_type,
                unit: self.unit,
            });
        }
        Ok(())
    }

    fn matches(&self, spec: &FactSpec) -> bool {
        spec.department.code() == self.department_code()
            && spec.value_type == self.value_type
            && spec.unit == self.unit
            && spec.period == self.period
            && spec.validity_days == self.validity_days
            && spec.name_zh == self.name_zh
            && spec.name_en == self.name_en
            && spec.codes.len() == self.codes.len()
            && spec.codes.iter().zip(&self.codes).all(|(a, b)| a == b)
    }
}

impl FactKind {
    /// The stable wire name, e.g. `labor.monthly_wages`.
    pub fn code(self) -> &'static str {
        self.0
    }

    /// The catalogue entry for this kind.
    pub fn spec(self) -> &'static FactSpec {
        if let Some(s) = BUILT_IN_SPECS
            .iter()
            .find(|s| std::ptr::eq(s.kind.0, self.0) || s.kind.0 == self.0)
        {
            return s;
        }
        let added = ADDED.read().unwrap_or_else(|p| p.into_inner());
        // A handle is made only from a built-in constant or a registered kind, and the registry
        // only grows: the lookup always finds it.
        added
            .iter()
            .find(|s| s.kind.0 == self.0)
            .copied()
            .expect("a FactKind handle is always registered")
    }

    /// `true` for a kind of the built-in catalogue.
    pub fn is_built_in(self) -> bool {
        BUILT_IN_SPECS.iter().any(|s| s.kind.0 == self.0)
    }

    /// A registered fact kind (built-in or declared), by wire name.
    pub fn from_code(code: &str) -> Option<FactKind> {
        if let Some(s) = BUILT_IN_SPECS.iter().find(|s| s.kind.0 == code) {
            return Some(s.kind);
        }
        let added = ADDED.read().unwrap_or_else(|p| p.into_inner());
        added.iter().find(|s| s.kind.0 == code).map(|s| s.kind)
    }

    /// Every registered fact kind: the built-in catalogue in its order, then the declared ones
    /// by wire name.
    pub fn all() -> Vec<FactKind> {
        let mut all: Vec<FactKind> = FactKind::BUILT_IN.to_vec();
        let added = ADDED.read().unwrap_or_else(|p| p.into_inner());
        let mut more: Vec<FactKind> = added.iter().map(|s| s.kind).collect();
        more.sort();
        all.extend(more);
        all
    }

    /// Register a declared fact kind (idempotent). A built-in wire name is refused unless the
    /// declaration is exactly the catalogue's; a declared kind's spec may change on a reload,
    /// its wire name stays valid for the life of the process.
    pub fn register(decl: &FactDecl) -> Result<FactKind, FactKindError> {
        decl.check()?;
        if let Some(s) = BUILT_IN_SPECS.iter().find(|s| s.kind.0 == decl.code) {
            return Ok(s.kind);
        }
        let department = Department::from_code(decl.department_code())
            .ok_or_else(|| FactKindError::UnknownDepartment(decl.department_code().to_owned()))?;
        let mut added = ADDED.write().unwrap_or_else(|p| p.into_inner());
        let position = added.iter().position(|s| s.kind.0 == decl.code);
        if let Some(i) = position
            && decl.matches(added[i])
        {
            return Ok(added[i].kind);
        }
        let kind = match position {
            Some(i) => added[i].kind,
            None => FactKind(leak(&decl.code)),
        };
        let codes: Vec<&'static str> = decl.codes.iter().map(|c| leak(c)).collect();
        let spec: &'static FactSpec = Box::leak(Box::new(FactSpec {
            kind,
            department,
            value_type: decl.value_type,
            unit: decl.unit,
            period: decl.period,
            validity_days: decl.validity_days,
            name_zh: leak(&decl.name_zh),
            name_en: leak(&decl.name_en),
            codes: Box::leak(codes.into_boxed_slice()),
        }));
        match position {
            Some(i) => added[i] = spec,
            None => added.push(spec),
        }
        Ok(kind)
    }

    /// Position in the built-in catalogue (its length for a declared kind), for ordering.
    fn rank(self) -> usize {
        BUILT_IN_SPECS
            .iter()
            .position(|s| s.kind.0 == self.0)
            .unwrap_or(BUILT_IN_SPECS.len())
    }
}

impl PartialOrd for FactKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FactKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.0 == other.0 {
            return std::cmp::Ordering::Equal;
        }
        (self.rank(), self.0).cmp(&(other.rank(), other.0))
    }
}

impl std::fmt::Debug for FactKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FactKind({})", self.0)
    }
}

impl Serialize for FactKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for FactKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FactKind;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a fact kind of the catalogue or of policies/departments.toml")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FactKind, E> {
                FactKind::from_code(v)
                    .ok_or_else(|| E::custom(format_args!("unknown fact kind `{v}`")))
            }
        }
        d.deserialize_str(V)
    }
}

impl schemars::JsonSchema for FactKind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FactKind".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let built_in: Vec<serde_json::Value> = BUILT_IN_SPECS
            .iter()
            .map(|s| {
                serde_json::json!({
                    "const": s.kind.0,
                    "description": format!("{}: {}", s.name_zh, s.name_en),
                    "type": "string",
                })
            })
            .collect();
        schemars::json_schema!({
            "description": "事实种类: one kind of fact a department can answer. Wire name `<department>.<fact>`: one of the built-in catalogue, or one a department declares in policies/departments.toml.",
            "anyOf": [
                { "oneOf": built_in },
                {
                    "type": "string",
                    "description": "a fact kind declared in policies/departments.toml",
                    "pattern": FACT_KIND_PATTERN,
                }
            ]
        })
    }
}

macro_rules! catalogue {
    ($(
        $variant:ident = $wire:literal, $dept:ident, $vt:ident, $unit:ident, $period:ident,
        $valid:literal, $zh:literal, $en:literal, [$($code:literal),*];
    )*) => {
        #[allow(non_upper_case_globals)]
        impl FactKind {
            $(
                #[doc = concat!($zh, ": ", $en)]
                pub const $variant: FactKind = FactKind($wire);
            )*

            /// The built-in catalogue, in catalogue order. Every registered kind: [`FactKind::all`].
            pub const BUILT_IN: &'static [FactKind] = &[$(FactKind::$variant),*];
        }

        /// The built-in catalogue's entries, in catalogue order.
        static BUILT_IN_SPECS: &[FactSpec] = &[$(
            FactSpec {
                kind: FactKind::$variant,
                department: Department::$dept,
                value_type: ValueType::$vt,
                unit: Unit::$unit,
                period: PeriodKind::$period,
                validity_days: $valid,
                name_zh: $zh,
                name_en: $en,
                codes: &[$($code),*],
            },
        )*];
    };
}

catalogue! {
    // 民政 civil affairs
    MaritalStatus = "civil_affairs.marital_status", CivilAffairs, Code, None, AsOf, 90,
        "婚姻状况", "marital status", ["unmarried", "married", "divorced", "widowed"];
    AssistanceStatus = "civil_affairs.assistance_status", CivilAffairs, Code, None, AsOf, 30,
        "当前救助状态", "current assistance status",
        ["none", "dibao", "tekun", "orphan", "child_in_hardship"];
    DeathRegistration = "civil_affairs.death_registration", CivilAffairs, OptionalDate, None, AsOf, 7,
        "死亡登记(火化)日期", "registered date of death (null if none)", [];
    // Asked by the hub before any other department, to establish jurisdiction (never from the
    // caller's word); not part of any purpose profile.
    RegisteredDivision = "civil_affairs.registered_division", CivilAffairs, Division, None, AsOf, 7,
        "户籍登记地", "registered division (township of household registration)", [];
    // 卫健/医保 health and medical insurance
    MedicalExpensesTotal = "health.medical_expenses_total_12m", Health, MoneyFen, Fen,
        Trailing12Months, 30, "近12个月医疗费用总额", "medical expenses over the last 12 months", [];
    MedicalExpensesReimbursed = "health.medical_expenses_reimbursed_12m", Health, MoneyFen, Fen,
        Trailing12Months, 30, "近12个月医保报销金额", "medical expenses reimbursed over the last 12 months", [];
    MedicalExpensesOutOfPocket = "health.medical_expenses_out_of_pocket_12m", Health, MoneyFen, Fen,
        Trailing12Months, 30, "近12个月个人自付医疗费用", "out-of-pocket medical expenses over the last 12 months", [];
    SeriousIllness = "health.serious_illness", Health, Code, None, AsOf, 90,
        "重特大疾病/慢性病", "serious or chronic illness", ["none", "chronic", "serious"];
    HospitalStays = "health.hospital_stays_12m", Health, Count, Count, Trailing12Months, 30,
        "近12个月住院次数", "hospital stays over the last 12 months", [];
    InpatientDays = "health.inpatient_days_12m", Health, Days, Days, Trailing12Months, 30,
        "近12个月住院天数", "inpatient days over the last 12 months", [];
    // 教育 education
    Enrolment = "education.enrolment", Education, Code, None, AsOf, 90,
        "在学状态及学段", "enrolment and stage",
        ["not_enrolled", "preschool", "primary", "junior_secondary", "senior_secondary",
         "secondary_vocational", "higher_vocational", "undergraduate", "postgraduate"];
    TuitionFees = "education.fees", Education, MoneyFen, FenPerAcademicYear, AcademicYear, 180,
        "学费及住宿费", "tuition and boarding fees", [];
    EducationAidReceived = "education.aid_received", Education, MoneyFen, FenPerAcademicYear,
        AcademicYear, 90, "已获教育资助金额", "education aid received", [];
    // 住建 housing
    PropertiesOwned = "housing.properties_owned", Housing, Count, Count, AsOf, 30,
        "名下房产套数", "properties owned", [];
    FloorAreaOwned = "housing.floor_area_owned", Housing, AreaDm2, Dm2, AsOf, 30,
        "名下房产建筑面积", "floor area of properties owned", [];
    PublicRentalHousing = "housing.public_rental_housing", Housing, Bool, None, AsOf, 30,
        "承租公租房", "lives in public rental housing", [];
    ProvidentFundBalance = "housing.provident_fund_balance", Housing, MoneyFen, Fen, AsOf, 30,
        "住房公积金余额", "housing provident fund balance", [];
    ProvidentFundMonthlyContribution = "housing.provident_fund_monthly_contribution", Housing,
        MoneyFen, FenPerMonth, CurrentMonth, 30,
        "住房公积金月缴存额", "housing provident fund monthly contribution", [];
    // 人社 labor and social security
    EmploymentStatus = "labor.employment_status", Labor, Code, None, AsOf, 30,
        "就业状态", "employment status",
        ["employed", "self_employed", "registered_unemployed", "retired", "not_in_labor_force"];
    MonthlyWages = "labor.monthly_wages", Labor, MonthlyFen, FenPerMonth, Trailing12Months, 30,
        "近12个月工资收入", "monthly wages over the last 12 months", [];
    Pension = "labor.pension_monthly", Labor, MoneyFen, FenPerMonth, CurrentMonth, 30,
        "养老金月领取额", "monthly pension", [];
    UnemploymentBenefit = "labor.unemployment_benefit_monthly", Labor, MoneyFen, FenPerMonth,
        CurrentMonth, 30, "失业保险金月领取额", "monthly unemployment benefit", [];
    SocialInsuranceContributions = "labor.social_insurance_contributions_12m", Labor, MoneyFen, Fen,
        Trailing12Months, 30, "近12个月个人社会保险缴费", "personal social insurance contributions over the last 12 months", [];
    // 司法 justice
    CustodyStatus = "justice.custody_status", Justice, Code, None, AsOf, 30,
        "服刑/社区矫正状态", "imprisonment or community correction",
        ["none", "imprisoned", "community_correction"];
    LegalAid = "justice.legal_aid_12m", Justice, Bool, None, Trailing12Months, 90,
        "近12个月获得法律援助", "legal aid received in the last 12 months", [];
    // 残联 disabled persons' federation
    DisabilityCertificate = "disability.certificate", Disability, Bool, None, AsOf, 90,
        "持有残疾人证", "holds a disability certificate", [];
    DisabilityCategory = "disability.category", Disability, Code, None, AsOf, 90,
        "残疾类别", "disability category",
        ["none", "visual", "hearing", "speech", "physical", "intellectual", "mental", "multiple"];
    DisabilityGrade = "disability.grade", Disability, Code, None, AsOf, 90,
        "残疾等级", "disability grade (1 most severe)", ["none", "1", "2", "3", "4"];
    LivingSubsidy = "disability.living_subsidy_monthly", Disability, MoneyFen, FenPerMonth,
        CurrentMonth, 30, "困难残疾人生活补贴", "living subsidy for disabled people in hardship", [];
    CareSubsidy = "disability.care_subsidy_monthly", Disability, MoneyFen, FenPerMonth,
        CurrentMonth, 30, "重度残疾人护理补贴", "care subsidy for severely disabled people", [];
}

/// Why a value does not fit its fact kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactValueError {
    #[error("value type is {found:?}, the catalogue says {expected:?}")]
    WrongType {
        found: ValueType,
        expected: ValueType,
    },
    #[error("code {0:?} is not one of the allowed codes")]
    UnknownCode(String),
    #[error("amount must not be negative")]
    Negative,
    #[error("month {0} is outside the reference period")]
    MonthOutsidePeriod(YearMonth),
    #[error("month {0} appears twice")]
    DuplicateMonth(YearMonth),
}

impl FactSpec {
    /// Check a value against this kind: type, allowed codes, sign, months inside `period`.
    pub fn check_value(
        &self,
        value: &FactValue,
        period: &ReferencePeriod,
    ) -> Result<(), FactValueError> {
        if value.value_type() != self.value_type {
            return Err(FactValueError::WrongType {
                found: value.value_type(),
                expected: self.value_type,
            });
        }
        match value {
            FactValue::Code(c) if !self.codes.contains(&c.as_str()) => {
                Err(FactValueError::UnknownCode(c.clone()))
            }
            FactValue::MoneyFen(v) | FactValue::AreaDm2(v) if *v < 0 => {
                Err(FactValueError::Negative)
            }
            FactValue::MonthlyFen(months) => {
                let mut seen: Vec<YearMonth> = Vec::with_capacity(months.len());
                for m in months {
                    if m.fen < 0 {
                        return Err(FactValueError::Negative);
                    }
                    if m.month.last_day() < period.from || m.month.first_day() > period.to {
                        return Err(FactValueError::MonthOutsidePeriod(m.month));
                    }
                    if seen.contains(&m.month) {
                        return Err(FactValueError::DuplicateMonth(m.month));
                    }
                    seen.push(m.month);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl FactKind {
    pub fn department(self) -> Department {
        self.spec().department
    }

    /// The kinds one department answers, built-in catalogue order first.
    pub fn served_by(department: Department) -> impl Iterator<Item = FactKind> {
        FactKind::all()
            .into_iter()
            .filter(move |k| k.department() == department)
    }
}

impl std::fmt::Display for FactKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn wire_names_are_department_dot_fact_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for &k in FactKind::BUILT_IN {
            let (dept, fact) = k.code().split_once('.').expect("dot");
            assert_eq!(dept, k.department().code(), "{k}");
            assert!(
                !fact.is_empty()
                    && fact
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{k}"
            );
            assert!(seen.insert(k.code()), "duplicate {k}");
            assert_eq!(FactKind::from_code(k.code()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.code().into())
            );
            let spec = k.spec();
            assert_eq!(spec.kind, k);
            assert_eq!(
                spec.codes.is_empty(),
                spec.value_type != ValueType::Code,
                "{k}"
            );
            assert!(spec.validity_days > 0);
        }
    }

    #[test]
    fn every_department_serves_facts() {
        for d in Department::ALL {
            assert!(FactKind::served_by(d).count() >= 2, "{d}");
        }
        assert_eq!(FactKind::BUILT_IN.len(), 30);
    }

    fn decl(code: &str) -> FactDecl {
        FactDecl {
            code: code.into(),
            value_type: ValueType::MoneyFen,
            unit: Unit::Fen,
            period: PeriodKind::Trailing12Months,
            validity_days: 30,
            name_zh: "近12个月救助金额".into(),
            name_en: "relief received over the last 12 months".into(),
            codes: vec![],
        }
    }

    #[test]
    fn declared_kinds_register_and_the_registry_only_grows() {
        let d = Department::register("registry_test", "测试部门", "registry test").unwrap();
        let code = "registry_test.relief_received_12m";
        assert_eq!(FactKind::from_code(code), None);
        assert!(serde_json::from_str::<FactKind>(&format!("\"{code}\"")).is_err());
        let k = FactKind::register(&decl(code)).unwrap();
        assert_eq!(k.code(), code);
        assert_eq!(k.department(), d);
        assert!(!k.is_built_in());
        assert_eq!(k.spec().name_zh, "近12个月救助金额");
        assert_eq!(FactKind::from_code(code), Some(k));
        assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{code}\""));
        assert_eq!(
            serde_json::from_str::<FactKind>(&format!("\"{code}\"")).unwrap(),
            k
        );
        assert!(FactKind::served_by(d).any(|x| x == k));
        // Idempotent; a reload may rename it, the handle stays valid and sees the new spec.
        assert_eq!(FactKind::register(&decl(code)).unwrap(), k);
        let mut renamed = decl(code);
        renamed.name_zh = "近12个月受灾救助金额".into();
        assert_eq!(FactKind::register(&renamed).unwrap(), k);
        assert_eq!(k.spec().name_zh, "近12个月受灾救助金额");
        // The built-ins come first, in catalogue order; the declared kind after them.
        let all = FactKind::all();
        assert_eq!(&all[..FactKind::BUILT_IN.len()], FactKind::BUILT_IN);
        assert!(all[FactKind::BUILT_IN.len()..].contains(&k));
        assert!(FactKind::CareSubsidy < k && FactKind::MaritalStatus < FactKind::CareSubsidy);
    }

    #[test]
    fn built_in_kinds_cannot_be_redefined() {
        let spec = FactKind::Pension.spec();
        let mut same = decl("labor.pension_monthly");
        same.unit = spec.unit;
        same.period = spec.period;
        same.name_zh = spec.name_zh.into();
        same.name_en = spec.name_en.into();
        assert_eq!(FactKind::register(&same), Ok(FactKind::Pension));
        let mut other = same.clone();
        other.validity_days = 365;
        assert_eq!(
            FactKind::register(&other),
            Err(FactKindError::BuiltInRedefined("labor.pension_monthly"))
        );
        assert_eq!(FactKind::Pension.spec().validity_days, 30);
    }

    #[test]
    fn bad_declarations_name_the_field() {
        Department::register("registry_bad", "测试", "bad").unwrap();
        let check = |f: &dyn Fn(&mut FactDecl), field: &str| {
            let mut x = decl("registry_bad.amount");
            f(&mut x);
            let e = FactKind::register(&x).expect_err(field);
            assert!(e.to_string().starts_with(field), "{e} ∌ {field}");
            assert_eq!(FactKind::from_code(&x.code), None);
        };
        check(&|x| x.code = "registry_unknown.amount".into(), "code");
        check(&|x| x.code = "registry_bad.Amount".into(), "code");
        check(&|x| x.code = "registry_bad".into(), "code");
        check(&|x| x.name_zh = " ".into(), "name_zh");
        check(&|x| x.validity_days = 0, "validity_days");
        check(&|x| x.unit = Unit::Dm2, "unit");
        check(&|x| x.codes = vec!["a".into()], "codes");
        check(&|x| x.value_type = ValueType::Code, "codes");
        check(
            &|x| {
                x.value_type = ValueType::Code;
                x.unit = Unit::None;
                x.codes = vec!["a".into(), "a".into()];
            },
            "codes",
        );
    }

    #[test]
    fn unknown_kinds_are_refused_on_deserialize() {
        for bad in ["\"labor.monthly_salary\"", "\"MonthlyWages\"", "\"\"", "3"] {
            assert!(serde_json::from_str::<FactKind>(bad).is_err(), "{bad}");
        }
        let e = serde_json::from_str::<FactKind>("\"labor.monthly_salary\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown fact kind `labor.monthly_salary`"),
            "{e}"
        );
    }

    #[test]
    fn built_in_constants_are_match_patterns() {
        let describe = |k: FactKind| match k {
            FactKind::MonthlyWages => "wages",
            FactKind::Pension => "pension",
            _ => "other",
        };
        assert_eq!(
            describe(FactKind::from_code("labor.monthly_wages").unwrap()),
            "wages"
        );
        assert_eq!(describe(FactKind::Pension), "pension");
        assert_eq!(describe(FactKind::LegalAid), "other");
    }

    fn check_period(kind: PeriodKind, as_of: Date, expected: (Date, Date)) {
        let p = kind.period_for(as_of);
        assert_eq!((p.from, p.to), expected, "{kind:?} {as_of}");
    }

    #[test]
    fn reference_periods() {
        let d = date!(2026 - 11 - 29);
        check_period(PeriodKind::AsOf, d, (d, d));
        check_period(
            PeriodKind::Trailing12Months,
            d,
            (date!(2025 - 11 - 01), date!(2026 - 10 - 31)),
        );
        check_period(
            PeriodKind::Trailing12Months,
            date!(2026 - 01 - 15),
            (date!(2025 - 01 - 01), date!(2025 - 12 - 31)),
        );
        check_period(PeriodKind::CurrentMonth, d, (date!(2026 - 11 - 01), d));
        check_period(
            PeriodKind::AcademicYear,
            d,
            (date!(2026 - 09 - 01), date!(2027 - 08 - 31)),
        );
        check_period(
            PeriodKind::AcademicYear,
            date!(2026 - 08 - 31),
            (date!(2025 - 09 - 01), date!(2026 - 08 - 31)),
        );
    }

    fn check_value(kind: FactKind, value: FactValue, expected: Result<(), FactValueError>) {
        let period = kind.spec().period.period_for(date!(2026 - 11 - 29));
        assert_eq!(kind.spec().check_value(&value, &period), expected, "{kind}");
    }

    #[test]
    fn values_are_checked_against_the_catalogue() {
        use FactValue as V;
        let ym = |s: &str| YearMonth::parse(s).unwrap();
        check_value(FactKind::MaritalStatus, V::Code("married".into()), Ok(()));
        check_value(
            FactKind::MaritalStatus,
            V::Code("complicated".into()),
            Err(FactValueError::UnknownCode("complicated".into())),
        );
        check_value(
            FactKind::Pension,
            V::Count(3),
            Err(FactValueError::WrongType {
                found: ValueType::Count,
                expected: ValueType::MoneyFen,
            }),
        );
        check_value(
            FactKind::Pension,
            V::MoneyFen(-1),
            Err(FactValueError::Negative),
        );
        check_value(FactKind::Pension, V::MoneyFen(215_000), Ok(()));
        check_value(FactKind::DeathRegistration, V::OptionalDate(None), Ok(()));
        let wages = |months: &[(&str, i64)]| {
            V::MonthlyFen(
                months
                    .iter()
                    .map(|(m, fen)| MonthAmount {
                        month: ym(m),
                        fen: *fen,
                    })
                    .collect(),
            )
        };
        check_value(
            FactKind::MonthlyWages,
            wages(&[("2025-11", 300_000), ("2026-10", 310_000)]),
            Ok(()),
        );
        check_value(
            FactKind::MonthlyWages,
            wages(&[("2026-11", 300_000)]),
            Err(FactValueError::MonthOutsidePeriod(ym("2026-11"))),
        );
        check_value(
            FactKind::MonthlyWages,
            wages(&[("2026-01", 1), ("2026-01", 2)]),
            Err(FactValueError::DuplicateMonth(ym("2026-01"))),
        );
    }

    #[test]
    fn fact_values_have_a_tagged_wire_form() {
        let v = FactValue::OptionalDate(Some(date!(2026 - 10 - 02)));
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"type":"optional_date","value":"2026-10-02"}"#
        );
        let back: FactValue =
            serde_json::from_str(r#"{"type":"money_fen","value":123456}"#).unwrap();
        assert_eq!(back, FactValue::MoneyFen(123_456));
        assert!(serde_json::from_str::<FactValue>(r#"{"type":"money_fen","value":1.5}"#).is_err());
    }
}
