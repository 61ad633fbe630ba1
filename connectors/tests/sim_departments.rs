//! The seven simulated departments over real mTLS on 127.0.0.1: signed answers that verify for
//! known and unknown people, per-department ground truth, the query log, refusals, and mTLS
//! enforcement.

mod adapter_support;

use std::sync::Arc;
use std::time::Duration;

use adapter_support::*;
use connectors::sim::pki::{SimPki, TestCa, client_config};
use connectors::sim::{Fault, Population, PopulationConfig, PopulationSource, SimDepartment};
use schemas::protocol::receive_answer;
use schemas::{Department, FactKind, FactValue, ProtocolError, ProtocolErrorCode, SubjectOutcome};

#[tokio::test]
async fn every_department_answers_signed_for_known_and_unknown_people() {
    let pop = Arc::new(Population::generate(PopulationConfig::new(5, 800)));
    let as_of = pop.config.as_of;
    let pki = SimPki::generate().unwrap();
    let depts = SimDepartment::spawn_all(pop.clone(), &pki).await.unwrap();
    let client = hub_client(&pki, Duration::from_secs(10));
    for (d, handle) in &depts {
        let kinds: Vec<FactKind> = FactKind::served_by(*d).collect();
        let known = known_person(&pop, *d);
        let unknown = unknown_person(&pop, *d);
        let stranger = stranger();
        let q = query(
            *d,
            &[
                ("m1", &known.resident_id),
                ("m2", &unknown.resident_id),
                ("m3", &stranger),
            ],
            &kinds,
            as_of,
        );
        let (status, body) = post(&client, &handle.url(), &q).await.unwrap();
        assert_eq!(status, 200, "{d}: {}", String::from_utf8_lossy(&body));
        let received = receive_answer(&body, &q, &[handle.public_key()])
            .unwrap_or_else(|e| panic!("{d}: {e}"));
        assert_eq!(received.answer.department, *d);
        let outcome = |r: &str| {
            received
                .answer
                .results
                .iter()
                .find(|x| x.subject_ref == r)
                .map(|x| x.outcome.clone())
                .unwrap()
        };
        let expected =
            PopulationSource::new(pop.clone(), *d).outcome(&known.resident_id, &kinds, as_of);
        assert_eq!(outcome("m1"), expected, "{d}");
        let SubjectOutcome::Found { facts } = outcome("m1") else {
            panic!("{d}: m1 not found")
        };
        assert_eq!(facts.len(), kinds.len());
        // Independent ground-truth checks, straight from the person record.
        let value = |k: FactKind| facts.iter().find(|f| f.kind == k).unwrap().value.clone();
        match *d {
            Department::Labor => {
                let FactValue::MonthlyFen(months) = value(FactKind::MonthlyWages) else {
                    panic!()
                };
                let fens: Vec<i64> = months.iter().map(|m| m.fen).collect();
                assert_eq!(fens, known.labor.monthly_wages_fen.to_vec());
            }
            Department::Housing => {
                assert_eq!(
                    value(FactKind::PropertiesOwned),
                    FactValue::Count(known.housing.properties)
                );
                assert_eq!(
                    value(FactKind::FloorAreaOwned),
                    FactValue::AreaDm2(known.housing.floor_area_dm2)
                );
            }
            Department::Disability => {
                let grade = known.disability.as_ref().unwrap().grade.to_string();
                assert_eq!(value(FactKind::DisabilityGrade), FactValue::Code(grade));
            }
            Department::Health => assert_eq!(
                value(FactKind::MedicalExpensesTotal),
                FactValue::MoneyFen(known.health.medical_total_fen)
            ),
            Department::CivilAffairs => assert_eq!(
                value(FactKind::MaritalStatus),
                FactValue::Code(connectors::sim::facts::marital_code(known.marital).into())
            ),
            _ => {}
        }
        assert!(
            matches!(outcome("m2"), SubjectOutcome::Unknown { .. }),
            "{d}"
        );
        assert!(
            matches!(outcome("m3"), SubjectOutcome::Unknown { .. }),
            "{d}"
        );
        // The department logged exactly what it was asked, without resident IDs.
        let records = handle.queries();
        assert_eq!(handle.query_count(), 1);
        assert_eq!(records[0].fact_kinds, kinds);
        assert_eq!(records[0].subject_refs, vec!["m1", "m2", "m3"]);
        assert_eq!((records[0].found, records[0].unknown), (1, 2));
        let logged = serde_json::to_string(&records).unwrap();
        assert!(!logged.contains(known.resident_id.expose()));
    }
}

#[tokio::test]
async fn a_recent_death_is_reported_by_civil_affairs() {
    let pop = Arc::new(Population::generate(PopulationConfig::new(9, 3_000)));
    let pki = SimPki::generate().unwrap();
    let d = Department::CivilAffairs;
    let h = SimDepartment::spawn(d, pop.clone(), pki.server_tls(d).unwrap(), Fault::None)
        .await
        .unwrap();
    let dead = pop
        .persons()
        .iter()
        .find(|p| p.death.is_some() && p.known_to(d))
        .expect("a recent death");
    let q = query(
        d,
        &[("m1", &dead.resident_id)],
        &[FactKind::DeathRegistration],
        pop.config.as_of,
    );
    let (status, body) = post(&hub_client(&pki, Duration::from_secs(10)), &h.url(), &q)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let a = receive_answer(&body, &q, &[h.public_key()]).unwrap();
    let SubjectOutcome::Found { facts } = &a.answer.results[0].outcome else {
        panic!()
    };
    assert_eq!(facts[0].value, FactValue::OptionalDate(dead.death));
}

