//! The split halves over real TCP: the writer is not held up while the reader inflates.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchboard::{Acceptor, Client, Message, WebSocketConfig};

/// A 16 MiB message of zeros is about 16 KiB on the wire and takes the reader a long
/// while to inflate (the whole size limit). The writer, on another thread, must keep
/// sending meanwhile: the reader inflates with the halves' lock let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_sends_while_the_reader_inflates_a_large_message() {
    const SIZE: usize = 16 << 20;
    let config = WebSocketConfig::default()
        .compression(true)
        .max_message_size(SIZE);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = Acceptor::builder().config(config.clone()).build();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.unwrap()
    });
    let client = Client::builder().config(config).build().unwrap();
    let (ws, _) = client.connect(format!("ws://{addr}")).await.unwrap();
    let server = server.await.unwrap();
    assert!(server.is_compressed());
    let (mut client_reader, mut client_writer) = ws.split();
    client_writer
        .send(Message::Binary(vec![0; SIZE].into()))
        .await
        .unwrap();
    // The client reads whatever the server's writer sends.
    let drain = tokio::spawn(async move {
        let mut ticks = 0usize;
        while let Some(Ok(_)) = client_reader.recv().await {
            ticks += 1;
        }
        ticks
    });
    // Let the whole compressed message arrive before the server starts reading it.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (mut reader, mut writer) = server.split();
    let done = Arc::new(AtomicBool::new(false));
    // The writer runs on a thread and runtime of its own, so that nothing but the halves'
    // lock can hold it up: on the reader's runtime a task woken by the reader may wait
    // in that worker's queue (tokio's LIFO slot is not stolen) for as long as the
    // inflation runs, which says nothing about the lock.
    let writes = std::thread::spawn({
        let done = done.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut sent_at = Vec::new();
                while !done.load(Ordering::Acquire) && sent_at.len() < 1_000_000 {
                    writer.send("tick").await.unwrap();
                    sent_at.push(Instant::now());
                    tokio::task::yield_now().await;
                }
                (writer, sent_at)
            })
        }
    });
    let reads = tokio::spawn(async move {
        let started = Instant::now();
        let message = reader.recv().await.unwrap().unwrap();
        (reader, message, started, Instant::now())
    });
    let (reader, message, started, ended) = reads.await.unwrap();
    done.store(true, Ordering::Release);
    let (writer, sent_at) = tokio::task::spawn_blocking(move || writes.join().unwrap())
        .await
        .unwrap();
    assert_eq!(message.len(), SIZE);
    assert!(message.as_bytes().iter().all(|&b| b == 0));
    let during: Vec<Instant> = sent_at
        .iter()
        .copied()
        .filter(|&at| at > started && at < ended)
        .collect();
    let took = ended - started;
    // The longest the writer went without sending while the reader was at it: with the
    // lock held through the inflation, that is nearly all of it.
    let longest_wait = std::iter::once(started)
        .chain(during.iter().copied())
        .chain(std::iter::once(ended))
        .collect::<Vec<_>>()
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .unwrap();
    eprintln!(
        "inflating took {took:?}; the writer sent {} messages meanwhile, waiting {longest_wait:?} at the most",
        during.len()
    );
    if took >= Duration::from_millis(40) {
        assert!(
            longest_wait < took / 4,
            "the writer waited {longest_wait:?} of the {took:?} the reader took"
        );
    }
    let during = during.len();
    let ws = reader.reunite(writer).unwrap();
    drop(ws);
    assert!(drain.await.unwrap() >= during);
}
