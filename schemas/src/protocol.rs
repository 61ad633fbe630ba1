//! 连接器协议 v1 (`jsj-connector/1`): the query the hub sends a partner department, the answer the
//! department returns, the department's Ed25519 signature over that answer, and the error body a
//! department returns when it refuses a whole query.
//!
//! Invariants:
//! - Signatures and digests are computed over the **canonical bytes** defined here (a
//!   domain-separation line followed by canonical JSON, see [`canonical_json`]); `schemas/README.md`
//!   documents them for partner departments and must change together with this module.
//! - Canonical bytes are computed over the JSON **as received** (a `serde_json::Value`), so a partner
//!   written in any language can sign without reproducing Rust's serialisation quirks.
//! - [`receive_answer`] accepts an answer only whole: it must parse, pass the committed JSON Schema,
//!   carry a signature that verifies under a trusted department key, and be bound to the query
//!   (request id, department, query digest, exactly the subjects asked, only the fact kinds asked,
//!   values that fit the catalogue). Anything else is an error and nothing of the answer is returned.
//! - Nothing in this module logs or formats a resident ID number into an error message.

use std::collections::HashSet;

use base64::Engine as _;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::catalogue::{FactKind, FactValue, ReferencePeriod};
use crate::{Department, Purpose, ResidentId};

/// The protocol name and version carried in every message.
pub const PROTOCOL_V1: &str = "jsj-connector/1";

/// The HTTP path a department serves queries on (`POST`, `application/json`).
pub const QUERY_PATH: &str = "/jsj-connector/1/query";

/// The most subjects one query may carry (a household plus margin).
pub const MAX_SUBJECTS: usize = 64;

/// Domain-separation line prefixed to the canonical JSON of a [`DepartmentAnswer`] before signing.
pub const ANSWER_SIGNING_CONTEXT: &[u8] = b"jsj-connector/1 department-answer\n";

/// Domain-separation line prefixed to the canonical JSON of a [`FactQuery`] before digesting.
pub const QUERY_DIGEST_CONTEXT: &[u8] = b"jsj-connector/1 fact-query\n";

// === ProtocolVersion ===

/// The literal protocol tag `jsj-connector/1`; any other value fails to deserialize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProtocolVersion;

impl Serialize for ProtocolVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(PROTOCOL_V1)
    }
}

impl<'de> Deserialize<'de> for ProtocolVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == PROTOCOL_V1 {
            Ok(ProtocolVersion)
        } else {
            Err(serde::de::Error::custom(format!(
                "unsupported protocol {s:?}, expected {PROTOCOL_V1:?}"
            )))
        }
    }
}

impl schemars::JsonSchema for ProtocolVersion {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ProtocolVersion".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "const": PROTOCOL_V1 })
    }
}

// === Query ===

/// 核对查询: what the hub asks one department, for all subjects of one household at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FactQuery {
    /// Always `jsj-connector/1`.
    pub protocol: ProtocolVersion,
    /// Unique per query; the answer must echo it. Retrying the same query reuses it.
    pub request_id: Uuid,
    /// The department asked.
    pub department: Department,
    /// 核对用途: the lawful purpose (purpose limitation).
    pub purpose: Purpose,
    /// 核对授权书编号: reference to the authorization letter on record at the hub.
    #[schemars(length(min = 1, max = 128))]
    pub authorization_ref: String,
    /// The date the facts are wanted for; reference periods are derived from it.
    #[serde(with = "crate::wire::date")]
    #[schemars(schema_with = "crate::wire::date_schema")]
    pub as_of: Date,
    /// When the hub issued the query (RFC 3339).
    #[serde(with = "crate::wire::instant")]
    #[schemars(schema_with = "crate::wire::instant_schema")]
    pub issued_at: OffsetDateTime,
    /// The people asked about (at most [`MAX_SUBJECTS`]; more is refused with
    /// `too_many_subjects`).
    #[schemars(length(min = 1))]
    pub subjects: Vec<QuerySubject>,
    /// The fact kinds wanted, for every subject.
    #[schemars(length(min = 1))]
    pub fact_kinds: Vec<FactKind>,
}

