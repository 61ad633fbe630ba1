//! 映射文件: the TOML mapping file that tells the adapter which SQL query answers which fact kind.
//!
//! ```toml
//! department = "labor"            # the department this connector answers for
//!
//! [subject]                       # optional: decides "found" vs "unknown"
//! query = "SELECT 1 FROM persons WHERE resident_id = $1"
//!
//! [facts."labor.pension_monthly"]
//! query = "SELECT pension_fen AS value FROM pensions WHERE resident_id = $1"
//! default = 0                     # used when the query returns no row
//!
//! [facts."labor.monthly_wages"]
//! query = """SELECT month, fen FROM wages
//!            WHERE resident_id = $1 AND month BETWEEN $2 AND $3"""
//! params = ["resident_id", "period_from_month", "period_to_month"]
//! ```
//!
//! Rules, checked at load with errors naming the field:
//! - `department` is a department code; every key under `facts` is a fact kind of that department.
//!   A department or fact kind declared in the hub's `departments.toml` (not in the built-in
//!   catalogue) is known once that file is loaded (`connector serve --policies DIR`,
//!   [`super::load_departments`]).
//! - `params` lists what is bound to the query's placeholders, in order; default `["resident_id"]`.
//!   Allowed: `resident_id`, `as_of`, `period_from`, `period_to` (dates `YYYY-MM-DD`),
//!   `period_from_month`, `period_to_month` (`YYYY-MM`). The reference period is the catalogue's
//!   for the query's `as_of`.
//! - Placeholders are `$1, $2, …` on PostgreSQL and SQLite and `?` on MySQL/MariaDB; the count must
//!   match `params` (checked when the database URL is known, see [`Mapping::check_placeholders`]).
//! - `default` must fit the fact's value type (integer for counts, days, fen and dm²; boolean;
//!   a string from the allowed codes). It is not allowed for `optional_date` (no row already means
//!   "none") and `monthly_fen` (no row means an empty series).
//!
//! Columns a query must return, by the fact's value type:
//!
//! | value type | columns |
//! |---|---|
//! | `bool` | `value`: boolean or integer 0/1 |
//! | `count`, `days` | `value`: non-negative integer |
//! | `money_fen` | `value`: integer fen (分) |
//! | `area_dm2` | `value`: integer square decimetres (0.01 m²) |
//! | `code` | `value`: text, one of the fact's codes |
//! | `optional_date` | `value`: text `YYYY-MM-DD` or NULL (no row = none) |
//! | `monthly_fen` | one row per month: `month` text `YYYY-MM`, `fen` integer |
//!
//! Types outside integers, booleans and text (PostgreSQL `date`, `numeric`) must be cast in SQL
//! (`to_char(d, 'YYYY-MM-DD')`, `amount::bigint`): the adapter reads rows through `sqlx::Any`.
//! On SQLite, a column declared `BOOLEAN` cannot be read through `Any`: select it as
//! `CAST(flag AS INTEGER) AS value` (or declare it INTEGER).

use std::collections::BTreeMap;

use schemas::{Department, FactKind, FactValue, ValueType};
use serde::Deserialize;

/// A mapping-file error: the field (TOML path) and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct MappingError {
    pub field: String,
    pub rule: String,
}

fn err(field: impl Into<String>, rule: impl Into<String>) -> MappingError {
    MappingError {
        field: field.into(),
        rule: rule.into(),
    }
}

/// What a query placeholder is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    ResidentId,
    AsOf,
    PeriodFrom,
    PeriodTo,
    PeriodFromMonth,
    PeriodToMonth,
}

impl Param {
    pub const ALL: [(&'static str, Param); 6] = [
        ("resident_id", Param::ResidentId),
        ("as_of", Param::AsOf),
        ("period_from", Param::PeriodFrom),
        ("period_to", Param::PeriodTo),
        ("period_from_month", Param::PeriodFromMonth),
        ("period_to_month", Param::PeriodToMonth),
    ];

    pub fn name(self) -> &'static str {
        Param::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Placeholder syntax of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// `$1, $2, …` (PostgreSQL, SQLite)
    Dollar,
    /// `?` (MySQL, MariaDB)
    Question,
}

impl Placeholders {
    /// From a database URL scheme.
    pub fn for_url(url: &str) -> Option<Placeholders> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "postgres" | "postgresql" | "sqlite" => Some(Placeholders::Dollar),
            "mysql" | "mariadb" => Some(Placeholders::Question),
            _ => None,
        }
    }
}

/// One SQL query and its bound parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySpec {
    pub sql: String,
    pub params: Vec<Param>,
}

/// How one fact kind is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactMapping {
    pub query: QuerySpec,
    /// The value when the query returns no row; `None` makes the subject `unknown` instead.
    pub default: Option<FactValue>,
}

