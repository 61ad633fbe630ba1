//! Request extractors whose every rejection is the JSON error object (`ApiError`), never axum's
//! plain-text default, and never quotes the input.
//!
//! - [`JsonObject<T>`]: the one body extractor of every JSON route. The body must be declared
//!   `application/json`, be syntactically valid JSON and be an **object** at the top level: serde
//!   reads structs from sequences by position, so without this check `[null,null]` would be read
//!   as a request with every field defaulted. Shape errors carry the JSON path of the field at
//!   fault and the kind of problem only (`members[0].resident_id: invalid type, expected a
//!   string`), never the value serde saw (it may be a resident ID).
//! - [`Query<T>`] and [`Path<T>`]: axum's, with their rejections mapped the same way.
//!
//! Invariant: no serde message reaches a caller unfiltered ([`shape_message`]). Held by
//! `extract::tests` and the e2e `bad_input::*` tests.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use super::ApiError;

/// A JSON object body deserialized into `T` (see the module docs).
#[derive(Debug, Clone)]
pub struct JsonObject<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + JsonSchema + 'static> FromRequest<S> for JsonObject<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "请求体须为 JSON / the body must be sent as Content-Type: application/json",
            )
            .with_field("Content-Type"));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                // An over-long body is answered 413 by `limit_body`, whatever we say here.
                tracing::debug!(error = %e, "request body could not be read");
                ApiError::bad_request("body_unreadable", "body", "the body could not be read")
            })?;
        parse_object(&bytes).map(JsonObject)
    }
}

/// Parse `bytes` as a JSON object into `T`; errors as described in the module docs. Objects are
/// required at every depth where `T`'s JSON Schema declares one ([`schemas::shape`]): a nested
/// struct sent as an array is refused with its path, not read by position.
pub fn parse_object<T: DeserializeOwned + JsonSchema + 'static>(
    bytes: &[u8],
) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::bad_request(
                "invalid_json",
                "body",
                "body: empty; a JSON object is required",
            ));
        }
        Some(b'{') => {}
        Some(_) => {
            // Syntax first: `[1,` is invalid JSON before it is the wrong shape.
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                return Err(syntax_error(&e));
            }
            return Err(ApiError::bad_request(
                "validation_failed",
                "body",
                "body: must be a JSON object",
            ));
        }
    }
    let tree: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| syntax_error(&e))?;
    if let Some(path) = schemas::shape::first_positional_array(&tree, &schema_of::<T>()) {
        return Err(ApiError::bad_request(
            "validation_failed",
            path.clone(),
            format!("{path}: must be a JSON object, not an array"),
        ));
    }
    drop(tree);
    // The typed decode reads the bytes again: from a `Value` it could not see duplicate fields.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = field_path(e.path());
        let inner = e.into_inner();
        if inner.is_data() {
            shape_error(&path, &inner)
        } else {
            syntax_error(&inner)
        }
    })?;
    de.end().map_err(|e| syntax_error(&e))?;
    Ok(value)
}

/// `T`'s JSON Schema (draft 2020-12, `$ref`s local to it), generated once per type.
fn schema_of<T: JsonSchema + 'static>() -> Arc<serde_json::Value> {
    static SCHEMAS: LazyLock<RwLock<HashMap<TypeId, Arc<serde_json::Value>>>> =
        LazyLock::new(Default::default);
    let id = TypeId::of::<T>();
    if let Some(s) = SCHEMAS.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return s.clone();
    }
    let schema = Arc::new(
        schemars::generate::SchemaSettings::draft2020_12()
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value(),
    );
    SCHEMAS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(id)
        .or_insert(schema)
        .clone()
}

/// `application/json` or `application/<something>+json`, parameters allowed.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn syntax_error(e: &serde_json::Error) -> ApiError {
    // serde_json's syntax messages name the construct, never the text read.
    let what = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input".to_owned(),
        _ => {
            let m = e.to_string();
            // Drop the " at line L column C" suffix; it is given separately.
            m.split(" at line ")
                .next()
                .unwrap_or("invalid JSON")
                .to_owned()
        }
    };
    ApiError::bad_request(
        "invalid_json",
        "body",
        format!(
            "body: not valid JSON ({what} at line {}, column {})",
            e.line(),
            e.column()
        ),
    )
}

