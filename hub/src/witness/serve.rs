//! `hub witness serve`: the witness's configuration file, its HTTP routes and its mTLS listener.
//!
//! ```toml
//! # witness.toml (relative paths resolve against this file's directory)
//! listen = "127.0.0.1:9480"
//! key = "witness.key"            # from `hub witness keygen --name audit.jining/witness --out .`
//! name = "audit.jining/witness"  # only used to create `key` on first start when it is missing
//! state = "witness.db"           # SQLite file: per origin the latest cosigned checkpoint
//!
//! [tls]                          # mTLS: the hub presents its outbound client certificate
//! cert = "pki/witness-server.pem"
//! key = "pki/witness-server.key"
//! client_ca = "pki/ca.pem"       # the CA that issued the hub's outbound certificate
//!
//! [[log]]                        # one per witnessed log
//! vkey = "jishijiu.jining/access-log+1234abcd+AQ…"   # the log's verifier key; its name is the origin
//! ```
//!
//! Transport decision: the witness speaks mTLS like every other server here (the department
//! adapter's listener and server config are reused: `connectors::adapter::server::serve` and
//! `ServerTls`), and the hub calls it with the client certificate it already presents to
//! departments (`departments.outbound_cert`). The protocol itself needs no authentication (the
//! log's signature authorises a checkpoint), so the client CA only keeps strangers from spending
//! the witness's disk and CPU.
//!
//! Routes: `POST /add-checkpoint` (tlog-witness), `GET /<hex SHA-256 of the origin>/checkpoint` (the
//! monitoring view: the latest checkpoint cosigned for that log, freshly cosigned) and
//! `GET /healthz`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use clap::{Args, Subcommand};
use http::{StatusCode, header};
use serde::Deserialize;
use tlog::VerifierKey;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{AddError, State as WitnessState, Witness};

/// `hub witness …`
#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Create a witness key (cosignature/v1): writes DIR/witness.key (secret) and DIR/witness.vkey,
    /// and prints the verifier key to give to the hub operator and to auditors.
    Keygen {
        /// The witness's name, e.g. audit.jining/witness (no spaces, no '+').
        #[arg(long)]
        name: String,
        /// Directory to write into (an existing key is never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Run the witness: POST /add-checkpoint over mTLS.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The witness's TOML configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
}

/// `witness.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// Address to listen on (port 0: any free port, printed at start).
    pub listen: SocketAddr,
    /// The witness's secret key file (`hub witness keygen`).
    pub key: PathBuf,
    /// With `name`, a missing `key` file is created on first start.
    #[serde(default)]
    pub name: Option<String>,
    /// The SQLite state file.
    pub state: PathBuf,
    pub tls: WitnessTls,
    /// The logs this witness witnesses.
    #[serde(default, rename = "log")]
    pub logs: Vec<WitnessedLog>,
}

/// `[tls]` of `witness.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA bundle client certificates must chain to.
    pub client_ca: PathBuf,
}

/// One `[[log]]` of `witness.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessedLog {
    /// The log's Ed25519 verifier key (`<origin>+<hex id>+<base64>`).
    pub vkey: String,
}

impl WitnessConfig {
    /// Reads and parses `path`; relative paths resolve against its directory. Errors name the key.
    pub fn load(path: &Path) -> anyhow::Result<WitnessConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        // toml's error names the key and the line at fault.
        let mut c: WitnessConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for p in [
            &mut c.key,
            &mut c.state,
            &mut c.tls.cert,
            &mut c.tls.key,
            &mut c.tls.client_ca,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(c)
    }
}

/// A witness ready to serve: bound listener, TLS and routes.
pub struct WitnessApp {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    witness: Arc<Witness>,
}

