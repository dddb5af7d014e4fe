//! The WebSocket transports over a real loopback server, driven by Switchboard's client.

mod common;

use std::time::{Duration, Instant};

use common::{connect, publish, recv_json, recv_text, request, send, start, HttpStream, WAIT};
use serde_json::json;
use switchboard::Message;
use switchboard_hub::HubConfig;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn subscribe_publish_ack_and_receive() {
    let hub = start(HubConfig::default()).await;
    let mut ws = connect(hub.addr, "/ws").await;
    send(
        &mut ws,
        json!({"op": "subscribe", "channel": "chat", "ref": 1}),
    )
    .await;
    let sub = recv_json(&mut ws).await;
    assert_eq!(sub["op"], "subscribed");
    assert_eq!(
        (
            sub["channel"].as_str(),
            sub["recovered"].as_bool(),
            sub["ref"].as_i64()
        ),
        (Some("chat"), Some(false), Some(1))
    );
    let epoch = sub["epoch"].as_u64().unwrap();
    assert_eq!(sub["cursor"], format!("{epoch}:0"));

    send(
        &mut ws,
        json!({"op": "publish", "channel": "chat", "data": {"b": 1, "a": [2]}, "ref": "x"}),
    )
    .await;
    // The ack and the message may arrive in either order (they travel separately).
    let mut frames = [recv_json(&mut ws).await, recv_json(&mut ws).await];
    frames.sort_by_key(|f| f["op"].as_str().unwrap().to_owned());
    let ts = frames[0]["ts"].clone();
    assert!(ts.as_u64().is_some(), "{}", frames[0]);
    assert_eq!(
        frames[0],
        json!({"op": "ack", "channel": "chat", "id": 1, "epoch": epoch, "ts": ts, "ref": "x"})
    );
    assert_eq!(
        frames[1],
        json!({"op": "message", "channel": "chat", "id": 1, "ts": ts, "data": {"b": 1, "a": [2]}})
    );

    // REST publish reaches the WebSocket subscriber.
    let ts = publish(hub.addr, "chat", "from rest").await["ts"].clone();
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"op": "message", "channel": "chat", "id": 2, "ts": ts, "data": "from rest"})
    );
}

#[tokio::test]
async fn several_channels_and_unsubscribe() {
    let hub = start(HubConfig::default()).await;
    let mut ws = connect(hub.addr, "/ws").await;
    for ch in ["a", "b"] {
        send(&mut ws, json!({"op": "subscribe", "channel": ch})).await;
        assert_eq!(recv_json(&mut ws).await["op"], "subscribed");
    }
    publish(hub.addr, "a", "1").await;
    publish(hub.addr, "b", "2").await;
    let got: Vec<_> = vec![recv_json(&mut ws).await, recv_json(&mut ws).await]
        .into_iter()
        .map(|f| {
            (
                f["channel"].as_str().unwrap().to_owned(),
                f["data"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned())
        ]
    );
    send(
        &mut ws,
        json!({"op": "unsubscribe", "channel": "a", "ref": 9}),
    )
    .await;
    assert_eq!(
        recv_json(&mut ws).await,
        json!({"op": "unsubscribed", "channel": "a", "ref": 9})
    );
    publish(hub.addr, "a", "not for you").await;
    publish(hub.addr, "b", "3").await;
    let f = recv_json(&mut ws).await;
    assert_eq!(
        (f["channel"].as_str(), f["data"].as_str()),
        (Some("b"), Some("3"))
    );
}

#[tokio::test]
async fn resume_with_since_and_reset_on_foreign_epoch() {
    let mut config = HubConfig::default();
    config.history.max_messages = 3;
    let hub = start(config).await;
    let mut epoch = 0;
    for i in 1..=5 {
        epoch = publish(hub.addr, "c", &i.to_string()).await["epoch"]
            .as_u64()
            .unwrap();
    }
    let mut ws = connect(hub.addr, "/ws").await;
    send(
        &mut ws,
        json!({"op": "subscribe", "channel": "c", "since": 3, "epoch": epoch}),
    )
    .await;
    let sub = recv_json(&mut ws).await;
    assert_eq!(sub["recovered"], true);
    for id in [4, 5] {
        let m = recv_json(&mut ws).await;
        assert_eq!(
            (m["id"].as_u64(), m["data"].as_str()),
            (Some(id), Some(id.to_string().as_str()))
        );
    }
    // Too far back: reset, then live.
    send(
        &mut ws,
        json!({"op": "subscribe", "channel": "c", "since": format!("{epoch}:1")}),
    )
    .await;
    assert_eq!(recv_json(&mut ws).await["recovered"], false);
    let reset = recv_json(&mut ws).await;
    assert_eq!(
        (
            reset["op"].as_str(),
            reset["reason"].as_str(),
            reset["last"].as_u64()
        ),
        (Some("reset"), Some("expired"), Some(5))
    );
    // Another epoch.
    send(
        &mut ws,
        json!({"op": "subscribe", "channel": "c", "since": 5, "epoch": (epoch % 1000) + 1}),
    )
    .await;
    recv_json(&mut ws).await;
    assert_eq!(recv_json(&mut ws).await["reason"], "epoch_changed");
    publish(hub.addr, "c", "six").await;
    let m = recv_json(&mut ws).await;
    assert_eq!(
        (m["id"].as_u64(), m["data"].as_str()),
        (Some(6), Some("six"))
    );
}

#[tokio::test]
async fn protocol_errors_are_answered_not_fatal() {
    let mut config = HubConfig::default();
    config.limits.max_message_bytes = 32;
    let hub = start(config).await;
    let mut ws = connect(hub.addr, "/ws").await;
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(recv_json(&mut ws).await["code"], "invalid_message");
    send(&mut ws, json!({"op": "dance", "ref": 7})).await;
    let e = recv_json(&mut ws).await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_i64()),
        (Some("invalid_message"), Some(7))
    );
    send(
        &mut ws,
        json!({"op": "subscribe", "channel": "no/slash", "ref": [1]}),
    )
    .await;
    let e = recv_json(&mut ws).await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].clone(), e["channel"].as_str()),
        (Some("invalid_channel"), json!([1]), Some("no/slash"))
    );
    send(
        &mut ws,
        json!({"op": "publish", "channel": "c", "data": "x".repeat(40)}),
    )
    .await;
    assert_eq!(recv_json(&mut ws).await["code"], "message_too_large");
    send(
        &mut ws,
        json!({"op": "subscribe", "channel": "c", "since": "x:y", "ref": "s"}),
    )
    .await;
    let e = recv_json(&mut ws).await;
    assert_eq!(
        (e["code"].as_str(), e["ref"].as_str()),
        (Some("invalid_cursor"), Some("s"))
    );
    // Still usable.
    send(&mut ws, json!({"op": "ping", "ref": "p"})).await;
    assert_eq!(recv_json(&mut ws).await, json!({"op": "pong", "ref": "p"}));
}

