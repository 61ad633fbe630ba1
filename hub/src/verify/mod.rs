//! 核对: household economic-status verification on demand — authorization letters (核对授权书),
//! verification requests, planning from the purpose profiles, and the concurrent fan-out to the
//! departments over their connectors.
//!
//! Invariants:
//! - Resident IDs are used only to build the department queries; everything stored or logged refers
//!   to people by keyed pseudonyms ([`crate::keys::HubKeys::pseudonym`]).
//! - The policy decision (`request_verification`) is taken before any department is contacted; a
//!   refusal is one access-log entry and a 403 with the policy's reason.
//! - Departments are asked only for the fact kinds the purpose profile plans for them, all members in
//!   one query per department, all departments at once, each inside the urgency's deadline.
//! - Every department query is one access-log entry with its outcome; a department that does not
//!   answer is marked in the report, never left out.
//!
//! - `Idempotency-Key` (per principal): reserved before any department is asked; the same key again
//!   returns the stored report, a key reused for a different request is refused (422), and a key
//!   whose request produced no verification is released.
//!
//! - Reports are signed by the hub (Ed25519 over `jsj-hub/1 verification-report\n` + canonical
//!   JSON without the `signature` member); the key is published at `GET /v1/report-key`. Every
//!   view is signed once: a stored report keeps the signature of its first view when that view
//!   showed it whole, and a view that differs from what is stored is signed as it is shown.
//!
//! - The verification path is [`pipeline`]: gate → plan → fan-out → assemble → seal, one
//!   function per stage.
//!
//! - The report carries the access-log receipt (C2SP `.tlog-proof`) of the request entry and of
//!   each department query's entry, under the hub's signature.
//!
//! - A verification runs in its own task: with `wait_ms` the caller gets 202 and the id when the
//!   wait runs out, the verification completes and is stored, and `GET /v1/verifications/{id}`
//!   answers 202 while it runs (tracked per process).
//!   With `Prefer: respond-async` the answer is 202 at once (`{id, status, location, progress}`);
//!   the check runs in the background and [`progress`] shows each department's state while it
//!   does (`GET /v1/verifications/{id}/progress`, the requester only), and its error if it ends
//!   without a report.
//!
//! - 一次采集 (once-only, [`reuse`]): under a letter that covers the verification, a department whose
//!   answer to an earlier verification of the same household is still inside every asked kind's
//!   validity window is not asked again; its part of the report is marked `reused` with the source
//!   verification and the time the department answered, and the reuse is an `evidence_reused`
//!   access-log entry. `force_fresh` asks every department.
//!
//! - 核算 ([`aggregate`]): income per capita by the purpose profile's income rule, assets and special
//!   situations, compared with the local standard in force for the household's county and with the
//!   declaration; indications and reasons, never a decision. A department that did not answer leaves
//!   the figures that need it uncomputed, with the reason.
//!
//! - 补交授权书: an emergency or urgent check without a letter stores a follow-up due in 5 working
//!   days on the official calendar (recomputed on every view, `provisional` while its year has no
//!   calendar file); views
//!   show it as pending, overdue, recorded or recorded late; `POST /v1/verifications/{id}/letter`
//!   attaches a covering letter (requester only, logged), `GET /v1/follow-ups` lists the caller's.

pub mod aggregate;
pub mod api;
pub mod config;
pub mod metrics;
mod pipeline;
pub mod print;
pub mod progress;
pub mod registration;
pub mod report;
pub mod reuse;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use connectors::{Connector, RemoteConfig, RemoteConnector};
use schemas::protocol::DepartmentKey;
use schemas::{Department, Urgency};

use config::DepartmentsConfig;

/// The department connectors and the verification settings.
pub struct VerifyService {
    connectors: BTreeMap<Department, Arc<dyn Connector>>,
    config: DepartmentsConfig,
    /// Verifications of this process still running (for 202 answers; per process), with what a
    /// poll must be decided and logged on: who asked, for what, about whom.
    running: Mutex<HashMap<String, Running>>,
}

