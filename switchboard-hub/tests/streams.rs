//! SSE and long polling over a real loopback server.

mod common;

use std::time::{Duration, Instant};

use common::{publish, request, start, HttpStream, WAIT};
use switchboard_hub::HubConfig;

fn epoch_of(published: &serde_json::Value) -> u64 {
    published["epoch"].as_u64().unwrap()
}

#[tokio::test]
async fn sse_delivers_and_resumes_from_last_event_id() {
    let hub = start(HubConfig::default()).await;
    let mut sse = HttpStream::open(hub.addr, "GET", "/sse/chat", &[], b"").await;
    assert_eq!(sse.status, 200);
    assert!(sse.headers.contains("text/event-stream"), "{}", sse.headers);
    // Preamble: retry and a starting id, no data.
    let pre = sse.next_sse_block().await.unwrap();
    assert_eq!(pre.retry.as_deref(), Some("1000"));
    assert!(pre.data.is_none());
    let first = publish(hub.addr, "chat", "hello\nworld").await;
    let e = epoch_of(&first);
    assert_eq!(pre.id, Some(format!("{e}:0")));
    let ev = sse.next_event().await.unwrap();
    assert_eq!(ev.id, Some(format!("{e}:1")));
    assert_eq!(ev.data.as_deref(), Some("hello\nworld"));
    drop(sse);

    // Missed while disconnected.
    for t in ["two", "three", "four"] {
        publish(hub.addr, "chat", t).await;
    }
    let last_id = format!("{e}:1");
    let mut sse = HttpStream::open(
        hub.addr,
        "GET",
        "/sse/chat?since=0",
        &[("last-event-id", &last_id)],
        b"",
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let ev = sse.next_event().await.unwrap();
        got.push((ev.id.unwrap(), ev.data.unwrap()));
    }
    assert_eq!(
        got,
        [
            (format!("{e}:2"), "two".to_owned()),
            (format!("{e}:3"), "three".to_owned()),
            (format!("{e}:4"), "four".to_owned()),
        ]
    );
    // Then live, with no duplicate.
    publish(hub.addr, "chat", "five").await;
    let ev = sse.next_event().await.unwrap();
    assert_eq!(ev.id, Some(format!("{e}:5")));
}

#[tokio::test]
async fn sse_json_format_and_since_query() {
    let hub = start(HubConfig::default()).await;
    let p = publish(hub.addr, "c", "text").await;
    let e = epoch_of(&p);
    let mut sse = HttpStream::open(hub.addr, "GET", "/sse/c?since=0&format=json", &[], b"").await;
    let ev = sse.next_event().await.unwrap();
    assert_eq!(
        (ev.id, ev.data),
        (Some(format!("{e}:1")), Some("\"text\"".into()))
    );
}

#[tokio::test]
async fn sse_reset_when_history_is_gone() {
    let mut config = HubConfig::default();
    config.history.max_messages = 2;
    let hub = start(config).await;
    let mut e = 0;
    for i in 0..5 {
        e = epoch_of(&publish(hub.addr, "c", &i.to_string()).await);
    }
    let mut sse = HttpStream::open(
        hub.addr,
        "GET",
        "/sse/c",
        &[("last-event-id", &format!("{e}:1"))],
        b"",
    )
    .await;
    let ev = sse.next_event().await.unwrap();
    assert_eq!(ev.event.as_deref(), Some("reset"));
    assert_eq!(ev.id, Some(format!("{e}:5")));
    let data: serde_json::Value = serde_json::from_str(ev.data.as_deref().unwrap()).unwrap();
    assert_eq!(data["reason"], "expired");
    assert_eq!(data["last"], 5);
    publish(hub.addr, "c", "live").await;
    assert_eq!(
        sse.next_event().await.unwrap().data.as_deref(),
        Some("live")
    );
}