fn check_refusal(
    status: u16,
    body: &[u8],
    expected_status: u16,
    code: ProtocolErrorCode,
    field: Option<&str>,
) {
    assert_eq!(status, expected_status, "{}", String::from_utf8_lossy(body));
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    schemas::validate::protocol_error(&v).unwrap();
    let e: ProtocolError = serde_json::from_value(v).unwrap();
    assert_eq!(e.code, code);
    assert_eq!(e.field.as_deref(), field);
}

#[tokio::test]
async fn bad_queries_are_refused_with_stable_codes() {
    let pop = Arc::new(Population::generate(PopulationConfig::new(5, 200)));
    let pki = SimPki::generate().unwrap();
    let d = Department::Labor;
    let h = SimDepartment::spawn(d, pop.clone(), pki.server_tls(d).unwrap(), Fault::None)
        .await
        .unwrap();
    let client = hub_client(&pki, Duration::from_secs(10));
    let p = known_person(&pop, d);
    // Another department's fact kind.
    let q = query(
        d,
        &[("m1", &p.resident_id)],
        &[FactKind::Pension, FactKind::HospitalStays],
        pop.config.as_of,
    );
    let (s, b) = post(&client, &h.url(), &q).await.unwrap();
    check_refusal(
        s,
        &b,
        400,
        ProtocolErrorCode::WrongDepartment,
        Some("fact_kinds[1]"),
    );
    // Addressed to another department.
    let q = query(
        Department::Health,
        &[("m1", &p.resident_id)],
        &[FactKind::HospitalStays],
        pop.config.as_of,
    );
    let (s, b) = post(&client, &h.url(), &q).await.unwrap();
    check_refusal(
        s,
        &b,
        400,
        ProtocolErrorCode::WrongDepartment,
        Some("department"),
    );
    // Not JSON, and another protocol version.
    let resp = client
        .post(format!("{}{}", h.url(), schemas::protocol::QUERY_PATH))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    check_refusal(
        s,
        &resp.bytes().await.unwrap(),
        400,
        ProtocolErrorCode::BadRequest,
        None,
    );
    let mut v = serde_json::to_value(query(
        d,
        &[("m1", &p.resident_id)],
        &[FactKind::Pension],
        pop.config.as_of,
    ))
    .unwrap();
    v["protocol"] = "jsj-connector/2".into();
    let resp = client
        .post(format!("{}/v1/query", h.url()))
        .json(&v)
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    check_refusal(
        s,
        &resp.bytes().await.unwrap(),
        400,
        ProtocolErrorCode::UnsupportedProtocol,
        Some("protocol"),
    );
    assert_eq!(h.query_count(), 4);
    // Health endpoint.
    let health: serde_json::Value = client
        .get(format!("{}/healthz", h.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["department"], "labor");
}

#[tokio::test]
async fn mtls_is_required_and_checked_against_the_hub_ca() {
    let pop = Arc::new(Population::generate(PopulationConfig::new(5, 50)));
    let pki = SimPki::generate().unwrap();
    let d = Department::Justice;
    let h = SimDepartment::spawn(d, pop.clone(), pki.server_tls(d).unwrap(), Fault::None)
        .await
        .unwrap();
    let p = known_person(&pop, d);
    let q = query(
        d,
        &[("m1", &p.resident_id)],
        &[FactKind::CustodyStatus],
        pop.config.as_of,
    );
    // No client certificate at all.
    let anonymous = client_with(
        client_config(&pki.department_ca, None).unwrap(),
        Duration::from_secs(5),
    );
    assert!(post(&anonymous, &h.url(), &q).await.is_err());
    // A client certificate from a CA the department does not trust.
    let rogue_ca = TestCa::new("rogue").unwrap();
    let rogue = rogue_ca.issue_client("rogue-hub", None).unwrap();
    let rogue_client = client_with(
        client_config(&pki.department_ca, Some(&rogue)).unwrap(),
        Duration::from_secs(5),
    );
    assert!(post(&rogue_client, &h.url(), &q).await.is_err());
    assert_eq!(
        h.query_count(),
        0,
        "no query may reach HTTP without a valid client certificate"
    );
    // The hub's certificate works.
    let (s, _) = post(&hub_client(&pki, Duration::from_secs(5)), &h.url(), &q)
        .await
        .unwrap();
    assert_eq!(s, 200);
}

/// A living person's death registration is `null`; the answer must decode and verify (this used to
/// be rejected because `#[serde(flatten)]` buffers `null` as a unit value).
#[tokio::test]
async fn null_death_registration_is_received() {
    let pop = Arc::new(Population::generate(PopulationConfig::new(9, 200)));
    let pki = SimPki::generate().unwrap();
    let d = Department::CivilAffairs;
    let h = SimDepartment::spawn(d, pop.clone(), pki.server_tls(d).unwrap(), Fault::None)
        .await
        .unwrap();
    let alive = known_person(&pop, d);
    let q = query(
        d,
        &[("m1", &alive.resident_id)],
        &[FactKind::DeathRegistration],
        pop.config.as_of,
    );
    let (status, body) = post(&hub_client(&pki, Duration::from_secs(10)), &h.url(), &q)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(r#""value":null"#), "{text}");
    let received = receive_answer(&body, &q, &[h.public_key()]).expect("a null date decodes");
    let SubjectOutcome::Found { facts } = &received.answer.results[0].outcome else {
        panic!("the living person is known to civil affairs");
    };
    assert_eq!(facts[0].value, FactValue::OptionalDate(None));
}
