//! What every connect middleware shares: reading the handshake `auth`,
//! settling the outcome (a [`Session`] for an accepted socket, a logged
//! refusal otherwise), and the connection logs.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use governor::{DefaultDirectRateLimiter, RateLimiter};
use serde_json::Value;
use socketioxide::ParserError;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State};
use socketioxide::socket::DisconnectReason;

use super::call::{cause_first, namespace_of};
use super::{orders, queue};
use crate::activity::RefusedConnection;
use crate::domain::{Identity, InvalidValue, Recipient};
use crate::protocol::{ConnectRefusal, Fields, Refusal, event};
use crate::state::Hub;
use crate::telemetry::{REASON_CHARS, clip};

/// Who a socket is, set by the connect middleware and read by every handler.
#[derive(Clone)]
pub(crate) struct Session {
    pub identity: Identity,
    /// Shown in logs and the activity feed (`vendor acme-widgets`).
    pub label: Arc<str>,
    /// When the connect middleware accepted the socket (for the inspector).
    pub connected_at: chrono::DateTime<chrono::Utc>,
    /// This socket's own budget of events; `None` when limits are off.
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    /// The client's address: its refusals share one budget of log lines.
    pub peer: Option<IpAddr>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("identity", &self.identity)
            .finish()
    }
}

impl Session {
    fn new(identity: Identity, hub: &Hub, peer: Option<IpAddr>) -> Self {
        let limiter = match (&identity, &hub.caps) {
            // Lab clients have no identity of their own: every `/caps`
            // socket spends from the sandbox's one budget.
            (Identity::Caps, Some(sandbox)) => sandbox.budget.clone(),
            _ => hub
                .limits
                .quota()
                .map(|quota| Arc::new(RateLimiter::direct(quota))),
        };
        Self {
            label: identity.to_string().into(),
            connected_at: chrono::Utc::now(),
            identity,
            limiter,
            peer,
        }
    }

    /// Spends one event of the budget, or refuses with `rate_limited`.
    pub(crate) fn admit(&self) -> Result<(), Refusal> {
        match &self.limiter {
            Some(limiter) if limiter.check().is_err() => Err(Refusal::rate_limited()),
            _ => Ok(()),
        }
    }

    /// The queue this socket reads, for vendors and distributors.
    pub(crate) fn recipient(&self) -> Option<Recipient> {
        match &self.identity {
            Identity::Vendor(id) => Some(Recipient::Vendor(id.clone())),
            Identity::Distributor(id) => Some(Recipient::Distributor(id.clone())),
            _ => None,
        }
    }
}

/// The handshake `auth` as an object (none at all reads as `{}`).
fn auth_fields(auth: &Result<Value, ParserError>) -> Result<Fields<'_>, ConnectRefusal> {
    let not_an_object = || ConnectRefusal::BadAuth("auth must be a JSON object".into());
    let auth = auth.as_ref().map_err(|_| not_an_object())?;
    Fields::of_optional(auth).map_err(|_| not_an_object())
}

/// Reads `{ <id field>, token? }` from a handshake `auth` and signs the
/// party in with `sign_in` (which knows that a lab identity, `caps.…`,
/// needs no token); a configured identity without a token is `bad_auth`.
pub(crate) fn party_from_auth<T>(
    auth: &Result<Value, ParserError>,
    field: &str,
    parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    id_of: impl Fn(&T) -> &str,
    sign_in: impl FnOnce(&T, Option<&str>) -> Result<(), &'static str>,
) -> Result<T, ConnectRefusal> {
    let fields = auth_fields(auth)?;
    let id = fields
        .required(field, parse)
        .map_err(|r| ConnectRefusal::BadAuth(r.message))?;
    let token = if crate::domain::is_reserved(id_of(&id)) {
        fields
            .optional("token", |raw| Ok(raw.to_owned()))
            .ok()
            .flatten()
    } else {
        Some(token_of(&fields)?)
    };
    sign_in(&id, token.as_deref()).map_err(|why| ConnectRefusal::Unauthorized(why.into()))?;
    Ok(id)
}

/// Reads `{ token }` from a handshake `auth` (the inspector's admin token).
pub(crate) fn token_from_auth(auth: &Result<Value, ParserError>) -> Result<String, ConnectRefusal> {
    token_of(&auth_fields(auth)?)
}

