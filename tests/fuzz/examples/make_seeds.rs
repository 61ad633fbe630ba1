//! Writes the seed corpora under `seeds/<target>/` from the project's test vectors: the README's
//! example exchange (`schemas/examples/`), the C2SP and sum.golang.org note vectors of `tlog`'s
//! tests, the access-log sample of `schemas::access_log`'s tests, valid resident IDs, and answers
//! for every department signed with the example key; it checks that each seed meant to be accepted
//! is (answers received, entries decoded, checkpoints and receipts verified). Deterministic: running it again rewrites the
//! same files. Run from `tests/fuzz`: `cargo run --example make_seeds --no-default-features`.

use std::path::{Path, PathBuf};

use jishijiu_fuzz::{
    LOG_ORIGIN, TODAY, department_key, department_keys, log_signer, queries, witness,
};
use schemas::access_log::{
    AccessLogEntry, Action, Actor, Decision, Effect, FORMAT_V1, Outcome, PseudonymKey, decode,
    pseudonymize,
};
use schemas::catalogue::{FactValue, MonthAmount, ValueType};
use schemas::protocol::{ProtocolVersion, receive_answer};
use schemas::*;
use tlog::checkpoint::{WitnessPolicy, open_checkpoint};
use tlog::hash::leaf_hash;
use tlog::proof::inclusion_proof_from_leaves;
use tlog::tile::{Tile, encode_bundle};
use tlog::{Checkpoint, Hash, Receipt};

const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const GO_CHECKPOINT: &str = "go.sum database tree\n65664258\nWVVNVD2qx+fTq31zkj6UAqxT5X6HvGphGM+o8Thnbsg=\n\n\u{2014} sum.golang.org Az3grligJmgX7KGyGPKybykNTh3VgsbLvUuvOwrM5zLVlulmFp2wdvbxOw74/gcNxURShXEpb7RXcs3+BYflYN+w0gQ=\n";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let dir = root().join("seeds").join(target);
    std::fs::create_dir_all(&dir).expect("create seeds dir");
    std::fs::write(dir.join(name), bytes).expect("write seed");
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(root().join("../..").join(rel)).expect("read test vector")
}

fn id(region: &str, birth: time::Date, seq: u16) -> ResidentId {
    ResidentId::from_parts(region, birth, seq).expect("valid parts")
}

