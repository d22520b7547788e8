//! `/chat`: the classic Socket.IO chat example, with rooms.
//!
//! Messages go to everyone but the sender (`broadcast`), or to a room the
//! sender joined (`to(room)`, which also leaves the sender out).

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Extension, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;

use super::{Session, answer, log_connected, log_disconnected, payload};
use crate::activity::Outgoing;
use crate::app::Hub;
use crate::domain::{ChatName, Identity, RoomName};
use crate::protocol::{
    ChatMessageAck, ChatMessageOut, ChatMessageRequest, ConnectRefusal, ErrorCode, Fields,
    Presence, Refusal, RoomPresence, Typing, event, ns, ok_envelope, parse_optional_room,
    parse_room,
};
use crate::rooms;

/// Connect middleware: a `name` is all it takes.
pub async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(hub): State<Hub>,
) -> Result<(), ConnectRefusal> {
    let result = auth
        .map_err(|_| ConnectRefusal::BadAuth("auth must be a JSON object".into()))
        .and_then(|auth| {
            let fields = Fields::of_optional(&auth)
                .map_err(|_| ConnectRefusal::BadAuth("auth must be a JSON object".into()))?;
            fields
                .required("name", ChatName::parse)
                .map_err(|r| ConnectRefusal::BadAuth(r.message))
        });
    super::settle(&socket, &hub, ns::CHAT, result, Identity::Chat)
}

/// Chat names of `sockets`, sorted, each once (one person may have several tabs).
fn names<A: Adapter>(sockets: Vec<SocketRef<A>>, extra: Option<String>) -> Vec<String> {
    let mut names: Vec<String> = sockets
        .into_iter()
        .filter_map(|s| s.extensions.get::<ChatName>())
        .map(|n| n.as_str().to_owned())
        .chain(extra)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Everyone online in `/chat`; `with_self` adds this socket's own name.
fn online<A: Adapter>(socket: &SocketRef<A>, with_self: bool) -> Vec<String> {
    let own = with_self
        .then(|| socket.extensions.get::<ChatName>())
        .flatten()
        .map(|n| n.as_str().to_owned());
    names(socket.broadcast().sockets(), own)
}

/// Members of a chat room (by name).
fn members<A: Adapter>(io: &SocketIo<A>, room: &str) -> Vec<String> {
    io.of(ns::CHAT)
        .map(|chat| names(chat.within(room.to_owned()).sockets(), None))
        .unwrap_or_default()
}

/// Emits to others and reports it to the activity feed.
async fn relay<A: Adapter, T: Serialize>(
    hub: &Hub,
    ops: socketioxide::operators::BroadcastOperators<A>,
    target: &str,
    event: &str,
    data: &T,
) {
    let recipients = hub.activity.watched().then(|| ops.clone().sockets().len());
    let outcome = match ops.emit(event, data).await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(ns = ns::CHAT, event, target, error = %e, "chat relay failed");
            "internal"
        }
    };
    let payload = if hub.activity.watched() {
        serde_json::to_value(data).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    hub.activity.outgoing(Outgoing {
        namespace: ns::CHAT,
        event,
        target,
        recipients,
        outcome,
        payload: &payload,
    });
}

/// Connect middleware, after `authenticate`: registers the chat events
/// before the client hears CONNECT (see [`super`] for why this is not done
/// in `on_connect`).
pub async fn enter<A: Adapter>(socket: SocketRef<A>) -> Result<(), ConnectRefusal> {
    socket.on(event::CHAT_MESSAGE, on_chat_message::<A>);
    socket.on(event::JOIN, on_join::<A>);
    socket.on(event::LEAVE, on_leave::<A>);
    socket.on(event::TYPING, on_typing::<A>);
    socket.on(event::STOP_TYPING, on_stop_typing::<A>);
    socket.on_fallback(super::on_unknown_event::<A>);
    socket.on_disconnect(on_disconnect::<A>);
    Ok(())
}

/// Announces the newcomer.
pub async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    Extension(session): Extension<Session>,
    Extension(name): Extension<ChatName>,
    State(hub): State<Hub>,
) {
    log_connected(&hub, &socket, &session);
    let users = online(&socket, true);
    let presence = Presence {
        name: name.as_str(),
        users: &users,
    };
    relay(
        &hub,
        socket.broadcast(),
        "broadcast",
        event::USER_CONNECTED,
        &presence,
    )
    .await;
}

/// `chat message { text, room? }` or a bare string.
pub async fn on_chat_message<A: Adapter>(
    socket: SocketRef<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    Extension(session): Extension<Session>,
    Extension(name): Extension<ChatName>,
    State(hub): State<Hub>,
) {
    let (payload, decoded) = payload(data);
    let result = async {
        decoded?;
        session.admit()?;
        let request = ChatMessageRequest::parse(&payload)?;
        let at = Utc::now();
        let out = ChatMessageOut {
            from: name.as_str(),
            text: &request.text,
            room: request.room.as_ref().map(RoomName::as_str),
            at,
        };
        match &request.room {
            None => {
                relay(
                    &hub,
                    socket.broadcast(),
                    "broadcast",
                    event::CHAT_MESSAGE,
                    &out,
                )
                .await
            }
            Some(room) => {
                let room = rooms::chat(room);
                if !socket.rooms().iter().any(|r| *r == room) {
                    return Err(Refusal::new(
                        ErrorCode::Forbidden,
                        "join the room before sending to it",
                    ));
                }
                let target = format!("room {room}");
                relay(&hub, socket.to(room), &target, event::CHAT_MESSAGE, &out).await;
            }
        }
        Ok(ok_envelope(&ChatMessageAck { at }))
    }
    .await;
    answer(
        &hub,
        &socket,
        &session,
        event::CHAT_MESSAGE,
        &payload,
        ack,
        result,
    );
}

