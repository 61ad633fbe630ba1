//! 核算: per-member and per-household figures from the facts of a report — monthly income per capita
//! over the reference period (what counts and what is deducted comes from the purpose profile),
//! assets, special situations — compared with the local standard of the household's county and year
//! (`policies/standards/`) and with what the applicant declared.
//!
//! The hub gives indications and the reasons for them; it never decides eligibility.
//!
//! Rules (documented here because caseworkers and auditors rely on them):
//! - A member with a registered date of death on or before the reference date (civil affairs'
//!   `death_registration`) is not counted: neither their income nor their assets nor the head count.
//! - A member's monthly amount of an income kind: a 12-month series or a 12-month total is divided
//!   by 12; a per-month amount is taken as is; a per-academic-year amount is divided by 12. Integer
//!   fen, rounded toward zero at each step: member = Σ counted − Σ deducted; household = Σ members;
//!   per capita = household ÷ members counted.
//! - A department that did not answer leaves the figures that need it uncomputed (with the reason in
//!   `gaps`), never computed from partial data. A member the department has no record of (查无记录)
//!   counts as having nothing there, and the report says so in `gaps`.
//! - Assets: properties and floor area (住建) and financial assets (here: the housing provident fund
//!   balance, the financial asset the connected departments report), summed over counted members;
//!   per-capita limits divide by the members counted.
//! - Declared amounts are compared with the verified ones with the county's tolerance
//!   (`max(percent% of verified, min_fen)`); counts must match exactly; floor area uses the percent
//!   with a floor of 1 m².
//! - Every figure is a [`Figure`] carrying the fact kinds it is computed from (a member's income and
//!   the household's: every kind of the income rule; an asset sum or per-capita value: its kind; a
//!   discrepancy's verified figure and tolerance: those of the figure compared). The aggregation is
//!   computed once, on the complete report, and stored; a caller's view withholds every figure one
//!   of whose sources the view does not show ([`Redact`], via `report::apply_raw_visibility`), and
//!   the texts that state a figure are rendered from it ([`standard_text`], [`discrepancy_text`]),
//!   so a withheld figure is stated by no text. Categorical indications stay.

use policies::{IncomeRule, LocalStandard};
use schemas::catalogue::{PeriodKind, Unit};
use schemas::{Department, FactKind, FactValue};
use serde::{Deserialize, Serialize};
use time::Date;

use super::report::{DepartmentReport, MemberReport, Redact, Visible};

/// What the applicant declared (申报), compared with the verified figures. All optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Declared {
    /// 申报家庭月收入: the household's total monthly income, fen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub household_monthly_income_fen: Option<i64>,
    /// 申报房产套数
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_owned: Option<u32>,
    /// 申报住房建筑面积合计, dm² (0.01 m²).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_area_dm2: Option<i64>,
    /// 申报金融资产合计, fen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_assets_fen: Option<i64>,
}

impl Declared {
    /// The first field that is out of range, with the rule.
    pub fn invalid_field(&self) -> Option<(&'static str, &'static str)> {
        const MAX: i64 = 1_000_000_000_000; // ten billion yuan: a typo, not a household
        let bad = |v: Option<i64>| v.is_some_and(|v| !(0..=MAX).contains(&v));
        if bad(self.household_monthly_income_fen) {
            return Some((
                "declared.household_monthly_income_fen",
                "must be 0 or more fen (and below 10^12)",
            ));
        }
        if bad(self.floor_area_dm2) {
            return Some((
                "declared.floor_area_dm2",
                "must be 0 or more dm² (and below 10^12)",
            ));
        }
        if bad(self.financial_assets_fen) {
            return Some((
                "declared.financial_assets_fen",
                "must be 0 or more fen (and below 10^12)",
            ));
        }
        if self.properties_owned.is_some_and(|n| n > 10_000) {
            return Some(("declared.properties_owned", "must be at most 10000"));
        }
        None
    }
}

/// Where a figure comes from: a member's fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Evidence {
    pub subject_ref: String,
    pub kind: FactKind,
}

/// What a caseworker reads where a derived figure is withheld.
pub const WITHHELD_FIGURE_TEXT: &str = "由本用途不显示原始数值的事实算得，不予显示 / computed from facts whose raw values are not shown for this purpose; withheld";

/// 派生数值: a figure computed from department facts (a monthly amount, a sum, a per-capita value),
/// with the fact kinds it is computed from. On the wire `{"value": 123, "sources": [...]}`, or in a
/// view that may not see one of the sources raw `{"withheld": "…", "sources": [...]}`: a figure is
/// shown only when every kind it depends on is shown ([`Figure::redact`]). The fields are private so
/// that a figure cannot be built without its sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Figure<T> {
    /// The figure; absent when withheld.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<T>,
    /// Why the figure is not shown (set exactly when `value` is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    withheld: Option<String>,
    /// The fact kinds the figure is computed from.
    sources: Vec<FactKind>,
}

impl<T> Figure<T> {
    /// A figure computed from `sources`.
    pub fn new(value: T, sources: impl IntoIterator<Item = FactKind>) -> Figure<T> {
        let mut sources: Vec<FactKind> = sources.into_iter().collect();
        sources.sort();
        sources.dedup();
        Figure {
            value: Some(value),
            withheld: None,
            sources,
        }
    }

    /// The figure, unless withheld.
    pub fn value(&self) -> Option<&T> {
        self.value.as_ref()
    }

    /// Why it is withheld, when it is.
    pub fn withheld(&self) -> Option<&str> {
        self.withheld.as_deref()
    }

    pub fn sources(&self) -> &[FactKind] {
        &self.sources
    }

    /// The same sources, another value (e.g. a count as `i64`).
    pub fn map<U>(&self, f: impl FnOnce(&T) -> U) -> Figure<U> {
        Figure {
            value: self.value.as_ref().map(f),
            withheld: self.withheld.clone(),
            sources: self.sources.clone(),
        }
    }

    /// The figure as text in a sentence, Chinese and English: `fmt` of the value, or a withheld mark.
    pub fn text(&self, fmt: impl Fn(&T) -> String) -> (String, String) {
        match &self.value {
            Some(v) => (fmt(v), fmt(v)),
            None => ("〔不予显示〕".to_owned(), "[withheld]".to_owned()),
        }
    }
}

impl<T> Redact for Figure<T> {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        if self.value.is_some() && !self.sources.iter().all(|k| v.shows(*k)) {
            self.value = None;
            self.withheld = Some(WITHHELD_FIGURE_TEXT.to_owned());
            return true;
        }
        false
    }
}