/// One person in a query. `subject_ref` is an opaque handle (e.g. `m1`) the answer uses instead of
/// repeating the resident ID number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuerySubject {
    /// Opaque, unique within the query; 1-32 characters of `[A-Za-z0-9_-]`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]{1,32}$"))]
    pub subject_ref: String,
    pub resident_id: ResidentId,
}

impl FactQuery {
    /// Check the rules the types cannot express. The error is the body a department returns.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let bad = |field: String, msg: String| {
            Err(ProtocolError::new(ProtocolErrorCode::BadRequest, msg)
                .with_field(field)
                .with_request_id(self.request_id))
        };
        if self.authorization_ref.trim().is_empty() {
            return bad("authorization_ref".into(), "must not be empty".into());
        }
        if self.authorization_ref.chars().count() > 128 {
            return bad(
                "authorization_ref".into(),
                "must be at most 128 characters".into(),
            );
        }
        if self.subjects.is_empty() {
            return bad("subjects".into(), "must name at least one subject".into());
        }
        if self.subjects.len() > MAX_SUBJECTS {
            return Err(ProtocolError::new(
                ProtocolErrorCode::TooManySubjects,
                format!("at most {MAX_SUBJECTS} subjects per query"),
            )
            .with_field("subjects")
            .with_request_id(self.request_id));
        }
        let mut refs = HashSet::new();
        let mut ids = HashSet::new();
        for (i, s) in self.subjects.iter().enumerate() {
            if !valid_subject_ref(&s.subject_ref) {
                return bad(
                    format!("subjects[{i}].subject_ref"),
                    "must be 1-32 characters of A-Z a-z 0-9 _ -".into(),
                );
            }
            if !refs.insert(s.subject_ref.as_str()) {
                return bad(
                    format!("subjects[{i}].subject_ref"),
                    "duplicate subject_ref".into(),
                );
            }
            if !ids.insert(&s.resident_id) {
                return bad(
                    format!("subjects[{i}].resident_id"),
                    "same person listed twice".into(),
                );
            }
        }
        if self.fact_kinds.is_empty() {
            return bad(
                "fact_kinds".into(),
                "must name at least one fact kind".into(),
            );
        }
        let mut kinds = HashSet::new();
        for (i, k) in self.fact_kinds.iter().enumerate() {
            if !kinds.insert(*k) {
                return bad(format!("fact_kinds[{i}]"), format!("duplicate {k}"));
            }
            if k.department() != self.department {
                return Err(ProtocolError::new(
                    ProtocolErrorCode::WrongDepartment,
                    format!(
                        "{k} is answered by {}, not {}",
                        k.department(),
                        self.department
                    ),
                )
                .with_field(format!("fact_kinds[{i}]"))
                .with_request_id(self.request_id));
            }
        }
        Ok(())
    }

    /// The query digest an answer must carry: see [`query_digest_of_value`].
    pub fn digest(&self) -> String {
        // A FactQuery always serializes (no maps with non-string keys, no floats).
        let v = serde_json::to_value(self).unwrap_or(Value::Null);
        query_digest_of_value(&v).unwrap_or_default()
    }
}

fn valid_subject_ref(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

// === Answer ===

/// 部门答复: one department's answer to one [`FactQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentAnswer {
    /// Always `jsj-connector/1`.
    pub protocol: ProtocolVersion,
    /// Echo of the query's `request_id`.
    pub request_id: Uuid,
    /// The answering department.
    pub department: Department,
    /// When the department produced the answer (RFC 3339).
    #[serde(with = "crate::wire::instant")]
    #[schemars(schema_with = "crate::wire::instant_schema")]
    pub answered_at: OffsetDateTime,
    /// `sha256:<64 lowercase hex>` of the query's canonical bytes: binds the answer to the query.
    #[schemars(regex(pattern = r"^sha256:[0-9a-f]{64}$"))]
    pub query_digest: String,
    /// One result per subject of the query, in any order.
    pub results: Vec<SubjectResult>,
}

