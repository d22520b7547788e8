//! The Socket.IO namespaces: the only place that calls `io.ns(..)`.
//!
//! Each namespace file has the same shape: `authenticate` (connect
//! middleware), `enter` (connect middleware: rooms and handler
//! registration), `on_connect` (logs, announcements), one `on_<event>`
//! function per event, and `on_disconnect`. What they share (the session
//! kept in socket extensions, rate limiting, answering acks, delivering
//! queued messages) lives here.
//!
//! Rooms and handlers are set up in a middleware, not in `on_connect`,
//! because socketioxide sends CONNECT to the client first and only then
//! spawns the connect handler: a client that emits the moment it is
//! connected could beat the registration, and socketioxide drops an event
//! that has no handler without a word (no ack, no log). Middlewares run
//! before CONNECT is sent.

pub mod chat;
pub mod distributor;
pub mod inspector;
pub mod queue;
pub mod vendor;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, RateLimiter};
use serde_json::Value;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::{ConnectHandler, FromMessageParts};
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide::{ParserError, SocketIo};
use socketioxide_core::adapter::DefinedAdapter;

use crate::activity::{Incoming, Outgoing};
use crate::app::Hub;
use crate::domain::{Identity, Recipient};
use crate::protocol::{ConnectRefusal, ErrorCode, Fields, Refusal, ns};
use crate::rooms;
use crate::store::{Queued, StoreError};

/// An adapter the hub can run on, and how to wait until a namespace is ready on it.
///
/// With the local adapter a namespace is ready at once; with the cluster's
/// Redis adapter, `io.ns(..)` returns a future that subscribes the namespace
/// to its pub/sub channels and must be awaited (see [`crate::cluster`]).
pub trait HubAdapter: Adapter + DefinedAdapter {
    /// Resolves once the namespace whose `io.ns(..)` returned `init` is ready.
    fn ready(init: Self::InitRes) -> impl Future<Output = Result<(), String>> + Send;
}

impl HubAdapter for LocalAdapter {
    fn ready(_init: ()) -> impl Future<Output = Result<(), String>> + Send {
        std::future::ready(Ok(()))
    }
}

/// A namespace that could not be set up (its adapter could not start).
#[derive(Debug, thiserror::Error)]
#[error("namespace {namespace} could not start: {cause}")]
pub struct RegisterError {
    pub namespace: &'static str,
    pub cause: String,
}

/// Registers every namespace on `io`. There is deliberately no `/`.
pub async fn register<A: HubAdapter>(io: &SocketIo<A>) -> Result<(), RegisterError> {
    let ready = |namespace: &'static str, init| async move {
        A::ready(init)
            .await
            .map_err(|cause| RegisterError { namespace, cause })
    };
    ready(
        ns::VENDOR,
        io.ns(
            ns::VENDOR,
            vendor::on_connect
                .with(vendor::enter)
                .with(vendor::authenticate),
        ),
    )
    .await?;
    ready(
        ns::DISTRIBUTOR,
        io.ns(
            ns::DISTRIBUTOR,
            distributor::on_connect
                .with(distributor::enter)
                .with(distributor::authenticate),
        ),
    )
    .await?;
    ready(
        ns::CHAT,
        io.ns(
            ns::CHAT,
            chat::on_connect.with(chat::enter).with(chat::authenticate),
        ),
    )
    .await?;
    ready(
        ns::INSPECTOR,
        io.ns(
            ns::INSPECTOR,
            inspector::on_connect
                .with(inspector::enter)
                .with(inspector::authenticate),
        ),
    )
    .await
}

/// Who a socket is, set by the connect middleware and read by every handler.
#[derive(Clone)]
pub struct Session {
    pub identity: Identity,
    /// Shown in logs and the activity feed (`vendor acme-widgets`).
    pub label: Arc<str>,
    /// When the connect middleware accepted the socket (for the inspector).
    pub connected_at: chrono::DateTime<chrono::Utc>,
    /// This socket's own budget of events; `None` when limits are off.
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("identity", &self.identity)
            .finish()
    }
}

impl Session {
    pub fn new(identity: Identity, hub: &Hub) -> Self {
        let limiter = hub
            .limits
            .quota()
            .map(|quota| Arc::new(RateLimiter::direct(quota)));
        Self {
            label: identity.to_string().into(),
            connected_at: chrono::Utc::now(),
            identity,
            limiter,
        }
    }

