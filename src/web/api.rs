//! The JSON API beside the pages (PROTOCOL.md "HTTP API"), for scripts and curl.
//!
//! It calls the same operations as the namespaces ([`crate::ops`]), so
//! `POST /api/pickups` is the `pickup` event by another door: same
//! validation, same store write, same notification to the distributor,
//! same envelope. Every failure is one [`ApiError`], which maps to one
//! status and one error envelope.

use std::net::{IpAddr, SocketAddr};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::Value;
use socketioxide::adapter::Adapter;

use super::WebState;
use crate::activity::Incoming;
use crate::domain::{DistributorId, Identity, OrderId, Recipient, VendorId};
use crate::namespaces::inspector::{Snapshot, snapshot};
use crate::namespaces::{Courier, order_ack, orders_ack};
use crate::ops;
use crate::protocol::{
    ErrorCode, OrderView, OrdersRequest, Refusal, error_envelope, event, ns, ok_envelope,
    parse_pickup,
};
use crate::state::{HubState, retry_seconds, throttled_message};
use crate::telemetry::{REASON_CHARS, clip};

/// Which credentials an endpoint wanted, for the `WWW-Authenticate` header.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scheme {
    /// `Basic vendorId:token`.
    Vendor,
    /// `Basic distributorId:token`.
    Distributor,
    /// `Bearer <admin token>`.
    Admin,
}

/// Why an API request failed; each case is one status and one envelope.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// Refused like the matching event would be (status from the code).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Credentials missing or not accepted (401).
    #[error("unauthorized: {message}")]
    Unauthorized {
        scheme: Scheme,
        message: &'static str,
    },
    /// Too many failed sign-ins from this client's address (429): it is
    /// refused, whatever it sends, until its window ends.
    #[error("rate_limited: {}", throttled_message(*retry_after))]
    Throttled { retry_after: std::time::Duration },
    /// The body is larger than the hub accepts (413).
    #[error("the request body is too large")]
    TooLarge,
}

/// The HTTP status of an ack error code.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidPayload | ErrorCode::UnknownEvent => StatusCode::BAD_REQUEST,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::UnknownOrder | ErrorCode::UnknownDistributor => StatusCode::NOT_FOUND,
        ErrorCode::InvalidTransition => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Every refusal is logged with its reason, whatever the door; a
        // refused sign-in was already logged where its address is known
        // (see `signed_in`), within that address's budget of lines.
        if !matches!(
            self,
            ApiError::Unauthorized { .. } | ApiError::Throttled { .. }
        ) {
            let reason = self.to_string();
            tracing::warn!(
                reason = %crate::telemetry::clip(&reason, crate::telemetry::REASON_CHARS),
                "HTTP request refused"
            );
        }
        match self {
            ApiError::Refused(refusal) => {
                (status_of(refusal.code), Json(refusal.envelope())).into_response()
            }
            ApiError::Unauthorized { scheme, message } => {
                let challenge = match scheme {
                    Scheme::Vendor => r#"Basic realm="parcel-hub vendor", charset="UTF-8""#,
                    Scheme::Distributor => {
                        r#"Basic realm="parcel-hub distributor", charset="UTF-8""#
                    }
                    Scheme::Admin => r#"Bearer realm="parcel-hub admin""#,
                };
                (
                    StatusCode::UNAUTHORIZED,
                    [(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static(challenge),
                    )],
                    Json(error_envelope("unauthorized", message)),
                )
                    .into_response()
            }
            ApiError::Throttled { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                [(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_seconds(retry_after)),
                )],
                Json(error_envelope(
                    ErrorCode::RateLimited.as_str(),
                    &throttled_message(retry_after),
                )),
            )
                .into_response(),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(error_envelope(
                    ErrorCode::InvalidPayload.as_str(),
                    "the request body is too large",
                )),
            )
                .into_response(),
        }
    }
}

