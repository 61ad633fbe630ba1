//! 部门事件 (department events, connector protocol v1): what a partner department pushes to the hub
//! about a resident — a hospital stay with high out-of-pocket costs, a lost job, a death in the
//! household, a disaster — so that people in hardship are found before they ask (主动发现).
//!
//! The envelope is the answers' envelope: `{"event": {…}, "signature": {alg, key_id, value}}`, with
//! an Ed25519 signature over [`EVENT_SIGNING_CONTEXT`] followed by the canonical JSON of the `event`
//! object **as received** ([`crate::protocol::canonical_json`]), under the department's
//! answer-signing key.
//!
//! Departments are data, not an enum: `department` is a department code (`health`, `emergency`
//! for emergency management 应急管理, …) checked by the hub against its configuration, and `kind`
//! is `<department>.<event>`. The built-in kinds ([`KnownKind`]) have typed `details` the warning rules
//! read; a kind a deployment adds by configuration carries free-form scalar details.
//!
//! Invariants:
//! - [`receive_event`] accepts an event only whole: it must parse, be objects where objects are
//!   declared ([`crate::shape`]), pass the committed JSON Schema, carry a signature that verifies
//!   under a key of the department it names, be fresh ([`Freshness`]) and, for a built-in kind, carry
//!   the details that kind requires. Idempotency and replay by `event_id` are the receiver's store's
//!   job (an id seen before is never applied twice).
//! - No error message carries a resident ID number or any other value of the event.

use base64::Engine as _;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

use crate::ResidentId;
use crate::protocol::{
    AnswerSignature, CanonicalError, DepartmentKey, ProtocolVersion, SignatureAlg, canonical_json,
    key_id_for,
};

/// Domain-separation line prefixed to the canonical JSON of a [`DepartmentEvent`] before signing
/// (distinct from the answers' line, so an answer's signature never verifies as an event's).
pub const EVENT_SIGNING_CONTEXT: &[u8] = b"jsj-connector/1 department-event\n";

/// The HTTP path of the hub that receives events (`POST`, `application/json`).
pub const EVENTS_PATH: &str = "/v1/events";

/// A department code: lower-case letters and underscores (`health`, `emergency`).
pub const DEPARTMENT_CODE_PATTERN: &str = "^[a-z][a-z_]{1,31}$";

/// An event kind: `<department code>.<event name>`.
pub const EVENT_KIND_PATTERN: &str = "^[a-z][a-z_]{1,31}\\.[a-z][a-z_]{1,47}$";

/// At most this many detail fields, each a scalar.
pub const MAX_DETAILS: usize = 16;

/// 部门事件: one thing that happened to one resident, as the department records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentEvent {
    pub protocol: ProtocolVersion,
    /// The department's id for this event; the hub applies an id once.
    pub event_id: Uuid,
    /// The department that recorded it (a configured department code).
    #[schemars(pattern(DEPARTMENT_CODE_PATTERN))]
    pub department: String,
    /// `<department>.<event>`, e.g. `health.hospitalisation`.
    #[schemars(pattern(EVENT_KIND_PATTERN))]
    pub kind: String,
    /// When it happened (the admission, the death, the disaster), RFC 3339.
    #[serde(with = "crate::wire::instant")]
    #[schemars(schema_with = "crate::wire::instant_schema")]
    pub occurred_at: OffsetDateTime,
    /// When the department signed it, RFC 3339; the hub refuses stale or future events.
    #[serde(with = "crate::wire::instant")]
    #[schemars(schema_with = "crate::wire::instant_schema")]
    pub issued_at: OffsetDateTime,
    /// The resident it is about.
    pub subject: EventSubject,
    /// What the kind says about it (see [`KnownKind::required_details`]); scalars only.
    #[schemars(extend("maxProperties" = MAX_DETAILS))]
    pub details: Map<String, Value>,
}

/// The resident an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSubject {
    pub resident_id: ResidentId,
}

/// A signed event, as sent to the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedEvent {
    pub event: DepartmentEvent,
    /// Ed25519 over `EVENT_SIGNING_CONTEXT || canonical_json(event)`.
    pub signature: AnswerSignature,
}

/// The bytes a department signs: [`EVENT_SIGNING_CONTEXT`] followed by the canonical JSON of the
/// `event` object.
pub fn event_signing_bytes(event: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut bytes = EVENT_SIGNING_CONTEXT.to_vec();
    bytes.extend(canonical_json(event)?);
    Ok(bytes)
}

