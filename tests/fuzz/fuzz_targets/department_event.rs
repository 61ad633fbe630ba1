//! The hub receiving a department's signed event (`schemas::events::receive_event`: JSON → objects
//! only → JSON Schema → typed decode → Ed25519 under the named department's key → freshness → the
//! built-in kind's details). Never panics; an accepted event's JSON as received is what the
//! signature covers, its kind belongs to its department, and a built-in kind carries its details.
//!
//! A fuzzer cannot forge Ed25519, so each input is received twice: as it is, and with its `event`
//! re-signed by the example department key (the checks behind the signature).
#![no_main]

use base64::Engine as _;
use jishijiu_fuzz::{TODAY, department_key, department_keys};
use libfuzzer_sys::fuzz_target;
use schemas::events::{Freshness, ReceivedEvent, event_signing_bytes, receive_event};
use schemas::protocol::{AnswerSignature, SignatureAlg, key_id_for};
use serde_json::Value;

fn now() -> time::OffsetDateTime {
    TODAY.with_hms(8, 0, 0).expect("a time").assume_utc()
}

fn check_accepted(e: &ReceivedEvent) {
    assert!(e.event_json.is_object(), "the signature covers an event object");
    let (department, _) = e.event.kind.split_once('.').expect("kind has a department");
    assert_eq!(department, e.event.department);
    if let Some(k) = e.known {
        for (field, _) in k.required_details() {
            assert!(e.event.details.contains_key(*field), "{field}");
        }
    }
    assert!(e.event.details.values().all(|v| !v.is_array() && !v.is_object()));
}

fuzz_target!(|data: &[u8]| {
    let keys = |_: &str| department_keys().to_vec();
    if let Ok(e) = receive_event(data, keys, now(), Freshness::default()) {
        check_accepted(&e);
    }
    let Ok(Value::Object(mut signed)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(event) = signed.get("event") else {
        return;
    };
    let Ok(bytes) = event_signing_bytes(event) else {
        return;
    };
    let key = department_key();
    let signature = AnswerSignature {
        alg: SignatureAlg::Ed25519,
        key_id: key_id_for(ring::signature::KeyPair::public_key(key).as_ref()),
        value: base64::engine::general_purpose::STANDARD.encode(key.sign(&bytes).as_ref()),
    };
    signed.insert(
        "signature".into(),
        serde_json::to_value(signature).expect("a signature serializes"),
    );
    let resigned = serde_json::to_vec(&signed).expect("a JSON object serializes");
    if let Ok(e) = receive_event(&resigned, keys, now(), Freshness::default()) {
        check_accepted(&e);
    }
});
