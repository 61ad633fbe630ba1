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

use policies::{IncomeRule, LocalStandard};
use schemas::catalogue::{PeriodKind, Unit};
use schemas::{Department, FactKind, FactValue};
use serde::{Deserialize, Serialize};
use time::Date;

use super::report::{DepartmentReport, MemberReport};

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

/// One income component of a member, per month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IncomeItem {
    pub kind: FactKind,
    pub monthly_fen: i64,
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
    pub monthly_income_fen: Option<i64>,
    pub income_items: Vec<IncomeItem>,
    pub situations: Vec<Situation>,
}

/// The household's figures. Absent figures could not be computed (see `gaps`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HouseholdFigures {
    /// Members counted (alive on the reference date).
    pub members_counted: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_income_fen: Option<i64>,
    /// 家庭月人均收入
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_income_per_capita_fen: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties_owned: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_area_dm2: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_area_per_capita_dm2: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_assets_fen: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub financial_assets_per_capita_fen: Option<i64>,
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

/// 提示: an indication with its reason. Never an eligibility decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Indication {
    /// Stable code: `income_below_line`, `income_not_below_line`, `assets_within_limits`,
    /// `properties_above_limit`, `floor_area_above_limit`, `financial_assets_above_limit`,
    /// `special_situation`, `already_assisted`, `member_deceased`.
    pub code: String,
    /// The reason, Chinese first.
    pub text: String,
    pub evidence: Vec<Evidence>,
}

/// 申报差异: a declared amount outside the tolerance of the verified one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Discrepancy {
    /// The declared field, e.g. `declared.household_monthly_income_fen`.
    pub field: String,
    pub declared: i64,
    pub verified: i64,
    /// The largest difference that would not have been flagged.
    pub allowed_difference: i64,
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
    /// What could not be computed or may be incomplete, and why.
    pub gaps: Vec<String>,
    pub disclaimer: String,
}

/// What a caseworker reads under the figures.
pub const DISCLAIMER: &str = "以上为核对提示，不是审批结论；是否符合条件由经办人员依规审核决定。/ These are indications, not a decision; eligibility is decided by the caseworker under the rules.";

/// `¥1,234.56`-style yuan text of an amount in fen.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let fen = fen.unsigned_abs();
    format!("{sign}¥{}.{:02}", fen / 100, fen % 100)
}