/// A value of the catalogue's type for `kind` (as in `schemas/benches/protocol.rs`).
fn value(kind: FactKind, as_of: time::Date) -> FactValue {
    let spec = kind.spec();
    match spec.value_type {
        ValueType::Bool => FactValue::Bool(true),
        ValueType::Count => FactValue::Count(2),
        ValueType::MoneyFen => FactValue::MoneyFen(1_234_500),
        ValueType::AreaDm2 => FactValue::AreaDm2(9_800),
        ValueType::Days => FactValue::Days(12),
        ValueType::Code => FactValue::Code(spec.codes[1 % spec.codes.len()].into()),
        ValueType::OptionalDate => FactValue::OptionalDate(Some(as_of)),
        ValueType::Division => FactValue::Division(DivisionCode::parse("370811002").unwrap()),
        ValueType::MonthlyFen => {
            let mut m = YearMonth::of(as_of);
            let mut months = Vec::new();
            for _ in 0..3 {
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

fn resident_ids() {
    let t = "resident_id";
    write(t, "example-x", "11010519491231002X");
    write(t, "example-lower-x", "11010519491231002x");
    write(t, "example-1880", "440524188001010014");
    let born = time::macros::date!(1990 - 01 - 01);
    write(t, "jining", id("370811", born, 123).expose());
    write(
        t,
        "leap-day",
        id("370811", time::macros::date!(2000 - 02 - 29), 2).expose(),
    );
    write(t, "today", id("370811", TODAY, 999).expose());
    write(t, "bad-check", "370811199001011230");
    write(t, "bad-date", "370811199002301234");
    write(t, "too-short", "37081119900101");
    write(t, "wide", "３７０８１１１９９００１０１１２３４");
}

fn requests() {
    let t = "verification_request";
    let born = time::macros::date!(1980 - 05 - 17);
    let body = serde_json::json!({
        "household": {
            "registered_division": "370811002",
            "members": [
                {"resident_id": id("370811", born, 11).expose(), "name": "张三", "relation": "applicant"},
                {"resident_id": id("370811", born, 12).expose(), "name": "李四", "relation": "spouse"},
                {"resident_id": id("370811", time::macros::date!(2012 - 09 - 01), 13).expose(), "name": "张小", "relation": "child"},
            ],
        },
        "purpose": "dibao_application",
        "case_ref": "RC-2026-00042",
        "urgency": "normal",
        "authorization_id": "0193f1c2-7a4e-7c3b-9d2e-5f6a7b8c9d0e",
        "declared": {"household_monthly_income_fen": 150000, "properties_owned": 1},
        "force_fresh": false,
        "wait_ms": 1000,
    });
    write(t, "request.json", serde_json::to_vec_pretty(&body).unwrap());
    let mut emergency = body.clone();
    emergency["urgency"] = "emergency".into();
    emergency["purpose"] = "temporary_assistance".into();
    emergency
        .as_object_mut()
        .unwrap()
        .remove("authorization_id");
    write(t, "emergency.json", serde_json::to_vec(&emergency).unwrap());
    write(
        t,
        "household.json",
        serde_json::to_vec(&body["household"]).unwrap(),
    );
    let typed = Household {
        registered_division: DivisionCode::parse("370811").unwrap(),
        members: vec![Member {
            resident_id: id("370811", born, 21),
            name: "王五".into(),
            relation: Relation::Applicant,
        }],
    };
    write(
        t,
        "typed-household.json",
        serde_json::to_vec(&typed).unwrap(),
    );
    write(t, "array.json", "[null,null]");
}

fn connector_bodies() {
    write(
        "connector_query",
        "fact-query.json",
        read("schemas/examples/fact-query.json"),
    );
    for q in queries() {
        write(
            "connector_query",
            &format!("query-{}.json", q.department.code()),
            serde_json::to_vec(q).unwrap(),
        );
    }
    let err = schemas::ProtocolError::new(ProtocolErrorCode::TooManySubjects, "at most 64")
        .with_field("subjects")
        .with_request_id(queries()[0].request_id);
    write(
        "connector_query",
        "protocol-error.json",
        serde_json::to_vec(&err).unwrap(),
    );

    // connector_answer: one selector byte (which query), then the body.
    let mut example = vec![0u8];
    example.extend(read("schemas/examples/signed-answer.json"));
    receive_answer(&example[1..], &queries()[0], department_keys())
        .expect("the README's example answer is accepted");
    // Regression (fixed): `[answer, signature]` decoded by position and the receiver panicked.
    let v: serde_json::Value = serde_json::from_slice(&example[1..]).unwrap();
    let mut array = vec![0u8];
    array.extend(serde_json::to_vec(&serde_json::json!([v["answer"], v["signature"]])).unwrap());
    write("connector_answer", "regression-array-answer", array);
    write("connector_answer", "example-signed-answer", example);
    for (i, q) in queries().iter().enumerate().skip(1) {
        let answer = DepartmentAnswer {
            protocol: ProtocolVersion,
            request_id: q.request_id,
            department: q.department,
            answered_at: time::macros::datetime!(2026-11-29 02:15:08 UTC),
            query_digest: q.digest(),
            results: q
                .subjects
                .iter()
                .enumerate()
                .map(|(j, s)| SubjectResult {
                    subject_ref: s.subject_ref.clone(),
                    outcome: if j == 0 {
                        SubjectOutcome::Found {
                            facts: q
                                .fact_kinds
                                .iter()
                                .map(|&k| Fact {
                                    kind: k,
                                    value: value(k, q.as_of),
                                    period: k.spec().period.period_for(q.as_of),
                                })
                                .collect(),
                        }
                    } else {
                        SubjectOutcome::Refused {
                            reason: "sealed record".into(),
                        }
                    },
                })
                .collect(),
        };
        let signed = SignedAnswer::sign(answer, department_key()).unwrap();
        let json = serde_json::to_vec(&signed).unwrap();
        receive_answer(&json, q, department_keys()).expect("the seed answer is accepted");
        let mut body = vec![i as u8];
        body.extend(json);
        write(
            "connector_answer",
            &format!("answer-{}", q.department.code()),
            body,
        );
    }
}

fn access_log() {
    let key = PseudonymKey::new(&[0x5a; 32]).unwrap();
    let mut e = AccessLogEntry {
        format: FORMAT_V1.to_owned(),
        time: time::macros::datetime!(2026-11-29 12:34:56.789 UTC),
        actor: Actor {
            uri: "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-0001".into(),
            principal: "cw-0001".into(),
            role: Role::Caseworker,
            organisation: "mz-370811002".into(),
            division: DivisionCode::parse("370811002").unwrap(),
        },
        action: Action::DepartmentQueried,
        purpose: Some(Purpose::DibaoApplication),
        case_ref: Some("RC-2026-00042".into()),
        decision: Decision {
            effect: Effect::Allow,
            policy_ids: vec![
                "caseworker-own-township".into(),
                "authorization-on-file".into(),
            ],
        },
        departments: vec![Department::Labor, Department::CivilAffairs],
        fact_kinds: vec![FactKind::MonthlyWages, FactKind::EmploymentStatus],
        outcome: Outcome::Succeeded,
        request_id: "0193f1c2-7a4e-7c3b-9d2e-5f6a7b8c9d0e".into(),
        subjects: vec![
            pseudonymize(&key, "370811199001011234"),
            pseudonymize(&key, "37081119900101123X"),
        ],
    };
    e.normalize();
    let bytes = e.encode().unwrap();
    decode(&bytes).expect("the seed entry decodes");
    write("access_log_entry", "department-queried.json", bytes);
    e.action = Action::LogSearched;
    e.purpose = None;
    e.case_ref = None;
    e.decision.effect = Effect::Deny;
    e.outcome = Outcome::Denied;
    e.departments.clear();
    e.fact_kinds.clear();
    e.normalize();
    write(
        "access_log_entry",
        "denied-search.json",
        e.encode().unwrap(),
    );
}

fn notes_and_checkpoints() -> String {
    let text = Checkpoint::new(LOG_ORIGIN, 3, leaf_hash(b"three"))
        .unwrap()
        .to_note_text();
    let signed = tlog::note::sign_note(&text, &[log_signer()]).unwrap();
    let cosigned = format!("{signed}{}", witness().cosign(&text, 1_764_460_800));
    write("signed_note", "spec-note", SPEC_NOTE);
    write("signed_note", "sum-golang-org-checkpoint", GO_CHECKPOINT);
    write("signed_note", "hub-checkpoint", &signed);
    write("signed_note", "cosigned-checkpoint", &cosigned);
    write("signed_note", "spec-vkey", SPEC_VKEY);
    write(
        "signed_note",
        "hub-vkey",
        log_signer().verifier_key().to_string(),
    );
    write(
        "signed_note",
        "witness-vkey",
        witness().verifier_key().to_string(),
    );
    write("signed_note", "hub-skey", log_signer().to_skey_text());
    let policy = WitnessPolicy {
        witnesses: vec![witness().verifier_key()],
        quorum: 1,
    };
    open_checkpoint(
        cosigned.as_bytes(),
        LOG_ORIGIN,
        &log_signer().verifier_key(),
        &policy,
    )
    .expect("the seed checkpoint opens with its cosignature");
    write("checkpoint", "text", &text);
    write(
        "checkpoint",
        "text-with-extension",
        format!("{text}extension line\n"),
    );
    write("checkpoint", "signed", &signed);
    write("checkpoint", "cosigned", &cosigned);
    write(
        "checkpoint",
        "text-then-cosignature",
        format!("{text}\n{}", witness().cosign(&text, 7)),
    );
    write("checkpoint", "sum-golang-org", GO_CHECKPOINT);
    signed
}

fn receipts_and_tiles() {
    // A receipt for entry 1 of a 3-entry log (its checkpoint is not the one above: fine for a seed).
    let leaves: Vec<Hash> = [b"zero".as_slice(), b"one", b"two"]
        .iter()
        .map(|e| leaf_hash(e))
        .collect();
    let root = tlog::hash::root_from_leaf_hashes(&leaves);
    let signed = Checkpoint::new(LOG_ORIGIN, 3, root)
        .unwrap()
        .sign(log_signer())
        .unwrap();
    let receipt = Receipt {
        extra: Some(b"jsj".to_vec()),
        index: 1,
        proof: inclusion_proof_from_leaves(&leaves, 1).unwrap(),
        checkpoint: signed,
    };
    receipt
        .verify(
            b"one",
            LOG_ORIGIN,
            &log_signer().verifier_key(),
            &WitnessPolicy::default(),
        )
        .expect("the seed receipt verifies");
    // tlog_proof takes structured input (arbitrary); the receipt text at the end is its tail.
    let mut raw = vec![0u8; 32 * 3 + 24 + 8];
    raw.extend(receipt.to_text().as_bytes());
    write("tlog_proof", "receipt-tail", raw);
    write("tlog_proof", "zeros", [0u8; 256]);

    let t = "tile_path";
    for (name, path) in [
        (
            "level0-full",
            Tile {
                level: 0,
                n: 1_234_067,
                width: 256,
            }
            .path(),
        ),
        (
            "level1-partial",
            Tile {
                level: 1,
                n: 7,
                width: 3,
            }
            .path(),
        ),
        (
            "entries-partial",
            Tile {
                level: 0,
                n: 0,
                width: 1,
            }
            .entries_path(),
        ),
        (
            "entries-full",
            Tile {
                level: 0,
                n: 1_000,
                width: 256,
            }
            .entries_path(),
        ),
    ] {
        write(t, name, path);
    }
    write(
        t,
        "bundle",
        encode_bundle(&[b"zero".as_slice(), b"one", b""]).unwrap(),
    );
}

/// One signed event of every built-in kind, issued at `TODAY` 07:59 UTC (fresh for the target's
/// clock), each checked to be received.
fn events() {
    use schemas::events::{DepartmentEvent, Freshness, KnownKind, SignedEvent};
    use schemas::events::{DetailType, receive_event};
    let t = "department_event";
    for (i, kind) in KnownKind::ALL.iter().enumerate() {
        let mut details = serde_json::Map::new();
        for (field, ty) in kind.required_details() {
            let v = match ty {
                DetailType::Fen => serde_json::json!(1_234_500),
                DetailType::Date => serde_json::json!("2026-11-20"),
                DetailType::Code => serde_json::json!("c1"),
                DetailType::Bool => serde_json::json!(true),
            };
            details.insert((*field).to_owned(), v);
        }
        let department = kind.code().split_once('.').unwrap().0.to_owned();
        let event: DepartmentEvent = serde_json::from_value(serde_json::json!({
            "protocol": "jsj-connector/1",
            "event_id": format!("00000000-0000-7000-8000-{:012}", i + 1),
            "department": department,
            "kind": kind.code(),
            "occurred_at": "2026-11-27T07:59:00Z",
            "issued_at": "2026-11-30T07:59:00Z",
            "subject": {
                "resident_id": id("370811", time::macros::date!(1980 - 01 - 01), 11 + i as u16).expose(),
            },
            "details": details,
        }))
        .expect("a seed event decodes");
        let bytes = serde_json::to_vec(&SignedEvent::sign(event, department_key()).unwrap()).unwrap();
        let now = TODAY.with_hms(8, 0, 0).unwrap().assume_utc();
        receive_event(&bytes, |_| department_keys().to_vec(), now, Freshness::default())
            .expect("a seed event is received");
        write(t, &format!("event-{}", kind.code()), bytes);
    }
}

fn main() {
    let seeds = root().join("seeds");
    if Path::new(&seeds).exists() {
        std::fs::remove_dir_all(&seeds).expect("clear seeds");
    }
    resident_ids();
    requests();
    connector_bodies();
    access_log();
    notes_and_checkpoints();
    receipts_and_tiles();
    events();
    println!("seeds written under {}", seeds.display());
}
