//! Connector protocol v1 bodies other than answers: a department reading the hub's query (the
//! adapter's `parse_query`: JSON → protocol tag → JSON Schema → typed decode → `FactQuery::validate`)
//! and derives the reference periods; and the hub reading a department's error body (JSON → schema → `ProtocolError`). Never panics;
//! canonical JSON of any value is stable, and an accepted query's digest equals the digest of the
//! JSON it was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schemas::protocol::{
    FactQuery, PROTOCOL_V1, ProtocolError, canonical_json, query_digest_of_value,
};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // Canonical bytes are a fixed point: parsing them and canonicalising again changes nothing.
    if let Ok(c) = canonical_json(&v) {
        let again: Value = serde_json::from_slice(&c).expect("canonical JSON parses");
        assert_eq!(canonical_json(&again).as_deref(), Ok(&c[..]));
    }
    // Department side.
    if v.get("protocol").and_then(Value::as_str) == Some(PROTOCOL_V1)
        && schemas::validate::fact_query(&v).is_ok()
        && let Ok(q) = serde_json::from_value::<FactQuery>(v.clone())
        && q.validate().is_ok()
    {
        // The digest the hub computes from its typed query is the one the department computes
        // from the JSON it received, whenever the JSON is the typed query's own serialisation.
        // What the department does next: the reference period of every kind asked.
        for k in &q.fact_kinds {
            let p = k.spec().period.period_for(q.as_of);
            assert!(
                p.from <= p.to || q.as_of.year() <= -9998,
                "{k}: period ends before it starts"
            );
        }
        let typed = serde_json::to_value(&q).expect("a query serializes");
        let _ = query_digest_of_value(&v);
        assert_eq!(query_digest_of_value(&typed).ok(), Some(q.digest()));
    }
    // Hub side, a department's refusal.
    if schemas::validate::protocol_error(&v).is_ok()
        && let Ok(e) = serde_json::from_value::<ProtocolError>(v)
    {
        let _ = (e.to_string(), e.code.code(), e.code.http_status());
    }
});
