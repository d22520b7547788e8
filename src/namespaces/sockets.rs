//! The sockets of every hub, for the inspector and `GET /api/inspect`.
//!
//! With the local adapter these are this hub's sockets; with the cluster's
//! Redis adapter, every hub answers for its own (`fetch_sockets`), and only
//! what a hub knows of its own sockets (identity, transport, connection
//! time) is filled in for them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;

use super::Session;
use crate::protocol::rfc3339;

/// A socket of any hub of the cluster, as the inspector shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSocket {
    pub namespace: &'static str,
    pub id: String,
    /// The Socket.IO server id of the hub the socket is connected to.
    pub hub: String,
    /// True when it is connected to this hub.
    pub local: bool,
    pub rooms: Vec<String>,
    /// Known for this hub's sockets; for others, read from their vendor or
    /// distributor room (a chat name lives only on its own hub).
    pub identity: Option<String>,
    /// Known for this hub's sockets only.
    pub transport: Option<&'static str>,
    /// Known for this hub's sockets only.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_time"
    )]
    pub connected_at: Option<DateTime<Utc>>,
}

fn optional_time<S: serde::Serializer>(
    at: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, s),
        None => s.serialize_none(),
    }
}

/// Why the cluster could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("could not list the sockets of {namespace}: {cause}")]
pub struct ListError {
    pub namespace: &'static str,
    pub cause: String,
}

/// The identity a vendor or distributor room names (`vendor:acme` -> `vendor acme`).
fn identity_from_rooms(rooms: &[String]) -> Option<String> {
    rooms.iter().find_map(|room| {
        let (kind, id) = room.split_once(':')?;
        matches!(kind, "vendor" | "distributor").then(|| format!("{kind} {id}"))
    })
}

/// Every socket of `namespaces` on every hub, with its rooms, sorted by
/// namespace, hub and id. With the local adapter this is this hub's sockets.
pub(crate) async fn sockets<A: Adapter>(
    io: &SocketIo<A>,
    namespaces: &[&'static str],
) -> Result<Vec<ClusterSocket>, ListError> {
    let this_hub = io.config().server_id.to_string();
    let mut out = Vec::new();
    for &namespace in namespaces {
        let Some(ops) = io.of(namespace) else {
            continue;
        };
        let failed = |e: A::Error| ListError {
            namespace,
            cause: e.to_string(),
        };
        let everyone = ops.clone().fetch_sockets().await.map_err(failed)?;
        let mut rooms_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for room in ops.clone().rooms().await.map_err(failed)? {
            let members = ops
                .clone()
                .within(room.clone())
                .fetch_sockets()
                .await
                .map_err(failed)?;
            for member in members {
                rooms_of
                    .entry(member.data().id.to_string())
                    .or_default()
                    .push(room.to_string());
            }
        }
        let local: HashMap<String, _> = ops
            .sockets()
            .into_iter()
            .map(|s| (s.id.to_string(), s))
            .collect();
        for remote in everyone {
            let data = remote.data();
            let id = data.id.to_string();
            let mut rooms = rooms_of.remove(&id).unwrap_or_default();
            rooms.sort();
            let here = local.get(&id);
            let session = here.and_then(|s| s.extensions.get::<Session>());
            out.push(ClusterSocket {
                namespace,
                hub: data.server_id.to_string(),
                local: data.server_id.to_string() == this_hub,
                identity: session
                    .as_ref()
                    .map(|s| s.label.to_string())
                    .or_else(|| identity_from_rooms(&rooms)),
                transport: here.map(|s| s.transport_type().into()),
                connected_at: session.map(|s| s.connected_at),
                rooms,
                id,
            });
        }
    }
    out.sort_by(|a, b| (a.namespace, &a.hub, &a.id).cmp(&(b.namespace, &b.hub, &b.id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_identities_come_from_their_rooms() {
        let rooms = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            identity_from_rooms(&rooms(&["distributor:north-hub"])),
            Some("distributor north-hub".into())
        );
        assert_eq!(identity_from_rooms(&rooms(&["chat:lobby"])), None);
    }
}
