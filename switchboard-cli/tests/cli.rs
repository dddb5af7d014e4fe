//! The `switchboard` binary end to end: `echo` on a free port, `connect` against it with
//! stdin and stdout, and `connect` against a server that refuses the handshake.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use support::{EchoServer, LIMIT};

/// Runs `switchboard connect ARGS` with `input` on stdin; returns (exit code, stdout, stderr).
fn connect(args: &[&str], input: &str) -> (i32, String, String) {
    let mut command = support::switchboard(&["connect"]);
    command.args(args);
    let output = support::run(command, input, LIMIT);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn connect_to_echo_prints_replies_and_the_close() {
    let server = EchoServer::start(&[]);
    let url = server.url();
    let (code, out, err) = connect(&[&url], "hello\nworld\n");
    assert_eq!(code, 0, "stderr: {err}");
    // Replies that cross our close are still printed.
    assert_eq!(out, "hello\nworld\n", "stderr: {err}");
    assert!(
        err.lines().any(|l| l == "closed: 1000"),
        "no trailing space: {err:?}"
    );
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

/// Offers `protocols` to `url`; answers the one the server selected.
async fn selected(url: &str, protocols: &[&str]) -> Option<String> {
    let (ws, _) = switchboard::Client::builder()
        .protocols(protocols.iter().map(|p| p.to_string()))
        .connect(url)
        .await
        .unwrap();
    ws.protocol().map(str::to_owned)
}

#[tokio::test]
async fn echo_selects_the_first_offered_subprotocol_unless_restricted() {
    let any = EchoServer::start(&[]);
    assert_eq!(
        selected(&any.url(), &["chat", "superchat"])
            .await
            .as_deref(),
        Some("chat")
    );
    assert_eq!(selected(&any.url(), &[]).await, None);
    let only = EchoServer::start(&["--subprotocol", "superchat", "--subprotocol", "v2"]);
    assert_eq!(
        selected(&only.url(), &["chat", "v2", "superchat"])
            .await
            .as_deref(),
        Some("superchat")
    );
}

#[test]
fn a_refusal_prints_the_servers_reason_next_to_the_status() {
    let hub = support::HubProcess::start(&[]);
    let url = format!("ws://{}/ws/chat", hub.addr);
    let (code, _, err) = connect(&["-H", "Origin: https://elsewhere.example", &url], "");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("handshake failed: HTTP 403 Forbidden: "),
        "{err}"
    );
    assert!(
        err.contains("--allow-origin https://elsewhere.example"),
        "{err}"
    );
}
