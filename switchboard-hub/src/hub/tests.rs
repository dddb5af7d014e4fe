//! Hub behaviour over the in-memory broker.

use std::time::Duration;

use super::*;
use crate::core::{HistoryLimits, ResetReason};

fn hub(max_messages: usize, queue_size: usize) -> Hub {
    Hub::in_memory(
        MemoryBrokerConfig {
            history: HistoryLimits {
                max_messages,
                max_age: Some(Duration::from_secs(60)),
            },
            queue_size,
            max_channels: 4,
            ..MemoryBrokerConfig::default()
        },
        HubOptions {
            max_message_bytes: 32,
            ..HubOptions::default()
        },
    )
}

fn chan(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

async fn publish(hub: &Hub, ch: &ChannelName, text: &str) -> Published {
    hub.publish(ch, Payload::text(text), Transport::Rest)
        .await
        .unwrap()
}

fn message_id(d: Option<Delivery>) -> u64 {
    match d {
        Some(Delivery::Message(m)) => m.id().get(),
        other => panic!("expected a message, got {other:?}"),
    }
}

#[tokio::test]
async fn ids_increase_and_epoch_is_stable_per_channel() {
    let hub = hub(10, 8);
    let (a, b) = (chan("a"), chan("b"));
    let p1 = publish(&hub, &a, "1").await;
    let p2 = publish(&hub, &a, "2").await;
    let q1 = publish(&hub, &b, "1").await;
    assert_eq!((p1.id.get(), p2.id.get(), q1.id.get()), (1, 2, 1));
    assert_eq!(p1.epoch, p2.epoch);
    assert_ne!(p1.epoch, q1.epoch, "each channel draws its own epoch");
}

#[tokio::test]
async fn subscribe_without_since_is_live_only() {
    let hub = hub(10, 8);
    let ch = chan("c");
    publish(&hub, &ch, "old").await;
    let mut sub = hub.subscribe(&ch, None).await.unwrap();
    assert!(!sub.recovered());
    assert!(sub.try_next().is_none());
    publish(&hub, &ch, "new").await;
    assert_eq!(message_id(sub.next().await), 2);
}

#[tokio::test]
async fn subscribe_since_replays_then_goes_live() {
    let hub = hub(10, 8);
    let ch = chan("c");
    let first = publish(&hub, &ch, "1").await;
    publish(&hub, &ch, "2").await;
    publish(&hub, &ch, "3").await;
    let mut sub = hub.subscribe(&ch, Some(first.cursor())).await.unwrap();
    assert!(sub.recovered());
    assert_eq!(message_id(sub.next().await), 2);
    publish(&hub, &ch, "4").await;
    assert_eq!(message_id(sub.next().await), 3);
    assert_eq!(message_id(sub.next().await), 4);
    assert_eq!(sub.cursor(), Cursor::new(first.epoch, MessageId::new(4)));
}

#[tokio::test]
async fn expired_history_is_reported_then_live_continues() {
    let hub = hub(3, 8);
    let ch = chan("c");
    let first = publish(&hub, &ch, "x").await;
    for _ in 0..9 {
        publish(&hub, &ch, "x").await;
    }
    let mut sub = hub.subscribe(&ch, Some(first.cursor())).await.unwrap();
    assert!(!sub.recovered());
    match sub.next().await {
        Some(Delivery::Reset {
            reason: ResetReason::Expired,
            last,
            epoch,
        }) => {
            assert_eq!((last.get(), epoch), (10, first.epoch));
        }
        other => panic!("{other:?}"),
    }
    publish(&hub, &ch, "x").await;
    assert_eq!(message_id(sub.next().await), 11);
}

#[tokio::test]
async fn foreign_epoch_is_a_reset() {
    let hub = hub(10, 8);
    let ch = chan("c");
    let p = publish(&hub, &ch, "x").await;
    let other = Epoch::new(p.epoch.get() % 1000 + 1).unwrap();
    let mut sub = hub
        .subscribe(&ch, Some(Cursor::new(other, MessageId::ZERO)))
        .await
        .unwrap();
    assert!(matches!(
        sub.next().await,
        Some(Delivery::Reset {
            reason: ResetReason::EpochChanged,
            ..
        })
    ));
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let hub = hub(10, 8);
    let err = hub
        .publish(&chan("c"), Payload::text(&"x".repeat(40)), Transport::Rest)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::TooLarge {
            size: 40,
            limit: 32
        }
    );
    // Exactly at the limit: the quotes of the JSON string do not count.
    hub.publish(&chan("c"), Payload::text(&"x".repeat(32)), Transport::Rest)
        .await
        .unwrap();
}

