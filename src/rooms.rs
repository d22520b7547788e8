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
