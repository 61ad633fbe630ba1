//! Witness cosigning (C2SP tlog-witness, issue 15 item 4), end to end over real mTLS on 127.0.0.1:
//! a hub with two witnesses — one in-process, one a real `hub witness serve` process, each with its
//! own key and SQLite state — serves checkpoints carrying both cosignatures; `hub audit verify`
//! passes with a quorum of 2 and fails, naming the missing witness, when a third is required; a
//! forked log (another tree at the same origin signed with the log's own key) is refused by both
//! witnesses; a witness that is down delays the published checkpoint but not one append, and after
//! its restart (same state file) the hub catches up.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hub::app::Application;
use hub::audit::{Verdict, VerifyArgs};
use hub::log::{AccessLog, tlog};
use hub::witness::serve::{WitnessApp, WitnessConfig};
use hub_tests::TestEnv;
use schemas::Role;
use tlog::checkpoint::{Checkpoint, WitnessPolicy, open_checkpoint, witness_request_body};
use tlog::{MemoryHashStore, VerifierKey};

use super::access_log::{
    entry, generous_auditor_budget, pseudonym_key, remote, residents, verify_args,
};

/// The TLS files and the log key every witness of this deployment uses.
fn witness_toml(env: &TestEnv, dir: &Path, listen: &str) -> anyhow::Result<PathBuf> {
    let pki = &env.pki;
    let log_vkey = std::fs::read_to_string(env.path().join("log.vkey"))?;
    let path = dir.join("witness.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"{listen}\"\nkey = \"witness.key\"\nstate = \"witness.db\"\n\n[tls]\n\
             cert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n\n[[log]]\nvkey = \"{}\"\n",
            pki.cert_path("witness-server").display(),
            pki.key_path("witness-server").display(),
            pki.ca_pem_path().display(),
            log_vkey.trim()
        ),
    )?;
    Ok(path)
}

/// `hub witness keygen` as the audit office runs it; returns the verifier key.
fn keygen(dir: &Path, name: &str) -> anyhow::Result<VerifierKey> {
    let out = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .args(["witness", "keygen", "--name", name, "--out"])
        .arg(dir)
        .env_remove("RUST_LOG")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "keygen: {stdout}");
    let vkey = VerifierKey::parse(std::fs::read_to_string(dir.join("witness.vkey"))?.trim())?;
    assert!(
        stdout.contains(&vkey.to_string()),
        "the key is printed: {stdout}"
    );
    Ok(vkey)
}

