//! One router on several threads: `SO_REUSEPORT` listeners on one port all take
//! connections, the connection limit counts every thread's connections, and one signal
//! closes every thread's clients with 1001.

use http::StatusCode;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::router::{bind_per_thread, reuseport_listener, Route, Router};
use switchboard::security::ConnectionLimiter;
use switchboard::{CloseCode, Message};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);
/// Connections tried before giving up on seeing both sockets (or both threads) used: the
/// kernel picks a socket by hashing each connection's ports, so each try is a coin toss.
const ATTEMPTS: usize = 200;

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test]
async fn two_reuseport_listeners_on_one_port_both_accept() {
    let listeners = bind_per_thread(loopback(), 2).unwrap();
    let addr = listeners[0].local_addr().unwrap();
    assert_eq!(listeners[1].local_addr().unwrap(), addr);
    let [a, b]: [std::net::TcpListener; 2] = listeners.try_into().unwrap();
    let (a, b) = (
        TcpListener::from_std(a).unwrap(),
        TcpListener::from_std(b).unwrap(),
    );
    let mut accepted = [0usize; 2];
    for _ in 0..ATTEMPTS {
        let _client = TcpStream::connect(addr).await.unwrap();
        // The kernel queued the connection on one socket: see which one has it.
        tokio::select! {
            first = a.accept() => { first.unwrap(); accepted[0] += 1; }
            second = b.accept() => { second.unwrap(); accepted[1] += 1; }
            () = tokio::time::sleep(LIMIT) => panic!("no socket accepted the connection"),
        }
        if accepted.iter().all(|&n| n > 0) {
            return;
        }
    }
    panic!("after {ATTEMPTS} connections one socket accepted none: {accepted:?}");
}

#[test]
fn one_thread_gets_a_plain_socket_and_a_busy_port_is_an_error() {
    let taken = std::net::TcpListener::bind(loopback()).unwrap();
    let addr = taken.local_addr().unwrap();
    let busy = bind_per_thread(addr, 1).unwrap_err();
    assert_eq!(busy.kind(), std::io::ErrorKind::AddrInUse);
    // Sharing needs every socket to opt in, the first one too.
    let busy = reuseport_listener(addr).unwrap_err();
    assert_eq!(busy.kind(), std::io::ErrorKind::AddrInUse);
}

#[tokio::test]
async fn serve_threads_refuses_to_run_inside_a_runtime() {
    let listeners = bind_per_thread(loopback(), 1).unwrap();
    let error = Router::new()
        .serve_threads(listeners, std::future::pending())
        .unwrap_err();
    assert!(
        error.to_string().contains("outside a tokio runtime"),
        "{error}"
    );
}

/// Per connection: first the name of the thread serving it, then an echo.
fn thread_echo() -> Route {
    Route::new(|mut ws, _info| async move {
        let thread = format!("{:?}", std::thread::current().id());
        if ws.send(thread).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    })
}

/// Waits until the limiter counts `n` connections: a closed client's place is freed when
/// its handler returns, a moment after the client saw the close.
async fn settle(limiter: &ConnectionLimiter, n: usize) {
    tokio::time::timeout(LIMIT, async {
        while limiter.active() != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} connections counted, not {n}", limiter.active()));
}

#[tokio::test]
async fn a_limit_of_k_over_two_threads_refuses_the_next_and_shutdown_closes_all_with_1001() {
    const K: usize = 4;
    let limiter = ConnectionLimiter::new(K, K * 10);
    let router = Router::new()
        .fallback(thread_echo())
        .connection_limits(limiter.clone())
        .shutdown_timeout(Duration::from_secs(3));
    let listeners = bind_per_thread(loopback(), 2).unwrap();
    let url = format!("ws://{}/", listeners[0].local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        router.serve_threads(listeners, async {
            let _ = stopped.await;
        })
    });

    let mut held = Vec::new();
    for attempt in 0.. {
        if held.len() == K {
            break;
        }
        assert!(attempt < ATTEMPTS, "never got a connection on both threads");
        let (mut ws, _) = switchboard::connect(&url).await.unwrap();
        let Some(Ok(Message::Text(thread))) = ws.recv().await else {
            panic!("no thread name");
        };
        let thread = thread.to_string();
        // The last place goes to the other thread if all others are on this one: with
        // everything on one thread a per-thread count would pass too.
        if held.len() == K - 1 && held.iter().all(|(_, t)| *t == thread) {
            ws.close(CloseCode::NORMAL, "").await.unwrap();
            while ws.recv().await.is_some() {}
            settle(&limiter, held.len()).await;
            continue;
        }
        held.push((ws, thread));
    }
    let threads: HashSet<&String> = held.iter().map(|(_, t)| t).collect();
    assert_eq!(threads.len(), 2, "{threads:?}");
    assert_eq!(limiter.active(), K);

    // Tried enough times to land on either thread: every one is refused.
    for _ in 0..8 {
        let over = switchboard::connect(&url).await.unwrap_err();
        assert_eq!(over.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    }

    let (mut first, _) = held.remove(0);
    first.close(CloseCode::NORMAL, "").await.unwrap();
    while first.recv().await.is_some() {}
    settle(&limiter, K - 1).await;
    let (mut again, _) = switchboard::connect(&url).await.unwrap();
    assert!(matches!(again.recv().await, Some(Ok(Message::Text(_)))));
    again.send("back").await.unwrap();
    assert_eq!(again.recv().await.unwrap().unwrap(), Message::from("back"));
    held.push((again, String::new()));

    let started = std::time::Instant::now();
    stop.send(()).unwrap();
    for (ws, _) in &mut held {
        assert!(tokio::time::timeout(LIMIT, ws.recv())
            .await
            .unwrap()
            .is_none());
        assert_eq!(ws.close_info().unwrap().code, CloseCode::GOING_AWAY);
    }
    let served = tokio::task::spawn_blocking(move || server.join().unwrap())
        .await
        .unwrap();
    served.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
}