/// The value of an optional figure, when computed and shown.
pub fn shown<T: Copy>(f: &Option<Figure<T>>) -> Option<T> {
    f.as_ref().and_then(Figure::value).copied()
}

/// One income component of a member, per month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IncomeItem {
    pub kind: FactKind,
    pub monthly_fen: Figure<i64>,
    /// True for a deduction (e.g. personal social-insurance contributions).
    pub deducted: bool,
}

/// A special situation (特殊情况) of a member, from a categorical fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Situation {
    pub kind: FactKind,
    /// The department's code (`serious`, `imprisoned`, `undergraduate`, a date of death, …).
    pub code: String,
    pub text: String,
}

/// One member's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MemberFigures {
    pub subject_ref: String,
    /// False for a member registered as deceased on or before the reference date.
    pub counted: bool,
    /// Σ counted − Σ deducted, per month; absent when it cannot be computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_income_fen: Option<Figure<i64>>,
    pub income_items: Vec<IncomeItem>,
    pub situations: Vec<Situation>,
}

/// The household's figures. Absent figures could not be computed (see `gaps`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HouseholdFigures {
    /// Members counted (alive on the reference date).
    pub members_counted: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_income_fen: Option<Figure<i64>>,
    /// 家庭月人均收入
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_income_per_capita_fen: Option<Figure<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_owned: Option<Figure<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_area_dm2: Option<Figure<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_area_per_capita_dm2: Option<Figure<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_assets_fen: Option<Figure<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_assets_per_capita_fen: Option<Figure<i64>>,
}

/// The standard a report was compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StandardUsed {
    pub county: String,
    pub name: String,
    pub year: i32,
    pub dibao_line_fen: i64,
    pub max_properties: u32,
    pub max_floor_area_per_capita_dm2: i64,
    pub max_financial_assets_per_capita_fen: i64,
    pub tolerance_percent: u32,
    pub tolerance_min_fen: i64,
    /// True while the bureau has not replaced the shipped example values.
    pub example: bool,
}

impl StandardUsed {
    fn of(s: &LocalStandard) -> StandardUsed {
        StandardUsed {
            county: s.county.as_str().to_owned(),
            name: s.name.clone(),
            year: s.year,
            dibao_line_fen: s.dibao_line_fen,
            max_properties: s.assets.max_properties,
            max_floor_area_per_capita_dm2: s.assets.max_floor_area_per_capita_dm2,
            max_financial_assets_per_capita_fen: s.assets.max_financial_assets_per_capita_fen,
            tolerance_percent: s.tolerance.percent,
            tolerance_min_fen: s.tolerance.min_fen,
            example: s.example,
        }
    }
}

/// The code of an [`Indication`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IndicationCode {
    /// 家庭月人均收入低于低保标准
    IncomeBelowLine,
    /// 家庭月人均收入不低于低保标准
    IncomeNotBelowLine,
    /// 财产未超过限额
    AssetsWithinLimits,
    PropertiesAboveLimit,
    FloorAreaAboveLimit,
    FinancialAssetsAboveLimit,
    /// 特殊情况 (illness, disability, student, custody)
    SpecialSituation,
    /// 已享受救助
    AlreadyAssisted,
    /// 成员已死亡
    MemberDeceased,
}

/// 提示: an indication with its reason. Never an eligibility decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Indication {
    pub code: IndicationCode,
    /// The reason, Chinese first. When the indication states a figure, the text is rendered from
    /// `figure` ([`standard_text`]) and states it only when it is shown.
    pub text: String,
    /// The figure compared with the local standard (income, properties, floor area or financial
    /// assets per capita), for the indications that compare one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figure: Option<Figure<i64>>,
    pub evidence: Vec<Evidence>,
}

/// A declared field compared with a verified figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum DeclaredField {
    #[serde(rename = "declared.household_monthly_income_fen")]
    HouseholdMonthlyIncomeFen,
    #[serde(rename = "declared.properties_owned")]
    PropertiesOwned,
    #[serde(rename = "declared.floor_area_dm2")]
    FloorAreaDm2,
    #[serde(rename = "declared.financial_assets_fen")]
    FinancialAssetsFen,
}

impl DeclaredField {
    /// The field's path in the request, e.g. `declared.household_monthly_income_fen`.
    pub fn code(self) -> &'static str {
        match self {
            DeclaredField::HouseholdMonthlyIncomeFen => "declared.household_monthly_income_fen",
            DeclaredField::PropertiesOwned => "declared.properties_owned",
            DeclaredField::FloorAreaDm2 => "declared.floor_area_dm2",
            DeclaredField::FinancialAssetsFen => "declared.financial_assets_fen",
        }
    }

    /// An amount of this field as a caseworker reads it.
    pub fn format(self, n: i64) -> String {
        match self {
            DeclaredField::HouseholdMonthlyIncomeFen | DeclaredField::FinancialAssetsFen => yuan(n),
            DeclaredField::PropertiesOwned => format!("{n} 套"),
            DeclaredField::FloorAreaDm2 => m2(n),
        }
    }
}

/// 申报差异: a declared amount outside the tolerance of the verified one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Discrepancy {
    /// The declared field, e.g. `declared.household_monthly_income_fen`.
    pub field: DeclaredField,
    /// What the applicant declared (shown: it is the applicant's own statement).
    pub declared: i64,
    /// The verified figure.
    pub verified: Figure<i64>,
    /// The largest difference that would not have been flagged (derived from the verified figure,
    /// so withheld with it).
    pub allowed_difference: Figure<i64>,
    /// Rendered from the above by [`discrepancy_text`]: states the department's figure only when
    /// it is shown.
    pub text: String,
    pub evidence: Vec<Evidence>,
}

/// 核算结果: the figures, indications and discrepancies of one report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Aggregation {
    /// 参考日期 (Beijing date of the verification).
    pub as_of: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard: Option<StandardUsed>,
    pub members: Vec<MemberFigures>,
    pub household: HouseholdFigures,
    pub indications: Vec<Indication>,
    /// What the applicant declared, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<Declared>,
    pub discrepancies: Vec<Discrepancy>,
    /// What could not be computed or may be incomplete, and why. (Never a figure.)
    pub gaps: Vec<String>,
    pub disclaimer: String,
}

