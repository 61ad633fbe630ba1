//! Cost of the protocol's crypto and checks for one household: a department signing an answer,
//! and the hub receiving it (JSON parse, JSON Schema, Ed25519 verify, decode, binding checks).
//! Run: `cargo bench -p schemas --bench protocol`.

use criterion::{Criterion, criterion_group, criterion_main};
use ring::signature::Ed25519KeyPair;
use schemas::catalogue::{FactValue, MonthAmount, ValueType};
use schemas::protocol::{ProtocolVersion, receive_answer};
use schemas::*;
use time::macros::{date, datetime};
use uuid::Uuid;

fn value(kind: FactKind, as_of: time::Date) -> FactValue {
    let spec = kind.spec();
    match spec.value_type {
        ValueType::Bool => FactValue::Bool(true),
        ValueType::Count => FactValue::Count(2),
        ValueType::MoneyFen => FactValue::MoneyFen(1_234_500),
        ValueType::AreaDm2 => FactValue::AreaDm2(9_800),
        ValueType::Days => FactValue::Days(12),
        ValueType::Code => FactValue::Code(spec.codes[1 % spec.codes.len()].into()),
        ValueType::OptionalDate => FactValue::OptionalDate(None),
        ValueType::Division => {
            FactValue::Division(schemas::DivisionCode::parse("370811002").expect("code"))
        }
        ValueType::MonthlyFen => {
            let mut m = YearMonth::of(as_of);
            let mut months = Vec::new();
            for _ in 0..12 {
                m = m.previous();
                months.push(MonthAmount {
                    month: m,
                    fen: 250_000,
                });
            }
            FactValue::MonthlyFen(months)
        }
    }
}

/// A six-member household asked for every labor fact (12 months of wages each).
fn exchange() -> (FactQuery, DepartmentAnswer) {
    let as_of = date!(2026 - 11 - 29);
    let kinds: Vec<FactKind> = FactKind::served_by(Department::Labor).collect();
    let q = FactQuery {
        protocol: ProtocolVersion,
        request_id: Uuid::from_u128(7),
        department: Department::Labor,
        purpose: Purpose::DibaoApplication,
        authorization_ref: "SQ-bench".into(),
        as_of,
        issued_at: datetime!(2026-11-29 08:00 UTC),
        subjects: (0..6)
            .map(|i| QuerySubject {
                subject_ref: format!("m{i}"),
                resident_id: ResidentId::from_parts("370811", date!(1970 - 01 - 01), i).unwrap(),
            })
            .collect(),
        fact_kinds: kinds.clone(),
    };
    let a = DepartmentAnswer {
        protocol: ProtocolVersion,
        request_id: q.request_id,
        department: q.department,
        answered_at: datetime!(2026-11-29 08:00:01 UTC),
        query_digest: q.digest(),
        results: q
            .subjects
            .iter()
            .map(|s| SubjectResult {
                subject_ref: s.subject_ref.clone(),
                outcome: SubjectOutcome::Found {
                    facts: kinds
                        .iter()
                        .map(|&k| Fact {
                            kind: k,
                            value: value(k, as_of),
                            period: k.spec().period.period_for(as_of),
                        })
                        .collect(),
                },
            })
            .collect(),
    };
    (q, a)
}

fn bench(c: &mut Criterion) {
    let seed = [7u8; 32];
    let key = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let keys = [DepartmentKey::of(&key)];
    let (q, a) = exchange();
    let body = serde_json::to_vec(&SignedAnswer::sign(a.clone(), &key).unwrap()).unwrap();
    eprintln!("answer body: {} bytes", body.len());
    c.bench_function("department signs a 6-member labor answer", |b| {
        b.iter(|| SignedAnswer::sign(a.clone(), &key).unwrap())
    });
    c.bench_function("hub receives a 6-member labor answer", |b| {
        b.iter(|| receive_answer(&body, &q, &keys).unwrap())
    });
    c.bench_function("ResidentId::parse", |b| {
        b.iter(|| ResidentId::parse(std::hint::black_box("11010519491231002X")).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
