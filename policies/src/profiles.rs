//! 用途档案: purpose profiles — for each purpose, which fact kinds each department is asked (so a
//! department is only asked what the purpose needs), which of them a caseworker may see raw, and
//! which income components count toward per-capita income.
//!
//! One TOML file per purpose under `profiles/`, named `<purpose>.toml`:
//!
//! ```toml
//! purpose = "dibao_application"
//! raw_visible = ["labor.monthly_wages"]
//! [ask]
//! labor = ["labor.monthly_wages", "labor.pension_monthly"]
//! [income]
//! counted = ["labor.monthly_wages", "labor.pension_monthly"]
//! deducted = []
//! ```
//!
//! Invariants checked at load (an error names the file and key): every purpose has exactly one
//! profile; department keys are known departments; every fact kind is in the catalogue and is
//! answered by the department it is listed under, once; raw-visible and income kinds are among the
//! kinds asked; income kinds are money-valued.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use schemas::catalogue::{FactKind, ValueType};
use schemas::{Department, Purpose};

use crate::engine::{files_with_ext, read};
use crate::error::PolicyError;
use crate::toml_util as t;

/// 收入口径: which fact kinds count toward household income and which are deducted from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomeRule {
    /// Counted as income (wages, pension, unemployment benefit, ...).
    pub counted: Vec<FactKind>,
    /// Deducted from income (e.g. personal social-insurance contributions).
    pub deducted: Vec<FactKind>,
}

/// 用途档案: what one purpose asks and shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeProfile {
    pub purpose: Purpose,
    /// Fact kinds asked of each department, in file order. Departments not listed are not asked.
    pub ask: BTreeMap<Department, Vec<FactKind>>,
    /// Fact kinds whose raw values a caseworker may see for this purpose.
    pub raw_visible: BTreeSet<FactKind>,
    pub income: IncomeRule,
}

/// All purpose profiles, one per purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profiles {
    by_purpose: BTreeMap<Purpose, PurposeProfile>,
}

impl Profiles {
    /// Load and validate every `*.toml` in `dir`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Profiles, PolicyError> {
        let dir = dir.as_ref();
        let mut by_purpose: BTreeMap<Purpose, PurposeProfile> = BTreeMap::new();
        let mut origin: BTreeMap<Purpose, std::path::PathBuf> = BTreeMap::new();
        for file in files_with_ext(dir, "toml")? {
            let src = read(&file)?;
            let profile = parse_profile(&file, &src)?;
            if let Some(first) = origin.get(&profile.purpose) {
                return Err(PolicyError::toml(
                    &file,
                    "purpose",
                    format!(
                        "purpose {} already has a profile in {}",
                        profile.purpose,
                        first.display()
                    ),
                ));
            }
            origin.insert(profile.purpose, file.clone());
            by_purpose.insert(profile.purpose, profile);
        }
        if let Some(missing) = Purpose::ALL.iter().find(|p| !by_purpose.contains_key(p)) {
            return Err(PolicyError::Missing {
                path: dir.to_owned(),
                what: format!("no profile for purpose {missing} (expected {missing}.toml)"),
            });
        }
        Ok(Profiles { by_purpose })
    }

    /// The profile of one purpose.
    pub fn profile(&self, purpose: Purpose) -> &PurposeProfile {
        // Load guarantees a profile for every purpose.
        &self.by_purpose[&purpose]
    }

    /// 核对计划: the fact kinds to ask each department for this purpose.
    pub fn plan(&self, purpose: Purpose) -> BTreeMap<Department, Vec<FactKind>> {
        self.profile(purpose).ask.clone()
    }

    /// True when a caseworker may see `kind`'s raw value for this purpose.
    pub fn raw_visible(&self, purpose: Purpose, kind: FactKind) -> bool {
        self.profile(purpose).raw_visible.contains(&kind)
    }

    /// The income components for the per-capita income computation.
    pub fn income(&self, purpose: Purpose) -> &IncomeRule {
        &self.profile(purpose).income
    }
}

