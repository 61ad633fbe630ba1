//! Connector protocol v1: canonical bytes, signing, and the receiver pipeline that rejects an answer
//! whole when it is malformed, unsigned by a trusted key, or not an answer to the query.

use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use schemas::catalogue::{FactValue, MonthAmount};
use schemas::protocol::{
    AnswerError, ProtocolVersion, canonical_json, query_digest_of_value, receive_answer,
};
use schemas::*;
use serde_json::{Value, json};
use time::macros::{date, datetime};
use uuid::Uuid;

fn key_pair() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn query() -> FactQuery {
    FactQuery {
        protocol: ProtocolVersion,
        request_id: Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0001),
        department: Department::Labor,
        purpose: Purpose::DibaoApplication,
        authorization_ref: "SQ-370811-2026-000123".into(),
        as_of: date!(2026 - 11 - 29),
        issued_at: datetime!(2026-11-29 08:00:00 UTC),
        subjects: vec![
            QuerySubject {
                subject_ref: "m1".into(),
                resident_id: ResidentId::from_parts("370811", date!(1980 - 05 - 01), 31).unwrap(),
            },
            QuerySubject {
                subject_ref: "m2".into(),
                resident_id: ResidentId::from_parts("370811", date!(1982 - 03 - 09), 42).unwrap(),
            },
        ],
        fact_kinds: vec![FactKind::EmploymentStatus, FactKind::MonthlyWages],
    }
}

fn answer(q: &FactQuery) -> DepartmentAnswer {
    let period = FactKind::MonthlyWages.spec().period.period_for(q.as_of);
    DepartmentAnswer {
        protocol: ProtocolVersion,
        request_id: q.request_id,
        department: q.department,
        answered_at: datetime!(2026-11-29 08:00:01.250 UTC),
        query_digest: q.digest(),
        results: vec![
            SubjectResult {
                subject_ref: "m1".into(),
                outcome: SubjectOutcome::Found {
                    facts: vec![
                        Fact {
                            kind: FactKind::EmploymentStatus,
                            value: FactValue::Code("employed".into()),
                            period: FactKind::EmploymentStatus.spec().period.period_for(q.as_of),
                        },
                        Fact {
                            kind: FactKind::MonthlyWages,
                            value: FactValue::MonthlyFen(vec![MonthAmount {
                                month: YearMonth::parse("2026-10").unwrap(),
                                fen: 312_000,
                            }]),
                            period,
                        },
                    ],
                },
            },
            SubjectResult {
                subject_ref: "m2".into(),
                outcome: SubjectOutcome::Unknown {
                    reason: "no insured record".into(),
                },
            },
        ],
    }
}

fn signed_bytes(a: DepartmentAnswer, kp: &Ed25519KeyPair) -> Vec<u8> {
    serde_json::to_vec(&SignedAnswer::sign(a, kp).unwrap()).unwrap()
}

#[test]
fn a_correct_answer_is_received() {
    let kp = key_pair();
    let q = query();
    q.validate().unwrap();
    let got = receive_answer(
        &signed_bytes(answer(&q), &kp),
        &q,
        &[DepartmentKey::of(&kp)],
    )
    .unwrap();
    assert_eq!(got.answer, answer(&q));
    assert_eq!(got.signature.key_id, DepartmentKey::of(&kp).key_id);
    SignedAnswer {
        answer: got.answer.clone(),
        signature: got.signature.clone(),
    }
    .verify(&[DepartmentKey::of(&kp)])
    .unwrap();
}

fn rejected(body: &[u8], q: &FactQuery, kp: &Ed25519KeyPair) -> AnswerError {
    receive_answer(body, q, &[DepartmentKey::of(kp)]).unwrap_err()
}

