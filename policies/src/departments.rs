//! 部门目录: the departments the hub works with (`departments.toml`), as data.
//!
//! Each entry gives a department's code, its Chinese and English names, the fact kinds it answers
//! (from the fact catalogue, or declared in full under `fact_kinds`) and the event kinds it may push
//! (`<code>.<event>`). Adding a department (应急管理 `emergency`, …) is an entry here plus its
//! `[departments.<code>]` connector and key in the hub's config and a client certificate: no code
//! change. Cedar already treats every department alike (`Agency::"<code>"`).
//!
//! A declared fact kind (`[department.<code>.fact_kinds."<code>.<fact>"]`: `value_type`, `unit`,
//! `period`, `validity_days`, `name_zh`, `name_en`, and `codes` for a `code` value) is registered
//! in [`schemas::FactKind`]'s process registry, so purpose profiles, mapping files and the wire
//! accept it like a catalogue kind.
//!
//! Invariants:
//! - The seven built-ins are always present, with their code and names byte for byte (an entry that
//!   renames one is refused); an entry may list them to declare their event kinds.
//! - A bad file is refused whole, before anything is registered: the hub keeps the departments it
//!   had. A valid file registers its departments in [`schemas::Department`]'s process registry
//!   (which only grows), so that their codes parse everywhere (certificates, the wire).
//! - A fact kind belongs to the department of its code prefix; an event kind likewise. A declared
//!   fact kind never redefines a catalogue kind (refused, naming the key).

use std::collections::BTreeMap;
use std::path::Path;

use schemas::{Department, FactDecl, FactKind, FactKindError, PeriodKind, Unit, ValueType};

use crate::error::PolicyError;
use crate::toml_util as t;

/// The file in a policy directory.
pub const DEPARTMENTS_FILE: &str = "departments.toml";

/// One department as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentSpec {
    pub department: Department,
    pub name_zh: String,
    pub name_en: String,
    /// The fact kinds it answers through connector protocol v1 (catalogue kinds, then declared).
    pub facts: Vec<FactKind>,
    /// The fact kinds it declares (outside the built-in catalogue), as declared.
    pub declared: Vec<FactDecl>,
    /// The event kinds it may push (`<code>.<event>`).
    pub events: Vec<String>,
}

/// The department directory: the built-ins and those `departments.toml` adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departments {
    by_code: BTreeMap<Department, DepartmentSpec>,
}

fn built_in_spec(d: Department) -> DepartmentSpec {
    DepartmentSpec {
        department: d,
        name_zh: d.name_zh().to_owned(),
        name_en: d.name_en().to_owned(),
        facts: FactKind::BUILT_IN
            .iter()
            .copied()
            .filter(|k| k.department() == d)
            .collect(),
        declared: Vec::new(),
        events: schemas::events::KnownKind::ALL
            .iter()
            .map(|k| k.code())
            .filter(|k| k.split_once('.').is_some_and(|(p, _)| p == d.code()))
            .map(str::to_owned)
            .collect(),
    }
}

fn name_ok(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= 64 && !s.chars().any(char::is_control)
}

/// The key path of a declared fact kind: `department.<code>.fact_kinds."<kind>"`.
fn decl_key(prefix: &str, kind: &str) -> String {
    format!("{prefix}.fact_kinds.\"{kind}\"")
}

/// A registry refusal as a file error naming the declaration's field.
fn decl_error(file: &Path, prefix: &str, kind: &str, e: FactKindError) -> PolicyError {
    let text = e.to_string();
    let (field, rule) = text.split_once(": ").unwrap_or(("", text.as_str()));
    let field = field.split(", ").next().unwrap_or(field);
    let key = decl_key(prefix, kind);
    let key = if field == "code" || field.is_empty() {
        key
    } else {
        format!("{key}.{field}")
    };
    PolicyError::toml(file, key, rule.to_owned())
}

