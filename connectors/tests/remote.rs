//! `RemoteConnector` against a small test department over real mTLS on 127.0.0.1:0.
//!
//! The test department (in this file; the full simulator lives in `connectors::sim`) can answer
//! correctly, slowly, never, refuse, return malformed JSON, sign with the wrong key, answer another
//! query, fail with a bare 500, or close the connection. Each case must produce the documented
//! `ConnectorError` (code and fault) — never a panic — and the circuit breaker must open and close.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use connectors::tls::client_config;
use connectors::{
    BreakerConfig, BreakerState, Connector, ConnectorError, Fault, RemoteConfig, RemoteConnector,
    RetryPolicy,
};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use schemas::catalogue::{FactValue, ValueType};
use schemas::protocol::{ProtocolVersion, QUERY_PATH, query_digest_of_value};
use schemas::*;
use time::OffsetDateTime;
use time::macros::date;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::time::Instant;
use uuid::Uuid;

// === test PKI ===

/// A CA that can issue server and client certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap().der().clone();
        Ca {
            issuer: Issuer::new(params, key),
            cert,
        }
    }

    fn issue(
        &self,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap().der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert], key)
    }
}

struct Pki {
    department_ca: Ca,
    hub_ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            department_ca: Ca::new("Test Housing Department CA"),
            hub_ca: Ca::new("Test Hub Client CA"),
        }
    }

    /// The hub's client configuration: trusts the department CA only, presents a hub client cert.
    fn hub_tls(&self) -> rustls::ClientConfig {
        let (chain, key) = self
            .hub_ca
            .issue(&["hub.jishijiu.test"], ExtendedKeyUsagePurpose::ClientAuth);
        client_config(std::slice::from_ref(&self.department_ca.cert), chain, key).unwrap()
    }

    /// A department server configuration: a `localhost` cert from `ca`, requires hub client certs.
    fn server_tls(&self, ca: &Ca) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(self.hub_ca.cert.clone()).unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .unwrap();
        let (chain, key) = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

// === test department ===

/// How the test department behaves (a fault switch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Correct,
    Slow(Duration),
    Hang,
    RefuseUnserved,
    MalformedJson,
    BadSignature,
    WrongRequestId,
    BareServerError,
    Close,
}

#[derive(Clone)]
struct Dept {
    mode: Arc<Mutex<Mode>>,
    hits: Arc<AtomicUsize>,
    /// Requests being handled right now, and the most ever at once.
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    key: Arc<Ed25519KeyPair>,
    other_key: Arc<Ed25519KeyPair>,
}

fn ed25519() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

impl Dept {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }
    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A value of the right type for `kind` (the content does not matter to the client).
fn sample_value(kind: FactKind) -> FactValue {
    let spec = kind.spec();
    match spec.value_type {
        ValueType::Bool => FactValue::Bool(false),
        ValueType::Count => FactValue::Count(1),
        ValueType::MoneyFen => FactValue::MoneyFen(123_456),
        ValueType::AreaDm2 => FactValue::AreaDm2(8_650),
        ValueType::Days => FactValue::Days(0),
        ValueType::Code => FactValue::Code(spec.codes[0].to_owned()),
        ValueType::OptionalDate => FactValue::OptionalDate(None),
        ValueType::Division => {
            FactValue::Division(schemas::DivisionCode::parse("370811002").unwrap())
        }
        ValueType::MonthlyFen => FactValue::MonthlyFen(vec![]),
    }
}