fn shape_error(path: &str, e: &serde_json::Error) -> ApiError {
    let raw = e.to_string();
    let raw = raw.split(" at line ").next().unwrap_or("");
    // `missing field `x`` is reported at the object; name the field itself.
    if let Some(name) = raw
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
        .filter(|n| is_identifier(n))
    {
        let field = join(path, name);
        return ApiError::bad_request(
            "validation_failed",
            field.clone(),
            format!("{field}: required"),
        );
    }
    let field = if path.is_empty() || path == "?" {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    ApiError::bad_request(
        "validation_failed",
        field.clone(),
        format!("{field}: {}", shape_message(raw)),
    )
}

/// The kind of a serde data error without the value it quotes: `invalid type: integer `123`,
/// expected a string` becomes `invalid type, expected a string`. What follows `expected` comes
/// from our types, never from the input.
pub fn shape_message(raw: &str) -> String {
    const KINDS: [&str; 6] = [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
        "unknown field",
        "duplicate field",
    ];
    // The last `, expected …` is ours (serde appends it after the quoted value).
    let expected = raw
        .rfind(", expected ")
        .map(|i| &raw[i + 2..])
        .filter(|tail| !long_digit_run(tail));
    if let Some(kind) = KINDS.iter().find(|k| raw.starts_with(**k)) {
        return match (kind, expected) {
            (&"duplicate field", _) => match raw
                .strip_prefix("duplicate field `")
                .and_then(|r| r.strip_suffix('`'))
                .filter(|n| is_identifier(n))
            {
                Some(n) => format!("duplicate field `{n}`"),
                None => "duplicate field".to_owned(),
            },
            (_, Some(exp)) => format!("{kind}, {exp}"),
            (_, None) => (*kind).to_owned(),
        };
    }
    // A message of our own `Deserialize` impls (e.g. a resident ID's check digit), unless it
    // could quote the input.
    if quotes_input(raw) || raw.is_empty() {
        "has an invalid value".to_owned()
    } else {
        raw.to_owned()
    }
}

/// Could this text carry input: a backtick-quoted value or a run of 15+ digits (an ID number)?
fn quotes_input(s: &str) -> bool {
    s.contains('`') || s.contains('"') || long_digit_run(s)
}

fn long_digit_run(s: &str) -> bool {
    let mut run = 0;
    s.bytes().any(|b| {
        run = if b.is_ascii_digit() { run + 1 } else { 0 };
        run >= 15
    })
}

/// Looks like one of our field names (`resident_id`): a lowercase letter first, at most 64
/// characters of `a-z 0-9 _`, no long digit run. Anything else may be input.
fn is_identifier(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.len() <= 64
        && !long_digit_run(s)
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// `members[0].resident_id`; a map key that is not an identifier (it is input) shows as `?`.
fn field_path(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if is_identifier(key) { key } else { "?" });
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(if is_identifier(variant) { variant } else { "?" });
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// axum's `Query`, rejected with the JSON error object (field `query`).
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => {
                let text = e.body_text();
                let inner = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or("");
                Err(ApiError::bad_request(
                    "validation_failed",
                    "query",
                    format!("query: {}", shape_message(inner)),
                ))
            }
        }
    }
}

/// axum's `Path`, rejected with the JSON error object (field `path`).
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => {
                tracing::debug!(error = %e, "path rejected");
                Err(ApiError::bad_request(
                    "validation_failed",
                    "path",
                    "path: a path parameter is not valid",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Member {
        resident_id: String,
        name: String,
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        members: Vec<Member>,
    }

    /// `Ok(())` when accepted, otherwise `(code, field, message)`.
    fn check(body: &str, expected: Result<(), (&str, &str, &str)>) {
        let got = parse_object::<Body>(body.as_bytes())
            .map(|_| ())
            .map_err(|e| (e.code, e.field.unwrap_or_default(), e.message));
        match (&got, &expected) {
            (Ok(()), Ok(())) => {}
            (Err((code, field, msg)), Err((c, f, m))) => {
                assert_eq!((*code, field.as_str()), (*c, *f), "{body}: {msg}");
                assert!(msg.contains(m), "{body}: {msg} should contain {m}");
                assert!(!msg.contains("370811"), "{body}: {msg} echoes input");
            }
            _ => panic!("{body}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn only_objects_and_errors_without_input() {
        check("{}", Ok(()));
        check(r#"{"limit": 3, "members": []}"#, Ok(()));
        check(
            "[null,null]",
            Err(("validation_failed", "body", "JSON object")),
        );
        check("[]", Err(("validation_failed", "body", "JSON object")));
        check("null", Err(("validation_failed", "body", "JSON object")));
        check("\"x\"", Err(("validation_failed", "body", "JSON object")));
        check("", Err(("invalid_json", "body", "empty")));
        check("{", Err(("invalid_json", "body", "not valid JSON")));
        check("[1,", Err(("invalid_json", "body", "not valid JSON")));
        check("{} {}", Err(("invalid_json", "body", "not valid JSON")));
        check(
            r#"{"members":[{"resident_id":370811199001011234,"name":"x"}]}"#,
            Err((
                "validation_failed",
                "members[0].resident_id",
                "invalid type, expected a string",
            )),
        );
        // Issue 10, finding 8: serde reads a struct from an array by position, at any depth.
        assert!(
            serde_json::from_str::<Body>(r#"{"members":[["370811199001011234","x"]]}"#).is_ok()
        );
        check(
            r#"{"members":[["370811199001011234","x"]]}"#,
            Err((
                "validation_failed",
                "members[0]",
                "must be a JSON object, not an array",
            )),
        );
        check(
            r#"{"members":[{"resident_id":"x","name":"y"},[]]}"#,
            Err(("validation_failed", "members[1]", "not an array")),
        );
        check(
            r#"{"members":[{"resident_id":"x"}]}"#,
            Err(("validation_failed", "members[0].name", "required")),
        );
        check(
            r#"{"370811199001011234":1}"#,
            Err(("validation_failed", "body", "unknown field")),
        );
        check(
            r#"{"limit":"370811199001011234"}"#,
            Err(("validation_failed", "limit", "invalid type, expected u32")),
        );
        check(
            r#"{"limit":-370811199001011234}"#,
            Err(("validation_failed", "limit", "expected u32")),
        );
    }

    #[test]
    fn shape_messages_never_quote() {
        for (raw, want) in [
            (
                "invalid type: integer `370811199001011234`, expected a string",
                "invalid type, expected a string",
            ),
            (
                "unknown variant `370811199001011234`, expected one of `a`, `b`",
                "unknown variant, expected one of `a`, `b`",
            ),
            (
                "check digit is X, expected 7",
                "check digit is X, expected 7",
            ),
            ("bad `370811199001011234`", "has an invalid value"),
            ("370811199001011234 is bad", "has an invalid value"),
        ] {
            assert_eq!(shape_message(raw), want, "{raw}");
        }
    }
}