impl Redact for IncomeItem {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        let IncomeItem {
            kind: _,
            monthly_fen,
            deducted: _,
        } = self;
        monthly_fen.redact(v)
    }
}

impl Redact for MemberFigures {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        let MemberFigures {
            subject_ref: _,
            // From the (categorical) death registration.
            counted: _,
            monthly_income_fen,
            income_items,
            // From categorical facts only.
            situations: _,
        } = self;
        let total = monthly_income_fen.redact(v);
        let items = income_items.redact(v);
        total || items
    }
}

impl Redact for HouseholdFigures {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        let HouseholdFigures {
            // The head count, from the (categorical) death registration.
            members_counted: _,
            monthly_income_fen,
            monthly_income_per_capita_fen,
            properties_owned,
            floor_area_dm2,
            floor_area_per_capita_dm2,
            financial_assets_fen,
            financial_assets_per_capita_fen,
        } = self;
        let changed = [
            monthly_income_fen.redact(v),
            monthly_income_per_capita_fen.redact(v),
            properties_owned.redact(v),
            floor_area_dm2.redact(v),
            floor_area_per_capita_dm2.redact(v),
            financial_assets_fen.redact(v),
            financial_assets_per_capita_fen.redact(v),
        ];
        changed.contains(&true)
    }
}

impl Redact for Aggregation {
    fn redact(&mut self, v: &Visible<'_>) -> bool {
        let Aggregation {
            members,
            household,
            indications,
            discrepancies,
            standard,
            // The reference date, the applicant's own declaration, the reasons for gaps and the
            // disclaimer: no department figures.
            as_of: _,
            declared: _,
            gaps: _,
            disclaimer: _,
        } = self;
        let mut changed = members.redact(v);
        changed |= household.redact(v);
        for i in indications.iter_mut() {
            let Indication {
                code,
                text,
                figure,
                evidence: _,
            } = i;
            if let Some(f) = figure
                && f.redact(v)
            {
                changed = true;
                *text = match standard {
                    Some(s) => standard_text(*code, f, s),
                    None => WITHHELD_FIGURE_TEXT.to_owned(),
                };
            }
        }
        for d in discrepancies.iter_mut() {
            let Discrepancy {
                field,
                declared,
                verified,
                allowed_difference,
                text,
                evidence: _,
            } = d;
            let withheld = verified.redact(v);
            let allowed = allowed_difference.redact(v);
            if withheld || allowed {
                changed = true;
                *text = discrepancy_text(*field, *declared, verified, allowed_difference);
            }
        }
        changed
    }
}

/// The text of an indication that compares a figure with the local standard.
pub fn standard_text(code: IndicationCode, figure: &Figure<i64>, s: &StandardUsed) -> String {
    let shown = figure.value().is_some();
    match code {
        IndicationCode::IncomeBelowLine | IndicationCode::IncomeNotBelowLine => {
            let below = code == IndicationCode::IncomeBelowLine;
            let (zh, en) = figure.text(|v| yuan(*v));
            let (zh_cmp, en_cmp) = if below {
                ("低于", "below")
            } else {
                ("不低于", "not below")
            };
            if shown {
                format!(
                    "家庭月人均收入 {zh} {zh_cmp} {}{}年低保标准 {} / monthly income per capita {en} is {en_cmp} the {} line of {}",
                    s.name,
                    s.year,
                    yuan(s.dibao_line_fen),
                    s.year,
                    yuan(s.dibao_line_fen),
                )
            } else {
                format!(
                    "家庭月人均收入{zh_cmp}{}{}年低保标准 {}（人均收入数额不予显示） / monthly income per capita is {en_cmp} the {} line of {} (the amount is withheld)",
                    s.name,
                    s.year,
                    yuan(s.dibao_line_fen),
                    s.year,
                    yuan(s.dibao_line_fen),
                )
            }
        }
        IndicationCode::PropertiesAboveLimit => {
            let max = s.max_properties;
            match figure.value() {
                Some(n) => format!(
                    "家庭名下房产 {n} 套，超过上限 {max} 套 / {n} properties, above the limit of {max}"
                ),
                None => format!(
                    "家庭名下房产套数超过上限 {max} 套（套数不予显示） / the number of properties is above the limit of {max} (the number is withheld)"
                ),
            }
        }
        IndicationCode::FloorAreaAboveLimit => {
            let max = m2(s.max_floor_area_per_capita_dm2);
            match figure.value() {
                Some(a) => format!(
                    "人均住房建筑面积 {}，超过上限 {max} / floor area per capita {}, above the limit of {max}",
                    m2(*a),
                    m2(*a)
                ),
                None => format!(
                    "人均住房建筑面积超过上限 {max}（面积不予显示） / floor area per capita is above the limit of {max} (the area is withheld)"
                ),
            }
        }
        IndicationCode::FinancialAssetsAboveLimit => {
            let max = yuan(s.max_financial_assets_per_capita_fen);
            match figure.value() {
                Some(f) => format!(
                    "人均金融资产 {}，超过上限 {max} / financial assets per capita {}, above the limit of {max}",
                    yuan(*f),
                    yuan(*f)
                ),
                None => format!(
                    "人均金融资产超过上限 {max}（金额不予显示） / financial assets per capita are above the limit of {max} (the amount is withheld)"
                ),
            }
        }
        // These never carry a figure (their text states none); a generic text should one ever do.
        IndicationCode::AssetsWithinLimits
        | IndicationCode::SpecialSituation
        | IndicationCode::AlreadyAssisted
        | IndicationCode::MemberDeceased => WITHHELD_FIGURE_TEXT.to_owned(),
    }
}

/// The text of a discrepancy: declared vs verified, the difference and the tolerance when the
/// verified figure is shown; the declared amount and "beyond the tolerance" when it is withheld.
pub fn discrepancy_text(
    field: DeclaredField,
    declared: i64,
    verified: &Figure<i64>,
    allowed: &Figure<i64>,
) -> String {
    let fmt = |n: i64| field.format(n);
    match (verified.value(), allowed.value()) {
        (Some(&verified), Some(&allowed)) => {
            let diff = (declared - verified).abs();
            format!(
                "申报 {} 与核对 {} 相差 {}，超过容差 {} / declared {} differs from verified {} by {}, more than the tolerance of {}",
                fmt(declared),
                fmt(verified),
                fmt(diff),
                fmt(allowed),
                fmt(declared),
                fmt(verified),
                fmt(diff),
                fmt(allowed),
            )
        }
        _ => format!(
            "申报 {} 与核对结果相差超过容差（核对数额不予显示） / declared {} differs from the verified figure by more than the tolerance (the verified figure is withheld)",
            fmt(declared),
            fmt(declared),
        ),
    }
}

