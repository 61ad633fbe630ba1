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
        assert!(
            result.is_err(),
            "{reason}: expected a refusal, got {result:?}"
        );
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