/// A witness running in this process.
struct InProcess {
    addr: std::net::SocketAddr,
    witness: Arc<hub::witness::Witness>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl InProcess {
    async fn start(config: &WitnessConfig) -> anyhow::Result<InProcess> {
        let app = WitnessApp::build(config).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let addr = app.local_addr();
        let witness = app.witness();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        Ok(InProcess {
            addr,
            witness,
            stop,
            task,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        Ok(self.task.await?)
    }
}

/// A child process killed when the test ends, also when it fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `hub witness serve` as a real process; returns it and its address (from its first line).
fn start_process(config: &Path) -> anyhow::Result<(KillOnDrop, std::net::SocketAddr)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .args(["witness", "serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let child = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    match addr {
        Some(a) => Ok((child, a)),
        None => anyhow::bail!("witness process did not start: {line:?}"),
    }
}

/// The hub's `[[log.witness_endpoints]]` for witnesses on these ports.
fn endpoints(ws: &[(u16, &VerifierKey)]) -> String {
    let mut out = String::from(
        "\n[departments]\noutbound_cert = \"pki/hub-outbound.pem\"\noutbound_key = \"pki/hub-outbound.key\"\n",
    );
    out.push_str("\n[log]\nwitness_retry_cap_ms = 1000\n");
    for (port, vkey) in ws {
        out.push_str(&format!(
            "\n[[log.witness_endpoints]]\nurl = \"https://localhost:{port}\"\nvkey = \"{vkey}\"\nca = \"pki/ca.pem\"\n"
        ));
    }
    out
}

/// Waits until GET /log/checkpoint serves a checkpoint of `size` cosigned by every one of
/// `witnesses` (the witnessing task runs in the background); returns the note.
async fn cosigned_checkpoint(
    env: &TestEnv,
    hub: &str,
    log: &AccessLog,
    size: u64,
    witnesses: &[VerifierKey],
) -> anyhow::Result<String> {
    let auditor = env.http("auditor")?;
    let policy = WitnessPolicy {
        witnesses: witnesses.to_vec(),
        quorum: witnesses.len(),
    };
    let mut last = String::new();
    // Bounded wait for the background task (not a speed assertion: the cap is generous).
    for _ in 0..600 {
        let r = auditor.get(format!("{hub}/log/checkpoint")).send().await?;
        anyhow::ensure!(
            r.status().is_success(),
            "GET /log/checkpoint: {}",
            r.status()
        );
        last = r.text().await?;
        if let Ok(c) = open_checkpoint(last.as_bytes(), log.origin(), log.vkey(), &policy)
            && c.checkpoint.size == size
        {
            return Ok(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("no checkpoint of size {size} cosigned by all witnesses; last served:\n{last}")
}

async fn append(
    app_log: &Arc<AccessLog>,
    env: &TestEnv,
    from: usize,
    n: usize,
) -> anyhow::Result<()> {
    let key = pseudonym_key(env);
    let people = residents(10);
    let mut tasks = Vec::new();
    for i in from..from + n {
        let log = app_log.clone();
        let e = entry(&key, &people[i % people.len()], "case-w", i as i64);
        tasks.push(tokio::spawn(async move { log.append(e).await }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// POSTs an add-checkpoint body to a witness with the hub's outbound client certificate.
async fn submit(env: &TestEnv, port: u16, body: String) -> anyhow::Result<(u16, String, String)> {
    let c = env.http("hub-outbound")?;
    let r = c
        .post(format!("https://localhost:{port}/add-checkpoint"))
        .body(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, ct, r.text().await?))
}

fn verify_with(env: &TestEnv, base: String, keys: &[PathBuf], quorum: usize) -> VerifyArgs {
    VerifyArgs {
        witnesses: keys.to_vec(),
        witness_quorum: quorum,
        ..verify_args(env, remote(env, Some(base), "auditor"), None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn witnesses_cosign_the_log_and_refuse_a_fork() -> anyhow::Result<()> {
    hub_tests::init_test_logging();
    hub::tls::install_default_provider();
    let env = TestEnv::new()?;
    env.pki.issue_server(
        "witness-server",
        &["localhost".into()],
        &["127.0.0.1".parse()?],
        30,
    )?;
    env.issue(
        "hub-outbound",
        &hub::pki::ClientSpec {
            role: Role::Admin,
            organisation: "mz-370800".into(),
            division: "370800".into(),
            principal: "hub-outbound".into(),
            display_name: "枢纽 (hub)".into(),
        },
    )?;

    // Two witnesses (the audit office's in-process, a partner department's as a real process),
    // and a third whose key exists but which the hub never asks.
    let (d1, d2, d3) = (
        env.path().join("w1"),
        env.path().join("w2"),
        env.path().join("w3"),
    );
    let k1 = keygen(&d1, "audit.jining/witness")?;
    let k2 = keygen(&d2, "mz.jining/witness")?;
    let k3 = keygen(&d3, "third.jining/witness")?;
    let w1 = InProcess::start(&WitnessConfig::load(&witness_toml(
        &env,
        &d1,
        "127.0.0.1:0",
    )?)?)
    .await?;
    let (w2, w2_addr) = start_process(&witness_toml(&env, &d2, "127.0.0.1:0")?)?;
    let (p1, p2) = (w1.addr.port(), w2_addr.port());

    let config = env.config(|t| {
        format!(
            "{}{}",
            generous_auditor_budget(t),
            endpoints(&[(p1, &k1), (p2, &k2)])
        )
    })?;
    let app = Application::build(config).await?;
    let log = app.state().log.clone();
    let base = format!("https://localhost:{}", app.local_addr().port());
    let (stop_hub, stopped) = tokio::sync::oneshot::channel::<()>();
    let hub_task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    // 1. After appends, the served checkpoint carries both cosignatures.
    append(&log, &env, 0, 40).await?;
    let both = [k1.clone(), k2.clone()];
    let cp40 = cosigned_checkpoint(&env, &base, &log, 40, &both).await?;
    assert!(
        cp40.contains("\n\u{2014} audit.jining/witness ")
            && cp40.contains("\n\u{2014} mz.jining/witness ")
    );
    // Each witness persisted what it cosigned.
    assert_eq!(w1.witness.state().latest(log.origin()).await?.size, 40);

    // 2. `hub audit verify`: quorum 2 of the two passes; 3 of three fails naming the third.
    let (v1, v2, v3) = (
        d1.join("witness.vkey"),
        d2.join("witness.vkey"),
        d3.join("witness.vkey"),
    );
    let ok = hub::audit::verify(
        &verify_with(&env, base.clone(), &[v1.clone(), v2.clone()], 2),
        |_, _| {},
    )
    .await?;
    assert!(matches!(ok, Verdict::Ok { size: 40, .. }), "{ok:?}");
    let three = [v1.clone(), v2.clone(), v3.clone()];
    match hub::audit::verify(&verify_with(&env, base.clone(), &three, 3), |_, _| {}).await? {
        Verdict::Unwitnessed(why) => {
            let k3_id = format!("third.jining/witness+{:08x}", k3.key_id());
            assert!(
                why.contains(&format!("2 of 3 required cosignatures; missing: {k3_id}")),
                "{why}"
            );
            assert!(
                !why.contains("audit.jining") && !why.contains("mz.jining"),
                "{why}"
            );
        }
        other => panic!("a third witness's cosignature is required: {other:?}"),
    }
    // The real command, as an auditor runs it: exit 1 and one line naming the missing witness.
    let p = env.path().join("pki");
    let out = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .args(["audit", "verify", "--quiet", "--url", &base])
        .arg("--cacert")
        .arg(p.join("ca.pem"))
        .arg("--cert")
        .arg(p.join("auditor.pem"))
        .arg("--key")
        .arg(p.join("auditor.key"))
        .arg("--vkey")
        .arg(env.path().join("log.vkey"))
        .arg("--witness")
        .arg(&v1)
        .arg("--witness")
        .arg(&v2)
        .arg("--witness")
        .arg(&v3)
        .args(["--quorum", "3"])
        .env_remove("RUST_LOG")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("witness quorum not met") && stderr.contains("third.jining/witness+"),
        "{stderr}"
    );

    // 3. A forked log: same origin, signed with the log's own key, another tree.
    let der = std::fs::read(env.path().join("keys/hub-signing.pk8"))?;
    let signer = hub::log::signer_from_pkcs8(log.origin(), &der)?;
    let mut fork = MemoryHashStore::new();
    for i in 0..40 {
        fork.append(format!("forged-entry-{i}").as_bytes());
    }
    let same_size = Checkpoint::new(log.origin(), 40, fork.root())?.sign(&signer)?;
    for i in 40..45 {
        fork.append(format!("forged-entry-{i}").as_bytes());
    }
    let grown = Checkpoint::new(log.origin(), 45, fork.root())?.sign(&signer)?;
    let fork_proof = tlog::proof::prove_tree(45, 40, &fork)?;
    for port in [p1, p2] {
        let (status, _, body) =
            submit(&env, port, witness_request_body(40, &[], &same_size)).await?;
        assert_eq!(status, 422, "same size, other root: {body}");
        let (status, _, body) =
            submit(&env, port, witness_request_body(40, &fork_proof, &grown)).await?;
        assert_eq!(status, 422, "grown fork: {body}");
        // A stale `old` is answered with the witnessed size.
        let (status, ct, body) = submit(&env, port, witness_request_body(0, &[], &grown)).await?;
        assert_eq!(
            (status, ct.as_str(), body.as_str()),
            (409, "text/x.tlog.size", "40\n")
        );
    }
    assert_eq!(w1.witness.state().refusals(log.origin()).await?, 2);
    assert_eq!(w1.witness.state().latest(log.origin()).await?.size, 40);

    // 4. The honest log goes on: both witnesses cosign its growth (proofs from 40).
    append(&log, &env, 40, 25).await?;
    let cp65 = cosigned_checkpoint(&env, &base, &log, 65, &both).await?;
    let trusted = env.path().join("trusted-40.checkpoint");
    std::fs::write(&trusted, &cp40)?;
    let args = VerifyArgs {
        trusted_checkpoint: Some(trusted),
        ..verify_with(&env, base.clone(), &[v1.clone(), v2.clone()], 2)
    };
    let ok = hub::audit::verify(&args, |_, _| {}).await?;
    assert!(matches!(ok, Verdict::Ok { size: 65, .. }), "{ok:?}");

    // 5. A witness down: appends are acknowledged as before; the served checkpoint waits.
    w1.stop().await?;
    append(&log, &env, 65, 5).await?;
    assert_eq!(log.head().size, 70);
    let served = env
        .http("auditor")?
        .get(format!("{base}/log/checkpoint"))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(
        served, cp65,
        "no checkpoint is published without the quorum"
    );
    // Restarted on the same port with the same state file, it catches up.
    let mut cfg = WitnessConfig::load(&d1.join("witness.toml"))?;
    cfg.listen = format!("127.0.0.1:{p1}").parse()?;
    let w1 = InProcess::start(&cfg).await?;
    assert_eq!(w1.witness.state().latest(log.origin()).await?.size, 65);
    cosigned_checkpoint(&env, &base, &log, 70, &both).await?;
    assert_eq!(w1.witness.state().latest(log.origin()).await?.size, 70);

    let _ = stop_hub.send(());
    hub_task.await?;
    w1.stop().await?;
    drop(w2);
    Ok(())
}
