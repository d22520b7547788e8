//! The `next` / `before` cursor of `orders`: an opaque string to clients,
//! here the position a page ended at, with the party and the status
//! filter of the listing it belongs to, so a cursor from another listing is
//! refused with a clear message instead of paging through the wrong one.
//!
//! It is base64url (no padding) of `1:<kind>:<party>:<filter>:<ms>:<vendorId>:<orderId>`;
//! identities never contain `:`. Clients must not rely on that.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use chrono::DateTime;

use super::{ErrorCode, Refusal};
use crate::domain::{OrderId, OrderPosition, Recipient, StatusFilter, VendorId};

/// The format's own version, first in every cursor.
const FORMAT: &str = "1";

/// The cursor of the page after `position`, in `party`'s listing of `filter`.
pub(crate) fn encode(party: &Recipient, filter: StatusFilter, position: &OrderPosition) -> String {
    let text = format!(
        "{FORMAT}:{}:{filter}:{}:{}:{}",
        party.key(),
        position.updated_ms(),
        position.vendor_id,
        position.order_id
    );
    BASE64URL.encode(text)
}

fn refused(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::InvalidPayload, message)
}

/// The position `raw` says to start below, if it is a cursor of `party`'s
/// listing of `filter`.
pub(crate) fn decode(
    raw: &str,
    party: &Recipient,
    filter: StatusFilter,
) -> Result<OrderPosition, Refusal> {
    let malformed =
        || refused("before is not a cursor this hub gave out: pass the next of the previous page");
    let text = BASE64URL
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(malformed)?;
    let fields: Vec<&str> = text.split(':').collect();
    let [format, kind, id, given_filter, ms, vendor, order] = fields[..] else {
        return Err(malformed());
    };
    if format != FORMAT {
        return Err(malformed());
    }
    let owner = Recipient::from_key(&format!("{kind}:{id}")).ok_or_else(malformed)?;
    let given_filter = StatusFilter::parse(given_filter).map_err(|_| malformed())?;
    let updated_at = ms
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(malformed)?;
    let position = OrderPosition {
        updated_at,
        vendor_id: VendorId::parse(vendor).map_err(|_| malformed())?,
        order_id: OrderId::parse(order).map_err(|_| malformed())?,
    };
    if &owner != party {
        return Err(refused(
            "before is a cursor of another party's orders: page through your own",
        ));
    }
    if given_filter != filter {
        return Err(refused(format!(
            "before is a cursor of the status {given_filter} listing: ask again with that status"
        )));
    }
    Ok(position)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::domain::{DistributorId, Status};

    fn position() -> OrderPosition {
        OrderPosition {
            updated_at: DateTime::from_timestamp_millis(1_764_324_900_123).unwrap(),
            vendor_id: VendorId::parse("1-800-flowers").unwrap(),
            order_id: OrderId::parse("o.1_x").unwrap(),
        }
    }

    #[test]
    fn a_cursor_round_trips_for_its_own_listing_only() {
        let north = Recipient::Distributor(DistributorId::parse("north-hub").unwrap());
        let filter = StatusFilter::Only(Status::InTransit);
        let cursor = encode(&north, filter, &position());
        assert!(
            cursor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(decode(&cursor, &north, filter).unwrap(), position());

        let south = Recipient::Distributor(DistributorId::parse("south-hub").unwrap());
        let other = decode(&cursor, &south, filter).unwrap_err();
        assert!(other.message.contains("another party"), "{}", other.message);
        let vendor = Recipient::Vendor(VendorId::parse("north-hub").unwrap());
        assert!(decode(&cursor, &vendor, filter).is_err());
        let status = decode(&cursor, &north, StatusFilter::All).unwrap_err();
        assert!(status.message.contains("in-transit"), "{}", status.message);
    }

    #[test]
    fn anything_else_is_refused_as_not_a_cursor() {
        let north = Recipient::Distributor(DistributorId::parse("north-hub").unwrap());
        for raw in [
            "x",
            "%%%",
            &BASE64URL.encode("1:distributor:north-hub:open:12"),
            &BASE64URL.encode("2:distributor:north-hub:open:1:a:b"),
            &BASE64URL.encode("1:distributor:north-hub:open:soon:a:b"),
            &BASE64URL.encode("1:distributor:north hub:open:1:a:b"),
            &BASE64URL.encode("1:distributor:north-hub:open:1:a b:c"),
        ] {
            let refusal = decode(raw, &north, StatusFilter::Open).unwrap_err();
            assert_eq!(refusal.code, ErrorCode::InvalidPayload);
            assert!(
                refusal.message.starts_with("before is not a cursor"),
                "{raw}"
            );
        }
    }
}
