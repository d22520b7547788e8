//! Room names, built here and nowhere else.

use crate::domain::{DistributorId, LabStore, Recipient, RoomName, VendorId};

/// Every socket of one vendor (in `/vendor`).
pub(crate) fn vendor(id: &VendorId) -> String {
    format!("vendor:{id}")
}

/// Every socket of one distributor (in `/distributor`).
pub(crate) fn distributor(id: &DistributorId) -> String {
    format!("distributor:{id}")
}

/// A chat room the client asked to join (in `/chat`).
pub(crate) fn chat(room: &RoomName) -> String {
    format!("chat:{room}")
}

/// Every chat socket that hears namespace-wide messages (in `/chat`). A
/// socket that reconnects with an offset enters it only once it has been
/// handed what it missed, so no live message overtakes the replay. No
/// room a client asks for can be called this: theirs are all `chat:<room>`.
pub(crate) fn chat_everyone() -> &'static str {
    "everyone"
}

/// The chat sockets of hub `hub` whose own `user connected` has not gone
/// out yet (in `/chat`). Their `users` already names everyone who came
/// before them, so the notices queued before their own skip them; per hub,
/// because only this hub's sockets got this hub's `users`.
pub(crate) fn chat_arriving(hub: &str) -> String {
    format!("arriving:{hub}")
}

/// The room where a queue's owner listens.
pub(crate) fn of_recipient(recipient: &Recipient) -> String {
    match recipient {
        Recipient::Vendor(id) => vendor(id),
        Recipient::Distributor(id) => distributor(id),
    }
}

/// The room of a lab store (in `/caps`): its vendor clients, and every lab
/// client that joined it.
pub(crate) fn lab_store(store: &LabStore) -> String {
    format!("store:{}", store.vendor_id())
}
