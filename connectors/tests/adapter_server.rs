//! The adapter's server plumbing: the TLS handshake timeout drops silent clients, and the query
//! log written through `tracing` names request ids, purposes and fact kinds but never a resident
//! ID number.

mod adapter_support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter_support::*;
use connectors::adapter::ServeOptions;
use connectors::sim::pki::SimPki;
use connectors::sim::{Population, PopulationConfig, PopulationSource};
use schemas::{Department, FactKind};
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn a_client_that_never_completes_the_handshake_is_dropped() {
    let pop = Arc::new(Population::generate(PopulationConfig::new(1, 20)));
    let pki = SimPki::generate().unwrap();
    let d = Department::Education;
    let server = AdapterServer::spawn_with(
        Arc::new(PopulationSource::new(pop, d)),
        pki.server_tls(d).unwrap(),
        ServeOptions {
            handshake_timeout: Duration::from_millis(200),
            max_connections: 4,
        },
    )
    .await;
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    // The server closes the connection (read returns 0 bytes) long before our 10 s guard.
    let n = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("server kept a silent connection open")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_query_log_never_contains_resident_ids() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let pop = Arc::new(Population::generate(PopulationConfig::new(2, 300)));
    let pki = SimPki::generate().unwrap();
    let d = Department::Labor;
    let server = AdapterServer::spawn(
        Arc::new(PopulationSource::new(pop.clone(), d)),
        pki.server_tls(d).unwrap(),
    )
    .await;
    let client = hub_client(&pki, Duration::from_secs(10));
    let known = known_person(&pop, d);
    let unknown = unknown_person(&pop, d);
    let ok = query(
        d,
        &[("m1", &known.resident_id), ("m2", &unknown.resident_id)],
        &[FactKind::MonthlyWages, FactKind::Pension],
        pop.config.as_of,
    );
    assert_eq!(post(&client, &server.url(), &ok).await.unwrap().0, 200);
    let refused = query(
        d,
        &[("m1", &known.resident_id)],
        &[FactKind::Pension, FactKind::Pension],
        pop.config.as_of,
    );
    assert_eq!(post(&client, &server.url(), &refused).await.unwrap().0, 400);

    // A number with a wrong check digit is refused without being echoed anywhere.
    let mut bad = serde_json::to_value(query(
        d,
        &[("m1", &known.resident_id)],
        &[FactKind::Pension],
        pop.config.as_of,
    ))
    .unwrap();
    let good = known.resident_id.expose();
    let wrong_check = if good.ends_with('0') { "1" } else { "0" };
    let bad_id = format!("{}{wrong_check}", &good[..17]);
    bad["subjects"][0]["resident_id"] = bad_id.clone().into();
    let resp = client
        .post(format!("{}{}", server.url(), schemas::protocol::QUERY_PATH))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains(&bad_id[..17]),
        "resident id echoed in the refusal: {body}"
    );

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        !log.contains(&bad_id[6..]),
        "invalid resident id leaked into the log"
    );
    assert!(log.contains("answered query"), "{log}");
    assert!(log.contains(&ok.request_id.to_string()));
    assert!(log.contains("purpose=dibao_application"));
    assert!(log.contains("fact_kinds=labor.monthly_wages,labor.pension_monthly"));
    assert!(log.contains("subjects=2 found=1 unknown=1"), "{log}");
    assert!(log.contains("refused query"), "{log}");
    for id in [&known.resident_id, &unknown.resident_id] {
        assert!(
            !log.contains(id.expose()),
            "resident id leaked into the log"
        );
        // Not even the birth-date-and-sequence tail.
        assert!(
            !log.contains(&id.expose()[6..]),
            "resident id tail leaked into the log"
        );
    }
}
