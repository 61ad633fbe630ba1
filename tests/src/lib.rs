//! Support for the end-to-end tests: a throw-away PKI, a hub started in-process on 127.0.0.1:0 or as a
//! real process, and mTLS clients.
//!
//! Everything is real: rcgen certificates made per test, rustls (ring) on both ends, SQLite files in a
//! temporary directory, the PostgreSQL server on this machine.
#![forbid(unsafe_code)]

pub mod bench;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hub::app::Application;
use hub::config::Config;
use hub::pki::{ClientSpec, Pki};
use hub::tls::TlsState;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::sync::oneshot;

pub use hub;

/// The PostgreSQL server tests use: `HUB_TEST_PG_URL`, default the local trust-auth server.
pub fn pg_admin_url() -> String {
    std::env::var("HUB_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, uniquely named PostgreSQL database; dropped by [`PgTestDb::drop_db`].
pub struct PgTestDb {
    pub name: String,
    pub url: String,
}

impl PgTestDb {
    /// Create the database. Fails (never skips) when PostgreSQL is unreachable.
    pub async fn create() -> anyhow::Result<PgTestDb> {
        use sqlx::Connection;
        let admin = pg_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin).await.map_err(|e| {
            anyhow::anyhow!(
                "PostgreSQL is required for this test and is unreachable at HUB_TEST_PG_URL ({e})"
            )
        })?;
        let name = format!("hub_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b.to_owned())
            .unwrap_or(admin.clone());
        Ok(PgTestDb {
            url: format!("{base}/{name}"),
            name,
        })
    }

    pub async fn drop_db(self) -> anyhow::Result<()> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&pg_admin_url()).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// A test deployment directory: PKI with the demo identities, keys and a config file.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub pki: Pki,
}

impl TestEnv {
    /// Same identities as the demo (caseworker, caseworker-other, county-officer, auditor, admin,
    /// dept-*), a server cert for localhost/127.0.0.1, a fresh CRL and hub keys.
    pub fn new() -> anyhow::Result<TestEnv> {
        let dir = tempfile::tempdir()?;
        hub::demo::prepare(dir.path(), "127.0.0.1:0".parse()?, "127.0.0.1:0".parse()?)?;
        let pki = Pki::open(&dir.path().join("pki"))?;
        Ok(TestEnv { dir, pki })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hub.toml")
    }

    /// The config file, with `edit` applied to its text first.
    pub fn config(&self, edit: impl Fn(String) -> String) -> anyhow::Result<Config> {
        let text = edit(std::fs::read_to_string(self.config_path())?);
        std::fs::write(self.config_path(), &text)?;
        Ok(Config::load(&self.config_path())?)
    }

    /// Issue an extra client certificate.
    pub fn issue(&self, name: &str, spec: &ClientSpec) -> anyhow::Result<()> {
        self.pki.issue_client(name, spec, 30)?;
        Ok(())
    }

    /// Issue one client certificate of every kind the hub must refuse, and return, for each, a
    /// client config and the reason code the hub logs. Revoked certificates go into a fresh CRL.
    pub fn bad_clients(&self) -> anyhow::Result<Vec<(&'static str, rustls::ClientConfig)>> {
        use hub::pki::CertOptions;
        let spec = |principal: &str| ClientSpec {
            role: schemas::Role::Caseworker,
            organisation: "mz-370811002".into(),
            division: "370811002".into(),
            principal: principal.into(),
            display_name: "测试经办人".into(),
        };
        let now = time::OffsetDateTime::now_utc();
        let expired = CertOptions {
            not_before: now - time::Duration::days(10),
            not_after: now - time::Duration::days(1),
            ..CertOptions::client(1)
        };
        self.pki
            .issue_client_with("expired", &spec("expired-1"), &expired)?;
        let server_only = CertOptions {
            client_auth: false,
            server_auth: true,
            ..CertOptions::client(30)
        };
        self.pki
            .issue_client_with("no-client-auth", &spec("nca-1"), &server_only)?;
        self.issue("revoked", &spec("revoked-1"))?;
        self.pki.revoke("revoked")?;
        self.pki.publish_crl(7)?;
        for (name, uri) in [
            (
                "foreign-domain",
                Some("spiffe://elsewhere.example/caseworker/mz-370811002/370811002/x"),
            ),
            ("no-uri-san", None),
            (
                "unknown-role",
                Some("spiffe://jishijiu.jining/mayor/mz-370811002/370811002/x"),
            ),
        ] {
            let uris = Some(uri.map(|u| vec![u.to_owned()]).unwrap_or_default());
            self.pki.issue_client_with(
                name,
                &spec(name),
                &CertOptions {
                    uri_sans: uris,
                    ..CertOptions::client(30)
                },
            )?;
        }
        // Another CA issuing a perfectly shaped identity.
        let other_dir = self.dir.path().join("other-ca");
        let other = Pki::init(&other_dir, "Other CA", "jishijiu.jining", 30)?;
        other.issue_client("intruder", &spec("cw-xuzhuang-01"), 30)?;
        let ca = self.pki.ca_pem_path();
        Ok(vec![
            ("no_client_certificate", client_config(&ca, None)?),
            (
                "unknown_issuer",
                client_config(
                    &ca,
                    Some((other.cert_path("intruder"), other.key_path("intruder"))),
                )?,
            ),
            ("certificate_expired", self.client_config(Some("expired"))?),
            ("certificate_revoked", self.client_config(Some("revoked"))?),
            (
                "wrong_key_usage",
                self.client_config(Some("no-client-auth"))?,
            ),
            (
                "identity_wrong_trust_domain",
                self.client_config(Some("foreign-domain"))?,
            ),
            (
                "identity_no_uri_san",
                self.client_config(Some("no-uri-san"))?,
            ),
            (
                "identity_unknown_role",
                self.client_config(Some("unknown-role"))?,
            ),
        ])
    }

    /// A rustls client config presenting `name`'s certificate (or none) and trusting the test CA.
    pub fn client_config(&self, name: Option<&str>) -> anyhow::Result<rustls::ClientConfig> {
        client_config(
            &self.pki.ca_pem_path(),
            name.map(|n| (self.pki.cert_path(n), self.pki.key_path(n))),
        )
    }

    /// An HTTPS client for `name` that never reuses connections (each request is a new handshake).
    pub fn http(&self, name: &str) -> anyhow::Result<reqwest::Client> {
        http_client(self.client_config(Some(name))?)
    }

    /// Start the demo's seven simulated departments (mTLS, certificates from this PKI) and add
    /// their `[departments]` section to the config file; build the hub afterwards with
    /// [`TestEnv::config`]. Config edits that append sections must come after this call.
    pub async fn start_departments(&self) -> anyhow::Result<hub::demo::DemoDepartments> {
        let deps = hub::demo::start_departments(self.path()).await?;
        hub::demo::write_departments_section(self.path(), &deps)?;
        Ok(deps)
    }
}

/// rustls client config (ring) trusting `ca` and optionally presenting a certificate.
pub fn client_config(
    ca: &Path,
    identity: Option<(PathBuf, PathBuf)>,
) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca)? {
        roots.add(c?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(hub::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(&cert)?.collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_file(&key)?)?
        }
        None => builder.with_no_client_auth(),
    })
}