    /// Spends one event of the budget, or refuses with `rate_limited`.
    pub fn admit(&self) -> Result<(), Refusal> {
        match &self.limiter {
            Some(limiter) if limiter.check().is_err() => Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many events; slow down",
            )),
            _ => Ok(()),
        }
    }

    /// The queue this socket reads, for vendors and distributors.
    pub fn recipient(&self) -> Option<Recipient> {
        match &self.identity {
            Identity::Vendor(id) => Some(Recipient::Vendor(id.clone())),
            Identity::Distributor(id) => Some(Recipient::Distributor(id.clone())),
            _ => None,
        }
    }
}

/// Whether the client asked for an acknowledgement (a callback).
#[derive(Debug, Clone, Copy)]
pub struct AckRequested(pub bool);

impl<A: Adapter> FromMessageParts<A> for AckRequested {
    type Error = Infallible;
    fn from_message_parts(
        _: &Arc<Socket<A>>,
        _: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(AckRequested(ack_id.is_some()))
    }
}

/// The payload as JSON, or the `invalid_payload` refusal that undecodable data earns.
pub fn payload(data: TryData<Value>) -> (Value, Result<(), Refusal>) {
    match data.0 {
        Ok(v) => (v, Ok(())),
        Err(e) => (Value::Null, Err(decode_refusal(&e))),
    }
}

fn decode_refusal(e: &ParserError) -> Refusal {
    tracing::debug!(error = %e, "payload could not be decoded");
    Refusal::new(ErrorCode::InvalidPayload, "payload is not valid JSON data")
}

/// Answers the client's callback (if it sent one) and reports the event.
pub fn answer<A: Adapter>(
    hub: &Hub,
    socket: &SocketRef<A>,
    session: &Session,
    event: &str,
    payload: &Value,
    ack: AckSender<A>,
    result: Result<Value, Refusal>,
) {
    let (outcome, envelope) = match result {
        Ok(envelope) => ("ok", envelope),
        Err(refusal) => (refusal.code.as_str(), refusal.envelope()),
    };
    hub.activity.incoming(Incoming {
        namespace: namespace_of(socket),
        event,
        socket: &socket.id.to_string(),
        identity: &session.label,
        outcome,
        payload,
    });
    if let Err(e) = ack.send(&envelope) {
        tracing::warn!(ns = socket.ns(), event, sid = %socket.id, error = %e, "could not send the ack");
    }
}

/// The static path of a socket's namespace, for logs.
pub fn namespace_of<A: Adapter>(socket: &SocketRef<A>) -> &'static str {
    match socket.ns() {
        ns::VENDOR => ns::VENDOR,
        ns::DISTRIBUTOR => ns::DISTRIBUTOR,
        ns::CHAT => ns::CHAT,
        _ => ns::INSPECTOR,
    }
}

/// Maps a store failure to what the client is told; causes stay in the log.
pub fn refusal_from(e: StoreError) -> Refusal {
    match e {
        StoreError::UnknownOrder(order) => Refusal::new(
            ErrorCode::UnknownOrder,
            format!("order {order} does not exist"),
        ),
        StoreError::ConflictingPickup(order) => Refusal::new(
            ErrorCode::InvalidPayload,
            format!("orderId {order} was already used for a pickup with other details"),
        ),
        StoreError::Forbidden(order) => Refusal::new(
            ErrorCode::Forbidden,
            format!("order {order} was sent to another distributor"),
        ),
        e @ StoreError::InvalidTransition { .. } => {
            Refusal::new(ErrorCode::InvalidTransition, e.to_string())
        }
        StoreError::Backend(cause) => {
            tracing::error!(%cause, "store failure");
            Refusal::new(
                ErrorCode::Internal,
                "the hub could not complete this request",
            )
        }
    }
}

/// Emits a freshly queued message to its recipient's room.
///
/// The message is already committed; if no socket is online (or an emit
/// fails) it waits in the queue for `getAll`, so a failure here is logged,
/// never fatal.
pub async fn deliver<A: Adapter>(hub: &Hub, io: &SocketIo<A>, queued: &Queued) {
    let (namespace, room) = match &queued.recipient {
        r @ Recipient::Vendor(_) => (ns::VENDOR, rooms::of_recipient(r)),
        r @ Recipient::Distributor(_) => (ns::DISTRIBUTOR, rooms::of_recipient(r)),
    };
    let Some(operators) = io.of(namespace) else {
        tracing::error!(ns = namespace, "namespace is not registered");
        return;
    };
    let event = queued.envelope.event.as_str();
    let recipients = hub
        .activity
        .watched()
        .then(|| operators.clone().to(room.clone()).sockets().len());
    let outcome = match operators
        .to(room.clone())
        .emit(event, &queued.envelope)
        .await
    {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(ns = namespace, event, room = %room, error = %e, "delivery failed; the message stays queued");
            "internal"
        }
    };
    if hub.activity.watched() {
        let payload = serde_json::to_value(&queued.envelope).unwrap_or(Value::Null);
        hub.activity.outgoing(Outgoing {
            namespace,
            event,
            target: &format!("room {room}"),
            recipients,
            outcome,
            payload: &payload,
        });
    } else {
        tracing::info!(ns = namespace, event, target = %room, message_id = %queued.envelope.message_id, outcome, "event out");
    }
}