/// The value of `Authorization` after `scheme ` (the scheme is case-insensitive).
pub(crate) fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (given, rest) = value.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// What the Basic refusals of one kind of party say.
struct BasicDoor {
    scheme: Scheme,
    missing: &'static str,
    shape: &'static str,
    unknown: &'static str,
}

const VENDOR_DOOR: BasicDoor = BasicDoor {
    scheme: Scheme::Vendor,
    missing: "send HTTP Basic credentials vendorId:token",
    shape: "the Basic credentials must be vendorId:token",
    unknown: "unknown vendor or wrong token",
};

const DISTRIBUTOR_DOOR: BasicDoor = BasicDoor {
    scheme: Scheme::Distributor,
    missing: "send HTTP Basic credentials distributorId:token",
    shape: "the Basic credentials must be distributorId:token",
    unknown: "unknown distributor or wrong token",
};

/// The client's address, from the connection the request came on (the
/// hub's HTTP loop records it; `None` for a router driven without one).
pub(crate) type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn address_of(peer: &Peer) -> Option<IpAddr> {
    peer.as_ref().map(|Extension(ConnectInfo(addr))| addr.ip())
}

/// Why the credentials of a request were not accepted.
enum Failed {
    /// Missing or not in the scheme's shape: a client that does not know
    /// the door, not a guess.
    Unreadable(&'static str),
    /// Well formed, and wrong: a guess, counted against the address.
    Wrong(&'static str),
}

/// Runs `check` on a request's credentials, through the per-address
/// sign-in throttle the Socket.IO namespaces use ([`crate::state::SignInThrottle`]):
/// an address past its budget of failures is refused (429, `Retry-After`)
/// without looking at what it sent, so a right guess is not told apart
/// from a wrong one; a wrong answer spends from the budget. Refusals are
/// logged with their reason, within the address's budget of log lines.
fn signed_in<T>(
    hub: &HubState,
    peer: Option<IpAddr>,
    scheme: Scheme,
    check: impl FnOnce() -> Result<T, Failed>,
) -> Result<T, ApiError> {
    let refusal = match peer.and_then(|ip| hub.sign_ins.blocked(ip)) {
        Some(retry_after) => ApiError::Throttled { retry_after },
        None => match check() {
            Ok(found) => return Ok(found),
            Err(Failed::Unreadable(message)) => ApiError::Unauthorized { scheme, message },
            Err(Failed::Wrong(message)) => {
                if let Some(ip) = peer {
                    hub.sign_ins.failed(ip);
                }
                ApiError::Unauthorized { scheme, message }
            }
        },
    };
    let _hub = hub.activity.span().enter();
    if hub.activity.may_log_refusal(peer) {
        let code = match refusal {
            ApiError::Throttled { .. } => ErrorCode::RateLimited.as_str(),
            _ => "unauthorized",
        };
        // The reason, never the credentials.
        let reason = refusal.to_string();
        tracing::warn!(peer = ?peer, code, reason = %clip(&reason, REASON_CHARS), "HTTP request refused");
    }
    Err(refusal)
}

/// The party named by HTTP Basic `id:token`, if `accept` takes the id
/// and token, and its request budget is not spent.
fn authenticate_basic<A: Adapter, T>(
    state: &WebState<A>,
    peer: &Peer,
    headers: &HeaderMap,
    door: &BasicDoor,
    accept: impl FnOnce(&str, &str) -> Option<T>,
    party: impl FnOnce(&T) -> Recipient,
) -> Result<T, ApiError> {
    let found = signed_in(&state.hub, address_of(peer), door.scheme, || {
        let encoded = authorization(headers, "Basic").ok_or(Failed::Unreadable(door.missing))?;
        let decoded = BASE64
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(Failed::Unreadable(
                "the Basic credentials are not valid base64 UTF-8",
            ))?;
        let (id, token) = decoded
            .split_once(':')
            .ok_or(Failed::Unreadable(door.shape))?;
        accept(id, token).ok_or(Failed::Wrong(door.unknown))
    })?;
    match &state.party_limits {
        Some(limits) if limits.check_key(&party(&found)).is_err() => {
            Err(Refusal::new(ErrorCode::RateLimited, "too many requests; slow down").into())
        }
        _ => Ok(found),
    }
}

/// The vendor named by HTTP Basic `vendorId:token`, if the token matches
/// and the vendor's request budget is not spent.
fn authenticate_vendor<A: Adapter>(
    state: &WebState<A>,
    peer: &Peer,
    headers: &HeaderMap,
) -> Result<VendorId, ApiError> {
    authenticate_basic(
        state,
        peer,
        headers,
        &VENDOR_DOOR,
        |id, token| {
            VendorId::parse(id)
                .ok()
                .filter(|vendor| state.hub.vendor_sign_in(vendor, Some(token)).is_ok())
        },
        |vendor| Recipient::Vendor(vendor.clone()),
    )
}

/// The distributor named by HTTP Basic `distributorId:token`, as for vendors.
fn authenticate_distributor<A: Adapter>(
    state: &WebState<A>,
    peer: &Peer,
    headers: &HeaderMap,
) -> Result<DistributorId, ApiError> {
    authenticate_basic(
        state,
        peer,
        headers,
        &DISTRIBUTOR_DOOR,
        |id, token| {
            DistributorId::parse(id).ok().filter(|distributor| {
                state
                    .hub
                    .distributor_sign_in(distributor, Some(token))
                    .is_ok()
            })
        },
        |distributor| Recipient::Distributor(distributor.clone()),
    )
}

/// The admin token as `Authorization: Bearer <token>` (the API's admin
/// endpoints and `/metrics`), through the same throttle as Basic.
pub(crate) fn authenticate_admin(
    hub: &HubState,
    peer: &Peer,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    signed_in(
        hub,
        address_of(peer),
        Scheme::Admin,
        || match authorization(headers, "Bearer") {
            Some(token) if hub.credentials.admin_token_ok(token) => Ok(()),
            Some(_) => Err(Failed::Wrong("wrong admin token")),
            None => Err(Failed::Unreadable(
                "send the admin token as Authorization: Bearer <token>",
            )),
        },
    )
}

/// A JSON body, or the `invalid_payload` envelope instead of axum's plain text.
fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            Refusal::new(
                ErrorCode::InvalidPayload,
                "the request body could not be read",
            )
            .into()
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Refusal::new(
            ErrorCode::InvalidPayload,
            format!("the body is not valid JSON: {e}"),
        )
        .into()
    })
}

