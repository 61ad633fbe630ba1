//! Shared helpers for the adapter and simulator integration tests: a hub-side mTLS client,
//! query builders, an adapter server over a SQL source, and subject pickers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use connectors::adapter::server::{self, ServeOptions, Service};
use connectors::adapter::{FactSource, ServerTls, signing};
use connectors::sim::pki::SimPki;
use connectors::sim::{Person, Population};
use schemas::protocol::{ProtocolVersion, QUERY_PATH};
use schemas::{Department, DepartmentKey, FactKind, FactQuery, Purpose, QuerySubject, ResidentId};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A reqwest client presenting the hub's client certificate and trusting the departments' CA.
pub fn hub_client(pki: &SimPki, timeout: Duration) -> reqwest::Client {
    let config = pki.hub_client_config().expect("client config");
    client_with(config, timeout)
}

pub fn client_with(config: Arc<rustls::ClientConfig>, timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured((*config).clone())
        .timeout(timeout)
        .https_only(true)
        .build()
        .expect("reqwest client")
}

/// A query for `subjects` (ref, id) and `kinds`, as of the population's reference date.
pub fn query(
    department: Department,
    subjects: &[(&str, &ResidentId)],
    kinds: &[FactKind],
    as_of: time::Date,
) -> FactQuery {
    FactQuery {
        protocol: ProtocolVersion,
        request_id: Uuid::new_v4(),
        department,
        purpose: Purpose::DibaoApplication,
        authorization_ref: "AUTH-2026-0001".into(),
        as_of,
        issued_at: OffsetDateTime::now_utc(),
        subjects: subjects
            .iter()
            .map(|(r, id)| QuerySubject {
                subject_ref: (*r).to_owned(),
                resident_id: (*id).clone(),
            })
            .collect(),
        fact_kinds: kinds.to_vec(),
    }
}

/// POST a query; returns status and body.
pub async fn post(
    client: &reqwest::Client,
    base: &str,
    q: &FactQuery,
) -> Result<(u16, Vec<u8>), reqwest::Error> {
    let resp = client
        .post(format!("{base}{QUERY_PATH}"))
        .json(q)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.bytes().await?.to_vec()))
}

/// A living person the department knows, with data worth checking (wages, a certificate, an enrolment).
pub fn known_person(pop: &Population, d: Department) -> &Person {
    pop.persons()
        .iter()
        .find(|p| {
            p.known_to(d)
                && p.death.is_none()
                && (d != Department::Labor || p.labor.wages_12m_fen() > 0)
                && (d != Department::Disability || p.disability.is_some())
                && (d != Department::Education || p.education.is_some())
        })
        .expect("a known person")
}

/// A person in the population the department has no record of.
pub fn unknown_person(pop: &Population, d: Department) -> &Person {
    pop.persons()
        .iter()
        .find(|p| !p.known_to(d))
        .expect("an unknown person")
}

/// A valid resident ID that belongs to nobody in the population.
pub fn stranger() -> ResidentId {
    // Region 110105 (Beijing Chaoyang) is never used by the Jining simulator.
    ResidentId::from_parts("110105", time::macros::date!(1980 - 05 - 17), 123).expect("valid parts")
}

/// A running adapter server (the `connector` code path) over any fact source.
pub struct AdapterServer {
    pub addr: SocketAddr,
    pub key: DepartmentKey,
    pub service: Arc<Service>,
    shutdown: CancellationToken,
}

impl AdapterServer {
    pub async fn spawn(source: Arc<dyn FactSource>, tls: ServerTls) -> AdapterServer {
        Self::spawn_with(source, tls, ServeOptions::default()).await
    }

    pub async fn spawn_with(
        source: Arc<dyn FactSource>,
        tls: ServerTls,
        options: ServeOptions,
    ) -> AdapterServer {
        let der = signing::generate_pkcs8().expect("key");
        let key = signing::key_from_pkcs8(&der, "test").expect("key");
        let service = Arc::new(Service::new(source, key));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        tokio::spawn(server::serve(
            listener,
            tls.server_config().expect("server config"),
            server::router(service.clone()),
            options,
            shutdown.clone(),
        ));
        AdapterServer {
            addr,
            key: service.public_key(),
            service,
            shutdown,
        }
    }

    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

impl Drop for AdapterServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serve `d` from the database at `url` with `mapping_toml` minus its last fact kind, then check:
/// signed answers equal the simulator's for a known person, unknown people are `unknown`, and the
/// left-out kind is refused with `fact_kind_not_served` (HTTP 422).
pub async fn check_department_over_sql(
    pop: &Arc<Population>,
    pki: &SimPki,
    d: Department,
    url: &str,
    mapping_toml: &str,
) {
    use connectors::adapter::{Mapping, SqlFactSource};
    use connectors::sim::PopulationSource;
    use schemas::protocol::receive_answer;
    use schemas::{ProtocolError, ProtocolErrorCode, SubjectOutcome};

    let mut mapping = Mapping::from_toml(mapping_toml).unwrap_or_else(|e| panic!("{d}: {e}"));
    let unserved = *mapping.facts.keys().last().unwrap();
    mapping.facts.remove(&unserved);
    let source = SqlFactSource::connect(url, mapping)
        .await
        .unwrap_or_else(|e| panic!("{d}: {e}"));
    let server = AdapterServer::spawn(Arc::new(source), pki.server_tls(d).unwrap()).await;
    let client = hub_client(pki, Duration::from_secs(20));
    let as_of = pop.config.as_of;
    let kinds: Vec<FactKind> = FactKind::served_by(d)
        .filter(|k| *k != unserved && *k != FactKind::DeathRegistration)
        .collect();
    let known = known_person(pop, d);
    let unknown = unknown_person(pop, d);
    let stranger = stranger();
    let q = query(
        d,
        &[
            ("a", &known.resident_id),
            ("b", &unknown.resident_id),
            ("c", &stranger),
        ],
        &kinds,
        as_of,
    );
    let (status, body) = post(&client, &server.url(), &q).await.unwrap();
    assert_eq!(status, 200, "{d}: {}", String::from_utf8_lossy(&body));
    let received = receive_answer(&body, &q, std::slice::from_ref(&server.key))
        .unwrap_or_else(|e| panic!("{d}: {e}"));
    let sim = PopulationSource::new(pop.clone(), d);
    for r in &received.answer.results {
        match r.subject_ref.as_str() {
            "a" => assert_eq!(
                r.outcome,
                sim.outcome(&known.resident_id, &kinds, as_of),
                "{d}"
            ),
            _ => assert!(
                matches!(r.outcome, SubjectOutcome::Unknown { .. }),
                "{d}: {:?}",
                r.outcome
            ),
        }
    }
    // The kind left out of the mapping is refused, whole, with the stable code.
    let mut with_unserved = kinds.clone();
    with_unserved.push(unserved);
    let q = query(d, &[("a", &known.resident_id)], &with_unserved, as_of);
    let (status, body) = post(&client, &server.url(), &q).await.unwrap();
    assert_eq!(status, 422, "{d}");
    let e: ProtocolError = serde_json::from_slice(&body).unwrap();
    assert_eq!(e.code, ProtocolErrorCode::FactKindNotServed, "{d}");
    assert_eq!(e.field, Some(format!("fact_kinds[{}]", kinds.len())));
    assert_eq!(e.request_id, Some(q.request_id));
    assert!(e.message.contains(unserved.code()), "{}", e.message);
    let records = server.service.log.records();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1].refusal,
        Some(ProtocolErrorCode::FactKindNotServed)
    );
}
