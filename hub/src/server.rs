//! The mTLS accept loop: TCP accept → TLS handshake (with a deadline) → identity → HTTP (h1/h2).
//!
//! Why our own loop and not `axum::serve`: a TLS handshake done inside `accept` would let one slow
//! client stall every new connection. Here the loop only accepts and spawns; each handshake runs in
//! its own task under `handshake_timeout`, so 200 stalled handshakes cost 200 idle tasks, nothing more.
//!
//! After the handshake (invariants; e2e tests in `tests/tests/e2e/connections.rs`):
//! - **Protocol by ALPN.** `h2` is served as HTTP/2 only, `http/1.1` as HTTP/1 only; without ALPN
//!   the protocol is sniffed from the first bytes.
//! - **Header-read timeout.** HTTP/1: hyper's `header_read_timeout` (with a `TokioTimer`) closes a
//!   connection whose request head is not complete `header_read_timeout` after the connection, or
//!   the previous response, became ready for it — so on HTTP/1 a keep-alive connection waits at most
//!   `header_read_timeout` for its next request. Both protocols: a connection must start its first
//!   request within `header_read_timeout` of the handshake (the first-request deadline, which also
//!   covers an HTTP/2 client that never sends a request). HTTP/2 keep-alive pings every
//!   `header_read_timeout` drop a peer that no longer answers.
//! - **Idle timeout.** A connection with no request in flight (a request is in flight from the
//!   moment hyper hands it to the service until its response body is finished or dropped) for
//!   `idle_timeout` is closed gracefully (HTTP/1 close, HTTP/2 GOAWAY); if it still has not closed
//!   `header_read_timeout` later and has no request in flight, it is dropped.
//!   Test `connections::idle_authenticated_connections_are_closed`.
//! - **Per-identity cap.** At most `max_connections_per_identity` live connections per verified
//!   identity URI, so one certificate cannot hold all of `max_connections`. A connection over the
//!   cap is served one answer: every request on it gets 429 `too_many_connections` with
//!   `Retry-After` (and `Connection: close` on HTTP/1), then the connection is closed (HTTP/1: no
//!   keep-alive; HTTP/2: GOAWAY after the first request). Test
//!   `connections::the_per_identity_cap_refuses_one_identity_not_another`.
//! - **429 ends an HTTP/1 connection.** Every 429 on HTTP/1 carries `Connection: close` and hyper
//!   closes the connection after it (a rate-limited request's unread body would otherwise make
//!   hyper drop the connection without saying so). Test `connections::a_429_closes_the_connection_and_says_so`.
//!
//! Shutdown: when the shutdown future resolves the loop stops accepting, every live connection is
//! asked to finish gracefully (HTTP/2 GOAWAY, HTTP/1 close after the current response), handshakes in
//! progress are dropped, and [`run`] returns once all connections are gone or the grace period ends.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use http::{HeaderValue, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
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
    /// HTTP/1 request heads must be complete this long after the connection is ready for them; every
    /// connection must start its first request this long after the handshake.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Live connections of one identity (URI) at most; more get 429 `too_many_connections`.
    pub max_connections_per_identity: usize,
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
    let per_identity = Arc::new(PerIdentity::default());
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
        let per_identity = per_identity.clone();
        tracker.spawn(async move {
            handle_connection(tcp, peer, tls, store, app, &opts, &per_identity, stop).await;
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

/// Longest a refused client's connection is kept open for its alert to arrive.
const ALERT_LINGER: Duration = Duration::from_secs(1);

/// Close a refused connection so the client reads the TLS alert rustls has already written
/// (`unknown_ca`, `certificate_revoked`, …). Dropping the socket at once would reset it when the
/// client's next flight (a TLS 1.3 client may already have sent its request) is still unread, and a
/// reset discards the alert before the client reads it (curl then says "getpeername() failed"):
/// so send FIN, and read and discard what the client still sends until it closes, at most
/// [`ALERT_LINGER`] and 64 KiB.
async fn close_after_alert(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if tcp.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        while total < 64 * 1024 {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(ALERT_LINGER, drain).await;
}

#[allow(clippy::too_many_arguments)]
async fn handle_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Arc<TlsState>,
    store: Arc<dyn Store>,
    app: Router,
    opts: &ServeOptions,
    per_identity: &Arc<PerIdentity>,
    stop: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
    let handshake =
        tokio::time::timeout(opts.handshake_timeout, acceptor.accept(tcp).into_fallible());
    let stream = tokio::select! {
        _ = stop.cancelled() => return,
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err((e, tcp))) => {
                let reason = refusal_reason(&e);
                metrics::counter!("hub_tls_handshake_refused_total", "reason" => reason).increment(1);
                tracing::warn!(peer = %peer, reason, detail = %e, "tls handshake refused");
                close_after_alert(tcp).await;
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

    // Over the per-identity cap the connection is still served, but only with 429s, and closed.
    let slot = per_identity.try_acquire(&identity.uri, opts.max_connections_per_identity);
    let over_cap = slot.is_none();
    if over_cap {
        metrics::counter!("hub_connections_refused_total", "reason" => "too_many_connections")
            .increment(1);
        tracing::warn!(peer = %peer, principal = %identity.principal, uri = %identity.uri, limit = opts.max_connections_per_identity, reason = "too_many_connections", "connection over the per-identity cap; answering 429 and closing");
    }

    let alpn = {
        let (_, conn) = stream.get_ref();
        conn.alpn_protocol().map(<[u8]>::to_vec)
    };
    let activity = Arc::new(Activity::new());
    let caller = Caller(Arc::new(identity));
    let svc = {
        let activity = activity.clone();
        tower::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let in_flight = activity.begin();
            let http1 = req.version() < http::Version::HTTP_2;
            req.extensions_mut().insert(caller.clone());
            req.extensions_mut().insert(PeerAddr(peer));
            let app = app.clone();
            async move {
                let mut response = if over_cap {
                    crate::ratelimit::too_many(
                        "too_many_connections",
                        "此身份的连接数已达上限，请复用已有连接 / too many connections for this identity; reuse an open connection".into(),
                        Duration::from_secs(1),
                    )
                } else {
                    app.oneshot(req).await?
                };
                if http1 && response.status() == StatusCode::TOO_MANY_REQUESTS {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                // The request stays in flight until hyper is done with the response body.
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    axum::body::Body::new(InFlightBody {
                        inner: body,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    };
    let svc = TowerToHyperService::new(svc);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder = match alpn.as_deref() {
        Some(b"h2") => builder.http2_only(),
        Some(b"http/1.1") => builder.http1_only(),
        _ => builder,
    };
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .keep_alive(!over_cap);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(opts.header_read_timeout)
        .keep_alive_timeout(opts.header_read_timeout);
    // Not `serve_connection_with_upgrades`: it ignores `http1_only`/`http2_only`, and the API has no upgrades.
    let conn = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    let age = tokio::time::sleep(opts.max_connection_age);
    tokio::pin!(age);
    // Resolves once the connection has had no request in flight for too long.
    let idle = activity.clone();
    let idle = idle.expired(opts.header_read_timeout, opts.idle_timeout);
    tokio::pin!(idle);
    // After an idle close: the connection gets `header_read_timeout` to finish closing.
    let linger = tokio::time::sleep(opts.max_connection_age);
    tokio::pin!(linger);
    let mut closing = false;
    let mut closed_idle = false;
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
            _ = &mut idle, if !closing => {
                closing = true;
                closed_idle = true;
                metrics::counter!("hub_connections_closed_total", "reason" => "idle").increment(1);
                tracing::debug!(peer = %peer, "closing an idle connection");
                conn.as_mut().graceful_shutdown();
                linger.as_mut().reset(Instant::now() + opts.header_read_timeout);
            }
            _ = activity.first_request(), if over_cap && !closing => {
                // The one answer is under way; no further requests on this connection.
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut linger, if closed_idle => {
                if activity.in_flight() == 0 {
                    tracing::debug!(peer = %peer, "dropping an idle connection that did not close");
                    break;
                }
                // A request slipped in as the connection was closing; let it finish.
                linger.as_mut().reset(Instant::now() + opts.header_read_timeout);
            }
        }
    }
    drop(slot);
}

// === impl PerIdentity ===

/// Live connections per verified identity URI.
#[derive(Debug, Default)]
struct PerIdentity {
    counts: Mutex<HashMap<String, usize>>,
}

/// One live connection counted against its identity; uncounted on drop.
struct IdentitySlot {
    owner: Arc<PerIdentity>,
    uri: String,
}

impl PerIdentity {
    /// Count a connection of `uri`, or `None` when it already has `cap` live connections.
    fn try_acquire(self: &Arc<Self>, uri: &str, cap: usize) -> Option<IdentitySlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(uri.to_owned()).or_default();
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(IdentitySlot {
            owner: self.clone(),
            uri: uri.to_owned(),
        })
    }
}

impl Drop for IdentitySlot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.uri) {
            *n -= 1;
            if *n == 0 {
                // The map holds identities with live connections only.
                counts.remove(&self.uri);
            }
        }
    }
}

// === impl Activity ===

/// Requests in flight on one connection and since when it has had none, for the idle timeout.
/// A `watch` channel, so that every watcher (idle timeout, first request) sees every change.
struct Activity {
    state: watch::Sender<ActivityState>,
}

#[derive(Debug, Clone, Copy)]
struct ActivityState {
    in_flight: usize,
    /// When `in_flight` last dropped to 0 (or the handshake finished).
    idle_since: Instant,
    /// Whether any request has started on this connection.
    served: bool,
}

impl ActivityState {
    /// When the connection will have been idle too long; `None` while a request is in flight.
    fn deadline(&self, first_request: Duration, idle: Duration) -> Option<Instant> {
        (self.in_flight == 0)
            .then(|| self.idle_since + if self.served { idle } else { first_request })
    }
}

/// One request in flight; ends on drop.
struct InFlight(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            state: watch::Sender::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                served: false,
            }),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.state.send_modify(|s| {
            s.in_flight += 1;
            s.served = true;
        });
        InFlight(self.clone())
    }

    fn in_flight(&self) -> usize {
        self.state.borrow().in_flight
    }

    /// Resolves once the first request has started.
    async fn first_request(&self) {
        let _ = self.state.subscribe().wait_for(|s| s.served).await;
    }

    /// Resolves once no request has been in flight for `first_request` (before any request) or
    /// `idle` (after one).
    async fn expired(self: Arc<Self>, first_request: Duration, idle: Duration) {
        let mut rx = self.state.subscribe();
        loop {
            let deadline = rx.borrow_and_update().deadline(first_request, idle);
            match deadline {
                None => {
                    let _ = rx.changed().await;
                }
                Some(deadline) => tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {
                        if !rx.has_changed().unwrap_or(false) {
                            return;
                        }
                    }
                    _ = rx.changed() => {}
                },
            }
        }
    }
}

/// A response body that keeps its request in flight until hyper has sent or dropped it.
/// (Not `BodyExt::map_frame`: that hides the size hint, and responses would lose `content-length`.)
struct InFlightBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for InFlightBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.state.send_modify(|s| {
            s.in_flight -= 1;
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_identity_count_caps_and_forgets() {
        let counts = Arc::new(PerIdentity::default());
        let a = "spiffe://jishijiu.jining/caseworker/mz-370811002/370811002/cw-1";
        let b = "spiffe://jishijiu.jining/caseworker/mz-370811005/370811005/cw-1";
        let first = counts.try_acquire(a, 2).expect("first");
        let second = counts.try_acquire(a, 2).expect("second");
        assert!(counts.try_acquire(a, 2).is_none(), "third of the same URI");
        // Keyed by the whole URI: the same principal id elsewhere is another identity.
        let other = counts.try_acquire(b, 2).expect("another URI");
        drop(first);
        let again = counts.try_acquire(a, 2).expect("a freed slot is usable");
        drop((second, again, other));
        // Identities without live connections are not kept.
        assert!(counts.counts.lock().unwrap().is_empty());
    }
}