/// `GET /api/inspect` (admin): the inspector snapshot.
pub(crate) async fn inspect<A: Adapter>(
    State(state): State<WebState<A>>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Json<Snapshot>, ApiError> {
    authenticate_admin(&state.hub, &peer, &headers)?;
    Ok(Json(snapshot(&state.hub, &state.io).await?))
}

/// `POST /api/pickups` (vendor): the `pickup` event over HTTP.
pub(crate) async fn post_pickup<A: Adapter>(
    State(state): State<WebState<A>>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let vendor = authenticate_vendor(&state, &peer, &headers)?;
    let payload = json_body(body)?;
    let courier = Courier::new(&state.io, &state.hub);
    let handling = async {
        let result = match parse_pickup(&payload) {
            Ok(pickup) => ops::submit_pickup(&state.hub, &courier, &vendor, pickup).await,
            Err(refusal) => Err(refusal),
        };
        courier.now_if_quiet().await;
        // The inspector shows it as the vendor's `pickup`, arriving over HTTP.
        state.hub.activity.incoming(Incoming {
            namespace: ns::VENDOR,
            event: event::PICKUP,
            socket: "http",
            identity: &Identity::Vendor(vendor.clone()).to_string(),
            outcome: result.as_ref().map_or_else(|r| r.code.as_str(), |_| "ok"),
            reason: result.as_ref().err().map(|r| r.message.as_str()),
            payload: &payload,
            peer: None,
        });
        result
    };
    let recorded = crate::activity::cause_first(&state.hub.activity, handling).await;
    courier.dispatch();
    let recorded = recorded?;
    let status = if recorded.duplicate() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(order_ack(&recorded))))
}

