//! The mTLS accept loop: TCP accept → TLS handshake (with a deadline) → identity → HTTP (h1/h2).
//!
//! Why our own loop and not `axum::serve`: a TLS handshake done inside `accept` would let one slow
//! client stall every new connection. Here the loop only accepts and spawns; each handshake runs in
//! its own task under `handshake_timeout`, so 200 stalled handshakes cost 200 idle tasks, nothing more.
//!
//! Shutdown: when the shutdown future resolves the loop stops accepting, every live connection is
//! asked to finish gracefully (HTTP/2 GOAWAY, HTTP/1 close after the current response), handshakes in
//! progress are dropped, and [`run`] returns once all connections are gone or the grace period ends.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::identity::{Caller, identity_from_der};
use crate::store::Store;
use crate::tls::{TlsState, refusal_reason};

/// Knobs of the accept loop.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Handshakes that take longer are dropped.
    pub handshake_timeout: Duration,
    /// Live connections (handshaking or established) at most; beyond it `accept` waits.
    pub max_connections: usize,
    /// Grace period for in-flight requests on shutdown.
    pub shutdown_grace: Duration,
    /// Established connections are gracefully closed after this age, so that certificate revocation
    /// takes effect on long-lived clients too.
    pub max_connection_age: Duration,
}

/// Peer address of a connection, inserted as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Serve `app` on `listener` until `shutdown` resolves, then drain.
pub async fn run(
    listener: TcpListener,
    tls: Arc<TlsState>,
    store: Arc<dyn Store>,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    // Why a semaphore: it bounds memory and file descriptors under a connection flood; a permit is
    // held by each connection task for its whole life, including the handshake.
    let permits = Arc::new(Semaphore::new(opts.max_connections));
    // Why a token and not a broadcast: every connection task selects on it, and tasks that start
    // after shutdown began observe it as already cancelled.
    let stop = CancellationToken::new();
    // Why a tracker: run() must not return while a connection task still holds a request.
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let store = store.clone();
        let app = app.clone();
        let stop = stop.clone();
        let opts = opts.clone();
        tracker.spawn(async move {
            handle_connection(tcp, peer, tls, store, app, &opts, stop).await;
            drop(permit);
        });
    }

    tracing::info!(
        connections = tracker.len(),
        "shutting down: draining connections"
    );
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(opts.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = tracker.len(),
            "grace period over; dropping remaining connections"
        );
    }
}

async fn handle_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Arc<TlsState>,
    store: Arc<dyn Store>,
    app: Router,
    opts: &ServeOptions,
    stop: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let handshake = tokio::time::timeout(opts.handshake_timeout, acceptor.accept(tcp));
    let stream = tokio::select! {
        _ = stop.cancelled() => return,
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                let reason = refusal_reason(&e);
                metrics::counter!("hub_tls_handshake_refused_total", "reason" => reason).increment(1);
                tracing::warn!(peer = %peer, reason, detail = %e, "tls handshake refused");
                return;
            }
            Err(_) => {
                metrics::counter!("hub_tls_handshake_refused_total", "reason" => "handshake_timeout").increment(1);
                tracing::warn!(peer = %peer, reason = "handshake_timeout", "tls handshake refused");
                return;
            }
        },
    };

    // The verifier already checked that the leaf names a valid identity; parse it for the handlers.
    let identity = {
        let (_, conn) = stream.get_ref();
        let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else {
            tracing::error!(peer = %peer, "handshake finished without a client certificate");
            return;
        };
        match identity_from_der(leaf.as_ref(), tls.rules()) {
            Ok(identity) => identity,
            Err(e) => {
                tracing::warn!(peer = %peer, reason = e.code(), "tls handshake refused");
                return;
            }
        }
    };
    metrics::counter!("hub_connections_total", "role" => identity.role.code()).increment(1);
    tracing::debug!(peer = %peer, principal = %identity.principal, role = %identity.role, serial = %identity.serial, "connection established");
    if let Err(e) = store.record_client_seen(&identity).await {
        tracing::warn!(error = %e, "could not record client connection");
    }

    let caller = Caller(identity);
    let svc = app.map_request(move |mut req: http::Request<_>| {
        req.extensions_mut().insert(caller.clone());
        req.extensions_mut().insert(PeerAddr(peer));
        req
    });
    let svc = TowerToHyperService::new(svc);
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let age = tokio::time::sleep(opts.max_connection_age);
    tokio::pin!(age);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = stop.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut age, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
