//! 判定表: the decision table — cases of (identity, action, resource, context → expected decision)
//! run against a policy engine. The shipped table (`tests/decisions.toml`) runs in CI, and the hub's
//! `hub policy check DIR --table FILE` runs any table against any policy directory.
//!
//! Each case may name `policy` (an id that must be among the deciding policies) and `rule` (the
//! policy the case exercises). [`TableReport::coverage_gaps`] lists every loaded policy that lacks
//! an allow case or a deny case tagged with it, so a new rule without tests shows up.

use std::collections::BTreeMap;
use std::path::Path;

use schemas::{DivisionCode, Identity, Role};
use serde::Deserialize;

use crate::action::Action;
use crate::engine::{Decision, PolicyEngine, RequestCtx, ResourceCtx, read};
use crate::error::PolicyError;

/// An identity as written in a table: the certificate fields that matter to policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableIdentity {
    role: Role,
    organisation: String,
    division: DivisionCode,
    principal: String,
}

impl TableIdentity {
    fn to_identity(&self) -> Identity {
        Identity {
            uri: format!(
                "spiffe://jishijiu.jining/{}/{}/{}/{}",
                self.role, self.organisation, self.division, self.principal
            ),
            principal: self.principal.clone(),
            role: self.role,
            organisation: self.organisation.clone(),
            division: self.division.clone(),
            display_name: self.principal.clone(),
            serial: "00".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Expect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    /// A key of `[identities]`.
    identity: String,
    action: Action,
    #[serde(default)]
    resource: ResourceCtx,
    #[serde(default)]
    context: RequestCtx,
    expect: Expect,
    /// A policy id that must be among the deciding policies.
    #[serde(default)]
    policy: Option<String>,
    /// The policy this case exercises (for coverage); defaults to `policy`.
    #[serde(default)]
    rule: Option<String>,
    /// The case is expected to be refused before Cedar runs (a malformed request).
    #[serde(default)]
    expect_error: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    identities: BTreeMap<String, TableIdentity>,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

/// A case whose decision differed from the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFailure {
    /// The case's position in the file (0-based) and name.
    pub index: usize,
    pub name: String,
    /// What went wrong, in one line.
    pub problem: String,
    pub decision: Decision,
}

/// The result of running a decision table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub cases: usize,
    pub passed: usize,
    pub failures: Vec<CaseFailure>,
    /// Loaded policies without an allow case or without a deny case tagged with them.
    pub coverage_gaps: Vec<String>,
}

impl TableReport {
    /// True when every case passed (coverage gaps are reported separately).
    pub fn all_passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// True when every case passed and every policy has both an allow and a deny case.
    pub fn complete(&self) -> bool {
        self.all_passed() && self.coverage_gaps.is_empty()
    }
}

impl std::fmt::Display for TableReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "判定表 / decision table: {}/{} cases passed",
            self.passed, self.cases
        )?;
        for fail in &self.failures {
            writeln!(
                f,
                "  FAIL case[{}] {:?}: {} (allowed={}, policies={:?}, reason={:?}, errors={:?})",
                fail.index,
                fail.name,
                fail.problem,
                fail.decision.allowed,
                fail.decision.policy_ids,
                fail.decision.reason,
                fail.decision.errors
            )?;
        }
        for gap in &self.coverage_gaps {
            writeln!(f, "  GAP {gap}")?;
        }
        Ok(())
    }
}

/// Run the decision table at `path` against `engine`. A malformed table is an error naming the file
/// and the problem; a case that decides differently is a failure in the report.
pub fn run_decision_table(
    engine: &PolicyEngine,
    path: impl AsRef<Path>,
) -> Result<TableReport, PolicyError> {
    let path = path.as_ref();
    let src = read(path)?;
    let table: Table = toml::from_str(&src).map_err(|e| {
        let at = e.span().map_or_else(
            || "(document)".to_owned(),
            |s| {
                let (line, col) = crate::error::line_col(&src, s.start);
                format!("line {line}, column {col}")
            },
        );
        PolicyError::toml(path, at, e.message().to_owned())
    })?;

    let known: Vec<&str> = engine.policy_ids().collect();
    // (allow seen, deny seen) per exercised policy id
    let mut seen: BTreeMap<&str, (bool, bool)> =
        known.iter().map(|id| (*id, (false, false))).collect();
    let mut failures = Vec::new();
    for (index, case) in table.cases.iter().enumerate() {
        let key = format!("case[{index}]");
        let Some(ti) = table.identities.get(&case.identity) else {
            return Err(PolicyError::toml(
                path,
                format!("{key}.identity"),
                format!("unknown identity {:?} (not in [identities])", case.identity),
            ));
        };
        for (field, id) in [("policy", &case.policy), ("rule", &case.rule)] {
            if let Some(id) = id
                && !known.contains(&id.as_str())
            {
                return Err(PolicyError::toml(
                    path,
                    format!("{key}.{field}"),
                    format!("no loaded policy has id {id:?}"),
                ));
            }
        }
        let decision = engine.authorize(
            &ti.to_identity(),
            case.action,
            &case.resource,
            &case.context,
        );
        let mut problems = Vec::new();
        let expected_allow = case.expect == Expect::Allow;
        if decision.allowed != expected_allow {
            problems.push(format!(
                "expected {}, got {}",
                if expected_allow { "allow" } else { "deny" },
                if decision.allowed { "allow" } else { "deny" }
            ));
        }
        if let Some(id) = &case.policy
            && !decision.policy_ids.contains(id)
        {
            problems.push(format!(
                "expected policy {id:?} among the deciding policies"
            ));
        }
        if case.expect_error == decision.errors.is_empty() {
            problems.push(if case.expect_error {
                "expected a request error".to_owned()
            } else {
                "unexpected evaluation error".to_owned()
            });
        }
        if let Some(rule) = case.rule.as_ref().or(case.policy.as_ref())
            && let Some(s) = seen.get_mut(rule.as_str())
        {
            if expected_allow {
                s.0 = true;
            } else {
                s.1 = true;
            }
        }
        if problems.is_empty() {
            continue;
        }
        failures.push(CaseFailure {
            index,
            name: case.name.clone(),
            problem: problems.join("; "),
            decision,
        });
    }
    let coverage_gaps = seen
        .into_iter()
        .filter_map(|(id, (allow, deny))| match (allow, deny) {
            (true, true) => None,
            (false, true) => Some(format!("{id}: no allow case")),
            (true, false) => Some(format!("{id}: no deny case")),
            (false, false) => Some(format!("{id}: no case at all")),
        })
        .collect();
    Ok(TableReport {
        cases: table.cases.len(),
        passed: table.cases.len() - failures.len(),
        failures,
        coverage_gaps,
    })
}
