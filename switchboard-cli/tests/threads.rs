//! `switchboard echo --threads N`: N serving threads (each a current-thread runtime, no
//! thread besides them), every connection answered, the address in the log line that
//! `bench/run.sh` waits for, and SIGTERM closing every client on every thread with 1001.

mod support;

use std::time::Duration;
use support::{EchoServer, LIMIT};
use switchboard::{CloseCode, Message};

/// The OS threads of the server process (Linux: its `/proc` task entries).
#[cfg(target_os = "linux")]
fn os_threads(echo: &EchoServer) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", echo.pid()))
        .unwrap()
        .count()
}

#[tokio::test]
async fn two_threads_answer_16_clients_and_sigterm_closes_them_all_with_1001() {
    let mut echo = EchoServer::start(&["--threads", "2", "--shutdown-timeout", "3"]);
    assert!(
        echo.listening
            .contains(&format!("ws://{} (2 threads, compression on)", echo.addr)),
        "{}",
        echo.listening
    );
    let url = echo.url();
    let mut clients = Vec::new();
    for i in 0..16 {
        let (ws, _) = tokio::time::timeout(LIMIT, switchboard::connect(&url))
            .await
            .unwrap()
            .unwrap();
        clients.push((i, ws));
    }
    // Every connection is open at once, and each one is answered.
    for (i, ws) in &mut clients {
        ws.send(format!("client {i}")).await.unwrap();
    }
    for (i, ws) in &mut clients {
        let echoed = tokio::time::timeout(LIMIT, ws.recv()).await.unwrap();
        assert_eq!(
            echoed.unwrap().unwrap(),
            Message::from(format!("client {i}"))
        );
    }
    // The two serving threads and nothing else: no multi-thread runtime's workers.
    #[cfg(target_os = "linux")]
    assert_eq!(os_threads(&echo), 2);

    let exit = tokio::spawn(async move {
        let exit = echo.terminate(Duration::from_secs(5)).await;
        drop(echo);
        exit
    });
    for (i, ws) in &mut clients {
        let end = tokio::time::timeout(LIMIT, ws.recv()).await.unwrap();
        assert!(end.is_none(), "client {i}: {end:?}");
        let info = ws.close_info().unwrap();
        assert_eq!(info.code, CloseCode::GOING_AWAY, "client {i}: {info:?}");
    }
    let exit = exit.await.unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn one_thread_is_one_current_thread_runtime() {
    let mut echo = EchoServer::start(&[
        "--threads",
        "1",
        "--no-compression",
        "--shutdown-timeout",
        "1",
    ]);
    assert!(
        echo.listening
            .contains(&format!("ws://{} (1 thread, compression off)", echo.addr)),
        "{}",
        echo.listening
    );
    let (mut ws, _) = switchboard::connect(&echo.url()).await.unwrap();
    ws.send("alone").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("alone"));
    #[cfg(target_os = "linux")]
    assert_eq!(os_threads(&echo), 1);
    let exit = echo.terminate(Duration::from_secs(3)).await;
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn zero_threads_is_refused() {
    let out = support::run(
        support::switchboard(&["echo", "--listen", "127.0.0.1:0", "--threads", "0"]),
        "",
        LIMIT,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--threads"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
