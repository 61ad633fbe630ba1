//! The example exchange in `schemas/README.md` (files under `schemas/examples/`) must stay a valid,
//! verifiable exchange, and the README's catalogue table must list every fact kind.
//! Regenerate the examples with `UPDATE_SCHEMAS=1 cargo test -p schemas --test examples`.

use std::path::PathBuf;

use ring::signature::Ed25519KeyPair;
use schemas::catalogue::{FactValue, MonthAmount};
use schemas::protocol::{
    ProtocolVersion, answer_signing_bytes, query_digest_of_value, receive_answer,
};
use schemas::*;
use time::macros::{date, datetime};
use uuid::Uuid;

/// The example department key: seed bytes 0x01..=0x20. Published in the README; never use it.
fn example_key() -> Ed25519KeyPair {
    let seed: Vec<u8> = (1u8..=32).collect();
    Ed25519KeyPair::from_seed_unchecked(&seed).unwrap()
}

fn example_query() -> FactQuery {
    FactQuery {
        protocol: ProtocolVersion,
        request_id: Uuid::parse_str("01937f3a-5c2e-7b10-9d4e-2a6f0c8b1e55").unwrap(),
        department: Department::Labor,
        purpose: Purpose::DibaoApplication,
        authorization_ref: "SQ-370811002-2026-00042".into(),
        as_of: date!(2026 - 11 - 29),
        issued_at: datetime!(2026-11-29 02:15:07 UTC),
        subjects: vec![
            QuerySubject {
                subject_ref: "m1".into(),
                resident_id: ResidentId::parse_on("11010519491231002X", date!(2026 - 11 - 29))
                    .unwrap(),
            },
            QuerySubject {
                subject_ref: "m2".into(),
                resident_id: ResidentId::parse_on("440524188001010014", date!(2026 - 11 - 29))
                    .unwrap(),
            },
        ],
        fact_kinds: vec![FactKind::EmploymentStatus, FactKind::MonthlyWages],
    }
}

fn example_answer(q: &FactQuery) -> DepartmentAnswer {
    let ym = |s: &str| YearMonth::parse(s).unwrap();
    DepartmentAnswer {
        protocol: ProtocolVersion,
        request_id: q.request_id,
        department: q.department,
        answered_at: datetime!(2026-11-29 02:15:08 UTC),
        query_digest: query_digest_of_value(&serde_json::to_value(q).unwrap()).unwrap(),
        results: vec![
            SubjectResult {
                subject_ref: "m1".into(),
                outcome: SubjectOutcome::Found {
                    facts: vec![
                        Fact {
                            kind: FactKind::EmploymentStatus,
                            value: FactValue::Code("employed".into()),
                            period: PeriodKind::AsOf.period_for(q.as_of),
                        },
                        Fact {
                            kind: FactKind::MonthlyWages,
                            value: FactValue::MonthlyFen(vec![
                                MonthAmount {
                                    month: ym("2026-09"),
                                    fen: 215_000,
                                },
                                MonthAmount {
                                    month: ym("2026-10"),
                                    fen: 198_050,
                                },
                            ]),
                            period: PeriodKind::Trailing12Months.period_for(q.as_of),
                        },
                    ],
                },
            },
            SubjectResult {
                subject_ref: "m2".into(),
                outcome: SubjectOutcome::Unknown {
                    reason: "no social insurance record".into(),
                },
            },
        ],
    }
}

/// The bytes hashed for `query_digest` (the context line plus canonical JSON).
fn query_digest_bytes(query: &serde_json::Value) -> Vec<u8> {
    let mut b = schemas::protocol::QUERY_DIGEST_CONTEXT.to_vec();
    b.extend(schemas::protocol::canonical_json(query).unwrap());
    let digest = format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &b))
    );
    assert_eq!(digest, query_digest_of_value(query).unwrap());
    b
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn the_example_exchange_verifies() {
    let key = example_key();
    let q = example_query();
    let signed = SignedAnswer::sign(example_answer(&q), &key).unwrap();
    let answer_value = serde_json::to_value(&signed.answer).unwrap();
    let files = [
        (
            "fact-query.json",
            serde_json::to_string_pretty(&q).unwrap() + "\n",
        ),
        (
            "signed-answer.json",
            serde_json::to_string_pretty(&signed).unwrap() + "\n",
        ),
        (
            "answer-signing-bytes.txt",
            String::from_utf8(answer_signing_bytes(&answer_value).unwrap()).unwrap(),
        ),
        (
            "query-digest-bytes.txt",
            String::from_utf8(query_digest_bytes(&serde_json::to_value(&q).unwrap())).unwrap(),
        ),
        (
            "department-public-key.hex",
            hex::encode(ring::signature::KeyPair::public_key(&key).as_ref()) + "\n",
        ),
    ];
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1");
    for (name, content) in &files {
        let path = dir().join(name);
        if update {
            std::fs::write(&path, content).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            &committed, content,
            "{name} drifted; regenerate with UPDATE_SCHEMAS=1 cargo test -p schemas --test examples"
        );
    }

    // A receiver holding only the committed files and the public key accepts the answer.
    let query_json = std::fs::read(dir().join("fact-query.json")).unwrap();
    let query_value: serde_json::Value = serde_json::from_slice(&query_json).unwrap();
    validate::fact_query(&query_value).unwrap();
    let query: FactQuery = serde_json::from_value(query_value).unwrap();
    let pk_hex = std::fs::read_to_string(dir().join("department-public-key.hex")).unwrap();
    let pk: [u8; 32] = hex::decode(pk_hex.trim()).unwrap().try_into().unwrap();
    let body = std::fs::read(dir().join("signed-answer.json")).unwrap();
    let received = receive_answer(&body, &query, &[DepartmentKey::new(pk)]).unwrap();
    assert_eq!(received.answer, example_answer(&q));
}

#[test]
fn the_readme_lists_every_fact_kind() {
    let readme =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    for &k in FactKind::BUILT_IN {
        let spec = k.spec();
        let row = format!("| `{}` | {} | {} |", k.code(), spec.name_zh, spec.name_en);
        assert!(
            readme.contains(&row),
            "README.md lacks the catalogue row starting {row:?}"
        );
    }
}
