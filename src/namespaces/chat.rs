//! `/chat`: the classic Socket.IO chat example, with rooms and a history.
//!
//! Messages go to everyone but the sender (`to(everyone)`, the room every
//! chat socket hears namespace-wide messages in), or to a room the sender
//! joined (`to(room)`, which also leaves the sender out). Each is stored,
//! with its offset, before it is relayed ([`ops::chat`]); a socket that
//! reconnects with `auth.offset` is first handed what it missed.

use crate::activity::cause_first;
use std::sync::Arc;

use chrono::Utc;
use futures_util::FutureExt;
use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::operators::BroadcastOperators;
use socketioxide::socket::DisconnectReason;

use super::connect::{fields_from_auth, log_connected, log_disconnected, peer_of, settle};
use super::courier::{Out, drop_if_slow, emit, emit_to_socket};
use super::{Call, Session};
use crate::domain::{ChatMessage, ChatName, ChatPost, Identity, RoomName, millis};
use crate::ops::{self, chat::Relay};
use crate::protocol::{
    ChatMessageAck, ChatMessageOut, ChatMessageRequest, ConnectRefusal, ErrorCode, HISTORY_ON_JOIN,
    JoinAck, JoinRequest, Presence, REPLAY_ON_CONNECT, Refusal, RoomPresence, Typing, Users, event,
    ns, ok_envelope, parse_offset, parse_optional_room, parse_room,
};
use crate::rooms;
use crate::state::{CHAT_JOINS_BURST, CHAT_JOINS_PER_SECOND, Hub, HubState, Seat};

/// The `auth.offset` a socket connected with: the last message it saw.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplayFrom(Option<u64>);

/// Connect middleware: a `name` nobody connected to this hub has, and an
/// optional `offset`.
pub(crate) async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    TryData(auth): TryData<Value>,
    State(hub): State<Hub>,
) -> Result<(), ConnectRefusal> {
    // Every join is announced to everyone: an address joining without
    // limit would make the hub's sends (and the buffers of sockets that
    // do not read) grow with the square of the joins.
    let admitted = peer_of(&socket).is_none_or(|ip| hub.chat_joins.admit(ip));
    let result = if admitted {
        Ok(())
    } else {
        Err(ConnectRefusal::Throttled(format!(
            "too many chat joins from your address (at most {CHAT_JOINS_PER_SECOND} a second, bursts of {CHAT_JOINS_BURST}); try again in a moment"
        )))
    }
    .and_then(|()| {
        fields_from_auth(&auth, |fields| {
            let name = fields.required(ChatName::FIELD, ChatName::parse)?;
            Ok((name, parse_offset(fields)?))
        })
    })
    .and_then(|(name, offset)| {
        // Claimed here, under the roster's lock: of two sockets connecting
        // with one name at once, exactly one gets it.
        let seat = hub
            .chat
            .roster
            .claim(&name)
            .ok_or_else(|| ConnectRefusal::NameTaken(name.to_string()))?;
        // The seat goes with the socket: if the socket never gets to
        // connect, or leaves, dropping it gives the name back.
        socket.extensions.insert(Arc::new(seat));
        socket.extensions.insert(ReplayFrom(offset));
        Ok(name)
    });
    settle(&socket, &hub, ns::CHAT, result, Identity::Chat)
}

/// Connect middleware, after `authenticate`: registers the chat events
/// before the client hears CONNECT (see [`super`] for why this is not done
/// in `on_connect`). A socket with no offset hears namespace-wide messages
/// from now on; one with an offset does once `on_connect` has replayed
/// what it missed.
pub(crate) async fn enter<A: Adapter>(
    socket: SocketRef<A>,
    Extension(ReplayFrom(offset)): Extension<ReplayFrom>,
    State(hub): State<Hub>,
) -> Result<(), ConnectRefusal> {
    socket.join(rooms::chat_arriving(hub.hub_id()));
    if offset.is_none() {
        socket.join(rooms::chat_everyone());
    }
    // Each handler runs under `cause_first`: the feed shows the event
    // before the relays it caused.
    socket.on(
        event::CHAT_MESSAGE,
        |call: Call<A>, name: Extension<ChatName>| {
            let hub = call.hub().clone();
            async move { cause_first(&hub.activity, on_chat_message(call, name)).await }
        },
    );
    socket.on(
        event::JOIN,
        |call: Call<A>, io: SocketIo<A>, name: Extension<ChatName>| {
            let hub = call.hub().clone();
            async move { cause_first(&hub.activity, on_join(call, io, name)).await }
        },
    );
    socket.on(
        event::LEAVE,
        |call: Call<A>, io: SocketIo<A>, name: Extension<ChatName>| {
            let hub = call.hub().clone();
            async move { cause_first(&hub.activity, on_leave(call, io, name)).await }
        },
    );
    socket.on(event::TYPING, |call: Call<A>, name: Extension<ChatName>| {
        let hub = call.hub().clone();
        async move { cause_first(&hub.activity, on_typing(call, name)).await }
    });
    socket.on(
        event::STOP_TYPING,
        |call: Call<A>, name: Extension<ChatName>| {
            let hub = call.hub().clone();
            async move { cause_first(&hub.activity, on_stop_typing(call, name)).await }
        },
    );
    socket.on_fallback(super::call::cause_first(super::call::on_unknown_event::<A>));
    socket.on_disconnect(on_disconnect::<A>);
    Ok(())
}

