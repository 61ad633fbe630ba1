//! Fixtures shared by the fuzz targets: the published example keys and queries, so that seeds built
//! from the committed test vectors carry signatures that verify and the fuzzer reaches the checks
//! behind the signature (binding, catalogue, proofs) instead of stopping at `BadSignature`.
//!
//! Every target states its invariant at the top: it must never panic on any input, and where a
//! parser promises a canonical form, what it accepts re-encodes to the same bytes.
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use base64::Engine as _;
use ring::signature::Ed25519KeyPair;
use schemas::protocol::{
    AnswerSignature, DepartmentKey, FactQuery, SignatureAlg, answer_signing_bytes, key_id_for,
};
use schemas::{Department, FactKind};
use tlog::cosig::CosignatureSigner;
use tlog::note::Signer;

/// "Today" for targets that must be deterministic (resident IDs born later are "in the future").
pub const TODAY: time::Date = time::macros::date!(2026 - 11 - 30);

/// The example department key of `schemas/README.md` (seed bytes 0x01..=0x20). Never use it.
pub fn department_key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        let seed: Vec<u8> = (1u8..=32).collect();
        Ed25519KeyPair::from_seed_unchecked(&seed).expect("32-byte seed")
    })
}

/// The hub's trusted keys for the example department.
pub fn department_keys() -> &'static [DepartmentKey] {
    static KEYS: OnceLock<Vec<DepartmentKey>> = OnceLock::new();
    KEYS.get_or_init(|| vec![DepartmentKey::of(department_key())])
}

/// The queries an answer is received against: the README's example query
/// (`schemas/examples/fact-query.json`, labor) and, for every department, one query for all the
/// kinds it serves (so every value type of the catalogue is reachable).
pub fn queries() -> &'static [FactQuery] {
    static QUERIES: OnceLock<Vec<FactQuery>> = OnceLock::new();
    QUERIES.get_or_init(|| {
        let example: FactQuery =
            serde_json::from_slice(include_bytes!("../../../schemas/examples/fact-query.json"))
                .expect("the committed example query parses");
        let mut out = vec![example.clone()];
        for department in Department::ALL {
            let kinds: Vec<FactKind> = FactKind::served_by(department).collect();
            if kinds.is_empty() {
                continue;
            }
            out.push(FactQuery {
                department,
                fact_kinds: kinds,
                ..example.clone()
            });
        }
        out
    })
}

/// The query for all kinds `department` serves, with the example's subjects.
pub fn query_for(department: Department) -> &'static FactQuery {
    queries()
        .iter()
        .skip(1)
        .find(|q| q.department == department)
        .expect("every department serves some kind")
}

/// A signature by the example department key over an `answer` JSON value as received.
pub fn sign_answer_value(answer: &serde_json::Value) -> Option<AnswerSignature> {
    let bytes = answer_signing_bytes(answer).ok()?;
    let key = department_key();
    Some(AnswerSignature {
        alg: SignatureAlg::Ed25519,
        key_id: key_id_for(ring::signature::KeyPair::public_key(key).as_ref()),
        value: base64::engine::general_purpose::STANDARD.encode(key.sign(&bytes).as_ref()),
    })
}

/// Name of the test log (the origin line of its checkpoints, and its key name).
pub const LOG_ORIGIN: &str = "hub.example/audit-log";

/// The tlog crate's test log key (seed bytes 0x00..=0x1f).
pub fn log_signer() -> &'static Signer {
    static S: OnceLock<Signer> = OnceLock::new();
    S.get_or_init(|| {
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = i as u8;
        }
        Signer::from_seed(LOG_ORIGIN, seed).expect("valid key name")
    })
}

/// A witness key (seed bytes 0x40..=0x5f).
pub fn witness() -> &'static CosignatureSigner {
    static W: OnceLock<CosignatureSigner> = OnceLock::new();
    W.get_or_init(|| {
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = 0x40 + i as u8;
        }
        CosignatureSigner::from_seed("witness.example/w1", seed).expect("valid key name")
    })
}
