//! What an operator reaches beside the pages: health (`GET /api/health`,
//! `/api/health/live`, `/api/health/ready`), Prometheus metrics
//! (`GET /metrics`) and CORS for the origins given with `--cors-origin`.
//!
//! Health is honest about writes: a hub whose disk turned read-only or
//! full still answers reads, so `ready` also sends a write that changes
//! nothing through the store's write path, and in a cluster asks Redis
//! whether the adapter's connection holds its subscriptions.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::cluster::PubSubDriver;
use crate::config::ConfigError;
use crate::domain::{OrderId, VendorId};
use crate::protocol::{error_envelope, ns};
use crate::state::Hub;
use crate::web::api::{Peer, authenticate_admin};

/// How long each health check may take before it counts as failed.
const CHECK_WITHIN: Duration = Duration::from_secs(2);

/// What the operator routes share.
#[derive(Debug)]
pub(super) struct OperateState<A: Adapter> {
    pub hub: Hub,
    pub io: SocketIo<A>,
    /// The cluster adapter's pub/sub driver, to ask whether it is subscribed.
    pub subscriptions: Option<PubSubDriver>,
    pub metrics_public: bool,
}

impl<A: Adapter> Clone for OperateState<A> {
    fn clone(&self) -> Self {
        Self {
            hub: self.hub.clone(),
            io: self.io.clone(),
            subscriptions: self.subscriptions.clone(),
            metrics_public: self.metrics_public,
        }
    }
}

pub(super) fn router<A: Adapter>(state: OperateState<A>) -> Router {
    Router::new()
        .route("/api/health", get(ready::<A>))
        .route("/api/health/ready", get(ready::<A>))
        .route("/api/health/live", get(live::<A>))
        .route("/metrics", get(metrics::<A>))
        .with_state(state)
}

/// The checks behind `ready`; `adapter` only in a cluster.
#[derive(Debug, Serialize)]
struct Checks {
    read: bool,
    write: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    adapter: Option<bool>,
}

/// `/api/health` and `/api/health/ready` (the same answer).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    ok: bool,
    store: &'static str,
    hub: String,
    version: &'static str,
    uptime_seconds: u64,
    checks: Checks,
}

/// Waits at most [`CHECK_WITHIN`] for one check; logs why it failed.
async fn check<E: std::fmt::Display>(
    name: &'static str,
    work: impl Future<Output = Result<bool, E>>,
) -> bool {
    match tokio::time::timeout(CHECK_WITHIN, work).await {
        Ok(Ok(true)) => true,
        Ok(Ok(false)) => {
            tracing::warn!(check = name, "health check failed");
            false
        }
        Ok(Err(e)) => {
            tracing::warn!(check = name, error = %e, "health check failed");
            false
        }
        Err(_) => {
            tracing::warn!(check = name, within = ?CHECK_WITHIN, "health check did not answer in time");
            false
        }
    }
}

/// A read that finds nothing: an order nobody can create (a vendor id no
/// credentials file may hold is not needed; the order id is simply unused).
fn probe() -> (VendorId, OrderId) {
    match (
        VendorId::parse("parcel-hub-health"),
        OrderId::parse("parcel-hub-health"),
    ) {
        (Ok(vendor), Ok(order)) => (vendor, order),
        _ => unreachable!("the probe ids are valid identities"),
    }
}

