//! Reaching a WebSocket server through an HTTP CONNECT proxy: a small proxy written here
//! (CONNECT only, optional Basic credentials, a log of the tunnels it opened) on loopback.

#[cfg(feature = "tls")]
#[path = "support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::proxy::Proxy;
use switchboard::{Client, CloseCode, ErrorKind, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);

/// A CONNECT proxy on loopback; `tunnels` lists the targets it connected to.
struct TestProxy {
    addr: SocketAddr,
    tunnels: Arc<Mutex<Vec<String>>>,
}

impl TestProxy {
    /// `credentials`: the `Proxy-Authorization` value it insists on, if any.
    async fn start(credentials: Option<&'static str>) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let log = tunnels.clone();
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                tokio::spawn(serve_one(client, credentials, log.clone()));
            }
        });
        TestProxy { addr, tunnels }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn serve_one(
    mut client: TcpStream,
    credentials: Option<&'static str>,
    log: Arc<Mutex<Vec<String>>>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte so nothing past the head is consumed: a test proxy can afford it.
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await.unwrap_or(0) == 0 || head.len() > 8192 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    if let Some(expected) = credentials {
        let given = head
            .lines()
            .find_map(|line| line.strip_prefix("Proxy-Authorization: "))
            .map(str::trim);
        if given != Some(expected) {
            let _ = client
                .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        }
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    log.lock().unwrap().push(target.to_owned());
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// A plain echo server; returns its address.
async fn echo_server() -> SocketAddr {
    let server = switchboard::Server::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.serve(|mut ws| async move {
        while let Some(Ok(message)) = ws.recv().await {
            if ws.send(message).await.is_err() {
                break;
            }
        }
    }));
    addr
}

#[tokio::test]
async fn a_websocket_runs_through_a_connect_tunnel() {
    let proxy = TestProxy::start(None).await;
    let server = echo_server().await;
    let tunnel = Proxy::parse(&proxy.url())
        .unwrap()
        .tunnel("127.0.0.1", server.port())
        .await
        .unwrap();
    let url = format!("ws://127.0.0.1:{}/", server.port());
    let (mut ws, _) = Client::default().connect_on(tunnel, &url).await.unwrap();
    ws.send("through the proxy").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::from("through the proxy")
    );
    ws.close(CloseCode::NORMAL, "").await.unwrap();
    assert_eq!(
        *proxy.tunnels.lock().unwrap(),
        vec![format!("127.0.0.1:{}", server.port())]
    );
}

#[tokio::test]
async fn proxy_credentials_and_refusals() {
    // "user:pa ss" in Basic form.
    let proxy = TestProxy::start(Some("Basic dXNlcjpwYSBzcw==")).await;
    let server = echo_server().await;

    let error = Proxy::parse(&proxy.url())
        .unwrap()
        .tunnel("127.0.0.1", server.port())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Handshake);
    assert_eq!(
        error.status(),
        Some(http::StatusCode::PROXY_AUTHENTICATION_REQUIRED)
    );

    let with_credentials = format!("http://user:pa%20ss@{}", proxy.addr);
    let tunnel = Proxy::parse(&with_credentials)
        .unwrap()
        .tunnel("127.0.0.1", server.port())
        .await
        .unwrap();
    let (mut ws, _) = Client::default()
        .connect_on(tunnel, "ws://127.0.0.1/")
        .await
        .unwrap();
    ws.send("authorised").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::from("authorised")
    );

    // A target the proxy cannot reach: the proxy's 502 comes back as the status.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let error = Proxy::parse(&with_credentials)
        .unwrap()
        .tunnel("127.0.0.1", closed.port())
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(http::StatusCode::BAD_GATEWAY));
}

#[tokio::test]
async fn a_proxy_that_is_not_there_is_an_io_error() {
    let gone = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let error = tokio::time::timeout(
        LIMIT,
        Proxy::parse(&format!("http://{gone}"))
            .unwrap()
            .tunnel("example.com", 80),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
}

/// `wss://` through the tunnel: TLS runs end to end, the proxy only relays bytes.
#[cfg(feature = "tls")]
#[tokio::test]
async fn wss_runs_end_to_end_through_the_tunnel() {
    use switchboard::tls;

    let pki = pki::Pki::new("proxy");
    let acceptor = tls::acceptor_from_pem(pki.path("cert.pem"), pki.path("key.pem")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = switchboard::accept(acceptor.accept(tcp).await.unwrap())
            .await
            .unwrap();
        while let Some(Ok(message)) = ws.recv().await {
            let _ = ws.send(message).await;
        }
    });

    let proxy = TestProxy::start(None).await;
    let tunnel = Proxy::parse(&proxy.url())
        .unwrap()
        .tunnel("localhost", server.port())
        .await
        .unwrap();
    let config = tls::client_config([pki.path("ca.pem")]).unwrap();
    let tls = tls::connect(tunnel, "localhost", config).await.unwrap();
    let url = format!("wss://localhost:{}/", server.port());
    let (mut ws, _) = Client::default().connect_on(tls, &url).await.unwrap();
    ws.send("secret").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("secret"));
    assert_eq!(
        *proxy.tunnels.lock().unwrap(),
        vec![format!("localhost:{}", server.port())]
    );
}

#[tokio::test]
async fn the_client_builder_connects_through_a_proxy() {
    let proxy = TestProxy::start(None).await;
    let server = echo_server().await;
    let client = Client::builder()
        .proxy(Proxy::parse(&proxy.url()).unwrap())
        .build()
        .unwrap();
    let (mut ws, _) = client
        .connect(&format!("ws://127.0.0.1:{}/", server.port()))
        .await
        .unwrap();
    ws.send("via builder").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::from("via builder")
    );
    assert_eq!(proxy.tunnels.lock().unwrap().len(), 1);
}