impl SignedEvent {
    /// Sign an event with the department's key (the simulator's and the tests' side).
    pub fn sign(event: DepartmentEvent, key_pair: &Ed25519KeyPair) -> Result<Self, CanonicalError> {
        let v = serde_json::to_value(&event).unwrap_or(Value::Null);
        let sig = key_pair.sign(&event_signing_bytes(&v)?);
        Ok(Self {
            event,
            signature: AnswerSignature {
                alg: SignatureAlg::Ed25519,
                key_id: key_id_for(key_pair.public_key().as_ref()),
                value: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
            },
        })
    }
}

// === The built-in kinds ===

/// The type of one detail field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailType {
    /// An amount in fen (分), an integer ≥ 0.
    Fen,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A short code (`[a-z0-9_]{1,32}`).
    Code,
    /// `true` or `false`.
    Bool,
}

macro_rules! known_kinds {
    ($( $variant:ident = $code:literal, $zh:literal, $en:literal, [$( $field:literal : $ty:ident ),* $(,)?] ; )*) => {
        /// The event kinds the hub knows (its warning rules read their details); a deployment may
        /// configure more.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum KnownKind { $( $variant ),* }

        impl KnownKind {
            pub const ALL: &'static [KnownKind] = &[ $( KnownKind::$variant ),* ];

            pub fn code(self) -> &'static str {
                match self { $( KnownKind::$variant => $code ),* }
            }

            pub fn name_zh(self) -> &'static str {
                match self { $( KnownKind::$variant => $zh ),* }
            }

            pub fn name_en(self) -> &'static str {
                match self { $( KnownKind::$variant => $en ),* }
            }

            pub fn from_code(code: &str) -> Option<Self> {
                match code { $( $code => Some(KnownKind::$variant), )* _ => None }
            }

            /// The details this kind must carry, with their types.
            pub fn required_details(self) -> &'static [(&'static str, DetailType)] {
                match self { $( KnownKind::$variant => &[ $( ($field, DetailType::$ty) ),* ] ),* }
            }
        }
    };
}

known_kinds! {
    Hospitalisation = "health.hospitalisation", "住院", "hospital stay",
        ["admitted_on": Date, "total_fen": Fen, "out_of_pocket_fen": Fen];
    SeriousIllnessDiagnosed = "health.serious_illness_diagnosed", "确诊重特大疾病", "serious illness diagnosed",
        ["diagnosed_on": Date];
    UnemploymentRegistered = "labor.unemployment_registered", "失业登记", "unemployment registered",
        ["registered_on": Date];
    BenefitEnded = "labor.benefit_ended", "失业保险金停发", "unemployment benefit ended",
        ["ended_on": Date];
    DeathRegistered = "civil_affairs.death_registered", "死亡登记", "death registered",
        ["died_on": Date];
    DisasterVictim = "emergency.disaster_victim", "受灾人员", "disaster victim",
        ["disaster": Code, "house_damaged": Bool];
    DisabilityCertificateIssued = "disability.certificate_issued", "残疾证核发", "disability certificate issued",
        ["category": Code, "grade": Code];
    LeftSchool = "education.left_school", "辍学", "left school",
        ["left_on": Date, "stage": Code];
    Released = "justice.released", "刑满释放", "released from custody",
        ["released_on": Date];
    DangerousHouse = "housing.dangerous_house", "危房鉴定", "dangerous house",
        ["assessed_on": Date, "grade": Code];
}

// === Receiving ===

/// How fresh a signed event must be: issued no more than `max_age` ago and no more than
/// `max_skew` in the future (clock skew between the department and the hub).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub max_age: Duration,
    pub max_skew: Duration,
}

impl Default for Freshness {
    fn default() -> Self {
        Self {
            max_age: Duration::hours(24),
            max_skew: Duration::minutes(5),
        }
    }
}

