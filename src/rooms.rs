//! Room names, built here and nowhere else.

use crate::domain::{DistributorId, Recipient, RoomName, VendorId};

/// Every socket of one vendor (in `/vendor`).
pub fn vendor(id: &VendorId) -> String {
    format!("vendor:{id}")
}

/// Every socket of one distributor (in `/distributor`).
pub fn distributor(id: &DistributorId) -> String {
    format!("distributor:{id}")
}

/// A chat room the client asked to join (in `/chat`).
pub fn chat(room: &RoomName) -> String {
    format!("chat:{room}")
}

/// The client-facing name of a chat room, if `room` is one.
pub fn chat_room_name(room: &str) -> Option<&str> {
    room.strip_prefix("chat:")
}

/// The room where a queue's owner listens.
pub fn of_recipient(recipient: &Recipient) -> String {
    match recipient {
        Recipient::Vendor(id) => vendor(id),
        Recipient::Distributor(id) => distributor(id),
    }
}
