//! `/caps`: learners' own CAPS lab clients, unchanged.
//!
//! The lab has no authentication: a lab client connects with no `auth`,
//! names its store in what it sends, and speaks the lab's events in its
//! own spelling (`protocol::caps` reads them all). Its orders are real
//! orders of the sandbox (`ops::caps`): a lab store `S` is the vendor
//! `caps.<S>`, every lab pickup goes to the lab drivers `caps.drivers`,
//! and a lab client acts as the stores it names and as those drivers. So
//! `/caps` is served only with the demo credentials or `--caps`.
//!
//! What the hub does for a lab client, as the lab's own hub would:
//!
//! - a pickup goes to every other `/caps` socket (`socket.broadcast`), a
//!   step to the store's room (`store:caps.<S>`), which a client joins by
//!   `join`, by a pickup for `S`, or by asking for `S`'s news;
//! - messages keep the lab's fields at the top level, beside the hub's
//!   envelope, under the event name the store's clients use;
//! - `getAll` without a callback re-emits each queued message to the
//!   asking socket, as the lab text says; with one, the ack lists them.
//!
//! The events of one socket are handled one at a time, in the order they
//! arrived ([`Turn`]): a lab driver emits `in-transit` and `delivered`
//! back to back, and the second must not overtake the first.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use tokio::sync::oneshot;

use super::connect::{on_disconnect_logged, settle};
use super::{Call, Courier, order_ack};
use crate::domain::{Identity, LabStore, Message, Status};
use crate::ops::caps::{
    LabClient, confirm_queues, lab_confirm, lab_pending, lab_pickup, lab_step, queues_for,
};
use crate::protocol::caps::{
    ACCEPTED_NAMES, LabEvent, LabName, Style, lab_event, lab_message, parse_lab_confirm,
    parse_lab_join, parse_lab_pickup, parse_lab_queue_ask, parse_lab_step,
};
use crate::protocol::{ConnectRefusal, ErrorCode, ReceivedAck, Refusal, ns, ok_envelope};
use crate::rooms;
use crate::state::Hub;

/// What one lab socket has said about itself, and its place in line.
#[derive(Debug, Default)]
pub(crate) struct LabSocket {
    said: Mutex<Said>,
    /// The turn of the event before the newest one: the newest waits for it.
    line: Mutex<Option<oneshot::Receiver<()>>>,
}

#[derive(Debug, Default)]
struct Said {
    client: LabClient,
    /// How it writes event names, for the messages it catches up on.
    style: Style,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LabSocket {
    fn said(&self) -> MutexGuard<'_, Said> {
        lock(&self.said)
    }
}

/// An event's place in its socket's line, taken when the event arrives
/// (extractors run in arrival order, before the handler is spawned);
/// dropping it lets the next event of the socket go.
#[derive(Debug)]
pub(crate) struct Turn {
    lab: Arc<LabSocket>,
    after: Option<oneshot::Receiver<()>>,
    /// Dropped when this event is done, which wakes the next one.
    _done: oneshot::Sender<()>,
}

/// The socket has no lab state: its connect middleware did not run (a bug).
#[derive(Debug, thiserror::Error)]
#[error("the /caps socket has no lab state (its connect middleware did not run)")]
pub(crate) struct NoLabState;

impl<A: Adapter> FromMessageParts<A> for Turn {
    type Error = NoLabState;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        _: &mut socketioxide::handler::Value,
        _: &Option<i64>,
    ) -> Result<Self, NoLabState> {
        let lab = s.extensions.get::<Arc<LabSocket>>().ok_or(NoLabState)?;
        let (done, next) = oneshot::channel();
        let after = lock(&lab.line).replace(next);
        Ok(Self {
            lab,
            after,
            _done: done,
        })
    }
}

impl Turn {
    /// Waits until the socket's previous event is done.
    async fn wait(&mut self) {
        if let Some(previous) = self.after.take() {
            // Sent or dropped, either way the previous event is done.
            let _previous_done = previous.await;
        }
    }
}

/// Connect middleware: lab clients send no `auth` (any is ignored).
pub(crate) async fn authenticate<A: Adapter>(
    socket: SocketRef<A>,
    State(hub): State<Hub>,
) -> Result<(), ConnectRefusal> {
    settle(&socket, &hub, ns::CAPS, Ok(()), |()| Identity::Caps)
}

/// Connect middleware, after `authenticate`: one handler for every event
/// (the lab's names are read by `protocol::caps`), registered before the
/// client hears CONNECT (see [`super`] for why).
pub(crate) async fn enter<A: Adapter>(socket: SocketRef<A>) -> Result<(), ConnectRefusal> {
    socket.extensions.insert(Arc::new(LabSocket::default()));
    socket.on_fallback(on_event::<A>);
    socket.on_disconnect(on_disconnect_logged::<A>);
    Ok(())
}

/// Every event of a lab client, in its socket's order.
pub(crate) async fn on_event<A: Adapter>(call: Call<A>, turn: Turn, io: SocketIo<A>) {
    let hub = call.hub().clone();
    crate::activity::cause_first(&hub.activity, on_lab_event(call, turn, io)).await;
}

