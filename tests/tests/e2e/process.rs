//! The real `hub` process: refusals logged once each with their reason, CRL reload on SIGHUP,
//! graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hub_tests::{TestEnv, raw_request};
use serde_json::Value;

pub(crate) struct HubProcess {
    child: Child,
    log: std::path::PathBuf,
}

impl HubProcess {
    pub(crate) fn start(config: &Path, log: &Path) -> anyhow::Result<HubProcess> {
        Self::start_with_env(config, log, &[])
    }

    /// [`HubProcess::start`] with extra environment variables.
    pub(crate) fn start_with_env(
        config: &Path,
        log: &Path,
        vars: &[(&str, &str)],
    ) -> anyhow::Result<HubProcess> {
        let child = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        Ok(HubProcess {
            child,
            log: log.to_owned(),
        })
    }

    pub(crate) fn lines(&self) -> Vec<Value> {
        let Ok(file) = std::fs::File::open(&self.log) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect()
    }

    pub(crate) fn messages(&self, message: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    }

    /// Wait (bounded) until the log has a line matching `pred`.
    pub(crate) fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> anyhow::Result<Vec<Value>> {
        let start = Instant::now();
        loop {
            let lines = self.lines();
            if pred(&lines) {
                return Ok(lines);
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; log:\n{}",
                std::fs::read_to_string(&self.log)?
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn addr(&self) -> anyhow::Result<SocketAddr> {
        let lines = self.wait_for("the listening line", |ls| {
            ls.iter()
                .any(|l| l["fields"]["message"] == "hub listening (mTLS)")
        })?;
        let line = lines
            .iter()
            .find(|l| l["fields"]["message"] == "hub listening (mTLS)")
            .expect("found above");
        Ok(line["fields"]["addr"]
            .as_str()
            .unwrap_or_default()
            .parse()?)
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill {sig} failed");
        Ok(())
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_logged_once_with_their_reason_and_signals_work() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let bad = env.bad_clients()?;
    env.config(|t| t.replace("reload_poll_ms = 2000", "reload_poll_ms = 0"))?;
    let hub = HubProcess::start(&env.config_path(), &env.path().join("hub.log"))?;
    let addr = hub.addr()?;

    let expected: Vec<&str> = bad.iter().map(|(r, _)| *r).collect();
    for (reason, config) in bad {
        assert!(
            raw_request(addr, config, "/healthz").await.is_err(),
            "{reason} must be refused"
        );
    }
    let good = raw_request(addr, env.client_config(Some("caseworker"))?, "/healthz").await;
    assert_eq!(good.as_deref(), Ok("HTTP/1.1 200 OK"));

    // Exactly one refusal line per attempt, each with its reason (the good request proves the
    // earlier connections were all handled).
    hub.wait_for("all refusal lines", |ls| {
        ls.iter()
            .filter(|l| l["fields"]["message"] == "tls handshake refused")
            .count()
            >= expected.len()
    })?;
    let refusals = hub.messages("tls handshake refused");
    let mut reasons: Vec<String> = refusals
        .iter()
        .map(|l| l["fields"]["reason"].as_str().unwrap_or("?").to_owned())
        .collect();
    reasons.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(
        reasons, want,
        "one log line per refused handshake, with its reason"
    );

    // SIGHUP reloads the CRL: a freshly revoked client is refused on its next connection.
    env.pki.revoke("caseworker-other")?;
    env.pki.publish_crl(7)?;
    hub.signal("-HUP")?;
    hub.wait_for("the reload line", |ls| {
        ls.iter()
            .any(|l| l["fields"]["message"] == "TLS material reloaded")
    })?;
    assert!(
        raw_request(
            addr,
            env.client_config(Some("caseworker-other"))?,
            "/healthz"
        )
        .await
        .is_err()
    );
    assert!(
        raw_request(addr, env.client_config(Some("caseworker"))?, "/healthz")
            .await
            .is_ok()
    );

    // A broken CRL on SIGHUP: refused with an error log, old CRL in force.
    std::fs::write(env.pki.crl_path(), b"garbage")?;
    hub.signal("-HUP")?;
    hub.wait_for("the refused-reload line", |ls| {
        ls.iter().any(|l| {
            l["fields"]["message"] == "TLS reload refused; previous material stays in force"
                && l["level"] == "ERROR"
        })
    })?;
    assert!(
        raw_request(
            addr,
            env.client_config(Some("caseworker-other"))?,
            "/healthz"
        )
        .await
        .is_err()
    );
    assert!(
        raw_request(addr, env.client_config(Some("caseworker"))?, "/healthz")
            .await
            .is_ok()
    );

    // No resident ID or other personal data could be in these lines; check nothing but identities
    // and reasons were logged: the log never carries a certificate's display name.
    let log = std::fs::read_to_string(&hub.log)?;
    assert!(
        !log.contains("许庄街道经办人"),
        "display names stay out of the log"
    );

    // SIGTERM: graceful stop, exit status 0.
    let mut hub = hub;
    hub.signal("-TERM")?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = hub.child.try_wait()? {
            break status;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(30),
            "hub did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    assert!(!hub.messages("hub stopped").is_empty());
    Ok(())
}

/// A failed command is one line on stderr and exit code 1, also with `RUST_BACKTRACE=1`; a wrong
/// command line exits 2 (clap's usage error).
#[test]
fn cli_errors_are_one_line_without_a_backtrace() {
    let missing = std::env::temp_dir().join("jsj-no-such-dir/hub.toml");
    for (args, code) in [
        (
            vec!["check-config", "--config", missing.to_str().expect("utf-8")],
            1,
        ),
        (
            vec![
                "audit",
                "search",
                "--actor",
                "spiffe://jishijiu.jining/caseworker/",
            ],
            2,
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("hub runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        if code == 1 {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
            assert!(stderr.starts_with("错误 / error: "), "{stderr}");
            assert!(stderr.contains("jsj-no-such-dir"), "{stderr}");
            assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
        }
        assert!(!stderr.contains("Stack backtrace"), "{stderr}");
    }
}