/// The first subject is found, the others are unknown.
fn answer_for(query_json: &serde_json::Value, q: &FactQuery) -> DepartmentAnswer {
    DepartmentAnswer {
        protocol: ProtocolVersion,
        request_id: q.request_id,
        department: q.department,
        answered_at: OffsetDateTime::now_utc(),
        query_digest: query_digest_of_value(query_json).unwrap(),
        results: q
            .subjects
            .iter()
            .enumerate()
            .map(|(i, s)| SubjectResult {
                subject_ref: s.subject_ref.clone(),
                outcome: if i == 0 {
                    SubjectOutcome::Found {
                        facts: q
                            .fact_kinds
                            .iter()
                            .map(|&kind| Fact {
                                kind,
                                value: sample_value(kind),
                                period: kind.spec().period.period_for(q.as_of),
                            })
                            .collect(),
                    }
                } else {
                    SubjectOutcome::Unknown {
                        reason: "no record".into(),
                    }
                },
            })
            .collect(),
    }
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(State(d): State<Dept>, body: Bytes) -> Response {
    d.hits.fetch_add(1, Ordering::SeqCst);
    let now = d.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    d.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _in_flight = InFlight(d.in_flight.clone());
    let json = |status: StatusCode, v: &dyn erased::Ser| {
        (status, [("content-type", "application/json")], v.to_json()).into_response()
    };
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let q: FactQuery = serde_json::from_value(value.clone()).unwrap();
    let mode = d.mode();
    if let Mode::Slow(delay) = mode {
        tokio::time::sleep(delay).await;
    }
    match mode {
        Mode::Hang => std::future::pending().await,
        Mode::RefuseUnserved => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ProtocolError::new(
                ProtocolErrorCode::FactKindNotServed,
                format!("{} is not served", q.fact_kinds[0]),
            )
            .with_field("fact_kinds[0]")
            .with_request_id(q.request_id),
        ),
        Mode::MalformedJson => (StatusCode::OK, "{\"answer\": {\"protocol\": ").into_response(),
        Mode::BareServerError => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::BadSignature => json(
            StatusCode::OK,
            &SignedAnswer::sign(answer_for(&value, &q), &d.other_key).unwrap(),
        ),
        Mode::WrongRequestId => {
            let mut a = answer_for(&value, &q);
            a.request_id = Uuid::new_v4();
            json(StatusCode::OK, &SignedAnswer::sign(a, &d.key).unwrap())
        }
        Mode::Correct | Mode::Slow(_) | Mode::Close => json(
            StatusCode::OK,
            &SignedAnswer::sign(answer_for(&value, &q), &d.key).unwrap(),
        ),
    }
}

/// Tiny helper so `handle` can serialize either body type without generics in a closure.
mod erased {
    pub trait Ser {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> String {
            serde_json::to_string(self).unwrap()
        }
    }
}