fn m2(dm2: i64) -> String {
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
                code: "member_deceased".into(),
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
                    monthly_fen: monthly,
                    deducted: *deducted,
                });
            }
            fig.monthly_income_fen = Some(sum);
            total += sum;
        }
        household.monthly_income_fen = Some(total);
        household.monthly_income_per_capita_fen = Some(total / counted);
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
    household.properties_owned =
        sum_of(&mut cx, FactKind::PropertiesOwned).map(|n| n.clamp(0, i64::from(u32::MAX)) as u32);
    household.floor_area_dm2 = sum_of(&mut cx, FactKind::FloorAreaOwned);
    household.financial_assets_fen = sum_of(&mut cx, FactKind::ProvidentFundBalance);
    if counted > 0 {
        household.floor_area_per_capita_dm2 = household.floor_area_dm2.map(|a| a / counted);
        household.financial_assets_per_capita_fen =
            household.financial_assets_fen.map(|a| a / counted);
    }

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
                format!("在学学生（{stage}） / student ({stage})"),
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
                code: "already_assisted".into(),
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
                code: "special_situation".into(),
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
    let income_kinds: Vec<FactKind> = rule_kinds.iter().map(|(k, _)| *k).collect();
    let standard = inp.standard.map(|s| StandardUsed {
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
    });
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
            if let Some(pc) = household.monthly_income_per_capita_fen {
                let below = pc < s.dibao_line_fen;
                indications.push(Indication {
                    code: if below {
                        "income_below_line"
                    } else {
                        "income_not_below_line"
                    }
                    .into(),
                    text: format!(
                        "家庭月人均收入 {} {} {}{}年低保标准 {} / monthly income per capita {} is {} the {} line of {}",
                        yuan(pc),
                        if below { "低于" } else { "不低于" },
                        s.name,
                        s.year,
                        yuan(s.dibao_line_fen),
                        yuan(pc),
                        if below { "below" } else { "not below" },
                        s.year,
                        yuan(s.dibao_line_fen),
                    ),
                    evidence: evidence_of(&income_kinds),
                });
            }
            let mut over = Vec::new();
            if let Some(n) = household.properties_owned
                && n > s.assets.max_properties
            {
                over.push(Indication {
                    code: "properties_above_limit".into(),
                    text: format!(
                        "家庭名下房产 {n} 套，超过上限 {} 套 / {n} properties, above the limit of {}",
                        s.assets.max_properties, s.assets.max_properties
                    ),
                    evidence: evidence_of(&[FactKind::PropertiesOwned]),
                });
            }
            if let Some(a) = household.floor_area_per_capita_dm2
                && a > s.assets.max_floor_area_per_capita_dm2
            {
                over.push(Indication {
                    code: "floor_area_above_limit".into(),
                    text: format!(
                        "人均住房建筑面积 {}，超过上限 {} / floor area per capita {}, above the limit of {}",
                        m2(a),
                        m2(s.assets.max_floor_area_per_capita_dm2),
                        m2(a),
                        m2(s.assets.max_floor_area_per_capita_dm2)
                    ),
                    evidence: evidence_of(&[FactKind::FloorAreaOwned]),
                });
            }
            if let Some(f) = household.financial_assets_per_capita_fen
                && f > s.assets.max_financial_assets_per_capita_fen
            {
                over.push(Indication {
                    code: "financial_assets_above_limit".into(),
                    text: format!(
                        "人均金融资产 {}，超过上限 {} / financial assets per capita {}, above the limit of {}",
                        yuan(f),
                        yuan(s.assets.max_financial_assets_per_capita_fen),
                        yuan(f),
                        yuan(s.assets.max_financial_assets_per_capita_fen)
                    ),
                    evidence: evidence_of(&[FactKind::ProvidentFundBalance]),
                });
            }
            let all_assets_known = household.properties_owned.is_some()
                && household.floor_area_per_capita_dm2.is_some()
                && household.financial_assets_per_capita_fen.is_some();
            if over.is_empty() && all_assets_known {
                indications.push(Indication {
                    code: "assets_within_limits".into(),
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
        let mut check = |field: &str,
                         declared: Option<i64>,
                         verified: Option<i64>,
                         allowed: &dyn Fn(i64) -> i64,
                         fmt: &dyn Fn(i64) -> String,
                         kinds: &[FactKind],
                         gaps: &mut Vec<String>| {
            let Some(declared) = declared else { return };
            let Some(verified) = verified else {
                gaps.push(format!(
                    "{field}：核对值无法核算，未比较 / {field}: no verified figure to compare with"
                ));
                return;
            };
            let allowed_difference = allowed(verified);
            if (declared - verified).abs() > allowed_difference {
                discrepancies.push(Discrepancy {
                    field: field.to_owned(),
                    declared,
                    verified,
                    allowed_difference,
                    text: format!(
                        "申报 {} 与核对 {} 相差 {}，超过容差 {} / declared {} differs from verified {} by {}, more than the tolerance of {}",
                        fmt(declared),
                        fmt(verified),
                        fmt((declared - verified).abs()),
                        fmt(allowed_difference),
                        fmt(declared),
                        fmt(verified),
                        fmt((declared - verified).abs()),
                        fmt(allowed_difference),
                    ),
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
        let count = |n: i64| format!("{n} 套 / {n}");
        check(
            "declared.household_monthly_income_fen",
            d.household_monthly_income_fen,
            household.monthly_income_fen,
            &money_allowed,
            &yuan,
            &income_kinds,
            &mut cx.gaps,
        );
        check(
            "declared.properties_owned",
            d.properties_owned.map(i64::from),
            household.properties_owned.map(i64::from),
            &|_| 0,
            &count,
            &[FactKind::PropertiesOwned],
            &mut cx.gaps,
        );
        check(
            "declared.floor_area_dm2",
            d.floor_area_dm2,
            household.floor_area_dm2,
            &area_allowed,
            &m2,
            &[FactKind::FloorAreaOwned],
            &mut cx.gaps,
        );
        check(
            "declared.financial_assets_fen",
            d.financial_assets_fen,
            household.financial_assets_fen,
            &money_allowed,
            &yuan,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::report::{DepartmentStatus, ReportedFact};
    use schemas::MonthAmount;
    use time::macros::date;

    const AS_OF: Date = date!(2026 - 11 - 29);

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

    fn codes(a: &Aggregation) -> Vec<&str> {
        a.indications.iter().map(|i| i.code.as_str()).collect()
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
        assert_eq!(a.household.monthly_income_fen, Some(170_000));
        assert_eq!(a.household.monthly_income_per_capita_fen, Some(85_000));
        assert!(!a.members[2].counted);
        assert!(codes(&a).contains(&"member_deceased"));
        assert!(codes(&a).contains(&"income_below_line"), "{:?}", codes(&a));
        assert_eq!(
            a.standard.as_ref().unwrap().dibao_line_fen,
            st.dibao_line_fen
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
        assert_eq!(a.household.monthly_income_fen, Some(0));
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
                assert_eq!(d.field, "declared.household_monthly_income_fen");
                assert_eq!(
                    (d.declared, d.verified, d.allowed_difference),
                    (fen, 200_000, 20_000)
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