/// The answer of `GET /api/orders/{vendorId}/{orderId}`.
#[derive(Debug, Serialize)]
struct OrderFound<'a> {
    order: OrderView<'a>,
}

/// `GET /api/orders/{vendorId}/{orderId}` (that vendor): one order.
pub(crate) async fn get_order<A: Adapter>(
    State(state): State<WebState<A>>,
    peer: Peer,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let vendor = authenticate_vendor(&state, &peer, &headers)?;
    let Path((vendor_id, order_id)) =
        path.map_err(|_| Refusal::new(ErrorCode::InvalidPayload, "the path is not valid UTF-8"))?;
    if vendor.as_str() != vendor_id {
        return Err(Refusal::new(
            ErrorCode::Forbidden,
            "these credentials may read only their own vendor's orders",
        )
        .into());
    }
    let order_id = OrderId::parse(&order_id).map_err(Refusal::from)?;
    let order = ops::order_of(&state.hub, &vendor, &order_id).await?;
    Ok(Json(ok_envelope(&OrderFound {
        order: OrderView::from(&order),
    })))
}

/// The path's id must be the authenticated party's own.
fn own_path(
    path: Result<Path<String>, PathRejection>,
    party: &str,
    forbidden: &'static str,
) -> Result<(), ApiError> {
    let Path(id) =
        path.map_err(|_| Refusal::new(ErrorCode::InvalidPayload, "the path is not valid UTF-8"))?;
    if id == party {
        Ok(())
    } else {
        Err(Refusal::new(ErrorCode::Forbidden, forbidden).into())
    }
}

/// A page of `party`'s orders: the `orders` event by another door.
async fn list_orders(
    hub: &HubState,
    party: &Recipient,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(pairs) = query.map_err(|e| {
        Refusal::new(
            ErrorCode::InvalidPayload,
            format!("the query string is not valid: {}", e.body_text()),
        )
    })?;
    let request = OrdersRequest::from_query(&pairs, party)?;
    let page = ops::list_orders(hub, party, &request).await?;
    Ok(Json(orders_ack(party, &request, &page)))
}

/// `GET /api/vendors/{vendorId}/orders` (that vendor): its orders.
pub(crate) async fn get_vendor_orders<A: Adapter>(
    State(state): State<WebState<A>>,
    peer: Peer,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let vendor = authenticate_vendor(&state, &peer, &headers)?;
    own_path(
        path,
        vendor.as_str(),
        "these credentials may read only their own vendor's orders",
    )?;
    list_orders(&state.hub, &Recipient::Vendor(vendor), query).await
}

/// `GET /api/distributors/{distributorId}/orders` (that distributor): the
/// orders sent to it.
pub(crate) async fn get_distributor_orders<A: Adapter>(
    State(state): State<WebState<A>>,
    peer: Peer,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let distributor = authenticate_distributor(&state, &peer, &headers)?;
    own_path(
        path,
        distributor.as_str(),
        "these credentials may read only their own distributor's orders",
    )?;
    list_orders(&state.hub, &Recipient::Distributor(distributor), query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_has_the_status_of_the_protocol_table() {
        assert_eq!(
            status_of(ErrorCode::InvalidPayload),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status_of(ErrorCode::Forbidden), StatusCode::FORBIDDEN);
        assert_eq!(status_of(ErrorCode::UnknownOrder), StatusCode::NOT_FOUND);
        assert_eq!(
            status_of(ErrorCode::UnknownDistributor),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_of(ErrorCode::RateLimited),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            status_of(ErrorCode::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn the_authorization_scheme_is_case_insensitive() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  t0k "),
        );
        assert_eq!(authorization(&headers, "Bearer"), Some("t0k"));
        assert_eq!(authorization(&headers, "Basic"), None);
        assert_eq!(authorization(&HeaderMap::new(), "Bearer"), None);
    }
}
