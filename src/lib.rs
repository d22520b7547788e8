//! parcel-hub: a real-time parcel-delivery hub on Socket.IO.
//!
//! Vendors ask for pickups on `/vendor`, distributors take them on
//! `/distributor`, people talk on `/chat`, and every notification passes
//! through a durable queue so nothing acknowledged is lost. The wire
//! contract is `PROTOCOL.md` (mirrored in [`protocol`]).
//!
//! # Layout
//!
//! From the bottom up; a module uses only modules above it in this list
//! (`tests/hub/layers.rs` checks it):
//!
//! - [`domain`]: identities, orders, their lifecycle and messages.
//! - [`protocol`]: event names, payload parsing, wire structs, ack
//!   envelope, error codes.
//! - [`rooms`]: room-name functions.
//! - [`client`]: the project's one Socket.IO client (WebSocket or
//!   long-polling), for the tests, the lessons and the load generator.
//! - [`output`], [`telemetry`]: stdout for subcommands, tracing set-up.
//! - [`metrics`]: the hub's Prometheus metrics (its own recorder).
//! - [`store`]: the storage trait, its SQLite and Redis backends, their
//!   schemas and migrations.
//! - [`activity`]: proof-of-life logging and the activity feed.
//! - [`config`]: the hub's settings and the credentials.
//! - [`state`]: the shared hub state (a leaf: store, credentials, metrics,
//!   limits, who is in the chat).
//! - [`ops`]: the operations (pickup, transitions, queue, listings, chat
//!   history), no transport types.
//! - [`cluster`]: several hubs behind one Redis (adapter driver, watchdog).
//! - [`upkeep`]: the hub's background chores (queue-depth gauges, the
//!   retention sweep).
//! - [`namespaces`]: the Socket.IO adapters of the operations, one file per
//!   namespace, registered in one place.
//! - [`scenario`]: scenario files, the runner, the `scenario` CLI.
//! - [`web`]: the pages, the JSON API, `/learn` and their assets.
//! - [`app`]: wiring and `serve`.
//! - [`bench`]: the load generator, its workloads and the bare relay.
//! - [`cli`]: the command line.

pub(crate) mod activity;
pub mod app;
pub mod bench;
pub mod cli;
pub mod client;
pub(crate) mod cluster;
pub mod config;
pub mod domain;
pub(crate) mod metrics;
pub(crate) mod namespaces;
pub(crate) mod ops;
pub(crate) mod output;
pub mod protocol;
pub(crate) mod rooms;
pub mod scenario;
pub(crate) mod state;
pub mod store;
pub mod telemetry;
pub(crate) mod upkeep;
pub(crate) mod web;

pub use app::App;
pub use config::Config;
