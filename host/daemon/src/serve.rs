//! Connections: the accept loop, with the limits a daemon facing untrusted
//! clients needs and `axum::serve` does not set.
//!
//! - at most `max_connections` open at once: the next waits in the
//!   listener's backlog until one closes;
//! - a request's headers must arrive within `header_timeout` (a client that
//!   trickles them, slowloris-style, is disconnected);
//! - replies are sent at once (`TCP_NODELAY`), not held for coalescing;
//! - on shutdown, no new connections; open ones finish their requests
//!   (event streams end with the daemon's shutdown signal).
//!
//! Everything else (routes, auth, limits per user) is the router's.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Limits on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
}

/// Serve `app` on `listener` until `shutdown`, then wait for open
/// connections to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => tokio::select! {
                    _ = &mut shutdown => break,
                    accepted = listener.accept() => accepted.map(|a| (a, permit)),
                },
                Err(_) => break,
            },
        };
        let ((stream, peer), permit) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, a connection reset before accept:
                // wait a little rather than spin.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Events and answers are small writes: without this, Nagle's
        // algorithm holds each behind the client's delayed ACK (up to 40 ms),
        // which made a one-node run take ~47 ms end to end.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.map(Body::new)
            },
        ));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