/// Apply `edit` to the JSON of a correctly signed answer (after signing) and return the bytes.
fn tampered(q: &FactQuery, kp: &Ed25519KeyPair, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&signed_bytes(answer(q), kp)).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn tampering_breaks_the_signature() {
    let kp = key_pair();
    let q = query();
    let body = tampered(&q, &kp, |v| {
        v["answer"]["results"][0]["facts"][1]["value"]["value"][0]["fen"] = json!(1);
    });
    assert_eq!(rejected(&body, &q, &kp), AnswerError::BadSignature);
    // Signed by another key with the same key id claimed.
    let other = key_pair();
    let mut v: Value = serde_json::from_slice(&signed_bytes(answer(&q), &other)).unwrap();
    v["signature"]["key_id"] = json!(DepartmentKey::of(&kp).key_id);
    assert_eq!(
        rejected(&serde_json::to_vec(&v).unwrap(), &q, &kp),
        AnswerError::BadSignature
    );
    // Signed by a key the hub does not know.
    let body = signed_bytes(answer(&q), &other);
    assert_eq!(
        rejected(&body, &q, &kp),
        AnswerError::UnknownKey(DepartmentKey::of(&other).key_id)
    );
}

#[test]
fn schema_failures_are_malformed() {
    let kp = key_pair();
    let q = query();
    let check = |edit: &dyn Fn(&mut Value), expected_fragment: &str| {
        let body = tampered(&q, &kp, edit);
        match rejected(&body, &q, &kp) {
            AnswerError::Malformed(msg) => assert!(
                msg.contains(expected_fragment),
                "{msg:?} should mention {expected_fragment:?}"
            ),
            other => panic!("expected malformed, got {other:?}"),
        }
    };
    check(
        &|v| {
            v["answer"]["results"][0]["facts"][1]["value"] =
                json!({"type": "money_fen", "value": 1.5})
        },
        "/answer/results/0",
    );
    check(
        &|v| {
            v["answer"].as_object_mut().unwrap().remove("request_id");
        },
        "request_id",
    );
    check(
        &|v| v["answer"]["protocol"] = json!("jsj-connector/2"),
        "/answer/protocol",
    );
    check(
        &|v| v["answer"]["results"][1]["status"] = json!("maybe"),
        "/answer/results/1",
    );
    check(
        &|v| v["signature"]["value"] = json!("not base64"),
        "/signature/value",
    );
    check(
        &|v| v["answer"]["answered_at"] = json!("yesterday"),
        "/answer/answered_at",
    );
    // Patterns the typed decode does not enforce by itself are still malformed, not a key or
    // signature problem.
    check(
        &|v| v["signature"]["key_id"] = json!("ed25519:ABCDEF0123456789"),
        "/signature/key_id",
    );
    check(
        &|v| v["answer"]["query_digest"] = json!("sha256:xyz"),
        "/answer/query_digest",
    );
    let body = b"{\"answer\": ";
    assert!(
        matches!(rejected(body, &q, &kp), AnswerError::Malformed(m) if m.starts_with("not JSON"))
    );
}

