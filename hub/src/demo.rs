//! `hub demo`: a development PKI, the hub on SQLite, and instructions — everything under one directory.
//!
//! Re-running reuses the PKI and the database; the CRL is republished each start so it stays fresh.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use schemas::{Department, Role};

use crate::app::Application;
use crate::config::{Config, sample_toml};
use crate::keys::HubKeys;
use crate::pki::{ClientSpec, Pki};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the PKI, keys, config and database.
    #[arg(long, default_value = "./var/demo")]
    pub data_dir: PathBuf,
    /// mTLS API address.
    #[arg(long, default_value = "127.0.0.1:8443", value_parser = crate::cli::parse_addr)]
    pub listen: SocketAddr,
    /// Admin (metrics) address.
    #[arg(long, default_value = "127.0.0.1:9464", value_parser = crate::cli::parse_addr)]
    pub admin_listen: SocketAddr,
    /// Set up the directory and print the instructions, but do not start the hub.
    #[arg(long)]
    pub setup_only: bool,
}

/// The demo's client identities: (file stem, spec).
pub fn demo_clients() -> Vec<(String, ClientSpec)> {
    let mut out = vec![
        (
            "caseworker".to_owned(),
            ClientSpec {
                role: Role::Caseworker,
                organisation: "mz-370811002".into(),
                division: "370811002".into(),
                principal: "cw-xuzhuang-01".into(),
                display_name: "许庄街道经办人 (Xuzhuang caseworker)".into(),
            },
        ),
        (
            "caseworker-other".to_owned(),
            ClientSpec {
                role: Role::Caseworker,
                organisation: "mz-370811005".into(),
                division: "370811005".into(),
                principal: "cw-liying-01".into(),
                display_name: "李营街道经办人 (Liying caseworker)".into(),
            },
        ),
        (
            "county-officer".to_owned(),
            ClientSpec {
                role: Role::Caseworker,
                organisation: "mz-370811".into(),
                division: "370811".into(),
                principal: "officer-rencheng-01".into(),
                display_name: "任城区民政局 (Rencheng county officer)".into(),
            },
        ),
        (
            "auditor".to_owned(),
            ClientSpec {
                role: Role::Auditor,
                organisation: "jw-370800".into(),
                division: "370800".into(),
                principal: "auditor-01".into(),
                display_name: "市纪委监委审计员 (city auditor)".into(),
            },
        ),
        (
            "admin".to_owned(),
            ClientSpec {
                role: Role::Admin,
                organisation: "mz-370800".into(),
                division: "370800".into(),
                principal: "admin-01".into(),
                display_name: "枢纽管理员 (hub operator)".into(),
            },
        ),
    ];
    for d in Department::ALL {
        out.push((
            format!("dept-{}", d.code().replace('_', "-")),
            ClientSpec {
                role: Role::Department,
                organisation: d.code().to_owned(),
                division: "370800".into(),
                principal: format!("{}-connector", d.code().replace('_', "-")),
                display_name: format!("济宁市{} ({})", d.name_zh(), d.code()),
            },
        ));
    }
    out
}

/// Create or reuse everything under `dir`; returns the path of the config file.
pub fn prepare(dir: &Path, listen: SocketAddr, admin: SocketAddr) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pki_dir = dir.join("pki");
    let pki = Pki::open_or_init(&pki_dir, "Jishijiu Hub Demo CA", "jishijiu.jining")?;
    if !pki.cert_path("server").exists() {
        pki.issue_server(
            "server",
            &["localhost".into()],
            &["127.0.0.1".parse()?, "::1".parse()?],
            825,
        )?;
    }
    for (name, spec) in demo_clients() {
        if !pki.cert_path(&name).exists() {
            pki.issue_client(&name, &spec, 365)?;
        }
    }
    pki.publish_crl(7)?;
    let keys_dir = dir.join("keys");
    if !keys_dir.join("hub-signing.pk8").exists() {
        HubKeys::generate(&keys_dir)?;
    }
    crate::log::write_vkey_file(
        &keys_dir.join("hub-signing.pk8"),
        &crate::config::LogConfig::default().origin,
        &dir.join("log.vkey"),
    )?;
    let config_path = dir.join("hub.toml");
    std::fs::write(&config_path, sample_toml(listen, admin, "sqlite://hub.db"))?;
    Ok(config_path)
}

fn instructions(dir: &Path, listen: SocketAddr, admin: SocketAddr) -> String {
    let d = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let p = d.join("pki");
    let host = if listen.ip().is_loopback() {
        format!("localhost:{}", listen.port())
    } else {
        listen.to_string()
    };
    format!(
        "\n济时救数据共享核对枢纽 demo — Jishijiu Hub demo\n\
         data directory: {d}\n\
         config:         {cfg}\n\n\
         Call it with a client certificate, e.g. the township caseworker:\n\n  \
         curl --cacert {p}/ca.pem --cert {p}/caseworker.pem --key {p}/caseworker.key https://{host}/v1/whoami\n  \
         curl --cacert {p}/ca.pem --cert {p}/caseworker.pem --key {p}/caseworker.key https://{host}/readyz\n\n\
         Other identities in {p}: caseworker-other, county-officer, auditor, admin, dept-<department>.\n\
         Without a certificate the handshake is refused:\n\n  \
         curl --cacert {p}/ca.pem https://{host}/healthz\n\n\
         Metrics: curl http://{admin}/metrics\n\
         Revoke a client: hub pki revoke --dir {p} caseworker-other && hub pki crl --dir {p}  (the hub reloads within seconds)\n",
        d = d.display(),
        cfg = d.join("hub.toml").display(),
        p = p.display(),
    )
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config_path = prepare(&args.data_dir, args.listen, args.admin_listen)?;
    let mut config = Config::load(&config_path)?;
    config.telemetry.log_format = crate::config::LogFormat::Pretty;
    println!(
        "{}",
        instructions(&args.data_dir, args.listen, args.admin_listen)
    );
    if args.setup_only {
        return Ok(());
    }
    let _telemetry = crate::telemetry::init(&config.telemetry)?;
    let app = Application::build(config).await?;
    println!(
        "hub listening on https://{} (Ctrl-C to stop)\n",
        app.local_addr()
    );
    app.run_until_stopped(crate::cli::shutdown_signal()).await;
    Ok(())
}
