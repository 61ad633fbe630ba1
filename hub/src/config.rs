//! Configuration: one TOML file read into typed structs and validated at start-up.
//!
//! Invariants:
//! - Unknown keys are errors (`deny_unknown_fields`), so a typo never silently falls back to a default.
//! - Validation errors name the key at fault (`tls.client_ca: file not found: …`).
//! - Secrets (the database URL, which may carry a password) are [`SecretString`] and never printed.
//! - Relative paths are resolved against the directory holding the config file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The whole configuration of one hub process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    pub database: DatabaseConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    pub keys: KeysConfig,
    /// The access log (访问日志).
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub policies: PoliciesConfig,
    #[serde(default)]
    pub rate_limits: crate::ratelimit::RateLimitConfig,
    /// The departments the hub queries (部门接口) and the hub's outbound client certificate.
    #[serde(default)]
    pub departments: crate::verify::config::DepartmentsConfig,
    /// 超期督办: the escalation scan (interval, lease).
    #[serde(default)]
    pub escalation: crate::notify::config::EscalationConfig,
    /// 通知: webhooks the outbox is delivered to, retries.
    #[serde(default)]
    pub notifications: crate::notify::config::NotificationsConfig,
    /// Department events (部门事件): freshness window and extra event kinds.
    #[serde(default)]
    pub events: crate::warning::EventsConfig,
    /// The low-income monitoring list (低收入人口动态监测): extra categories.
    #[serde(default)]
    pub monitoring: crate::warning::MonitoringConfig,
}

/// Where the Cedar policies, purpose profiles and local standards live.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesConfig {
    /// A directory with `policies/`, `profiles/` and `standards/` (the repository's `policies/`
    /// directory is the shipped example). Reloaded on SIGHUP and on change, like the TLS files.
    #[serde(default = "default_policies_dir")]
    pub dir: PathBuf,
}

impl Default for PoliciesConfig {
    fn default() -> Self {
        Self {
            dir: default_policies_dir(),
        }
    }
}

fn default_policies_dir() -> PathBuf {
    policies::PolicyEngine::shipped_dir()
}

/// The mTLS listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the mTLS API listener.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A TLS handshake that has not finished after this long is dropped (slowloris defence).
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// At most this many connections (handshaking or established) at once; more wait in the kernel backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A request that takes longer than this gets 408.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Request bodies larger than this get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// On SIGTERM, in-flight requests get this long to finish.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Established connections are closed after this long so that a revoked client must reconnect
    /// (and be refused) within a bounded time.
    #[serde(default = "default_max_connection_age_ms")]
    pub max_connection_age_ms: u64,
    /// After the handshake: an HTTP/1 request head must be complete this long after the connection
    /// (or its previous response) became ready for it, and every connection must start its first
    /// request within it. HTTP/2 keep-alive pings use it as interval and timeout.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed (HTTP/1 and HTTP/2). On
    /// HTTP/1 the header-read timeout closes an idle keep-alive connection earlier when it is shorter.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Live connections of one identity (certificate URI) at most; a connection over the cap gets
    /// 429 `too_many_connections` and is closed. Keeps one certificate from holding all of
    /// `max_connections`.
    #[serde(default = "default_max_connections_per_identity")]
    pub max_connections_per_identity: usize,
}

/// Server certificate, trusted client CAs and CRLs. All files are PEM.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Server certificate chain (leaf first).
    pub cert: PathBuf,
    /// Server private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// CA bundle client certificates must chain to.
    pub client_ca: PathBuf,
    /// CRLs, one file each (PEM, may hold several). Every CA in the bundle must be covered by a CRL
    /// once any CRL is configured; expired CRLs refuse the clients they cover.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// Poll the files for changes this often and reload; 0 disables polling (SIGHUP still reloads).
    #[serde(default = "default_reload_poll_ms")]
    pub reload_poll_ms: u64,
}

/// How certificate URI SANs map to identities.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// SPIFFE trust domain of the URI SANs this hub accepts.
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// Division codes must start with this prefix (Jining: 3708).
    #[serde(default = "default_division_prefix")]
    pub division_prefix: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            trust_domain: default_trust_domain(),
            division_prefix: default_division_prefix(),
        }
    }
}

