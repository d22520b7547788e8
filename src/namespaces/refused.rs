//! Namespaces the hub does not serve: `/`, a `/caps` that is not served,
//! `/nowhere`.
//!
//! Socket.IO answers a connection to a namespace nobody registered with
//! `connect_error` `Invalid namespace` before any handler of ours runs, so
//! nothing would log it and a learner's client that does not listen for
//! `connect_error` would wait in silence. A catch-all dynamic namespace
//! (`/` and `/{*rest}`; the hub's own namespaces take precedence) sees
//! those connections instead: its middleware logs the name asked for and
//! why, shows it in the activity feed, and refuses with the very same
//! `Invalid namespace`. The namespace socketioxide makes for each name is
//! dropped again at once, so trying names costs nothing that stays.

use std::borrow::Cow;

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State};

use crate::activity::RefusedConnection;
use crate::protocol::{InvalidNamespace, ns};
use crate::state::Hub;
use crate::telemetry::clip_name;

use super::connect::peer_of;

/// The paths the catch-all answers (matchit syntax).
pub(crate) const PATTERNS: [&str; 2] = ["/", "/{*rest}"];

/// Why a connection to `path` is refused, in words for the log and the feed.
pub(crate) fn reason(path: &str, serves_caps: bool) -> String {
    let served = if serves_caps {
        "/vendor, /distributor, /chat, /inspector, /admin and /caps"
    } else {
        "/vendor, /distributor, /chat, /inspector and /admin"
    };
    match path {
        "/" if serves_caps => format!(
            "this hub has no / namespace; a CAPS lab client connects to /caps \
             (io(\"http://<host>:<port>/caps\")); the hub serves {served}"
        ),
        "/" => format!("this hub has no / namespace; it serves {served}"),
        ns::CAPS => "this hub does not serve /caps: it does with its demo credentials \
                     (no --credentials) or with --caps"
            .to_owned(),
        _ => format!("no such namespace; this hub serves {served}"),
    }
}

/// Connect middleware of the catch-all: logs, reports and refuses.
pub(crate) async fn refuse<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    State(hub): State<Hub>,
) -> Result<(), InvalidNamespace> {
    let path = socket.ns().to_owned();
    let why = reason(&path, hub.caps.is_some());
    // The name is the client's: clipped in the log and the feed.
    let shown = clip_name(&path);
    if hub.activity.may_log_refusal(peer_of(&socket)) {
        tracing::warn!(ns = %shown, sid = %socket.id, code = "invalid_namespace", reason = %why, "connection refused: no such namespace");
    }
    hub.activity.refused_connection(RefusedConnection {
        namespace: Cow::Owned(shown.into_owned()),
        socket: &socket.id.to_string(),
        code: "invalid_namespace",
        reason: &why,
        transport: socket.transport_type().into(),
    });
    // socketioxide made a namespace for this name to run this middleware;
    // it holds no socket (this one is refused), so it goes at once.
    io.delete_ns(&path);
    Err(InvalidNamespace)
}

/// The catch-all's connect handler: never reached, every connection is refused.
pub(crate) async fn on_connect<A: Adapter>(socket: SocketRef<A>) {
    let path = clip_name(socket.ns()).into_owned();
    tracing::error!(ns = %path, sid = %socket.id, "a refused namespace connected a socket; disconnecting it");
    if let Err(e) = socket.disconnect() {
        tracing::warn!(ns = %path, error = %e, "could not disconnect it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_what_the_hub_serves() {
        assert!(reason("/", true).contains("/caps"));
        assert!(!reason("/", false).contains("/caps"));
        assert!(reason("/caps", false).contains("--caps"));
        assert!(reason("/nowhere", false).contains("no such namespace"));
    }
}
