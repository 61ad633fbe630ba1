//! 部门目录: the departments the hub works with (`departments.toml`), as data.
//!
//! Each entry gives a department's code, its Chinese and English names, the fact kinds it answers
//! (from the fact catalogue) and the event kinds it may push (`<code>.<event>`). Adding a department
//! (应急管理 `emergency`, …) is an entry here plus its `[departments.<code>]` connector and key in
//! the hub's config and a client certificate: no code change. Cedar already treats every department
//! alike (`Agency::"<code>"`).
//!
//! Invariants:
//! - The seven built-ins are always present, with their code and names byte for byte (an entry that
//!   renames one is refused); an entry may list them to declare their event kinds.
//! - A bad file is refused whole, before anything is registered: the hub keeps the departments it
//!   had. A valid file registers its departments in [`schemas::Department`]'s process registry
//!   (which only grows), so that their codes parse everywhere (certificates, the wire).
//! - A fact kind belongs to the department of its code prefix; an event kind likewise.

use std::collections::BTreeMap;
use std::path::Path;

use schemas::{Department, FactKind};

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
    /// The fact kinds it answers through connector protocol v1.
    pub facts: Vec<FactKind>,
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
        facts: FactKind::served_by(d).collect(),
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
                    &["name_zh", "name_en", "facts", "events"],
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
                let mut facts = Vec::new();
                if let Some(v) = table.get("facts") {
                    for (k, f) in t::strings(file, &format!("{prefix}.facts"), v)? {
                        let kind = FactKind::from_code(f).filter(|_| own(f)).ok_or_else(|| {
                            PolicyError::toml(
                                file,
                                &k,
                                format!("{f:?} is not a fact kind of `{code}` in the catalogue"),
                            )
                        })?;
                        if facts.contains(&kind) {
                            return Err(PolicyError::toml(file, k, "listed twice"));
                        }
                        facts.push(kind);
                    }
                } else if let Some(d) = built_in {
                    facts = FactKind::served_by(d).collect();
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
                entries.push((code.clone(), name_zh, name_en, facts, events));
            }
        }
        // The whole file is valid: register, then fill in the built-ins it does not list.
        let mut out = Departments::built_in();
        for (code, name_zh, name_en, facts, events) in entries {
            let department = Department::register(&code, &name_zh, &name_en).map_err(|e| {
                PolicyError::toml(file, format!("department.{code}"), e.to_string())
            })?;
            out.by_code.insert(
                department,
                DepartmentSpec {
                    department,
                    name_zh,
                    name_en,
                    facts,
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
