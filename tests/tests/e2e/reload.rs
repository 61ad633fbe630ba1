//! Certificate revocation without a restart, and refusing bad new files.

use hub_tests::{TestEnv, TestHub, raw_request};

#[tokio::test]
async fn revoking_and_reloading_the_crl_refuses_the_next_connection() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    // Polling off: the test drives reloads itself (SIGHUP is covered by the process test).
    let hub =
        TestHub::start(env.config(|t| t.replace("reload_poll_ms = 2000", "reload_poll_ms = 0"))?)
            .await?;
    let ok = |r: Result<String, String>| r.as_deref() == Ok("HTTP/1.1 200 OK");
    assert!(ok(raw_request(
        hub.addr,
        env.client_config(Some("caseworker-other"))?,
        "/healthz"
    )
    .await));

    env.pki.revoke("caseworker-other")?;
    // Not yet published: still accepted.
    assert!(!hub.tls.reload(true)?, "nothing changed on disk yet");
    assert!(ok(raw_request(
        hub.addr,
        env.client_config(Some("caseworker-other"))?,
        "/healthz"
    )
    .await));

    env.pki.publish_crl(7)?;
    assert!(hub.tls.reload(true)?, "the new CRL is loaded");
    let refused = raw_request(
        hub.addr,
        env.client_config(Some("caseworker-other"))?,
        "/healthz",
    )
    .await;
    assert!(
        refused.is_err(),
        "revoked client must be refused, got {refused:?}"
    );
    assert!(ok(raw_request(
        hub.addr,
        env.client_config(Some("caseworker"))?,
        "/healthz"
    )
    .await));

    // An invalid CRL file is refused and the previous CRL stays in force.
    let crl = env.pki.crl_path();
    let good = std::fs::read(&crl)?;
    std::fs::write(
        &crl,
        b"-----BEGIN X509 CRL-----\nbm90IGEgY3Js\n-----END X509 CRL-----\n",
    )?;
    let err = hub.tls.reload(true).unwrap_err().to_string();
    assert!(err.contains("ca.crl"), "the error names the file: {err}");
    assert!(
        raw_request(
            hub.addr,
            env.client_config(Some("caseworker-other"))?,
            "/healthz"
        )
        .await
        .is_err()
    );
    assert!(ok(raw_request(
        hub.addr,
        env.client_config(Some("caseworker"))?,
        "/healthz"
    )
    .await));
    // Polling does not retry the same bad file; SIGHUP-style reloads report it again.
    assert!(!hub.tls.reload(false)?);
    assert!(hub.tls.reload(true).is_err());

    // A truncated server key is refused the same way.
    std::fs::write(&crl, &good)?;
    let key = env.path().join("pki/server.key");
    let good_key = std::fs::read(&key)?;
    std::fs::write(&key, &good_key[..good_key.len() / 2])?;
    assert!(
        hub.tls
            .reload(true)
            .unwrap_err()
            .to_string()
            .contains("server.key")
    );
    assert!(ok(raw_request(
        hub.addr,
        env.client_config(Some("caseworker"))?,
        "/healthz"
    )
    .await));
    std::fs::write(&key, &good_key)?;
    hub.stop().await;
    Ok(())
}

#[tokio::test]
async fn an_expired_crl_refuses_clients_and_shows_as_stale() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let hub =
        TestHub::start(env.config(|t| t.replace("reload_poll_ms = 2000", "reload_poll_ms = 0"))?)
            .await?;
    let client = env.http("caseworker")?;
    let ready: serde_json::Value = client.get(hub.url("/readyz")).send().await?.json().await?;
    assert_eq!(ready["ready"], true, "{ready}");

    let now = time::OffsetDateTime::now_utc();
    env.pki.publish_crl_with(
        now - time::Duration::days(8),
        now - time::Duration::days(1),
        &env.pki.crl_path(),
    )?;
    assert!(hub.tls.reload(true)?);
    let refused = raw_request(hub.addr, env.client_config(Some("caseworker"))?, "/readyz").await;
    assert!(
        refused.is_err(),
        "an expired CRL must not be silently accepted: {refused:?}"
    );
    // What /readyz reports from: the loaded CRL is stale.
    assert!(
        hub.tls
            .crls()
            .iter()
            .all(|c| !c.is_fresh(std::time::SystemTime::now()))
    );
    hub.stop().await;
    Ok(())
}

#[tokio::test]
async fn file_changes_are_picked_up_by_polling() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let hub =
        TestHub::start(env.config(|t| t.replace("reload_poll_ms = 2000", "reload_poll_ms = 100"))?)
            .await?;
    env.pki.revoke("county-officer")?;
    env.pki.publish_crl(7)?;
    // Wait (bounded) for the poller; this is a liveness bound, not a performance assertion.
    let mut refused = false;
    for _ in 0..100 {
        if raw_request(
            hub.addr,
            env.client_config(Some("county-officer"))?,
            "/healthz",
        )
        .await
        .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "the poller should have loaded the new CRL");
    hub.stop().await;
    Ok(())
}
