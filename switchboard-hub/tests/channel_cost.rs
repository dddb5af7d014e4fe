//! What a channel costs in memory, measured with a counting allocator (this test binary's
//! own, so nothing else runs in it): a channel nobody listens to holds its history and a
//! few words, not a broadcast ring; the ring comes with the first subscriber and goes with
//! the last; a read of an unknown channel allocates nothing that stays.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use switchboard_hub::broker::{Broker, MemoryBroker, MemoryBrokerConfig};
use switchboard_hub::core::{ChannelName, Payload};

/// Bytes allocated and not freed yet, by everything in this process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded to the system allocator with the same arguments; the
// counter is only arithmetic beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const CHANNELS: usize = 1000;

fn names() -> Vec<ChannelName> {
    (0..CHANNELS)
        .map(|i| ChannelName::new(&format!("room-{i:05}")).unwrap())
        .collect()
}

/// One runtime, one thread: no other task allocates while we count.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn channels_cost_their_history_and_a_ring_only_while_someone_listens() {
    block_on(async {
        let broker = MemoryBroker::new(MemoryBrokerConfig::default());
        let names = names();
        let payload = Payload::text("0123456789");

        // Reads of unknown channels: nothing stays.
        let before = live();
        for name in &names {
            let page = broker.history(name.clone(), None, 100).await.unwrap();
            assert!(page.messages.is_empty());
        }
        assert!(broker.channels().await.unwrap().is_empty());
        let after_reads = live() - before;
        assert!(
            after_reads < 1024,
            "{CHANNELS} history reads of unknown channels left {after_reads} bytes"
        );

        // A channel with one short message and no subscriber.
        let before = live();
        for name in &names {
            broker.publish(name.clone(), payload.clone()).await.unwrap();
        }
        let idle = (live() - before) / CHANNELS as isize;
        println!("a channel with one 10-byte message and no subscriber: {idle} bytes");
        println!(
            "(of which the message counts {} bytes against history.max_bytes)",
            switchboard_hub::core::MESSAGE_OVERHEAD + 12
        );
        assert!(
            idle < 1024,
            "an idle channel costs {idle} bytes: is a ring allocated without subscribers?"
        );

        // One subscriber each: now the ring is there...
        let before = live();
        let subs: Vec<_> = {
            let mut subs = Vec::new();
            for name in &names {
                subs.push(broker.subscribe(name.clone(), None).await.unwrap());
            }
            subs
        };
        let subscribed = (live() - before) / CHANNELS as isize;
        println!("... plus one subscriber: {subscribed} bytes more");
        assert!(subscribed > 16 * 1024, "{subscribed}: no ring?");

        // ...and it goes with the last subscriber.
        drop(subs);
        let left = (live() - before) / CHANNELS as isize;
        println!("... after the subscriber left: {left} bytes more than before it came");
        assert!(
            left < 256,
            "{left} bytes per channel stayed after the last subscriber left"
        );

        // A subscription to an unknown channel registers it only while it is open.
        let fresh = ChannelName::new("never-published").unwrap();
        let sub = broker.subscribe(fresh.clone(), None).await.unwrap();
        assert!(broker
            .channels()
            .await
            .unwrap()
            .iter()
            .any(|c| c.name == fresh));
        drop(sub);
        assert!(
            !broker
                .channels()
                .await
                .unwrap()
                .iter()
                .any(|c| c.name == fresh),
            "an unsubscribed channel that never had a message stayed in the table"
        );
    });
}
