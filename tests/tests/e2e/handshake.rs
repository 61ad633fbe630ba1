//! Who gets in: valid certificates get their identity; everything else is refused at the handshake.

use hub_tests::{TestEnv, TestHub, raw_request};
use serde_json::Value;

#[tokio::test]
async fn valid_certificates_get_their_identity() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let hub = TestHub::start(env.config(|t| t)?).await?;
    // (cert, role, organisation, division)
    let cases = [
        ("caseworker", "caseworker", "mz-370811002", "370811002"),
        (
            "caseworker-other",
            "caseworker",
            "mz-370811005",
            "370811005",
        ),
        ("county-officer", "caseworker", "mz-370811", "370811"),
        ("auditor", "auditor", "jw-370800", "370800"),
        ("admin", "admin", "mz-370800", "370800"),
        ("dept-labor", "department", "labor", "370800"),
        (
            "dept-civil-affairs",
            "department",
            "civil_affairs",
            "370800",
        ),
    ];
    for (name, role, org, division) in cases {
        let client = env.http(name)?;
        let health = client.get(hub.url("/healthz")).send().await?;
        assert_eq!(health.status(), 200, "{name}: /healthz");
        let me: Value = client
            .get(hub.url("/v1/whoami"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(me["role"], role, "{name}");
        assert_eq!(me["organisation"], org, "{name}");
        assert_eq!(me["division"], division, "{name}");
        assert!(
            me["uri"]
                .as_str()
                .unwrap()
                .starts_with("spiffe://jishijiu.jining/"),
            "{name}: {me}"
        );
    }
    // Request ids come back on every response.
    let r = env
        .http("caseworker")?
        .get(hub.url("/healthz"))
        .send()
        .await?;
    assert!(r.headers().get("x-request-id").is_some());
    // Unknown routes get the JSON error shape.
    let r = env
        .http("caseworker")?
        .get(hub.url("/v1/nope"))
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], "not_found");
    hub.stop().await;
    Ok(())
}

/// Each kind of bad certificate is refused; the hub keeps serving good clients.
#[tokio::test]
async fn bad_certificates_are_refused_at_the_handshake() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let bad = env.bad_clients()?;
    let hub = TestHub::start(env.config(|t| t)?).await?;
    for (reason, config) in bad {
        let result = raw_request(hub.addr, config, "/healthz").await;
        // The client reads the alert that says why (curl prints it), not a reset connection.
        let alert = match reason {
            "no_client_certificate" => "CertificateRequired",
            "unknown_issuer" => "UnknownCA",
            "certificate_expired" => "CertificateExpired",
            "certificate_revoked" => "CertificateRevoked",
            "wrong_key_usage" => "UnsupportedCertificate",
            _ => "CertificateUnknown", // identity_*: the chain is fine, the identity is not
        };
        match &result {
            Err(e) => assert!(
                e.contains(&format!("received fatal alert: {alert}")),
                "{reason}: expected the alert {alert:?}, got {e}"
            ),
            Ok(_) => panic!("{reason}: expected a refusal, got {result:?}"),
        }
    }
    // A good client still gets in afterwards.
    let ok = raw_request(hub.addr, env.client_config(Some("caseworker"))?, "/healthz").await;
    assert_eq!(ok.as_deref(), Ok("HTTP/1.1 200 OK"));
    hub.stop().await;
    Ok(())
}

/// TLS 1.2 clients are served too.
#[tokio::test]
async fn tls12_clients_are_served() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let hub = TestHub::start(env.config(|t| t)?).await?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(env.pki.ca_pem_path())? {
        roots.add(c?)?;
    }
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(env.pki.cert_path("caseworker"))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(env.pki.key_path("caseworker"))?;
    let config = rustls::ClientConfig::builder_with_provider(hub::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    assert_eq!(
        raw_request(hub.addr, config, "/healthz").await.as_deref(),
        Ok("HTTP/1.1 200 OK")
    );
    hub.stop().await;
    Ok(())
}

/// A client certificate without an extended-key-usage extension is refused at the handshake with
/// the reason `no_extended_key_usage` (WebPKI alone would take "no EKU" for "any purpose").
#[tokio::test]
async fn a_certificate_without_extended_key_usage_is_refused() -> anyhow::Result<()> {
    use hub::pki::{CertOptions, ClientSpec};
    let env = TestEnv::new()?;
    let spec = ClientSpec {
        role: schemas::Role::Caseworker,
        organisation: "mz-370811002".into(),
        division: "370811002".into(),
        principal: "cw-no-eku".into(),
        display_name: "无用途扩展 (no EKU)".into(),
    };
    let no_eku = CertOptions {
        client_auth: false,
        server_auth: false,
        ..CertOptions::client(30)
    };
    env.pki.issue_client_with("no-eku", &spec, &no_eku)?;
    let hub = TestHub::start(env.config(|t| t)?).await?;
    let result = raw_request(hub.addr, env.client_config(Some("no-eku"))?, "/healthz").await;
    assert!(result.is_err(), "expected a refusal, got {result:?}");
    // The refusal is counted under its own reason code. The hub counts it just after sending the
    // alert, so wait (with a generous bound) for the counter to appear.
    let mut refused = 0.0;
    for _ in 0..100 {
        refused = metric(
            hub.admin_addr,
            "hub_tls_handshake_refused_total{reason=\"no_extended_key_usage\"}",
        )
        .await?;
        if refused >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        refused >= 1.0,
        "no refusal counted with reason no_extended_key_usage"
    );
    // The same identity with clientAuth gets in.
    let ok = raw_request(hub.addr, env.client_config(Some("caseworker"))?, "/healthz").await;
    assert_eq!(ok.as_deref(), Ok("HTTP/1.1 200 OK"));
    hub.stop().await;
    Ok(())
}

/// The value of the Prometheus sample `series` (name and labels exactly as rendered) on the admin
/// listener, 0 when absent.
pub(crate) async fn metric(admin: std::net::SocketAddr, series: &str) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nhost: localhost\r\n\r\n")
        .await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0))
}