/// Chat names of `sockets`, sorted, each once.
fn names<A: Adapter>(sockets: Vec<SocketRef<A>>) -> Vec<String> {
    let mut names: Vec<String> = sockets
        .into_iter()
        .filter_map(|s| s.extensions.get::<ChatName>())
        .map(|n| n.as_str().to_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Members of a chat room (by name).
fn members<A: Adapter>(io: &SocketIo<A>, room: &str) -> Vec<String> {
    io.of(ns::CHAT)
        .map(|chat| names(chat.within(room.to_owned()).sockets()))
        .unwrap_or_default()
}

/// Emits to other chat sockets and reports it.
async fn relay<A: Adapter, T: Serialize>(
    hub: &HubState,
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
    emit(hub, to, out, data).await;
}

/// Where a chat event goes: everyone else, or the others in a room the
/// sender joined (else `forbidden`, with `what` the sender tried).
fn audience<A: Adapter>(
    socket: &SocketRef<A>,
    room: Option<&RoomName>,
    what: &str,
) -> Result<(BroadcastOperators<A>, String), Refusal> {
    let Some(room) = room else {
        return Ok((socket.to(rooms::chat_everyone()), "broadcast".into()));
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

/// A chat message's audience, for [`ops::chat::post`].
struct Audience<'a, A: Adapter> {
    hub: &'a HubState,
    to: BroadcastOperators<A>,
    target: String,
}

impl<A: Adapter> Relay for Audience<'_, A> {
    async fn relay(&self, message: &ChatMessage) {
        let out = ChatMessageOut::from(message);
        relay(
            self.hub,
            self.to.clone(),
            &self.target,
            event::CHAT_MESSAGE,
            &out,
        )
        .await;
    }
}

/// Hands a socket that came back with an offset what it missed; tells it
/// who is here (`users`, which so also marks the end of the replay); and
/// tells the others who came.
pub(crate) async fn on_connect<A: Adapter>(
    socket: SocketRef<A>,
    Extension(session): Extension<Session>,
    Extension(name): Extension<ChatName>,
    Extension(seat): Extension<Arc<Seat>>,
    Extension(ReplayFrom(offset)): Extension<ReplayFrom>,
    State(hub): State<Hub>,
) {
    log_connected(&hub, &socket, &session);
    // Who is here as this socket's own notice is queued: it hears every
    // notice queued after its own, and none before (its room `arriving`
    // keeps those from it).
    let arriving = rooms::chat_arriving(hub.hub_id());
    let (for_notice, newcomer) = (hub.clone(), socket.clone());
    let announced = hub.chat.presence.arrive(&seat, |online| {
        async move {
            let presence = Presence {
                name: name.as_str(),
                online,
            };
            let to = newcomer.broadcast().except(arriving.clone());
            relay(
                &for_notice,
                to,
                "broadcast",
                event::USER_CONNECTED,
                &presence,
            )
            .await;
            newcomer.leave(arriving);
        }
        .boxed()
    });
    match offset {
        Some(after) => replay_missed(&hub, &socket, after, &announced.users).await,
        None => tell_who_is_here(&hub, &socket, &announced.users),
    }
    if announced.first {
        hub.chat.presence.send_batch().await;
    }
}

/// `users { users, online }` to `socket` alone.
fn tell_who_is_here<A: Adapter>(hub: &HubState, socket: &SocketRef<A>, users: &[String]) {
    let who = Users {
        online: users.len(),
        users,
    };
    emit_to_socket(&hub.activity, socket, ns::CHAT, event::USERS, &who);
}

/// Emits the namespace-wide messages after `after` to `socket`, oldest
/// first, then `users`, then lets it hear live messages.
async fn replay_missed<A: Adapter>(
    hub: &HubState,
    socket: &SocketRef<A>,
    after: u64,
    users: &[String],
) {
    let replay = ops::chat::replay(hub, None, after, REPLAY_ON_CONNECT, || {
        socket.join(rooms::chat_everyone());
    })
    .await;
    match replay {
        Ok(replay) => {
            for message in &replay.history {
                if let Err(e) = socket.emit(event::CHAT_MESSAGE, &ChatMessageOut::from(message)) {
                    tracing::warn!(ns = ns::CHAT, sid = %socket.id, offset = message.offset, error = %e, "could not replay a chat message");
                    if drop_if_slow(hub, socket, ns::CHAT, &e) {
                        return;
                    }
                }
            }
            tracing::info!(ns = ns::CHAT, sid = %socket.id, after, replayed = replay.history.len(), "chat history replayed");
            tell_who_is_here(hub, socket, users);
        }
        Err(refusal) => {
            // The store failed (logged where it became a refusal); the
            // socket hears live messages from now on all the same.
            socket.join(rooms::chat_everyone());
            tracing::warn!(ns = ns::CHAT, sid = %socket.id, reason = %refusal, "chat history not replayed");
            tell_who_is_here(hub, socket, users);
        }
    }
}

/// `chat message { text, room? }` or a bare string: stored, then relayed.
pub(crate) async fn on_chat_message<A: Adapter>(
    call: Call<A>,
    Extension(name): Extension<ChatName>,
) {
    let result = async {
        let request = call.request(ChatMessageRequest::parse)?;
        let (to, target) = audience(call.socket(), request.room.as_ref(), "sending to it")?;
        let post = ChatPost {
            from: name,
            text: request.text,
            room: request.room,
            at: millis(Utc::now()),
        };
        let audience = Audience {
            hub: call.hub(),
            to,
            target,
        };
        let message = ops::chat::post(call.hub(), &audience, post).await?;
        Ok(ok_envelope(&ChatMessageAck {
            at: message.post.at,
            offset: message.offset,
        }))
    }
    .await;
    call.answer(result);
}

/// `join { room, offset? }`: joins `chat:<room>`, tells the room's other
/// members, and answers with who is in the room and what was said there
/// after `offset` (the newest 50; no offset: the newest 50 of all).
pub(crate) async fn on_join<A: Adapter>(
    call: Call<A>,
    io: SocketIo<A>,
    Extension(name): Extension<ChatName>,
) {
    let hub = call.hub().clone();
    // Held until the ack is sent, so no live message of the room reaches
    // the socket before the history in its ack.
    let mut replay = None;
    let result = async {
        let request = call.request(JoinRequest::parse)?;
        let full = rooms::chat(&request.room);
        let socket = call.socket();
        let held = ops::chat::replay(
            &hub,
            Some(&request.room),
            request.offset.unwrap_or(0),
            HISTORY_ON_JOIN,
            || socket.join(full.clone()),
        )
        .await?;
        let members = members(&io, &full);
        let notice = RoomPresence {
            name: Some(name.as_str()),
            room: request.room.as_str(),
            members: &members,
        };
        let target = format!("room {full}");
        relay(&hub, socket.to(full), &target, event::USER_JOINED, &notice).await;
        let ack = ok_envelope(&JoinAck {
            room: request.room.as_str(),
            members: &members,
            history: &held.history,
        });
        replay = Some(held);
        Ok(ack)
    }
    .await;
    call.answer(result);
    drop(replay);
}

/// `leave { room }`: leaves `chat:<room>`, tells the room's remaining
/// members, and answers with who is still in it.
pub(crate) async fn on_leave<A: Adapter>(
    call: Call<A>,
    io: SocketIo<A>,
    Extension(name): Extension<ChatName>,
) {
    let result = async {
        let room = call.request(parse_room)?;
        let full = rooms::chat(&room);
        let socket = call.socket();
        socket.leave(full.clone());
        let members = members(&io, &full);
        let notice = RoomPresence {
            name: Some(name.as_str()),
            room: room.as_str(),
            members: &members,
        };
        let target = format!("room {full}");
        relay(
            call.hub(),
            socket.to(full),
            &target,
            event::USER_LEFT,
            &notice,
        )
        .await;
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

/// Gives the name back and tells the others who left, with how many are
/// still online.
pub(crate) async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    reason: DisconnectReason,
    Extension(session): Extension<Session>,
    Extension(name): Extension<ChatName>,
    Extension(seat): Extension<Arc<Seat>>,
    State(hub): State<Hub>,
) {
    log_disconnected(&hub, &socket, &session, reason);
    let to = socket.broadcast();
    let for_notice = hub.clone();
    let announced = hub.chat.presence.leave(&seat, |online| {
        async move {
            let presence = Presence {
                name: name.as_str(),
                online,
            };
            relay(
                &for_notice,
                to,
                "broadcast",
                event::USER_DISCONNECTED,
                &presence,
            )
            .await;
        }
        .boxed()
    });
    if announced.first {
        hub.chat.presence.send_batch().await;
    }
}