/// `join { room }`.
pub async fn on_join<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    Extension(session): Extension<Session>,
    Extension(name): Extension<ChatName>,
    State(hub): State<Hub>,
) {
    let who = Member {
        socket,
        io,
        session,
        name,
        hub,
    };
    membership(who, data, ack, Membership::Join).await;
}

/// `leave { room }`.
pub async fn on_leave<A: Adapter>(
    socket: SocketRef<A>,
    io: SocketIo<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    Extension(session): Extension<Session>,
    Extension(name): Extension<ChatName>,
    State(hub): State<Hub>,
) {
    let who = Member {
        socket,
        io,
        session,
        name,
        hub,
    };
    membership(who, data, ack, Membership::Leave).await;
}

/// The socket asking to join or leave, with what the answer needs.
struct Member<A: Adapter> {
    socket: SocketRef<A>,
    io: SocketIo<A>,
    session: Session,
    name: ChatName,
    hub: Hub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Join,
    Leave,
}

/// Joins or leaves `chat:<room>`, tells the room's other members, and
/// answers with who is in the room now.
async fn membership<A: Adapter>(
    who: Member<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    change: Membership,
) {
    let Member {
        socket,
        io,
        session,
        name,
        hub,
    } = who;
    let (request, notice_event) = match change {
        Membership::Join => (event::JOIN, event::USER_JOINED),
        Membership::Leave => (event::LEAVE, event::USER_LEFT),
    };
    let (payload, decoded) = payload(data);
    let result = async {
        decoded?;
        session.admit()?;
        let room = parse_room(&payload)?;
        let full = rooms::chat(&room);
        match change {
            Membership::Join => socket.join(full.clone()),
            Membership::Leave => socket.leave(full.clone()),
        }
        let members = members(&io, &full);
        let notice = RoomPresence {
            name: Some(name.as_str()),
            room: room.as_str(),
            members: &members,
        };
        let target = format!("room {full}");
        relay(&hub, socket.to(full), &target, notice_event, &notice).await;
        Ok(ok_envelope(&RoomPresence {
            name: None,
            room: room.as_str(),
            members: &members,
        }))
    }
    .await;
    answer(&hub, &socket, &session, request, &payload, ack, result);
}

/// `typing { room? }`.
pub async fn on_typing<A: Adapter>(
    socket: SocketRef<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    Extension(session): Extension<Session>,
    Extension(name): Extension<ChatName>,
    State(hub): State<Hub>,
) {
    typing(socket, data, ack, session, name, hub, event::TYPING).await;
}

/// `stop typing { room? }`.
pub async fn on_stop_typing<A: Adapter>(
    socket: SocketRef<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    Extension(session): Extension<Session>,
    Extension(name): Extension<ChatName>,
    State(hub): State<Hub>,
) {
    typing(socket, data, ack, session, name, hub, event::STOP_TYPING).await;
}

async fn typing<A: Adapter>(
    socket: SocketRef<A>,
    data: TryData<Value>,
    ack: AckSender<A>,
    session: Session,
    name: ChatName,
    hub: Hub,
    event: &'static str,
) {
    let (payload, decoded) = payload(data);
    let result = async {
        decoded?;
        session.admit()?;
        let room = parse_optional_room(&payload)?;
        let out = Typing {
            name: name.as_str(),
            room: room.as_ref().map(RoomName::as_str),
        };
        match &room {
            None => relay(&hub, socket.broadcast(), "broadcast", event, &out).await,
            Some(room) => {
                let full = rooms::chat(room);
                if !socket.rooms().iter().any(|r| *r == full) {
                    return Err(Refusal::new(
                        ErrorCode::Forbidden,
                        "join the room before typing in it",
                    ));
                }
                let target = format!("room {full}");
                relay(&hub, socket.to(full), &target, event, &out).await;
            }
        }
        Ok(ok_envelope(&serde_json::json!({})))
    }
    .await;
    answer(&hub, &socket, &session, event, &payload, ack, result);
}

/// Tells the others who left, with who is still online.
pub async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    reason: DisconnectReason,
    Extension(session): Extension<Session>,
    Extension(name): Extension<ChatName>,
    State(hub): State<Hub>,
) {
    log_disconnected(&hub, &socket, &session, reason);
    let users = online(&socket, false);
    let presence = Presence {
        name: name.as_str(),
        users: &users,
    };
    relay(
        &hub,
        socket.broadcast(),
        "broadcast",
        event::USER_DISCONNECTED,
        &presence,
    )
    .await;
}