/// One of the serde enums of the catalogue (`value_type`, `unit`, `period`) from its wire name.
fn wire_enum<T: serde::de::DeserializeOwned>(
    file: &Path,
    key: &str,
    v: &toml::Value,
    allowed: &str,
) -> Result<T, PolicyError> {
    let s = t::string(file, key, v)?;
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s))
        .map_err(|_| PolicyError::toml(file, key, format!("{s:?} is not one of {allowed}")))
}

/// The `fact_kinds` table of one department entry: each declaration checked in full (nothing
/// registered here).
fn declarations(
    file: &Path,
    prefix: &str,
    code: &str,
    v: &toml::Value,
) -> Result<Vec<FactDecl>, PolicyError> {
    let mut out = Vec::new();
    for (kind, v) in t::table(file, &format!("{prefix}.fact_kinds"), v)? {
        let key = decl_key(prefix, kind);
        if kind.split_once('.').is_none_or(|(d, _)| d != code) {
            return Err(PolicyError::toml(
                file,
                key,
                format!("a fact kind of `{code}` is named `{code}.<fact>`"),
            ));
        }
        let table = t::table(file, &key, v)?;
        t::only_keys(
            file,
            &key,
            table,
            &[
                "value_type",
                "unit",
                "period",
                "validity_days",
                "name_zh",
                "name_en",
                "codes",
            ],
        )?;
        let field = |f: &str| t::required(file, &key, table, f);
        let sub = |f: &str| format!("{key}.{f}");
        let value_type: ValueType = wire_enum(
            file,
            &sub("value_type"),
            field("value_type")?,
            "bool, count, money_fen, area_dm2, days, code, optional_date, monthly_fen, division",
        )?;
        let unit: Unit = wire_enum(
            file,
            &sub("unit"),
            field("unit")?,
            "none, fen, fen_per_month, fen_per_academic_year, dm2, count, days",
        )?;
        let period: PeriodKind = wire_enum(
            file,
            &sub("period"),
            field("period")?,
            "as_of, trailing_12_months, current_month, academic_year",
        )?;
        let validity_days = t::int(
            file,
            &sub("validity_days"),
            field("validity_days")?,
            1,
            3650,
        )? as u32;
        let name = |f: &str| -> Result<String, PolicyError> {
            let s = t::string(file, &sub(f), field(f)?)?;
            if !name_ok(s) {
                return Err(PolicyError::toml(
                    file,
                    sub(f),
                    "must be 1 to 64 characters, no control characters",
                ));
            }
            Ok(s.to_owned())
        };
        let (name_zh, name_en) = (name("name_zh")?, name("name_en")?);
        let codes = match table.get("codes") {
            Some(v) => t::strings(file, &sub("codes"), v)?
                .into_iter()
                .map(|(_, c)| c.to_owned())
                .collect(),
            None => Vec::new(),
        };
        let decl = FactDecl {
            code: kind.clone(),
            value_type,
            unit,
            period,
            validity_days,
            name_zh,
            name_en,
            codes,
        };
        decl.check()
            .map_err(|e| decl_error(file, prefix, kind, e))?;
        out.push(decl);
    }
    Ok(out)
}

impl Departments {
    /// The seven built-ins alone (no `departments.toml`).
    pub fn built_in() -> Departments {
        Departments {
            by_code: Department::ALL
                .into_iter()
                .map(|d| (d, built_in_spec(d)))
                .collect(),
        }
    }

    /// Load `departments.toml` from a policy directory; without it, the built-ins.
    pub fn load_dir(dir: &Path) -> Result<Departments, PolicyError> {
        let file = dir.join(DEPARTMENTS_FILE);
        if !file.exists() {
            return Ok(Departments::built_in());
        }
        let src = crate::engine::read(&file)?;
        Departments::parse(&file, &src)
    }