/// Why a received event is refused (whole). Each names the field at fault; none quotes a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not JSON, not the envelope's shape, or fails the committed JSON Schema.
    #[error("{field}: {rule}")]
    Malformed { field: String, rule: String },
    /// Signed with a key not configured for the department the event names.
    #[error("signature.key_id: not a key of the department")]
    UnknownKey,
    #[error("signature.value: does not verify")]
    BadSignature,
    /// Issued too long ago, or in the future.
    #[error("event.issued_at: {0}")]
    Stale(&'static str),
    /// A built-in kind without a detail it requires, or with one of the wrong type.
    #[error("event.details.{field}: {rule}")]
    Details { field: String, rule: &'static str },
}

impl EventError {
    /// The field at fault, as a JSON path (`event.details.out_of_pocket_fen`).
    pub fn field(&self) -> String {
        match self {
            EventError::Malformed { field, .. } => field.clone(),
            EventError::UnknownKey => "signature.key_id".into(),
            EventError::BadSignature => "signature.value".into(),
            EventError::Stale(_) => "event.issued_at".into(),
            EventError::Details { field, .. } => format!("event.details.{field}"),
        }
    }
}

/// An event that passed every check, with the `event` JSON as received (what the signature covers).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    pub event: DepartmentEvent,
    pub signature: AnswerSignature,
    pub event_json: Value,
    /// The built-in kind, when it is one.
    pub known: Option<KnownKind>,
}

fn malformed(field: impl Into<String>, rule: impl Into<String>) -> EventError {
    EventError::Malformed {
        field: field.into(),
        rule: rule.into(),
    }
}

/// The receiver pipeline: parse → objects only → JSON Schema → typed decode → signature under
/// `keys_of(department)` → freshness at `now` → the built-in kind's details. `keys_of` returns the
/// keys configured for a department code (none for an unknown department).
pub fn receive_event(
    body: &[u8],
    keys_of: impl Fn(&str) -> Vec<DepartmentKey>,
    now: OffsetDateTime,
    freshness: Freshness,
) -> Result<ReceivedEvent, EventError> {
    receive_parsed(serde_json::from_slice(body), keys_of, now, freshness).map(|(r, _)| r)
}

/// [`receive_event`] of a body already parsed (`serde_json::from_slice`'s answer, so that a
/// caller that reads the body's JSON anyway parses it once), also answering the canonical form of
/// the `event` (what the signature covers, without the signing context).
pub fn receive_parsed(
    parsed: Result<Value, serde_json::Error>,
    keys_of: impl Fn(&str) -> Vec<DepartmentKey>,
    now: OffsetDateTime,
    freshness: Freshness,
) -> Result<(ReceivedEvent, Vec<u8>), EventError> {
    let mut v: Value = parsed.map_err(|e| {
        malformed(
            "body",
            format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        )
    })?;
    if !v.is_object() {
        return Err(malformed("body", "must be a JSON object"));
    }
    if let Some(path) = crate::shape::first_positional_array(&v, &SIGNED_EVENT_SCHEMA_VALUE) {
        return Err(malformed(path, "must be a JSON object, not an array"));
    }
    crate::validate::signed_event(&v).map_err(|e| {
        let first = e.violations.first().cloned().unwrap_or_default();
        let (path, rule) = first.split_once(": ").unwrap_or(("/", first.as_str()));
        malformed(pointer_to_path(path), rule.to_owned())
    })?;
    let SignedEvent { event, signature } = serde_path_to_error::deserialize(&v).map_err(|e| {
        // The schema passed, so this is a value the schema cannot state (a resident ID's
        // check digit, a date that does not exist); serde's message may quote it, so name the
        // path and the rule only.
        malformed(
            pointer_to_path(&e.path().to_string().replace('.', "/")),
            "has an invalid value",
        )
    })?;
    let event_json = v["event"].take();
    let keys = keys_of(&event.department);
    let key = keys
        .iter()
        .find(|k| k.key_id == signature.key_id)
        .ok_or(EventError::UnknownKey)?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(&signature.value)
        .map_err(|_| EventError::BadSignature)?;
    let canonical = canonical_json(&event_json).map_err(|_| malformed("event", "integers only"))?;
    let mut bytes = Vec::with_capacity(EVENT_SIGNING_CONTEXT.len() + canonical.len());
    bytes.extend_from_slice(EVENT_SIGNING_CONTEXT);
    bytes.extend_from_slice(&canonical);
    UnparsedPublicKey::new(&ED25519, &key.public_key)
        .verify(&bytes, &sig)
        .map_err(|_| EventError::BadSignature)?;
    if event.issued_at < now - freshness.max_age {
        return Err(EventError::Stale(
            "too old: issued before the replay window",
        ));
    }
    if event.issued_at > now + freshness.max_skew {
        return Err(EventError::Stale("in the future"));
    }
    if event.occurred_at > event.issued_at + freshness.max_skew {
        return Err(malformed("event.occurred_at", "after issued_at"));
    }
    if event.kind.split_once('.').map(|(d, _)| d) != Some(event.department.as_str()) {
        return Err(malformed(
            "event.kind",
            "must start with the department's code",
        ));
    }
    let known = KnownKind::from_code(&event.kind);
    check_details(&event.details, known)?;
    Ok((
        ReceivedEvent {
            event,
            signature,
            event_json,
            known,
        },
        canonical,
    ))
}

