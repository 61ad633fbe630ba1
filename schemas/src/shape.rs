//! Objects where objects are declared.
//!
//! serde's derived `Deserialize` for a struct accepts a JSON **array** as well as an object and
//! reads the fields by position: `{"members":[["张三","3708…"]]}` is read as a member whose `name`
//! and `resident_id` come from the array. No client of ours sends that, and a body read by position
//! is not the body its sender meant (a reordered field list silently swaps values). Every JSON body
//! the hub or a connector accepts is therefore walked against the JSON Schema generated from its
//! Rust type before the typed decode: an array is accepted only where the schema allows one.
//!
//! The walk is structural only (types, `$ref`, `properties`, `additionalProperties`, `items`,
//! `prefixItems` and the combinators); every other rule is left to the typed decode and the
//! validators. Where the schema allows anything (`true`, no `type`) the walk stops.
//!
//! Invariant: [`first_positional_array`] never quotes the instance: it returns a path made of the
//! schema's property names and array indices only. Held by `shape::tests`.

use serde_json::Value;

/// The path of the first array in `instance` at a place where `root` (a JSON Schema, draft 2020-12
/// or OpenAPI components, `$ref`s resolved against `root` itself) allows no array; `None` when there
/// is none. Paths read `members[0].income` (the body itself is `body`).
pub fn first_positional_array(instance: &Value, root: &Value) -> Option<String> {
    let mut path = Vec::new();
    walk(instance, &[root], root, &mut path, 0)
}

/// A step of the path to a value: an object key or an array index.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Deeper than any body we accept; a guard against pathological schemas, not inputs (the JSON
/// parser already limits nesting to 128).
const MAX_DEPTH: usize = 64;

fn walk<'a>(
    value: &'a Value,
    schemas: &[&'a Value],
    root: &'a Value,
    path: &mut Vec<Step<'a>>,
    depth: usize,
) -> Option<String> {
    if depth > MAX_DEPTH || !matches!(value, Value::Array(_) | Value::Object(_)) {
        return None;
    }
    let mut branches = Vec::new();
    for s in schemas {
        flatten(s, root, &mut branches, 0);
    }
    if branches.iter().any(|b| b.is_none()) {
        // Some branch allows anything here, at any depth.
        return None;
    }
    let branches: Vec<&Value> = branches.into_iter().flatten().collect();
    match value {
        Value::Array(items) => {
            if !branches.iter().any(|b| allows(b, "array")) {
                return Some(render(path));
            }
            for (i, item) in items.iter().enumerate() {
                let children: Vec<&Value> = branches
                    .iter()
                    .filter(|b| allows(b, "array"))
                    .filter_map(|b| item_schema(b, i))
                    .collect();
                if children.is_empty() {
                    continue;
                }
                path.push(Step::Index(i));
                let found = walk(item, &children, root, path, depth + 1);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        Value::Object(map) => {
            for (key, v) in map {
                let mut children = Vec::new();
                let mut open = false;
                for b in branches.iter().filter(|b| allows(b, "object")) {
                    match property_schema(b, key) {
                        Property::Schema(s) => children.push(s),
                        Property::Open => open = true,
                        Property::Silent => {}
                    }
                }
                if open || children.is_empty() {
                    // Unknown to every branch: the typed decode refuses or ignores it.
                    continue;
                }
                path.push(Step::Key(key));
                let found = walk(v, &children, root, path, depth + 1);
                path.pop();
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        _ => None,
    }
}

/// The concrete branches of `schema`: `$ref`s followed, `allOf`/`anyOf`/`oneOf` expanded. `None`
/// stands for a branch that allows any value.
fn flatten<'a>(schema: &'a Value, root: &'a Value, out: &mut Vec<Option<&'a Value>>, depth: usize) {
    if depth > MAX_DEPTH {
        out.push(None);
        return;
    }
    let obj = match schema {
        Value::Bool(true) => return out.push(None),
        Value::Bool(false) => return,
        Value::Object(o) => o,
        _ => return out.push(None),
    };
    let mut structural = false;
    if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
        structural = true;
        match resolve(root, target) {
            Some(s) => flatten(s, root, out, depth + 1),
            None => out.push(None),
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = obj.get(key).and_then(Value::as_array) {
            structural = true;
            for s in list {
                flatten(s, root, out, depth + 1);
            }
        }
    }
    let constrains = ["type", "const", "enum", "properties", "items"]
        .iter()
        .any(|k| obj.contains_key(*k));
    if constrains {
        out.push(Some(schema));
    } else if !structural {
        // `{}` or annotations only: anything goes.
        out.push(None);
    }
}

/// Whether a concrete branch admits a value of JSON type `ty` ("array" or "object").
fn allows(branch: &Value, ty: &str) -> bool {
    if let Some(c) = branch.get("const") {
        return json_type(c) == ty;
    }
    if let Some(list) = branch.get("enum").and_then(Value::as_array) {
        return list.iter().any(|v| json_type(v) == ty);
    }
    match branch.get("type") {
        Some(Value::String(t)) => t == ty,
        Some(Value::Array(ts)) => ts.iter().any(|t| t.as_str() == Some(ty)),
        // `properties` or `items` without `type` only constrain values of that type.
        _ => true,
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        _ => "scalar",
    }
}

fn item_schema(branch: &Value, i: usize) -> Option<&Value> {
    if let Some(p) = branch
        .get("prefixItems")
        .and_then(Value::as_array)
        .and_then(|p| p.get(i))
    {
        return Some(p);
    }
    match branch.get("items") {
        Some(s) => Some(s),
        // No `items`: any item is allowed.
        None => Some(&Value::Bool(true)),
    }
}

/// What a branch says about property `key`.
enum Property<'a> {
    /// Its schema (`additionalProperties: false` yields `false`).
    Schema(&'a Value),
    /// Anything goes: a free-form object (no `properties`, `additionalProperties` absent or true).
    Open,
    /// Nothing: the branch declares other properties only. A sibling part of the same schema (the
    /// `properties` beside a `oneOf`, or another `allOf` member) may declare it.
    Silent,
}

fn property_schema<'a>(branch: &'a Value, key: &str) -> Property<'a> {
    let properties = branch.get("properties");
    if let Some(s) = properties.and_then(|p| p.get(key)) {
        return Property::Schema(s);
    }
    match branch.get("additionalProperties") {
        Some(Value::Bool(true)) | None if properties.is_none() => Property::Open,
        Some(Value::Bool(true)) | None => Property::Silent,
        Some(s) => Property::Schema(s),
    }
}

/// A local reference (`#/$defs/X`, `#/components/schemas/X`) resolved against `root`.
fn resolve<'a>(root: &'a Value, target: &str) -> Option<&'a Value> {
    let pointer = target.strip_prefix('#')?;
    root.pointer(pointer)
}

