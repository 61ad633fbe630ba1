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

fn engine() -> PolicyEngine {
    PolicyEngine::load(PolicyEngine::shipped_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn run(table: &str) -> Result<policies::TableReport, policies::PolicyError> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("t.toml");
    std::fs::write(&path, table).expect("write");
    run_decision_table(&engine(), &path)
}

const IDENTITIES: &str = r#"
[identities.cw]
role = "caseworker"
organisation = "mz-370811002"
division = "370811002"
principal = "cw-0001"
"#;

#[test]
fn wrong_expectations_are_reported_per_case() {
    let table = format!(
        "{IDENTITIES}
[[case]]
name = \"right\"
identity = \"cw\"
action = \"search_log\"
expect = \"deny\"
policy = \"log-search-auditors-only\"

[[case]]
name = \"wrong decision\"
identity = \"cw\"
action = \"search_log\"
expect = \"allow\"

[[case]]
name = \"wrong policy\"
identity = \"cw\"
action = \"search_log\"
expect = \"deny\"
policy = \"only-admin-administers\"
"
    );
    let report = run(&table).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.cases, report.passed), (3, 1));
    let failed: Vec<(usize, &str)> = report
        .failures
        .iter()
        .map(|f| (f.index, f.problem.as_str()))
        .collect();
    assert_eq!(
        failed,
        vec![
            (1, "expected allow, got deny"),
            (
                2,
                "expected policy \"only-admin-administers\" among the deciding policies"
            ),
        ]
    );
    // a two-case table leaves most policies without cases
    assert!(!report.complete());
    assert!(
        report
            .coverage_gaps
            .contains(&"log-search-auditors-only: no allow case".to_owned()),
        "{report}"
    );
    assert!(
        report
            .coverage_gaps
            .contains(&"admin-administers: no case at all".to_owned())
    );
}

fn check_table_error(case: &str, key: &str, fragment: &str) {
    let table = format!("{IDENTITIES}\n[[case]]\n{case}\n");
    match run(&table) {
        Ok(r) => panic!("accepted a bad table: {r}"),
        Err(policies::PolicyError::Toml {
            key: k, message, ..
        }) => {
            assert!(k.contains(key), "key {k:?} lacks {key:?} ({message})");
            assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[test]
fn malformed_tables_are_errors_naming_the_case() {
    check_table_error(
        "name = \"x\"\nidentity = \"nobody\"\naction = \"search_log\"\nexpect = \"deny\"",
        "case[0].identity",
        "nobody",
    );
    check_table_error(
        "name = \"x\"\nidentity = \"cw\"\naction = \"search_log\"\nexpect = \"deny\"\npolicy = \"no-such-rule\"",
        "case[0].policy",
        "no-such-rule",
    );
    check_table_error(
        "name = \"x\"\nidentity = \"cw\"\naction = \"delete_all\"\nexpect = \"deny\"",
        "line",
        "delete_all",
    );
    check_table_error(
        "name = \"x\"\nidentity = \"cw\"\naction = \"search_log\"\nexpect = \"maybe\"",
        "line",
        "maybe",
    );
}
