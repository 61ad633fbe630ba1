//! Load-time refusals: an invalid policy set, profile or standard is an error that names the file
//! and the line (Cedar) or key (TOML). Each test copies the shipped directory, breaks one thing, and
//! checks what the error says.

use std::path::{Path, PathBuf};

use policies::{PolicyEngine, PolicyError};

/// A copy of the shipped policy directory in a temporary directory.
fn shipped_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = PolicyEngine::shipped_dir();
    for sub in ["policies", "profiles", "standards", "calendar"] {
        let to = tmp.path().join(sub);
        std::fs::create_dir_all(&to).expect("mkdir");
        for entry in std::fs::read_dir(src.join(sub)).expect("read shipped dir") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    tmp
}

/// Replace `old` (which must occur) with `new` in `root/rel`.
fn edit(root: &Path, rel: &str, old: &str, new: &str) {
    let path = root.join(rel);
    let src = std::fs::read_to_string(&path).expect("read");
    assert!(src.contains(old), "{rel} does not contain {old:?}");
    std::fs::write(&path, src.replacen(old, new, 1)).expect("write");
}

fn write(root: &Path, rel: &str, text: &str) {
    std::fs::write(root.join(rel), text).expect("write");
}

/// The 1-based line of the first occurrence of `needle` in `root/rel`.
fn line_of(root: &Path, rel: &str, needle: &str) -> usize {
    let src = std::fs::read_to_string(root.join(rel)).expect("read");
    let off = src.find(needle).expect("needle present");
    src[..off].matches('\n').count() + 1
}

fn load_err(root: &Path) -> PolicyError {
    match PolicyEngine::load(root) {
        Ok(_) => panic!("loaded a broken policy directory"),
        Err(e) => e,
    }
}

/// Expect a Cedar error whose problems include one at `file:line` with `fragment` in its message.
fn check_cedar(root: &Path, file: &str, line: usize, fragment: &str) {
    let err = load_err(root);
    let want: PathBuf = root.join(file);
    let problems = err.problems();
    assert!(
        problems
            .iter()
            .any(|p| p.file == want && p.line == line && p.message.contains(fragment)),
        "expected a problem at {}:{line} mentioning {fragment:?}, got:\n{err}",
        want.display()
    );
    // The rendered message (what the hub prints when it refuses to start) names file and line.
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("{}:{line}:", want.display())),
        "{shown}"
    );
}

/// Expect a TOML error naming `file` and `key`, with `fragment` in its message.
fn check_toml(root: &Path, file: &str, key: &str, fragment: &str) {
    match load_err(root) {
        PolicyError::Toml {
            file: f,
            key: k,
            message,
        } => {
            assert_eq!(f, root.join(file), "file");
            assert_eq!(k, key, "key ({message})");
            assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
        }
        other => panic!("expected a TOML error at {file} {key}, got {other}"),
    }
}

#[test]
fn shipped_directory_loads() {
    let engine = PolicyEngine::load(PolicyEngine::shipped_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert!(engine.policy_ids().count() >= 20);
    let (file, line) = engine
        .policy_source("township-caseworker-own-township")
        .expect("known policy");
    assert!(file.ends_with("policies/jurisdiction.cedar"));
    assert!(line > 1);
}

#[test]
fn syntax_error_names_file_and_line() {
    let tmp = shipped_copy();
    let root = tmp.path();
    // drop the closing parenthesis of the scope of a policy in the middle of the file
    edit(
        root,
        "policies/auditors.cedar",
        "action == Action::\"search_log\",\n  resource is AccessLog\n);",
        "action == Action::\"search_log\",\n  resource is AccessLog\n;",
    );
    let line = line_of(
        root,
        "policies/auditors.cedar",
        "  resource is AccessLog\n;",
    ) + 1;
    check_cedar(root, "policies/auditors.cedar", line, "unexpected token");
}

#[test]
fn schema_violation_names_file_and_line() {
    let tmp = shipped_copy();
    let root = tmp.path();
    // a misspelt attribute: parses fine, fails strict validation
    edit(
        root,
        "policies/jurisdiction.cedar",
        "when { principal.level == Level::\"county\" }",
        "when { principal.levle == Level::\"county\" }",
    );
    let line = line_of(root, "policies/jurisdiction.cedar", "principal.levle");
    check_cedar(root, "policies/jurisdiction.cedar", line, "levle");
}

#[test]
fn unknown_enum_member_is_a_schema_violation() {
    let tmp = shipped_copy();
    let root = tmp.path();
    // a purpose that does not exist: caught by the Purpose enum in the schema
    edit(
        root,
        "policies/authorization.cedar",
        "Purpose::\"temporary_assistance\"",
        "Purpose::\"temporary_asistance\"",
    );
    let line = line_of(root, "policies/authorization.cedar", "temporary_asistance");
    check_cedar(
        root,
        "policies/authorization.cedar",
        line,
        "temporary_asistance",
    );
}

#[test]
fn unknown_action_is_a_schema_violation() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "policies/admin.cedar",
        "action == Action::\"administer\",\n  resource is System",
        "action == Action::\"administrate\",\n  resource is System",
    );
    let line = line_of(root, "policies/admin.cedar", "administrate");
    check_cedar(root, "policies/admin.cedar", line, "administrate");
}