/// An HTTPS client using `config`, without connection reuse.
pub fn http_client(config: rustls::ClientConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(30))
        .build()?)
}

/// Open a TLS connection and send one HTTP/1.1 request; returns the status line or the error that
/// ended the exchange. With TLS 1.3 a refused client certificate shows up on the first read.
pub async fn raw_request(
    addr: SocketAddr,
    config: rustls::ClientConfig,
    path: &str,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").expect("valid name"), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    tls.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .next()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| "connection closed without a response".into())
}

/// A hub running in-process.
pub struct TestHub {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub tls: Arc<TlsState>,
    pub authz: Arc<hub::authz::Authz>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestHub {
    /// Build and start a hub from `config` on the current runtime.
    pub async fn start(config: Config) -> anyhow::Result<TestHub> {
        hub::tls::install_default_provider();
        let app = Application::build(config).await?;
        let (tx, rx) = oneshot::channel();
        let addr = app.local_addr();
        let admin_addr = app.admin_addr();
        let tls = app.tls();
        let authz = app.state().authz.clone();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Ok(TestHub {
            addr,
            admin_addr,
            tls,
            authz,
            stop: Some(tx),
            task,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// Stop and wait for the drain.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Opt-in test logs: set `TEST_LOG=1` to see the hub's logs in test output.
pub fn init_test_logging() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .try_init();
        }
    });
}
