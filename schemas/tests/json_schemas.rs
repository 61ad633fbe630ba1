//! The committed JSON Schemas under `schemas/json/` must match the Rust types. When they drift this
//! test fails; regenerate with `UPDATE_SCHEMAS=1 cargo test -p schemas --test json_schemas` and
//! commit the files (they are the contract partner departments implement against).

use std::path::PathBuf;

use serde_json::Value;

/// The same value with every object's keys in sorted order, so the committed files do not depend on
/// whether another crate in the build turned on serde_json's `preserve_order`.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[test]
fn committed_schemas_match_the_types() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1");
    let mut drifted = Vec::new();
    for (name, schema) in schemas::validate::generated_schemas() {
        let path = dir.join(name);
        let expected = serde_json::to_string_pretty(&sorted(&schema)).unwrap() + "\n";
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        // Compare as JSON values: key order is not part of the contract.
        let same =
            serde_json::from_str::<Value>(&committed).is_ok_and(|c| sorted(&c) == sorted(&schema));
        if !same || (update && committed != expected) {
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
