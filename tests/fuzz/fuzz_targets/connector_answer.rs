//! The hub receiving a department's signed answer (`schemas::protocol::receive_answer`: JSON →
//! typed decode / JSON Schema → Ed25519 → binding to the query → catalogue checks), for the README's
//! example query and one query per department. Never panics; an accepted answer answers exactly the
//! subjects and kinds asked, and its JSON as received is what the signature covers.
//!
//! A fuzzer cannot forge Ed25519, so each input is received twice: as it is (the signature path),
//! and with its `answer` re-signed by the example department key (the binding and catalogue
//! checks behind the signature).
#![no_main]

use jishijiu_fuzz::{department_keys, queries, sign_answer_value};
use libfuzzer_sys::fuzz_target;
use schemas::SubjectOutcome;
use schemas::protocol::{FactQuery, ReceivedAnswer, receive_answer, verify_answer_value};
use serde_json::Value;

fn check_accepted(a: &ReceivedAnswer, q: &FactQuery) {
    assert!(
        a.answer_json.is_object(),
        "the signature covers an answer object"
    );
    verify_answer_value(&a.answer_json, &a.signature, department_keys())
        .expect("an accepted answer's signature verifies again");
    assert_eq!(a.answer.request_id, q.request_id);
    assert_eq!(a.answer.department, q.department);
    assert_eq!(a.answer.results.len(), q.subjects.len());
    for r in &a.answer.results {
        assert!(q.subjects.iter().any(|s| s.subject_ref == r.subject_ref));
        if let SubjectOutcome::Found { facts } = &r.outcome {
            assert_eq!(facts.len(), q.fact_kinds.len());
            for f in facts {
                assert!(q.fact_kinds.contains(&f.kind));
                assert!(f.kind.spec().check_value(&f.value, &f.period).is_ok());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let all = queries();
    let query = &all[usize::from(selector) % all.len()];
    if let Ok(a) = receive_answer(body, query, department_keys()) {
        check_accepted(&a, query);
    }
    // Re-sign whatever `answer` the input carries.
    let Ok(Value::Object(mut signed)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let Some(answer) = signed.get("answer") else {
        return;
    };
    let Some(signature) = sign_answer_value(answer) else {
        return;
    };
    signed.insert(
        "signature".into(),
        serde_json::to_value(signature).expect("a signature serializes"),
    );
    let resigned = serde_json::to_vec(&signed).expect("a JSON object serializes");
    if let Ok(a) = receive_answer(&resigned, query, department_keys()) {
        check_accepted(&a, query);
    }
});
