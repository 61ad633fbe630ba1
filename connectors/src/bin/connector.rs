//! `connector`: the department-side adapter. A department runs it in front of its own SQL
//! database; it serves connector protocol v1 over mTLS from a TOML mapping file and signs every
//! answer with the department's Ed25519 key. See `connectors/README.md`.
//!
//! Subcommands: `serve`, `keygen`, `pubkey`, `check` (validate a mapping, optionally against the
//! database), `sim-export` (write simulated data for one department plus its mapping file).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use connectors::adapter::mapping::{Mapping, Placeholders};
use connectors::adapter::server::{self, ServeOptions, Service};
use connectors::adapter::{ServerTls, SqlFactSource, signing};
use connectors::sim::export::{ExportTarget, export_department};
use connectors::sim::{Population, PopulationConfig};
use schemas::Department;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "connector",
    version,
    about = "Serve connector protocol v1 (jsj-connector/1) from a department's SQL database"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve protocol v1 over mTLS.
    Serve(ServeArgs),
    /// Generate the department's Ed25519 answer-signing key (PKCS#8) and print its public key.
    Keygen {
        /// Where to write the key; refuses to overwrite an existing file.
        #[arg(long)]
        out: PathBuf,
        /// Write PEM instead of DER.
        #[arg(long)]
        pem: bool,
    },
    /// Print the public key of a signing key (what the hub operator configures).
    Pubkey {
        #[arg(long, env = "CONNECTOR_SIGNING_KEY")]
        signing_key: PathBuf,
    },
    /// Validate a mapping file; with --database-url also check placeholders and connect.
    Check {
        #[arg(long, env = "CONNECTOR_MAPPING")]
        mapping: PathBuf,
        /// The hub's policy directory (or its `departments.toml`): departments and fact kinds
        /// declared there (not in the built-in catalogue) may then be mapped.
        #[arg(long, env = "CONNECTOR_POLICIES")]
        policies: Option<PathBuf>,
        #[arg(long, env = "CONNECTOR_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Write one simulated department's data to SQLite or PostgreSQL plus a mapping file.
    SimExport {
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 1000)]
        households: usize,
        /// Department code, e.g. `labor`.
        #[arg(long)]
        department: String,
        /// The hub's policy directory (or its `departments.toml`), for a department declared
        /// there; its declared fact kinds get simulated values.
        #[arg(long, env = "CONNECTOR_POLICIES")]
        policies: Option<PathBuf>,
        /// SQLite file to write.
        #[arg(long, conflicts_with_all = ["postgres_url", "schema"])]
        sqlite: Option<PathBuf>,
        /// PostgreSQL URL (with --schema).
        #[arg(long, requires = "schema")]
        postgres_url: Option<String>,
        #[arg(long)]
        schema: Option<String>,
        /// Reference date `YYYY-MM-DD` (default: the population's, 2026-11-01).
        #[arg(long)]
        as_of: Option<String>,
        /// Where to write the mapping file.
        #[arg(long)]
        mapping_out: PathBuf,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Mapping file (TOML): which SQL query answers which fact kind.
    #[arg(long, env = "CONNECTOR_MAPPING")]
    mapping: PathBuf,
    /// The hub's policy directory (or its `departments.toml`): departments and fact kinds
    /// declared there (not in the built-in catalogue) may then be mapped.
    #[arg(long, env = "CONNECTOR_POLICIES")]
    policies: Option<PathBuf>,
    /// Database URL: postgres://…, mysql://…, mariadb://… or sqlite://….
    #[arg(long, env = "CONNECTOR_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Address to listen on.
    #[arg(long, env = "CONNECTOR_LISTEN", default_value = "0.0.0.0:8443")]
    listen: String,
    /// Server certificate chain (PEM, leaf first).
    #[arg(long, env = "CONNECTOR_TLS_CERT")]
    tls_cert: PathBuf,
    /// Server private key (PEM).
    #[arg(long, env = "CONNECTOR_TLS_KEY")]
    tls_key: PathBuf,
    /// CA that issues the hub's client certificates (PEM). Client certificates are required.
    #[arg(long, env = "CONNECTOR_CLIENT_CA")]
    client_ca: PathBuf,
    /// The department's Ed25519 answer-signing key (PKCS#8, DER or PEM).
    #[arg(long, env = "CONNECTOR_SIGNING_KEY")]
    signing_key: PathBuf,
    /// TLS handshake timeout in seconds.
    #[arg(long, env = "CONNECTOR_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    handshake_timeout_secs: u64,
    /// Most connections served at once.
    #[arg(long, env = "CONNECTOR_MAX_CONNECTIONS", default_value_t = 256)]
    max_connections: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Keygen { out, pem } => {
            if out.exists() {
                bail!(
                    "--out {}: file exists; refusing to overwrite a signing key",
                    out.display()
                );
            }
            let der = signing::generate_pkcs8()?;
            let key = signing::key_from_pkcs8(&der, "generated")?;
            let bytes = if pem {
                signing::pkcs8_pem(&der).into_bytes()
            } else {
                der
            };
            write_private(&out, &bytes).with_context(|| format!("--out {}", out.display()))?;
            println!(
                "wrote {}\n{}",
                out.display(),
                signing::describe_public_key(&key)
            );
            Ok(())
        }
        Command::Pubkey { signing_key } => {
            let key = signing::load_key(&signing_key)?;
            print!("{}", signing::describe_public_key(&key));
            Ok(())
        }
        Command::Check {
            mapping,
            policies,
            database_url,
        } => {
            load_policies(policies.as_deref())?;
            let m = load_mapping(&mapping)?;
            if let Some(url) = database_url {
                SqlFactSource::connect(&url, m.clone()).await?;
                println!("database reachable");
            } else {
                m.check_placeholders(Placeholders::Dollar)
                    .or_else(|_| m.check_placeholders(Placeholders::Question))?;
            }
            println!(
                "mapping OK: {} serves {} fact kind(s)",
                m.department,
                m.facts.len()
            );
            for k in m.facts.keys() {
                println!("  {k}");
            }
            Ok(())
        }
        Command::SimExport {
            seed,
            households,
            department,
            policies,
            sqlite,
            postgres_url,
            schema,
            as_of,
            mapping_out,
        } => {
            load_policies(policies.as_deref())?;
            let dept = Department::from_code(&department)
                .with_context(|| format!("--department {department:?}: not a department code"))?;
            let mut config = PopulationConfig::new(seed, households);
            if let Some(d) = as_of {
                let fmt = time::macros::format_description!("[year]-[month]-[day]");
                config.as_of = time::Date::parse(&d, &fmt)
                    .with_context(|| format!("--as-of {d:?}: must be YYYY-MM-DD"))?;
            }
            let as_of = config.as_of;
            let population = Population::generate(config);
            let target = match (sqlite, postgres_url, schema) {
                (Some(path), None, None) => ExportTarget::Sqlite(path),
                (None, Some(url), Some(schema)) => ExportTarget::Postgres { url, schema },
                _ => bail!("give either --sqlite FILE or --postgres-url URL --schema NAME"),
            };
            let exported = export_department(&population, dept, as_of, &target).await?;
            exported
                .write_mapping(&mapping_out)
                .with_context(|| format!("--mapping-out {}", mapping_out.display()))?;
            println!(
                "wrote {} people for {dept} to {}; mapping in {}",
                exported.people,
                match &target {
                    ExportTarget::Sqlite(p) => p.display().to_string(),
                    ExportTarget::Postgres { schema, .. } => format!("schema {schema}"),
                },
                mapping_out.display()
            );
            Ok(())
        }
    }
}

