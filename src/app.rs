//! Wiring: the hub state, the Socket.IO layer, the HTTP router, and `serve`;
//! what an operator reaches beside the pages is in [`operate`] (health,
//! metrics, CORS, the cross-site guard on writes); the HTTP server loop
//! with its deadlines is [`http`].
//!
//! A hub runs on one of two Socket.IO adapters: the local one (alone, SQLite)
//! or the cluster's Redis adapter (`--redis`). Everything below the seam is
//! generic over the adapter ([`wire`] and every handler); above it, [`HubIo`]
//! holds whichever handle runs.
//!
//! This is the top of the server: it may use every module below it, and
//! it is where the `/learn` lessons get their private hubs ([`LessonHubs`]),
//! since only the top knows how to build a hub.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use futures_util::future::BoxFuture;
use socketioxide::adapter::LocalAdapter;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{ParserConfig, SocketIo, SocketIoBuilder};
use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::cluster::{self, ClusterAdapter, HubAdapter, PubSubDriver, Watchdog};
use crate::config::{Config, ConfigError};
use crate::namespaces;
use crate::namespaces::admin::{self, AdminState};
use crate::namespaces::inspector::FeedTask;
use crate::namespaces::sockets;
pub use crate::namespaces::sockets::{ClusterSocket, ListError};
use crate::protocol::ns;
use crate::scenario::Library;
use crate::scenario::runner::{HubSpec, Launcher, LessonHub};
use crate::state::{CapsLimits, Hub, HubState, Limits, Sandbox};
use crate::store::{RedisStore, SharedStore, SqliteStore};
use crate::upkeep::Upkeep;
use crate::web::{self, ClientScript};

mod http;
mod operate;

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
            HubIo::Local(io) => sockets::sockets(io, &ns::ALL).await,
            HubIo::Cluster(io) => sockets::sockets(io, &ns::ALL).await,
        }
    }
}

/// Messages from other hubs buffered per namespace channel.
const CLUSTER_STREAM_BUFFER: usize = 8_192;

/// A hub ready to serve: its state, its Socket.IO handle and its router.
#[derive(Debug)]
pub struct App {
    pub(crate) hub: Hub,
    pub io: HubIo,
    router: Router,
    /// Keeps the cluster connection checked while the hub serves (`--redis` only).
    watchdog: Option<Watchdog>,
    /// The background chores (gauges, retention) while the hub serves.
    upkeep: Upkeep,
    /// How long HTTP connections may dawdle (`--header-timeout`, `--request-timeout`).
    deadlines: http::Deadlines,
}