/// The hub's own database.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/hub.db` (default backend) or `postgres://user@host/db`. May hold a password;
    /// never printed.
    pub url: SecretString,
    #[serde(default = "default_db_max_connections")]
    pub max_connections: u32,
}

/// The admin listener (Prometheus metrics). Plain HTTP: keep it on loopback.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
        }
    }
}

/// Logs and traces.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `json` (default) or `pretty`.
    #[serde(default = "default_log_format")]
    pub log_format: LogFormat,
    /// An `EnvFilter` directive; `RUST_LOG` overrides it.
    #[serde(default = "default_log_filter")]
    pub log_filter: String,
    /// OTLP/HTTP (protobuf) base URL of a collector (e.g. `http://127.0.0.1:4318`; `/v1/traces` is
    /// added); traces are exported only when set. Plain HTTP to a local collector or sidecar, which
    /// forwards over TLS.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: default_log_format(),
            log_filter: default_log_filter(),
            otlp_endpoint: None,
            service_name: default_service_name(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Key material the hub signs and pseudonymises with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Ed25519 signing key (PKCS#8 v2 DER, as written by `hub keygen`), for log checkpoints and reports.
    pub signing_key: PathBuf,
    /// 32+ random bytes used as the HMAC key for subject pseudonyms. Never leaves the hub.
    pub pseudonym_key: PathBuf,
    /// 数据加密密钥: 32 random bytes, the AES-256-GCM key personal fields of cases are encrypted
    /// under at rest (written by `hub keygen`). Without it the hub runs, but cases cannot be opened
    /// or read (503 `data_key_unconfigured`).
    #[serde(default)]
    pub data_key: Option<PathBuf>,
    /// Data keys rotated out: still used to decrypt records written under them (each record names
    /// its key id), never to encrypt.
    #[serde(default)]
    pub retired_data_keys: Vec<PathBuf>,
}

/// The access log (`[log]`): origin (also the signing key name), witnesses, batching, lease.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Checkpoint origin, a scheme-less URL-like name.
    #[serde(default = "default_log_origin")]
    pub origin: String,
    /// Witness verifier keys (cosignature/v1, `<name>+<hex id>+<base64>`); their cosignatures are
    /// checked when present.
    #[serde(default)]
    pub witnesses: Vec<String>,
    /// Most appends per transaction (group commit).
    #[serde(default = "default_log_max_batch")]
    pub max_batch: usize,
    /// This replica's name. Default from the environment: `HUB_REPLICA_ID`, else `POD_NAME`, else
    /// `HOSTNAME`, else the host name. The process is `<replica_id>#<pid>` (shown by /readyz and
    /// recorded as the last sequencer on PostgreSQL). On SQLite it keys the sequencer lease.
    #[serde(default = "default_log_replica_id")]
    pub replica_id: String,
    /// Sequencer lease duration (SQLite).
    #[serde(default = "default_log_lease_ms")]
    pub lease_ms: u64,
    /// PostgreSQL: the longest a replica's batch transaction may sit idle holding the log head
    /// (`idle_in_transaction_session_timeout`): a hung replica is cut off after this, so it bounds
    /// how long the other replicas' appends stall; they wait for the head lock up to three times it.
    #[serde(default = "default_log_sequencer_timeout_ms")]
    pub sequencer_timeout_ms: u64,
    /// PostgreSQL: how often each replica re-reads the log head that other replicas advance.
    #[serde(default = "default_log_head_refresh_ms")]
    pub head_refresh_ms: u64,
    /// How much of the stored tree start-up checks against the signed checkpoint: `recent` (the
    /// newest 256 entries and their path to the root; the default, fast at any size), `sample`
    /// (also `startup_audit_samples` random entries by inclusion proof) or `full` (every entry).
    #[serde(default)]
    pub startup_audit: crate::log::StartupAudit,
    /// Entries the `sample` start-up audit checks.
    #[serde(default = "default_log_startup_audit_samples")]
    pub startup_audit_samples: usize,
    /// 见证人: witnesses the hub asks to cosign each new checkpoint (C2SP tlog-witness
    /// `add-checkpoint` over mTLS with `departments.outbound_cert`); their keys count as
    /// `witnesses` too. See [`crate::log::witnessing`].
    #[serde(default)]
    pub witness_endpoints: Vec<WitnessEndpoint>,
    /// Cosignatures a checkpoint needs before GET /log/checkpoint serves it (1 ..= the number of
    /// endpoints; default: all of them).
    #[serde(default)]
    pub witness_publish_quorum: Option<usize>,
    /// Longest wait between retries to a witness that failed (the wait doubles from 1 s).
    #[serde(default = "default_witness_retry_cap_ms")]
    pub witness_retry_cap_ms: u64,
}

