//! The order and its lifecycle: `pending` -> `in-transit` -> `delivered`.
//!
//! Every backend applies transitions through [`Order::apply`], so the rules
//! (and what counts as a harmless repeat) live in one place.

use std::fmt;

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize, Serializer};

use super::{DistributorId, OrderId, VendorId};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pending,
    InTransit,
    Delivered,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::InTransit => "in-transit",
            Status::Delivered => "delivered",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "pending" => Some(Status::Pending),
            "in-transit" => Some(Status::InTransit),
            "delivered" => Some(Status::Delivered),
            _ => None,
        }
    }

    /// The one status this one may move to, if any.
    pub fn next(self) -> Option<Status> {
        match self {
            Status::Pending => Some(Status::InTransit),
            Status::InTransit => Some(Status::Delivered),
            Status::Delivered => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serializes a time as PROTOCOL.md wants it: RFC 3339, UTC, milliseconds, `Z`.
pub fn rfc3339<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The wire carries milliseconds; keep no more, so a stored value equals the sent one.
pub fn wire_time(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(at)
}

/// One step of an order's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub status: Status,
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
}

/// An order as the wire shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub order_id: OrderId,
    pub vendor_id: VendorId,
    pub distributor_id: DistributorId,
    pub customer: String,
    pub address: String,
    pub status: Status,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub history: Vec<HistoryEntry>,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("order {order} is sent to another distributor")]
    Forbidden { order: OrderId },
    #[error("order {order} is {from}; it cannot become {to}")]
    Invalid {
        order: OrderId,
        from: Status,
        to: Status,
    },
}

/// What applying a transition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// The order moved; a message must be queued for the vendor.
    Moved,
    /// The order was already there; nothing new to queue.
    AlreadyThere,
}

impl Order {
    /// A new order, `pending` since `at`.
    pub fn new_pending(
        vendor_id: VendorId,
        order_id: OrderId,
        distributor_id: DistributorId,
        customer: String,
        address: String,
        at: DateTime<Utc>,
    ) -> Self {
        let at = wire_time(at);
        Self {
            order_id,
            vendor_id,
            distributor_id,
            customer,
            address,
            status: Status::Pending,
            created_at: at,
            updated_at: at,
            history: vec![HistoryEntry {
                status: Status::Pending,
                at,
            }],
        }
    }

    /// True when a repeated pickup asks for exactly this order.
    pub fn same_request(&self, distributor: &DistributorId, customer: &str, address: &str) -> bool {
        &self.distributor_id == distributor && self.customer == customer && self.address == address
    }

    /// Moves the order to `to` on behalf of `by`, or says why not.
    pub fn apply(
        &mut self,
        by: &DistributorId,
        to: Status,
        at: DateTime<Utc>,
    ) -> Result<TransitionOutcome, TransitionError> {
        if &self.distributor_id != by {
            return Err(TransitionError::Forbidden {
                order: self.order_id.clone(),
            });
        }
        if self.status == to {
            return Ok(TransitionOutcome::AlreadyThere);
        }
        if self.status.next() != Some(to) {
            return Err(TransitionError::Invalid {
                order: self.order_id.clone(),
                from: self.status,
                to,
            });
        }
        let at = wire_time(at);
        self.status = to;
        self.updated_at = at;
        self.history.push(HistoryEntry { status: to, at });
        Ok(TransitionOutcome::Moved)
    }
}

/// The owner of a queue: every notification goes to one vendor or one distributor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Recipient {
    Vendor(VendorId),
    Distributor(DistributorId),
}

impl Recipient {
    /// The stable key a backend files the queue under (`vendor:acme-widgets`).
    pub fn key(&self) -> String {
        match self {
            Recipient::Vendor(id) => format!("vendor:{id}"),
            Recipient::Distributor(id) => format!("distributor:{id}"),
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        let (kind, id) = key.split_once(':')?;
        match kind {
            "vendor" => VendorId::parse(id).ok().map(Recipient::Vendor),
            "distributor" => DistributorId::parse(id).ok().map(Recipient::Distributor),
            _ => None,
        }
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order::new_pending(
            VendorId::parse("acme").unwrap(),
            OrderId::parse("o-1").unwrap(),
            DistributorId::parse("north-hub").unwrap(),
            "Jamie".into(),
            "Seattle".into(),
            Utc::now(),
        )
    }

    #[test]
    fn an_order_moves_forward_one_step_at_a_time() {
        let north = DistributorId::parse("north-hub").unwrap();
        let mut o = order();
        assert!(matches!(
            o.apply(&north, Status::Delivered, Utc::now()),
            Err(TransitionError::Invalid { .. })
        ));
        assert_eq!(
            o.apply(&north, Status::InTransit, Utc::now()),
            Ok(TransitionOutcome::Moved)
        );
        assert_eq!(
            o.apply(&north, Status::InTransit, Utc::now()),
            Ok(TransitionOutcome::AlreadyThere)
        );
        assert_eq!(
            o.apply(&north, Status::Delivered, Utc::now()),
            Ok(TransitionOutcome::Moved)
        );
        assert!(matches!(
            o.apply(&north, Status::InTransit, Utc::now()),
            Err(TransitionError::Invalid { .. })
        ));
        assert_eq!(o.history.len(), 3);
    }

    #[test]
    fn only_the_chosen_distributor_may_move_an_order() {
        let south = DistributorId::parse("south-hub").unwrap();
        assert!(matches!(
            order().apply(&south, Status::InTransit, Utc::now()),
            Err(TransitionError::Forbidden { .. })
        ));
    }

    #[test]
    fn recipient_keys_round_trip() {
        let r = Recipient::Distributor(DistributorId::parse("north-hub").unwrap());
        assert_eq!(Recipient::from_key(&r.key()), Some(r));
        assert_eq!(Recipient::from_key("nobody:x"), None);
    }
}
