//! Policies in the running hub: validated at start-up, hot-reloaded (bad sets refused), enforced with a
//! 403 that carries the policy's reason; per-identity rate limits with 429 and Retry-After.

use std::path::Path;
use std::process::Command;

use hub_tests::{TestEnv, TestHub};
use serde_json::Value;

/// Copy the shipped policy directory so a test can break it.
fn copy_policies(to: &Path) -> anyhow::Result<()> {
    fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                copy(&e.path(), &to.join(e.file_name()))?;
            } else {
                std::fs::copy(e.path(), to.join(e.file_name()))?;
            }
        }
        Ok(())
    }
    copy(&policies::PolicyEngine::shipped_dir(), to)?;
    Ok(())
}

fn with_policies_dir(dir: &Path) -> impl Fn(String) -> String + '_ {
    move |t: String| {
        format!("{t}\n[policies]\ndir = \"{}\"\n", dir.display())
            .replace("reload_poll_ms = 2000", "reload_poll_ms = 0")
    }
}

#[tokio::test]
async fn admin_endpoints_follow_the_policies() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let hub = TestHub::start(env.config(|t| t)?).await?;
    let r = env
        .http("admin")?
        .get(hub.url("/v1/admin/clients"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    for who in ["caseworker", "auditor", "dept-labor"] {
        let r = env
            .http(who)?
            .get(hub.url("/v1/admin/clients"))
            .send()
            .await?;
        assert_eq!(r.status(), 403, "{who}");
        let body: Value = r.json().await?;
        assert_eq!(body["error"]["code"], "forbidden");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("只有管理员"),
            "{body}"
        );
    }
    hub.stop().await;
    Ok(())
}

#[test]
fn an_invalid_policy_stops_the_hub_naming_file_and_line() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let policies = env.path().join("my-policies");
    copy_policies(&policies)?;
    let broken = policies.join("policies/admin.cedar");
    let mut text = std::fs::read_to_string(&broken)?;
    text.push_str(
        "\n@id(\"broken\")\npermit (principal, action == Action::\"no_such_action\", resource);\n",
    );
    std::fs::write(&broken, text)?;
    env.config(with_policies_dir(&policies))?;
    let out = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .args(["serve", "--config"])
        .arg(env.config_path())
        .output()?;
    assert!(!out.status.success(), "the hub must refuse to start");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = stderr.find("admin.cedar:").expect("names the file");
    let line = &stderr[at + "admin.cedar:".len()..];
    assert!(
        line.starts_with(|c: char| c.is_ascii_digit()),
        "names the line: {stderr}"
    );
    // The same directory fails `hub policy check`, and the shipped one passes with its table.
    let check = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .args(["policy", "check", "--dir"])
        .arg(&policies)
        .output()?;
    assert!(!check.status.success());
    let shipped = policies::PolicyEngine::shipped_dir();
    let check = Command::new(env!("CARGO_BIN_EXE_hub-e2e"))
        .args(["policy", "check", "--dir"])
        .arg(&shipped)
        .arg("--table")
        .arg(shipped.join("tests/decisions.toml"))
        .output()?;
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_policy_reload_keeps_the_old_policies() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let policies = env.path().join("my-policies");
    copy_policies(&policies)?;
    let hub = TestHub::start(env.config(with_policies_dir(&policies))?).await?;
    let app_authz = hub_authz(&hub);
    let admin = env.http("admin")?;
    assert_eq!(
        admin
            .get(hub.url("/v1/admin/clients"))
            .send()
            .await?
            .status(),
        200
    );

    // Break the set: the reload is refused, names the file, and admins keep their rights.
    let file = policies.join("policies/admin.cedar");
    let good = std::fs::read_to_string(&file)?;
    std::fs::write(&file, good.replace("permit (", "permit ((("))?;
    let err = app_authz.reload(true).unwrap_err().to_string();
    assert!(err.contains("admin.cedar"), "{err}");
    assert_eq!(
        admin
            .get(hub.url("/v1/admin/clients"))
            .send()
            .await?
            .status(),
        200
    );

    // A valid change takes effect: without the permit, admins are denied too.
    let start = good
        .find("@id(\"admin-administers\")")
        .expect("shipped policy");
    let end = start + good[start..].find(");").expect("policy end") + 2;
    let without_permit = format!("{}{}", &good[..start], &good[end..]);
    std::fs::write(&file, without_permit)?;
    assert!(app_authz.reload(true)?);
    assert_eq!(
        admin
            .get(hub.url("/v1/admin/clients"))
            .send()
            .await?
            .status(),
        403
    );
    hub.stop().await;
    Ok(())
}

fn hub_authz(hub: &TestHub) -> std::sync::Arc<hub::authz::Authz> {
    hub.authz.clone()
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() -> anyhow::Result<()> {
    let env = TestEnv::new()?;
    let config = env.config(|t| {
        format!("{t}\n[rate_limits]\ncaseworker = {{ per_second = 1, burst = 3 }}\n")
    })?;
    let hub = TestHub::start(config).await?;
    let client = env.http("caseworker")?;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = client.get(hub.url("/v1/whoami")).send().await?;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            let retry = r
                .headers()
                .get("retry-after")
                .expect("Retry-After")
                .to_str()?
                .parse::<u64>()?;
            assert!(retry >= 1);
            let body: Value = r.json().await?;
            assert_eq!(body["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    // Budgets are per identity: the county officer is unaffected.
    assert_eq!(
        env.http("county-officer")?
            .get(hub.url("/v1/whoami"))
            .send()
            .await?
            .status(),
        200
    );
    hub.stop().await;
    Ok(())
}
