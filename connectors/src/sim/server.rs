//! 模拟部门: in-process simulated departments speaking protocol v1 over mTLS.
//!
//! A [`SimDepartment`] is the adapter's own server ([`crate::adapter::server`]) with a
//! [`PopulationSource`] in place of SQL, plus admin routes for the fault switch and the query log.
//! So the hub talks to a simulated department exactly as it talks to a real `connector`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use connectors::sim::{Population, PopulationConfig, SimDepartment, Fault, pki::SimPki};
//! use schemas::Department;
//! let population = Arc::new(Population::generate(PopulationConfig::new(42, 1_000)));
//! let pki = SimPki::generate()?;
//! let labor = SimDepartment::spawn(Department::Labor, population.clone(), pki.server_tls(Department::Labor)?, Fault::None).await?;
//! // labor.url() == "https://localhost:<port>", labor.public_key() is what the hub trusts
//! labor.set_fault(Fault::Hang);
//! # Ok(()) }
//! ```
//!
//! Admin routes (same mTLS listener, so only holders of a hub client certificate reach them):
//! `GET|PUT /sim/fault` (body: [`Fault`] JSON) and `GET /sim/queries` (count and records).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ring::signature::Ed25519KeyPair;
use schemas::{Department, DepartmentKey, FactKind, ResidentId, SubjectOutcome};
use serde_json::json;
use time::Date;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::faults::Fault;
use super::pki::SimPki;
use super::population::Population;
use crate::adapter::server::{self, QueryRecord, ServeOptions, Service};
use crate::adapter::source::{BoxFuture, FactSource, SourceError};
use crate::adapter::tls::ServerTls;

/// Facts from the simulated population, as one department sees them.
pub struct PopulationSource {
    population: Arc<Population>,
    department: Department,
}

impl PopulationSource {
    pub fn new(population: Arc<Population>, department: Department) -> Self {
        Self {
            population,
            department,
        }
    }

    /// The synchronous lookup (also used by tests computing expected answers).
    pub fn outcome(&self, subject: &ResidentId, kinds: &[FactKind], as_of: Date) -> SubjectOutcome {
        match self.population.find(subject) {
            Some(p) if p.known_to(self.department) => SubjectOutcome::Found {
                facts: kinds
                    .iter()
                    .map(|&k| super::facts::fact(p, k, as_of))
                    .collect(),
            },
            _ => SubjectOutcome::Unknown {
                reason: format!("{} has no record of this person", self.department),
            },
        }
    }
}

impl FactSource for PopulationSource {
    fn department(&self) -> Department {
        self.department
    }

    fn serves(&self, kind: FactKind) -> bool {
        kind.department() == self.department
    }

    fn lookup<'a>(
        &'a self,
        subject: &'a ResidentId,
        kinds: &'a [FactKind],
        as_of: Date,
    ) -> BoxFuture<'a, Result<SubjectOutcome, SourceError>> {
        Box::pin(async move { Ok(self.outcome(subject, kinds, as_of)) })
    }
}

/// Why a simulated department could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("bind 127.0.0.1:0: {0}")]
    Bind(std::io::Error),
    #[error("tls: {0}")]
    Tls(#[from] crate::adapter::tls::TlsError),
    #[error("pki: {0}")]
    Pki(#[from] super::pki::PkiError),
    #[error("signing key: {0}")]
    Key(#[from] crate::adapter::signing::KeyError),
}

/// Entry point: see [`SimDepartment::spawn`].
pub struct SimDepartment;

/// A running simulated department. Dropping it stops the server.
pub struct SimDepartmentHandle {
    department: Department,
    addr: SocketAddr,
    service: Arc<Service>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl SimDepartment {
    /// Start `department` on `127.0.0.1:<free port>` with a fresh Ed25519 signing key, serving
    /// protocol v1 over mTLS with `tls`, answering from `population`, exhibiting `fault`.
    pub async fn spawn(
        department: Department,
        population: Arc<Population>,
        tls: ServerTls,
        fault: Fault,
    ) -> Result<SimDepartmentHandle, SimError> {
        let der = crate::adapter::signing::generate_pkcs8()?;
        let key = crate::adapter::signing::key_from_pkcs8(&der, "generated")?;
        Self::spawn_with_key(department, population, tls, fault, key).await
    }

    /// As [`SimDepartment::spawn`], with a given signing key (e.g. a stable demo key).
    pub async fn spawn_with_key(
        department: Department,
        population: Arc<Population>,
        tls: ServerTls,
        fault: Fault,
        key: Ed25519KeyPair,
    ) -> Result<SimDepartmentHandle, SimError> {
        let config = tls.server_config()?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(SimError::Bind)?;
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let source = Arc::new(PopulationSource::new(population, department));
        let service = Arc::new(Service::new(source, key));
        service.faults.set(fault);
        let app = server::router(service.clone()).merge(admin_router(service.clone()));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server::serve(
            listener,
            config,
            app,
            ServeOptions::default(),
            shutdown.clone(),
        ));
        Ok(SimDepartmentHandle {
            department,
            addr,
            service,
            shutdown,
            task: Some(task),
        })
    }

    /// Start all seven departments with certificates from `pki`.
    pub async fn spawn_all(
        population: Arc<Population>,
        pki: &SimPki,
    ) -> Result<BTreeMap<Department, SimDepartmentHandle>, SimError> {
        let mut out = BTreeMap::new();
        for d in Department::ALL {
            let h = Self::spawn(d, population.clone(), pki.server_tls(d)?, Fault::None).await?;
            out.insert(d, h);
        }
        Ok(out)
    }
}

impl SimDepartmentHandle {
    pub fn department(&self) -> Department {
        self.department
    }

    /// The bound address (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure at the hub: `https://localhost:<port>` (the certificate also
    /// carries the IP SAN 127.0.0.1).
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The department's answer-signing public key.
    pub fn public_key(&self) -> DepartmentKey {
        self.service.public_key()
    }

    pub fn fault(&self) -> Fault {
        self.service.faults.get()
    }

    /// Switch the fault; applies to the next query.
    pub fn set_fault(&self, fault: Fault) {
        self.service.faults.set(fault);
    }

    /// How many query requests reached the department (including refused ones).
    pub fn query_count(&self) -> u64 {
        self.service.log.count()
    }

    /// The parsed queries received, oldest first (fact kinds, purpose, subject refs, outcome).
    pub fn queries(&self) -> Vec<QueryRecord> {
        self.service.log.records()
    }

    /// Stop the server and wait for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for SimDepartmentHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn admin_router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/sim/fault", get(get_fault).put(put_fault))
        .route("/sim/queries", get(get_queries))
        .with_state(service)
}

async fn get_fault(State(s): State<Arc<Service>>) -> Json<Fault> {
    Json(s.faults.get())
}

async fn put_fault(State(s): State<Arc<Service>>, Json(f): Json<Fault>) -> Json<Fault> {
    tracing::info!(department = %s.source.department(), fault = ?f, "fault switched");
    s.faults.set(f);
    Json(f)
}

async fn get_queries(State(s): State<Arc<Service>>) -> Json<serde_json::Value> {
    Json(json!({ "count": s.log.count(), "queries": s.log.records() }))
}
