//! Each namespace has its own middleware; each refusal says why.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_vendor_without_auth_is_told_what_is_missing() {
    let app = spawn_app().await;
    assert_eq!(
        refusal(&app, "/vendor", None).await,
        "bad_auth: vendorId is required"
    );
    assert_eq!(
        refusal(&app, "/vendor", Some(json!({ "vendorId": "acme-widgets" }))).await,
        "bad_auth: token is required"
    );
    assert_eq!(
        refusal(
            &app,
            "/vendor",
            Some(json!({ "vendorId": "bad id!", "token": "x" }))
        )
        .await,
        "bad_auth: vendorId may contain only A-Z a-z 0-9 . _ -"
    );
    assert_eq!(
        refusal(
            &app,
            "/vendor",
            Some(json!({ "vendorId": 42, "token": "x" }))
        )
        .await,
        "bad_auth: vendorId must be a string"
    );
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_and_never_echoed() {
    let app = spawn_app().await;
    let message = refusal(
        &app,
        "/vendor",
        Some(json!({ "vendorId": "acme-widgets", "token": "sekret-guess" })),
    )
    .await;
    assert_eq!(message, "unauthorized: unknown vendor or wrong token");
    let message = refusal(
        &app,
        "/distributor",
        Some(json!({ "distributorId": "nobody", "token": "demo-north" })),
    )
    .await;
    assert_eq!(message, "unauthorized: unknown distributor or wrong token");
}

#[tokio::test]
async fn a_vendor_token_is_refused_on_the_distributor_namespace() {
    let app = spawn_app().await;
    let message = refusal(&app, "/distributor", Some(vendor_auth("acme-widgets"))).await;
    assert_eq!(message, "bad_auth: distributorId is required");
    let message = refusal(
        &app,
        "/distributor",
        Some(json!({ "distributorId": "north-hub", "token": "demo-acme" })),
    )
    .await;
    assert!(message.starts_with("unauthorized: "), "{message}");
}

#[tokio::test]
async fn chat_needs_a_name() {
    let app = spawn_app().await;
    assert_eq!(
        refusal(&app, "/chat", None).await,
        "bad_auth: name is required"
    );
    assert_eq!(
        refusal(&app, "/chat", Some(json!({ "name": "   " }))).await,
        "bad_auth: name is required"
    );
    assert_eq!(
        refusal(&app, "/chat", Some(json!("alice"))).await,
        "bad_auth: auth must be a JSON object"
    );
}

#[tokio::test]
async fn there_is_no_root_namespace_and_no_other_name() {
    let app = spawn_app().await;
    assert_eq!(refusal(&app, "/", None).await, "Invalid namespace");
    assert_eq!(refusal(&app, "/nope", None).await, "Invalid namespace");
    assert_eq!(
        refusal(&app, "/Vendor", Some(vendor_auth("acme-widgets"))).await,
        "Invalid namespace"
    );
}

#[tokio::test]
async fn refusals_also_work_over_long_polling() {
    let app = spawn_app().await;
    let result = try_connect(&app.url(), "/vendor", None, Transport::Polling).await;
    assert_eq!(
        result.err().as_deref(),
        Some("bad_auth: vendorId is required")
    );
}
