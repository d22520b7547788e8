//! The library's own Socket.IO client (used by scenarios and the load
//! generator) against a real hub.

use std::time::Duration;

use parcel_hub::client::{Client, ClientError};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn the_library_client_connects_emits_and_matches_acks() {
    let app = spawn_app().await;
    let acme = Client::connect(
        &app.url(),
        "/vendor",
        Some(&vendor_auth("acme-widgets")),
        TIMEOUT,
    )
    .await
    .unwrap();
    assert!(!acme.sid.is_empty());
    let north = Client::connect(
        &app.url(),
        "/distributor",
        Some(&distributor_auth("north-hub")),
        TIMEOUT,
    )
    .await
    .unwrap();
    let (one, two) = (pickup("o-1", "north-hub"), pickup("o-2", "north-hub"));
    let (a, b) = tokio::join!(
        acme.emit_with_ack("pickup", &one, TIMEOUT),
        acme.emit_with_ack("pickup", &two, TIMEOUT),
    );
    assert_eq!(a.unwrap()["order"]["orderId"], json!("o-1"));
    assert_eq!(b.unwrap()["order"]["orderId"], json!("o-2"));
    let first = north.next_event(TIMEOUT).await.unwrap();
    assert_eq!(first.event, "pickup");
    assert!(north.next_event(TIMEOUT).await.is_some());
    assert!(north.next_event(QUIET_WINDOW).await.is_none());
}

#[tokio::test]
async fn the_library_client_reports_refusals() {
    let app = spawn_app().await;
    let err = Client::connect(&app.url(), "/vendor", None, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ClientError::Refused("bad_auth: vendorId is required".into())
    );
    let err = Client::connect(&app.url(), "/nowhere", None, TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err, ClientError::Refused("Invalid namespace".into()));
    let err = Client::connect("http://127.0.0.1:1", "/chat", None, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
}