/// The outcome for one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SubjectResult {
    /// The `subject_ref` from the query.
    pub subject_ref: String,
    #[serde(flatten)]
    pub outcome: SubjectOutcome,
}

/// `found` with facts, or `unknown` / `refused` with a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SubjectOutcome {
    /// 查得: the department knows the person; one fact per requested kind.
    Found { facts: Vec<Fact> },
    /// 查无此人: the department has no record of the person.
    Unknown { reason: String },
    /// 拒绝: the department will not answer for this person (e.g. a sealed record).
    Refused { reason: String },
}

/// 事实: one fact about one subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    pub kind: FactKind,
    pub value: FactValue,
    /// 参考期: the period the value describes.
    pub period: ReferencePeriod,
}

/// 签名答复: an answer and the department's signature over its canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedAnswer {
    pub answer: DepartmentAnswer,
    pub signature: AnswerSignature,
}

/// An Ed25519 signature over `ANSWER_SIGNING_CONTEXT || canonical_json(answer)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerSignature {
    /// Always `ed25519`.
    pub alg: SignatureAlg,
    /// Which department key signed: see [`key_id_for`].
    #[schemars(regex(pattern = r"^ed25519:[0-9a-f]{16}$"))]
    pub key_id: String,
    /// The 64-byte signature, standard base64 with padding.
    #[schemars(regex(pattern = r"^[A-Za-z0-9+/]{86}==$"))]
    pub value: String,
}

/// Signature algorithms. Only Ed25519 in v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureAlg {
    Ed25519,
}

// === Protocol error ===

/// Stable machine codes for a refused query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolErrorCode {
    /// The body is not a valid query (schema or rule); `field` says where. HTTP 400.
    BadRequest,
    /// `protocol` is not `jsj-connector/1`. HTTP 400.
    UnsupportedProtocol,
    /// A fact kind belongs to another department. HTTP 400.
    WrongDepartment,
    /// More than [`MAX_SUBJECTS`] subjects. HTTP 400.
    TooManySubjects,
    /// The department does not serve (is not configured for) a requested fact kind. HTTP 422.
    FactKindNotServed,
    /// The caller's certificate is not the hub's. HTTP 403.
    Forbidden,
    /// The department is overloaded; retry later. HTTP 429.
    Overloaded,
    /// The department failed internally. HTTP 500.
    Internal,
}

impl ProtocolErrorCode {
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::WrongDepartment => "wrong_department",
            Self::TooManySubjects => "too_many_subjects",
            Self::FactKindNotServed => "fact_kind_not_served",
            Self::Forbidden => "forbidden",
            Self::Overloaded => "overloaded",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status a department returns with this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest
            | Self::UnsupportedProtocol
            | Self::WrongDepartment
            | Self::TooManySubjects => 400,
            Self::FactKindNotServed => 422,
            Self::Forbidden => 403,
            Self::Overloaded => 429,
            Self::Internal => 500,
        }
    }
}

/// 协议错误: the JSON body of a non-200 response. Never contains a resident ID number.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, thiserror::Error,
)]
#[serde(deny_unknown_fields)]
#[error("{}: {message}{}", code.code(), field.as_deref().map(|f| format!(" (field {f})")).unwrap_or_default())]
pub struct ProtocolError {
    pub protocol: ProtocolVersion,
    pub code: ProtocolErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// JSON path of the offending field, e.g. `fact_kinds[2]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The query's request id, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Uuid>,
}