/// A validated mapping file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub department: Department,
    pub subject: Option<QuerySpec>,
    pub facts: BTreeMap<FactKind, FactMapping>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    department: String,
    subject: Option<RawQuery>,
    #[serde(default)]
    facts: BTreeMap<String, RawFact>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuery {
    query: String,
    params: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFact {
    query: String,
    params: Option<Vec<String>>,
    default: Option<toml::Value>,
}

impl Mapping {
    /// Parse and validate mapping-file text.
    pub fn from_toml(text: &str) -> Result<Mapping, MappingError> {
        let raw: RawMapping = toml::from_str(text).map_err(|e| {
            let msg = e.message().to_owned();
            let field = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!("line {line}")
                })
                .unwrap_or_else(|| "mapping".into());
            err(field, msg)
        })?;
        let department = Department::from_code(&raw.department).ok_or_else(|| {
            err(
                "department",
                format!("{:?} is not a department code (civil_affairs, health, education, housing, labor, justice, disability, or one of the departments.toml given with --policies)", raw.department),
            )
        })?;
        let subject = raw
            .subject
            .map(|q| query_spec("subject", q.query, q.params))
            .transpose()?;
        if raw.facts.is_empty() {
            return Err(err("facts", "must map at least one fact kind"));
        }
        let mut facts = BTreeMap::new();
        for (name, f) in raw.facts {
            let field = format!("facts.\"{name}\"");
            let kind = FactKind::from_code(&name)
                .ok_or_else(|| {
                    err(
                        &field,
                        "is not a fact kind of the catalogue or of the departments.toml given with --policies",
                    )
                })?;
            if kind.department() != department {
                return Err(err(
                    &field,
                    format!("is answered by {}, not {department}", kind.department()),
                ));
            }
            let query = query_spec(&field, f.query, f.params)?;
            let default = f
                .default
                .map(|d| {
                    default_value(kind, &d).map_err(|rule| err(format!("{field}.default"), rule))
                })
                .transpose()?;
            facts.insert(kind, FactMapping { query, default });
        }
        Ok(Mapping {
            department,
            subject,
            facts,
        })
    }

    /// Check every query's placeholders against its `params` for a database's syntax.
    pub fn check_placeholders(&self, style: Placeholders) -> Result<(), MappingError> {
        if let Some(s) = &self.subject {
            check_query("subject.query", s, style)?;
        }
        for (k, f) in &self.facts {
            check_query(&format!("facts.\"{k}\".query"), &f.query, style)?;
        }
        Ok(())
    }
}