/// Scalars only; a built-in kind's required details present and of their type.
fn check_details(details: &Map<String, Value>, known: Option<KnownKind>) -> Result<(), EventError> {
    for (k, v) in details {
        if matches!(v, Value::Array(_) | Value::Object(_)) {
            return Err(EventError::Details {
                field: k.clone(),
                rule: "must be a scalar",
            });
        }
    }
    let Some(kind) = known else {
        return Ok(());
    };
    for (field, ty) in kind.required_details() {
        let ok = match (details.get(*field), ty) {
            (None, _) => {
                return Err(EventError::Details {
                    field: (*field).to_owned(),
                    rule: "required",
                });
            }
            (Some(v), DetailType::Fen) => v.as_i64().is_some_and(|n| n >= 0),
            (Some(v), DetailType::Date) => v.as_str().is_some_and(|s| {
                Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_ok()
            }),
            (Some(v), DetailType::Code) => v.as_str().is_some_and(|s| {
                (1..=32).contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            }),
            (Some(v), DetailType::Bool) => v.is_boolean(),
        };
        if !ok {
            return Err(EventError::Details {
                field: (*field).to_owned(),
                rule: match ty {
                    DetailType::Fen => "must be an integer amount in fen, 0 or more",
                    DetailType::Date => "must be a date, YYYY-MM-DD",
                    DetailType::Code => "must be a code of [a-z0-9_], 1-32 characters",
                    DetailType::Bool => "must be true or false",
                },
            });
        }
    }
    Ok(())
}

/// `/event/subject/resident_id` → `event.subject.resident_id`; `/a/0` → `a[0]`.
fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').filter(|s| !s.is_empty()) {
        if seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    if out.is_empty() { "body".into() } else { out }
}

