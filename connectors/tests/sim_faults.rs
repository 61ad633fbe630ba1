//! Every fault switch of a simulated department, observed by a plain reqwest/rustls client over
//! real mTLS, switched both through the handle and through the admin endpoint.

mod adapter_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_support::*;
use connectors::sim::pki::SimPki;
use connectors::sim::{Fault, Population, PopulationConfig, SimDepartment, SimDepartmentHandle};
use schemas::protocol::{AnswerError, receive_answer};
use schemas::{Department, FactKind, FactQuery, ProtocolError, ProtocolErrorCode};

struct Rig {
    pop: Arc<Population>,
    pki: SimPki,
    dept: SimDepartmentHandle,
    client: reqwest::Client,
}

async fn rig() -> Rig {
    let pop = Arc::new(Population::generate(PopulationConfig::new(21, 300)));
    let pki = SimPki::generate().unwrap();
    let d = Department::Housing;
    let dept = SimDepartment::spawn(d, pop.clone(), pki.server_tls(d).unwrap(), Fault::None)
        .await
        .unwrap();
    let client = hub_client(&pki, Duration::from_secs(2));
    Rig {
        pop,
        pki,
        dept,
        client,
    }
}

impl Rig {
    fn query(&self) -> FactQuery {
        let p = known_person(&self.pop, Department::Housing);
        query(
            Department::Housing,
            &[("m1", &p.resident_id)],
            &[FactKind::PropertiesOwned, FactKind::FloorAreaOwned],
            self.pop.config.as_of,
        )
    }
}

/// What the client observed.
#[derive(Debug, PartialEq)]
enum Seen {
    VerifiedAnswer,
    Refused(u16, ProtocolErrorCode),
    Rejected(&'static str),
    Timeout,
    ConnectionError,
}

async fn observe(rig: &Rig) -> Seen {
    let q = rig.query();
    match post(&rig.client, &rig.dept.url(), &q).await {
        Err(e) if e.is_timeout() => Seen::Timeout,
        Err(_) => Seen::ConnectionError,
        Ok((200, body)) => match receive_answer(&body, &q, &[rig.dept.public_key()]) {
            Ok(_) => Seen::VerifiedAnswer,
            Err(AnswerError::Malformed(_)) => Seen::Rejected("malformed"),
            Err(AnswerError::BadSignature) => Seen::Rejected("bad_signature"),
            Err(e) => panic!("unexpected rejection: {e}"),
        },
        Ok((status, body)) => {
            let e: ProtocolError = serde_json::from_slice(&body).expect("protocol error body");
            Seen::Refused(status, e.code)
        }
    }
}

async fn check(rig: &Rig, fault: Fault, expected: Seen) {
    rig.dept.set_fault(fault);
    assert_eq!(rig.dept.fault(), fault);
    assert_eq!(observe(rig).await, expected, "{fault:?}");
}

#[tokio::test]
async fn each_fault_is_observable_by_a_plain_client() {
    let rig = rig().await;
    check(&rig, Fault::None, Seen::VerifiedAnswer).await;
    check(&rig, Fault::Hang, Seen::Timeout).await;
    check(
        &rig,
        Fault::refuse(),
        Seen::Refused(403, ProtocolErrorCode::Forbidden),
    )
    .await;
    check(
        &rig,
        Fault::Refuse {
            code: ProtocolErrorCode::Overloaded,
        },
        Seen::Refused(429, ProtocolErrorCode::Overloaded),
    )
    .await;
    check(&rig, Fault::MalformedJson, Seen::Rejected("malformed")).await;
    check(&rig, Fault::BadSignature, Seen::Rejected("bad_signature")).await;
    check(&rig, Fault::CloseConnection, Seen::ConnectionError).await;
    // Back to normal: the department recovers at once.
    check(&rig, Fault::None, Seen::VerifiedAnswer).await;
    assert_eq!(rig.dept.query_count(), 8, "one request per check");
}

#[tokio::test]
async fn a_delay_slows_the_answer_but_it_still_verifies() {
    let rig = rig().await;
    let delay = Duration::from_millis(400);
    rig.dept.set_fault(Fault::delay(delay));
    let started = Instant::now();
    assert_eq!(observe(&rig).await, Seen::VerifiedAnswer);
    assert!(started.elapsed() >= delay, "answered before the delay");
    // A delay longer than the client's timeout is a timeout.
    rig.dept.set_fault(Fault::delay(Duration::from_secs(5)));
    assert_eq!(observe(&rig).await, Seen::Timeout);
}

#[tokio::test]
async fn faults_can_be_switched_through_the_admin_endpoint() {
    let rig = rig().await;
    let url = format!("{}/sim/fault", rig.dept.url());
    let set: Fault = rig
        .client
        .put(&url)
        .json(&serde_json::json!({"fault": "bad_signature"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set, Fault::BadSignature);
    assert_eq!(rig.dept.fault(), Fault::BadSignature);
    assert_eq!(observe(&rig).await, Seen::Rejected("bad_signature"));
    let got: Fault = rig
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, Fault::BadSignature);
    let bad = rig
        .client
        .put(&url)
        .json(&serde_json::json!({"fault": "explode"}))
        .send()
        .await
        .unwrap();
    assert!(bad.status().is_client_error());
    rig.client
        .put(&url)
        .json(&serde_json::json!({"fault": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(observe(&rig).await, Seen::VerifiedAnswer);
    let log: serde_json::Value = rig
        .client
        .get(format!("{}/sim/queries", rig.dept.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["count"], 2);
    assert_eq!(
        log["queries"][1]["fact_kinds"],
        serde_json::json!(["housing.properties_owned", "housing.floor_area_owned"])
    );
    let _ = &rig.pki;
}
