//! Start-up wiring shared by `main` and the tests: `Application::build(config)` binds the listeners
//! (port 0 works), loads TLS material, keys and the store; `run_until_stopped(shutdown)` serves until
//! the shutdown future resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState, RouterOptions};
use crate::config::Config;
use crate::identity::IdentityRules;
use crate::keys::HubKeys;
use crate::server::{self, ServeOptions};
use crate::store;
use crate::tls::{TlsPaths, TlsState};

/// A hub ready to run.
pub struct Application {
    listener: TcpListener,
    admin_listener: TcpListener,
    state: AppState,
    router_opts: RouterOptions,
    serve_opts: ServeOptions,
    reload_poll: Option<Duration>,
    /// The escalation scan and the webhook sender (runs on the lease holder only).
    worker: crate::notify::worker::Worker,
    /// Asks the configured witnesses to cosign each new checkpoint (none configured: `None`).
    cosigner: Option<crate::log::witnessing::Cosigner>,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let rules = IdentityRules {
            trust_domain: config.identity.trust_domain.clone(),
            division_prefix: config.identity.division_prefix.clone(),
        };
        let tls = TlsState::load(
            TlsPaths {
                cert: config.tls.cert.clone(),
                key: config.tls.key.clone(),
                client_ca: config.tls.client_ca.clone(),
                crls: config.tls.crls.clone(),
            },
            rules,
        )
        .context("loading TLS material")?;
        if config.tls.crls.is_empty() {
            tracing::warn!("no CRLs configured: revoked client certificates cannot be refused");
        }
        let keys = Arc::new(
            HubKeys::load(&config.keys.signing_key, &config.keys.pseudonym_key)
                .and_then(|k| {
                    k.with_data_keys(
                        config.keys.data_key.as_deref(),
                        &config.keys.retired_data_keys,
                    )
                })
                .context("loading keys")?,
        );
        let authz = crate::authz::Authz::load(&config.policies.dir)
            .with_context(|| format!("loading policies from {}", config.policies.dir.display()))?;
        let store = store::connect(&config.database.url, config.database.max_connections)
            .await
            .context("opening the database")?;
        let limits = crate::ratelimit::RateLimits::for_db(&config.rate_limits, &store.db());
        let log = crate::log::AccessLog::start_from_config(&config, store.db())
            .await
            .context("opening the access log")?;
        let cosigner = crate::log::witnessing::Cosigner::from_config(&config, log.clone())
            .context("building the witness clients")?;
        let verify = crate::verify::VerifyService::build(&config.departments)
            .context("building the department connectors")?;
        let sender = crate::notify::deliver::Sender::build(
            &config.notifications,
            config
                .departments
                .outbound_cert
                .as_deref()
                .zip(config.departments.outbound_key.as_deref()),
            keys.clone(),
        )
        .context("building the notification sender")?;
        let worker = crate::notify::worker::Worker {
            db: store.db(),
            authz: authz.clone(),
            sender,
            holder: uuid::Uuid::new_v4().to_string(),
            scan_interval: config.escalation.interval(),
            lease_ttl: config.escalation.lease(),
            poll: Duration::from_millis(config.notifications.poll_ms),
        };
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        let admin_listener = TcpListener::bind(config.admin.listen)
            .await
            .with_context(|| format!("binding admin {}", config.admin.listen))?;
        Ok(Application {
            listener,
            admin_listener,
            state: AppState::new(api::Services {
                store,
                tls,
                keys,
                log,
                authz,
                limits,
                verify,
                progress: Arc::default(),
                warning: Arc::new(crate::warning::WarningSettings::from_config(&config)),
                started: Instant::now(),
            }),
            router_opts: RouterOptions {
                request_timeout: config.server.request_timeout(),
                max_body_bytes: config.server.max_body_bytes,
            },
            serve_opts: ServeOptions {
                handshake_timeout: config.server.handshake_timeout(),
                max_connections: config.server.max_connections,
                shutdown_grace: config.server.shutdown_grace(),
                max_connection_age: config.server.max_connection_age(),
                header_read_timeout: config.server.header_read_timeout(),
                idle_timeout: config.server.idle_timeout(),
                max_connections_per_identity: config.server.max_connections_per_identity,
            },
            reload_poll: (config.tls.reload_poll_ms > 0)
                .then(|| Duration::from_millis(config.tls.reload_poll_ms)),
            worker,
            cosigner,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn tls(&self) -> Arc<TlsState> {
        self.state.tls.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves; then drain and return.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let tls = self.state.tls.clone();
        let reloader = tokio::spawn(reload_loop(
            tls.clone(),
            self.state.authz.clone(),
            self.reload_poll,
        ));
        let cleanup = tokio::spawn(
            self.state
                .limits
                .clone()
                .cleanup_loop(self.state.store.db()),
        );
        let admin = tokio::spawn(serve_admin(self.admin_listener, self.state.clone()));
        let shared_budget =
            tokio::spawn(self.state.limits.clone().shared_loop(self.state.store.db()));
        let escalation_gauge = tokio::spawn(escalation_gauge_loop(self.state.store.db()));
        let seen_flusher = tokio::spawn(clients_seen_flush_loop(self.state.store.clone()));
        let holder = self.worker.holder.clone();
        let worker = tokio::spawn(self.worker.run());
        let cosigner = self.cosigner.map(|c| tokio::spawn(c.run()));
        let app = api::router(self.state.clone(), &self.router_opts);
        tracing::info!(addr = %self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "hub listening (mTLS)");
        server::run(
            self.listener,
            tls,
            self.state.store.clone(),
            app,
            self.serve_opts,
            shutdown,
        )
        .await;
        reloader.abort();
        cleanup.abort();
        shared_budget.abort();
        escalation_gauge.abort();
        seen_flusher.abort();
        if let Err(e) = self.state.store.flush_clients_seen().await {
            tracing::warn!(error = %e, "writing the last connection counts failed");
        }
        admin.abort();
        worker.abort();
        if let Some(c) = cosigner {
            c.abort();
        }
        let _ = worker.await;
        crate::notify::worker::Worker::release(&self.state.store.db(), &holder).await;
        tracing::info!("hub stopped");
    }
}

/// Reload TLS material on SIGHUP and when the files change (polling). A failed reload keeps the old
/// material and logs the file at fault.
async fn reload_loop(tls: Arc<TlsState>, authz: Arc<crate::authz::Authz>, poll: Option<Duration>) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut ticker = poll.map(tokio::time::interval);
    loop {
        let trigger = async {
            #[cfg(unix)]
            if let Some(h) = hup.as_mut() {
                let tick = async {
                    match ticker.as_mut() {
                        Some(t) => {
                            t.tick().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = h.recv() => return "sighup",
                    _ = tick => return "poll",
                }
            }
            match ticker.as_mut() {
                Some(t) => {
                    t.tick().await;
                    "poll"
                }
                None => std::future::pending().await,
            }
        };
        let source = trigger.await;
        match tls.reload(source == "sighup") {
            Ok(true) => {
                metrics::counter!("hub_tls_reloads_total", "result" => "ok").increment(1);
                tracing::info!(source, crls = tls.crls().len(), "TLS material reloaded");
            }
            Ok(false) => {}
            Err(e) => {
                metrics::counter!("hub_tls_reloads_total", "result" => "refused").increment(1);
                tracing::error!(source, error = %e, "TLS reload refused; previous material stays in force");
            }
        }
        match authz.reload(source == "sighup") {
            Ok(true) => {
                metrics::counter!("hub_policy_reloads_total", "result" => "ok").increment(1);
                tracing::info!(source, dir = %authz.dir().display(), "policies reloaded");
            }
            Ok(false) => {}
            Err(e) => {
                metrics::counter!("hub_policy_reloads_total", "result" => "refused").increment(1);
                tracing::error!(source, error = %e, "policy reload refused; previous policies stay in force");
            }
        }
    }
}

/// The admin listener: Prometheus metrics over plain HTTP (bind it to loopback).
async fn serve_admin(listener: TcpListener, state: AppState) {
    let handle = crate::telemetry::prometheus();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let state = state.clone();
            async move {
                scrape_gauges(&state).await;
                handle.render()
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "admin listener failed");
    }
}

/// Gauges read at scrape time, from memory only (documented in README.md, 指标 / Metrics):
/// `/metrics` is the liveness probe, so it never waits on the database.
/// - `hub_department_circuit_state{department}`: see [`crate::verify::metrics`];
/// - `hub_crl_next_update_timestamp_seconds{file}`: each loaded CRL's nextUpdate (Unix seconds;
///   absent for a CRL without one).
async fn scrape_gauges(state: &AppState) {
    crate::verify::metrics::refresh_circuit_gauges(&state.verify);
    for crl in state.tls.crls() {
        if let Some(next) = crl.next_update {
            let secs = next
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let file = crl
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            metrics::gauge!("hub_crl_next_update_timestamp_seconds", "file" => file).set(secs);
        }
    }
}

/// Writes the connections counted in memory (`store::seen`) every second, so that the table is
/// at most a second behind even when no new connection comes to trigger the write.
async fn clients_seen_flush_loop(store: std::sync::Arc<dyn crate::store::Store>) {
    let mut tick = tokio::time::interval(crate::store::SEEN_FLUSH_AFTER);
    loop {
        tick.tick().await;
        if let Err(e) = store.flush_clients_seen().await {
            tracing::warn!(error = %e, "writing connection counts failed; kept for the next try");
        }
    }
}

/// `hub_escalations_open`: open escalations (overdue, unresolved), counted in the database every
/// 15 s (so every replica reports the same figure) off the scrape path; left as it was when the
/// count fails or takes over 2 s.
async fn escalation_gauge_loop(db: crate::store::Db) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tick.tick().await;
        match tokio::time::timeout(
            Duration::from_secs(2),
            crate::cases::escalation::open_count(&db),
        )
        .await
        {
            Ok(Ok(n)) => metrics::gauge!("hub_escalations_open").set(n as f64),
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: counting open escalations failed"),
            Err(_) => tracing::warn!("metrics: counting open escalations timed out"),
        }
    }
}
