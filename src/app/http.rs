//! The HTTP server loop: accepts connections and serves the router on each,
//! with the deadlines `axum::serve` does not set.
//!
//! `axum::serve` gives hyper no timer, so hyper's header read timeout never
//! runs: an idle connection, or one that sent half a request, was held
//! forever, and at the file-descriptor limit health checks and handshakes
//! timed out for everyone; on shutdown such a connection kept the process
//! alive until SIGKILL. Here:
//!
//! - a connection that has not sent a whole request head within
//!   `--header-timeout` (idle keep-alive included) is closed;
//! - a request whose answer is not ready within `--request-timeout` (a body
//!   sent slowly or half-way) is answered 408 and its connection closed;
//!   Socket.IO long-polling answers every ping interval (25 s), well inside;
//! - on shutdown, connections get [`DRAIN_TIMEOUT`] to finish the request
//!   they are in (writes in flight are answered), then are dropped.
//!
//! Upgraded WebSocket connections leave this loop once upgraded; the
//! caller closes them with the Socket.IO handle.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long a connection may take to send a request head (or stay idle
/// between requests), and one request to be answered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    pub header_read: Duration,
    pub request: Duration,
}

/// How long connections may finish their requests once shutdown starts.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, runs `closing` (which closes the Socket.IO sockets), lets
/// open connections finish within [`DRAIN_TIMEOUT`] and drops the rest.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    deadlines: Deadlines,
    shutdown: impl Future<Output = ()>,
    closing: impl Future<Output = ()>,
) {
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(connection(tcp, peer, router.clone(), deadlines, stopping.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, most often: wait instead of spinning.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    closing.await;
    let _receivers_may_be_gone = stop.send(true);
    let open = connections.len();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open,
            left = connections.len(),
            "connections still open after the drain; dropping them"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Serves one TCP connection, with the peer's address in every request
/// (`ConnectInfo<SocketAddr>`).
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    deadlines: Deadlines,
    mut stopping: watch::Receiver<bool>,
) {
    // Small frames must not wait for Nagle's algorithm (about 40 ms each).
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::warn!(error = %e, "could not set TCP_NODELAY");
    }
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let answer = router.oneshot(request.map(Body::new));
            match tokio::time::timeout(deadlines.request, answer).await {
                Ok(response) => response,
                Err(_) => {
                    tracing::warn!(peer = %peer, code = "request_timeout", reason = "no whole request within the deadline", "request refused");
                    Ok::<_, Infallible>(timed_out())
                }
            }
        }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.header_read)
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(served);
    let outcome = tokio::select! {
        outcome = served.as_mut() => outcome,
        () = stopped(&mut stopping) => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = outcome {
        tracing::debug!(peer = %peer, error = %e, "connection closed");
    }
}

/// Resolves once shutdown starts (or the loop is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await.
    let _stop_or_gone = stopping.wait_for(|stop| *stop).await.map(|_| ());
}

fn timed_out() -> Response<Body> {
    let mut response = Response::new(Body::from(
        "{\"ok\":false,\"error\":{\"code\":\"request_timeout\",\"message\":\"the request did not arrive in time\"}}",
    ));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}