#[test]
fn schema_syntax_error_names_schema_file_and_line() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "policies/hub.cedarschema",
        "entity AccessLog;",
        "entity AccessLog",
    );
    // the parser stops at the next token, on the following non-blank line
    let err = load_err(root);
    let p = &err.problems()[0];
    assert_eq!(p.file, root.join("policies/hub.cedarschema"), "{err}");
    let decl = line_of(root, "policies/hub.cedarschema", "entity AccessLog");
    assert!(p.line > decl && p.line <= decl + 3, "{err}");
}

#[test]
fn policy_without_id_is_refused_at_its_line() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "policies/admin.cedar",
        "@id(\"admin-administers\")\n",
        "",
    );
    let line = line_of(root, "policies/admin.cedar", "permit (");
    check_cedar(root, "policies/admin.cedar", line, "no @id");
}

#[test]
fn duplicate_id_is_refused_naming_both_places() {
    let tmp = shipped_copy();
    let root = tmp.path();
    write(
        root,
        "policies/extra.cedar",
        "// 重复 / duplicate\n@id(\"admin-administers\")\npermit (principal is Admin, action == Action::\"administer\", resource);\n",
    );
    check_cedar(root, "policies/extra.cedar", 2, "admin.cedar");
}

#[test]
fn forbid_without_reason_is_refused() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "policies/raw_values.cedar",
        "@reason_en(\"this purpose does not need raw department values; only derived results are shown\")\n",
        "",
    );
    let line = line_of(
        root,
        "policies/raw_values.cedar",
        "@id(\"raw-values-only-when-purpose-needs\")",
    );
    check_cedar(root, "policies/raw_values.cedar", line, "@reason_en");
}

#[test]
fn problems_in_several_files_are_all_reported() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "policies/admin.cedar",
        "principal is Admin,",
        "principal is Admn,",
    );
    edit(
        root,
        "policies/auditors.cedar",
        "resource is AccessLog",
        "resource is AccesLog",
    );
    let err = load_err(root);
    for f in ["policies/admin.cedar", "policies/auditors.cedar"] {
        assert!(
            err.problems()
                .iter()
                .any(|p| p.file == root.join(f) && p.line > 0),
            "{f} missing from:\n{err}"
        );
    }
}

#[test]
fn missing_schema_is_refused() {
    let tmp = shipped_copy();
    let root = tmp.path();
    std::fs::remove_file(root.join("policies/hub.cedarschema")).expect("rm");
    let err = load_err(root);
    assert!(
        matches!(&err, PolicyError::Missing { path, .. } if path == &root.join("policies")),
        "{err}"
    );
}

// ---- profiles ----

#[test]
fn profile_unknown_fact_kind_names_file_purpose_and_kind() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "profiles/housing_aid.toml",
        "\"labor.pension_monthly\",\n  \"labor.unemployment_benefit_monthly\",\n  \"labor.social",
        "\"labor.pension_monthly\",\n  \"labor.lottery_winnings\",\n  \"labor.social",
    );
    check_toml(
        root,
        "profiles/housing_aid.toml",
        "ask.labor[2]",
        "purpose housing_aid: unknown fact kind \"labor.lottery_winnings\"",
    );
}

#[test]
fn profile_unknown_department_names_key() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "profiles/education_aid.toml",
        "disability = [\"disability.certificate\"]",
        "tax = [\"disability.certificate\"]",
    );
    check_toml(
        root,
        "profiles/education_aid.toml",
        "ask.tax",
        "unknown department",
    );
}

