//! The broker contract: one set of test functions, run against `MemoryBroker` (two hubs
//! over one broker) and `RedisBroker` (two nodes on one real `redis-server` that each test
//! starts on a free loopback port). Then Redis-only failure cases: a restart with and
//! without persistence, a killed pub/sub connection, publishes while Redis is down.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use redis_server::RedisServer;
use switchboard_hub::broker::{RedisBroker, RedisBrokerConfig};
use switchboard_hub::core::ResetReason;
use switchboard_hub::core::{ChannelName, Cursor, Epoch, HistoryLimits, MessageId, Payload};
use switchboard_hub::metrics::Transport;
use switchboard_hub::{
    BrokerError, Delivery, Hub, HubOptions, MemoryBroker, MemoryBrokerConfig, PublishError,
    Subscription,
};

/// Upper bound for one wait.
const WAIT: Duration = Duration::from_secs(10);

/// Two hubs sharing channels, and the Redis behind them (if any).
struct Pair {
    a: Hub,
    b: Hub,
    redis: Option<RedisServer>,
}

#[derive(Clone, Copy)]
enum Kind {
    Memory,
    Redis,
}

fn limits(max_messages: usize) -> HistoryLimits {
    HistoryLimits {
        max_messages,
        max_age: Some(Duration::from_secs(600)),
    }
}

async fn redis_hub(url: &str, max_messages: usize, queue_size: usize) -> Hub {
    let broker = RedisBroker::connect(RedisBrokerConfig {
        url: url.to_owned(),
        key_prefix: "contract:".into(),
        history: limits(max_messages),
        queue_size,
        max_channels: 100,
        check_interval: Duration::from_millis(200),
    })
    .await
    .expect("connect to the test redis");
    Hub::new(Arc::new(broker), HubOptions::default())
}

async fn pair(kind: Kind, max_messages: usize, queue_size: usize) -> Pair {
    match kind {
        Kind::Memory => {
            let broker = Arc::new(MemoryBroker::new(MemoryBrokerConfig {
                history: limits(max_messages),
                queue_size,
                max_channels: 100,
                ..MemoryBrokerConfig::default()
            }));
            Pair {
                a: Hub::new(broker.clone(), HubOptions::default()),
                b: Hub::new(broker, HubOptions::default()),
                redis: None,
            }
        }
        Kind::Redis => {
            let redis = RedisServer::start();
            let url = redis.url();
            Pair {
                a: redis_hub(&url, max_messages, queue_size).await,
                b: redis_hub(&url, max_messages, queue_size).await,
                redis: Some(redis),
            }
        }
    }
}