fn query_spec(
    field: &str,
    sql: String,
    params: Option<Vec<String>>,
) -> Result<QuerySpec, MappingError> {
    if sql.trim().is_empty() {
        return Err(err(format!("{field}.query"), "must not be empty"));
    }
    let params = match params {
        None => vec![Param::ResidentId],
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Param::ALL
                    .iter()
                    .find(|(name, _)| name == n)
                    .map(|(_, p)| *p)
                    .ok_or_else(|| {
                        err(
                            format!("{field}.params[{i}]"),
                            format!("{n:?} is not one of resident_id, as_of, period_from, period_to, period_from_month, period_to_month"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if !params.contains(&Param::ResidentId) {
        return Err(err(format!("{field}.params"), "must bind resident_id"));
    }
    Ok(QuerySpec { sql, params })
}

fn check_query(field: &str, q: &QuerySpec, style: Placeholders) -> Result<(), MappingError> {
    let n = q.params.len();
    match style {
        Placeholders::Dollar => {
            let used = dollar_placeholders(&q.sql);
            let max = used.iter().copied().max().unwrap_or(0);
            if max != n || (1..=n).any(|i| !used.contains(&i)) {
                return Err(err(
                    field,
                    format!(
                        "uses placeholders {used:?} but params binds {n} value(s); use $1..${n} (PostgreSQL/SQLite syntax)"
                    ),
                ));
            }
        }
        Placeholders::Question => {
            let used = q.sql.matches('?').count();
            if used != n {
                return Err(err(
                    field,
                    format!(
                        "has {used} '?' placeholder(s) but params binds {n} value(s) (MySQL syntax)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The numbers N of the `$N` placeholders in `sql`.
fn dollar_placeholders(sql: &str) -> Vec<usize> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > start
                && let Ok(n) = sql[start..j].parse()
                && !out.contains(&n)
            {
                out.push(n);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out.sort_unstable();
    out
}

fn default_value(kind: FactKind, v: &toml::Value) -> Result<FactValue, String> {
    let spec = kind.spec();
    let int = || {
        v.as_integer().filter(|i| *i >= 0).ok_or_else(|| {
            format!(
                "must be a non-negative integer for value type {:?}",
                spec.value_type
            )
        })
    };
    let value = match spec.value_type {
        ValueType::Bool => FactValue::Bool(v.as_bool().ok_or("must be true or false")?),
        ValueType::Count => FactValue::Count(u32::try_from(int()?).map_err(|_| "too large")?),
        ValueType::Days => FactValue::Days(u32::try_from(int()?).map_err(|_| "too large")?),
        ValueType::MoneyFen => FactValue::MoneyFen(int()?),
        ValueType::AreaDm2 => FactValue::AreaDm2(int()?),
        ValueType::Code => {
            let s = v.as_str().ok_or("must be a string")?;
            if !spec.codes.contains(&s) {
                return Err(format!("{s:?} is not one of {:?}", spec.codes));
            }
            FactValue::Code(s.to_owned())
        }
        ValueType::Division => {
            let s = v.as_str().ok_or("must be a string")?;
            FactValue::Division(
                schemas::DivisionCode::parse(s).map_err(|e| format!("division code: {e}"))?,
            )
        }
        ValueType::OptionalDate => {
            return Err("not allowed for optional_date facts: no row already means none".into());
        }
        ValueType::MonthlyFen => {
            return Err("not allowed for monthly_fen facts: no row means an empty series".into());
        }
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<(), &str>) {
        let got = Mapping::from_toml(text).and_then(|m| m.check_placeholders(Placeholders::Dollar));
        assert_eq!(
            got.map_err(|e| e.to_string()),
            expected.map_err(str::to_owned),
            "{text}"
        );
    }

    const OK: &str = r#"
department = "labor"
[subject]
query = "SELECT 1 FROM p WHERE id = $1"
[facts."labor.pension_monthly"]
query = "SELECT v AS value FROM p WHERE id = $1"
default = 0
[facts."labor.monthly_wages"]
query = "SELECT month, fen FROM w WHERE id = $1 AND month BETWEEN $2 AND $3"
params = ["resident_id", "period_from_month", "period_to_month"]
"#;

    #[test]
    fn mapping_files_are_validated_with_named_fields() {
        check(OK, Ok(()));
        check(
            "department = \"police\"\n[facts.\"labor.pension_monthly\"]\nquery = \"x $1\"",
            Err(
                "department: \"police\" is not a department code (civil_affairs, health, education, housing, labor, justice, disability, or one of the departments.toml given with --policies)",
            ),
        );
        check(
            "department = \"labor\"\n[facts.\"health.hospital_stays_12m\"]\nquery = \"x $1\"",
            Err("facts.\"health.hospital_stays_12m\": is answered by health, not labor"),
        );
        check(
            "department = \"labor\"\n[facts.\"labor.wages\"]\nquery = \"x $1\"",
            Err(
                "facts.\"labor.wages\": is not a fact kind of the catalogue or of the departments.toml given with --policies",
            ),
        );
        check(
            "department = \"labor\"\n[facts.\"labor.pension_monthly\"]\nquery = \"x $1\"\ndefault = -5",
            Err(
                "facts.\"labor.pension_monthly\".default: must be a non-negative integer for value type MoneyFen",
            ),
        );
        check(
            "department = \"labor\"\n[facts.\"labor.employment_status\"]\nquery = \"x $1\"\ndefault = \"idle\"",
            Err(
                "facts.\"labor.employment_status\".default: \"idle\" is not one of [\"employed\", \"self_employed\", \"registered_unemployed\", \"retired\", \"not_in_labor_force\"]",
            ),
        );
        check(
            "department = \"labor\"\n[facts.\"labor.pension_monthly\"]\nquery = \"x $1 $2\"",
            Err(
                "facts.\"labor.pension_monthly\".query: uses placeholders [1, 2] but params binds 1 value(s); use $1..$1 (PostgreSQL/SQLite syntax)",
            ),
        );
        check(
            "department = \"labor\"\n[facts.\"labor.pension_monthly\"]\nquery = \"x $1\"\nparams = [\"as_of\"]",
            Err("facts.\"labor.pension_monthly\".params: must bind resident_id"),
        );
        check(
            "department = \"labor\"\n[facts.\"labor.pension_monthly\"]\nquery = \"x $1\"\nparams = [\"resident_id\", \"today\"]",
            Err(
                "facts.\"labor.pension_monthly\".params[1]: \"today\" is not one of resident_id, as_of, period_from, period_to, period_from_month, period_to_month",
            ),
        );
        check(
            "department = \"labor\"\n",
            Err("facts: must map at least one fact kind"),
        );
    }

    #[test]
    fn mysql_placeholders_are_question_marks() {
        let m = Mapping::from_toml(
            "department = \"labor\"\n[facts.\"labor.pension_monthly\"]\nquery = \"SELECT v AS value FROM p WHERE id = ?\"",
        )
        .unwrap();
        assert_eq!(m.check_placeholders(Placeholders::Question), Ok(()));
        assert!(m.check_placeholders(Placeholders::Dollar).is_err());
        assert_eq!(
            Placeholders::for_url("mysql://u@h/db"),
            Some(Placeholders::Question)
        );
        assert_eq!(
            Placeholders::for_url("postgres://u@h/db"),
            Some(Placeholders::Dollar)
        );
        assert_eq!(
            Placeholders::for_url("sqlite:///tmp/x.db"),
            Some(Placeholders::Dollar)
        );
        assert_eq!(Placeholders::for_url("oracle://x"), None);
    }
}