/// Answers any event a namespace does not know with `unknown_event`.
pub async fn on_unknown_event<A: Adapter>(
    socket: SocketRef<A>,
    Event(event): Event,
    data: TryData<Value>,
    ack: AckSender<A>,
    session: socketioxide::extract::Extension<Session>,
    socketioxide::extract::State(hub): socketioxide::extract::State<Hub>,
) {
    let (payload, _) = payload(data);
    let refusal = session.0.admit().and(Err(Refusal::new(
        ErrorCode::UnknownEvent,
        format!("{:?} is not an event of {}", event, socket.ns()),
    )));
    answer(&hub, &socket, &session.0, &event, &payload, ack, refusal);
}

/// Logs a connection with its namespace, identity and transport, and
/// reports it to the activity feed (the inspector redraws on it).
pub fn log_connected<A: Adapter>(hub: &Hub, socket: &SocketRef<A>, session: &Session) {
    tracing::info!(ns = socket.ns(), sid = %socket.id, identity = %session.label, transport = ?socket.transport_type(), "connected");
    hub.activity.connected(
        namespace_of(socket),
        &socket.id.to_string(),
        &session.label,
        socket.transport_type().into(),
    );
}

/// Logs a disconnection with its reason, and reports it to the activity feed.
pub fn log_disconnected<A: Adapter>(
    hub: &Hub,
    socket: &SocketRef<A>,
    session: &Session,
    reason: DisconnectReason,
) {
    tracing::info!(ns = socket.ns(), sid = %socket.id, identity = %session.label, %reason, "disconnected");
    hub.activity.disconnected(
        namespace_of(socket),
        &socket.id.to_string(),
        &session.label,
        &reason.to_string(),
    );
}

/// Reads `{ <id field>, token }` from a handshake `auth`, or says what is missing.
pub fn credentials_from_auth<T>(
    auth: Result<Value, ParserError>,
    field: &str,
    parse: impl FnOnce(&str) -> Result<T, crate::domain::InvalidValue>,
) -> Result<(T, String), ConnectRefusal> {
    let auth = auth.map_err(|_| not_an_object())?;
    let fields = Fields::of_optional(&auth).map_err(|_| not_an_object())?;
    let id = fields
        .required(field, parse)
        .map_err(|r| ConnectRefusal::BadAuth(r.message))?;
    Ok((id, token_of(&fields)?))
}

/// Reads `{ token }` from a handshake `auth` (the inspector's admin token).
pub fn token_from_auth(auth: Result<Value, ParserError>) -> Result<String, ConnectRefusal> {
    let auth = auth.map_err(|_| not_an_object())?;
    let fields = Fields::of_optional(&auth).map_err(|_| not_an_object())?;
    token_of(&fields)
}

fn not_an_object() -> ConnectRefusal {
    ConnectRefusal::BadAuth("auth must be a JSON object".into())
}

fn token_of(fields: &Fields<'_>) -> Result<String, ConnectRefusal> {
    fields
        .required("token", |raw| {
            if raw.is_empty() {
                Err(crate::domain::InvalidValue("token is required".into()))
            } else {
                Ok(raw.to_owned())
            }
        })
        .map_err(|r| ConnectRefusal::BadAuth(r.message))
}

/// Ends a connect middleware: an accepted socket carries its [`Session`]
/// and its typed identity (`VendorId`, ...) in its extensions; a refusal is
/// logged and becomes the `connect_error`.
pub fn settle<A: Adapter, T: Clone + Send + Sync + 'static>(
    socket: &SocketRef<A>,
    hub: &Hub,
    namespace: &'static str,
    result: Result<T, ConnectRefusal>,
    identity: impl FnOnce(T) -> Identity,
) -> Result<(), ConnectRefusal> {
    match result {
        Ok(id) => {
            socket
                .extensions
                .insert(Session::new(identity(id.clone()), hub));
            socket.extensions.insert(id);
            Ok(())
        }
        Err(refusal) => {
            log_refused(namespace, &refusal);
            Err(refusal)
        }
    }
}

/// Logs a refused connection; the token is never part of it.
pub fn log_refused(namespace: &'static str, refusal: &ConnectRefusal) {
    tracing::warn!(ns = namespace, reason = %refusal, "connection refused");
}