impl ProtocolError {
    pub fn new(code: ProtocolErrorCode, message: impl Into<String>) -> Self {
        Self {
            protocol: ProtocolVersion,
            code,
            message: message.into(),
            field: None,
            request_id: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_request_id(mut self, id: Uuid) -> Self {
        self.request_id = Some(id);
        self
    }
}

// === Canonical bytes ===

/// Why a JSON value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("non-integer number at {0}: the protocol carries integers only")]
    NonInteger(String),
}

/// Canonical JSON (RFC 8785 JCS restricted to integers): object members sorted by key (byte-wise on
/// UTF-8, which equals JCS's UTF-16 order for the ASCII keys the protocol uses), no insignificant
/// whitespace, strings escaped minimally (`\"`, `\\`, `\b \f \n \r \t`, other control characters
/// as `\u00xx` lowercase; everything else — including non-ASCII — as raw UTF-8), integers in plain
/// decimal. Floats are refused.
pub fn canonical_json(v: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(4096);
    write_canonical(v, &mut out).map_err(|path| {
        // Built only on failure: the segments were collected innermost first.
        let mut p = String::from("$");
        for seg in path.iter().rev() {
            p.push_str(seg);
        }
        CanonicalError::NonInteger(p)
    })?;
    Ok(out)
}

/// On failure, the path segments to the offending number, innermost first.
fn write_canonical(v: &Value, out: &mut Vec<u8>) -> Result<(), Vec<String>> {
    use std::io::Write as _;
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            // Writing into a Vec cannot fail.
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                return Err(Vec::new());
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out).map_err(|mut p| {
                    p.push(format!("[{i}]"));
                    p
                })?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            // serde_json's map is usually already in this order; sorting a sorted list is cheap and
            // keeps this right whatever map serde_json was built with.
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(v, out).map_err(|mut p| {
                    p.push(format!(".{k}"));
                    p
                })?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        // Only ASCII bytes need escaping; multi-byte UTF-8 sequences never contain bytes < 0x80.
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x00..=0x1f => None,
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0x0f)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The bytes a department signs: [`ANSWER_SIGNING_CONTEXT`] followed by the canonical JSON of the
/// `answer` object.
pub fn answer_signing_bytes(answer: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut bytes = ANSWER_SIGNING_CONTEXT.to_vec();
    bytes.extend(canonical_json(answer)?);
    Ok(bytes)
}

/// `sha256:<hex>` over [`QUERY_DIGEST_CONTEXT`] followed by the canonical JSON of the query.
pub fn query_digest_of_value(query: &Value) -> Result<String, CanonicalError> {
    let mut bytes = QUERY_DIGEST_CONTEXT.to_vec();
    bytes.extend(canonical_json(query)?);
    Ok(format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
    ))
}

// === Keys, signing, verification ===

/// `ed25519:` followed by the first 8 bytes (16 hex digits) of SHA-256 of the raw 32-byte public key.
pub fn key_id_for(public_key: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, public_key);
    format!("ed25519:{}", hex::encode(&d.as_ref()[..8]))
}

/// A department's answer-signing public key, as configured at the hub.
#[derive(Clone, PartialEq, Eq)]
pub struct DepartmentKey {
    pub key_id: String,
    pub public_key: [u8; 32],
}

impl DepartmentKey {
    pub fn new(public_key: [u8; 32]) -> Self {
        Self {
            key_id: key_id_for(&public_key),
            public_key,
        }
    }

    /// The public key of a key pair (for tests and the simulator).
    pub fn of(key_pair: &Ed25519KeyPair) -> Self {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(key_pair.public_key().as_ref());
        Self::new(pk)
    }
}

impl std::fmt::Debug for DepartmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DepartmentKey({})", self.key_id)
    }
}