/// What a caseworker reads under the figures.
pub const DISCLAIMER: &str = "以上为核对提示，不是审批结论；是否符合条件由经办人员依规审核决定。/ These are indications, not a decision; eligibility is decided by the caseworker under the rules.";

/// `¥1,234.56`-style yuan text of an amount in fen.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    let digits = (fen / 100).to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}¥{grouped}.{:02}", fen % 100)
}

/// `12.34 m²`-style text of an area in dm².
pub fn m2(dm2: i64) -> String {
    format!("{}.{:02} m²", dm2 / 100, (dm2 % 100).abs())
}

/// A member's monthly amount of an income kind (see the module rules); `None` for a value that is
/// not an amount.
pub fn monthly_fen(kind: FactKind, value: &FactValue) -> Option<i64> {
    let spec = kind.spec();
    let months = match spec.period {
        PeriodKind::Trailing12Months | PeriodKind::AcademicYear => 12,
        PeriodKind::CurrentMonth | PeriodKind::AsOf => 1,
    };
    match (value, spec.unit) {
        (FactValue::MonthlyFen(series), _) => Some(series.iter().map(|m| m.fen).sum::<i64>() / 12),
        (FactValue::MoneyFen(f), Unit::FenPerMonth) => Some(*f),
        (FactValue::MoneyFen(f), Unit::FenPerAcademicYear) => Some(*f / 12),
        (FactValue::MoneyFen(f), Unit::Fen) if months == 12 => Some(*f / 12),
        _ => None,
    }
}

/// Everything [`aggregate`] reads.
pub struct Inputs<'a> {
    pub members: &'a [MemberReport],
    pub departments: &'a [DepartmentReport],
    pub income: &'a IncomeRule,
    pub standard: Option<&'a LocalStandard>,
    /// The household's registered county and the year, for the message when no standard is loaded.
    pub county: &'a str,
    pub as_of: Date,
    pub declared: Option<&'a Declared>,
}

struct Ctx<'a> {
    inp: &'a Inputs<'a>,
    gaps: Vec<String>,
}

impl Ctx<'_> {
    /// Did the department's facts make it into the report? Notes a gap once when not.
    fn answered(&mut self, d: Department, what: &str) -> bool {
        let ok = self
            .inp
            .departments
            .iter()
            .any(|r| r.department == d && r.status.has_facts());
        if !ok {
            let msg = format!(
                "{}未提供结果，无法核算{what} / {} gave no answer: {what} not computed",
                d.name_zh(),
                d.code()
            );
            if !self.gaps.contains(&msg) {
                self.gaps.push(msg);
            }
        }
        ok
    }

    fn asked(&self, kind: FactKind) -> bool {
        self.inp
            .departments
            .iter()
            .any(|r| r.department == kind.spec().department && r.fact_kinds.contains(&kind))
    }

    /// The member's value of a kind; notes a gap when the department had no record of them.
    fn value<'m>(&mut self, m: &'m MemberReport, kind: FactKind) -> Option<&'m FactValue> {
        let v = m
            .facts
            .iter()
            .find(|f| f.kind == kind)
            .and_then(|f| f.value.as_ref());
        if v.is_none() {
            let d = kind.spec().department;
            let msg = if m.notes.iter().any(|n| n.department == d) {
                format!(
                    "{}：{}无此人记录，按无此项计 / {}: no {} record, counted as none",
                    m.subject_ref,
                    d.name_zh(),
                    m.subject_ref,
                    d.code()
                )
            } else {
                format!(
                    "{}：{}未给出{}，按无此项计 / {}: {} not given, counted as none",
                    m.subject_ref,
                    d.name_zh(),
                    kind.spec().name_zh,
                    m.subject_ref,
                    kind.code()
                )
            };
            if !self.gaps.contains(&msg) {
                self.gaps.push(msg);
            }
        }
        v
    }
}

fn code_of(v: Option<&FactValue>) -> Option<&str> {
    match v {
        Some(FactValue::Code(c)) => Some(c.as_str()),
        _ => None,
    }
}

