//! Reading what *is*: which of a party's orders a listing shows, and where
//! an order stands in it (most recently updated first), so a listing can
//! be read page by page from any point.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, Utc};

use super::{InvalidValue, Order, OrderId, Status, VendorId};

/// Which statuses a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    /// `pending` and `in-transit`: what still needs doing.
    #[default]
    Open,
    /// One status only.
    Only(Status),
    /// Every order.
    All,
}

impl StatusFilter {
    /// The names a client may give, in the order the refusal lists them.
    pub const NAMES: &'static str = "open, pending, in-transit, delivered, all";

    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "open" => Ok(Self::Open),
            "pending" => Ok(Self::Only(Status::Pending)),
            "in-transit" => Ok(Self::Only(Status::InTransit)),
            "delivered" => Ok(Self::Only(Status::Delivered)),
            "all" => Ok(Self::All),
            _ => Err(InvalidValue(format!(
                "status must be one of {}",
                Self::NAMES
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Only(status) => status.as_str(),
            Self::All => "all",
        }
    }

    /// The statuses it shows.
    pub fn statuses(self) -> &'static [Status] {
        match self {
            Self::Open => &[Status::Pending, Status::InTransit],
            Self::Only(Status::Pending) => &[Status::Pending],
            Self::Only(Status::InTransit) => &[Status::InTransit],
            Self::Only(Status::Delivered) => &[Status::Delivered],
            Self::All => &[Status::Pending, Status::InTransit, Status::Delivered],
        }
    }

    /// Whether an order with `status` belongs in the listing.
    pub fn admits(self, status: Status) -> bool {
        self.statuses().contains(&status)
    }
}

impl fmt::Display for StatusFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an order stands in a listing. Listings run from the greatest
/// position down: the most recently updated first, and among orders updated
/// in the same millisecond, by vendorId then orderId, both descending. A
/// page ends at a position; the next page starts below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderPosition {
    /// When the order was last updated (to the millisecond, as stored).
    pub updated_at: DateTime<Utc>,
    pub vendor_id: VendorId,
    pub order_id: OrderId,
}

impl OrderPosition {
    /// Where `order` stands now.
    pub fn of(order: &Order) -> Self {
        Self {
            updated_at: order.updated_at,
            vendor_id: order.vendor_id.clone(),
            order_id: order.order_id.clone(),
        }
    }

    /// The update time in milliseconds since the epoch, as stores keep it.
    pub fn updated_ms(&self) -> i64 {
        self.updated_at.timestamp_millis()
    }
}

impl Ord for OrderPosition {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.updated_at, &self.vendor_id, &self.order_id).cmp(&(
            other.updated_at,
            &other.vendor_id,
            &other.order_id,
        ))
    }
}

impl PartialOrd for OrderPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_name_parses_back() {
        for name in StatusFilter::NAMES.split(", ") {
            assert_eq!(StatusFilter::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(
            StatusFilter::parse("done").unwrap_err().0,
            "status must be one of open, pending, in-transit, delivered, all"
        );
        assert!(StatusFilter::Open.admits(Status::InTransit));
        assert!(!StatusFilter::Open.admits(Status::Delivered));
    }

    #[test]
    fn positions_order_by_time_then_vendor_then_order() {
        let at = |ms| DateTime::from_timestamp_millis(ms).unwrap();
        let position = |ms, vendor: &str, order: &str| OrderPosition {
            updated_at: at(ms),
            vendor_id: VendorId::parse(vendor).unwrap(),
            order_id: OrderId::parse(order).unwrap(),
        };
        assert!(position(2, "a", "a") > position(1, "z", "z"));
        assert!(position(1, "b", "a") > position(1, "a", "z"));
        assert!(position(1, "a", "b") > position(1, "a", "a"));
        // An id that extends another comes after it, as in the stores.
        assert!(position(1, "a-b", "x") > position(1, "a", "x"));
    }
}
