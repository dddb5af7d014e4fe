//! The admin API: listing and killing subscriber connections, and clients recovering.

mod common;

use common::{publish, request, start, HttpStream, WAIT};
use switchboard::Message;
use switchboard_hub::HubConfig;

fn admin_config() -> HubConfig {
    HubConfig {
        admin_api: true,
        ..HubConfig::default()
    }
}

#[tokio::test]
async fn admin_api_is_off_by_default() {
    let hub = start(HubConfig::default()).await;
    let r = request(hub.addr, "GET", "/api/admin/connections", &[], b"").await;
    assert_eq!(r.status, 404);
    let r = request(hub.addr, "POST", "/api/admin/disconnect", &[], b"").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn list_and_kill_then_resume() {
    let hub = start(admin_config()).await;
    let mut sse = HttpStream::open(hub.addr, "GET", "/sse/room", &[], b"").await;
    sse.next_sse_block().await.unwrap();
    let (mut ws, _) = switchboard::connect(&format!("ws://{}/ws/room", hub.addr))
        .await
        .unwrap();
    let first = publish(hub.addr, "room", "one").await;
    let e = first["epoch"].as_u64().unwrap();
    assert_eq!(sse.next_event().await.unwrap().data.as_deref(), Some("one"));
    match tokio::time::timeout(WAIT, ws.recv()).await.unwrap() {
        Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), "one"),
        other => panic!("{other:?}"),
    }

    let list = request(hub.addr, "GET", "/api/admin/connections", &[], b"")
        .await
        .json();
    let mut kinds: Vec<_> = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["transport"].as_str().unwrap().to_owned(),
                c["channels"].clone(),
            )
        })
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        [
            ("chatroom".to_owned(), serde_json::json!(["room"])),
            ("sse".to_owned(), serde_json::json!(["room"]))
        ]
    );

    // Kill the SSE connection only.
    let r = request(
        hub.addr,
        "POST",
        "/api/admin/disconnect?transport=sse&channel=room",
        &[],
        b"",
    )
    .await;
    assert_eq!(r.json()["disconnected"], 1);
    assert!(sse.next_sse_block().await.is_none(), "stream should end");
    // Missed while down; the reconnect with Last-Event-ID gets exactly those.
    publish(hub.addr, "room", "two").await;
    publish(hub.addr, "room", "three").await;
    let mut sse = HttpStream::open(
        hub.addr,
        "GET",
        "/sse/room",
        &[("last-event-id", &format!("{e}:1"))],
        b"",
    )
    .await;
    assert_eq!(sse.next_event().await.unwrap().data.as_deref(), Some("two"));
    assert_eq!(
        sse.next_event().await.unwrap().data.as_deref(),
        Some("three")
    );
    // The WebSocket was untouched.
    for want in ["two", "three"] {
        match tokio::time::timeout(WAIT, ws.recv()).await.unwrap() {
            Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), want),
            other => panic!("{other:?}"),
        }
    }
    // Now kill everything: the WebSocket is dropped without a close frame.
    let r = request(hub.addr, "POST", "/api/admin/disconnect", &[], b"").await;
    assert_eq!(r.json()["disconnected"], 2);
    let end = tokio::time::timeout(WAIT, ws.recv()).await.unwrap();
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
}

#[tokio::test]
async fn admin_needs_an_admin_token_when_auth_is_on() {
    let secret = "admin test secret, long enough";
    let config = HubConfig {
        auth: Some(switchboard_hub::config::AuthConfig {
            jwt_secret: secret.into(),
        }),
        ..admin_config()
    };
    let hub = start(config).await;
    let key = switchboard_hub::security::JwtKey::new(secret.as_bytes());
    let user = key.sign(&switchboard_hub::security::Claims {
        subscribe: vec!["*".into()],
        ..Default::default()
    });
    let admin = key.sign(&switchboard_hub::security::Claims {
        admin: true,
        ..Default::default()
    });
    let r = request(hub.addr, "GET", "/api/admin/connections", &[], b"").await;
    assert_eq!(r.status, 401);
    let r = request(
        hub.addr,
        "GET",
        &format!("/api/admin/connections?token={user}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 403);
    let r = request(
        hub.addr,
        "GET",
        &format!("/api/admin/connections?token={admin}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
}