/// Reads the handshake `auth` with `read` (the chat's `{ name, offset? }`).
pub(crate) fn fields_from_auth<T>(
    auth: &Result<Value, ParserError>,
    read: impl FnOnce(&Fields<'_>) -> Result<T, Refusal>,
) -> Result<T, ConnectRefusal> {
    read(&auth_fields(auth)?).map_err(|r| ConnectRefusal::BadAuth(r.message))
}

fn token_of(fields: &Fields<'_>) -> Result<String, ConnectRefusal> {
    fields
        .required("token", |raw| {
            if raw.is_empty() {
                Err(InvalidValue("token is required".into()))
            } else {
                Ok(raw.to_owned())
            }
        })
        .map_err(|r| ConnectRefusal::BadAuth(r.message))
}

/// Ends a connect middleware: an accepted socket carries its [`Session`]
/// and its typed identity (`VendorId`, ...) in its extensions; a refusal is
/// logged and becomes the `connect_error`.
pub(crate) fn settle<A: Adapter, T: Clone + Send + Sync + 'static>(
    socket: &SocketRef<A>,
    hub: &Hub,
    namespace: &'static str,
    result: Result<T, ConnectRefusal>,
    identity: impl FnOnce(T) -> Identity,
) -> Result<(), ConnectRefusal> {
    let peer = peer_of(socket);
    // An address that failed too often is refused whatever it sends now,
    // so a right guess is not told apart from a wrong one.
    let throttled = peer
        .and_then(|ip| hub.sign_ins.blocked(ip))
        .map(|wait| ConnectRefusal::Throttled(crate::state::throttled_message(wait)));
    let result = match (throttled, result) {
        (Some(refusal), _) => Err(refusal),
        (None, result) => result,
    };
    if let (Err(ConnectRefusal::Unauthorized(_)), Some(ip)) = (&result, peer) {
        hub.sign_ins.failed(ip);
    }
    match result {
        Ok(id) => {
            socket
                .extensions
                .insert(Session::new(identity(id.clone()), hub, peer_of(socket)));
            socket.extensions.insert(id);
            Ok(())
        }
        Err(refusal) => {
            // The reason, never the token.
            let reason = refusal.message();
            let _hub = hub.activity.span().enter();
            if hub.activity.may_log_refusal(peer) {
                tracing::warn!(ns = namespace, sid = %socket.id, peer = ?peer, code = refusal.code(), reason = %clip(&reason, REASON_CHARS), "connection refused");
            }
            hub.activity.refused_connection(RefusedConnection {
                namespace: Cow::Borrowed(namespace),
                socket: &socket.id.to_string(),
                code: refusal.code(),
                reason: &reason,
                transport: socket.transport_type().into(),
            });
            Err(refusal)
        }
    }
}

/// The address of the client behind `socket` (from the HTTP request that
/// opened its Engine.IO session; the hub's HTTP loop records it).
pub(crate) fn peer_of<A: Adapter>(socket: &SocketRef<A>) -> Option<IpAddr> {
    socket
        .req_parts()
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Registers what every party's socket (`/vendor`, `/distributor`) answers
/// besides its own steps: its queue (`received`, `getAll`), its orders
/// (`orders`), any other event (refused), and its departure (logged).
pub(crate) fn register_party_events<A: Adapter>(socket: &SocketRef<A>) {
    socket.on(event::RECEIVED, cause_first(queue::on_received::<A>));
    socket.on(event::GET_ALL, cause_first(queue::on_get_all::<A>));
    socket.on(event::ORDERS, cause_first(orders::on_orders::<A>));
    socket.on_fallback(cause_first(super::call::on_unknown_event::<A>));
    socket.on_disconnect(on_disconnect_logged::<A>);
}

/// `on_connect` of a namespace whose arrival needs no announcement
/// (`/vendor`, `/distributor`, `/caps`): logs it.
pub(crate) async fn on_connect_logged<A: Adapter>(
    socket: SocketRef<A>,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
) {
    log_connected(&hub, &socket, &session);
}

/// `on_disconnect` of those namespaces: logs it with its reason.
pub(crate) async fn on_disconnect_logged<A: Adapter>(
    socket: SocketRef<A>,
    reason: DisconnectReason,
    Extension(session): Extension<Session>,
    State(hub): State<Hub>,
) {
    log_disconnected(&hub, &socket, &session, reason);
}

/// Logs a connection with its namespace, identity and transport, and
/// reports it to the activity feed (the inspector redraws on it).
pub(crate) fn log_connected<A: Adapter>(hub: &Hub, socket: &SocketRef<A>, session: &Session) {
    let _hub = hub.activity.span().enter();
    tracing::info!(ns = socket.ns(), sid = %socket.id, identity = %session.label, transport = ?socket.transport_type(), "connected");
    hub.activity.connected(
        namespace_of(socket),
        &socket.id.to_string(),
        &session.label,
        socket.transport_type().into(),
    );
}

/// Logs a disconnection with its reason, and reports it to the activity feed.
pub(crate) fn log_disconnected<A: Adapter>(
    hub: &Hub,
    socket: &SocketRef<A>,
    session: &Session,
    reason: DisconnectReason,
) {
    let _hub = hub.activity.span().enter();
    if reason == DisconnectReason::PacketParsingError {
        // socketioxide closes the connection and logs only at debug level.
        tracing::warn!(ns = socket.ns(), sid = %socket.id, identity = %session.label, code = "packet_refused",
            reason = "a packet could not be parsed or went over a limit (--max-payload, --max-attachments, --max-attachment-bytes, attachments out of place or late)",
            "disconnected: packet refused");
        hub.metrics
            .socket_dropped(namespace_of(socket), "packet_refused");
    } else {
        tracing::info!(ns = socket.ns(), sid = %socket.id, identity = %session.label, %reason, "disconnected");
    }
    hub.activity.disconnected(
        namespace_of(socket),
        &socket.id.to_string(),
        &session.label,
        &reason.to_string(),
    );
}
