//! JSON Schema validation of protocol messages against the **committed** schema files under
//! `schemas/json/` (the contract partner departments implement against).
//!
//! Invariants: the validators are compiled once, from files embedded at build time; no `$ref` is
//! fetched from the network or the file system. Error messages carry the JSON path and the rule,
//! with instance values masked so a resident ID number can never leak through a validation error.

use std::sync::LazyLock;

use serde_json::Value;

/// The committed JSON Schema for [`crate::protocol::FactQuery`].
pub const FACT_QUERY_SCHEMA: &str = include_str!("../json/fact-query.schema.json");
/// The committed JSON Schema for [`crate::protocol::SignedAnswer`].
pub const SIGNED_ANSWER_SCHEMA: &str = include_str!("../json/signed-answer.schema.json");
/// The committed JSON Schema for [`crate::events::SignedEvent`].
pub const SIGNED_EVENT_SCHEMA: &str = include_str!("../json/signed-event.schema.json");
/// The committed JSON Schema for [`crate::protocol::ProtocolError`].
pub const PROTOCOL_ERROR_SCHEMA: &str = include_str!("../json/protocol-error.schema.json");

/// A message that fails its schema: the first few violations, each `path: rule`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fails the JSON Schema: {}", violations.join("; "))]
pub struct SchemaViolation {
    pub violations: Vec<String>,
}

/// How many violations are reported at most.
const MAX_REPORTED: usize = 5;

struct Compiled(Result<jsonschema::Validator, String>);

fn compile(src: &str) -> Compiled {
    let result = serde_json::from_str::<Value>(src)
        .map_err(|e| format!("committed schema is not JSON: {e}"))
        .and_then(|schema| {
            jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| format!("committed schema does not compile: {e}"))
        });
    Compiled(result)
}

static FACT_QUERY: LazyLock<Compiled> = LazyLock::new(|| compile(FACT_QUERY_SCHEMA));
static SIGNED_ANSWER: LazyLock<Compiled> = LazyLock::new(|| compile(SIGNED_ANSWER_SCHEMA));
static SIGNED_EVENT: LazyLock<Compiled> = LazyLock::new(|| compile(SIGNED_EVENT_SCHEMA));
static PROTOCOL_ERROR: LazyLock<Compiled> = LazyLock::new(|| compile(PROTOCOL_ERROR_SCHEMA));

fn run(compiled: &Compiled, instance: &Value) -> Result<(), SchemaViolation> {
    let validator = compiled.0.as_ref().map_err(|e| SchemaViolation {
        violations: vec![e.clone()],
    })?;
    let violations: Vec<String> = validator
        .iter_errors(instance)
        .take(MAX_REPORTED)
        .map(|e| {
            let path = e.instance_path().to_string();
            let path = if path.is_empty() {
                "/".to_owned()
            } else {
                path
            };
            format!("{path}: {}", e.masked())
        })
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(SchemaViolation { violations })
    }
}

/// Validate a query body (what a department receives).
pub fn fact_query(instance: &Value) -> Result<(), SchemaViolation> {
    run(&FACT_QUERY, instance)
}

/// Validate a signed answer body (what the hub receives).
pub fn signed_answer(instance: &Value) -> Result<(), SchemaViolation> {
    run(&SIGNED_ANSWER, instance)
}

/// The committed signed-answer schema as a value, for [`crate::shape::first_positional_array`].
static SIGNED_ANSWER_VALUE: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(SIGNED_ANSWER_SCHEMA).unwrap_or(Value::Bool(false)));

/// The path of the first array in a signed answer where its schema declares an object (serde
/// would read a struct from it by position); `None` when there is none. Cheap: no pattern is run.
pub fn signed_answer_positional_array(instance: &Value) -> Option<String> {
    crate::shape::first_positional_array(instance, &SIGNED_ANSWER_VALUE)
}

/// Validate a signed department event (what the hub receives on `POST /v1/events`).
pub fn signed_event(instance: &Value) -> Result<(), SchemaViolation> {
    run(&SIGNED_EVENT, instance)
}

/// Validate a protocol error body.
pub fn protocol_error(instance: &Value) -> Result<(), SchemaViolation> {
    run(&PROTOCOL_ERROR, instance)
}

/// The schemas generated from the Rust types, by committed file name. The drift test compares
/// these with the files; `UPDATE_SCHEMAS=1 cargo test -p schemas --test json_schemas` rewrites them.
pub fn generated_schemas() -> Vec<(&'static str, Value)> {
    use crate::protocol::{FactQuery, ProtocolError, SignedAnswer};
    vec![
        (
            "fact-query.schema.json",
            schemars::schema_for!(FactQuery).to_value(),
        ),
        (
            "signed-answer.schema.json",
            schemars::schema_for!(SignedAnswer).to_value(),
        ),
        (
            "signed-event.schema.json",
            schemars::schema_for!(crate::events::SignedEvent).to_value(),
        ),
        (
            "protocol-error.schema.json",
            schemars::schema_for!(ProtocolError).to_value(),
        ),
    ]
}
