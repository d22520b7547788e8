//! Wiring: the shared hub state, the Socket.IO layer, the HTTP router, and `serve`.
//!
//! A hub runs on one of two Socket.IO adapters: the local one (alone, SQLite)
//! or the cluster's Redis adapter (`--redis`). Everything below the seam is
//! generic over the adapter ([`wire`] and every handler); above it, [`HubIo`]
//! holds whichever handle runs.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State as HttpState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use axum::serve::ListenerExt;
use governor::Quota;
use socketioxide::adapter::LocalAdapter;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, SocketIoBuilder};
use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::TcpListener;

use crate::activity::Activity;
use crate::cluster::{self, ClusterAdapter, ClusterSocket, ListError, Watchdog};
use crate::config::{Config, Credentials};
use crate::namespaces::inspector::FeedTask;
use crate::namespaces::{self, HubAdapter};
use crate::protocol::ns;
use crate::store::{RedisStore, SharedStore, SqliteStore};
use crate::web::{self, ClientScript};

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
    /// This hub's Socket.IO server id (the `hub` of sockets in a cluster).
    /// Set once the Socket.IO layer exists, which needs this state first.
    hub_id: OnceLock<String>,
    /// Whether the task feeding this hub's `/inspector` sockets runs.
    pub inspector_feed: FeedTask,
}

impl HubState {
    /// This hub's id: the Socket.IO server id other hubs know it by.
    pub fn hub_id(&self) -> &str {
        self.hub_id.get().map(String::as_str).unwrap_or_default()
    }
}

pub type Hub = Arc<HubState>;

/// The Socket.IO handle, on whichever adapter this hub runs.
#[derive(Debug, Clone)]
pub enum HubIo {
    /// One hub on its own (no `--redis`).
    Local(SocketIo<LocalAdapter>),
    /// One hub of a cluster: rooms and broadcasts span every hub.
    Cluster(SocketIo<ClusterAdapter>),
}

impl HubIo {
    /// Disconnects every socket of this hub.
    pub async fn close(&self) {
        match self {
            HubIo::Local(io) => io.close().await,
            HubIo::Cluster(io) => io.close().await,
        }
    }

    /// Every socket of every hub (just this one without a cluster).
    pub async fn sockets(&self) -> Result<Vec<ClusterSocket>, ListError> {
        match self {
            HubIo::Local(io) => cluster::sockets(io, &NAMESPACES).await,
            HubIo::Cluster(io) => cluster::sockets(io, &NAMESPACES).await,
        }
    }
}

/// Messages from other hubs buffered per namespace channel.
const CLUSTER_STREAM_BUFFER: usize = 8_192;

/// The namespaces a socket listing covers (those not registered are skipped).
const NAMESPACES: [&str; 4] = [ns::VENDOR, ns::DISTRIBUTOR, ns::CHAT, ns::INSPECTOR];

/// A hub ready to serve: its state, its Socket.IO handle and its router.
#[derive(Debug)]
pub struct App {
    pub hub: Hub,
    pub io: HubIo,
    router: Router,
    /// Keeps the cluster connection checked while the hub serves (`--redis` only).
    watchdog: Option<Watchdog>,
}