#[tokio::test]
async fn chat_room_broadcasts_plain_text_to_everyone() {
    let hub = start(HubConfig::default()).await;
    let mut alice = connect(hub.addr, "/ws/room").await;
    let mut bob = connect(hub.addr, "/ws/room").await;
    alice.send(Message::Text("hi bob".into())).await.unwrap();
    assert_eq!(recv_text(&mut alice).await, "hi bob");
    assert_eq!(recv_text(&mut bob).await, "hi bob");
    bob.send(Message::Text("hi alice".into())).await.unwrap();
    assert_eq!(recv_text(&mut alice).await, "hi alice");
    assert_eq!(recv_text(&mut bob).await, "hi alice");
    // JSON published over REST arrives as its JSON text.
    let r = request(
        hub.addr,
        "POST",
        "/api/channels/room/messages",
        &[("content-type", "application/json")],
        br#"{"a": 1}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(recv_text(&mut bob).await, r#"{"a":1}"#);
    assert_eq!(recv_text(&mut alice).await, r#"{"a":1}"#);
    // The chat history is in the REST API too.
    let h = request(hub.addr, "GET", "/api/channels/room/messages", &[], b"")
        .await
        .json();
    assert_eq!(h["messages"][0]["data"], "hi bob");
    // Binary is refused with 1003.
    alice
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert!(tokio::time::timeout(WAIT, alice.recv())
        .await
        .unwrap()
        .is_none());
    assert_eq!(u16::from(alice.close_info().unwrap().code), 1003);
}

#[tokio::test]
async fn chat_room_resumes_with_since() {
    let hub = start(HubConfig::default()).await;
    let e = publish(hub.addr, "room", "one").await["epoch"]
        .as_u64()
        .unwrap();
    publish(hub.addr, "room", "two").await;
    let mut ws = connect(hub.addr, &format!("/ws/room?since={e}:1")).await;
    assert_eq!(recv_text(&mut ws).await, "two");
}

/// A long poll of `channel` (the hub's only channel) that waits for the next message,
/// once it is the channel's `subscribers`th subscriber: publish after this, not before.
async fn waiting_poll(
    hub: &common::Running,
    channel: &str,
    subscribers: usize,
) -> tokio::task::JoinHandle<serde_json::Value> {
    let addr = hub.addr;
    let path = format!("/poll/{channel}?timeout=10");
    let poll = tokio::spawn(async move { request(addr, "GET", &path, &[], b"").await.json() });
    let deadline = Instant::now() + WAIT;
    while hub.hub.channels().await.unwrap()[0].subscribers < subscribers {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    poll
}

/// One REST publish reaches WebSocket, chat room, SSE and long-poll subscribers alike.
#[tokio::test]
async fn rest_publish_reaches_every_transport() {
    let hub = start(HubConfig::default()).await;
    let mut ws = connect(hub.addr, "/ws").await;
    send(&mut ws, json!({"op": "subscribe", "channel": "news"})).await;
    recv_json(&mut ws).await;
    let mut room = connect(hub.addr, "/ws/news").await;
    let mut sse = HttpStream::open(hub.addr, "GET", "/sse/news", &[], b"").await;
    sse.next_sse_block().await.unwrap();
    let poll = waiting_poll(&hub, "news", 4).await;
    publish(hub.addr, "news", "extra").await;
    assert_eq!(recv_json(&mut ws).await["data"], "extra");
    assert_eq!(recv_text(&mut room).await, "extra");
    assert_eq!(
        sse.next_event().await.unwrap().data.as_deref(),
        Some("extra")
    );
    assert_eq!(poll.await.unwrap()["messages"][0]["data"], "extra");
}

#[tokio::test]
async fn plain_get_and_foreign_origin_are_refused() {
    let hub = start(HubConfig::default()).await;
    let r = request(hub.addr, "GET", "/ws", &[], b"").await;
    assert_eq!(r.status, 426);
    let r = request(
        hub.addr,
        "GET",
        "/ws/room",
        &[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("origin", "http://evil.example"),
        ],
        b"",
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["code"], "origin_not_allowed");
}

#[tokio::test]
async fn shutdown_closes_websockets_with_going_away() {
    let mut hub = start(HubConfig::default()).await;
    let mut ws = connect(hub.addr, "/ws").await;
    let mut room = connect(hub.addr, "/ws/room").await;
    send(&mut ws, json!({"op": "ping"})).await;
    recv_json(&mut ws).await;
    hub.stop.take().unwrap().send(()).unwrap();
    for c in [&mut ws, &mut room] {
        assert!(tokio::time::timeout(WAIT, c.recv())
            .await
            .unwrap()
            .is_none());
        assert_eq!(u16::from(c.close_info().unwrap().code), 1001);
    }
    tokio::time::timeout(WAIT, hub.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A WebSocket subscriber that reads nothing is dropped; a reading one gets everything and
/// the publisher is never held back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_websocket_subscriber_is_dropped() {
    const COUNT: usize = 1000;
    let mut config = HubConfig::default();
    config.limits.queue_size = 64;
    config.rate_limit.messages_per_second = 0.0;
    let hub = start(config).await;
    // The slow one: a raw handshake on a socket with a tiny receive window, then silence.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(hub.addr).await.unwrap();
    slow.write_all(
        format!(
            "GET /ws/c HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
             sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            hub.addr
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut fast = connect(hub.addr, "/ws/c").await;
    let deadline = Instant::now() + WAIT;
    while hub
        .hub
        .channels()
        .await
        .unwrap()
        .first()
        .map_or(0, |c| c.subscribers)
        < 2
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let channel = switchboard_hub::core::ChannelName::new("c").unwrap();
    let payload = "y".repeat(16 * 1024);
    let started = Instant::now();
    let mut received = 0;
    for i in 0..COUNT {
        hub.hub
            .publish(
                &channel,
                switchboard_hub::core::Payload::text(&payload),
                switchboard_hub::metrics::Transport::Rest,
            )
            .await
            .unwrap();
        // Read in step, staying well inside the fast client's queue.
        while received + 32 < i {
            assert_eq!(recv_text(&mut fast).await.len(), payload.len());
            received += 1;
        }
    }
    while received < COUNT {
        assert_eq!(recv_text(&mut fast).await.len(), payload.len());
        received += 1;
    }
    assert!(started.elapsed() < WAIT);
    let text =
        String::from_utf8(request(hub.addr, "GET", "/metrics", &[], b"").await.body).unwrap();
    assert!(
        text.contains("switchboard_slow_disconnects_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("switchboard_lagged_subscribers_total 1\n"),
        "{text}"
    );
    drop(slow);
}

#[tokio::test]
async fn subprotocols_are_selected_as_browsers_expect() {
    let hub = start(HubConfig::default()).await;
    let offer = |path: &str, protocols: &[&str]| {
        let url = format!("ws://{}{path}", hub.addr);
        let protocols: Vec<String> = protocols.iter().map(|p| p.to_string()).collect();
        async move {
            switchboard::Client::builder()
                .protocols(protocols)
                .connect(&url)
                .await
                .map(|(ws, _)| ws.protocol().map(str::to_owned))
        }
    };
    // `/ws` speaks its own protocol by name, and clients that offer none.
    assert_eq!(
        offer("/ws", &["x", "switchboard.v1"]).await.unwrap(),
        Some("switchboard.v1".to_owned())
    );
    assert_eq!(offer("/ws", &[]).await.unwrap(), None);
    // The chat room takes whatever a page offers first: it is plain text either way.
    assert_eq!(
        offer("/ws/room", &["chat", "other"]).await.unwrap(),
        Some("chat".to_owned())
    );
    assert_eq!(offer("/ws/room", &[]).await.unwrap(), None);
}

/// Whole ms since the Unix epoch, now.
fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The hub's `ts` of a message is one value, the same on every transport that carries
/// metadata, live and replayed, and in the publish's answers: `/ws` (ack, message, replay),
/// SSE `format=message` (live and after `Last-Event-ID`), long polling, history pages.
/// Existing SSE formats stay the bare payload.
#[tokio::test]
async fn every_transport_carries_the_hubs_time() {
    let hub = start(HubConfig::default()).await;
    let mut ws = connect(hub.addr, "/ws").await;
    send(&mut ws, json!({"op": "subscribe", "channel": "t"})).await;
    recv_json(&mut ws).await;
    let mut sse = HttpStream::open(hub.addr, "GET", "/sse/t?format=message", &[], b"").await;
    sse.next_sse_block().await.unwrap();
    let mut plain = HttpStream::open(hub.addr, "GET", "/sse/t?format=json", &[], b"").await;
    plain.next_sse_block().await.unwrap();
    let poll = waiting_poll(&hub, "t", 4).await;

    let before = now_ms();
    let answer = publish(hub.addr, "t", "one").await;
    let after = now_ms();
    let ts = answer["ts"].as_u64().expect("REST publish answers ts");
    assert!(
        (before..=after).contains(&ts),
        "{before} <= {ts} <= {after}"
    );

    let live = recv_json(&mut ws).await;
    assert_eq!(
        live,
        json!({"op": "message", "channel": "t", "id": 1, "ts": ts, "data": "one"})
    );
    let event = sse.next_event().await.unwrap();
    assert_eq!(
        event.id.as_deref(),
        Some(format!("{}:1", answer["epoch"]).as_str())
    );
    let data: serde_json::Value = serde_json::from_str(event.data.as_deref().unwrap()).unwrap();
    assert_eq!(data, json!({"id": 1, "ts": ts, "data": "one"}));
    assert_eq!(
        plain.next_event().await.unwrap().data.as_deref(),
        Some("\"one\""),
        "format=json is the payload alone, as before"
    );
    assert_eq!(
        poll.await.unwrap()["messages"],
        json!([{"id": 1, "ts": ts, "data": "one"}])
    );

    // A /ws publish: its ack and its message carry the same time.
    send(
        &mut ws,
        json!({"op": "publish", "channel": "t", "data": "two", "ref": 2}),
    )
    .await;
    let mut frames = [recv_json(&mut ws).await, recv_json(&mut ws).await];
    frames.sort_by_key(|f| f["op"].as_str().unwrap().to_owned());
    let ts2 = frames[0]["ts"].as_u64().expect("ack carries ts");
    assert_eq!(frames[1]["ts"].as_u64(), Some(ts2));
    assert!(ts2 >= ts, "times never go back along ids");

    // Replays carry the time the message had live.
    let history = request(
        hub.addr,
        "GET",
        "/api/channels/t/messages?since=0",
        &[],
        b"",
    )
    .await
    .json();
    assert_eq!(
        history["messages"],
        json!([{"id": 1, "ts": ts, "data": "one"}, {"id": 2, "ts": ts2, "data": "two"}])
    );
    let poll = request(hub.addr, "GET", "/poll/t?since=1", &[], b"")
        .await
        .json();
    assert_eq!(
        poll["messages"],
        json!([{"id": 2, "ts": ts2, "data": "two"}])
    );
    let mut again = connect(hub.addr, "/ws").await;
    send(
        &mut again,
        json!({"op": "subscribe", "channel": "t", "since": 0}),
    )
    .await;
    assert_eq!(recv_json(&mut again).await["recovered"], true);
    assert_eq!(recv_json(&mut again).await["ts"].as_u64(), Some(ts));
    assert_eq!(recv_json(&mut again).await["ts"].as_u64(), Some(ts2));
    let first = format!("{}:1", answer["epoch"]);
    let mut resumed = HttpStream::open(
        hub.addr,
        "GET",
        "/sse/t?format=message",
        &[("last-event-id", first.as_str())],
        b"",
    )
    .await;
    resumed.next_sse_block().await.unwrap();
    let data: serde_json::Value =
        serde_json::from_str(resumed.next_event().await.unwrap().data.as_deref().unwrap()).unwrap();
    assert_eq!(data, json!({"id": 2, "ts": ts2, "data": "two"}));
}
