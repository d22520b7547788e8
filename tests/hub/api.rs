//! The JSON API (PROTOCOL.md "HTTP API"): statuses, envelopes, credentials,
//! and that an HTTP pickup notifies the distributor exactly as the event does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

fn basic(vendor: &str, token: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{vendor}:{token}")))
}

fn acme() -> String {
    basic("acme-widgets", "demo-acme")
}

async fn post_pickup(
    app: &TestApp,
    authorization: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/pickups", app.url()))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.expect("POST /api/pickups");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

async fn get(app: &TestApp, path: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{}{path}", app.url()));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    request.send().await.expect("GET")
}

#[tokio::test]
async fn an_http_pickup_is_created_once_then_reported_as_a_duplicate() {
    let app = spawn_app().await;
    let body = pickup("o-http-1", "north-hub").to_string();
    let (status, first) = post_pickup(&app, Some(&acme()), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_ok(&first);
    assert_eq!(first["duplicate"], json!(false));
    assert_eq!(first["order"]["vendorId"], json!("acme-widgets"));
    assert_eq!(first["order"]["status"], json!("pending"));
    assert!(
        first["messageId"]
            .as_str()
            .is_some_and(|m| m.starts_with("m-"))
    );

    let (status, again) = post_pickup(&app, Some(&acme()), &body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["duplicate"], json!(true));
    assert_eq!(again["order"], first["order"]);

    let mut changed = pickup("o-http-1", "north-hub");
    changed["address"] = json!("Portland, OR");
    let (status, conflict) = post_pickup(&app, Some(&acme()), &changed.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&conflict, "invalid_payload");
}

#[tokio::test]
async fn an_http_pickup_reaches_only_the_chosen_distributor() {
    let app = spawn_app().await;
    let north = distributor(&app, "north-hub").await;
    let south = distributor(&app, "south-hub").await;
    let (status, ack) = post_pickup(
        &app,
        Some(&acme()),
        &pickup("o-http-2", "north-hub").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let envelope = north.expect("pickup").await;
    assert_eq!(envelope["messageId"], ack["messageId"]);
    assert_eq!(envelope["order"]["orderId"], json!("o-http-2"));
    assert_eq!(envelope["order"]["vendorId"], json!("acme-widgets"));
    south.expect_none("pickup").await;
    // It is a queued message like any other: the distributor confirms it.
    let confirmed = north
        .ack("received", json!({ "messageId": envelope["messageId"] }))
        .await;
    assert_eq!(confirmed["removed"], json!(true));
}

#[tokio::test]
async fn http_pickups_without_good_vendor_credentials_are_unauthorized() {
    let app = spawn_app().await;
    let body = pickup("o-http-3", "north-hub").to_string();
    for authorization in [
        None,
        Some(basic("acme-widgets", "wrong")),
        Some(basic("nobody", "demo-acme")),
        Some("Basic not-base64!".to_owned()),
        Some("Bearer demo-admin".to_owned()),
    ] {
        let response = {
            let mut request = reqwest::Client::new()
                .post(format!("{}/api/pickups", app.url()))
                .header("content-type", "application/json")
                .body(body.clone());
            if let Some(a) = &authorization {
                request = request.header("authorization", a);
            }
            request.send().await.expect("POST")
        };
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
        let challenge = response.headers().get("www-authenticate").cloned();
        assert!(
            challenge.is_some_and(|c| c.to_str().is_ok_and(|c| c.starts_with("Basic"))),
            "a 401 says which credentials it wants"
        );
        let envelope: Value = response.json().await.expect("JSON");
        assert_error(&envelope, "unauthorized");
    }
    // Nothing was recorded by the refused attempts.
    let (status, _) = post_pickup(&app, Some(&acme()), &body).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn bad_http_bodies_get_the_invalid_payload_envelope() {
    let app = spawn_app().await;
    let (status, envelope) = post_pickup(&app, Some(&acme()), "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&envelope, "invalid_payload");

    let (status, envelope) = post_pickup(&app, Some(&acme()), "{}").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        assert_error(&envelope, "invalid_payload"),
        "orderId is required"
    );

    let (status, envelope) = post_pickup(&app, Some(&acme()), "[1, 2]").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&envelope, "invalid_payload");

    let (status, envelope) = post_pickup(
        &app,
        Some(&acme()),
        &pickup("o-http-4", "nowhere-hub").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&envelope, "unknown_distributor");

    let huge = json!({ "orderId": "o-big", "customer": "x".repeat(200 * 1024) }).to_string();
    let (status, envelope) = post_pickup(&app, Some(&acme()), &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&envelope, "invalid_payload");
}

#[tokio::test]
async fn an_order_is_readable_by_its_own_vendor_only() {
    let app = spawn_app().await;
    let (status, created) = post_pickup(
        &app,
        Some(&acme()),
        &pickup("o-http-5", "north-hub").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let response = get(&app, "/api/orders/acme-widgets/o-http-5", Some(&acme())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let found: Value = response.json().await.expect("JSON");
    assert_ok(&found);
    assert_eq!(found["order"], created["order"]);

    let flowers = basic("1-800-flowers", "demo-flowers");
    let response = get(&app, "/api/orders/acme-widgets/o-http-5", Some(&flowers)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_error(&response.json().await.expect("JSON"), "forbidden");

    let response = get(&app, "/api/orders/1-800-flowers/o-http-5", Some(&flowers)).await;
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "another vendor's order id is not theirs"
    );
    assert_error(&response.json().await.expect("JSON"), "unknown_order");

    let response = get(&app, "/api/orders/acme-widgets/o-missing", Some(&acme())).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_error(&response.json().await.expect("JSON"), "unknown_order");

    let response = get(&app, "/api/orders/acme-widgets/o-http-5", None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_error(&response.json().await.expect("JSON"), "unauthorized");
}

#[tokio::test]
async fn the_inspect_endpoint_needs_the_admin_token_and_shows_the_hub() {
    let app = spawn_app().await;
    for authorization in [None, Some("Bearer wrong"), Some("Basic YTpi")] {
        let response = get(&app, "/api/inspect", authorization).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{authorization:?}"
        );
        assert_error(&response.json().await.expect("JSON"), "unauthorized");
    }
    let _north = distributor(&app, "north-hub").await;
    let acme_socket = vendor(&app, "acme-widgets").await;
    assert_ok(
        &acme_socket
            .ack("pickup", pickup("o-http-6", "south-hub"))
            .await,
    );

    let response = get(&app, "/api/inspect", Some("Bearer demo-admin")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let snapshot: Value = response.json().await.expect("JSON");
    assert!(snapshot["at"].as_str().is_some());
    let names: Vec<&str> = snapshot["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .filter_map(|ns| ns["name"].as_str())
        .collect();
    // The demo hub serves /caps, listed last.
    assert_eq!(
        names,
        ["/vendor", "/distributor", "/chat", "/inspector", "/caps"]
    );
    let distributors = &snapshot["namespaces"][1];
    assert_eq!(
        distributors["sockets"][0]["identity"],
        json!("distributor north-hub")
    );
    assert_eq!(
        distributors["sockets"][0]["rooms"],
        json!(["distributor:north-hub"])
    );
    assert_eq!(
        distributors["rooms"],
        json!([{ "name": "distributor:north-hub", "members": [distributors["sockets"][0]["id"]] }])
    );
    // south-hub was offline: its pickup waits in its queue.
    assert_eq!(
        snapshot["queues"],
        json!([{ "owner": "distributor:south-hub", "depth": 1 }])
    );
}

#[tokio::test]
async fn each_vendor_has_its_own_budget_of_api_requests() {
    let app = spawn_app_with(|config| {
        config.rate_limit = 1;
        config.rate_burst = 1;
    })
    .await;
    let (status, _) = post_pickup(
        &app,
        Some(&acme()),
        &pickup("o-rate-1", "north-hub").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, envelope) = post_pickup(
        &app,
        Some(&acme()),
        &pickup("o-rate-2", "north-hub").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_error(&envelope, "rate_limited");
    // Another vendor is not slowed down by acme's requests.
    let flowers = basic("1-800-flowers", "demo-flowers");
    let (status, _) = post_pickup(
        &app,
        Some(&flowers),
        &pickup("o-rate-3", "north-hub").to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
}

fn north() -> String {
    basic("north-hub", "demo-north")
}

/// `GET path` with `authorization`: the status, the JSON body and the challenge.
async fn get_json(
    app: &TestApp,
    path: &str,
    authorization: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let response = get(app, path, authorization).await;
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|c| c.to_str().ok())
        .map(str::to_owned);
    (
        status,
        response.json().await.expect("a JSON answer"),
        challenge,
    )
}

#[tokio::test]
async fn orders_over_http_list_what_the_event_lists() {
    let app = spawn_app().await;
    for n in 0..5 {
        let (status, _) = post_pickup(
            &app,
            Some(&acme()),
            &pickup(
                &format!("o-{n}"),
                if n == 4 { "south-hub" } else { "north-hub" },
            )
            .to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let socket = vendor(&app, "acme-widgets").await;
    let truck = distributor(&app, "north-hub").await;
    assert_ok(
        &truck
            .ack(
                "in-transit",
                json!({ "vendorId": "acme-widgets", "orderId": "o-1" }),
            )
            .await,
    );
    for (path, authorization, client, query) in [
        (
            "/api/vendors/acme-widgets/orders",
            acme(),
            &socket,
            json!({}),
        ),
        (
            "/api/vendors/acme-widgets/orders?status=all&limit=2",
            acme(),
            &socket,
            json!({ "status": "all", "limit": 2 }),
        ),
        (
            "/api/distributors/north-hub/orders",
            north(),
            &truck,
            json!({}),
        ),
        (
            "/api/distributors/north-hub/orders?status=in-transit",
            north(),
            &truck,
            json!({ "status": "in-transit" }),
        ),
    ] {
        let (status, body, _) = get_json(&app, path, Some(&authorization)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_ok(&body);
        assert_eq!(body, client.ack("orders", query).await, "{path}");
    }
    // The next page over HTTP, with the cursor as given.
    let (_, first, _) = get_json(
        &app,
        "/api/vendors/acme-widgets/orders?status=all&limit=2",
        Some(&acme()),
    )
    .await;
    let next = first["next"].as_str().expect("a next page");
    let (status, second, _) = get_json(
        &app,
        &format!("/api/vendors/acme-widgets/orders?status=all&limit=2&before={next}"),
        Some(&acme()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["orders"].as_array().unwrap().len(), 2);
    assert_ne!(second["orders"][0], first["orders"][0]);
}

#[tokio::test]
async fn orders_over_http_need_that_partys_own_credentials() {
    let app = spawn_app().await;
    let vendor_path = "/api/vendors/acme-widgets/orders";
    let distributor_path = "/api/distributors/north-hub/orders";
    for (path, authorization, realm) in [
        (vendor_path, None, "parcel-hub vendor"),
        (
            vendor_path,
            Some(basic("acme-widgets", "wrong")),
            "parcel-hub vendor",
        ),
        (vendor_path, Some(north()), "parcel-hub vendor"),
        (distributor_path, None, "parcel-hub distributor"),
        (
            distributor_path,
            Some(basic("north-hub", "demo-south")),
            "parcel-hub distributor",
        ),
        (distributor_path, Some(acme()), "parcel-hub distributor"),
        (
            distributor_path,
            Some("Bearer demo-admin".to_owned()),
            "parcel-hub distributor",
        ),
    ] {
        let (status, body, challenge) = get_json(&app, path, authorization.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {authorization:?}");
        assert_error(&body, "unauthorized");
        let challenge = challenge.expect("a 401 says which credentials it wants");
        assert!(
            challenge.starts_with(&format!("Basic realm=\"{realm}\"")),
            "{challenge}"
        );
    }
    let (_, body, _) = get_json(&app, distributor_path, None).await;
    assert_eq!(
        body["error"]["message"],
        json!("send HTTP Basic credentials distributorId:token")
    );
    // Good credentials, another party's path.
    let flowers = basic("1-800-flowers", "demo-flowers");
    for (path, authorization, message) in [
        (
            vendor_path,
            flowers,
            "these credentials may read only their own vendor's orders",
        ),
        (
            distributor_path,
            basic("south-hub", "demo-south"),
            "these credentials may read only their own distributor's orders",
        ),
    ] {
        let (status, body, _) = get_json(&app, path, Some(&authorization)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(assert_error(&body, "forbidden"), message);
    }
}

#[tokio::test]
async fn bad_orders_queries_get_400_and_the_events_messages() {
    let app = spawn_app().await;
    let path = "/api/distributors/north-hub/orders";
    for (query, message) in [
        ("limit=0", "limit must be an integer from 1 to 500"),
        ("limit=501", "limit must be an integer from 1 to 500"),
        ("limit=ten", "limit must be an integer from 1 to 500"),
        (
            "status=done",
            "status must be one of open, pending, in-transit, delivered, all",
        ),
        (
            "status=open&status=all",
            "status must be given at most once",
        ),
    ] {
        let (status, body, _) = get_json(&app, &format!("{path}?{query}"), Some(&north())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(assert_error(&body, "invalid_payload"), message, "{query}");
    }
    let (status, body, _) = get_json(&app, &format!("{path}?before=abc"), Some(&north())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_error(&body, "invalid_payload").starts_with("before is not a cursor"));
    let (status, body, _) = get_json(&app, &format!("{path}?limit=%ZZ"), Some(&north())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error(&body, "invalid_payload");
    // Empty values read as absent, unknown parameters are ignored.
    let (status, body, _) =
        get_json(&app, &format!("{path}?before=&limit=&x=1"), Some(&north())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn each_distributor_has_its_own_budget_of_api_requests() {
    let app = spawn_app_with(|config| {
        config.rate_limit = 1;
        config.rate_burst = 1;
    })
    .await;
    let path = "/api/distributors/north-hub/orders";
    let (status, _, _) = get_json(&app, path, Some(&north())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = get_json(&app, path, Some(&north())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_error(&body, "rate_limited");
    let south = basic("south-hub", "demo-south");
    let (status, _, _) = get_json(&app, "/api/distributors/south-hub/orders", Some(&south)).await;
    assert_eq!(status, StatusCode::OK, "south's budget is its own");
    // A vendor's budget is apart from the distributors'.
    let (status, _, _) = get_json(&app, "/api/vendors/acme-widgets/orders", Some(&acme())).await;
    assert_eq!(status, StatusCode::OK);
}
