//! Self-signed TLS as people make it: a certificate from `openssl req -x509` (a CA
//! certificate, which webpki refuses as a server's own) works with `connect --ca` when it is
//! exactly the server's; `--insecure` works with a warning; failures say what to do; and
//! `wss://` to a plain server says that it does not speak TLS. `serve --tls-cert` serves
//! wss:// too. Needs `openssl` (the test fails, loudly, without it).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{start_logged, EchoServer, LIMIT};

/// `openssl req -x509 …` as the issue and most tutorials write it; answers (cert, key).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost", "-days", "2"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is needed to make the test certificate");
    assert!(status.status.success(), "{status:?}");
    (cert, key)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn connect(args: &[&str]) -> (i32, String, String) {
    let mut command = support::switchboard(&["connect"]);
    command.args(args);
    let out = support::run(command, "hello\n", LIMIT);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn connect_pins_a_self_signed_certificate_given_with_ca() {
    let dir = temp_dir("pin");
    let (cert, key) = self_signed(&dir);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (mut child, addr, _) = start_logged(
        &[
            "echo",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
        "wss://",
    );
    let url = format!("wss://localhost:{}/", addr.port());

    let (code, out, err) = connect(&[&url, "--ca", cert]);
    assert_eq!((code, out.as_str()), (0, "hello\n"), "{err}");

    // Without it: refused, and the message says what to do.
    let (code, _, err) = connect(&[&url]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--ca FILE"), "{err}");
    // The pinned certificate must still be for the name connected to.
    let ip_url = format!("wss://127.0.0.1:{}/", addr.port());
    let (code, _, err) = connect(&[&ip_url, "--ca", cert]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not for the host name"), "{err}");

    let (code, out, err) = connect(&[&url, "--insecure"]);
    assert_eq!((code, out.as_str()), (0, "hello\n"), "{err}");
    assert!(err.contains("warning: --insecure"), "{err}");

    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wss_to_a_plain_server_says_it_does_not_speak_tls() {
    let plain = EchoServer::start(&[]);
    let url = format!("wss://localhost:{}/", plain.addr.port());
    let (code, _, err) = connect(&[&url]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the server does not speak TLS"), "{err}");
    assert!(!err.contains("\nerror"), "one error, said once: {err}");
}

#[test]
fn serve_serves_wss_with_tls_cert_and_key() {
    let dir = temp_dir("serve");
    let (cert, key) = self_signed(&dir);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let (mut child, addr, line) = start_logged(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
        "https://",
    );
    assert!(line.contains("wss://"), "{line}");
    let url = format!("wss://localhost:{}/ws/chat", addr.port());
    // The handshake over TLS and a clean close (whether the room's broadcast of our line
    // beats our close is the hub's business, not TLS's).
    let (code, _, err) = connect(&[&url, "--ca", cert]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("connected: wss://localhost:"), "{err}");
    assert!(err.contains("closed: 1000"), "{err}");
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();
}