/// Found while writing the `connector_answer` fuzz target (its binary reproduces it with
/// `tests/fuzz/seeds/connector_answer/regression-array-answer`): serde reads a struct from a JSON array by position,
/// so `[answer, signature]` decoded as a signed answer and the receiver then panicked taking
/// `v["answer"]` from an array. An answer whose `answer` is an array (signed as such) is refused
/// too: the signature covers "the answer object".
#[test]
fn answers_shaped_as_arrays_are_malformed_not_a_panic() {
    let kp = key_pair();
    let q = query();
    let v: Value = serde_json::from_slice(&signed_bytes(answer(&q), &kp)).unwrap();
    let whole = json!([v["answer"], v["signature"]]);
    let a = &v["answer"];
    let positional = json!([
        a["protocol"],
        a["request_id"],
        a["department"],
        a["answered_at"],
        a["query_digest"],
        a["results"]
    ]);
    let bytes = schemas::protocol::answer_signing_bytes(&positional).unwrap();
    let mut signature = v["signature"].clone();
    signature["value"] = json!(base64_std(kp.sign(&bytes).as_ref()));
    let inner = json!({"answer": positional, "signature": signature});
    for body in [whole, inner] {
        let body = serde_json::to_vec(&body).unwrap();
        assert!(
            matches!(rejected(&body, &q, &kp), AnswerError::Malformed(_)),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// Issue 10, finding 8: a struct nested anywhere in an answer and sent as an array (`facts[0]` as
/// `[kind, value, period]`), correctly signed, was read by position. It is malformed, named by
/// its path.
#[test]
fn nested_structs_shaped_as_arrays_are_malformed() {
    let kp = key_pair();
    let q = query();
    let v: Value = serde_json::from_slice(&signed_bytes(answer(&q), &kp)).unwrap();
    let mut a = v["answer"].clone();
    let fact = a["results"][0]["facts"][0].clone();
    a["results"][0]["facts"][0] = json!([fact["kind"], fact["value"], fact["period"]]);
    // serde alone reads it: the positional form is the same answer to the typed decode.
    let typed: schemas::protocol::DepartmentAnswer = serde_json::from_value(a.clone()).unwrap();
    assert_eq!(typed, answer(&q));
    let bytes = schemas::protocol::answer_signing_bytes(&a).unwrap();
    let mut signature = v["signature"].clone();
    signature["value"] = json!(base64_std(kp.sign(&bytes).as_ref()));
    let body = serde_json::to_vec(&json!({"answer": a, "signature": signature})).unwrap();
    match rejected(&body, &q, &kp) {
        AnswerError::Malformed(m) => assert!(m.contains("answer.results[0].facts[0]"), "{m}"),
        other => panic!("expected malformed, got {other:?}"),
    }
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn answers_to_another_query_are_mismatches() {
    let kp = key_pair();
    let q = query();
    let check = |edit: &dyn Fn(&mut DepartmentAnswer), field: &str| {
        let mut a = answer(&q);
        edit(&mut a);
        match rejected(&signed_bytes(a, &kp), &q, &kp) {
            AnswerError::Mismatch { field: f, .. } => assert_eq!(f, field),
            other => panic!("expected mismatch on {field}, got {other:?}"),
        }
    };
    check(&|a| a.request_id = Uuid::nil(), "answer.request_id");
    check(&|a| a.department = Department::Health, "answer.department");
    check(
        &|a| a.query_digest = format!("sha256:{}", "0".repeat(64)),
        "answer.query_digest",
    );
    check(
        &|a| {
            a.results.pop();
        },
        "answer.results",
    );
    check(
        &|a| {
            let r = a.results[1].clone();
            a.results.push(r);
        },
        "answer.results[2].subject_ref",
    );
    check(
        &|a| a.results[1].subject_ref = "m9".into(),
        "answer.results[1].subject_ref",
    );
    check(
        &|a| {
            if let SubjectOutcome::Found { facts } = &mut a.results[0].outcome {
                facts.pop();
            }
        },
        "answer.results[0].facts",
    );
    check(
        &|a| {
            if let SubjectOutcome::Found { facts } = &mut a.results[0].outcome {
                facts[0].value = FactValue::Code("astronaut".into());
            }
        },
        "answer.results[0].facts[0].value",
    );
    check(
        &|a| {
            if let SubjectOutcome::Found { facts } = &mut a.results[0].outcome {
                facts[0].kind = FactKind::Pension;
                facts[0].value = FactValue::MoneyFen(1);
            }
        },
        "answer.results[0].facts[0].kind",
    );
}

#[test]
fn canonical_json_is_sorted_compact_and_integer_only() {
    let check = |v: Value, expected: Result<&str, ()>| {
        let got = canonical_json(&v)
            .map(|b| String::from_utf8(b).unwrap())
            .map_err(|_| ());
        assert_eq!(got, expected.map(str::to_owned), "{v}");
    };
    check(
        json!({"b": 1, "a": [true, null, "x"], "A": {"z": -5, "y": "é\n\u{1}\"\\/"}}),
        Ok(r#"{"A":{"y":"é\n\u0001\"\\/","z":-5},"a":[true,null,"x"],"b":1}"#),
    );
    check(
        json!({"n": 18446744073709551615u64}),
        Ok(r#"{"n":18446744073709551615}"#),
    );
    check(json!({"n": 1.5}), Err(()));
    check(json!([]), Ok("[]"));
    check(
        json!("\u{8}\u{c}\t\r\u{1f}a済\u{7f}"),
        Ok("\"\\b\\f\\t\\r\\u001fa済\u{7f}\""),
    );
    // The error names where the float is.
    assert_eq!(
        canonical_json(&json!({"a": [0, {"b": 2.5}]})),
        Err(schemas::protocol::CanonicalError::NonInteger(
            "$.a[1].b".into()
        ))
    );
}

#[test]
fn query_digest_covers_the_whole_query() {
    let q = query();
    let v = serde_json::to_value(&q).unwrap();
    assert_eq!(q.digest(), query_digest_of_value(&v).unwrap());
    assert!(q.digest().starts_with("sha256:") && q.digest().len() == 71);
    let mut q2 = q.clone();
    q2.purpose = Purpose::AnnualReview;
    assert_ne!(q.digest(), q2.digest());
}

#[test]
fn query_rules() {
    let check = |edit: &dyn Fn(&mut FactQuery), expected: Option<(ProtocolErrorCode, &str)>| {
        let mut q = query();
        edit(&mut q);
        let got = q
            .validate()
            .err()
            .map(|e| (e.code, e.field.unwrap_or_default()));
        assert_eq!(got, expected.map(|(c, f)| (c, f.to_owned())));
    };
    check(&|_| {}, None);
    check(
        &|q| q.subjects.clear(),
        Some((ProtocolErrorCode::BadRequest, "subjects")),
    );
    check(
        &|q| q.subjects[1].subject_ref = "m1".into(),
        Some((ProtocolErrorCode::BadRequest, "subjects[1].subject_ref")),
    );
    check(
        &|q| q.subjects[1].subject_ref = "m 2".into(),
        Some((ProtocolErrorCode::BadRequest, "subjects[1].subject_ref")),
    );
    check(
        &|q| q.subjects[1].resident_id = q.subjects[0].resident_id.clone(),
        Some((ProtocolErrorCode::BadRequest, "subjects[1].resident_id")),
    );
    check(
        &|q| q.fact_kinds.push(FactKind::MaritalStatus),
        Some((ProtocolErrorCode::WrongDepartment, "fact_kinds[2]")),
    );
    check(
        &|q| q.fact_kinds.push(FactKind::MonthlyWages),
        Some((ProtocolErrorCode::BadRequest, "fact_kinds[2]")),
    );
    check(
        &|q| q.authorization_ref = "授".repeat(129),
        Some((ProtocolErrorCode::BadRequest, "authorization_ref")),
    );
    check(&|q| q.authorization_ref = "授".repeat(128), None);
    check(
        &|q| q.authorization_ref = " ".into(),
        Some((ProtocolErrorCode::BadRequest, "authorization_ref")),
    );
    check(
        &|q| {
            let s = q.subjects[0].clone();
            q.subjects = (0..65)
                .map(|i| QuerySubject {
                    subject_ref: format!("m{i}"),
                    ..s.clone()
                })
                .collect();
        },
        Some((ProtocolErrorCode::TooManySubjects, "subjects")),
    );
}

#[test]
fn messages_validate_against_the_committed_schemas() {
    let q = serde_json::to_value(query()).unwrap();
    validate::fact_query(&q).unwrap();
    let mut bad = q.clone();
    bad["subjects"][0]["resident_id"] = json!("37081119800501031");
    let err = validate::fact_query(&bad).unwrap_err().to_string();
    assert!(err.contains("/subjects/0/resident_id"), "{err}");
    assert!(
        !err.contains("37081119800501031"),
        "validation errors must mask values: {err}"
    );

    let e = ProtocolError::new(
        ProtocolErrorCode::FactKindNotServed,
        "housing.properties_owned is not served",
    )
    .with_field("fact_kinds[0]")
    .with_request_id(Uuid::nil());
    let v = serde_json::to_value(&e).unwrap();
    validate::protocol_error(&v).unwrap();
    assert_eq!(v["code"], "fact_kind_not_served");
    assert_eq!(e.code.http_status(), 422);
    assert_eq!(
        e.to_string(),
        "fact_kind_not_served: housing.properties_owned is not served (field fact_kinds[0])"
    );
}