/// Compute the figures, indications and discrepancies.
pub fn aggregate(inp: &Inputs<'_>) -> Aggregation {
    let mut cx = Ctx {
        inp,
        gaps: Vec::new(),
    };
    let mut indications = Vec::new();

    // Who counts: members not registered as deceased on or before the reference date.
    let death_known = cx.asked(FactKind::DeathRegistration)
        && cx.answered(Department::CivilAffairs, "死亡登记 / deaths");
    let mut members: Vec<MemberFigures> = Vec::with_capacity(inp.members.len());
    for m in inp.members {
        let died = m
            .facts
            .iter()
            .find(|f| f.kind == FactKind::DeathRegistration)
            .and_then(|f| match &f.value {
                Some(FactValue::OptionalDate(Some(d))) if *d <= inp.as_of => Some(*d),
                _ => None,
            });
        if let Some(d) = died {
            indications.push(Indication {
                code: IndicationCode::MemberDeceased,
                figure: None,
                text: format!(
                    "{}已于 {d} 登记死亡，不计入家庭人口和收入 / {} registered as deceased on {d}; not counted",
                    m.subject_ref, m.subject_ref
                ),
                evidence: vec![Evidence {
                    subject_ref: m.subject_ref.clone(),
                    kind: FactKind::DeathRegistration,
                }],
            });
        }
        members.push(MemberFigures {
            subject_ref: m.subject_ref.clone(),
            counted: died.is_none(),
            monthly_income_fen: None,
            income_items: Vec::new(),
            situations: Vec::new(),
        });
    }
    if !death_known && cx.asked(FactKind::DeathRegistration) {
        cx.gaps.push(
            "未能核实成员是否健在，全部成员计入 / whether every member is alive is not verified; all are counted"
                .into(),
        );
    }
    let counted = members.iter().filter(|m| m.counted).count() as i64;
    let mut household = HouseholdFigures {
        members_counted: counted as u32,
        ..HouseholdFigures::default()
    };

    // Income.
    let rule_kinds: Vec<(FactKind, bool)> = inp
        .income
        .counted
        .iter()
        .map(|k| (*k, false))
        .chain(inp.income.deducted.iter().map(|k| (*k, true)))
        .collect();
    let income_departments: std::collections::BTreeSet<Department> = rule_kinds
        .iter()
        .map(|(k, _)| k.spec().department)
        .collect();
    let income_ok = !rule_kinds.is_empty()
        && income_departments
            .iter()
            .all(|d| cx.answered(*d, "收入 / income"));
    if rule_kinds.is_empty() {
        cx.gaps
            .push("本用途不核算收入 / this purpose does not compute income".into());
    }
    // A member's income, the household's and the per-capita figure depend on every kind of the
    // rule (a kind a member has no value of still says "none", which with the others is a value).
    let income_kinds: Vec<FactKind> = rule_kinds.iter().map(|(k, _)| *k).collect();
    if income_ok && counted > 0 {
        let mut total = 0i64;
        for (m, fig) in inp.members.iter().zip(members.iter_mut()) {
            if !fig.counted {
                continue;
            }
            let mut sum = 0i64;
            for (kind, deducted) in &rule_kinds {
                let Some(v) = cx.value(m, *kind) else {
                    continue;
                };
                let Some(monthly) = monthly_fen(*kind, v) else {
                    continue;
                };
                sum += if *deducted { -monthly } else { monthly };
                fig.income_items.push(IncomeItem {
                    kind: *kind,
                    monthly_fen: Figure::new(monthly, [*kind]),
                    deducted: *deducted,
                });
            }
            fig.monthly_income_fen = Some(Figure::new(sum, income_kinds.iter().copied()));
            total += sum;
        }
        household.monthly_income_fen = Some(Figure::new(total, income_kinds.iter().copied()));
        household.monthly_income_per_capita_fen =
            Some(Figure::new(total / counted, income_kinds.iter().copied()));
    }

    // Assets.
    let sum_of = |cx: &mut Ctx<'_>, kind: FactKind| -> Option<i64> {
        if !cx.asked(kind) || !cx.answered(kind.spec().department, "资产 / assets") {
            return None;
        }
        let mut total = 0i64;
        for (m, fig) in inp.members.iter().zip(members.iter()) {
            if !fig.counted {
                continue;
            }
            total += match cx.value(m, kind) {
                Some(FactValue::Count(n)) => i64::from(*n),
                Some(FactValue::AreaDm2(a)) => *a,
                Some(FactValue::MoneyFen(f)) => *f,
                _ => 0,
            };
        }
        Some(total)
    };
    let properties = sum_of(&mut cx, FactKind::PropertiesOwned);
    let floor_area = sum_of(&mut cx, FactKind::FloorAreaOwned);
    let financial = sum_of(&mut cx, FactKind::ProvidentFundBalance);
    let per_capita = |total: Option<i64>| total.filter(|_| counted > 0).map(|t| t / counted);
    let figure = |v: Option<i64>, kind: FactKind| v.map(|v| Figure::new(v, [kind]));
    household.properties_owned = properties.map(|n| {
        Figure::new(
            n.clamp(0, i64::from(u32::MAX)) as u32,
            [FactKind::PropertiesOwned],
        )
    });
    household.floor_area_dm2 = figure(floor_area, FactKind::FloorAreaOwned);
    household.floor_area_per_capita_dm2 = figure(per_capita(floor_area), FactKind::FloorAreaOwned);
    household.financial_assets_fen = figure(financial, FactKind::ProvidentFundBalance);
    household.financial_assets_per_capita_fen =
        figure(per_capita(financial), FactKind::ProvidentFundBalance);

    // Special situations.
    for (m, fig) in inp.members.iter().zip(members.iter_mut()) {
        let facts = |k: FactKind| {
            m.facts
                .iter()
                .find(|f| f.kind == k)
                .and_then(|f| f.value.as_ref())
        };
        let mut push = |kind: FactKind, code: &str, text: String| {
            fig.situations.push(Situation {
                kind,
                code: code.to_owned(),
                text,
            })
        };
        if let Some(c @ ("chronic" | "serious")) = code_of(facts(FactKind::SeriousIllness)) {
            let zh = if c == "serious" {
                "患重特大疾病"
            } else {
                "患慢性病"
            };
            push(FactKind::SeriousIllness, c, format!("{zh} / {c} illness"));
        }
        if let Some(FactValue::Bool(true)) = facts(FactKind::DisabilityCertificate) {
            let grade = code_of(facts(FactKind::DisabilityGrade)).filter(|g| *g != "none");
            let code = grade.unwrap_or("certificate");
            let text = match grade {
                Some(g) => format!("持有残疾人证（{g}级） / disability certificate, grade {g}"),
                None => "持有残疾人证 / disability certificate".to_owned(),
            };
            push(FactKind::DisabilityCertificate, code, text);
        }
        if let Some(stage) = code_of(facts(FactKind::Enrolment)).filter(|s| *s != "not_enrolled") {
            push(
                FactKind::Enrolment,
                stage,
                format!(
                    "在学学生（{}） / student ({})",
                    stage_zh(stage),
                    stage.replace('_', " ")
                ),
            );
        }
        if let Some(c @ ("imprisoned" | "community_correction")) =
            code_of(facts(FactKind::CustodyStatus))
        {
            let zh = if c == "imprisoned" {
                "服刑人员"
            } else {
                "社区矫正对象"
            };
            push(FactKind::CustodyStatus, c, format!("{zh} / {c}"));
        }
        if let Some(c) = code_of(facts(FactKind::AssistanceStatus)).filter(|c| *c != "none") {
            indications.push(Indication {
                code: IndicationCode::AlreadyAssisted,
                figure: None,
                text: format!(
                    "{}当前已享受救助（{c}） / {} already receives assistance ({c})",
                    m.subject_ref, m.subject_ref
                ),
                evidence: vec![Evidence {
                    subject_ref: m.subject_ref.clone(),
                    kind: FactKind::AssistanceStatus,
                }],
            });
        }
        for s in &fig.situations {
            indications.push(Indication {
                code: IndicationCode::SpecialSituation,
                figure: None,
                text: format!("{}：{}", m.subject_ref, s.text),
                evidence: vec![Evidence {
                    subject_ref: m.subject_ref.clone(),
                    kind: s.kind,
                }],
            });
        }
    }

    // Comparison with the local standard.
    let evidence_of = |kinds: &[FactKind]| -> Vec<Evidence> {
        inp.members
            .iter()
            .zip(members.iter())
            .filter(|(_, f)| f.counted)
            .flat_map(|(m, _)| {
                kinds
                    .iter()
                    .filter(|k| m.facts.iter().any(|f| f.kind == **k))
                    .map(|k| Evidence {
                        subject_ref: m.subject_ref.clone(),
                        kind: *k,
                    })
            })
            .collect()
    };
    let standard = inp.standard.map(StandardUsed::of);
    match inp.standard {
        None => cx.gaps.push(format!(
            "未配置 {} 县（市、区）{} 年的地方标准，未与标准比较 / no local standard for county {} in {}; not compared",
            inp.county,
            inp.as_of.year(),
            inp.county,
            inp.as_of.year()
        )),
        Some(s) => {
            if s.year != inp.as_of.year() {
                cx.gaps.push(format!(
                    "{}年标准未配置，沿用{}年标准 / no {} standard configured; the {} standard is used",
                    inp.as_of.year(),
                    s.year,
                    inp.as_of.year(),
                    s.year
                ));
            }
            if s.example {
                cx.gaps.push(
                    "地方标准为示例值，尚未由民政局核定 / the local standard holds example values the bureau has not set"
                        .into(),
                );
            }
            let used = StandardUsed::of(s);
            let compared = |code: IndicationCode, figure: &Figure<i64>, kinds: &[FactKind]| {
                Indication {
                    code,
                    text: standard_text(code, figure, &used),
                    figure: Some(figure.clone()),
                    evidence: evidence_of(kinds),
                }
            };
            if let Some(pc) = &household.monthly_income_per_capita_fen
                && let Some(v) = pc.value()
            {
                let code = if *v < s.dibao_line_fen {
                    IndicationCode::IncomeBelowLine
                } else {
                    IndicationCode::IncomeNotBelowLine
                };
                indications.push(compared(code, pc, &income_kinds));
            }
            let mut over = Vec::new();
            if let Some(n) = &household.properties_owned
                && n.value().is_some_and(|n| *n > s.assets.max_properties)
            {
                over.push(compared(
                    IndicationCode::PropertiesAboveLimit,
                    &n.map(|n| i64::from(*n)),
                    &[FactKind::PropertiesOwned],
                ));
            }
            if let Some(a) = &household.floor_area_per_capita_dm2
                && a
                    .value()
                    .is_some_and(|a| *a > s.assets.max_floor_area_per_capita_dm2)
            {
                over.push(compared(
                    IndicationCode::FloorAreaAboveLimit,
                    a,
                    &[FactKind::FloorAreaOwned],
                ));
            }
            if let Some(f) = &household.financial_assets_per_capita_fen
                && f.value()
                    .is_some_and(|f| *f > s.assets.max_financial_assets_per_capita_fen)
            {
                over.push(compared(
                    IndicationCode::FinancialAssetsAboveLimit,
                    f,
                    &[FactKind::ProvidentFundBalance],
                ));
            }
            let all_assets_known = household.properties_owned.is_some()
                && household.floor_area_per_capita_dm2.is_some()
                && household.financial_assets_per_capita_fen.is_some();
            if over.is_empty() && all_assets_known {
                indications.push(Indication {
                    code: IndicationCode::AssetsWithinLimits,
                    figure: None,
                    text: "房产套数、人均住房面积和人均金融资产均未超过限额 / properties, floor area and financial assets per capita are within the limits".into(),
                    evidence: evidence_of(&[
                        FactKind::PropertiesOwned,
                        FactKind::FloorAreaOwned,
                        FactKind::ProvidentFundBalance,
                    ]),
                });
            }
            indications.extend(over);
        }
    }

    // Declared vs verified.
    let mut discrepancies = Vec::new();
    if let Some(d) = inp.declared {
        let tol = inp.standard.map(|s| &s.tolerance);
        let mut check = |field: DeclaredField,
                         declared: Option<i64>,
                         verified: Option<&Figure<i64>>,
                         allowed: &dyn Fn(i64) -> i64,
                         kinds: &[FactKind],
                         gaps: &mut Vec<String>| {
            let Some(declared) = declared else { return };
            let Some((figure, v)) = verified.and_then(|f| Some((f, *f.value()?))) else {
                let field = field.code();
                gaps.push(format!(
                    "{field}：核对值无法核算，未比较 / {field}: no verified figure to compare with"
                ));
                return;
            };
            let allowed_difference = allowed(v);
            if (declared - v).abs() > allowed_difference {
                // The tolerance is derived from the verified figure: it has the same sources.
                let allowed_difference = figure.map(|_| allowed_difference);
                discrepancies.push(Discrepancy {
                    field,
                    declared,
                    text: discrepancy_text(field, declared, figure, &allowed_difference),
                    verified: figure.clone(),
                    allowed_difference,
                    evidence: evidence_of(kinds),
                });
            }
        };
        let money_allowed = |v: i64| tol.map_or(0, |t| t.allowed(v));
        let area_allowed = |v: i64| match tol {
            Some(t) => (v.abs() * i64::from(t.percent) / 100).max(100),
            None => 100,
        };
        if tol.is_none() && *d != Declared::default() {
            cx.gaps.push(
                "未配置容差，申报值按完全一致比较 / no tolerance configured: declared values must match exactly"
                    .into(),
            );
        }
        check(
            DeclaredField::HouseholdMonthlyIncomeFen,
            d.household_monthly_income_fen,
            household.monthly_income_fen.as_ref(),
            &money_allowed,
            &income_kinds,
            &mut cx.gaps,
        );
        let properties = household
            .properties_owned
            .as_ref()
            .map(|f| f.map(|n| i64::from(*n)));
        check(
            DeclaredField::PropertiesOwned,
            d.properties_owned.map(i64::from),
            properties.as_ref(),
            &|_| 0,
            &[FactKind::PropertiesOwned],
            &mut cx.gaps,
        );
        check(
            DeclaredField::FloorAreaDm2,
            d.floor_area_dm2,
            household.floor_area_dm2.as_ref(),
            &area_allowed,
            &[FactKind::FloorAreaOwned],
            &mut cx.gaps,
        );
        check(
            DeclaredField::FinancialAssetsFen,
            d.financial_assets_fen,
            household.financial_assets_fen.as_ref(),
            &money_allowed,
            &[FactKind::ProvidentFundBalance],
            &mut cx.gaps,
        );
    }

    Aggregation {
        as_of: inp.as_of.to_string(),
        standard,
        members,
        household,
        indications,
        declared: inp.declared.cloned(),
        discrepancies,
        gaps: cx.gaps,
        disclaimer: DISCLAIMER.to_owned(),
    }
}