impl App {
    /// Opens the store, loads credentials and builds every namespace; with
    /// `--redis`, connects to the cluster (and fails if Redis does not answer).
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        // Before anything is opened or bound: the demo set stays on loopback.
        let credentials = config.credentials_to_serve()?;
        let retention = config.retention()?;
        if retention.is_some() && config.redis.is_some() {
            return Err(ConfigError::RetentionInCluster.into());
        }
        let cors = operate::cors(&config.cors_origin)?;
        let deadlines = http::Deadlines {
            header_read: Duration::from_secs(config.header_timeout),
            request: Duration::from_secs(config.request_timeout),
        };
        let admin = AdminState::default();
        let limits = Limits {
            rate_per_second: config.rate_limit,
            burst: config.rate_burst,
        };
        let client = ClientScript::from_config(config.client_js.as_deref())?;
        let sandbox = config.serves_caps(&credentials).then(|| {
            Sandbox::new(CapsLimits {
                rate_per_second: config.caps_rate_limit,
                burst: config.caps_rate_burst,
                stores: config.caps_stores,
                open_orders: usize::from(config.caps_open_orders),
            })
        });
        let state = |store: SharedStore| {
            Arc::new(HubState::new(store, credentials, limits).with_caps(sandbox))
        };
        let Some(url) = &config.redis else {
            let store = SqliteStore::open(&config.db, config.durability)
                .with_context(|| format!("cannot open the database {}", config.db.display()))?;
            let hub = state(Arc::new(store));
            let (layer, io) = socket_io(config, &hub, &admin).build_layer();
            let router = wire(config, &hub, &io, layer, client, None).await?;
            return Ok(Self {
                upkeep: Upkeep::start(hub.clone(), retention).with_task(admin::start_feed(
                    hub.clone(),
                    io.clone(),
                    admin,
                )),
                hub,
                io: HubIo::Local(io),
                router: operate::with_cors(router, cors),
                watchdog: None,
                deadlines,
            });
        };
        let redis = cluster::connect(url)
            .await
            .with_context(|| format!("cannot connect to redis at {}", redis_address(url)))?;
        let prefix = &config.redis_prefix;
        let store = RedisStore::open(redis.conn.clone(), prefix)
            .await
            .with_context(|| format!("cannot use the keys {prefix}:* in redis"))?;
        let hub = state(Arc::new(store));
        let subscriptions = redis.driver.clone();
        let adapter = RedisAdapterCtr::new_with_driver(
            redis.driver,
            RedisAdapterConfig::new()
                .with_prefix(format!("{prefix}:socket.io"))
                .with_request_timeout(Duration::from_secs(2))
                // Messages from other hubs wait here; a full buffer drops them
                // (they stay queued for `getAll`), so leave room for bursts.
                .with_stream_buffer(CLUSTER_STREAM_BUFFER),
        );
        let (layer, io) = socket_io(config, &hub, &admin)
            .with_adapter::<ClusterAdapter>(adapter)
            .build_layer();
        let router = wire(config, &hub, &io, layer, client, Some(subscriptions)).await?;
        Ok(Self {
            watchdog: Some(Watchdog::start(redis.conn, hub.metrics.redis_up())),
            upkeep: Upkeep::start(hub.clone(), retention).with_task(admin::start_feed(
                hub.clone(),
                io.clone(),
                admin,
            )),
            hub,
            io: HubIo::Cluster(io),
            router: operate::with_cors(router, cors),
            deadlines,
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
        let _upkeep = self.upkeep;
        let hub = self.hub.clone();
        let deadlines = self.deadlines;
        http::serve(listener, self.router, deadlines, shutdown, async move {
            tracing::info!("shutting down: closing every socket");
            hub.start_closing();
            // Upgraded WebSocket tasks are not the HTTP loop's; close them here.
            if tokio::time::timeout(Duration::from_secs(2), io.close())
                .await
                .is_err()
            {
                tracing::warn!("sockets still closing after 2 s; going on");
            }
        })
        .await;
        // The store answers in order, so once this ping returns every
        // earlier write has been committed.
        match tokio::time::timeout(Duration::from_secs(5), self.hub.store.ping()).await {
            Ok(Ok(())) => tracing::info!("store flushed; bye"),
            Ok(Err(e)) => tracing::error!(error = %e, "store failed while flushing"),
            Err(_) => tracing::error!("store did not flush within 5 s"),
        }
        // Whoever still holds the hub state (a task finishing late), the
        // store's threads and files go now.
        self.hub.store.shutdown().await;
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
             \x20 namespaces  /vendor  /distributor  /chat  /inspector  /admin{caps}  (Socket.IO path /socket.io/)\n\
             \x20 health      http://{addr}/api/health  (/live, /ready)\n\
             \x20 metrics     http://{addr}/metrics  ({metrics})\n\
             \x20 data        {data}\n",
            version = env!("CARGO_PKG_VERSION"),
            hub_id = self.hub.hub_id(),
            caps = if self.hub.caps.is_some() {
                "  /caps"
            } else {
                ""
            },
            metrics = if config.metrics_public {
                "open to anyone"
            } else {
                "admin token as Bearer"
            },
        );
        if self.hub.caps.is_some() {
            out.push_str(&format!(
                "\n  CAPS lab    io(\"http://{addr}/caps\") runs your lab clients unchanged; no credentials:\n\
                 \x20             anyone who reaches this address can send lab orders (README \"Bring your CAPS lab\")\n"
            ));
        }
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
fn socket_io(config: &Config, hub: &Hub, admin: &AdminState) -> SocketIoBuilder {
    let max_payload = config.max_payload;
    SocketIo::builder()
        .with_state(hub.clone())
        .with_state(FeedTask::default())
        .with_state(admin.clone())
        .max_payload(max_payload)
        .ws_max_message_size(usize::try_from(max_payload).unwrap_or(usize::MAX))
        .max_buffer_size(config.socket_buffer)
        // socketioxide's defaults (10,000 attachments, 10 MB) would let one
        // session with a name hold megabytes for as long as it answers pings.
        .with_parser(
            ParserConfig::common()
                .max_incoming_binaries(config.max_attachments)
                .max_incoming_binary_buf_size(config.max_attachment_bytes)
                .packet_completion_timeout(ATTACHMENT_TIMEOUT),
        )
}

/// How long the attachments of one packet may take to arrive.
const ATTACHMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Registers the namespaces and builds the router (pages and API included),
/// on either adapter.
async fn wire<A: HubAdapter>(
    config: &Config,
    hub: &Hub,
    io: &SocketIo<A>,
    layer: SocketIoLayer<A>,
    client: ClientScript,
    subscriptions: Option<PubSubDriver>,
) -> anyhow::Result<Router> {
    hub.set_hub_id(io.config().server_id.to_string(), subscriptions.is_some());
    namespaces::register(io, hub.caps.is_some()).await?;
    if let Some(driver) = &subscriptions {
        // Every namespace of the hub is subscribed; the ones socketioxide
        // makes later (to refuse unknown names) stay on this hub.
        driver.seal();
    }
    let learn = web::learn::Learn::new(
        Library::from_dir(config.scenarios.clone()),
        Arc::new(LessonHubs::new(config)),
        config.learn_sessions,
    );
    let web = web::WebState::new(
        hub.clone(),
        io.clone(),
        client,
        usize::try_from(config.max_payload).unwrap_or(usize::MAX),
        learn,
    );
    let http = Router::new()
        .merge(operate::router(operate::OperateState {
            hub: hub.clone(),
            io: io.clone(),
            subscriptions,
            metrics_public: config.metrics_public,
        }))
        .merge(web::router(web));
    Ok(operate::guard_writes(http, &config.cors_origin).layer(layer))
}

/// Where a Redis URL points, without its credentials (for the banner and errors).
fn redis_address(url: &str) -> String {
    use redis::IntoConnectionInfo;
    url.into_connection_info()
        .map(|info| info.addr().to_string())
        .unwrap_or_else(|_| "(an invalid URL)".into())
}

/// Deletes every key under `prefix:` (a lesson's, made of letters,
/// digits and dashes only, so it needs no glob escaping).
async fn delete_keys(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(500)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// Starts the private hubs of lessons (`/learn`, `scenario run`): the
/// settings of the hub that serves them, on loopback, alone (SQLite, never
/// the cluster), with the demo credentials, no rate limit (a learner's
/// steps are few, and a limit would only confuse the lesson) and no
/// lessons of their own.
#[derive(Debug, Clone)]
pub struct LessonHubs {
    base: Config,
    /// The Redis of the hub that serves them, if any: only lessons with
    /// several hubs use it, each run under a key prefix of its own.
    redis: Option<String>,
}

impl LessonHubs {
    pub fn new(parent: &Config) -> Self {
        Self {
            base: Config {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                credentials: None,
                redis: None,
                rate_limit: 0,
                caps_rate_limit: 0,
                learn_sessions: 0,
                retain_delivered: None,
                cors_origin: Vec::new(),
                ..parent.clone()
            },
            redis: parent.redis.clone(),
        }
    }
}

impl Launcher for LessonHubs {
    fn redis(&self) -> Option<String> {
        self.redis.clone()
    }

    fn clear_redis(&self, url: String, prefix: String) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Err(e) = delete_keys(&url, &prefix).await {
                tracing::warn!(prefix, error = %e, "could not delete a lesson's Redis keys");
            }
        })
    }

    fn launch(&self, spec: HubSpec) -> BoxFuture<'static, anyhow::Result<LessonHub>> {
        let (redis, redis_prefix) = match spec.redis {
            Some((url, prefix)) => (Some(url), prefix),
            None => (None, self.base.redis_prefix.clone()),
        };
        let config = Config {
            db: spec.db,
            redis,
            redis_prefix,
            ..self.base.clone()
        };
        // Every line the lesson's hub logs (opening, serving, shutting
        // down) names the lesson, so the main hub's log tells them apart.
        let span = tracing::info_span!("lesson", run = %spec.tag);
        let serving = span.clone();
        Box::pin(
            async move {
                let app = App::build(&config).await?;
                let activity = app.hub.activity.subscribe();
                let listener = TcpListener::bind(config.listen).await?;
                let url = format!("http://{}", listener.local_addr()?);
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let task = tokio::spawn(
                    app.serve(listener, async move {
                        // Either a stop request or the run being dropped ends the hub.
                        let _either_way = stopped.await;
                    })
                    .instrument(serving),
                );
                Ok(LessonHub {
                    url,
                    activity,
                    stop,
                    task,
                })
            }
            .instrument(span),
        )
    }
}