#[test]
fn profile_fact_of_another_department_is_refused() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "profiles/temporary_assistance.toml",
        "housing = [\"housing.properties_owned\"]",
        "housing = [\"labor.monthly_wages\"]",
    );
    check_toml(
        root,
        "profiles/temporary_assistance.toml",
        "ask.housing[0]",
        "answered by labor",
    );
}

#[test]
fn profile_unknown_purpose_names_key() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "profiles/tekun_support.toml",
        "purpose = \"tekun_support\"",
        "purpose = \"tekun\"",
    );
    check_toml(
        root,
        "profiles/tekun_support.toml",
        "purpose",
        "unknown purpose \"tekun\"",
    );
}

#[test]
fn raw_visible_kind_must_be_asked() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "profiles/tekun_support.toml",
        "raw_visible = [\"labor.pension_monthly\"]",
        "raw_visible = [\"labor.pension_monthly\", \"health.medical_expenses_total_12m\"]",
    );
    check_toml(
        root,
        "profiles/tekun_support.toml",
        "raw_visible[1]",
        "not asked",
    );
}

#[test]
fn income_component_must_be_money() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "profiles/tekun_support.toml",
        "counted = [\"labor.monthly_wages\", \"labor.pension_monthly\"]",
        "counted = [\"labor.monthly_wages\", \"labor.employment_status\"]",
    );
    check_toml(
        root,
        "profiles/tekun_support.toml",
        "income.counted[1]",
        "not an amount of money",
    );
}

#[test]
fn profile_unknown_key_is_refused() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "profiles/medical_assistance.toml",
        "purpose = \"medical_assistance\"",
        "purpose = \"medical_assistance\"\nraw_visable = []",
    );
    check_toml(
        root,
        "profiles/medical_assistance.toml",
        "raw_visable",
        "unknown key",
    );
}

#[test]
fn missing_profile_is_refused() {
    let tmp = shipped_copy();
    let root = tmp.path();
    std::fs::remove_file(root.join("profiles/housing_aid.toml")).expect("rm");
    let err = load_err(root);
    assert!(err.to_string().contains("housing_aid"), "{err}");
}

// ---- standards ----

#[test]
fn standard_unknown_county_names_key() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "standards/2026.toml",
        "[county.370830]",
        "[county.370890]",
    );
    check_toml(
        root,
        "standards/2026.toml",
        "county.370890",
        "unknown county",
    );
}

#[test]
fn standard_wrong_name_names_key() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "standards/2026.toml",
        "name = \"汶上县\"",
        "name = \"汶上区\"",
    );
    check_toml(root, "standards/2026.toml", "county.370830.name", "汶上县");
}

#[test]
fn standard_missing_field_names_key() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "standards/2026.toml",
        "name = \"梁山县\"\ndibao_line_fen = 95_000\n",
        "name = \"梁山县\"\n",
    );
    check_toml(
        root,
        "standards/2026.toml",
        "county.370832.dibao_line_fen",
        "missing",
    );
}

#[test]
fn standard_out_of_range_names_key() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(
        root,
        "standards/2026.toml",
        "name = \"梁山县\"\ndibao_line_fen = 95_000\n",
        "name = \"梁山县\"\ndibao_line_fen = -5\n",
    );
    check_toml(
        root,
        "standards/2026.toml",
        "county.370832.dibao_line_fen",
        "out of range",
    );
}

#[test]
fn standard_missing_county_is_refused() {
    let tmp = shipped_copy();
    let root = tmp.path();
    let path = root.join("standards/2026.toml");
    let src = std::fs::read_to_string(&path).expect("read");
    let start = src.find("[county.370883]").expect("zoucheng");
    std::fs::write(&path, &src[..start]).expect("write");
    check_toml(root, "standards/2026.toml", "county.370883", "邹城市");
}

#[test]
fn standard_toml_syntax_error_names_line() {
    let tmp = shipped_copy();
    let root = tmp.path();
    edit(root, "standards/2026.toml", "year = 2026", "year = = 2026");
    let line = line_of(root, "standards/2026.toml", "year = = 2026");
    check_toml(
        root,
        "standards/2026.toml",
        &format!("line {line}, column 8"),
        "TOML syntax",
    );
}