/// One `[[log.witness_endpoints]]`: a witness the hub submits its checkpoints to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessEndpoint {
    /// Submission prefix, e.g. `https://witness.audit.jining:9480` (`/add-checkpoint` is appended).
    pub url: String,
    /// The witness's verifier key (cosignature/v1, `<name>+<hex id>+<base64>`).
    pub vkey: String,
    /// PEM file with the CA that signs the witness's server certificate.
    pub ca: PathBuf,
    /// Per-request timeout.
    #[serde(default = "default_witness_timeout_ms")]
    pub timeout_ms: u64,
}

impl LogConfig {
    /// The checks on `[log]`'s witness keys; `has_outbound` says whether the hub has a client
    /// certificate to present.
    fn validate_witnesses(&self, has_outbound: bool) -> Result<(), (&'static str, String)> {
        let n = self.witness_endpoints.len();
        if n == 0 {
            return match self.witness_publish_quorum {
                Some(_) => Err((
                    "log.witness_publish_quorum",
                    "needs [[log.witness_endpoints]]".into(),
                )),
                None => Ok(()),
            };
        }
        if !has_outbound {
            return Err((
                "log.witness_endpoints",
                "the hub calls witnesses with departments.outbound_cert and outbound_key: set both"
                    .into(),
            ));
        }
        for (i, w) in self.witness_endpoints.iter().enumerate() {
            if !w.url.starts_with("https://") {
                return Err((
                    "log.witness_endpoints",
                    format!("[{i}].url: must be https://"),
                ));
            }
            match tlog::VerifierKey::parse(&w.vkey) {
                Ok(k) if k.kind() == tlog::note::KeyKind::CosignatureV1 => {}
                Ok(_) => {
                    return Err((
                        "log.witness_endpoints",
                        format!("[{i}].vkey: not a cosignature/v1 (0x04) witness key"),
                    ));
                }
                Err(e) => return Err(("log.witness_endpoints", format!("[{i}].vkey: {e}"))),
            }
            if !w.ca.is_file() {
                return Err((
                    "log.witness_endpoints",
                    format!("[{i}].ca: file not found: {}", w.ca.display()),
                ));
            }
            if w.timeout_ms == 0 {
                return Err((
                    "log.witness_endpoints",
                    format!("[{i}].timeout_ms: must be greater than 0"),
                ));
            }
        }
        if let Some(q) = self.witness_publish_quorum
            && !(1..=n).contains(&q)
        {
            return Err((
                "log.witness_publish_quorum",
                format!("must be between 1 and {n} (the number of witness endpoints)"),
            ));
        }
        Ok(())
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            origin: default_log_origin(),
            witnesses: Vec::new(),
            max_batch: default_log_max_batch(),
            replica_id: default_log_replica_id(),
            lease_ms: default_log_lease_ms(),
            sequencer_timeout_ms: default_log_sequencer_timeout_ms(),
            head_refresh_ms: default_log_head_refresh_ms(),
            startup_audit: crate::log::StartupAudit::default(),
            startup_audit_samples: default_log_startup_audit_samples(),
            witness_endpoints: Vec::new(),
            witness_publish_quorum: None,
            witness_retry_cap_ms: default_witness_retry_cap_ms(),
        }
    }
}

