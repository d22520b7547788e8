//! Lab stores: the vendors of learners' own CAPS lab clients (`/caps`),
//! kept apart from the vendors and distributors of the credentials.
//!
//! A lab client names its store as it likes (`1-206-flowers`, `ACME
//! Widgets`, `café`); the hub files its orders under a vendor id of the
//! reserved form `caps.<encoded name>`, and every lab order goes to the one
//! pool of lab drivers, the distributor `caps.drivers`. Configured ids may
//! not start with `caps.` ([`is_reserved`]), so a lab store can never be,
//! or reach, a configured vendor or distributor: the lab store
//! `1-800-flowers` is `caps.1-800-flowers`, not the vendor `1-800-flowers`.
//!
//! The encoding is reversible and has one form per name: ASCII letters,
//! digits and `-` stand for themselves; every other byte of the name's
//! UTF-8 is `_` and two uppercase hex digits (`ACME Widgets` ->
//! `ACME_20Widgets`, `acme.widgets` -> `acme_2Ewidgets`). A vendor id is a
//! lab store's exactly when it decodes, and re-encodes to itself.

use std::fmt;

use super::{DistributorId, InvalidValue, VendorId};

/// Every lab identity starts with this; configured ids may not.
pub const LAB_PREFIX: &str = "caps.";

/// The pool of lab drivers: the distributor of every lab order.
pub const LAB_DRIVERS: &str = "caps.drivers";

/// Identities are at most this long (PROTOCOL.md "Identities").
const MAX_ID: usize = 64;

/// Whether `id` has the reserved form of a lab identity (`caps.`…).
pub fn is_reserved(id: &str) -> bool {
    id.starts_with(LAB_PREFIX)
}

/// The distributor every lab order is sent to: the lab drivers.
pub fn lab_drivers() -> DistributorId {
    match DistributorId::parse(LAB_DRIVERS) {
        Ok(id) => id,
        Err(_) => unreachable!("caps.drivers is a valid identity"),
    }
}

/// Whether `id` is the lab drivers' pool.
pub fn is_lab_drivers(id: &DistributorId) -> bool {
    id.as_str() == LAB_DRIVERS
}

/// A store as a lab client names it, with the vendor id its orders are
/// filed under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabStore {
    name: String,
    vendor: VendorId,
}

fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-'
}

fn encode(name: &str) -> String {
    let mut out = String::with_capacity(LAB_PREFIX.len() + name.len());
    out.push_str(LAB_PREFIX);
    for byte in name.bytes() {
        if is_plain(byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
    out
}

fn decode(encoded: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.bytes();
    while let Some(byte) = rest.next() {
        if byte == b'_' {
            let hex = [rest.next()?, rest.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            if hex.bytes().any(|b| b.is_ascii_lowercase()) {
                return None;
            }
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
        } else if is_plain(byte) {
            bytes.push(byte);
        } else {
            return None;
        }
    }
    String::from_utf8(bytes).ok()
}

impl LabStore {
    /// A store name from a lab client: trimmed, not empty, no control
    /// characters, and short enough that its vendor id fits 64 characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidValue("store is required".into()));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidValue(
                "store may not contain control characters".into(),
            ));
        }
        let encoded = encode(name);
        if encoded.len() > MAX_ID {
            return Err(InvalidValue(format!(
                "store {name:?} is too long for a lab store: its id {encoded} would be over 64 characters \
                 (59 letters, digits or -, fewer with other characters)"
            )));
        }
        let vendor = VendorId::parse(&encoded)?;
        Ok(Self {
            name: name.to_owned(),
            vendor,
        })
    }

    /// The lab store a vendor id is filed under, if it is one.
    pub fn from_vendor_id(id: &VendorId) -> Option<Self> {
        let name = decode(id.as_str().strip_prefix(LAB_PREFIX)?)?;
        // One form per name: `_41` for `A`, or a name that trims, is not one.
        let store = Self::parse(&name).ok()?;
        (store.vendor == *id).then_some(store)
    }

    /// The name as the lab client spells it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The vendor id its orders are filed under (`caps.…`).
    pub fn vendor_id(&self) -> &VendorId {
        &self.vendor
    }
}

impl fmt::Display for LabStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_store_name_maps_to_a_reserved_vendor_id_and_back() {
        for (name, id) in [
            ("1-206-flowers", "caps.1-206-flowers"),
            ("ACME Widgets", "caps.ACME_20Widgets"),
            ("acme.widgets", "caps.acme_2Ewidgets"),
            ("under_score", "caps.under_5Fscore"),
            ("café", "caps.caf_C3_A9"),
        ] {
            let store = LabStore::parse(name).unwrap();
            assert_eq!(store.vendor_id().as_str(), id, "{name}");
            assert!(is_reserved(id));
            let back = LabStore::from_vendor_id(store.vendor_id()).unwrap();
            assert_eq!(back.name(), name);
        }
    }

    #[test]
    fn only_the_one_form_of_a_name_decodes() {
        for id in [
            "caps._41CME",
            "caps.caf_c3_a9",
            "caps._2",
            "caps._ZZ",
            "caps._20padded",
            "caps.",
            "acme-widgets",
            "caps.drivers_",
        ] {
            let id = VendorId::parse(id).unwrap();
            assert_eq!(LabStore::from_vendor_id(&id), None, "{id}");
        }
    }

    #[test]
    fn store_names_must_fit_an_identity() {
        assert!(LabStore::parse("  ").is_err());
        assert!(LabStore::parse("a\nb").is_err());
        assert!(LabStore::parse(&"a".repeat(59)).is_ok());
        assert!(LabStore::parse(&"a".repeat(60)).is_err());
        assert!(LabStore::parse(&" ".repeat(3).replace(' ', "é").repeat(10)).is_err());
        assert_eq!(LabStore::parse(" 1-206 ").unwrap().name(), "1-206");
    }

    #[test]
    fn the_drivers_pool_is_reserved_too() {
        assert!(is_reserved(lab_drivers().as_str()));
        assert!(is_lab_drivers(&lab_drivers()));
    }
}