impl SignedAnswer {
    /// Sign an answer with the department's key: Ed25519 over [`answer_signing_bytes`].
    pub fn sign(
        answer: DepartmentAnswer,
        key_pair: &Ed25519KeyPair,
    ) -> Result<Self, CanonicalError> {
        let v = serde_json::to_value(&answer).unwrap_or(Value::Null);
        let sig = key_pair.sign(&answer_signing_bytes(&v)?);
        Ok(Self {
            answer,
            signature: AnswerSignature {
                alg: SignatureAlg::Ed25519,
                key_id: key_id_for(key_pair.public_key().as_ref()),
                value: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
            },
        })
    }

    /// Verify the signature of a typed answer (re-serialising it). For answers received from the
    /// wire prefer [`receive_answer`], which verifies the bytes as received.
    pub fn verify(&self, keys: &[DepartmentKey]) -> Result<(), AnswerError> {
        let v = serde_json::to_value(&self.answer).unwrap_or(Value::Null);
        verify_answer_value(&v, &self.signature, keys)
    }
}

/// Verify a signature over an `answer` JSON value as received.
pub fn verify_answer_value(
    answer: &Value,
    signature: &AnswerSignature,
    keys: &[DepartmentKey],
) -> Result<(), AnswerError> {
    let key = keys
        .iter()
        .find(|k| k.key_id == signature.key_id)
        .ok_or_else(|| AnswerError::UnknownKey(signature.key_id.clone()))?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&signature.value)
        .map_err(|_| AnswerError::BadSignature)?;
    let bytes = answer_signing_bytes(answer).map_err(|e| AnswerError::Malformed(e.to_string()))?;
    UnparsedPublicKey::new(&ED25519, &key.public_key)
        .verify(&bytes, &sig)
        .map_err(|_| AnswerError::BadSignature)
}

// === Receiving an answer ===

/// Why a received answer is rejected (whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Not JSON, or fails the committed JSON Schema, or fails to decode.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// Signed with a key the hub does not trust for this department.
    #[error("answer signed with unknown key {0}")]
    UnknownKey(String),
    #[error("answer signature does not verify")]
    BadSignature,
    /// Well-formed and signed, but not an answer to this query.
    #[error("answer does not match the query: {field}: {rule}")]
    Mismatch { field: String, rule: String },
}

/// An answer that passed every check, with the `answer` JSON as received (keep it: it is what the
/// signature covers, and what a report cites as evidence).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedAnswer {
    pub answer: DepartmentAnswer,
    pub signature: AnswerSignature,
    pub answer_json: Value,
}

/// The full receiver pipeline: parse → JSON Schema → signature → decode → bind to `query`.
pub fn receive_answer(
    body: &[u8],
    query: &FactQuery,
    keys: &[DepartmentKey],
) -> Result<ReceivedAnswer, AnswerError> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| AnswerError::Malformed(format!("not JSON: {e}")))?;
    // The committed JSON Schema is generated from these types, so the typed decode accepts exactly
    // what it accepts (its patterns are enforced by the decode, the key lookup, the signature and
    // the binding checks below). The schema runs only to name the path at fault when the decode
    // fails: validating every answer twice cost more than the signature check.
    // Objects only, at every depth: serde also reads a struct from a JSON array by position,
    // which the schema refuses (`shape`), and `v["answer"]` below panics on an array (found while
    // writing the `connector_answer` fuzz target, whose binary reproduces it).
    if let Some(path) = crate::validate::signed_answer_positional_array(&v) {
        return Err(AnswerError::Malformed(format!(
            "{path}: must be a JSON object, not an array"
        )));
    }
    let objects = v.is_object() && v.get("answer").is_some_and(Value::is_object);
    let SignedAnswer { answer, signature } = match SignedAnswer::deserialize(&v) {
        Ok(typed) if objects && schema_patterns_hold(&typed) => typed,
        Ok(_) => {
            crate::validate::signed_answer(&v)
                .map_err(|e| AnswerError::Malformed(e.to_string()))?;
            return Err(AnswerError::Malformed(
                "a field does not match its pattern".into(),
            ));
        }
        Err(e) => {
            crate::validate::signed_answer(&v)
                .map_err(|e| AnswerError::Malformed(e.to_string()))?;
            return Err(AnswerError::Malformed(format!("answer: {e}")));
        }
    };
    let answer_json = v["answer"].take();
    verify_answer_value(&answer_json, &signature, keys)?;
    answer.check_binding(query, &query.digest())?;
    Ok(ReceivedAnswer {
        answer,
        signature,
        answer_json,
    })
}