    /// Parse the text of a departments file (`file` names it in errors) and register its
    /// departments. Nothing is registered unless the whole file is valid.
    pub fn parse(file: &Path, src: &str) -> Result<Departments, PolicyError> {
        let doc = t::parse(file, src)?;
        t::only_keys(file, "", &doc, &["department"])?;
        let mut entries = Vec::new();
        if let Some(v) = doc.get("department") {
            for (code, v) in t::table(file, "department", v)? {
                let prefix = format!("department.{code}");
                if !schemas::vocab::department_code_ok(code) {
                    return Err(PolicyError::toml(
                        file,
                        prefix,
                        "a department code is 2 to 32 lower-case letters and underscores",
                    ));
                }
                let table = t::table(file, &prefix, v)?;
                t::only_keys(
                    file,
                    &prefix,
                    table,
                    &["name_zh", "name_en", "facts", "fact_kinds", "events"],
                )?;
                let name = |key: &str| -> Result<String, PolicyError> {
                    let k = format!("{prefix}.{key}");
                    let s = t::string(file, &k, t::required(file, &prefix, table, key)?)?;
                    if !name_ok(s) {
                        return Err(PolicyError::toml(
                            file,
                            k,
                            "must be 1 to 64 characters, no control characters",
                        ));
                    }
                    Ok(s.to_owned())
                };
                let (name_zh, name_en) = (name("name_zh")?, name("name_en")?);
                let built_in = Department::ALL.into_iter().find(|d| d.code() == code);
                if let Some(d) = built_in
                    && (d.name_zh() != name_zh || d.name_en() != name_en)
                {
                    return Err(PolicyError::toml(
                        file,
                        prefix,
                        format!(
                            "built-in department keeps its names: name_zh = {:?}, name_en = {:?}",
                            d.name_zh(),
                            d.name_en()
                        ),
                    ));
                }
                let own = |k: &str| k.split_once('.').is_some_and(|(p, _)| p == code);
                let declared = match table.get("fact_kinds") {
                    Some(v) => declarations(file, &prefix, code, v)?,
                    None => Vec::new(),
                };
                let mut facts = Vec::new();
                if let Some(v) = table.get("facts") {
                    for (k, f) in t::strings(file, &format!("{prefix}.facts"), v)? {
                        if declared.iter().any(|d| d.code == f) {
                            continue; // added with the declarations below
                        }
                        let kind = FactKind::from_code(f)
                            .filter(|k| k.is_built_in() && own(f))
                            .ok_or_else(|| {
                                PolicyError::toml(
                                    file,
                                    &k,
                                    format!(
                                        "{f:?} is not a fact kind of `{code}` in the catalogue"
                                    ),
                                )
                            })?;
                        if facts.contains(&kind) {
                            return Err(PolicyError::toml(file, k, "listed twice"));
                        }
                        facts.push(kind);
                    }
                } else if let Some(d) = built_in {
                    facts = built_in_spec(d).facts;
                }
                let mut events = Vec::new();
                if let Some(v) = table.get("events") {
                    for (k, e) in t::strings(file, &format!("{prefix}.events"), v)? {
                        let shaped = e.split_once('.').is_some_and(|(_, ev)| {
                            !ev.is_empty()
                                && ev.len() <= 48
                                && ev.as_bytes()[0].is_ascii_lowercase()
                                && ev.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                        });
                        if !own(e) || !shaped {
                            return Err(PolicyError::toml(
                                file,
                                k,
                                format!(
                                    "{e:?} must be `{code}.<event>` in lower case and underscores"
                                ),
                            ));
                        }
                        if events.iter().any(|x| x == e) {
                            return Err(PolicyError::toml(file, k, "listed twice"));
                        }
                        events.push(e.to_owned());
                    }
                } else if let Some(d) = built_in {
                    events = built_in_spec(d).events;
                }
                entries.push((code.clone(), name_zh, name_en, facts, declared, events));
            }
        }
        // The whole file is valid: register, then fill in the built-ins it does not list.
        let mut out = Departments::built_in();
        for (code, name_zh, name_en, mut facts, declared, events) in entries {
            let department = Department::register(&code, &name_zh, &name_en).map_err(|e| {
                PolicyError::toml(file, format!("department.{code}"), e.to_string())
            })?;
            for decl in &declared {
                // Checked in full above; only an unregistered department could fail here, and
                // it was registered just now.
                let kind = FactKind::register(decl)
                    .map_err(|e| decl_error(file, &format!("department.{code}"), &decl.code, e))?;
                if !facts.contains(&kind) {
                    facts.push(kind);
                }
            }
            out.by_code.insert(
                department,
                DepartmentSpec {
                    department,
                    name_zh,
                    name_en,
                    facts,
                    declared,
                    events,
                },
            );
        }
        Ok(out)
    }

