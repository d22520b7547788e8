//! The hub's integration tests: one binary, a real hub on 127.0.0.1:0,
//! real Socket.IO clients, assertions on who received what and who did not.
#![allow(clippy::unwrap_used)]

mod admin;
mod api;
mod bad_input;
mod bench;
mod caps;
mod chat;
mod chat_history;
mod cli;
mod client;
mod cluster;
mod delivery;
mod durability;
mod errors;
mod hardening;
mod helpers;
mod inspector;
mod layers;
mod learn;
mod operate;
mod orders;
mod queue;
mod refusals;
mod scenarios;
mod standalone;
mod store;
mod upgrade;