impl App {
    /// Opens the store, loads credentials and builds every namespace; with
    /// `--redis`, connects to the cluster (and fails if Redis does not answer).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let credentials = match &config.credentials {
            Some(path) => Credentials::load(path)?,
            None => Credentials::demo(),
        };
        let limits = Limits {
            rate_per_second: config.rate_limit,
            burst: config.rate_burst,
        };
        let client = ClientScript::from_config(config.client_js.as_deref())?;
        let state = |store: SharedStore| {
            Arc::new(HubState {
                store,
                credentials,
                activity: Activity::new(),
                limits,
                started: Instant::now(),
                hub_id: OnceLock::new(),
                inspector_feed: FeedTask::default(),
            })
        };
        let Some(url) = &config.redis else {
            let store = SqliteStore::open(&config.db, config.durability)
                .with_context(|| format!("cannot open the database {}", config.db.display()))?;
            let hub = state(Arc::new(store));
            let (layer, io) = socket_io(config, &hub).build_layer();
            let router = wire(config, &hub, &io, layer, client).await?;
            return Ok(Self {
                hub,
                io: HubIo::Local(io),
                router,
                watchdog: None,
            });
        };
        let redis = cluster::connect(url)
            .await
            .with_context(|| format!("cannot connect to redis at {}", redis_address(url)))?;
        let prefix = &config.redis_prefix;
        let hub = state(Arc::new(RedisStore::new(redis.conn.clone(), prefix)));
        let adapter = RedisAdapterCtr::new_with_driver(
            redis.driver,
            RedisAdapterConfig::new()
                .with_prefix(format!("{prefix}:socket.io"))
                .with_request_timeout(Duration::from_secs(2))
                // Messages from other hubs wait here; a full buffer drops them
                // (they stay queued for `getAll`), so leave room for bursts.
                .with_stream_buffer(CLUSTER_STREAM_BUFFER),
        );
        let (layer, io) = socket_io(config, &hub)
            .with_adapter::<ClusterAdapter>(adapter)
            .build_layer();
        let router = wire(config, &hub, &io, layer, client).await?;
        Ok(Self {
            hub,
            io: HubIo::Cluster(io),
            router,
            watchdog: Some(Watchdog::start(redis.conn)),
        })
    }

    /// Serves until `shutdown` resolves, then closes every socket and
    /// waits for writes already handed to the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let io = self.io.clone();
        // Keeps pinging Redis for as long as this hub serves, and stops with it.
        let _watchdog = self.watchdog;
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
        let data = match &config.redis {
            None => format!(
                "{db} (SQLite, durability: {durability})",
                db = config.db.display(),
                durability = config.durability.name(),
            ),
            Some(url) => format!(
                "redis at {addr} (keys {prefix}:*), shared with every hub of the cluster",
                addr = redis_address(url),
                prefix = config.redis_prefix,
            ),
        };
        let mut out = format!(
            "parcel-hub {version}\n\
             listening on http://{addr}\n\
             hub id {hub_id}\n\
             \n  pages       http://{addr}/  (vendor, distributor, chat, inspector, learn)\n\
             \x20 namespaces  /vendor  /distributor  /chat  /inspector  (Socket.IO path /socket.io/)\n\
             \x20 health      http://{addr}/api/health\n\
             \x20 data        {data}\n",
            version = env!("CARGO_PKG_VERSION"),
            hub_id = self.hub.hub_id(),
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

/// The Socket.IO settings every hub shares, whatever its adapter.
fn socket_io(config: &Config, hub: &Hub) -> SocketIoBuilder {
    let max_payload = config.max_payload;
    SocketIo::builder()
        .with_state(hub.clone())
        .max_payload(max_payload)
        .ws_max_message_size(usize::try_from(max_payload).unwrap_or(usize::MAX))
        .max_buffer_size(config.socket_buffer)
}

/// Registers the namespaces and builds the router (pages and API included),
/// on either adapter.
async fn wire<A: HubAdapter>(
    config: &Config,
    hub: &Hub,
    io: &SocketIo<A>,
    layer: SocketIoLayer<A>,
    client: ClientScript,
) -> anyhow::Result<Router> {
    if hub.hub_id.set(io.config().server_id.to_string()).is_err() {
        tracing::warn!("the hub id was already set");
    }
    namespaces::register(io).await?;
    let web = web::WebState::new(
        hub.clone(),
        io.clone(),
        client,
        usize::try_from(config.max_payload).unwrap_or(usize::MAX),
        web::learn::Learn::new(config.scenarios.clone(), config.learn_sessions),
    );
    Ok(Router::new()
        .route("/api/health", get(health))
        .with_state(hub.clone())
        .merge(web::router(web))
        .layer(layer))
}

/// Where a Redis URL points, without its credentials (for the banner and errors).
fn redis_address(url: &str) -> String {
    use redis::IntoConnectionInfo;
    url.into_connection_info()
        .map(|info| info.addr().to_string())
        .unwrap_or_else(|_| "(an invalid URL)".into())
}

/// `GET /api/health`.
async fn health(HttpState(hub): HttpState<Hub>) -> impl IntoResponse {
    let store_ok = tokio::time::timeout(Duration::from_secs(2), hub.store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let body = serde_json::json!({
        "ok": store_ok,
        "store": hub.store.kind(),
        "hub": hub.hub_id(),
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