async fn ready<A: Adapter>(State(state): State<OperateState<A>>) -> Response {
    let hub = &state.hub;
    let (vendor, order) = probe();
    let read = check("read", async {
        hub.store.order(&vendor, &order).await.map(|_| true)
    });
    let write = check("write", async {
        hub.store.check_write().await.map(|()| true)
    });
    let adapter = async {
        match &state.subscriptions {
            None => None,
            Some(driver) => Some(check("adapter", driver.subscribed()).await),
        }
    };
    let (read, write, adapter) = tokio::join!(read, write, adapter);
    let ok = read && write && adapter.unwrap_or(true);
    let body = Health {
        ok,
        store: hub.store.kind(),
        hub: hub.hub_id().to_owned(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: hub.started.elapsed().as_secs(),
        checks: Checks {
            read,
            write,
            adapter,
        },
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `/api/health/live`: the process answers HTTP; nothing else is asked.
async fn live<A: Adapter>(State(state): State<OperateState<A>>) -> Response {
    Json(serde_json::json!({
        "ok": true,
        "hub": state.hub.hub_id(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": state.hub.started.elapsed().as_secs(),
    }))
    .into_response()
}

/// `GET /metrics`: the Prometheus text format; the admin token as Bearer
/// unless `--metrics-public`.
async fn metrics<A: Adapter>(
    State(state): State<OperateState<A>>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    if !state.metrics_public
        && let Err(refused) = authenticate_admin(&state.hub, &peer, &headers)
    {
        return refused.into_response();
    }
    let metrics = &state.hub.metrics;
    for namespace in ns::ALL.iter().chain([&ns::ADMIN, &ns::CAPS]) {
        if let Some(operators) = state.io.of(*namespace) {
            metrics.set_connected(namespace, operators.sockets().len());
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        metrics.render(),
    )
        .into_response()
}

/// CORS for the configured origins, or nothing (same origin only).
#[derive(Debug, Clone)]
pub(super) struct Cors {
    layer: CorsLayer,
    allowed: Arc<[HeaderValue]>,
}

/// Reads `--cors-origin` values: `scheme://host[:port]`, no path, never `*`.
pub(super) fn cors(origins: &[String]) -> Result<Option<Cors>, ConfigError> {
    let mut allowed = Vec::new();
    for raw in origins {
        let origin = raw.trim().trim_end_matches('/');
        if origin.is_empty() {
            continue;
        }
        let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && !rest.is_empty()
                && !rest.contains(['/', '*', '?', '#', ' '])
        });
        let value = HeaderValue::from_str(origin)
            .ok()
            .filter(|_| valid)
            .ok_or_else(|| ConfigError::CorsOrigin(raw.clone()))?;
        allowed.push(value);
    }
    if allowed.is_empty() {
        return Ok(None);
    }
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(allowed.clone()))
        // The Admin UI (socket.io-client with `withCredentials: true`) needs it.
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(Duration::from_secs(600));
    Ok(Some(Cors {
        layer,
        allowed: allowed.into(),
    }))
}

/// Wraps the whole router (the Socket.IO endpoint included) in CORS for
/// the allowed origins. Any other origin, or none, gets no CORS header at
/// all: the layer would otherwise still answer a stranger's preflight with
/// its methods and `Allow-Credentials`.
pub(super) fn with_cors(router: Router, cors: Option<Cors>) -> Router {
    let Some(Cors { layer, allowed }) = cors else {
        return router;
    };
    router.layer(layer).layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let allowed = allowed.clone();
            async move {
                let permitted = request
                    .headers()
                    .get(header::ORIGIN)
                    .is_some_and(|origin| allowed.contains(origin));
                let mut response = next.run(request).await;
                if !permitted {
                    strip_cors_headers(response.headers_mut());
                }
                response
            }
        },
    ))
}

fn strip_cors_headers(headers: &mut HeaderMap) {
    let cors: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in cors {
        headers.remove(name);
    }
}

/// Refuses state-changing requests (POST, PUT, PATCH, DELETE) that another
/// site's page could make with the user's cached credentials: an `Origin`
/// that is neither this hub's own nor a `--cors-origin` gets 403, and a
/// body that is not declared `application/json` gets 415 (an HTML form can
/// post `text/plain` cross-site without a preflight, never JSON). The
/// Socket.IO endpoint is outside this (its layer answers first).
pub(super) fn guard_writes(router: Router, cors_origins: &[String]) -> Router {
    let allowed: Arc<[String]> = cors_origins
        .iter()
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let verdict = write_verdict(&request, &allowed);
            async move {
                match verdict {
                    Ok(()) => next.run(request).await,
                    Err((status, code, message)) => {
                        tracing::warn!(
                            method = %request.method(),
                            path = %crate::telemetry::clip_name(request.uri().path()),
                            code,
                            reason = %crate::telemetry::clip(&message, crate::telemetry::REASON_CHARS),
                            "request refused"
                        );
                        (status, Json(error_envelope(code, &message))).into_response()
                    }
                }
            }
        },
    ))
}

/// Whether a request may go on, or its status, error code and reason.
fn write_verdict(
    request: &Request,
    allowed: &[String],
) -> Result<(), (StatusCode, &'static str, String)> {
    let method = request.method();
    if !matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return Ok(());
    }
    let headers = request.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let same = origin
            .split_once("://")
            .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host);
        if !same && !allowed.iter().any(|a| a == origin) {
            return Err((
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "cross-site request refused: Origin {:?} is neither this hub's nor a --cors-origin",
                    crate::telemetry::clip_name(origin)
                ),
            ));
        }
    }
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|len| len.as_bytes() != b"0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if has_body && !json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a request body must be sent as Content-Type: application/json".to_owned(),
        ));
    }
    Ok(())
}
