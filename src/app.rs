//! Wiring: the shared hub state, the Socket.IO layer, the HTTP router, and `serve`.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State as HttpState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use axum::serve::ListenerExt;
use governor::Quota;
use socketioxide::SocketIo;
use tokio::net::TcpListener;

use crate::activity::Activity;
use crate::config::{Config, Credentials};
use crate::namespaces;
use crate::namespaces::inspector::FeedTask;
use crate::store::{SharedStore, SqliteStore};
use crate::web;

/// Per-socket event budget (also each vendor's budget of API requests).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub rate_per_second: u32,
    pub burst: u32,
}

impl Limits {
    /// The budget as a rate-limiter quota; `None` when limits are off.
    pub fn quota(&self) -> Option<Quota> {
        NonZeroU32::new(self.rate_per_second).map(|rate| {
            let burst = NonZeroU32::new(self.burst).unwrap_or(rate);
            Quota::per_second(rate).allow_burst(burst)
        })
    }
}

/// What every handler may reach. Shared as [`Hub`]; cloning is shallow.
#[derive(Debug)]
pub struct HubState {
    pub store: SharedStore,
    pub credentials: Credentials,
    pub activity: Activity,
    pub limits: Limits,
    pub started: Instant,
    /// Whether the task feeding `/inspector` sockets runs (one per hub).
    pub inspector_feed: FeedTask,
}

pub type Hub = Arc<HubState>;

/// A hub ready to serve: its state, its Socket.IO handle and its router.
#[derive(Debug)]
pub struct App {
    pub hub: Hub,
    pub io: SocketIo,
    router: Router,
}

impl App {
    /// Opens the store, loads credentials and builds every namespace.
    pub fn build(config: &Config) -> anyhow::Result<Self> {
        let credentials = match &config.credentials {
            Some(path) => Credentials::load(path)?,
            None => Credentials::demo(),
        };
        let store = SqliteStore::open(&config.db, config.durability)
            .with_context(|| format!("cannot open the database {}", config.db.display()))?;
        let hub: Hub = Arc::new(HubState {
            store: Arc::new(store),
            credentials,
            activity: Activity::new(),
            limits: Limits {
                rate_per_second: config.rate_limit,
                burst: config.rate_burst,
            },
            started: Instant::now(),
            inspector_feed: FeedTask::default(),
        });

        let max_payload = config.max_payload;
        let (layer, io) = SocketIo::builder()
            .with_state(hub.clone())
            .max_payload(max_payload)
            .ws_max_message_size(usize::try_from(max_payload).unwrap_or(usize::MAX))
            .max_buffer_size(config.socket_buffer)
            .build_layer();
        namespaces::register(&io);

        let web = web::WebState::new(
            hub.clone(),
            io.clone(),
            web::ClientScript::from_config(config.client_js.as_deref())?,
            usize::try_from(max_payload).unwrap_or(usize::MAX),
        );
        let router = Router::new()
            .route("/api/health", get(health))
            .with_state(hub.clone())
            .merge(web::router(web))
            .layer(layer);
        Ok(Self { hub, io, router })
    }

    /// Serves until `shutdown` resolves, then closes every socket and
    /// waits for writes already handed to the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let io = self.io.clone();
        // Small frames must not wait for Nagle's algorithm (about 40 ms each).
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "could not set TCP_NODELAY");
            }
        });
        axum::serve(listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: closing every socket");
                // Upgraded WebSocket tasks escape axum's graceful drain; close them here.
                io.close().await;
            })
            .await
            .context("the HTTP server failed")?;
        // The store answers in order, so once this ping returns every
        // earlier write has been committed.
        match tokio::time::timeout(Duration::from_secs(5), self.hub.store.ping()).await {
            Ok(Ok(())) => tracing::info!("store flushed; bye"),
            Ok(Err(e)) => tracing::error!(error = %e, "store failed while flushing"),
            Err(_) => tracing::error!("store did not flush within 5 s"),
        }
        Ok(())
    }

    /// The start-up message: where to go, what runs, where data lives.
    pub fn banner(&self, addr: std::net::SocketAddr, config: &Config) -> String {
        let mut out = format!(
            "parcel-hub {version}\n\
             listening on http://{addr}\n\
             \n  pages       http://{addr}/  (vendor, distributor, chat, inspector)\n\
             \x20 namespaces  /vendor  /distributor  /chat  /inspector  (Socket.IO path /socket.io/)\n\
             \x20 health      http://{addr}/api/health\n\
             \x20 data        {db} (SQLite, durability: {durability:?})\n",
            version = env!("CARGO_PKG_VERSION"),
            db = config.db.display(),
            durability = config.durability,
        );
        if self.hub.credentials.is_demo {
            out.push_str("\n  demo credentials (pass --credentials FILE for real ones):\n");
            for (id, token) in crate::config::DEMO_VENDORS {
                out.push_str(&format!("    vendor       {id:<14} token {token}\n"));
            }
            for (id, token) in crate::config::DEMO_DISTRIBUTORS {
                out.push_str(&format!("    distributor  {id:<14} token {token}\n"));
            }
            out.push_str(&format!(
                "    admin        {:<14} token {}\n",
                "(inspector)",
                crate::config::DEMO_ADMIN_TOKEN
            ));
        } else {
            out.push_str(&format!(
                "\n  credentials from {}\n",
                config
                    .credentials
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ));
        }
        out
    }
}

/// `GET /api/health`.
async fn health(HttpState(hub): HttpState<Hub>) -> impl IntoResponse {
    let store_ok = tokio::time::timeout(Duration::from_secs(2), hub.store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let body = serde_json::json!({
        "ok": store_ok,
        "store": hub.store.kind(),
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": hub.started.elapsed().as_secs(),
    });
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}
