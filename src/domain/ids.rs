//! Identity newtypes: vendor, distributor, order, chat name and room.
//!
//! They serialize as their plain string (so wire structs can hold them),
//! and are only ever built by `parse` (or `generate`), never deserialized.
//!
//! PROTOCOL.md: identities are 1 to 64 characters of `A-Z a-z 0-9 . _ -`;
//! chat names are trimmed, NFC-normalized, 1 to 32 characters of letters
//! and digits of any script, spaces and `. _ - '`.

use std::fmt;

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::CodePointMapData;
use icu_properties::props::{GeneralCategory, GeneralCategoryGroup};
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

/// The longest chat name, in characters (code points, after normalization).
const CHAT_NAME_MAX: usize = 32;

/// Punctuation a chat name may hold besides letters, digits and spaces.
const NAME_PUNCTUATION: [char; 4] = ['.', '_', '-', '\''];

/// A chat display name: trimmed, NFC-normalized, 1 to 32 characters of
/// letters and digits of any script (with their combining marks), spaces
/// and `. _ - '`.
///
/// Names are compared ignoring case ([`ChatName::key`]): `Dana` and `dana`
/// are the same person to the people reading the chat.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ChatName(String);

impl ChatName {
    pub const FIELD: &'static str = "name";

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let nfc = ComposingNormalizerBorrowed::new_nfc();
        let name = nfc.normalize(raw.trim());
        if name.is_empty() {
            return Err(InvalidValue("name is required".into()));
        }
        if name.chars().count() > CHAT_NAME_MAX {
            return Err(InvalidValue(format!(
                "name must be at most {CHAT_NAME_MAX} characters"
            )));
        }
        let categories = CodePointMapData::<GeneralCategory>::new();
        for c in name.chars() {
            match categories.get(c) {
                GeneralCategory::Control => {
                    return Err(InvalidValue(format!(
                        "name may not contain control characters (found U+{:04X})",
                        u32::from(c)
                    )));
                }
                GeneralCategory::Format => {
                    return Err(InvalidValue(format!(
                        "name may not contain invisible formatting characters (found U+{:04X})",
                        u32::from(c)
                    )));
                }
                category
                    if GeneralCategoryGroup::Letter.contains(category)
                        || GeneralCategoryGroup::Mark.contains(category)
                        || category == GeneralCategory::DecimalNumber
                        || c == ' '
                        || NAME_PUNCTUATION.contains(&c) => {}
                _ => {
                    return Err(InvalidValue(format!(
                        "name may contain only letters, digits, spaces and . _ - ' (not {c:?})"
                    )));
                }
            }
        }
        Ok(Self(name.into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What two names are compared by: the name in lower case (Unicode's
    /// mapping, then NFC again), so `Dana`, `DANA` and `dana` are one name.
    pub fn key(&self) -> String {
        let lower = self.0.to_lowercase();
        ComposingNormalizerBorrowed::new_nfc()
            .normalize(&lower)
            .into_owned()
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
        assert!(ChatName::parse(&"é".repeat(32)).is_ok());
        assert!(ChatName::parse("<b>").is_err());
    }

    #[test]
    fn chat_names_take_any_script_in_nfc() {
        for name in [
            "José Ñúñez",
            "देवनागरी",
            "สมชาย",
            "O'Brien",
            "李小龍",
            "Zoë_2.0-x",
        ] {
            assert_eq!(ChatName::parse(name).unwrap().as_str(), name);
        }
        // "e" + COMBINING ACUTE ACCENT becomes the one character "é".
        assert_eq!(ChatName::parse("Jose\u{301}").unwrap().as_str(), "José");
        assert_eq!(
            ChatName::parse("Dana").unwrap().key(),
            ChatName::parse("DANA").unwrap().key()
        );
    }

    #[test]
    fn chat_names_refuse_control_and_formatting_characters() {
        let err = ChatName::parse("bell\u{7}").unwrap_err().0;
        assert_eq!(
            err,
            "name may not contain control characters (found U+0007)"
        );
        let err = ChatName::parse("a\u{200B}b").unwrap_err().0;
        assert_eq!(
            err,
            "name may not contain invisible formatting characters (found U+200B)"
        );
        assert!(ChatName::parse("right\u{202E}left").is_err());
        let err = ChatName::parse("<b>").unwrap_err().0;
        assert_eq!(
            err,
            "name may contain only letters, digits, spaces and . _ - ' (not '<')"
        );
    }

    #[test]
    fn generated_message_ids_are_unique_and_parse_back() {
        let a = MessageId::generate();
        let b = MessageId::generate();
        assert_ne!(a, b);
        assert_eq!(MessageId::parse(a.as_str()).unwrap(), a);
    }
}