fn default_log_origin() -> String {
    "jishijiu.jining/access-log".into()
}
fn default_log_max_batch() -> usize {
    4096
}
/// The replica's name from the environment: `HUB_REPLICA_ID`, `POD_NAME` (Kubernetes, via the
/// downward API), `HOSTNAME`, then the kernel's host name; "primary" if none is set.
pub fn default_log_replica_id() -> String {
    ["HUB_REPLICA_ID", "POD_NAME", "HOSTNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .chain(std::fs::read_to_string("/proc/sys/kernel/hostname"))
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| "primary".into())
}
fn default_log_sequencer_timeout_ms() -> u64 {
    5_000
}
fn default_log_head_refresh_ms() -> u64 {
    1_000
}
fn default_log_lease_ms() -> u64 {
    30_000
}
fn default_log_startup_audit_samples() -> usize {
    256
}
fn default_witness_retry_cap_ms() -> u64 {
    60_000
}
fn default_witness_timeout_ms() -> u64 {
    10_000
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8443".parse().expect("literal")
}
fn default_admin_listen() -> SocketAddr {
    "127.0.0.1:9464".parse().expect("literal")
}
fn default_handshake_timeout_ms() -> u64 {
    10_000
}
fn default_max_connections() -> usize {
    4096
}
fn default_request_timeout_ms() -> u64 {
    60_000
}
fn default_max_body_bytes() -> usize {
    1 << 20
}
fn default_shutdown_grace_ms() -> u64 {
    20_000
}
fn default_max_connection_age_ms() -> u64 {
    15 * 60 * 1000
}
fn default_header_read_timeout_ms() -> u64 {
    10_000
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_max_connections_per_identity() -> usize {
    32
}
fn default_reload_poll_ms() -> u64 {
    5_000
}
fn default_trust_domain() -> String {
    "jishijiu.jining".into()
}
fn default_division_prefix() -> String {
    "3708".into()
}
fn default_db_max_connections() -> u32 {
    8
}
fn default_log_format() -> LogFormat {
    LogFormat::Json
}
fn default_log_filter() -> String {
    "info".into()
}
fn default_service_name() -> String {
    "jishijiu-hub".into()
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Read, parse, resolve relative paths and validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, &base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parse from a string; relative paths resolve against `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.tls.cert);
        fix(&mut self.tls.key);
        fix(&mut self.tls.client_ca);
        self.tls.crls.iter_mut().for_each(fix);
        fix(&mut self.keys.signing_key);
        fix(&mut self.keys.pseudonym_key);
        if let Some(p) = self.keys.data_key.as_mut() {
            fix(p);
        }
        self.keys.retired_data_keys.iter_mut().for_each(fix);
        fix(&mut self.policies.dir);
        self.departments.resolve_paths(base);
        self.log
            .witness_endpoints
            .iter_mut()
            .for_each(|w| fix(&mut w.ca));
        self.notifications.resolve_paths(base);
        // A relative SQLite path resolves against the config directory too.
        let url = self.database.url.expose_secret();
        if let Some(rest) = url.strip_prefix("sqlite://") {
            let (file, query) = rest
                .split_once('?')
                .map_or((rest, None), |(f, q)| (f, Some(q)));
            if !file.is_empty() && !file.starts_with('/') && file != ":memory:" {
                let abs = base.join(file);
                let new = match query {
                    Some(q) => format!("sqlite://{}?{q}", abs.display()),
                    None => format!("sqlite://{}", abs.display()),
                };
                self.database.url = SecretString::from(new);
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        for (key, path) in [
            ("tls.cert", &self.tls.cert),
            ("tls.key", &self.tls.key),
            ("tls.client_ca", &self.tls.client_ca),
            ("keys.signing_key", &self.keys.signing_key),
            ("keys.pseudonym_key", &self.keys.pseudonym_key),
        ] {
            if !path.is_file() {
                return invalid(key, format!("file not found: {}", path.display()));
            }
        }
        for path in self
            .keys
            .data_key
            .iter()
            .chain(&self.keys.retired_data_keys)
        {
            if !path.is_file() {
                return invalid(
                    "keys.data_key",
                    format!("file not found: {}", path.display()),
                );
            }
        }
        for crl in &self.tls.crls {
            if !crl.is_file() {
                return invalid("tls.crls", format!("file not found: {}", crl.display()));
            }
        }
        if !self.policies.dir.is_dir() {
            return invalid(
                "policies.dir",
                format!("directory not found: {}", self.policies.dir.display()),
            );
        }
        if let Err((key, message)) = self.rate_limits.validate() {
            return invalid(key, message);
        }
        // The department directory first (`policies/departments.toml`): it registers the
        // departments added as data, so `[departments.<code>]` may name them.
        if let Err(e) = policies::Departments::load_dir(&self.policies.dir) {
            return invalid("policies.dir", e.to_string());
        }
        if let Err(message) = self.departments.validate() {
            return invalid("departments", message);
        }
        if self.escalation.interval_secs == 0 {
            return invalid("escalation.interval_secs", "must be greater than 0".into());
        }
        if let Err((key, message)) = self.notifications.validate(
            self.departments.outbound_cert.is_some() && self.departments.outbound_key.is_some(),
        ) {
            return invalid(key, message);
        }
        if let Err((key, message)) = self.log.validate_witnesses(
            self.departments.outbound_cert.is_some() && self.departments.outbound_key.is_some(),
        ) {
            return invalid(key, message);
        }
        if let Err((key, message)) = self.events.validate() {
            return invalid(key, message);
        }
        if let Err((key, message)) = self.monitoring.validate() {
            return invalid(key, message);
        }
        if self.server.handshake_timeout_ms == 0 {
            return invalid(
                "server.handshake_timeout_ms",
                "must be greater than 0".into(),
            );
        }
        if self.server.max_connections == 0 {
            return invalid("server.max_connections", "must be greater than 0".into());
        }
        if self.server.header_read_timeout_ms == 0 {
            return invalid(
                "server.header_read_timeout_ms",
                "must be greater than 0".into(),
            );
        }
        if self.server.idle_timeout_ms == 0 {
            return invalid("server.idle_timeout_ms", "must be greater than 0".into());
        }
        if self.server.max_connections_per_identity == 0 {
            return invalid(
                "server.max_connections_per_identity",
                "must be greater than 0".into(),
            );
        }
        if self.server.request_timeout_ms == 0 {
            return invalid("server.request_timeout_ms", "must be greater than 0".into());
        }
        if self.server.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes", "must be at least 1024".into());
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be greater than 0".into());
        }
        let url = self.database.url.expose_secret();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            // Never echo the URL: it may carry a password.
            return invalid(
                "database.url",
                "must start with sqlite:// or postgres://".into(),
            );
        }
        let td = &self.identity.trust_domain;
        if td.is_empty() || td.contains('/') || td.contains(':') {
            return invalid(
                "identity.trust_domain",
                "must be a host-like name without '/' or ':'".into(),
            );
        }
        if self.identity.division_prefix.is_empty()
            || !self
                .identity
                .division_prefix
                .bytes()
                .all(|b| b.is_ascii_digit())
            || self.identity.division_prefix.len() > 6
        {
            return invalid("identity.division_prefix", "must be 1 to 6 digits".into());
        }
        if let Some(ep) = &self.telemetry.otlp_endpoint
            && !ep.starts_with("http://")
        {
            return invalid(
                "telemetry.otlp_endpoint",
                "must be an http:// URL of a local OpenTelemetry collector (it forwards over TLS)"
                    .into(),
            );
        }
        if self
            .telemetry
            .log_filter
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return invalid(
                "telemetry.log_filter",
                "is not a valid filter directive".into(),
            );
        }
        Ok(())
    }
}

impl ServerConfig {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
    pub fn max_connection_age(&self) -> Duration {
        Duration::from_millis(self.max_connection_age_ms)
    }
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

/// A ready-made config file for the demo and for tests, pointing at files under `dir`.
pub fn sample_toml(listen: SocketAddr, admin: SocketAddr, db_url: &str) -> String {
    format!(
        r#"# Jishijiu Hub configuration. Relative paths resolve against this file's directory.
[server]
listen = "{listen}"
handshake_timeout_ms = 10000
max_connections = 4096
header_read_timeout_ms = 10000
idle_timeout_ms = 60000
max_connections_per_identity = 32

[tls]
cert = "pki/server.pem"
key = "pki/server.key"
client_ca = "pki/ca.pem"
crls = ["pki/ca.crl"]
reload_poll_ms = 2000

[identity]
trust_domain = "jishijiu.jining"
division_prefix = "3708"

[database]
url = "{db_url}"

[admin]
listen = "{admin}"

[telemetry]
log_format = "json"
log_filter = "info"

[keys]
signing_key = "keys/hub-signing.pk8"
pseudonym_key = "keys/pseudonym.key"
data_key = "keys/data.key"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with_files() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "pki/server.pem",
            "pki/server.key",
            "pki/ca.pem",
            "pki/ca.crl",
            "keys/hub-signing.pk8",
            "keys/pseudonym.key",
            "keys/data.key",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"x").unwrap();
        }
        dir
    }

    fn check(edit: impl Fn(String) -> String, expected: Result<(), &str>) {
        let dir = dir_with_files();
        let text = edit(sample_toml(
            default_listen(),
            default_admin_listen(),
            "sqlite://hub.db",
        ));
        let got = Config::from_toml(&text, dir.path())
            .map(|_| ())
            .map_err(|e| e.to_string());
        match (got, expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(want)) => assert!(e.contains(want), "error `{e}` should mention `{want}`"),
            (got, want) => panic!("got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn validation_names_the_bad_key() {
        check(|t| t, Ok(()));
        check(
            |t| t.replace("keys/data.key", "keys/missing.key"),
            Err("keys.data_key"),
        );
        check(|t| t.replace("data_key = \"keys/data.key\"\n", ""), Ok(()));
        check(
            |t| t.replace("pki/ca.pem", "pki/missing.pem"),
            Err("tls.client_ca"),
        );
        check(
            |t| t.replace("handshake_timeout_ms = 10000", "handshake_timeout_ms = 0"),
            Err("server.handshake_timeout_ms"),
        );
        check(
            |t| t.replace("idle_timeout_ms = 60000", "idle_timeout_ms = 0"),
            Err("server.idle_timeout_ms"),
        );
        check(
            |t| {
                t.replace(
                    "max_connections_per_identity = 32",
                    "max_connections_per_identity = 0",
                )
            },
            Err("server.max_connections_per_identity"),
        );
        check(
            |t| t.replace("sqlite://hub.db", "mysql://secret@x/db"),
            Err("database.url"),
        );
        check(
            |t| t.replace("division_prefix = \"3708\"", "division_prefix = \"37x\""),
            Err("identity.division_prefix"),
        );
        check(
            |t| t.replace("[admin]", "[admin]\nbogus = 1"),
            Err("unknown field `bogus`"),
        );
        check(
            |t| t.replace("log_filter = \"info\"", "log_filter = \"info,[=\""),
            Err("telemetry.log_filter"),
        );
    }

    #[test]
    fn witness_endpoints_are_checked() {
        let wkey = tlog::cosig::CosignatureSigner::from_seed("w.example", [1; 32])
            .unwrap()
            .verifier_key()
            .to_string();
        let log_key = tlog::Signer::from_seed("log.example", [1; 32])
            .unwrap()
            .verifier_key()
            .to_string();
        let ep = |vkey: &str, url: &str| {
            format!(
                "\n[[log.witness_endpoints]]\nurl = \"{url}\"\nvkey = \"{vkey}\"\nca = \"pki/ca.pem\"\n"
            )
        };
        let out = "\n[departments]\noutbound_cert = \"pki/server.pem\"\noutbound_key = \"pki/server.key\"\n";
        let good = ep(&wkey, "https://w.example:9480");
        check(|t| format!("{t}{out}{good}"), Ok(()));
        check(|t| format!("{t}{good}"), Err("departments.outbound_cert"));
        check(
            |t| format!("{t}{out}{}", ep(&log_key, "https://w.example")),
            Err("not a cosignature/v1"),
        );
        check(
            |t| format!("{t}{out}{}", ep(&wkey, "http://w.example")),
            Err("must be https://"),
        );
        check(
            |t| format!("{t}{out}[log]\nwitness_publish_quorum = 2\n{good}"),
            Err("between 1 and 1"),
        );
        check(
            |t| format!("{t}[log]\nwitness_publish_quorum = 1\n"),
            Err("needs [[log.witness_endpoints]]"),
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let dir = dir_with_files();
        let text = sample_toml(
            default_listen(),
            default_admin_listen(),
            "postgres://hub:hunter2@db/hub",
        );
        let cfg = Config::from_toml(&text, dir.path()).unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let err = Config::from_toml(
            &text.replace("postgres://hub:hunter2@db/hub", "mysql://hub:hunter2@db"),
            dir.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_dir() {
        let dir = dir_with_files();
        let text = sample_toml(
            default_listen(),
            default_admin_listen(),
            "sqlite://hub.db?mode=rwc",
        );
        let cfg = Config::from_toml(&text, dir.path()).unwrap();
        assert_eq!(cfg.tls.client_ca, dir.path().join("pki/ca.pem"));
        assert_eq!(
            cfg.database.url.expose_secret(),
            &format!("sqlite://{}?mode=rwc", dir.path().join("hub.db").display())
        );
    }
}