/// 学段: the Chinese name of an `education.enrolment` stage code (the catalogue's values), for the
/// Chinese half of a text; an unknown code reads as "其他学段".
fn stage_zh(code: &str) -> &'static str {
    match code {
        "preschool" => "学前教育",
        "primary" => "小学",
        "junior_secondary" => "初中",
        "senior_secondary" => "高中",
        "secondary_vocational" => "中等职业教育",
        "higher_vocational" => "高等职业教育",
        "undergraduate" => "本科",
        "postgraduate" => "研究生",
        _ => "其他学段",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::report::{DepartmentStatus, ReportedFact};
    use schemas::MonthAmount;
    use time::macros::date;

    const AS_OF: Date = date!(2026 - 11 - 29);

    /// Every enrolment stage in the catalogue has a Chinese name, so no code shows in Chinese text.
    #[test]
    fn every_enrolment_stage_reads_in_chinese() {
        let spec = FactKind::Enrolment.spec();
        for code in spec.codes.iter().filter(|c| **c != "not_enrolled") {
            assert_ne!(stage_zh(code), "其他学段", "{code}");
        }
    }

    fn fact(kind: FactKind, value: FactValue) -> ReportedFact {
        ReportedFact {
            kind,
            value: Some(value),
            withheld: None,
            period_from: "2025-11-01".into(),
            period_to: "2026-10-31".into(),
            department: kind.spec().department,
            answered_at: "2026-11-29T01:00:00Z".into(),
            key_id: "k".into(),
            reused_from: None,
        }
    }

    fn wages(monthly: i64) -> FactValue {
        let mut month = schemas::YearMonth::of(AS_OF);
        let mut months = Vec::new();
        for _ in 0..12 {
            month = month.previous();
            months.push(MonthAmount {
                month,
                fen: monthly,
            });
        }
        FactValue::MonthlyFen(months)
    }

    fn member(i: usize, facts: Vec<ReportedFact>) -> MemberReport {
        MemberReport {
            subject_ref: format!("m{i}"),
            name: "x".into(),
            relation: "applicant".into(),
            pseudonym: format!("p{i}"),
            facts,
            notes: Vec::new(),
        }
    }

    fn department(d: Department, status: DepartmentStatus, kinds: &[FactKind]) -> DepartmentReport {
        DepartmentReport {
            department: d,
            name_zh: d.name_zh().into(),
            status,
            status_text: String::new(),
            fact_kinds: kinds.to_vec(),
            answered_at: None,
            key_id: None,
            signature: None,
            detail: None,
            reused_from: None,
            elapsed_ms: 0,
            log_index: None,
            log_receipt: None,
        }
    }

    fn standard() -> LocalStandard {
        policies::Standards::load(policies::PolicyEngine::shipped_dir().join("standards"))
            .unwrap()
            .in_force(&schemas::DivisionCode::parse("370811").unwrap(), 2026)
            .unwrap()
            .clone()
    }

    fn rule() -> IncomeRule {
        IncomeRule {
            counted: vec![FactKind::MonthlyWages, FactKind::Pension],
            deducted: vec![FactKind::SocialInsuranceContributions],
        }
    }

    const LABOR: [FactKind; 3] = [
        FactKind::MonthlyWages,
        FactKind::Pension,
        FactKind::SocialInsuranceContributions,
    ];

    fn run(
        members: &[MemberReport],
        departments: &[DepartmentReport],
        standard: Option<&LocalStandard>,
        declared: Option<&Declared>,
    ) -> Aggregation {
        aggregate(&Inputs {
            members,
            departments,
            income: &rule(),
            standard,
            county: "370811",
            as_of: AS_OF,
            declared,
        })
    }

    fn codes(a: &Aggregation) -> Vec<String> {
        a.indications
            .iter()
            .map(|i| {
                serde_json::to_value(i.code)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn monthly_amounts_follow_unit_and_period() {
        assert_eq!(
            monthly_fen(FactKind::MonthlyWages, &wages(1_001)),
            Some(1_001)
        );
        assert_eq!(
            monthly_fen(FactKind::Pension, &FactValue::MoneyFen(5_000)),
            Some(5_000)
        );
        assert_eq!(
            monthly_fen(
                FactKind::SocialInsuranceContributions,
                &FactValue::MoneyFen(12_011)
            ),
            Some(1_000)
        );
        assert_eq!(
            monthly_fen(FactKind::TuitionFees, &FactValue::MoneyFen(120_000)),
            Some(10_000)
        );
        assert_eq!(
            monthly_fen(FactKind::ProvidentFundBalance, &FactValue::MoneyFen(1)),
            None,
            "a balance is not income"
        );
    }

    #[test]
    fn income_per_capita_leaves_out_the_deceased_and_compares_with_the_line() {
        let st = standard();
        let members = [
            member(
                1,
                vec![
                    fact(FactKind::MonthlyWages, wages(150_000)),
                    fact(FactKind::Pension, FactValue::MoneyFen(0)),
                    fact(
                        FactKind::SocialInsuranceContributions,
                        FactValue::MoneyFen(120_000),
                    ),
                    fact(FactKind::DeathRegistration, FactValue::OptionalDate(None)),
                ],
            ),
            member(
                2,
                vec![
                    fact(FactKind::MonthlyWages, wages(0)),
                    fact(FactKind::Pension, FactValue::MoneyFen(30_000)),
                    fact(
                        FactKind::SocialInsuranceContributions,
                        FactValue::MoneyFen(0),
                    ),
                    fact(FactKind::DeathRegistration, FactValue::OptionalDate(None)),
                ],
            ),
            member(
                3,
                vec![
                    fact(FactKind::MonthlyWages, wages(0)),
                    fact(FactKind::Pension, FactValue::MoneyFen(99_999)),
                    fact(
                        FactKind::SocialInsuranceContributions,
                        FactValue::MoneyFen(0),
                    ),
                    fact(
                        FactKind::DeathRegistration,
                        FactValue::OptionalDate(Some(date!(2026 - 10 - 01))),
                    ),
                ],
            ),
        ];
        let deps = [
            department(Department::Labor, DepartmentStatus::Answered, &LABOR),
            department(
                Department::CivilAffairs,
                DepartmentStatus::Reused,
                &[FactKind::DeathRegistration],
            ),
        ];
        let a = run(&members, &deps, Some(&st), None);
        // (150000 − 10000) + 30000 = 170000 over 2 living members.
        assert_eq!(a.household.members_counted, 2);
        assert_eq!(shown(&a.household.monthly_income_fen), Some(170_000));
        assert_eq!(
            shown(&a.household.monthly_income_per_capita_fen),
            Some(85_000)
        );
        assert!(!a.members[2].counted);
        assert!(codes(&a).contains(&"member_deceased".to_owned()));
        assert!(
            codes(&a).contains(&"income_below_line".to_owned()),
            "{:?}",
            codes(&a)
        );
        assert_eq!(
            a.standard.as_ref().unwrap().dibao_line_fen,
            st.dibao_line_fen
        );
    }

    /// A fact kind declared in `departments.toml` has no built-in rule: it changes no figure, gap
    /// or indication unless the purpose's income rule lists it, and then it counts like any
    /// income component of its unit and period.
    #[test]
    fn a_declared_kind_counts_only_where_the_income_rule_lists_it() {
        let veterans =
            Department::register("agg_veterans", "退役军人事务", "veterans affairs").unwrap();
        let allowance = FactKind::register(&schemas::FactDecl {
            code: "agg_veterans.allowance_monthly".into(),
            value_type: schemas::ValueType::MoneyFen,
            unit: Unit::FenPerMonth,
            period: PeriodKind::CurrentMonth,
            validity_days: 30,
            name_zh: "优抚金月领取额".into(),
            name_en: "monthly allowance".into(),
            codes: vec![],
        })
        .unwrap();
        let labor = |extra: Vec<ReportedFact>| {
            let mut facts = vec![
                fact(FactKind::MonthlyWages, wages(150_000)),
                fact(FactKind::Pension, FactValue::MoneyFen(0)),
                fact(
                    FactKind::SocialInsuranceContributions,
                    FactValue::MoneyFen(0),
                ),
            ];
            facts.extend(extra);
            [member(1, facts)]
        };
        let mut deps = vec![department(
            Department::Labor,
            DepartmentStatus::Answered,
            &LABOR,
        )];
        let without = run(&labor(Vec::new()), &deps, Some(&standard()), None);
        deps.push(department(
            veterans,
            DepartmentStatus::Answered,
            &[allowance],
        ));
        let members = labor(vec![fact(allowance, FactValue::MoneyFen(40_000))]);
        let with = run(&members, &deps, Some(&standard()), None);
        assert_eq!(
            serde_json::to_value(&with).unwrap(),
            serde_json::to_value(&without).unwrap(),
            "no rule reads it"
        );
        assert_eq!(shown(&with.household.monthly_income_fen), Some(150_000));

        let mut counted = rule();
        counted.counted.push(allowance);
        let a = aggregate(&Inputs {
            members: &members,
            departments: &deps,
            income: &counted,
            standard: Some(&standard()),
            county: "370811",
            as_of: AS_OF,
            declared: None,
        });
        assert_eq!(shown(&a.household.monthly_income_fen), Some(190_000));
        assert!(
            a.household
                .monthly_income_fen
                .as_ref()
                .is_some_and(|f| f.sources().contains(&allowance))
        );
    }

    #[test]
    fn a_missing_department_leaves_its_figures_uncomputed_with_the_reason() {
        let members = [member(1, Vec::new())];
        let deps = [department(
            Department::Labor,
            DepartmentStatus::TimedOut,
            &LABOR,
        )];
        let a = run(&members, &deps, Some(&standard()), None);
        assert_eq!(a.household.monthly_income_fen, None);
        assert_eq!(a.household.monthly_income_per_capita_fen, None);
        assert!(!codes(&a).iter().any(|c| c.starts_with("income_")));
        assert!(
            a.gaps
                .iter()
                .any(|g| g.contains("人社") && g.contains("income")),
            "{:?}",
            a.gaps
        );
    }

    #[test]
    fn a_member_unknown_to_a_department_counts_as_none_and_is_noted() {
        let mut m = member(1, Vec::new());
        m.notes.push(crate::verify::report::MemberNote {
            department: Department::Labor,
            status: "unknown".into(),
            reason: "no record".into(),
        });
        let deps = [department(
            Department::Labor,
            DepartmentStatus::Answered,
            &LABOR,
        )];
        let a = run(&[m], &deps, Some(&standard()), None);
        assert_eq!(shown(&a.household.monthly_income_fen), Some(0));
        assert!(a.gaps.iter().any(|g| g.starts_with("m1")), "{:?}", a.gaps);
    }

    #[test]
    fn declared_amounts_are_flagged_only_beyond_the_tolerance() {
        let st = standard(); // 10 %, at least 100 yuan
        let members = [member(
            1,
            vec![
                fact(FactKind::MonthlyWages, wages(200_000)),
                fact(FactKind::Pension, FactValue::MoneyFen(0)),
                fact(
                    FactKind::SocialInsuranceContributions,
                    FactValue::MoneyFen(0),
                ),
            ],
        )];
        let deps = [department(
            Department::Labor,
            DepartmentStatus::Answered,
            &LABOR,
        )];
        let declared = |fen| Declared {
            household_monthly_income_fen: Some(fen),
            ..Declared::default()
        };
        for (fen, flagged) in [
            (200_000, false),
            (180_000, false),
            (179_999, true),
            (220_001, true),
        ] {
            let a = run(&members, &deps, Some(&st), Some(&declared(fen)));
            assert_eq!(a.discrepancies.len(), usize::from(flagged), "{fen}");
            if flagged {
                let d = &a.discrepancies[0];
                assert_eq!(d.field, DeclaredField::HouseholdMonthlyIncomeFen);
                assert_eq!(
                    (
                        d.declared,
                        d.verified.value().copied(),
                        d.allowed_difference.value().copied()
                    ),
                    (fen, Some(200_000), Some(20_000))
                );
                assert_eq!(d.evidence[0].kind, FactKind::MonthlyWages);
            }
        }
        // Without a standard: no comparison with the line, and the gap says so.
        let a = run(&members, &deps, None, None);
        assert!(a.standard.is_none());
        assert!(
            a.gaps.iter().any(|g| g.contains("no local standard")),
            "{:?}",
            a.gaps
        );
        assert!(!codes(&a).iter().any(|c| c.starts_with("income_")));
        // Bad declarations name the field.
        let bad = Declared {
            floor_area_dm2: Some(-1),
            ..Declared::default()
        };
        assert_eq!(bad.invalid_field().unwrap().0, "declared.floor_area_dm2");
    }
}