/// A verification still running: enough to decide (Cedar `poll_verification`, the requester's
/// full identity URI) and log a poll without its report. No resident ID, only pseudonyms.
#[derive(Debug, Clone)]
pub struct Running {
    /// The full identity URI of the requester.
    pub requester: String,
    pub purpose: schemas::Purpose,
    pub case_ref: String,
    /// Subject pseudonyms of the household's members.
    pub subjects: Vec<String>,
}

impl std::fmt::Debug for VerifyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyService")
            .field("departments", &self.connectors.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl VerifyService {
    /// Build one mTLS connector per configured department.
    pub fn build(config: &DepartmentsConfig) -> anyhow::Result<Arc<VerifyService>> {
        let mut connectors: BTreeMap<Department, Arc<dyn Connector>> = BTreeMap::new();
        if !config.endpoints.is_empty() {
            let read = |key: &str, p: &Option<std::path::PathBuf>| -> anyhow::Result<Vec<u8>> {
                let p = p
                    .as_ref()
                    .with_context(|| format!("departments.{key}: required"))?;
                std::fs::read(p)
                    .with_context(|| format!("departments.{key}: cannot read {}", p.display()))
            };
            let cert = read("outbound_cert", &config.outbound_cert)?;
            let key = read("outbound_key", &config.outbound_key)?;
            for (code, e) in &config.endpoints {
                let department = Department::from_code(code)
                    .with_context(|| format!("departments.{code}: not a department code"))?;
                let ca = std::fs::read(&e.ca).with_context(|| {
                    format!("departments.{code}.ca: cannot read {}", e.ca.display())
                })?;
                let tls = connectors::tls::client_config_from_pem(&ca, &cert, &key)
                    .with_context(|| format!("departments.{code}: TLS client configuration"))?;
                let pk = config::parse_key(&e.public_key).with_context(|| {
                    format!("departments.{code}.public_key: must be 64 hex digits")
                })?;
                let mut rc =
                    RemoteConfig::new(department, e.url.clone(), vec![DepartmentKey::new(pk)]);
                rc.timeout = Duration::from_millis(e.timeout_ms);
                let connector = RemoteConnector::new(rc, tls)
                    .with_context(|| format!("departments.{code}: connector"))?;
                connectors.insert(department, Arc::new(connector));
            }
        }
        Ok(Self::with_connectors(connectors, config.clone()))
    }

    /// A service over given connectors (tests, benchmarks).
    pub fn with_connectors(
        connectors: BTreeMap<Department, Arc<dyn Connector>>,
        config: DepartmentsConfig,
    ) -> Arc<VerifyService> {
        Arc::new(VerifyService {
            connectors,
            config,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// The connector of a department, if configured.
    pub fn connector(&self, department: Department) -> Option<&Arc<dyn Connector>> {
        self.connectors.get(&department)
    }

    /// The answer- and event-signing keys configured for a department code (`[departments.<code>]`);
    /// none for a department that is not configured. Looked up by code string, so a department
    /// added as data needs no code change here.
    pub fn department_keys(&self, code: &str) -> Vec<DepartmentKey> {
        self.config
            .endpoints
            .get(code)
            .and_then(|e| config::parse_key(&e.public_key))
            .map(|pk| vec![DepartmentKey::new(pk)])
            .unwrap_or_default()
    }

    /// The deadline of a verification of this urgency.
    pub fn deadline(&self, urgency: Urgency) -> Duration {
        self.config.deadline(urgency)
    }

    /// Note a verification as running.
    pub fn started(&self, id: &str, running: Running) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned(), running);
    }

    /// Note a verification as finished (stored, refused or failed).
    pub fn finished(&self, id: &str) {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Is this verification still running in this process?
    pub fn is_running(&self, id: &str) -> bool {
        self.running(id).is_some()
    }

    /// The verification, while it runs in this process.
    pub fn running(&self, id: &str) -> Option<Running> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}