fn load_mapping(path: &PathBuf) -> anyhow::Result<Mapping> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("--mapping {}", path.display()))?;
    Mapping::from_toml(&text).with_context(|| format!("mapping file {}", path.display()))
}

/// Register the departments and fact kinds of `--policies`, if given.
fn load_policies(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    if let Some(p) = path {
        let d = connectors::adapter::load_departments(p)
            .with_context(|| format!("--policies {}", p.display()))?;
        tracing::info!(departments = d.iter().count(), policies = %p.display(), "departments.toml loaded");
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    load_policies(args.policies.as_deref())?;
    let mapping = load_mapping(&args.mapping)?;
    let tls =
        ServerTls::from_files(&args.tls_cert, &args.tls_key, &args.client_ca)?.server_config()?;
    let key = signing::load_key(&args.signing_key)?;
    let source = SqlFactSource::connect(&args.database_url, mapping).await?;
    let department = source.mapping().department;
    let kinds = source.mapping().facts.len();
    let service = Arc::new(Service::new(Arc::new(source), key));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("--listen {}", args.listen))?;
    tracing::info!(
        %department,
        fact_kinds = kinds,
        addr = %listener.local_addr()?,
        key_id = %service.public_key().key_id,
        "connector serving jsj-connector/1 over mTLS"
    );
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    server::serve(
        listener,
        tls,
        server::router(service),
        ServeOptions {
            handshake_timeout: Duration::from_secs(args.handshake_timeout_secs),
            max_connections: args.max_connections,
        },
        shutdown,
    )
    .await;
    Ok(())
}

/// Write a private key readable by the owner only (on Unix).
fn write_private(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}