#[tokio::test]
async fn channel_limit_is_enforced() {
    let hub = hub(10, 8);
    for name in ["a", "b", "c", "d"] {
        publish(&hub, &chan(name), "x").await;
    }
    let err = hub
        .publish(&chan("e"), Payload::text("x"), Transport::Rest)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PublishError::Broker(BrokerError::TooManyChannels { limit: 4 })
    );
    // Existing channels still work.
    publish(&hub, &chan("a"), "x").await;
}

#[tokio::test]
async fn channel_list_counts_subscribers() {
    let hub = hub(10, 8);
    let (a, b) = (chan("a"), chan("b"));
    let _s1 = hub.subscribe(&a, None).await.unwrap();
    let s2 = hub.subscribe(&a, None).await.unwrap();
    publish(&hub, &b, "x").await;
    let list = hub.channels().await.unwrap();
    let summary: Vec<_> = list
        .iter()
        .map(|c| (c.name.as_str(), c.subscribers, c.last_id.get(), c.retained))
        .collect();
    assert_eq!(summary, [("a", 2, 0, 0), ("b", 0, 1, 1)]);
    drop(s2);
    assert_eq!(hub.channels().await.unwrap()[0].subscribers, 1);
}

#[tokio::test(start_paused = true)]
async fn sweep_drops_idle_channels_and_a_new_epoch_is_detected() {
    let hub = hub(10, 8);
    let ch = chan("c");
    let old = publish(&hub, &ch, "x").await;
    assert_eq!(hub.sweep().await, 0, "history still holds a message");
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(hub.sweep().await, 1);
    assert!(hub.channels().await.unwrap().is_empty());
    // Created again: new epoch, and a client holding the old cursor is told.
    let mut sub = hub.subscribe(&ch, Some(old.cursor())).await.unwrap();
    match sub.next().await {
        Some(Delivery::Reset { reason, epoch, .. }) => {
            assert_eq!(reason, ResetReason::EpochChanged);
            assert_ne!(epoch, old.epoch);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn age_limit_follows_the_clock() {
    let hub = hub(10, 8);
    let ch = chan("c");
    publish(&hub, &ch, "x").await;
    let page = hub.history(&ch, None, 10).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    tokio::time::advance(Duration::from_secs(61)).await;
    let page = hub.history(&ch, None, 10).await.unwrap();
    assert!(page.messages.is_empty());
}

/// A subscriber that never reads lags and is told so; the publisher and a reading subscriber
/// are not held back, and the slow one can resume without loss from history.
#[tokio::test]
async fn slow_subscriber_lags_without_stalling_anyone() {
    let hub = hub(1000, 4);
    let ch = chan("c");
    let mut slow = hub.subscribe(&ch, None).await.unwrap();
    let mut fast = hub.subscribe(&ch, None).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        while ids.len() < 200 {
            ids.push(message_id(fast.next().await));
        }
        ids
    });
    for i in 0..200 {
        publish(&hub, &ch, &i.to_string()).await;
        // Let the reader run; the slow subscriber never does.
        tokio::task::yield_now().await;
    }
    let ids = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("fast subscriber stalled")
        .unwrap();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
    let missed = match slow.next().await {
        Some(Delivery::Lagged { missed }) => missed,
        other => panic!("{other:?}"),
    };
    assert!(missed >= 190, "missed {missed}");
    assert_eq!(hub.metrics().lagged_subscribers(), 1);
    assert_eq!(hub.metrics().queue_drops(), missed);
    // The slow subscriber's cursor still points before its first missed message.
    let mut again = hub.subscribe(&ch, Some(slow.cursor())).await.unwrap();
    assert!(again.recovered());
    let mut replay = Vec::new();
    while let Some(d) = again.try_next() {
        replay.push(message_id(Some(d)));
    }
    assert_eq!(replay, (1..=200).collect::<Vec<_>>());
}

/// Subscribing while a publisher runs never loses or duplicates a message at the seam
/// between history replay and live delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gap_or_duplicate_between_replay_and_live() {
    const TOTAL: u64 = 2000;
    let hub = hub(usize::MAX, 4096);
    let ch = chan("c");
    let first = publish(&hub, &ch, "x").await;
    let publisher = {
        let (hub, ch) = (hub.clone(), ch.clone());
        tokio::spawn(async move {
            for _ in 1..TOTAL {
                publish(&hub, &ch, "x").await;
            }
        })
    };
    let mut subs = Vec::new();
    for _ in 0..20 {
        subs.push(
            hub.subscribe(&ch, Some(Cursor::new(first.epoch, MessageId::ZERO)))
                .await
                .unwrap(),
        );
        tokio::task::yield_now().await;
    }
    publisher.await.unwrap();
    for mut sub in subs {
        let mut ids = Vec::new();
        while let Some(d) = sub.try_next() {
            ids.push(message_id(Some(d)));
        }
        assert_eq!(ids, (1..=TOTAL).collect::<Vec<_>>());
    }
}

