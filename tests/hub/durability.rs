//! Nothing acknowledged is lost when the hub process is killed, and a
//! graceful stop exits cleanly.

use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn every_acknowledged_pickup_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let mut hub = HubProcess::start([OsStr::new("--db"), db.as_os_str()]);
    let acme = try_connect(
        &hub.url,
        "/vendor",
        Some(vendor_auth("acme-widgets")),
        Transport::WebSocket,
    )
    .await
    .unwrap();
    let mut acknowledged = Vec::new();
    for n in 0..50 {
        let ack = acme
            .ack("pickup", pickup(&format!("o-{n}"), "north-hub"))
            .await;
        assert_ok(&ack);
        acknowledged.push(ack["messageId"].as_str().unwrap().to_owned());
    }
    // SIGKILL: no chance to flush anything that was not already committed.
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    drop(hub);

    let hub = HubProcess::start([OsStr::new("--db"), db.as_os_str()]);
    let north = try_connect(
        &hub.url,
        "/distributor",
        Some(distributor_auth("north-hub")),
        Transport::WebSocket,
    )
    .await
    .unwrap();
    let all = north.ack("getAll", json!({})).await;
    let found: Vec<String> = all["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(found, acknowledged);
}

#[tokio::test]
async fn sigterm_disconnects_sockets_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = HubProcess::start([OsStr::new("--db"), dir.path().join("hub.db").as_os_str()]);
    let _alice = try_connect(
        &hub.url,
        "/chat",
        Some(json!({ "name": "alice" })),
        Transport::WebSocket,
    )
    .await
    .unwrap();
    // A half-sent request and an idle connection must not hold the exit.
    let addr = hub.url.trim_start_matches("http://").to_owned();
    let mut half = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, b"POST /api/pickups HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let _idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let pid = hub.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = hub.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hub did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
}

#[tokio::test]
async fn a_graceful_stop_keeps_everything_and_a_new_hub_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hub.db");
    let app = spawn_app_with(|c| c.db = db.clone()).await;
    let acme = vendor(&app, "acme-widgets").await;
    let ack = acme.ack("pickup", pickup("o-1", "south-hub")).await;
    app.stop().await;
    let app = spawn_app_with(|c| c.db = db.clone()).await;
    let south = distributor(&app, "south-hub").await;
    let all = south.ack("getAll", json!({})).await;
    assert_eq!(all["messages"][0]["messageId"], ack["messageId"]);
    assert_eq!(all["messages"][0]["order"], ack["order"]);
}
