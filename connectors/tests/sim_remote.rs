//! The two halves of the crate together: the hub-side `RemoteConnector` against a simulated
//! department over real mTLS. Every fault switch ends in its documented `ConnectorError` code
//! within the per-department timeout, and a dead department opens the circuit breaker.

mod adapter_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_support::*;
use connectors::sim::pki::SimPki;
use connectors::sim::{Fault, Population, PopulationConfig, SimDepartment, SimDepartmentHandle};
use connectors::{BreakerConfig, Connector, RemoteConfig, RemoteConnector};
use schemas::{Department, FactKind, FactQuery, ProtocolErrorCode, SubjectOutcome};

const TIMEOUT: Duration = Duration::from_millis(1500);

struct Rig {
    pop: Arc<Population>,
    dept: SimDepartmentHandle,
    remote: RemoteConnector,
}

async fn rig(breaker: BreakerConfig) -> Rig {
    let pop = Arc::new(Population::generate(PopulationConfig::new(13, 200)));
    let pki = SimPki::generate().unwrap();
    let d = Department::Disability;
    let dept = SimDepartment::spawn(d, pop.clone(), pki.server_tls(d).unwrap(), Fault::None)
        .await
        .unwrap();
    let mut config = RemoteConfig::new(d, dept.url(), vec![dept.public_key()]);
    config.timeout = TIMEOUT;
    config.breaker = breaker;
    let tls = connectors::tls::client_config(
        &[pki.department_ca.cert_der()],
        vec![pki.hub_client.cert_der.clone()],
        pki.hub_client.key_der(),
    )
    .unwrap();
    let remote = RemoteConnector::new(config, tls).unwrap();
    Rig { pop, dept, remote }
}

impl Rig {
    fn query(&self) -> FactQuery {
        let p = known_person(&self.pop, Department::Disability);
        query(
            Department::Disability,
            &[("m1", &p.resident_id), ("m2", &stranger())],
            &[FactKind::DisabilityGrade, FactKind::CareSubsidy],
            self.pop.config.as_of,
        )
    }

    /// The outcome code of one query through the remote connector: `ok` or the error code.
    async fn outcome(&self) -> String {
        let q = self.query();
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let r = self.remote.query(&q, deadline).await;
        // Behaviour, not performance: the answer is bounded by the per-department timeout (a
        // generous margin keeps this robust on a loaded machine; the slow fault takes 5 s).
        assert!(
            started.elapsed() < TIMEOUT + Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        match r {
            Ok(v) => {
                assert!(matches!(
                    v.answer
                        .results
                        .iter()
                        .find(|r| r.subject_ref == "m2")
                        .unwrap()
                        .outcome,
                    SubjectOutcome::Unknown { .. }
                ));
                "ok".into()
            }
            Err(e) => e.code().into(),
        }
    }
}

#[tokio::test]
async fn each_fault_ends_in_its_documented_connector_error() {
    let rig = rig(BreakerConfig {
        failure_threshold: 100,
        cool_down: Duration::from_secs(30),
    })
    .await;
    for (fault, expected) in [
        (Fault::None, "ok"),
        (Fault::delay(Duration::from_millis(200)), "ok"),
        (Fault::delay(Duration::from_secs(5)), "timeout"),
        (Fault::Hang, "timeout"),
        (Fault::refuse(), "refused"),
        (
            Fault::Refuse {
                code: ProtocolErrorCode::Overloaded,
            },
            "refused",
        ),
        (Fault::MalformedJson, "malformed"),
        (Fault::BadSignature, "bad_signature"),
        (Fault::CloseConnection, "unavailable"),
        (Fault::None, "ok"),
    ] {
        rig.dept.set_fault(fault);
        assert_eq!(rig.outcome().await, expected, "{fault:?}");
    }
}

#[tokio::test]
async fn a_dead_department_opens_the_breaker_and_is_not_asked_again() {
    let rig = rig(BreakerConfig {
        failure_threshold: 2,
        cool_down: Duration::from_secs(60),
    })
    .await;
    rig.dept.set_fault(Fault::CloseConnection);
    assert_eq!(rig.outcome().await, "unavailable");
    assert_eq!(rig.outcome().await, "unavailable");
    let asked = rig.dept.query_count();
    assert_eq!(rig.outcome().await, "circuit_open");
    assert_eq!(
        rig.dept.query_count(),
        asked,
        "an open breaker must not reach the department"
    );
    assert_eq!(rig.remote.breaker_state().code(), "open");
}