impl WitnessApp {
    /// Loads the key (creating it when missing and `name` is set), opens the state, binds.
    pub async fn build(config: &WitnessConfig) -> anyhow::Result<WitnessApp> {
        if !config.key.exists()
            && let Some(name) = &config.name
        {
            let dir = config.key.parent().unwrap_or(Path::new("."));
            let generated = super::keygen(name, dir)?;
            let made = dir.join(super::KEY_FILE);
            if made != config.key {
                std::fs::rename(&made, &config.key)
                    .with_context(|| format!("key: cannot move to {}", config.key.display()))?;
            }
            tracing::info!(vkey = %generated, "witness key created");
        }
        let signer = super::load_key(&config.key).context("key")?;
        let mut logs = Vec::with_capacity(config.logs.len());
        for (i, l) in config.logs.iter().enumerate() {
            logs.push(
                VerifierKey::parse(l.vkey.trim())
                    .map_err(|e| anyhow::anyhow!("log[{i}].vkey: {e}"))?,
            );
        }
        anyhow::ensure!(!logs.is_empty(), "log: configure at least one [[log]]");
        let state = WitnessState::open(&config.state)
            .await
            .with_context(|| format!("state: cannot open {}", config.state.display()))?;
        let witness = Arc::new(Witness::new(signer, logs, state)?);
        let tls = connectors::adapter::ServerTls::from_files(
            &config.tls.cert,
            &config.tls.key,
            &config.tls.client_ca,
        )
        .context("tls")?
        .server_config()
        .context("tls")?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listen: cannot bind {}", config.listen))?;
        Ok(WitnessApp {
            listener,
            tls,
            witness,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn witness(&self) -> Arc<Witness> {
        self.witness.clone()
    }

    /// Serves until `shutdown` resolves; then closes the listener and every connection.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let app = router(self.witness.clone());
        let stop = CancellationToken::new();
        let trigger = stop.clone();
        let watcher = tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
        });
        connectors::adapter::server::serve(
            self.listener,
            self.tls,
            app,
            connectors::adapter::ServeOptions::default(),
            stop,
        )
        .await;
        watcher.abort();
    }
}

/// Largest `add-checkpoint` body: 63 proof lines and a checkpoint with a few dozen signatures.
const MAX_BODY: usize = 64 * 1024;

/// The witness's routes.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin}/checkpoint", get(latest_checkpoint))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(witness)
}

fn plain(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(1)
}

async fn latest_checkpoint(
    State(w): State<Arc<Witness>>,
    axum::extract::Path(origin): axum::extract::Path<String>,
) -> Response {
    match w.latest_cosigned(&origin, unix_now()).await {
        Ok(Some(note)) => plain(StatusCode::OK, "text/plain; charset=utf-8", note),
        Ok(None) => plain(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "unknown_origin: no checkpoint cosigned for this log\n".into(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "witness: reading the latest checkpoint failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("{}\n", e.code()),
            )
        }
    }
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: String) -> Response {
    match w.add_checkpoint(&body, unix_now()).await {
        Ok(lines) => plain(StatusCode::OK, "text/plain; charset=utf-8", lines),
        Err(AddError::Conflict { size, .. }) => plain(
            StatusCode::CONFLICT,
            "text/x.tlog.size",
            format!("{size}\n"),
        ),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                tracing::error!(error = %e, "witness: add-checkpoint failed");
            } else {
                tracing::info!(code = e.code(), error = %e, "witness: add-checkpoint refused");
            }
            plain(
                status,
                "text/plain; charset=utf-8",
                format!("{}: {e}\n", e.code()),
            )
        }
    }
}

/// Entry point of `hub witness`.
pub fn main(cmd: WitnessCommand) -> anyhow::Result<()> {
    match cmd {
        WitnessCommand::Keygen { name, out } => {
            let vkey = super::keygen(&name, &out)?;
            println!(
                "见证人私钥 / witness key: {}",
                out.join(super::KEY_FILE).display()
            );
            println!("见证人公钥 / verifier key: {vkey}");
            println!(
                "请把公钥交给枢纽运维和审计员 / give the verifier key to the hub operator ([[log.witness_endpoints]] vkey) and to auditors (hub audit verify --witness)"
            );
            Ok(())
        }
        WitnessCommand::Serve(args) => {
            let config = WitnessConfig::load(&args.config)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let _ = tracing_subscriber::fmt()
                    .with_writer(std::io::stderr)
                    .with_env_filter(
                        tracing_subscriber::EnvFilter::try_from_default_env()
                            .unwrap_or_else(|_| "info".into()),
                    )
                    .try_init();
                let app = WitnessApp::build(&config).await?;
                println!(
                    "见证服务已启动 / witness listening on {} (mTLS); verifier key {}",
                    app.local_addr(),
                    app.witness().verifier_key()
                );
                app.run_until_stopped(crate::cli::shutdown_signal()).await;
                Ok(())
            })
        }
    }
}
