//! Runs the shipped decision table (`tests/decisions.toml`) against the shipped policies: every case
//! must decide as written, and every policy must have an allow case and a deny case.

use policies::{PolicyEngine, run_decision_table};

#[test]
fn shipped_table_passes_against_shipped_policies() {
    let dir = PolicyEngine::shipped_dir();
    let engine = PolicyEngine::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    let report = run_decision_table(&engine, dir.join("tests/decisions.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.cases >= 40, "table shrank to {} cases", report.cases);
    assert!(report.complete(), "{report}");
}