async fn on_lab_event<A: Adapter>(call: Call<A>, mut turn: Turn, io: SocketIo<A>) {
    turn.wait().await;
    let name = call.event().to_owned();
    // The answer takes `call`; the courier settles the step around it.
    let (hub, sender) = (call.hub().clone(), call.socket().clone());
    let courier = Courier::for_sender(&io, &hub, &sender);
    let result = match lab_event(&name) {
        Some(meaning) => {
            turn.lab.said().style = Style::of(&name);
            handle(&call, &courier, &turn.lab, &name, meaning).await
        }
        None => call.request(|_| {
            Err::<Value, _>(Refusal::new(
                ErrorCode::UnknownEvent,
                format!("{name:?} is not an event of /caps; it takes {ACCEPTED_NAMES}"),
            ))
        }),
    };
    courier.settle(|| call.answer(result)).await;
}

async fn handle<A: Adapter>(
    call: &Call<A>,
    courier: &Courier<'_, A>,
    lab: &LabSocket,
    name: &str,
    meaning: LabEvent,
) -> Result<Value, Refusal> {
    let hub = call.hub();
    let socket = call.socket();
    match meaning {
        LabEvent::Pickup => {
            let pickup = call.request(parse_lab_pickup)?;
            let store = pickup.store.clone();
            if let Some(sandbox) = &hub.caps {
                sandbox.note_spelling(store.vendor_id(), Status::Pending, name);
            }
            // The store's news comes back to the socket that sent its pickups.
            enter_store(socket, &mut lab.said(), &store);
            let recorded = lab_pickup(hub, courier, pickup).await?;
            Ok(order_ack(&recorded))
        }
        LabEvent::Step(to) => {
            let step = call.request(parse_lab_step)?;
            if let Some(sandbox) = &hub.caps {
                sandbox.note_spelling(step.store.vendor_id(), to, name);
            }
            lab.said().client.driver = true;
            let recorded = lab_step(hub, courier, &step, to).await?;
            Ok(order_ack(&recorded))
        }
        LabEvent::Received(implied) => {
            let confirm = call.request(|payload| parse_lab_confirm(payload, implied))?;
            let client = lab.said().client.clone();
            let queues =
                confirm_queues(&client, &confirm.name, confirm.store.as_ref(), confirm.step);
            let removed = lab_confirm(hub, &queues, &confirm.confirmed, confirm.step).await?;
            Ok(ok_envelope(&ReceivedAck { removed }))
        }
        LabEvent::GetAll(implied) => {
            let ask = call.request(|payload| parse_lab_queue_ask(payload, implied))?;
            let client = {
                let mut said = lab.said();
                match &ask.name {
                    LabName::Drivers => said.client.driver = true,
                    LabName::Store(store)
                        if ask.step != Some(Status::Pending) && !said.client.driver =>
                    {
                        // A store catching up hears its news live from now on.
                        enter_store(socket, &mut said, store);
                    }
                    _ => {}
                }
                said.client.clone()
            };
            let queues = queues_for(&client, &ask.name, None, ask.step);
            let messages = lab_pending(hub, &queues, ask.step).await?;
            let style = lab.said().style;
            let shaped: Vec<(String, Value)> = messages
                .iter()
                .filter_map(|m| shape(call, m, style))
                .collect();
            if call.wants_ack() {
                let list: Vec<&Value> = shaped.iter().map(|(_, payload)| payload).collect();
                return Ok(ok_envelope(&json!({ "messages": list })));
            }
            for (event, payload) in &shaped {
                if let Err(e) = socket.emit(event.as_str(), payload) {
                    tracing::warn!(ns = ns::CAPS, sid = %socket.id, event, error = %e, "could not re-emit a queued message; it stays queued");
                }
            }
            Ok(Value::Null)
        }
        LabEvent::Join => {
            let join = call.request(parse_lab_join)?;
            let mut said = lab.said();
            said.client.driver |= join.driver;
            for store in &join.stores {
                enter_store(socket, &mut said, store);
            }
            let stores: Vec<&str> = join.stores.iter().map(|s| s.name()).collect();
            Ok(ok_envelope(
                &json!({ "stores": stores, "driver": said.client.driver }),
            ))
        }
    }
}

/// Stores one socket speaks for at most: past it, the oldest is left (a
/// vendor that names a new store with every order stays small).
const STORES_PER_SOCKET: usize = 32;

/// Puts the socket in `store`'s room, and remembers that it speaks for it.
fn enter_store<A: Adapter>(socket: &SocketRef<A>, said: &mut Said, store: &LabStore) {
    socket.join(rooms::lab_store(store));
    said.client.names(store);
    while said.client.stores.len() > STORES_PER_SOCKET {
        let oldest = said.client.stores.remove(0);
        socket.leave(rooms::lab_store(&oldest));
    }
}

/// A queued message as a lab client catches up on it: its store's
/// spelling of the event if this hub heard one, else the client's style.
fn shape<A: Adapter>(call: &Call<A>, message: &Message, style: Style) -> Option<(String, Value)> {
    let store = LabStore::from_vendor_id(&message.order.vendor_id)?;
    let sandbox = call.hub().caps.as_ref()?;
    let step = message.status();
    let event = sandbox
        .spelling(store.vendor_id(), step)
        .unwrap_or_else(|| style.spell(step));
    let extras = sandbox.extras(store.vendor_id(), &message.order.order_id);
    let payload = lab_message(message, &store, &event, extras.as_ref());
    Some((event, payload))
}
