//! Fact kinds as data (issue 12 item 2), over mTLS, on SQLite: 退役军人事务 (`veterans`), a
//! department no code names, is added by writing configuration only — an entry with its own fact
//! kind in `departments.toml`, its code in the Cedar `Agency` enum, the kind in the 临时救助 purpose
//! profile, `[departments.veterans]` in the hub's config, a server certificate from the deployment
//! CA, and a mapping file for the department-side adapter in front of the department's own SQLite
//! database. A temporary-assistance check asks it for its fact through the adapter; the report
//! carries the department's signed value and the printable page shows it with its Chinese name,
//! value and unit, while the income arithmetic does not use it (no rule says so).

use std::sync::Arc;

use connectors::adapter::server::{self, ServeOptions, Service};
use connectors::adapter::{Mapping, ServerTls, SqlFactSource, signing};
use hub_tests::{TestEnv, TestHub};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::verification::{Setup, XUZHUANG, households, ids, verification};

const KIND: &str = "veterans.preferential_allowance_monthly";

const DEPARTMENT_ENTRY: &str = r#"
# 退役军人事务 / veterans affairs, added by configuration in this test.
[department.veterans]
name_zh = "退役军人事务"
name_en = "veterans affairs"

[department.veterans.fact_kinds."veterans.preferential_allowance_monthly"]
value_type = "money_fen"
unit = "fen_per_month"
period = "current_month"
validity_days = 30
name_zh = "优抚金月领取额"
name_en = "monthly preferential-treatment allowance"
"#;

const MAPPING: &str = r#"
department = "veterans"

[facts."veterans.preferential_allowance_monthly"]
query = "SELECT fen AS value FROM allowances WHERE resident_id = $1"
default = 0
"#;

