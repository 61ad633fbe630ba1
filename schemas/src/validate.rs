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

/// One committed schema, compiled by [`boon`] (JSON Schema 2020-12, formats asserted). The
/// schemas are registered as in-memory resources under a placeholder URL, so nothing is ever
/// loaded from the network or the file system.
struct Compiled(Result<(boon::Schemas, boon::SchemaIndex), String>);

fn compile(name: &str, src: &str) -> Compiled {
    let url = format!("https://schemas.jishijiu.invalid/{name}");
    let result = serde_json::from_str::<Value>(src)
        .map_err(|e| format!("committed schema is not JSON: {e}"))
        .and_then(|schema| {
            let mut compiler = boon::Compiler::new();
            compiler.enable_format_assertions();
            compiler
                .add_resource(&url, schema)
                .map_err(|e| format!("committed schema does not load: {e}"))?;
            let mut schemas = boon::Schemas::new();
            let index = compiler
                .compile(&url, &mut schemas)
                .map_err(|e| format!("committed schema does not compile: {e}"))?;
            Ok((schemas, index))
        });
    Compiled(result)
}

static FACT_QUERY: LazyLock<Compiled> =
    LazyLock::new(|| compile("fact-query.schema.json", FACT_QUERY_SCHEMA));
static SIGNED_ANSWER: LazyLock<Compiled> =
    LazyLock::new(|| compile("signed-answer.schema.json", SIGNED_ANSWER_SCHEMA));
static SIGNED_EVENT: LazyLock<Compiled> =
    LazyLock::new(|| compile("signed-event.schema.json", SIGNED_EVENT_SCHEMA));
static PROTOCOL_ERROR: LazyLock<Compiled> =
    LazyLock::new(|| compile("protocol-error.schema.json", PROTOCOL_ERROR_SCHEMA));

fn run(compiled: &Compiled, instance: &Value) -> Result<(), SchemaViolation> {
    let (schemas, index) = compiled.0.as_ref().map_err(|e| SchemaViolation {
        violations: vec![e.clone()],
    })?;
    let Err(error) = schemas.validate(instance, *index) else {
        return Ok(());
    };
    let mut violations = Vec::new();
    leaves(&error, &mut violations);
    Err(SchemaViolation { violations })
}

/// The innermost errors (the rules that failed), each `path: rule`, at most [`MAX_REPORTED`].
fn leaves(e: &boon::ValidationError<'_, '_>, out: &mut Vec<String>) {
    if out.len() >= MAX_REPORTED {
        return;
    }
    // An alternative that matched nothing is one failed rule: its branches' own failures
    // (each constant of an enumeration, say) would only bury the field at fault.
    let alternatives = matches!(e.kind, boon::ErrorKind::OneOf(_) | boon::ErrorKind::AnyOf);
    if e.causes.is_empty() || alternatives {
        let path = e.instance_location.to_string();
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        out.push(format!("{path}: {}", masked(&e.kind)));
        return;
    }
    for cause in &e.causes {
        leaves(cause, out);
    }
}

/// A failed rule in words that never quote the instance's value (a resident ID number must not
/// reach an error message): the schema's side of the rule only.
fn masked(kind: &boon::ErrorKind<'_, '_>) -> String {
    use boon::ErrorKind as K;
    match kind {
        K::Type { want, .. } => {
            let want: Vec<String> = want.iter().map(|t| t.to_string()).collect();
            format!("value is not of type {}", want.join(" or "))
        }
        K::Enum { .. } => "value is not one of the allowed values".to_owned(),
        K::Const { .. } => "value is not the expected constant".to_owned(),
        K::Format { want, .. } => format!("value is not a valid {want:?}"),
        K::AdditionalProperties { got } => {
            // Property names are the sender's: name them only when they look like field names.
            let names: Vec<&str> = got
                .iter()
                .map(|p| p.as_ref())
                .filter(|p| p.len() <= 40 && p.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                .collect();
            if names.len() == got.len() {
                format!(
                    "additional properties are not allowed ({})",
                    names.join(", ")
                )
            } else {
                format!("{} additional properties are not allowed", got.len())
            }
        }
        K::Required { want } => format!("required properties are missing: {}", want.join(", ")),
        K::MinProperties { want, .. } => format!("has fewer than {want} properties"),
        K::MaxProperties { want, .. } => format!("has more than {want} properties"),
        K::MinItems { want, .. } => format!("has fewer than {want} items"),
        K::MaxItems { want, .. } => format!("has more than {want} items"),
        K::UniqueItems { .. } => "items are not unique".to_owned(),
        K::MinLength { want, .. } => format!("is shorter than {want} characters"),
        K::MaxLength { want, .. } => format!("is longer than {want} characters"),
        K::Pattern { want, .. } => format!("value does not match {want:?}"),
        K::Minimum { want, .. } => format!("value is less than the minimum of {want}"),
        K::Maximum { want, .. } => format!("value is greater than the maximum of {want}"),
        K::ExclusiveMinimum { want, .. } => format!("value is not greater than {want}"),
        K::ExclusiveMaximum { want, .. } => format!("value is not less than {want}"),
        K::MultipleOf { want, .. } => format!("value is not a multiple of {want}"),
        K::FalseSchema => "no value is allowed here".to_owned(),
        K::OneOf(_) | K::AnyOf | K::AllOf | K::Not => {
            "value does not match the allowed shapes".to_owned()
        }
        K::PropertyName { .. } => "a property name is not allowed".to_owned(),
        _ => "value does not satisfy the schema".to_owned(),
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