/// Start a test department; returns its base URL and its controls.
async fn spawn_department(tls: Arc<rustls::ServerConfig>) -> (String, Dept) {
    let dept = Dept {
        mode: Arc::new(Mutex::new(Mode::Correct)),
        hits: Arc::new(AtomicUsize::new(0)),
        in_flight: Arc::new(AtomicUsize::new(0)),
        max_in_flight: Arc::new(AtomicUsize::new(0)),
        key: Arc::new(ed25519()),
        other_key: Arc::new(ed25519()),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = Router::new()
        .route(QUERY_PATH, post(handle))
        .with_state(dept.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let d = dept.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            let d = d.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return; // handshake refused (e.g. no or wrong client certificate)
                };
                if d.mode() == Mode::Close {
                    // Read (part of) the request, count it, and hang up without answering.
                    let mut buf = [0u8; 4096];
                    let _ = tls.read(&mut buf).await;
                    d.hits.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                let svc = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    (format!("https://localhost:{port}"), dept)
}

// === the hub side ===

fn query() -> FactQuery {
    FactQuery {
        protocol: ProtocolVersion,
        request_id: Uuid::new_v4(),
        department: Department::Housing,
        purpose: Purpose::DibaoApplication,
        authorization_ref: "SQ-370811-2026-000777".into(),
        as_of: date!(2026 - 11 - 29),
        issued_at: OffsetDateTime::now_utc(),
        subjects: vec![
            QuerySubject {
                subject_ref: "m1".into(),
                resident_id: ResidentId::from_parts("370811", date!(1975 - 02 - 14), 17).unwrap(),
            },
            QuerySubject {
                subject_ref: "m2".into(),
                resident_id: ResidentId::from_parts("370811", date!(2010 - 09 - 01), 22).unwrap(),
            },
        ],
        fact_kinds: vec![
            FactKind::PropertiesOwned,
            FactKind::FloorAreaOwned,
            FactKind::ProvidentFundBalance,
        ],
    }
}

const TIMEOUT: Duration = Duration::from_millis(800);

fn config(url: &str, dept: &Dept) -> RemoteConfig {
    let mut cfg = RemoteConfig::new(Department::Housing, url, vec![DepartmentKey::of(&dept.key)]);
    cfg.timeout = TIMEOUT;
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.retry = RetryPolicy {
        max_attempts: 3,
        base_backoff: Duration::from_millis(20),
    };
    cfg.breaker = BreakerConfig {
        failure_threshold: 2,
        cool_down: Duration::from_millis(600),
    };
    cfg
}

struct Setup {
    pki: Pki,
    dept: Dept,
    connector: RemoteConnector,
}

async fn setup() -> Setup {
    let pki = Pki::new();
    let (url, dept) = spawn_department(pki.server_tls(&pki.department_ca)).await;
    let connector = RemoteConnector::new(config(&url, &dept), pki.hub_tls()).unwrap();
    Setup {
        pki,
        dept,
        connector,
    }
}

/// Run one query; the result must arrive within the per-department timeout plus a generous
/// scheduling margin (the guard turns a hang into a test failure rather than a stuck test).
async fn ask(
    c: &RemoteConnector,
    q: &FactQuery,
) -> Result<connectors::VerifiedAnswer, ConnectorError> {
    tokio::time::timeout(
        TIMEOUT + Duration::from_secs(5),
        c.query(q, Instant::now() + Duration::from_secs(30)),
    )
    .await
    .expect("the connector must resolve within its timeout")
}

fn check_err(
    result: Result<connectors::VerifiedAnswer, ConnectorError>,
    code: &str,
    fault: Fault,
) -> ConnectorError {
    let e = result.expect_err("expected an error");
    assert_eq!((e.code(), e.fault()), (code, fault), "{e}");
    assert_eq!(e.department(), Department::Housing);
    e
}

#[tokio::test]
async fn a_correct_answer_verifies_over_mtls() {
    let s = setup().await;
    let q = query();
    let a = ask(&s.connector, &q).await.unwrap();
    assert_eq!(a.answer.request_id, q.request_id);
    assert_eq!(a.answer.results.len(), 2);
    assert!(
        matches!(&a.answer.results[0].outcome, SubjectOutcome::Found { facts } if facts.len() == 3)
    );
    assert!(matches!(
        &a.answer.results[1].outcome,
        SubjectOutcome::Unknown { .. }
    ));
    assert_eq!(a.attempts, 1);
    assert_eq!(a.answer_json["query_digest"], q.digest());
    assert_eq!(s.dept.hits(), 1);
    // The evidence kept verifies on its own, later.
    schemas::protocol::verify_answer_value(
        &a.answer_json,
        &a.signature,
        &[DepartmentKey::of(&s.dept.key)],
    )
    .unwrap();
}

#[tokio::test]
async fn a_slow_answer_inside_the_timeout_is_accepted() {
    let s = setup().await;
    s.dept.set(Mode::Slow(Duration::from_millis(300)));
    ask(&s.connector, &query()).await.unwrap();
}

#[tokio::test]
async fn a_department_that_never_answers_times_out() {
    let s = setup().await;
    s.dept.set(Mode::Hang);
    check_err(
        ask(&s.connector, &query()).await,
        "timeout",
        Fault::Department,
    );
    s.dept.set(Mode::Slow(TIMEOUT * 2));
    check_err(
        ask(&s.connector, &query()).await,
        "timeout",
        Fault::Department,
    );
}

#[tokio::test]
async fn the_callers_deadline_wins_when_it_is_earlier() {
    let s = setup().await;
    s.dept.set(Mode::Slow(Duration::from_millis(400)));
    let r = s
        .connector
        .query(&query(), Instant::now() + Duration::from_millis(100))
        .await;
    check_err(r, "timeout", Fault::Department);
    assert_eq!(
        s.connector.breaker_state(),
        BreakerState::Closed {
            consecutive_failures: 0
        },
        "a timeout imposed by the caller's shorter deadline does not count against the department"
    );
}

#[tokio::test]
async fn a_refusal_carries_the_departments_code() {
    let s = setup().await;
    s.dept.set(Mode::RefuseUnserved);
    match check_err(ask(&s.connector, &query()).await, "refused", Fault::Hub) {
        ConnectorError::Refused { status, error, .. } => {
            assert_eq!(status, 422);
            assert_eq!(error.code, ProtocolErrorCode::FactKindNotServed);
            assert_eq!(error.field.as_deref(), Some("fact_kinds[0]"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_json_is_rejected() {
    let s = setup().await;
    s.dept.set(Mode::MalformedJson);
    check_err(
        ask(&s.connector, &query()).await,
        "malformed",
        Fault::Department,
    );
}

#[tokio::test]
async fn an_answer_to_another_query_is_rejected() {
    let s = setup().await;
    s.dept.set(Mode::WrongRequestId);
    let e = check_err(
        ask(&s.connector, &query()).await,
        "malformed",
        Fault::Department,
    );
    assert!(e.to_string().contains("answer.request_id"), "{e}");
}

#[tokio::test]
async fn a_bad_signature_is_rejected() {
    let s = setup().await;
    s.dept.set(Mode::BadSignature);
    check_err(
        ask(&s.connector, &query()).await,
        "bad_signature",
        Fault::Department,
    );
}

#[tokio::test]
async fn a_bare_server_error_is_a_bad_status() {
    let s = setup().await;
    s.dept.set(Mode::BareServerError);
    match check_err(
        ask(&s.connector, &query()).await,
        "bad_status",
        Fault::Department,
    ) {
        ConnectorError::BadStatus { status, .. } => assert_eq!(status, 500),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_closed_connection_is_unavailable_and_not_resent() {
    let s = setup().await;
    s.dept.set(Mode::Close);
    check_err(
        ask(&s.connector, &query()).await,
        "unavailable",
        Fault::Department,
    );
    assert_eq!(
        s.dept.hits(),
        1,
        "a request that may have been delivered is never re-sent"
    );
}

#[tokio::test]
async fn a_refused_connection_is_unavailable_after_retries() {
    let pki = Pki::new();
    // Bind then drop a listener: nothing listens on that port any more.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let dept = Dept {
        mode: Arc::new(Mutex::new(Mode::Correct)),
        hits: Arc::new(AtomicUsize::new(0)),
        in_flight: Arc::new(AtomicUsize::new(0)),
        max_in_flight: Arc::new(AtomicUsize::new(0)),
        key: Arc::new(ed25519()),
        other_key: Arc::new(ed25519()),
    };
    let c = RemoteConnector::new(
        config(&format!("https://localhost:{port}"), &dept),
        pki.hub_tls(),
    )
    .unwrap();
    let e = check_err(ask(&c, &query()).await, "unavailable", Fault::Department);
    assert!(e.to_string().to_lowercase().contains("connect"), "{e}");
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let s = setup().await;
    let impostor_ca = Ca::new("Impostor CA");
    let (url, dept) = spawn_department(s.pki.server_tls(&impostor_ca)).await;
    let c = RemoteConnector::new(config(&url, &dept), s.pki.hub_tls()).unwrap();
    check_err(ask(&c, &query()).await, "unavailable", Fault::Department);
    assert_eq!(dept.hits(), 0);
}

#[tokio::test]
async fn a_query_for_an_unserved_kind_is_not_sent() {
    let pki = Pki::new();
    let (url, dept) = spawn_department(pki.server_tls(&pki.department_ca)).await;
    let mut cfg = config(&url, &dept);
    cfg.served = vec![FactKind::PropertiesOwned];
    let c = RemoteConnector::new(cfg, pki.hub_tls()).unwrap();
    match check_err(ask(&c, &query()).await, "invalid_query", Fault::Caller) {
        ConnectorError::InvalidQuery { error, .. } => {
            assert_eq!(error.code, ProtocolErrorCode::FactKindNotServed);
            assert_eq!(error.field.as_deref(), Some("fact_kinds[1]"));
        }
        other => panic!("{other:?}"),
    }
    let mut q = query();
    q.fact_kinds.push(FactKind::MonthlyWages);
    check_err(ask(&c, &q).await, "invalid_query", Fault::Caller);
    assert_eq!(dept.hits(), 0);
}

#[tokio::test]
async fn hub_configuration_errors_are_the_hubs_fault() {
    let pki = Pki::new();
    let key = DepartmentKey::of(&ed25519());
    let check = |url: &str, keys: Vec<DepartmentKey>, expected: &str| {
        let cfg = RemoteConfig::new(Department::Housing, url, keys);
        let e = RemoteConnector::new(cfg, pki.hub_tls()).expect_err(url);
        assert_eq!((e.code(), e.fault()), ("hub_config", Fault::Hub));
        assert!(e.to_string().contains(expected), "{e}");
    };
    check("http://localhost:1", vec![key.clone()], "must be https");
    check("not a url", vec![key], "base_url");
    check("https://localhost:1", vec![], "at least one department key");
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_closes_after_a_good_trial() {
    let s = setup().await;
    s.dept.set(Mode::BareServerError);
    check_err(
        ask(&s.connector, &query()).await,
        "bad_status",
        Fault::Department,
    );
    check_err(
        ask(&s.connector, &query()).await,
        "bad_status",
        Fault::Department,
    );
    assert_eq!(s.connector.breaker_state().code(), "open");
    let hits = s.dept.hits();
    check_err(
        ask(&s.connector, &query()).await,
        "circuit_open",
        Fault::Department,
    );
    assert_eq!(
        s.dept.hits(),
        hits,
        "an open breaker does not contact the department"
    );

    // Cool-down passes; the trial fails and re-opens the breaker.
    tokio::time::sleep(Duration::from_millis(650)).await;
    assert_eq!(
        s.connector.breaker_state(),
        BreakerState::HalfOpen {
            trial_in_flight: false
        }
    );
    check_err(
        ask(&s.connector, &query()).await,
        "bad_status",
        Fault::Department,
    );
    assert_eq!(s.connector.breaker_state().code(), "open");

    // The department recovers; after the cool-down the trial succeeds and the breaker closes.
    s.dept.set(Mode::Correct);
    tokio::time::sleep(Duration::from_millis(650)).await;
    ask(&s.connector, &query()).await.unwrap();
    assert_eq!(
        s.connector.breaker_state(),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
}

#[tokio::test]
async fn refusals_do_not_open_the_breaker() {
    let s = setup().await;
    s.dept.set(Mode::RefuseUnserved);
    for _ in 0..4 {
        check_err(ask(&s.connector, &query()).await, "refused", Fault::Hub);
    }
    assert_eq!(
        s.connector.breaker_state(),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
}

#[tokio::test]
async fn concurrency_is_bounded_per_department() {
    let pki = Pki::new();
    let (url, dept) = spawn_department(pki.server_tls(&pki.department_ca)).await;
    dept.set(Mode::Slow(Duration::from_millis(500)));
    let mut cfg = config(&url, &dept);
    cfg.max_concurrent = 1;
    cfg.timeout = Duration::from_millis(1300);
    let c = Arc::new(RemoteConnector::new(cfg, pki.hub_tls()).unwrap());
    // One slot, 500 ms per answer, 1300 ms timeout: two queries fit one after the other; the
    // third waits about 1000 ms for the slot and would need 500 ms more, so it times out. The
    // department never sees two queries at once.
    let qs: Vec<FactQuery> = (0..3).map(|_| query()).collect();
    let results = futures::future::join_all(qs.iter().map(|q| ask(&c, q))).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let timeouts = results
        .iter()
        .filter(|r| matches!(r, Err(ConnectorError::Timeout { .. })))
        .count();
    assert_eq!((ok, timeouts), (2, 1), "{results:?}");
    assert_eq!(dept.max_in_flight.load(Ordering::SeqCst), 1);
}
