//! The echo path allocates per burst of input, not per message: received messages share the
//! read buffer, and small replies are copied into the connection's retained write buffer.
//! Counted with a global allocator that counts this thread's allocations only.

mod common;

use common::Peer;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::task::Poll;
use switchboard::{Message, WebSocket, WebSocketConfig};
use switchboard_protocol::{Config, Connection, Event};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

const BURST: usize = 100;

#[tokio::test(flavor = "current_thread")]
async fn echo_allocates_per_burst_not_per_message() {
    // The counter counts (so a zero below means zero).
    let before = allocations();
    std::hint::black_box(Vec::<u8>::with_capacity(10));
    assert_eq!(allocations(), before + 1);

    let (a, b) = tokio::io::duplex(1 << 20);
    let mut ws = WebSocket::from_connection(
        a,
        Connection::server(Config::default()),
        &WebSocketConfig::default(),
    );
    let mut peer = Peer::client(b);
    let mut burst_allocations = Vec::new();
    for round in 0..20 {
        for i in 0..BURST {
            peer.conn
                .send(Message::Text(
                    format!("message {i:03} of round {round:02}").into(),
                ))
                .unwrap();
        }
        peer.flush().await;

        let before = allocations();
        for _ in 0..BURST {
            let message = ws.recv().await.unwrap().unwrap();
            ws.feed(message).await.unwrap();
        }
        ws.flush().await.unwrap();
        burst_allocations.push(allocations() - before);

        for _ in 0..BURST {
            assert!(matches!(peer.expect_event().await, Event::Message(_)));
        }
    }
    // Ignore warm-up (buffers reaching their working size). In steady state the read buffer
    // is reused in place once the echoed messages are written, so this is usually zero.
    let steady = &burst_allocations[5..];
    let worst = *steady.iter().max().unwrap();
    assert!(
        worst <= 8,
        "{worst} allocations for {BURST} echoed messages (per burst: {burst_allocations:?})"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn one_message_at_a_time_allocates_nothing_in_steady_state() {
    // The benchmark's pattern: the peer waits for each echo before it sends again, so the
    // connection goes idle between messages and gives its buffers back each time (an idle
    // connection holds none); the thread's spare buffers make that free of allocations.
    let (a, b) = tokio::io::duplex(1 << 20);
    let mut ws = WebSocket::from_connection(
        a,
        Connection::server(Config::default()),
        &WebSocketConfig::default(),
    );
    let mut peer = Peer::client(b);
    let mut per_round = Vec::new();
    for round in 0..40 {
        let mut server = 0;
        for i in 0..50 {
            // Only the server's calls are counted: the peer allocates freely.
            let message = {
                let before = allocations();
                let mut recv = std::pin::pin!(ws.recv());
                // The server waits for input first, as between a client's messages.
                let waited = poll_fn(|cx| Poll::Ready(recv.as_mut().poll(cx).is_pending())).await;
                assert!(waited, "nothing was sent yet");
                server += allocations() - before;

                peer.conn
                    .send(Message::Binary(vec![round as u8; 20 + i].into()))
                    .unwrap();
                peer.flush().await;

                let before = allocations();
                let message = recv.await.unwrap().unwrap();
                server += allocations() - before;
                message
            };
            let before = allocations();
            ws.feed(message).await.unwrap();
            ws.flush().await.unwrap();
            server += allocations() - before;
            assert!(matches!(peer.expect_event().await, Event::Message(_)));
        }
        per_round.push(server);
    }
    let steady = &per_round[5..];
    assert!(
        steady.iter().all(|&n| n == 0),
        "allocations per 50 round trips: {per_round:?}"
    );
}