fn chan(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

async fn publish(hub: &Hub, ch: &ChannelName, text: &str) -> switchboard_hub::Published {
    hub.publish(ch, Payload::text(text), Transport::Rest)
        .await
        .unwrap()
}

/// The next delivery, within [`WAIT`].
async fn next(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("no delivery in time")
        .expect("subscription ended")
}

/// The next message's (id, text), skipping nothing.
async fn next_message(sub: &mut Subscription) -> (u64, String) {
    match next(sub).await {
        Delivery::Message(m) => (m.id().get(), m.data().plain_text().into_owned()),
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Ids of the next `n` messages, ignoring `Lagged` notices (which lose nothing).
async fn ids(sub: &mut Subscription, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n {
        match next(sub).await {
            Delivery::Message(m) => out.push(m.id().get()),
            Delivery::Lagged { .. } => {}
            other => panic!("after {out:?}: {other:?}"),
        }
    }
    out
}

async fn ids_and_epochs(kind: Kind) {
    let p = pair(kind, 100, 64).await;
    let (x, y) = (chan("x"), chan("y"));
    let x1 = publish(&p.a, &x, "1").await;
    let x2 = publish(&p.b, &x, "2").await;
    let y1 = publish(&p.a, &y, "1").await;
    let x3 = publish(&p.a, &x, "3").await;
    assert_eq!(
        (x1.id.get(), x2.id.get(), x3.id.get(), y1.id.get()),
        (1, 2, 3, 1),
        "ids count per channel, whichever hub publishes"
    );
    assert_eq!(x1.epoch, x2.epoch, "both hubs agree on the epoch");
    assert_eq!(x1.epoch, x3.epoch);
    assert_ne!(x1.epoch, y1.epoch, "each channel draws its own epoch");
    let page = p.b.history(&x, None, 10).await.unwrap();
    let got: Vec<_> = page.messages.iter().map(|m| m.id().get()).collect();
    assert_eq!((got, page.epoch), (vec![1, 2, 3], x1.epoch));
}

async fn resume_exactly_once(kind: Kind) {
    let p = pair(kind, 100, 64).await;
    let c = chan("c");
    let mut cursor = None;
    for i in 1..=5 {
        let m = publish(&p.a, &c, &i.to_string()).await;
        if i == 2 {
            cursor = Some(m.cursor());
        }
    }
    let mut sub = p.b.subscribe(&c, cursor).await.unwrap();
    assert!(sub.recovered());
    assert_eq!(next_message(&mut sub).await, (3, "3".into()));
    publish(&p.a, &c, "6").await;
    assert_eq!(ids(&mut sub, 3).await, [4, 5, 6]);
    assert_eq!(sub.cursor().id.get(), 6);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err(),
        "nothing more: no duplicate of the replay"
    );
    // A subscription without `since` is live only.
    let mut live = p.a.subscribe(&c, None).await.unwrap();
    assert!(!live.recovered());
    publish(&p.b, &c, "7").await;
    assert_eq!(next_message(&mut live).await, (7, "7".into()));
}

async fn reset_when_history_does_not_reach(kind: Kind) {
    let p = pair(kind, 3, 64).await;
    let c = chan("c");
    let first = publish(&p.a, &c, "x").await;
    for _ in 0..9 {
        publish(&p.a, &c, "x").await;
    }
    let mut sub = p.b.subscribe(&c, Some(first.cursor())).await.unwrap();
    assert!(!sub.recovered());
    match next(&mut sub).await {
        Delivery::Reset {
            reason: ResetReason::Expired,
            last,
            epoch,
        } => assert_eq!((last.get(), epoch), (10, first.epoch)),
        other => panic!("{other:?}"),
    }
    publish(&p.a, &c, "x").await;
    assert_eq!(next_message(&mut sub).await.0, 11);
    // Another epoch, and a cursor ahead of the channel.
    let other = Epoch::new(first.epoch.get() % 1000 + 1).unwrap();
    let mut sub =
        p.a.subscribe(&c, Some(Cursor::new(other, MessageId::new(11))))
            .await
            .unwrap();
    assert!(matches!(
        next(&mut sub).await,
        Delivery::Reset {
            reason: ResetReason::EpochChanged,
            ..
        }
    ));
    let ahead = Cursor::new(first.epoch, MessageId::new(99));
    let mut sub = p.b.subscribe(&c, Some(ahead)).await.unwrap();
    assert!(matches!(
        next(&mut sub).await,
        Delivery::Reset {
            reason: ResetReason::Ahead,
            ..
        }
    ));
    // History pages say the same.
    let page = p.b.history(&c, Some(first.cursor()), 10).await.unwrap();
    assert_eq!(page.reset, Some(ResetReason::Expired));
    assert_eq!(page.next.id.get(), 8, "just before the oldest retained (9)");
}

/// A subscriber that does not read while far more than its ring is published loses
/// nothing: it is told it lagged, then continues from history, in order.
async fn lag(kind: Kind) {
    let p = pair(kind, 1000, 4).await;
    let c = chan("c");
    let mut slow = p.a.subscribe(&c, None).await.unwrap();
    for i in 0..200 {
        publish(&p.b, &c, &i.to_string()).await;
    }
    // Give the broker time to push everything through the ring.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut saw_lag = false;
    let mut got = Vec::new();
    while got.len() < 200 {
        match next(&mut slow).await {
            Delivery::Message(m) => got.push(m.id().get()),
            Delivery::Lagged { missed } => {
                assert!(missed > 0);
                saw_lag = true;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(saw_lag, "a 4-slot ring cannot hold 200 messages");
    assert_eq!(got, (1..=200).collect::<Vec<_>>());
}

async fn concurrent_publishers(kind: Kind) {
    let p = pair(kind, 10_000, 1024).await;
    let c = chan("c");
    let mut on_a = p.a.subscribe(&c, None).await.unwrap();
    let mut on_b = p.b.subscribe(&c, None).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..4 {
        let hub = if t % 2 == 0 { p.a.clone() } else { p.b.clone() };
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..50 {
                acked.push(publish(&hub, &c, &format!("{t}-{i}")).await.id.get());
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let acked = t.await.unwrap();
        assert!(
            acked.windows(2).all(|w| w[0] < w[1]),
            "one publisher's ids increase"
        );
        all.extend(acked);
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=200).collect::<Vec<_>>(),
        "every id handed out once"
    );
    assert_eq!(ids(&mut on_a, 200).await, all);
    assert_eq!(ids(&mut on_b, 200).await, all);
}

async fn unsubscribe_on_drop(kind: Kind) {
    let p = pair(kind, 10, 64).await;
    let c = chan("c");
    let s1 = p.a.subscribe(&c, None).await.unwrap();
    let s2 = p.a.subscribe(&c, None).await.unwrap();
    let count = |hub: Hub| async move {
        let list = hub.channels().await.unwrap();
        list.iter()
            .find(|i| i.name.as_str() == "c")
            .map_or(0, |i| i.subscribers)
    };
    assert_eq!(count(p.a.clone()).await, 2);
    drop(s1);
    assert_eq!(count(p.a.clone()).await, 1);
    drop(s2);
    assert_eq!(count(p.a.clone()).await, 0);
    if let Some(redis) = &p.redis {
        // The node leaves the Redis channel too (at its next check tick).
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let reply = redis.command(&["PUBSUB", "NUMSUB", "contract:{c}"]);
            if reply.ends_with(":0\r\n") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still subscribed: {reply:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn two_instances_see_one_channel(kind: Kind) {
    let p = pair(kind, 100, 64).await;
    let c = chan("room");
    let mut on_a = p.a.subscribe(&c, None).await.unwrap();
    let mut on_b = p.b.subscribe(&c, None).await.unwrap();
    let m = publish(&p.b, &c, "from b").await;
    publish(&p.a, &c, "from a").await;
    assert_eq!(next_message(&mut on_a).await, (m.id.get(), "from b".into()));
    assert_eq!(next_message(&mut on_a).await.1, "from a");
    assert_eq!(next_message(&mut on_b).await.1, "from b");
    assert_eq!(next_message(&mut on_b).await.1, "from a");
    let (ha, hb) = (
        p.a.history(&c, None, 10).await.unwrap(),
        p.b.history(&c, None, 10).await.unwrap(),
    );
    let text = |p: &switchboard_hub::core::Page| -> Vec<String> {
        p.messages
            .iter()
            .map(|m| m.data().plain_text().into_owned())
            .collect()
    };
    assert_eq!(text(&ha), text(&hb));
}

/// Presence through the hubs: a join on one is seen on the other, counts and lists agree,
/// a goodbye leaves once everywhere.
async fn presence_across_hubs(kind: Kind) {
    use switchboard_hub::broker::PresenceUpdate;
    use switchboard_hub::core::{ClientId, PresenceEntry};
    let p = pair(kind, 100, 64).await;
    let c = chan("who");
    let (snap, mut watch) = p.b.watch_presence(&c, 10).await.unwrap();
    assert_eq!(snap.counts.clients, 0);
    let entry = PresenceEntry {
        client: ClientId::new("ann-1").unwrap(),
        user: Some(Arc::from("ann")),
        info: Some(Payload::text("ann")),
    };
    let guard = p.a.join_presence(&c, entry.clone()).await.unwrap();
    let event = |u: Option<PresenceUpdate>| match u {
        Some(PresenceUpdate::Event(ev)) => (ev.kind(), ev.entry().as_ref().clone()),
        other => panic!("{other:?}"),
    };
    let got = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("no join");
    assert_eq!(event(got), ("join", entry.clone()));
    let (la, lb) = (
        p.a.presence(&c, 10).await.unwrap(),
        p.b.presence(&c, 10).await.unwrap(),
    );
    assert_eq!(la, lb);
    assert_eq!((lb.counts.clients, lb.counts.users), (1, 1));
    assert_eq!(lb.entries[0].as_ref(), &entry);
    assert_eq!(
        p.b.presence_counts(vec![c.clone()]).await.unwrap()[0].clients,
        1
    );
    guard.leave();
    let got = tokio::time::timeout(WAIT, watch.next())
        .await
        .expect("no leave");
    assert_eq!(event(got), ("leave", entry));
    assert_eq!(p.b.presence(&c, 10).await.unwrap().counts.clients, 0);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watch.next())
            .await
            .is_err()
    );
}

/// A message's time (`ts`) is set once, where it is accepted, and is the same on every hub:
/// in the publish's answer, live on the other hub, in either hub's history and replays. With
/// Redis it is Redis's clock, kept from going back along the channel's ids.
async fn one_time_on_every_hub(kind: Kind) {
    let p = pair(kind, 100, 64).await;
    let c = chan("clock");
    let mut on_b = p.b.subscribe(&c, None).await.unwrap();
    let first = publish(&p.a, &c, "1").await;
    let second = publish(&p.b, &c, "2").await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        first.ts <= second.ts && second.ts <= now_ms + 1000 && first.ts + 60_000 > now_ms,
        "{first:?} {second:?} now {now_ms}"
    );
    for want in [first, second] {
        match next(&mut on_b).await {
            Delivery::Message(m) => assert_eq!((m.id(), m.published_ms()), (want.id, want.ts)),
            other => panic!("expected a message, got {other:?}"),
        }
    }
    let times = |page: &switchboard_hub::core::Page| -> Vec<u64> {
        page.messages.iter().map(|m| m.published_ms()).collect()
    };
    let want = vec![first.ts, second.ts];
    assert_eq!(times(&p.a.history(&c, None, 10).await.unwrap()), want);
    assert_eq!(times(&p.b.history(&c, None, 10).await.unwrap()), want);
    let mut replay =
        p.b.subscribe(&c, Some(Cursor::id_only(MessageId::ZERO)))
            .await
            .unwrap();
    for want in [first, second] {
        match next(&mut replay).await {
            Delivery::Message(m) => assert_eq!(m.published_ms(), want.ts),
            other => panic!("expected a message, got {other:?}"),
        }
    }
    if let Some(redis) = &p.redis {
        // A channel whose last entry is an hour ahead of Redis's clock (as if the clock was
        // stepped back since): the next message takes that time, not an earlier one.
        let ahead = (now_ms + 3_600_000).to_string();
        for cmd in [
            &["SET", "contract:{stepped}:seq", "5"][..],
            &["SET", "contract:{stepped}:epoch", "77"],
            &[
                "XADD",
                "contract:{stepped}:log",
                "5-0",
                "t",
                &ahead,
                "d",
                "\"old\"",
            ],
        ] {
            let reply = redis.command(cmd);
            assert!(!reply.starts_with('-'), "{cmd:?}: {reply}");
        }
        let s = chan("stepped");
        let next_one = publish(&p.a, &s, "new").await;
        assert_eq!((next_one.epoch.get(), next_one.id.get()), (77, 6));
        assert_eq!(next_one.ts.to_string(), ahead);
        assert_eq!(
            times(&p.b.history(&s, None, 10).await.unwrap()),
            [next_one.ts, next_one.ts]
        );
    }
}

/// Reads of a channel nobody published to store nothing (in Redis at most a key naming
/// the epoch it will be born with, which expires), and the cursor they hand out stays valid
/// once the first message arrives: no reset, nothing missed.
async fn reads_create_nothing(kind: Kind) {
    let p = pair(kind, 100, 64).await;
    let c = chan("never-published");
    let page =
        p.a.history(&c, Some(Cursor::id_only(MessageId::ZERO)), 10)
            .await
            .unwrap();
    assert!(page.messages.is_empty() && page.reset.is_none());
    let sub = p.b.subscribe(&c, Some(page.next)).await.unwrap();
    drop(sub);
    if let Some(redis) = &p.redis {
        let keys = redis.command(&["KEYS", "contract:*"]);
        for part in ["seq", "epoch", "log"] {
            assert!(
                !keys.contains(&format!("}}:{part}")),
                "a read created {part}: {keys}"
            );
        }
        let ttl = redis.command(&["PTTL", "contract:{never-published}:birth"]);
        let ttl: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
        assert!(ttl > 0, "the birth key must expire: {ttl}");
    } else {
        assert!(p.a.channels().await.unwrap().is_empty());
    }
    publish(&p.b, &c, "first").await;
    let later = p.a.history(&c, Some(page.next), 10).await.unwrap();
    assert_eq!(
        later.reset, None,
        "the cursor of the first read was not honoured"
    );
    assert_eq!(later.messages.len(), 1);
    assert_eq!(later.epoch, page.epoch);
}

macro_rules! contract {
    ($kind:ident, $mod:ident) => {
        mod $mod {
            use super::*;
            #[tokio::test]
            async fn ids_and_epochs() {
                super::ids_and_epochs(Kind::$kind).await
            }
            #[tokio::test]
            async fn resume_exactly_once() {
                super::resume_exactly_once(Kind::$kind).await
            }
            #[tokio::test]
            async fn reset_when_history_does_not_reach() {
                super::reset_when_history_does_not_reach(Kind::$kind).await
            }
            #[tokio::test]
            async fn lag() {
                super::lag(Kind::$kind).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_publishers() {
                super::concurrent_publishers(Kind::$kind).await
            }
            #[tokio::test]
            async fn unsubscribe_on_drop() {
                super::unsubscribe_on_drop(Kind::$kind).await
            }
            #[tokio::test]
            async fn two_instances_see_one_channel() {
                super::two_instances_see_one_channel(Kind::$kind).await
            }
            #[tokio::test]
            async fn reads_create_nothing() {
                super::reads_create_nothing(Kind::$kind).await
            }
            #[tokio::test]
            async fn one_time_on_every_hub() {
                super::one_time_on_every_hub(Kind::$kind).await
            }
            #[tokio::test]
            async fn presence_across_hubs() {
                super::presence_across_hubs(Kind::$kind).await
            }
        }
    };
}

contract!(Memory, memory);
contract!(Redis, redis);

// --- Redis only: failures -----------------------------------------------------------

/// Redis restarted without its data: the next publish is a new epoch, and a subscriber
/// that stayed connected is told with a reset, then continues.
#[tokio::test]
async fn redis_restart_without_persistence_resets_subscribers() {
    let mut redis = RedisServer::start();
    let a = redis_hub(&redis.url(), 100, 64).await;
    let b = redis_hub(&redis.url(), 100, 64).await;
    let c = chan("c");
    let mut sub = a.subscribe(&c, None).await.unwrap();
    let before = publish(&b, &c, "before").await;
    assert_eq!(next_message(&mut sub).await.1, "before");
    redis.kill();
    // Never "ok" while Redis is down.
    let err = b
        .publish(&c, Payload::text("lost"), Transport::Rest)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Broker(BrokerError::Unavailable { .. })),
        "{err:?}"
    );
    assert!(matches!(next(&mut sub).await, Delivery::Unavailable(_)));
    redis.restart();
    let after = publish_eventually(&b, &c, "after").await;
    assert_ne!(after.epoch, before.epoch, "data lost: a new epoch");
    assert_eq!(after.id.get(), 1);
    match next(&mut sub).await {
        Delivery::Reset {
            reason: ResetReason::EpochChanged,
            epoch,
            ..
        } => assert_eq!(epoch, after.epoch),
        other => panic!("{other:?}"),
    }
    // After the reset (which may already cover "after"), delivery continues in order.
    publish(&b, &c, "later").await;
    loop {
        let (_, text) = next_message(&mut sub).await;
        if text == "later" {
            break;
        }
        assert_eq!(text, "after");
    }
    assert!(a.metrics().broker_counts().0 >= 1, "reconnect counted");
}

/// With an fsynced append-only file, a SIGKILLed Redis keeps every acknowledged publish:
/// the subscriber continues exactly, with no reset.
#[tokio::test]
async fn redis_restart_with_persistence_loses_nothing() {
    let mut redis = RedisServer::start_persistent();
    let a = redis_hub(&redis.url(), 100, 64).await;
    let b = redis_hub(&redis.url(), 100, 64).await;
    let c = chan("c");
    let mut sub = a.subscribe(&c, None).await.unwrap();
    for i in 1..=5 {
        publish(&b, &c, &i.to_string()).await;
    }
    redis.kill();
    redis.restart();
    let m = publish_eventually(&b, &c, "6").await;
    assert_eq!(m.id.get(), 6, "same epoch, ids continue");
    let mut got = Vec::new();
    while got.len() < 6 {
        match next(&mut sub).await {
            Delivery::Message(m) => got.push(m.id().get()),
            Delivery::Unavailable(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, [1, 2, 3, 4, 5, 6]);
}

/// `CLIENT KILL TYPE pubsub` drops every node's pub/sub connection while publishes go on
/// over the command connections: what was published meanwhile is repaired from the stream.
#[tokio::test]
async fn killed_pubsub_connection_is_repaired_from_the_stream() {
    let redis = RedisServer::start();
    let a = redis_hub(&redis.url(), 1000, 64).await;
    let b = redis_hub(&redis.url(), 1000, 64).await;
    let c = chan("c");
    let mut sub = a.subscribe(&c, None).await.unwrap();
    publish(&b, &c, "0").await;
    assert_eq!(next_message(&mut sub).await.0, 1);
    let publisher = {
        let (b, c) = (b.clone(), c.clone());
        tokio::spawn(async move {
            for i in 0..100 {
                publish(&b, &c, &i.to_string()).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reply = redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(reply.starts_with(':'), "{reply:?}");
    publisher.await.unwrap();
    let mut got = Vec::new();
    while got.len() < 100 {
        match next(&mut sub).await {
            Delivery::Message(m) => got.push(m.id().get()),
            Delivery::Unavailable(_) | Delivery::Lagged { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, (2..=101).collect::<Vec<_>>());
    assert!(a.metrics().broker_counts().0 >= 1, "reconnect counted");
}

/// Redis unreachable at start: a clear error naming the URL.
#[tokio::test]
async fn unreachable_redis_is_a_clear_error() {
    let port = redis_server::free_port();
    let err = RedisBroker::connect(RedisBrokerConfig {
        url: format!("redis://127.0.0.1:{port}"),
        ..RedisBrokerConfig::default()
    })
    .await
    .err()
    .expect("nothing listens there");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(matches!(err, BrokerError::Unavailable { .. }));
}

/// Publishes until Redis is back (a restart takes a moment), bounded by [`WAIT`].
async fn publish_eventually(hub: &Hub, ch: &ChannelName, text: &str) -> switchboard_hub::Published {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match hub.publish(ch, Payload::text(text), Transport::Rest).await {
            Ok(p) => return p,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "still failing: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
