//! The `switchboard` binary end to end: `echo` on a free port, `connect` against it with
//! stdin and stdout, and `connect` against a server that refuses the handshake.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// `switchboard echo` on port 0; returns the child and the URL from its log line.
fn start_echo() -> (KillOnDrop, String) {
    let mut child = Command::new(BIN)
        .args(["echo", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("no URL in the log line {line:?}"))
        .to_owned();
    (KillOnDrop(child), url)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `switchboard connect` with `input` on stdin; returns (exit code, stdout, stderr).
fn connect(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .arg("connect")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("switchboard connect did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

#[test]
fn connect_to_echo_prints_replies_and_the_close() {
    let (_server, url) = start_echo();
    let (code, out, err) = connect(&[&url], "hello\nworld\n");
    assert_eq!(code, 0, "stderr: {err}");
    // Replies that cross our close are still printed.
    assert_eq!(out, "hello\nworld\n", "stderr: {err}");
    assert!(err.contains("closed: 1000"), "{err}");
    assert!(err.contains("compression: on"), "{err}");

    let (code, _, err) = connect(&["--no-compression", "-H", "X-Test: 1", &url], "");
    assert_eq!(code, 0, "stderr: {err}");
    assert!(err.contains("compression: off"), "{err}");
}

#[test]
fn refused_handshake_shows_the_status_and_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut head = [0u8; 4096];
        let _ = tcp.read(&mut head).unwrap();
        tcp.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
    });
    let (code, _, err) = connect(&[&format!("ws://{addr}/missing")], "");
    assert_ne!(code, 0);
    assert!(
        err.contains("handshake failed: HTTP 404 Not Found"),
        "{err}"
    );
    server.join().unwrap();
}

#[test]
fn nothing_listening_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (code, _, err) = connect(&[&format!("ws://{addr}/")], "");
    assert_ne!(code, 0);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn bad_header_argument_is_reported() {
    let (code, _, err) = connect(&["-H", "no colon here", "ws://127.0.0.1:1/"], "");
    assert_ne!(code, 0);
    assert!(err.contains("Name: value"), "{err}");
}