/// The string patterns of the committed schema the typed decode does not enforce by itself:
/// `signature.key_id`, `signature.value` and `answer.query_digest`.
fn schema_patterns_hold(a: &SignedAnswer) -> bool {
    let hex = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let key_id = a
        .signature
        .key_id
        .strip_prefix("ed25519:")
        .is_some_and(|h| hex(h, 16));
    let v = a.signature.value.as_bytes();
    let value = v.len() == 88
        && v.ends_with(b"==")
        && v[..86]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
    let digest = a
        .answer
        .query_digest
        .strip_prefix("sha256:")
        .is_some_and(|h| hex(h, 64));
    key_id && value && digest
}

impl DepartmentAnswer {
    /// Check that this answer answers `query` (whose digest is `digest`): same request id,
    /// department and digest; exactly the subjects asked, once each; for a found subject exactly
    /// the fact kinds asked, once each, with values that fit the catalogue.
    pub fn check_binding(&self, query: &FactQuery, digest: &str) -> Result<(), AnswerError> {
        let mismatch = |field: String, rule: String| Err(AnswerError::Mismatch { field, rule });
        if self.request_id != query.request_id {
            return mismatch(
                "answer.request_id".into(),
                "differs from the query's".into(),
            );
        }
        if self.department != query.department {
            return mismatch(
                "answer.department".into(),
                format!(
                    "is {}, the query asked {}",
                    self.department, query.department
                ),
            );
        }
        if self.query_digest != digest {
            return mismatch(
                "answer.query_digest".into(),
                "differs from the query's digest".into(),
            );
        }
        let mut answered: HashSet<&str> = HashSet::new();
        for (i, r) in self.results.iter().enumerate() {
            let field = format!("answer.results[{i}]");
            if !query
                .subjects
                .iter()
                .any(|s| s.subject_ref == r.subject_ref)
            {
                return mismatch(
                    format!("{field}.subject_ref"),
                    "not a subject of the query".into(),
                );
            }
            if !answered.insert(r.subject_ref.as_str()) {
                return mismatch(format!("{field}.subject_ref"), "answered twice".into());
            }
            if let SubjectOutcome::Found { facts } = &r.outcome {
                let mut kinds = HashSet::new();
                for (j, f) in facts.iter().enumerate() {
                    let ff = format!("{field}.facts[{j}]");
                    if !query.fact_kinds.contains(&f.kind) {
                        return mismatch(format!("{ff}.kind"), format!("{} was not asked", f.kind));
                    }
                    if !kinds.insert(f.kind) {
                        return mismatch(
                            format!("{ff}.kind"),
                            format!("{} answered twice", f.kind),
                        );
                    }
                    if f.period.from > f.period.to {
                        return mismatch(format!("{ff}.period"), "from is after to".into());
                    }
                    if let Err(e) = f.kind.spec().check_value(&f.value, &f.period) {
                        return mismatch(format!("{ff}.value"), e.to_string());
                    }
                }
                if let Some(missing) = query.fact_kinds.iter().find(|k| !kinds.contains(*k)) {
                    return mismatch(format!("{field}.facts"), format!("{missing} is missing"));
                }
            }
        }
        if let Some(s) = query
            .subjects
            .iter()
            .find(|s| !answered.contains(s.subject_ref.as_str()))
        {
            return mismatch(
                "answer.results".into(),
                format!("subject {} is missing", s.subject_ref),
            );
        }
        Ok(())
    }
}
