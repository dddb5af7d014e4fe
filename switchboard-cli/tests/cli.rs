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

#[test]
fn sigint_in_a_pipe_closes_with_1000_and_waits_for_the_servers_close() {
    use std::io::BufRead;
    let server = EchoServer::start(&[]);
    let mut child = support::switchboard(&["connect", &server.url()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Input stays open: only the signal ends the session.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"before the signal\n").unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut echoed = String::new();
    stdout.read_line(&mut echoed).unwrap();
    assert_eq!(echoed, "before the signal\n");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (done, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let output = exited
        .recv_timeout(LIMIT)
        .expect("connect did not exit after SIGINT")
        .unwrap();
    drop(stdin);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{err}");
    // The echo server's answer to our 1000: a clean close handshake.
    assert!(err.lines().any(|l| l == "closed: 1000"), "{err}");
    // Nothing but messages on stdout.
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
}

#[test]
fn slash_commands_and_pongs_in_a_pipe() {
    let server = EchoServer::start(&[]);
    let url = server.url();
    let input = "/ping abc\n//slash\n/nope\n/close 4000 see you\nnever sent\n";
    let (code, out, err) = connect(&["--slash", "--show-ping", &url], input);
    assert_eq!(code, 0, "{err}");
    // Messages only on stdout; the pong, the answer to /nope and the close on stderr.
    assert_eq!(out, "/slash\n", "{err}");
    assert!(err.lines().any(|l| l == "pong: abc"), "{err}");
    assert!(err.contains("error: unknown command /nope"), "{err}");
    assert!(err.lines().any(|l| l == "closed: 4000 see you"), "{err}");

    // Without --slash, a line starting with / is a message like any other.
    let (code, out, err) = connect(&[&url], "/ping abc\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "/ping abc\n", "{err}");
}
