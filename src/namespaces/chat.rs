//! `/chat`: the classic Socket.IO chat example, with rooms.
//!
//! Messages go to everyone but the sender (`broadcast`), or to a room the
//! sender joined (`to(room)`, which also leaves the sender out).

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::operators::BroadcastOperators;
use socketioxide::socket::DisconnectReason;

use super::connect::{field_from_auth, log_connected, log_disconnected, settle};
use super::courier::{Out, emit};
use super::{Call, Session};
use crate::domain::{ChatName, Identity, RoomName};
use crate::protocol::{
    ChatMessageAck, ChatMessageOut, ChatMessageRequest, ConnectRefusal, ErrorCode, Presence,
    Refusal, RoomPresence, Typing, event, ns, ok_envelope, parse_optional_room, parse_room,
};
use crate::rooms;
use crate::state::Hub;

/// Connect middleware: a `name` is all it takes.
pub(crate) async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(hub): State<Hub>,
) -> Result<(), ConnectRefusal> {
    let result = field_from_auth(&auth, "name", ChatName::parse);
    settle(&socket, &hub, ns::CHAT, result, Identity::Chat)
}

/// Connect middleware, after `authenticate`: registers the chat events
/// before the client hears CONNECT (see [`super`] for why this is not done
/// in `on_connect`).
pub(crate) async fn enter<A: Adapter>(socket: SocketRef<A>) -> Result<(), ConnectRefusal> {
    socket.on(event::CHAT_MESSAGE, on_chat_message::<A>);
    socket.on(event::JOIN, on_join::<A>);
    socket.on(event::LEAVE, on_leave::<A>);
    socket.on(event::TYPING, on_typing::<A>);
    socket.on(event::STOP_TYPING, on_stop_typing::<A>);
    socket.on_fallback(super::call::on_unknown_event::<A>);
    socket.on_disconnect(on_disconnect::<A>);
    Ok(())
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

/// Emits to other chat sockets and reports it.
async fn relay<A: Adapter, T: Serialize>(
    hub: &Hub,
    to: BroadcastOperators<A>,
    target: &str,
    event: &str,
    data: &T,
) {
    let out = Out {
        namespace: ns::CHAT,
        target,
        event,
        message_id: None,
    };
    emit(&hub.activity, to, out, data).await;
}

/// Where a chat event goes: everyone else, or the others in a room the
/// sender joined (else `forbidden`, with `what` the sender tried).
fn audience<A: Adapter>(
    socket: &SocketRef<A>,
    room: Option<&RoomName>,
    what: &str,
) -> Result<(BroadcastOperators<A>, String), Refusal> {
    let Some(room) = room else {
        return Ok((socket.broadcast(), "broadcast".into()));
    };
    let room = rooms::chat(room);
    if !socket.rooms().iter().any(|r| *r == room) {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            format!("join the room before {what}"),
        ));
    }
    let target = format!("room {room}");
    Ok((socket.to(room), target))
}

/// Announces the newcomer.
pub(crate) async fn on_connect<A: Adapter>(
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
pub(crate) async fn on_chat_message<A: Adapter>(
    call: Call<A>,
    Extension(name): Extension<ChatName>,
) {
    let result = async {
        let request = call.request(ChatMessageRequest::parse)?;
        let (to, target) = audience(call.socket(), request.room.as_ref(), "sending to it")?;
        let at = Utc::now();
        let out = ChatMessageOut {
            from: name.as_str(),
            text: &request.text,
            room: request.room.as_ref().map(RoomName::as_str),
            at,
        };
        relay(call.hub(), to, &target, event::CHAT_MESSAGE, &out).await;
        Ok(ok_envelope(&ChatMessageAck { at }))
    }
    .await;
    call.answer(result);
}

/// `join { room }`.
pub(crate) async fn on_join<A: Adapter>(
    call: Call<A>,
    io: SocketIo<A>,
    Extension(name): Extension<ChatName>,
) {
    membership(call, io, name, Membership::Join).await;
}

/// `leave { room }`.
pub(crate) async fn on_leave<A: Adapter>(
    call: Call<A>,
    io: SocketIo<A>,
    Extension(name): Extension<ChatName>,
) {
    membership(call, io, name, Membership::Leave).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Membership {
    Join,
    Leave,
}

/// Joins or leaves `chat:<room>`, tells the room's other members, and
/// answers with who is in the room now.
async fn membership<A: Adapter>(
    call: Call<A>,
    io: SocketIo<A>,
    name: ChatName,
    change: Membership,
) {
    let result = async {
        let room = call.request(parse_room)?;
        let full = rooms::chat(&room);
        let socket = call.socket();
        let notice_event = match change {
            Membership::Join => {
                socket.join(full.clone());
                event::USER_JOINED
            }
            Membership::Leave => {
                socket.leave(full.clone());
                event::USER_LEFT
            }
        };
        let members = members(&io, &full);
        let notice = RoomPresence {
            name: Some(name.as_str()),
            room: room.as_str(),
            members: &members,
        };
        let target = format!("room {full}");
        relay(call.hub(), socket.to(full), &target, notice_event, &notice).await;
        Ok(ok_envelope(&RoomPresence {
            name: None,
            room: room.as_str(),
            members: &members,
        }))
    }
    .await;
    call.answer(result);
}

/// `typing { room? }`.
pub(crate) async fn on_typing<A: Adapter>(call: Call<A>, Extension(name): Extension<ChatName>) {
    typing(call, name, event::TYPING).await;
}

/// `stop typing { room? }`.
pub(crate) async fn on_stop_typing<A: Adapter>(
    call: Call<A>,
    Extension(name): Extension<ChatName>,
) {
    typing(call, name, event::STOP_TYPING).await;
}

async fn typing<A: Adapter>(call: Call<A>, name: ChatName, event: &'static str) {
    let result = async {
        let room = call.request(parse_optional_room)?;
        let (to, target) = audience(call.socket(), room.as_ref(), "typing in it")?;
        let out = Typing {
            name: name.as_str(),
            room: room.as_ref().map(RoomName::as_str),
        };
        relay(call.hub(), to, &target, event, &out).await;
        Ok(ok_envelope(&serde_json::json!({})))
    }
    .await;
    call.answer(result);
}

/// Tells the others who left, with who is still online.
pub(crate) async fn on_disconnect<A: Adapter>(
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
