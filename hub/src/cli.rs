//! The `hub` command line: `serve`, `demo`, `pki`, `keygen`, `check-config`, `audit`, `client`,
//! `policy`, `log rotate`, `witness`.
//!
//! `main` only calls [`run`]; the subcommands call library functions that the tests call too.
//!
//! Exit codes: 0 success; 1 the command failed (one line on stderr: the error and its causes, never a
//! backtrace, whatever `RUST_BACKTRACE` says); 2 the command line itself is wrong (clap's usage error).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use schemas::Role;

use crate::app::Application;
use crate::config::Config;
use crate::keys::HubKeys;
use crate::pki::{ClientSpec, Pki};

/// Jishijiu Hub (济时救数据共享核对枢纽): inter-agency data sharing and household verification over mTLS.
#[derive(Debug, Parser)]
#[command(name = "hub", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: the mTLS API and the admin (metrics) listener.
    Serve(ServeArgs),
    /// Run the demo: a development PKI, the hub on SQLite, printed curl examples.
    Demo(crate::demo::DemoArgs),
    /// Validate a configuration file and exit.
    CheckConfig(ServeArgs),
    /// Create the hub's signing key and pseudonym key in a directory.
    Keygen {
        /// Directory to write `hub-signing.pk8` and `pseudonym.key` into (never overwrites).
        #[arg(long)]
        out: PathBuf,
    },
    /// Development PKI: create a CA, issue certificates, revoke, publish CRLs.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Auditor tools for the access log: verify, search, subject access report.
    #[command(subcommand)]
    Audit(crate::audit::AuditCommand),
    /// Caseworker tools: household verifications and reports, cases (救助案件).
    #[command(subcommand)]
    Client(crate::client::ClientCommand),
    /// Policies: validate a policy directory and run a decision table against it.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Access-log operations on the hub's own database (every hub replica stopped).
    #[command(subcommand)]
    Log(LogCommand),
    /// 见证人: run a C2SP tlog-witness that cosigns the access log's checkpoints (for the audit
    /// office or a partner department: its own key and state), or create its key.
    #[command(subcommand)]
    Witness(crate::witness::serve::WitnessCommand),
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Re-sign the log's checkpoint after a signing-key or origin change: verifies the stored
    /// checkpoint with the OLD key and origin, audits the stored tree against it, signs the same
    /// size and root with the configured (new) key and origin, and records both notes in
    /// `log_rotations` (served at GET /v1/log/rotations). The hub never re-signs otherwise.
    Rotate(crate::log::integrity::RotateArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Path of the TOML configuration file (see README for every key).
    #[arg(long, short, env = "HUB_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Load and validate DIR (Cedar policies + schema, purpose profiles, local standards) and, with
    /// --table, run its decision table. Exits non-zero on any error or failing case.
    Check {
        /// Policy directory holding policies/, profiles/ and standards/.
        #[arg(long)]
        dir: PathBuf,
        /// Decision table (TOML) of identity, action, resource, context → expected decision.
        #[arg(long)]
        table: Option<PathBuf>,
        /// Also fail when a policy lacks an allow case or a deny case in the table.
        #[arg(long)]
        require_coverage: bool,
        /// A sample event (JSON: event kind, time and details; the household; its history, see
        /// policies/examples/warning-*.json): print which warning rule fires and why the others
        /// do not.
        #[arg(long)]
        event: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a new development CA (`ca.pem`, `ca.key`) in DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// CA common name.
        #[arg(long, default_value = "Jishijiu Hub Dev CA")]
        name: String,
        /// SPIFFE trust domain written into client certificate URI SANs.
        #[arg(long, default_value = "jishijiu.jining")]
        trust_domain: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: i64,
    },
    /// Issue a TLS server certificate (serverAuth) for DNS names and IP addresses.
    IssueServer {
        #[arg(long)]
        dir: PathBuf,
        /// File stem: writes NAME.pem and NAME.key.
        #[arg(long)]
        name: String,
        /// DNS subject alternative names (repeatable).
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// IP subject alternative names (repeatable).
        #[arg(long = "ip")]
        ip: Vec<IpAddr>,
        /// Validity in days, at most 365 (Mozilla's intermediate TLS profile).
        #[arg(long, default_value_t = crate::pki::MAX_SERVER_CERT_DAYS)]
        days: i64,
    },
    /// Issue a client certificate (clientAuth) whose URI SAN names an identity.
    IssueClient {
        #[arg(long)]
        dir: PathBuf,
        /// File stem: writes NAME.pem and NAME.key.
        #[arg(long)]
        name: String,
        /// caseworker | department | auditor | admin | intake | village_assistant
        #[arg(long)]
        role: String,
        /// Organisation; for departments one of civil_affairs, health, education, housing, labor, justice, disability;
        /// for intake systems their channel (hotline_12345 or qr_help).
        #[arg(long)]
        org: String,
        /// Administrative division: 6-digit county or 9-digit township code (12-digit village for a
        /// village assistant).
        #[arg(long)]
        division: String,
        /// Stable principal id ([A-Za-z0-9._-]).
        #[arg(long)]
        principal: String,
        /// Display name (certificate CN).
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// Revoke a certificate by serial (hex) or name; publish a CRL afterwards.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        serial_or_name: String,
    },
    /// Publish a CRL listing every revoked certificate (writes DIR/ca.crl).
    Crl {
        #[arg(long)]
        dir: PathBuf,
        /// Days until nextUpdate; the hub refuses clients once it has passed.
        #[arg(long, default_value_t = 7)]
        days: i64,
    },
    /// List issued certificates.
    List {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Exit code of a command that failed (a usage error exits with clap's 2).
pub const EXIT_FAILED: u8 = 1;

/// Entry point of the `hub` binary: runs [`main`] and reports a failure as one line on stderr
/// (`错误 / error: …` with the error's causes joined by `: `) and exit code [`EXIT_FAILED`].
/// `anyhow`'s `Debug` output, which `fn main() -> Result` would print, appends a backtrace when
/// `RUST_BACKTRACE` is set: for a user's mistake that is noise.
pub fn run() -> std::process::ExitCode {
    match main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("错误 / error: {}", one_line(&e));
            std::process::ExitCode::from(EXIT_FAILED)
        }
    }
}

/// An error and its causes on one line, `: `-joined; a cause whose text the line already holds (an
/// error that prints its source, like `cannot read …: No such file`) is not repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// The `hub` command; [`run`] reports its error.
pub fn main() -> anyhow::Result<()> {
    crate::tls::install_default_provider();
    // Departments added as data (`policies/departments.toml`) parse in every command, also the
    // offline ones that read log entries or answers without a config (best effort: the shipped
    // directory; `serve` and the config checks load the configured one).
    if let Err(e) = policies::Departments::load_dir(&policies::PolicyEngine::shipped_dir()) {
        tracing::debug!(error = %e, "shipped departments.toml not loaded");
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(&args.config)?;
            runtime()?.block_on(async move {
                let _telemetry = crate::telemetry::init(&config.telemetry)?;
                let app = Application::build(config).await?;
                app.run_until_stopped(shutdown_signal()).await;
                Ok(())
            })
        }
        Command::CheckConfig(args) => {
            Config::load(&args.config)?;
            println!("{}: ok", args.config.display());
            Ok(())
        }
        Command::Demo(args) => runtime()?.block_on(crate::demo::run(args)),
        Command::Keygen { out } => {
            let (s, p) = HubKeys::generate(&out)?;
            let keys = HubKeys::load(&s, &p)?;
            println!("signing key:   {}", s.display());
            println!("pseudonym key: {}", p.display());
            let data = out.join(crate::keys::DATA_KEY_FILE);
            let data_keys = HubKeys::load(&s, &p)?.with_data_keys(Some(data.as_path()), &[])?;
            println!(
                "data key:      {} (key id {})",
                data.display(),
                data_keys.data_key_id().unwrap_or("-")
            );
            println!(
                "signing public key (hex): {}",
                hex::encode(keys.signing_public_key())
            );
            Ok(())
        }
        Command::Pki(cmd) => pki(cmd),
        Command::Audit(cmd) => crate::audit::main(cmd),
        Command::Client(cmd) => crate::client::main(cmd),
        Command::Witness(cmd) => crate::witness::serve::main(cmd),
        Command::Log(LogCommand::Rotate(args)) => runtime()?.block_on(async move {
            // The rotation's warning goes where the hub's own logs go.
            let config = Config::load(&args.config)?;
            let _telemetry = crate::telemetry::init(&config.telemetry)?;
            let r = crate::log::integrity::rotate_from_config(&args).await?;
            println!(
                "日志检查点已按轮换重新签名 / checkpoint re-signed by rotation #{}: size {}, root {}",
                r.id, r.size, r.root
            );
            println!("旧公钥 / old key: {}", r.old_vkey);
            println!("新公钥 / new key: {}", r.new_vkey);
            println!(
                "请把新公钥交给审计员 / give auditors the new key; they check the rotation at GET /v1/log/rotations"
            );
            Ok(())
        }),
        Command::Policy(PolicyCommand::Check {
            dir,
            table,
            require_coverage,
            event,
        }) => {
            let engine = policies::PolicyEngine::load(&dir)?;
            println!(
                "{}: {} policies valid, {} warning rules",
                dir.display(),
                engine.policy_ids().count(),
                engine.warnings().rules.len()
            );
            for file in &event {
                let src = std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", file.display()))?;
                let sample: policies::warnings::Sample = serde_json::from_str(&src)
                    .map_err(|e| anyhow::anyhow!("{}: not a sample event: {e}", file.display()))?;
                println!("{}:", file.display());
                print!("{}", engine.warnings().explain(&sample));
            }
            if let Some(table) = table {
                let report = policies::run_decision_table(&engine, &table)?;
                print!("{report}");
                anyhow::ensure!(report.all_passed(), "{}: failing cases", table.display());
                anyhow::ensure!(
                    !require_coverage || report.complete(),
                    "{}: coverage gaps",
                    table.display()
                );
            }
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn pki(cmd: PkiCommand) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Init {
            dir,
            name,
            trust_domain,
            days,
        } => {
            Pki::init(&dir, &name, &trust_domain, days)?;
            println!("CA created: {}", dir.join("ca.pem").display());
        }
        PkiCommand::IssueServer {
            dir,
            name,
            dns,
            ip,
            days,
        } => {
            let pki = Pki::open(&dir)?;
            let c = pki.issue_server(&name, &dns, &ip, days)?;
            println!(
                "issued {} (serial {}): {}",
                name,
                c.serial,
                pki.cert_path(&name).display()
            );
        }
        PkiCommand::IssueClient {
            dir,
            name,
            role,
            org,
            division,
            principal,
            display_name,
            days,
        } => {
            let pki = Pki::open(&dir)?;
            let role = Role::from_code(&role).with_context(|| {
                format!(
                    "--role: unknown role `{role}` (caseworker, department, auditor, admin, intake)"
                )
            })?;
            schemas::DivisionCode::parse(&division)
                .map_err(|e| anyhow::anyhow!("--division: {e}"))?;
            let spec = ClientSpec {
                role,
                organisation: org,
                division,
                display_name: display_name.unwrap_or_else(|| principal.clone()),
                principal,
            };
            let c = pki.issue_client(&name, &spec, days)?;
            println!(
                "issued {} (serial {}): {}",
                name,
                c.serial,
                c.uri.unwrap_or_default()
            );
        }
        PkiCommand::Revoke {
            dir,
            serial_or_name,
        } => {
            let pki = Pki::open(&dir)?;
            let c = pki.revoke(&serial_or_name)?;
            println!(
                "revoked {} (serial {}); run `hub pki crl --dir {}` to publish",
                c.name,
                c.serial,
                dir.display()
            );
        }
        PkiCommand::Crl { dir, days } => {
            let pki = Pki::open(&dir)?;
            let path = pki.publish_crl(days)?;
            println!("CRL published: {}", path.display());
        }
        PkiCommand::List { dir } => {
            let pki = Pki::open(&dir)?;
            for c in pki.issued()? {
                let status = if c.revoked_at.is_some() {
                    "revoked"
                } else {
                    "valid"
                };
                println!(
                    "{:<20} {:<8} {:<34} {:<8} {}",
                    c.name,
                    c.kind,
                    c.serial,
                    status,
                    c.uri.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// Parse a socket address flag.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("not an address like 127.0.0.1:8443: {e}"))
}