fn parse_profile(file: &Path, src: &str) -> Result<PurposeProfile, PolicyError> {
    let doc = t::parse(file, src)?;
    t::only_keys(
        file,
        "",
        &doc,
        &[
            "purpose",
            "name_zh",
            "name_en",
            "ask",
            "raw_visible",
            "income",
        ],
    )?;
    for k in ["name_zh", "name_en"] {
        if let Some(v) = doc.get(k) {
            t::string(file, k, v)?;
        }
    }
    let code = t::string(file, "purpose", t::required(file, "", &doc, "purpose")?)?;
    let purpose = Purpose::from_code(code).ok_or_else(|| {
        PolicyError::toml(
            file,
            "purpose",
            format!(
                "unknown purpose {code:?} (known: {})",
                Purpose::ALL.map(Purpose::code).join(", ")
            ),
        )
    })?;
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem != code {
        return Err(PolicyError::toml(
            file,
            "purpose",
            format!("purpose {code:?} must live in {code}.toml"),
        ));
    }

    let ask_table = t::table(file, "ask", t::required(file, "", &doc, "ask")?)?;
    let mut ask: BTreeMap<Department, Vec<FactKind>> = BTreeMap::new();
    let mut asked: BTreeSet<FactKind> = BTreeSet::new();
    for (dept_code, kinds) in ask_table {
        let key = format!("ask.{dept_code}");
        let dept = Department::from_code(dept_code).ok_or_else(|| {
            PolicyError::toml(
                file,
                &key,
                format!(
                    "unknown department {dept_code:?} (known: {})",
                    Department::ALL.map(Department::code).join(", ")
                ),
            )
        })?;
        let mut list = Vec::new();
        for (k, name) in t::strings(file, &key, kinds)? {
            let kind = fact_kind(file, &k, purpose, name)?;
            if kind.department() != dept {
                return Err(PolicyError::toml(
                    file,
                    k,
                    format!(
                        "fact kind {name} is answered by {}, not {dept}",
                        kind.department()
                    ),
                ));
            }
            if !asked.insert(kind) {
                return Err(PolicyError::toml(
                    file,
                    k,
                    format!("fact kind {name} listed twice"),
                ));
            }
            list.push(kind);
        }
        if !list.is_empty() {
            ask.insert(dept, list);
        }
    }

    let mut raw_visible = BTreeSet::new();
    if let Some(v) = doc.get("raw_visible") {
        for (k, name) in t::strings(file, "raw_visible", v)? {
            let kind = fact_kind(file, &k, purpose, name)?;
            if !asked.contains(&kind) {
                return Err(PolicyError::toml(
                    file,
                    k,
                    format!("fact kind {name} is raw-visible but not asked of any department"),
                ));
            }
            raw_visible.insert(kind);
        }
    }

    let mut income = IncomeRule::default();
    if let Some(v) = doc.get("income") {
        let tbl = t::table(file, "income", v)?;
        t::only_keys(file, "income", tbl, &["counted", "deducted"])?;
        for (field, out) in [
            ("counted", &mut income.counted),
            ("deducted", &mut income.deducted),
        ] {
            let Some(v) = tbl.get(field) else { continue };
            for (k, name) in t::strings(file, &format!("income.{field}"), v)? {
                let kind = fact_kind(file, &k, purpose, name)?;
                if !asked.contains(&kind) {
                    return Err(PolicyError::toml(
                        file,
                        k,
                        format!("income component {name} is not asked of any department"),
                    ));
                }
                if !matches!(
                    kind.spec().value_type,
                    ValueType::MoneyFen | ValueType::MonthlyFen
                ) {
                    return Err(PolicyError::toml(
                        file,
                        k,
                        format!("income component {name} is not an amount of money"),
                    ));
                }
                out.push(kind);
            }
        }
        if let Some(both) = income.counted.iter().find(|k| income.deducted.contains(k)) {
            return Err(PolicyError::toml(
                file,
                "income.deducted",
                format!("{both} is both counted and deducted"),
            ));
        }
    }

    Ok(PurposeProfile {
        purpose,
        ask,
        raw_visible,
        income,
    })
}

fn fact_kind(
    file: &Path,
    key: &str,
    purpose: Purpose,
    name: &str,
) -> Result<FactKind, PolicyError> {
    FactKind::from_code(name).ok_or_else(|| {
        PolicyError::toml(
            file,
            key,
            format!("purpose {purpose}: unknown fact kind {name:?} (not in the fact catalogue)"),
        )
    })
}