/// A replay far larger than the live ring is pulled from history as the reader goes: a
/// reader that resumes from 0 while publishers keep going gets every id once, in order,
/// and is never told it lagged (nothing was pushed at it faster than it read).
#[tokio::test]
async fn replay_is_paced_by_the_reader_not_the_ring() {
    let hub = hub(10_000, 8);
    let ch = chan("c");
    let first = publish(&hub, &ch, "x").await;
    for _ in 1..3000 {
        publish(&hub, &ch, "x").await;
    }
    let mut sub = hub
        .subscribe(&ch, Some(Cursor::new(first.epoch, MessageId::ZERO)))
        .await
        .unwrap();
    let mut ids = Vec::new();
    while ids.len() < 3100 {
        if ids.len() % 30 == 0 && ids.len() < 3000 {
            // Live traffic meanwhile: 100 messages, far more than the ring of 8 holds.
            publish(&hub, &ch, "x").await;
        }
        match sub.next().await {
            Some(Delivery::Message(m)) => ids.push(m.id().get()),
            other => panic!("after {} messages: {other:?}", ids.len()),
        }
    }
    assert_eq!(ids, (1..=3100).collect::<Vec<_>>());
    assert_eq!(hub.metrics().lagged_subscribers(), 0);
    assert!(sub.try_next().is_none());
}

/// A reader that falls behind history too is told with a reset, then continues live.
#[tokio::test]
async fn a_reader_overtaken_by_history_gets_a_reset_mid_stream() {
    let hub = hub(4, 2);
    let ch = chan("c");
    let mut sub = hub.subscribe(&ch, None).await.unwrap();
    for _ in 0..10 {
        publish(&hub, &ch, "x").await;
    }
    assert!(matches!(sub.next().await, Some(Delivery::Lagged { .. })));
    match sub.next().await {
        Some(Delivery::Reset {
            reason: ResetReason::Expired,
            last,
            ..
        }) => assert_eq!(last.get(), 10),
        other => panic!("{other:?}"),
    }
    publish(&hub, &ch, "x").await;
    assert_eq!(message_id(sub.next().await), 11);
    assert_eq!(hub.metrics().resets(), 1);
}