#[tokio::test]
async fn sse_heartbeat_comments() {
    let mut config = HubConfig::default();
    config.limits.sse_heartbeat_secs = 1;
    let hub = start(config).await;
    let mut sse = HttpStream::open(hub.addr, "GET", "/sse/c", &[], b"").await;
    sse.next_sse_block().await.unwrap(); // preamble
    let started = Instant::now();
    let beat = sse.next_sse_block().await.unwrap();
    assert_eq!(beat.comments, ["ping"]);
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn long_poll_returns_at_once_or_waits() {
    let hub = start(HubConfig::default()).await;
    let p = publish(hub.addr, "c", "one").await;
    let e = epoch_of(&p);
    // Something after since=0: immediate.
    let r = request(hub.addr, "GET", "/poll/c?since=0", &[], b"").await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(
        body["messages"],
        serde_json::json!([{"id": 1, "ts": p["ts"], "data": "one"}])
    );
    assert_eq!(body["next"], format!("{e}:1"));

    // Nothing after 1: waits until a publish.
    let addr = hub.addr;
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let r = request(
            addr,
            "GET",
            &format!("/poll/c?since={e}:1&timeout=10"),
            &[],
            b"",
        )
        .await;
        (started.elapsed(), r.json())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let two = publish(hub.addr, "c", "two").await;
    let (elapsed, body) = tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert_eq!(
        body["messages"],
        serde_json::json!([{"id": 2, "ts": two["ts"], "data": "two"}])
    );

    // Timeout: empty answer, cursor unchanged.
    let started = Instant::now();
    let r = request(
        hub.addr,
        "GET",
        &format!("/poll/c?since={e}:2&timeout=0.3"),
        &[],
        b"",
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(r.json()["messages"], serde_json::json!([]));
    assert_eq!(r.json()["next"], format!("{e}:2"));
}

/// A client that keeps polling with `next` sees every message once, in order, even those
/// published while it was between requests.
#[tokio::test]
async fn long_poll_loses_nothing_between_polls() {
    let hub = start(HubConfig::default()).await;
    let addr = hub.addr;
    let publisher = tokio::spawn(async move {
        for i in 0..60 {
            publish(addr, "c", &i.to_string()).await;
            if i % 7 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let mut cursor = "0".to_owned();
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 60 && Instant::now() < deadline {
        let r = request(
            addr,
            "GET",
            &format!("/poll/c?since={cursor}&timeout=2&limit=7"),
            &[],
            b"",
        )
        .await;
        let body = r.json();
        assert!(body.get("reset").is_none(), "{body}");
        for m in body["messages"].as_array().unwrap() {
            seen.push(m["data"].as_str().unwrap().parse::<u32>().unwrap());
        }
        cursor = body["next"].as_str().unwrap().to_owned();
        // Dawdle between polls, as a browser does.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    publisher.await.unwrap();
    assert_eq!(seen, (0..60).collect::<Vec<_>>());
}

#[tokio::test]
async fn long_poll_reports_reset() {
    let mut config = HubConfig::default();
    config.history.max_messages = 1;
    let hub = start(config).await;
    publish(hub.addr, "c", "a").await;
    let e = epoch_of(&publish(hub.addr, "c", "b").await);
    let r = request(hub.addr, "GET", "/poll/c?since=0", &[], b"").await;
    let body = r.json();
    assert_eq!(body["reset"]["reason"], "expired");
    assert_eq!(body["next"], format!("{e}:2"));
}

#[tokio::test]
async fn http_publish_rate_limit_per_client() {
    let mut config = HubConfig::default();
    config.rate_limit.messages_per_second = 1.0;
    config.rate_limit.burst = 2;
    let hub = start(config).await;
    publish(hub.addr, "c", "1").await;
    publish(hub.addr, "c", "2").await;
    let r = request(hub.addr, "POST", "/api/channels/c/messages", &[], b"3").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
}

/// A subscriber that reads nothing does not slow the publisher or a reading subscriber; it
/// is reported lagged, disconnected, and counted in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sse_subscriber_is_dropped_not_waited_for() {
    const COUNT: usize = 1000;
    let mut config = HubConfig::default();
    // Room for the reader to be descheduled for a moment, far less than the slow one's
    // socket buffers plus queue can hide.
    config.limits.queue_size = 64;
    config.limits.max_message_bytes = 64 * 1024;
    config.rate_limit.messages_per_second = 0.0;
    let hub = start(config).await;
    let addr = hub.addr;
    // The slow one: opens the stream, then never reads.
    let mut slow = HttpStream::open_small_window(addr, "/sse/c").await;
    // The fast one reads everything.
    let mut fast = HttpStream::open(addr, "GET", "/sse/c", &[], b"").await;
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = received.clone();
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < COUNT {
            match fast.next_event().await {
                Some(ev) if ev.event.is_none() => {
                    n += 1;
                    counter.store(n, std::sync::atomic::Ordering::Relaxed);
                }
                Some(ev) => panic!("fast subscriber got {ev:?}"),
                None => break,
            }
        }
        n
    });
    let payload = "x".repeat(16 * 1024);
    let started = Instant::now();
    for i in 0..COUNT {
        // Stay within a window of the reading subscriber (so it never lags itself); the
        // slow one imposes nothing.
        while i > received.load(std::sync::atomic::Ordering::Relaxed) + 32 {
            // A publisher held back by the slow subscriber would wait forever (it never
            // reads), so a generous bound keeps this a liveness check, not a timing one.
            assert!(started.elapsed() < WAIT * 2, "publisher held back");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Publish straight into the hub: this measures fan-out, not the REST path.
        hub.hub
            .publish(
                &switchboard_hub::core::ChannelName::new("c").unwrap(),
                switchboard_hub::core::Payload::text(&payload),
                switchboard_hub::metrics::Transport::Rest,
            )
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    let publish_time = started.elapsed();
    eprintln!("published {COUNT} in {publish_time:?}");
    let got = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    assert_eq!(got, COUNT);
    assert!(publish_time < WAIT, "{publish_time:?}");
    assert!(hub.hub.metrics().lagged_subscribers() >= 1);
    let metrics = request(addr, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("switchboard_slow_disconnects_total 1\n"),
        "{text}"
    );
    // The slow client finds its stream cut short once it reads again.
    let mut events = 0;
    while let Some(ev) = slow.next_sse_block().await {
        if ev.data.is_some() {
            events += 1;
        }
    }
    assert!(events < COUNT, "{events}");
}

#[tokio::test]
async fn shutdown_ends_streams_and_returns() {
    let mut hub = start(HubConfig::default()).await;
    let mut sse = HttpStream::open(hub.addr, "GET", "/sse/c", &[], b"").await;
    sse.next_sse_block().await.unwrap();
    let addr = hub.addr;
    let poll =
        tokio::spawn(async move { request(addr, "GET", "/poll/c?timeout=20", &[], b"").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    hub.stop.take().unwrap().send(()).unwrap();
    // The SSE stream ends...
    assert!(sse.next_sse_block().await.is_none());
    // ...the long poll answers...
    let r = tokio::time::timeout(WAIT, poll).await.unwrap().unwrap();
    assert_eq!(r.status, 200);
    // ...and serve returns well before the grace period.
    tokio::time::timeout(WAIT, hub.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}