static SIGNED_EVENT_SCHEMA_VALUE: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
    serde_json::from_str(crate::validate::SIGNED_EVENT_SCHEMA).unwrap_or(Value::Bool(false))
});

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-30 08:00 UTC);

    fn key_pair(seed: u8) -> Ed25519KeyPair {
        Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap()
    }

    fn event() -> DepartmentEvent {
        DepartmentEvent {
            protocol: ProtocolVersion,
            event_id: Uuid::from_u128(7),
            department: "health".into(),
            kind: "health.hospitalisation".into(),
            occurred_at: datetime!(2026-11-20 09:00 +08:00),
            issued_at: datetime!(2026-11-30 07:59 UTC),
            subject: EventSubject {
                resident_id: ResidentId::parse("11010519491231002X").unwrap(),
            },
            details: json!({"admitted_on": "2026-11-20", "total_fen": 8_000_000, "out_of_pocket_fen": 2_400_000})
                .as_object()
                .unwrap()
                .clone(),
        }
    }

    fn keys(kp: &Ed25519KeyPair) -> impl Fn(&str) -> Vec<DepartmentKey> + '_ {
        move |d| {
            if d == "health" {
                vec![DepartmentKey::of(kp)]
            } else {
                vec![]
            }
        }
    }

    fn bytes(e: DepartmentEvent, kp: &Ed25519KeyPair) -> Vec<u8> {
        serde_json::to_vec(&SignedEvent::sign(e, kp).unwrap()).unwrap()
    }

    fn receive(body: &[u8], kp: &Ed25519KeyPair) -> Result<ReceivedEvent, EventError> {
        receive_event(body, keys(kp), NOW, Freshness::default())
    }

    #[test]
    fn a_signed_fresh_event_is_received_with_its_kind() {
        let kp = key_pair(1);
        let got = receive(&bytes(event(), &kp), &kp).unwrap();
        assert_eq!(got.event, event());
        assert_eq!(got.known, Some(KnownKind::Hospitalisation));
    }

    #[test]
    fn every_refusal_names_its_field_and_quotes_nothing() {
        let kp = key_pair(1);
        let check = |body: Vec<u8>, field: &str| {
            let e = receive(&body, &kp).unwrap_err();
            assert_eq!(e.field(), field, "{e}");
            let text = e.to_string();
            assert!(!text.contains("110105"), "{text}");
        };
        // Another key, or a key of another department.
        check(bytes(event(), &key_pair(2)), "signature.key_id");
        let mut other = event();
        other.department = "labor".into();
        other.kind = "labor.unemployment_registered".into();
        check(bytes(other, &kp), "signature.key_id");
        // Tampered after signing.
        let mut v: Value = serde_json::from_slice(&bytes(event(), &kp)).unwrap();
        v["event"]["details"]["out_of_pocket_fen"] = json!(1);
        check(serde_json::to_vec(&v).unwrap(), "signature.value");
        // Replayed after the window, or from the future.
        let mut old = event();
        old.issued_at = NOW - Duration::hours(25);
        old.occurred_at = old.issued_at;
        check(bytes(old, &kp), "event.issued_at");
        let mut future = event();
        future.issued_at = NOW + Duration::minutes(6);
        check(bytes(future, &kp), "event.issued_at");
        // A built-in kind without its details, or with the wrong type.
        let mut missing = event();
        missing.details.remove("out_of_pocket_fen");
        check(bytes(missing, &kp), "event.details.out_of_pocket_fen");
        let mut negative = event();
        negative.details["out_of_pocket_fen"] = json!(-1);
        check(bytes(negative, &kp), "event.details.out_of_pocket_fen");
        // A kind of another department.
        let mut foreign = event();
        foreign.kind = "labor.unemployment_registered".into();
        check(bytes(foreign, &kp), "event.kind");
        // Shape: unknown kind pattern, nested details, arrays, not JSON.
        let mut v: Value = serde_json::from_slice(&bytes(event(), &kp)).unwrap();
        v["event"]["kind"] = json!("Hospital!");
        check(serde_json::to_vec(&v).unwrap(), "event.kind");
        let mut v: Value = serde_json::from_slice(&bytes(event(), &kp)).unwrap();
        v["event"]["subject"] = json!(["11010519491231002X"]);
        check(serde_json::to_vec(&v).unwrap(), "event.subject");
        let mut v: Value = serde_json::from_slice(&bytes(event(), &kp)).unwrap();
        v["event"]["subject"]["resident_id"] = json!("110105194912310021");
        check(serde_json::to_vec(&v).unwrap(), "event.subject.resident_id");
        check(b"[1]".to_vec(), "body");
        check(b"{".to_vec(), "body");
    }

    #[test]
    fn configured_kinds_carry_free_scalar_details() {
        let kp = key_pair(1);
        let mut e = event();
        e.kind = "health.vaccination_missed".into();
        e.details = json!({"note_code": "x1", "count": 2})
            .as_object()
            .unwrap()
            .clone();
        let got = receive(&bytes(e.clone(), &kp), &kp).unwrap();
        assert_eq!(got.known, None);
        e.details = json!({"nested": {"a": 1}}).as_object().unwrap().clone();
        let err = receive(&bytes(e, &kp), &kp).unwrap_err();
        assert_eq!(err.field(), "event.details.nested");
    }

    #[test]
    fn an_answer_signature_never_verifies_as_an_event() {
        let kp = key_pair(1);
        let e = event();
        let v = serde_json::to_value(&e).unwrap();
        let as_answer = kp.sign(&crate::protocol::answer_signing_bytes(&v).unwrap());
        let mut signed = SignedEvent::sign(e, &kp).unwrap();
        signed.signature.value =
            base64::engine::general_purpose::STANDARD.encode(as_answer.as_ref());
        let body = serde_json::to_vec(&signed).unwrap();
        assert_eq!(receive(&body, &kp).unwrap_err(), EventError::BadSignature);
    }

    #[test]
    fn every_known_kind_is_well_formed() {
        let pattern = |s: &str| {
            let (d, e) = s.split_once('.').unwrap();
            !d.is_empty()
                && !e.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
        };
        for k in KnownKind::ALL {
            assert!(pattern(k.code()), "{}", k.code());
            assert_eq!(KnownKind::from_code(k.code()), Some(*k));
            assert!(!k.required_details().is_empty());
        }
        assert_eq!(KnownKind::ALL.len(), 10);
    }
}
