//! Everything the hub serves over plain HTTP beside Socket.IO: the pages
//! people use ([`pages`]), the JSON API for scripts ([`api`]), the
//! scenario lessons at `/learn` ([`learn`]) and the static assets they need
//! (stylesheet, page scripts, the Socket.IO browser client).
//!
//! Page scripts live in `src/web/assets/` and are compiled into the binary, so the
//! hub needs no build step and no files at run time. The Socket.IO browser
//! client is third-party code and is never committed: pages load it from
//! the official CDN (pinned, with its integrity hash), or from a local copy
//! given with `--client-js`.

pub(crate) mod api;
pub(crate) mod learn;
pub(crate) mod pages;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use governor::{DefaultKeyedRateLimiter, RateLimiter};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use std::path::Path;
use std::sync::Arc;

use crate::domain::Recipient;
use crate::state::Hub;

/// The official CDN build of the pinned browser client (4.8.1) the pages use.
const CLIENT_CDN_URL: &str = "https://cdn.socket.io/4.8.1/socket.io.min.js";
/// Its subresource-integrity hash (sha384 of `dist/socket.io.min.js` from npm).
const CLIENT_CDN_INTEGRITY: &str =
    "sha384-mkQ3/7FUtcGyoppY6bz/PORYoGqOl7/aSUMn2ymDOJcapfS6PHqxhRTMh1RR0Q6+";
/// The asset name, and the path, of a local copy given with `--client-js`.
const CLIENT_LOCAL_FILE: &str = "socket.io.min.js";
const CLIENT_LOCAL_PATH: &str = "/assets/socket.io.min.js";

/// The pages' Content-Security-Policy: scripts only from the hub (and the
/// CDN when it serves the client), no inline script, no plug-ins, no framing.
const CSP_WITH_CDN: &str = "default-src 'self'; script-src 'self' https://cdn.socket.io; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const CSP_LOCAL: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Where pages load the Socket.IO browser client from.
#[derive(Debug, Clone)]
pub(crate) enum ClientScript {
    /// The official CDN build, checked against its integrity hash.
    Cdn,
    /// A local copy read at start-up, served at [`CLIENT_LOCAL_PATH`].
    Local(Bytes),
}

impl ClientScript {
    /// Reads the local copy if one is configured; a missing file stops start-up.
    pub(crate) fn from_config(path: Option<&Path>) -> anyhow::Result<Self> {
        match path {
            None => Ok(Self::Cdn),
            Some(path) => {
                let bytes = std::fs::read(path).with_context(|| {
                    format!("cannot read the Socket.IO client {}", path.display())
                })?;
                Ok(Self::Local(Bytes::from(bytes)))
            }
        }
    }

    /// The `src` of the page's `<script>` tag.
    pub(crate) fn src(&self) -> &'static str {
        match self {
            Self::Cdn => CLIENT_CDN_URL,
            Self::Local(_) => CLIENT_LOCAL_PATH,
        }
    }

    /// The Content-Security-Policy of pages that load this client.
    pub(crate) fn content_security_policy(&self) -> &'static str {
        match self {
            Self::Cdn => CSP_WITH_CDN,
            Self::Local(_) => CSP_LOCAL,
        }
    }

    /// The `integrity` of the page's `<script>` tag, for the CDN build.
    pub(crate) fn integrity(&self) -> Option<&'static str> {
        match self {
            Self::Cdn => Some(CLIENT_CDN_INTEGRITY),
            Self::Local(_) => None,
        }
    }
}

/// What the web handlers share: the hub, its Socket.IO handle (the pickup
/// endpoint notifies distributors through it), the client script and the
/// lessons of `/learn`.
#[derive(Debug)]
pub(crate) struct WebState<A: Adapter> {
    pub hub: Hub,
    pub io: SocketIo<A>,
    pub client: ClientScript,
    /// Largest accepted request body, the same bound as a Socket.IO message.
    pub max_body: usize,
    /// Each vendor's and each distributor's budget of API requests (the
    /// per-socket limits); `None` when off.
    pub party_limits: Option<Arc<DefaultKeyedRateLimiter<Recipient>>>,
    /// The scenario files and the lessons being played (shared by every clone).
    pub learn: learn::Learn,
}

impl<A: Adapter> WebState<A> {
    pub(crate) fn new(
        hub: Hub,
        io: SocketIo<A>,
        client: ClientScript,
        max_body: usize,
        learn: learn::Learn,
    ) -> Self {
        let party_limits = hub
            .limits
            .quota()
            .map(|quota| Arc::new(RateLimiter::keyed(quota)));
        Self {
            hub,
            io,
            client,
            max_body,
            party_limits,
            learn,
        }
    }
}

impl<A: Adapter> Clone for WebState<A> {
    fn clone(&self) -> Self {
        Self {
            hub: self.hub.clone(),
            io: self.io.clone(),
            client: self.client.clone(),
            max_body: self.max_body,
            party_limits: self.party_limits.clone(),
            learn: self.learn.clone(),
        }
    }
}

/// The pages, the JSON API and the assets.
pub(crate) fn router<A: Adapter>(state: WebState<A>) -> Router {
    let max_body = state.max_body;
    Router::new()
        .route("/", get(pages::index::<A>))
        .route("/vendor", get(pages::vendor::<A>))
        .route("/distributor", get(pages::distributor::<A>))
        .route("/chat", get(pages::chat::<A>))
        .route("/inspector", get(pages::inspector::<A>))
        .route("/api/inspect", get(api::inspect::<A>))
        .route("/api/pickups", post(api::post_pickup::<A>))
        .route(
            "/api/orders/{vendor_id}/{order_id}",
            get(api::get_order::<A>),
        )
        .route(
            "/api/vendors/{vendor_id}/orders",
            get(api::get_vendor_orders::<A>),
        )
        .route(
            "/api/distributors/{distributor_id}/orders",
            get(api::get_distributor_orders::<A>),
        )
        .route("/learn", get(learn::index::<A>))
        .route("/learn/{slug}", get(learn::scenario::<A>))
        .route("/learn/{slug}/session", post(learn::api::start::<A>))
        .route("/learn/session/{id}/step", post(learn::api::step::<A>))
        .route("/learn/session/{id}", delete(learn::api::stop::<A>))
        .route("/assets/{name}", get(asset::<A>))
        .fallback(pages::not_found::<A>)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Files under `assets/`, compiled in: (name, content type, body).
const ASSETS: [(&str, &str, &str); 8] = [
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/common.js"),
    ),
    (
        "vendor.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/vendor.js"),
    ),
    (
        "distributor.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/distributor.js"),
    ),
    (
        "chat.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/chat.js"),
    ),
    (
        "inspector.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/inspector.js"),
    ),
    (
        "learn.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/learn.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("assets/favicon.svg"),
    ),
];

/// `GET /assets/{name}`: our own assets, and the local client copy if configured.
async fn asset<A: Adapter>(
    State(state): State<WebState<A>>,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let (content_type, body): (&'static str, Body) = match &state.client {
        ClientScript::Local(bytes) if name == CLIENT_LOCAL_FILE => {
            ("text/javascript; charset=utf-8", Body::from(bytes.clone()))
        }
        _ => match ASSETS.iter().find(|(file, _, _)| *file == name) {
            Some((_, content_type, text)) => (content_type, Body::from(*text)),
            None => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
        },
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Small files, compiled in: always revalidate so an upgraded hub is seen at once.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}
