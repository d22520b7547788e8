//! parcel-hub: a real-time parcel-delivery hub on Socket.IO.
//!
//! Vendors ask for pickups on `/vendor`, distributors take them on
//! `/distributor`, people talk on `/chat`, and every notification passes
//! through a durable queue so nothing acknowledged is lost. The wire
//! contract is `PROTOCOL.md` (mirrored in [`protocol`]).
//!
//! # Layout
//!
//! - [`config`]: the clap settings and the credentials file.
//! - [`telemetry`]: tracing set-up.
//! - [`app`]: shared hub state, the Socket.IO layer and router, `serve`.
//! - [`protocol`]: event names, payloads, ack envelope, error codes.
//! - [`rooms`]: room-name functions.
//! - [`domain`]: identities, orders and their lifecycle.
//! - [`store`]: the storage trait, its SQLite backend and its Redis backend.
//! - [`cluster`]: several hubs behind one Redis (adapter driver, watchdog,
//!   cluster-wide socket listing).
//! - [`namespaces`]: one file per namespace, registered in one place.
//! - [`web`]: the pages, the JSON API, the `/learn` lessons and their assets.
//! - [`output`]: stdout for the subcommands, quiet on a closed pipe.
//! - [`activity`]: proof-of-life logging and the activity feed.
//! - [`scenario`]: scenario files, the runner, the `scenario` CLI.
//! - [`bench`]: the load generator, its workloads and the bare relay.
//! - [`client`]: the one Socket.IO client (WebSocket or long-polling) of the
//!   scenario runner, the load generator and the integration tests.

pub mod activity;
pub mod app;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod namespaces;
pub mod output;
pub mod protocol;
pub mod rooms;
pub mod scenario;
pub mod store;
pub mod telemetry;
pub mod web;

pub use app::App;
pub use config::Config;
