//! Identity newtypes: vendor, distributor, order, chat name and room.
//!
//! They serialize as their plain string (so wire structs can hold them),
//! and are only ever built by `parse` (or `generate`), never deserialized.
//!
//! PROTOCOL.md: identities are 1 to 64 characters of `A-Z a-z 0-9 . _ -`;
//! chat names may also contain spaces, are trimmed, and are 1 to 32 long.

use std::fmt;

use serde::Serialize;

use super::InvalidValue;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Checks the identity rule and names the field in the error.
fn parse_identity(field: &str, raw: &str) -> Result<String, InvalidValue> {
    if raw.is_empty() {
        return Err(InvalidValue(format!("{field} is required")));
    }
    if raw.chars().count() > 64 {
        return Err(InvalidValue(format!(
            "{field} must be at most 64 characters"
        )));
    }
    if !raw.chars().all(is_id_char) {
        return Err(InvalidValue(format!(
            "{field} may contain only A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(raw.to_owned())
}

macro_rules! identity_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The wire name of the field this value comes from.
            pub const FIELD: &'static str = $field;

            /// Parses a raw value, naming the field in the error.
            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                parse_identity($field, raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identity_type!(
    /// A shop that asks for pickups.
    VendorId,
    "vendorId"
);
identity_type!(
    /// A delivery company.
    DistributorId,
    "distributorId"
);
identity_type!(
    /// The vendor's own order number; with the vendor it identifies an order.
    OrderId,
    "orderId"
);
identity_type!(
    /// A chat room name as the client gives it (the room itself is `chat:<name>`).
    RoomName,
    "room"
);

/// A queued message id, assigned by the hub (`m-` + a time-ordered UUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MessageId(String);

impl MessageId {
    pub const FIELD: &'static str = "messageId";

    /// A fresh id; time-ordered so ids sort roughly by creation.
    pub fn generate() -> Self {
        Self(format!("m-{}", uuid::Uuid::now_v7().simple()))
    }

    /// Accepts any id a client sends back; unknown ids simply match nothing.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        parse_identity(Self::FIELD, raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A chat display name: trimmed, 1 to 32 characters, identity characters or spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ChatName(String);

impl ChatName {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidValue("name is required".into()));
        }
        if name.chars().count() > 32 {
            return Err(InvalidValue("name must be at most 32 characters".into()));
        }
        if !name.chars().all(|c| is_id_char(c) || c == ' ') {
            return Err(InvalidValue(
                "name may contain only A-Z a-z 0-9 . _ - and spaces".into(),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChatName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who an authenticated socket is, kept in the socket's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Vendor(VendorId),
    Distributor(DistributorId),
    Chat(ChatName),
    Inspector,
    /// The official Socket.IO Admin UI (`/admin`).
    Admin,
    /// A learner's own CAPS lab client (`/caps`): no credentials, its
    /// stores named in what it sends.
    Caps,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Vendor(id) => write!(f, "vendor {id}"),
            Identity::Distributor(id) => write!(f, "distributor {id}"),
            Identity::Chat(name) => write!(f, "chat {name}"),
            Identity::Inspector => f.write_str("inspector"),
            Identity::Admin => f.write_str("admin"),
            Identity::Caps => f.write_str("caps lab client"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identities_follow_the_protocol_alphabet() {
        assert!(VendorId::parse("acme-widgets").is_ok());
        assert!(VendorId::parse("1-800-flowers").is_ok());
        assert_eq!(
            VendorId::parse("").unwrap_err().0,
            "vendorId is required".to_string()
        );
        assert!(OrderId::parse("o 1").is_err());
        assert!(OrderId::parse(&"x".repeat(65)).is_err());
        assert!(OrderId::parse(&"x".repeat(64)).is_ok());
        assert!(RoomName::parse("<script>").is_err());
    }

    #[test]
    fn chat_names_are_trimmed_and_may_hold_spaces() {
        assert_eq!(
            ChatName::parse("  Jamie Doe ").unwrap().as_str(),
            "Jamie Doe"
        );
        assert!(ChatName::parse("   ").is_err());
        assert!(ChatName::parse(&"a".repeat(33)).is_err());
        assert!(ChatName::parse("<b>").is_err());
    }

    #[test]
    fn generated_message_ids_are_unique_and_parse_back() {
        let a = MessageId::generate();
        let b = MessageId::generate();
        assert_ne!(a, b);
        assert_eq!(MessageId::parse(a.as_str()).unwrap(), a);
    }
}