fn render(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    if out.is_empty() {
        "body".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Member {
        name: String,
        tags: Vec<String>,
        extra: Option<Inner>,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        a: u32,
        b: u32,
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Body {
        members: Vec<Member>,
        pair: (u32, Inner),
        free: serde_json::Value,
        inner: Inner,
    }

    fn schema() -> Value {
        serde_json::to_value(schemars::schema_for!(Body)).unwrap()
    }

    fn good() -> Value {
        json!({
            "members": [{"name": "x", "tags": ["a", "b"], "extra": {"a": 1, "b": 2}}],
            "pair": [1, {"a": 1, "b": 2}],
            "free": [[1, 2], {"x": []}],
            "inner": {"a": 1, "b": 2},
        })
    }

    #[test]
    fn arrays_where_arrays_are_declared_pass() {
        assert_eq!(first_positional_array(&good(), &schema()), None);
        // And serde reads the same body.
        let _: Body = serde_json::from_value(good()).unwrap();
    }

    #[test]
    fn a_struct_sent_as_an_array_is_named_by_its_path() {
        let root = schema();
        let cases = [
            ("/inner", json!([1, 2]), "inner"),
            ("/members/0", json!(["x", [], null]), "members[0]"),
            ("/members/0/extra", json!([1, 2]), "members[0].extra"),
            ("/pair/1", json!([1, 2]), "pair[1]"),
        ];
        for (pointer, replacement, path) in cases {
            let mut body = good();
            *body.pointer_mut(pointer).unwrap() = replacement;
            // serde alone would have read it by position.
            assert!(
                serde_json::from_value::<Body>(body.clone()).is_ok(),
                "{pointer}: serde accepts it, which is why the walk exists"
            );
            assert_eq!(
                first_positional_array(&body, &root).as_deref(),
                Some(path),
                "{pointer}"
            );
        }
        assert_eq!(
            first_positional_array(&json!([null, null]), &root).as_deref(),
            Some("body")
        );
    }

    #[test]
    fn the_path_never_quotes_the_instance() {
        let mut body = good();
        body["members"][0]["extra"] = json!(["370811199001011234", 1]);
        let path = first_positional_array(&body, &schema()).unwrap();
        assert!(!path.contains("3708"), "{path}");
    }

    /// An internally tagged enum with a shared field: the variant's fields sit in `oneOf`
    /// branches beside the struct's own `properties` (the shape of a department's result).
    #[test]
    fn fields_of_a_tagged_variant_beside_shared_properties_are_walked() {
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[serde(tag = "status", rename_all = "snake_case")]
        #[allow(dead_code)]
        enum Outcome {
            Found { facts: Vec<Inner> },
            Unknown { reason: String },
        }
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[allow(dead_code)]
        struct Result {
            subject_ref: String,
            #[serde(flatten)]
            outcome: Outcome,
        }
        let root = serde_json::to_value(schemars::schema_for!(Result)).unwrap();
        let ok = json!({"subject_ref": "m1", "status": "found", "facts": [{"a": 1, "b": 2}]});
        assert_eq!(first_positional_array(&ok, &root), None);
        let bad = json!({"subject_ref": "m1", "status": "found", "facts": [[1, 2]]});
        assert!(serde_json::from_value::<Result>(bad.clone()).is_ok());
        assert_eq!(
            first_positional_array(&bad, &root).as_deref(),
            Some("facts[0]")
        );
    }

    #[test]
    fn open_schemas_stop_the_walk() {
        assert_eq!(first_positional_array(&json!([[1]]), &json!(true)), None);
        assert_eq!(first_positional_array(&json!([[1]]), &json!({})), None);
        assert_eq!(
            first_positional_array(&json!({"a": [1]}), &json!({"type": "object"})),
            None
        );
        assert_eq!(
            first_positional_array(&json!([1]), &json!({"type": "object"})).as_deref(),
            Some("body")
        );
    }
}
