//! The committed JSON Schemas under `schemas/json/` must match the Rust types. When they drift this
//! test fails; regenerate with `UPDATE_SCHEMAS=1 cargo test -p schemas --test json_schemas` and
//! commit the files (they are the contract partner departments implement against).

use std::path::PathBuf;

#[test]
fn committed_schemas_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1");
    let mut drifted = Vec::new();
    for (name, schema) in schemas::validate::generated_schemas() {
        let path = dir.join(name);
        let expected = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != expected {
            if update {
                std::fs::write(&path, &expected).unwrap();
            } else {
                drifted.push(name);
            }
        }
    }
    assert!(
        drifted.is_empty(),
        "committed JSON Schemas differ from the types: {drifted:?}\n\
         regenerate with: UPDATE_SCHEMAS=1 cargo test -p schemas --test json_schemas\n\
         (then rebuild: the validators embed the files)"
    );
}
