//! Issue 11, item 2 from outside: reads do not create channels, one address cannot sweep
//! through channel names, and history has a global byte budget.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{connect, publish, recv_json, request, send, start, HttpStream, WAIT};
use switchboard_hub::broker::{Broker, Delivery, MemoryBroker, MemoryBrokerConfig};
use switchboard_hub::core::{ChannelName, HistoryLimits, Payload, ResetReason};
use switchboard_hub::{Hub, HubConfig};

async fn get(addr: SocketAddr, path: &str) -> common::Response {
    request(addr, "GET", path, &[], b"").await
}

async fn channel_count(hub: &Hub) -> usize {
    hub.channels().await.unwrap().len()
}

/// Waits until `hub` has no channel left, for at most `limit`.
async fn until_no_channels(hub: &Hub, limit: Duration) -> usize {
    let started = Instant::now();
    loop {
        let n = channel_count(hub).await;
        if n == 0 || started.elapsed() > limit {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_unknown_channels_leave_no_channel_behind_on_any_transport() {
    let hub = start(HubConfig::default()).await;
    let addr = hub.addr;
    // History pages of 50 names nobody ever published to.
    let mut quiet_next = String::new();
    for i in 0..50 {
        let r = get(addr, &format!("/api/channels/quiet-{i}/messages?since=0")).await;
        assert_eq!(r.status, 200);
        let page = r.json();
        assert_eq!(page["messages"].as_array().unwrap().len(), 0, "{page}");
        assert!(page.get("reset").is_none(), "{page}");
        if i == 0 {
            quiet_next = page["next"].as_str().unwrap().to_owned();
        }
    }
    assert_eq!(
        channel_count(&hub.hub).await,
        0,
        "a history read created a channel"
    );
    // A long poll that answers at once, an SSE stream, a /ws subscription and a chat room,
    // each on a channel of its own, each gone again.
    let r = get(addr, "/poll/poll-1?timeout=0").await;
    assert_eq!(r.status, 200);
    let mut sse = HttpStream::open(addr, "GET", "/sse/sse-1", &[], b"").await;
    assert_eq!(sse.status, 200);
    sse.next_sse_block().await.expect("the preamble");
    let mut ws = connect(addr, "/ws").await;
    send(
        &mut ws,
        serde_json::json!({"op": "subscribe", "channel": "ws-1", "ref": 1}),
    )
    .await;
    assert_eq!(recv_json(&mut ws).await["op"], "subscribed");
    let chat = connect(addr, "/ws/chat-1").await;
    // While they listen, their channels exist (a publish must reach them)...
    assert!(channel_count(&hub.hub).await >= 3);
    drop((sse, ws, chat));
    // ...and when they are gone, so are the channels: no sweep needed.
    let left = until_no_channels(&hub.hub, Duration::from_secs(5)).await;
    assert_eq!(left, 0, "{:?}", hub.hub.channels().await.unwrap());

    // The cursor the first read handed out still holds once the channel exists: no reset.
    publish(addr, "quiet-0", "first").await;
    let r = get(
        addr,
        &format!("/api/channels/quiet-0/messages?since={quiet_next}"),
    )
    .await;
    let page = r.json();
    assert!(page.get("reset").is_none(), "{page}");
    assert_eq!(page["messages"][0]["data"], "first", "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_sweep_through_channel_names() {
    let config = HubConfig::from_toml(
        "[rate_limit]\nper_ip_reads_per_second = 0.5\nper_ip_read_burst = 20\n",
    )
    .unwrap();
    let hub = start(config).await;
    let addr = hub.addr;
    for i in 0..20 {
        let r = get(addr, &format!("/api/channels/c-{i}/messages")).await;
        assert_eq!(r.status, 200, "read {i}");
    }
    // The 21st read, on any read path, is refused with a time to retry.
    for path in [
        "/api/channels/c-20/messages",
        "/poll/c-20?timeout=0",
        "/sse/c-20",
    ] {
        let r = get(addr, path).await;
        assert_eq!(
            r.status,
            429,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.header("retry-after").is_some(), "{path}");
    }
    let mut ws = connect(addr, "/ws").await;
    send(
        &mut ws,
        serde_json::json!({"op": "subscribe", "channel": "c-20", "ref": 7}),
    )
    .await;
    let answer = recv_json(&mut ws).await;
    assert_eq!(
        (
            answer["op"].as_str(),
            answer["code"].as_str(),
            &answer["ref"]
        ),
        (Some("error"), Some("rate_limited"), &serde_json::json!(7)),
        "{answer}"
    );
    // Another address is not held back by the first.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new("127.0.0.2".parse().unwrap(), 0))
        .unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let mut other =
        HttpStream::open_on(tcp, addr, "GET", "/api/channels/c-20/messages", &[], b"").await;
    assert_eq!(other.status, 200);
    while other.fill().await {}
    assert_eq!(channel_count(&hub.hub).await, 0);
}

fn chan(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

#[tokio::test]
async fn history_has_a_global_byte_budget_that_evicts_the_oldest_first() {
    const BUDGET: usize = 64 << 10;
    let broker = MemoryBroker::new(MemoryBrokerConfig {
        history: HistoryLimits {
            max_messages: 1000,
            max_age: None,
        },
        history_max_bytes: BUDGET,
        ..MemoryBrokerConfig::default()
    });
    let kib = Payload::text(&"x".repeat(1024));
    // The oldest history of the hub: 20 messages in one channel.
    let mut old = None;
    for _ in 0..20 {
        old.get_or_insert(broker.publish(chan("old"), kib.clone()).await.unwrap());
    }
    let old = old.unwrap();
    // Then 300 KiB more, over 100 channels: publishing never fails...
    for round in 0..3 {
        for i in 0..100 {
            broker
                .publish(chan(&format!("new-{i}")), kib.clone())
                .await
                .unwrap_or_else(|e| panic!("round {round}, channel {i}: {e}"));
        }
    }
    // ...history stays within the budget...
    let held = broker.history_bytes();
    assert!(
        held <= BUDGET,
        "history holds {held} bytes, budget {BUDGET}"
    );
    assert!(held > BUDGET / 2, "{held}: evicted far more than needed");
    // ...the oldest messages went first: the old channel is empty, the newest are kept...
    let page = broker.history(chan("old"), None, 100).await.unwrap();
    assert!(
        page.messages.is_empty(),
        "{} old messages kept",
        page.messages.len()
    );
    let newest = broker.history(chan("new-99"), None, 100).await.unwrap();
    let ids: Vec<u64> = newest.messages.iter().map(|m| m.id().get()).collect();
    assert_eq!(
        ids.last(),
        Some(&3),
        "the newest message of the hub was evicted"
    );
    let early = broker.history(chan("new-0"), None, 100).await.unwrap();
    assert!(
        early.messages.iter().all(|m| m.id().get() == 3),
        "messages of the first rounds outlived newer ones"
    );
    // ...and a client resuming from before them is told plainly.
    let before_old =
        switchboard_hub::core::Cursor::new(old.epoch(), switchboard_hub::core::MessageId::ZERO);
    let mut sub = broker
        .subscribe(chan("old"), Some(before_old))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, sub.next()).await.unwrap() {
        Some(Delivery::Reset { reason, .. }) => assert_eq!(reason, ResetReason::Expired),
        other => panic!("{other:?}"),
    }
}

/// The value of the metric line starting with `name` (labels included) in `/metrics`.
async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let r = get(addr, "/metrics").await;
    let text = String::from_utf8(r.body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_replays_are_not_counted_as_fanout_latency() {
    let hub = start(HubConfig::default()).await;
    let addr = hub.addr;
    for i in 0..5 {
        publish(addr, "replayed", &format!("m{i}")).await;
    }
    // Five messages replayed from history over a long poll and over SSE...
    let r = get(addr, "/poll/replayed?since=0&timeout=0").await;
    assert_eq!(r.json()["messages"].as_array().unwrap().len(), 5);
    let mut sse = HttpStream::open(addr, "GET", "/sse/replayed?since=0", &[], b"").await;
    sse.next_sse_block().await.expect("the preamble");
    for _ in 0..5 {
        sse.next_event().await.expect("a replayed event");
    }
    // ...then one live message to the SSE stream.
    publish(addr, "replayed", "live").await;
    let live = sse.next_event().await.expect("the live event");
    assert_eq!(live.data.as_deref(), Some("live"));
    assert_eq!(
        metric(addr, "switchboard_messages_out_total{transport=\"sse\"}").await,
        6.0
    );
    assert_eq!(
        metric(addr, "switchboard_fanout_latency_seconds_count").await,
        1.0,
        "replays were observed as fan-out latency"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_connection_gauge_counts_every_rest_request_in_flight() {
    let hub = start(HubConfig {
        admin_api: true,
        ..HubConfig::default()
    })
    .await;
    let addr = hub.addr;
    let rest_total = "switchboard_connections_total{transport=\"rest\"}";
    let rest_open = "switchboard_connections{transport=\"rest\"}";
    let before = metric(addr, rest_total).await;
    for path in [
        "/api/channels",
        "/api/channels/c/messages",
        "/api/channels/c/presence",
        "/api/admin/connections",
    ] {
        assert_eq!(get(addr, path).await.status, 200, "{path}");
    }
    assert_eq!(metric(addr, rest_total).await - before, 4.0);
    // A publish whose body has not arrived yet is an open REST connection.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut slow,
        b"POST /api/channels/c/messages HTTP/1.1\r\nhost: hub\r\ncontent-length: 5\r\n\r\nhe",
    )
    .await
    .unwrap();
    let started = Instant::now();
    while metric(addr, rest_open).await < 1.0 {
        assert!(
            started.elapsed() < WAIT,
            "the pending publish is not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(slow);
    while metric(addr, rest_open).await > 0.0 {
        assert!(started.elapsed() < WAIT, "the gauge did not come down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