fn copy(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
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

/// Replace `from` (which must occur) in the file at `path`.
fn edit(path: &std::path::Path, from: &str, to: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    anyhow::ensure!(text.contains(from), "{}: no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1))?;
    Ok(())
}

/// The shipped policy directory plus the veterans department, its kind asked and shown raw by
/// 临时救助.
fn policies_with_veterans(dir: &std::path::Path) -> anyhow::Result<()> {
    copy(&policies::PolicyEngine::shipped_dir(), dir)?;
    let departments = dir.join("departments.toml");
    let text = std::fs::read_to_string(&departments)?;
    std::fs::write(&departments, format!("{text}\n{DEPARTMENT_ENTRY}"))?;
    edit(
        &dir.join("policies/hub.cedarschema"),
        "  \"emergency\"\n];",
        "  \"emergency\",\n  \"veterans\"\n];",
    )?;
    let profile = dir.join("profiles/temporary_assistance.toml");
    edit(
        &profile,
        "raw_visible = [",
        &format!("raw_visible = [\"{KIND}\", "),
    )?;
    edit(
        &profile,
        "\n[income]",
        &format!("veterans = [\"{KIND}\"]\n\n[income]"),
    )?;
    Ok(())
}

/// The veterans department's adapter: its own SQLite database, the mapping file, a server
/// certificate from the deployment CA, a fresh signing key. Returns its URL, public key (hex) and
/// the token that stops it.
async fn start_adapter(
    env: &TestEnv,
    policy_dir: &std::path::Path,
    allowances: &[(String, i64)],
) -> anyhow::Result<(String, String, CancellationToken)> {
    // What `connector serve --policies DIR` does first: the declared department and kind become
    // valid for the mapping file.
    connectors::adapter::load_departments(policy_dir)?;
    let mapping = Mapping::from_toml(MAPPING)?;

    let db = env.path().join("veterans.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    {
        use sqlx::Connection as _;
        let mut c = sqlx::SqliteConnection::connect(&url).await?;
        sqlx::query("CREATE TABLE allowances (resident_id TEXT PRIMARY KEY, fen INTEGER NOT NULL)")
            .execute(&mut c)
            .await?;
        for (id, fen) in allowances {
            sqlx::query("INSERT INTO allowances VALUES ($1, $2)")
                .bind(id)
                .bind(fen)
                .execute(&mut c)
                .await?;
        }
        c.close().await?;
    }
    let source = SqlFactSource::connect(&url, mapping).await?;

    let pki = hub::pki::Pki::open(&env.path().join("pki"))?;
    pki.issue_server(
        "dept-veterans-server",
        &["localhost".into()],
        &["127.0.0.1".parse()?],
        30,
    )?;
    let tls = ServerTls::from_files(
        &pki.cert_path("dept-veterans-server"),
        &pki.key_path("dept-veterans-server"),
        &pki.ca_pem_path(),
    )?;
    let key = signing::key_from_pkcs8(&signing::generate_pkcs8()?, "veterans")?;
    let service = Arc::new(Service::new(Arc::new(source), key));
    let public_key = hex::encode(service.public_key().public_key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let stop = CancellationToken::new();
    tokio::spawn(server::serve(
        listener,
        tls.server_config()?,
        server::router(service),
        ServeOptions::default(),
        stop.clone(),
    ));
    Ok((format!("https://localhost:{port}"), public_key, stop))
}

fn fact_of<'a>(member: &'a Value, kind: &str) -> Option<&'a Value> {
    member["facts"]
        .as_array()?
        .iter()
        .find(|f| f["kind"] == kind)
}

#[tokio::test]
async fn a_department_added_as_configuration_answers_its_own_fact_kind() -> anyhow::Result<()> {
    hub_tests::init_test_logging();
    let policy_dir = tempfile::tempdir()?;
    policies_with_veterans(policy_dir.path())?;

    let env = TestEnv::new()?;
    let deps = env.start_departments().await?;
    let hh = households(&deps, XUZHUANG);
    let h = hh
        .iter()
        .find(|h| h.members.len() >= 2)
        .expect("a household with 2+ members")
        .clone();
    let members = ids(&h);
    // The first member draws an allowance of ¥1,234.56 a month; the others have no record.
    let (url, public_key, stop) =
        start_adapter(&env, policy_dir.path(), &[(members[0].clone(), 123_456)]).await?;

    let dir = policy_dir.path().display().to_string();
    let config = env.config(move |t| {
        format!(
            "{t}\n[departments.veterans]\nurl = \"{url}\"\nca = \"pki/ca.pem\"\npublic_key = \"{public_key}\"\n\n[policies]\ndir = \"{dir}\"\n"
        )
    })?;
    let hub = TestHub::start(config).await?;
    let s = Setup { env, deps, hub };

    let auth = s
        .record_letter("caseworker", &h, &["temporary_assistance"])
        .await?;
    let (status, report) = s
        .post(
            "caseworker",
            "/v1/verifications",
            &verification(
                &h,
                "temporary_assistance",
                "case-veterans-1",
                "normal",
                Some(&auth),
            ),
        )
        .await?;
    assert_eq!(status, 200, "{report}");

    // The department answered, signed, for the kind it declared.
    let dept = report["departments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["department"] == "veterans")
        .unwrap_or_else(|| panic!("veterans in the report: {report}"));
    assert_eq!(dept["status"], "answered", "{dept}");
    assert_eq!(dept["name_zh"], "退役军人事务", "{dept}");
    assert_eq!(dept["fact_kinds"], serde_json::json!([KIND]), "{dept}");

    let reported = report["members"].as_array().expect("members");
    assert_eq!(reported.len(), members.len());
    let first = fact_of(&reported[0], KIND).unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        first["value"],
        serde_json::json!({"type": "money_fen", "value": 123_456}),
        "{first}"
    );
    assert_eq!(first["department"], "veterans");
    // The others have no row and the mapping has no `[subject]` query: the department does not
    // know them, and the report says so instead of inventing a value.
    for m in &reported[1..] {
        assert!(fact_of(m, KIND).is_none(), "{m}");
        assert!(
            m["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|n| n["department"] == "veterans" && n["status"] == "unknown"),
            "{m}"
        );
    }
    // No built-in rule uses it and the profile's income rule does not list it: no figure is
    // computed from it.
    let aggregation = report["aggregation"].to_string();
    assert!(report["aggregation"].is_object(), "{report}");
    assert!(!aggregation.contains(KIND), "{aggregation}");

    // The printable page shows it: Chinese name, value, unit.
    let vid = report["id"].as_str().expect("id");
    let r = s
        .env
        .http("caseworker")?
        .get(s.hub.url(&format!("/v1/verifications/{vid}/print")))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let page = r.text().await?;
    assert!(page.contains("优抚金月领取额"), "name");
    assert!(page.contains("¥1,234.56/月"), "value and unit");

    stop.cancel();
    s.stop().await;
    Ok(())
}
