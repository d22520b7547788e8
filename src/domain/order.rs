//! The order and its lifecycle: `pending` -> `in-transit` -> `delivered`,
//! and the messages that tell its parties about each step.
//!
//! Every backend applies transitions through [`Order::apply`], so the rules
//! (and what counts as a harmless repeat) live in one place.

use std::fmt;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::{DistributorId, MessageId, OrderId, VendorId};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// Times are kept to the millisecond, as the wire and the store carry them,
/// so a stored value always equals the one that was sent.
pub fn millis(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(at)
}

/// One step of an order's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub status: Status,
    pub at: DateTime<Utc>,
}

/// An order: who asked, who carries it, for whom, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub order_id: OrderId,
    pub vendor_id: VendorId,
    pub distributor_id: DistributorId,
    pub customer: String,
    pub address: String,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every status the order had, oldest first; the last one is `status`.
    pub history: Vec<HistoryEntry>,
}

/// A vendor's request for a pickup, validated: what a new order is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pickup {
    pub order_id: OrderId,
    pub distributor_id: DistributorId,
    pub customer: String,
    pub address: String,
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
    /// A new order for `vendor_id`, `pending` since `at`.
    pub fn new_pending(vendor_id: VendorId, pickup: Pickup, at: DateTime<Utc>) -> Self {
        let at = millis(at);
        let Pickup {
            order_id,
            distributor_id,
            customer,
            address,
        } = pickup;
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
    pub fn same_request(&self, pickup: &Pickup) -> bool {
        self.order_id == pickup.order_id
            && self.distributor_id == pickup.distributor_id
            && self.customer == pickup.customer
            && self.address == pickup.address
    }

    /// The order as it stood right after it reached `status` (its history
    /// up to that step), or `None` if it never did: what a message about
    /// that step carries, however far the order has moved since.
    pub fn as_of(&self, status: Status) -> Option<Order> {
        let reached = self.history.iter().position(|h| h.status == status)?;
        let history: Vec<HistoryEntry> = self.history[..=reached].to_vec();
        Some(Order {
            status,
            updated_at: history[reached].at,
            history,
            ..self.clone()
        })
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
        let at = millis(at);
        self.status = to;
        self.updated_at = at;
        self.history.push(HistoryEntry { status: to, at });
        Ok(TransitionOutcome::Moved)
    }
}

/// The owner of a queue: every notification goes to one vendor or one
/// distributor. Also the party whose orders a listing shows (a vendor's
/// own; a distributor's, those sent to it).
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

/// A notification kept in its recipient's queue until confirmed: the
/// order as it stood after one step, for the party that must hear of it
/// (a `pending` order for its distributor, the later steps for its vendor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub recipient: Recipient,
    /// The order right after the step this message reports.
    pub order: Order,
    pub at: DateTime<Utc>,
}

impl Message {
    /// A fresh message about the step `order` has just taken.
    pub fn about(order: &Order) -> Self {
        let recipient = match order.status {
            Status::Pending => Recipient::Distributor(order.distributor_id.clone()),
            Status::InTransit | Status::Delivered => Recipient::Vendor(order.vendor_id.clone()),
        };
        Self {
            id: MessageId::generate(),
            recipient,
            order: order.clone(),
            at: order.updated_at,
        }
    }

    /// The step this message reports.
    pub fn status(&self) -> Status {
        self.order.status
    }

    /// The party that took the step: the vendor for a pickup, the
    /// distributor for the later steps. The message tells the other party;
    /// the author's own other pages learn of it by a live notice.
    pub fn author(&self) -> Recipient {
        match &self.recipient {
            Recipient::Distributor(_) => Recipient::Vendor(self.order.vendor_id.clone()),
            Recipient::Vendor(_) => Recipient::Distributor(self.order.distributor_id.clone()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order::new_pending(
            VendorId::parse("acme").unwrap(),
            Pickup {
                order_id: OrderId::parse("o-1").unwrap(),
                distributor_id: DistributorId::parse("north-hub").unwrap(),
                customer: "Jamie".into(),
                address: "Seattle".into(),
            },
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
    fn a_message_carries_the_order_as_of_its_step() {
        let north = DistributorId::parse("north-hub").unwrap();
        let mut o = order();
        let pickup = Message::about(&o);
        assert!(matches!(pickup.recipient, Recipient::Distributor(_)));
        assert_eq!(pickup.author(), Recipient::Vendor(o.vendor_id.clone()));
        o.apply(&north, Status::InTransit, Utc::now()).unwrap();
        let news = Message::about(&o);
        assert!(matches!(news.recipient, Recipient::Vendor(_)));
        assert_eq!(news.author(), Recipient::Distributor(north.clone()));
        assert_eq!(o.as_of(Status::Pending), Some(pickup.order));
        assert_eq!(o.as_of(Status::InTransit), Some(news.order));
        assert_eq!(o.as_of(Status::Delivered), None);
    }

    #[test]
    fn recipient_keys_round_trip() {
        let r = Recipient::Distributor(DistributorId::parse("north-hub").unwrap());
        assert_eq!(Recipient::from_key(&r.key()), Some(r));
        assert_eq!(Recipient::from_key("nobody:x"), None);
    }
}
