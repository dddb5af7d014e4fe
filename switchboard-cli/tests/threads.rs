//! `switchboard echo --threads N`: N serving threads (each a current-thread runtime, no
//! thread besides them), every connection answered, the address in the log line that
//! `bench/run.sh` waits for, and SIGTERM closing every client on every thread with 1001.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use switchboard::{CloseCode, Message};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
const LIMIT: Duration = Duration::from_secs(20);

/// `switchboard echo` on a port the kernel picks, killed on drop if still running.
struct Echo {
    child: Child,
    addr: SocketAddr,
    /// The log line that announced the address.
    listening: String,
}

impl Echo {
    fn start(threads: &str, extra: &[&str]) -> Echo {
        let mut child = Command::new(BIN)
            .args(["echo", "--listen", "127.0.0.1:0", "--threads", threads])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read stderr to the end on a thread of its own, so the server never blocks on a
        // full pipe.
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (lines, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + LIMIT;
        let listening = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = log
                .recv_timeout(left)
                .expect("switchboard echo never said it was listening");
            if line.contains("listening on") {
                break line;
            }
        };
        let addr = listening
            .split("ws://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {listening:?}"));
        Echo {
            child,
            addr,
            listening,
        }
    }

    /// The OS threads of the server process (Linux: its `/proc` task entries).
    #[cfg(target_os = "linux")]
    fn os_threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .unwrap()
            .count()
    }

    /// Sends SIGTERM and waits for the exit, failing after `deadline`.
    async fn terminate(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(
                started.elapsed() < deadline,
                "still running after {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn two_threads_answer_16_clients_and_sigterm_closes_them_all_with_1001() {
    let mut echo = Echo::start("2", &["--shutdown-timeout", "3"]);
    assert!(
        echo.listening
            .contains(&format!("ws://{} (2 threads, compression on)", echo.addr)),
        "{}",
        echo.listening
    );
    let url = format!("ws://{}/", echo.addr);
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
    assert_eq!(echo.os_threads(), 2);

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
    let mut echo = Echo::start("1", &["--no-compression", "--shutdown-timeout", "1"]);
    assert!(
        echo.listening
            .contains(&format!("ws://{} (1 thread, compression off)", echo.addr)),
        "{}",
        echo.listening
    );
    let (mut ws, _) = switchboard::connect(&format!("ws://{}/", echo.addr))
        .await
        .unwrap();
    ws.send("alone").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("alone"));
    #[cfg(target_os = "linux")]
    assert_eq!(echo.os_threads(), 1);
    let exit = echo.terminate(Duration::from_secs(3)).await;
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn zero_threads_is_refused() {
    let out = Command::new(BIN)
        .args(["echo", "--listen", "127.0.0.1:0", "--threads", "0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--threads"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