    /// Every department, built-ins first.
    pub fn iter(&self) -> impl Iterator<Item = &DepartmentSpec> {
        self.by_code.values()
    }

    /// The department of this code, if this directory has it.
    pub fn get(&self, code: &str) -> Option<&DepartmentSpec> {
        let d = Department::from_code(code)?;
        self.by_code.get(&d)
    }

    /// May `department` push events of `kind`?
    pub fn may_push(&self, department: &str, kind: &str) -> bool {
        self.get(department)
            .is_some_and(|s| s.events.iter().any(|e| e == kind))
    }

    /// Is `kind` an event kind some department may push?
    pub fn knows_event(&self, kind: &str) -> bool {
        self.by_code
            .values()
            .any(|s| s.events.iter().any(|e| e == kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, expected: Result<(), &str>) {
        let got = Departments::parse(Path::new("departments.toml"), src);
        match (got, expected) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{e} ∌ {want}"),
            (got, want) => panic!("{src}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn shipped_file_adds_emergency_and_keeps_the_built_ins() {
        let d = Departments::load_dir(&crate::PolicyEngine::shipped_dir()).expect("loads");
        let e = d.get("emergency").expect("emergency");
        assert_eq!(
            (e.name_zh.as_str(), e.name_en.as_str()),
            ("应急管理", "emergency management")
        );
        assert!(d.may_push("emergency", "emergency.disaster_victim"));
        assert!(!d.may_push("health", "emergency.disaster_victim"));
        assert_eq!(
            Department::from_code("emergency").map(|d| d.name_zh()),
            Some("应急管理")
        );
        for b in Department::ALL {
            assert_eq!(d.get(b.code()), Some(&built_in_spec(b)), "{b}");
        }
        assert_eq!(d.iter().count(), 8);
        let relief =
            FactKind::from_code("emergency.disaster_relief_received_12m").expect("declared");
        assert_eq!(e.facts, vec![relief]);
        let spec = relief.spec();
        assert_eq!(
            (
                spec.department.code(),
                spec.value_type,
                spec.unit,
                spec.period
            ),
            (
                "emergency",
                ValueType::MoneyFen,
                Unit::Fen,
                PeriodKind::Trailing12Months
            )
        );
        assert_eq!(
            (spec.validity_days, spec.name_zh),
            (30, "近12个月受灾救助金额")
        );
    }

    const DECLARED: &str = "[department.flood_office]\nname_zh = \"防汛办\"\nname_en = \"flood control office\"\n[department.flood_office.fact_kinds.\"flood_office.evacuated\"]\nvalue_type = \"code\"\nunit = \"none\"\nperiod = \"as_of\"\nvalidity_days = 7\nname_zh = \"转移安置状态\"\nname_en = \"evacuation status\"\ncodes = [\"none\", \"evacuated\"]\n";

    /// A bad fact declaration refuses the whole file, naming file, entry and field, and
    /// registers nothing (neither the department nor any kind).
    #[test]
    fn bad_fact_declarations_refuse_the_whole_file() {
        let cases: [(&str, &str, &str); 9] = [
            (
                "value_type = \"code\"",
                "value_type = \"float\"",
                ".value_type: \"float\" is not one of",
            ),
            (
                "unit = \"none\"",
                "unit = \"fen\"",
                ".unit: Fen does not fit value type Code",
            ),
            ("period = \"as_of\"", "period = \"yearly\"", ".period"),
            (
                "validity_days = 7",
                "validity_days = 0",
                ".validity_days: 0 is out of range",
            ),
            ("name_zh = \"转移安置状态\"", "name_zh = \"\"", ".name_zh"),
            ("codes = [\"none\", \"evacuated\"]", "codes = []", ".codes"),
            (
                "codes = [\"none\", \"evacuated\"]",
                "codes = [\"none\", \"none\"]",
                ".codes",
            ),
            (
                "validity_days = 7",
                "validity_days = 7\ncolour = 1",
                "unknown key",
            ),
            (
                "\"flood_office.evacuated\"]",
                "\"labor.evacuated\"]",
                "fact_kinds.\"labor.evacuated\"",
            ),
        ];
        for (good, bad, want) in cases {
            let src = DECLARED.replace(good, bad);
            assert_ne!(src, DECLARED, "{good}");
            let e = Departments::parse(Path::new("departments.toml"), &src)
                .expect_err(bad)
                .to_string();
            assert!(
                e.starts_with("departments.toml: department.flood_office"),
                "{e}"
            );
            assert!(e.contains(want), "{e} ∌ {want}");
            assert_eq!(Department::from_code("flood_office"), None, "{bad}");
            assert_eq!(FactKind::from_code("flood_office.evacuated"), None, "{bad}");
        }
        // A catalogue kind cannot be redefined by a declaration.
        check(
            "[department.labor]\nname_zh = \"人社\"\nname_en = \"human resources and social security\"\n[department.labor.fact_kinds.\"labor.pension_monthly\"]\nvalue_type = \"money_fen\"\nunit = \"fen_per_month\"\nperiod = \"current_month\"\nvalidity_days = 365\nname_zh = \"养老金\"\nname_en = \"pension\"\n",
            Err(
                "department.labor.fact_kinds.\"labor.pension_monthly\": built-in fact kind `labor.pension_monthly` is defined by the catalogue",
            ),
        );
    }

    #[test]
    fn a_declared_fact_kind_is_registered_and_answered() {
        // Another department than the refusal test's, which runs concurrently.
        let src = DECLARED.replace("flood_office", "drought_office");
        let d = Departments::parse(Path::new("departments.toml"), &src).expect("valid");
        let kind = FactKind::from_code("drought_office.evacuated").expect("registered");
        assert_eq!(
            d.get("drought_office").map(|s| s.facts.clone()),
            Some(vec![kind])
        );
        assert_eq!(kind.spec().codes, &["none", "evacuated"]);
        assert_eq!(kind.department().name_zh(), "防汛办");
        // Loading the same file again (a reload) is idempotent.
        Departments::parse(Path::new("departments.toml"), &src).expect("reload");
        assert_eq!(FactKind::from_code("drought_office.evacuated"), Some(kind));
    }

    #[test]
    fn bad_files_are_refused_naming_the_key() {
        check("", Ok(()));
        check(
            "[department.river_office]\nname_zh = \"河长办\"\nname_en = \"river chief office\"\nevents = [\"river_office.flood_warning\"]\n",
            Ok(()),
        );
        check(
            "[department.Emergency]\nname_zh = \"x\"\nname_en = \"x\"\n",
            Err("department.Emergency"),
        );
        check(
            "[department.emergency]\nname_zh = \"应急管理\"\n",
            Err("department.emergency.name_en"),
        );
        check(
            "[department.health]\nname_zh = \"卫生\"\nname_en = \"health\"\n",
            Err("built-in department keeps its names"),
        );
        check(
            "[department.emergency]\nname_zh = \"应急\"\nname_en = \"e\"\nevents = [\"health.hospitalisation\"]\n",
            Err("department.emergency.events[0]"),
        );
        check(
            "[department.emergency]\nname_zh = \"应急\"\nname_en = \"e\"\nfacts = [\"labor.monthly_wages\"]\n",
            Err("department.emergency.facts[0]"),
        );
        check(
            "[department.emergency]\nname_zh = \"应急\"\nname_en = \"e\"\ncolour = 1\n",
            Err("unknown key"),
        );
        check("[unit]\n", Err("unknown key"));
    }
}
