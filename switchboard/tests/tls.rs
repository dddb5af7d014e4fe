//! TLS end to end: a CA and a server certificate made here with rcgen, written as PEM
//! files, loaded by `switchboard::tls`, and a real rustls handshake on loopback under the
//! WebSocket one.

#[path = "support/pki.rs"]
mod pki;

use pki::Pki;
use rcgen::KeyPair;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use switchboard::tls::{self, TlsError};
use switchboard::{Client, CloseCode, Message};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(10);

/// A TLS echo server on loopback; returns its address.
async fn tls_echo_server(pki: &Pki) -> SocketAddr {
    let acceptor = tls::acceptor_from_pem(pki.path("cert.pem"), pki.path("key.pem")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses our certificate ends here; that is its test.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut ws) = switchboard::accept(tls).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.recv().await {
                    if ws.send(message).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn tls_connect(
    addr: SocketAddr,
    host: &str,
    ca: &Path,
) -> io::Result<tls::ClientTlsStream<TcpStream>> {
    let config = tls::client_config([ca]).unwrap();
    let tcp = TcpStream::connect(addr).await?;
    tokio::time::timeout(LIMIT, tls::connect(tcp, host, config)).await?
}

#[tokio::test]
async fn wss_round_trip_with_a_ca_made_in_the_test() {
    let pki = Pki::new("roundtrip");
    let addr = tls_echo_server(&pki).await;
    for host in ["localhost", "127.0.0.1"] {
        let tls = tls_connect(addr, host, &pki.path("ca.pem")).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let url = format!("wss://{host}:{}/", addr.port());
        let (mut ws, response) = Client::default().connect_on(tls, &url).await.unwrap();
        assert_eq!(response.status(), 101);
        ws.send("over TLS").await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from("over TLS"));
        let big = vec![7u8; 300_000];
        ws.send(big.clone()).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap(), Message::from(big));
        ws.close(CloseCode::NORMAL, "done").await.unwrap();
        assert!(ws.close_info().unwrap().clean);
    }
}

#[tokio::test]
async fn an_untrusted_or_misnamed_certificate_is_refused() {
    let pki = Pki::new("refused");
    let addr = tls_echo_server(&pki).await;
    let error = tls_connect(addr, "localhost", &pki.path("other-ca.pem"))
        .await
        .unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("unknown"),
        "{error}"
    );
    let error = tls_connect(addr, "example.com", &pki.path("ca.pem"))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .to_lowercase()
            .contains("not valid for name"),
        "{error}"
    );
    // The default roots do not know the test CA either.
    let tcp = TcpStream::connect(addr).await.unwrap();
    assert!(tls::connect(tcp, "localhost", tls::default_client_config())
        .await
        .is_err());
}

#[test]
fn pem_problems_are_reported_with_the_file() {
    let pki = Pki::new("pem");
    let missing = pki.path("missing.pem");
    match tls::acceptor_from_pem(&missing, pki.path("key.pem")) {
        Err(TlsError::Read { path, .. }) => assert_eq!(path, missing),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("a missing file was accepted"),
    }
    // A key file given as the certificate, and the other way round.
    assert!(matches!(
        tls::acceptor_from_pem(pki.path("key.pem"), pki.path("key.pem")),
        Err(TlsError::NoCertificate(_))
    ));
    assert!(matches!(
        tls::acceptor_from_pem(pki.path("cert.pem"), pki.path("cert.pem")),
        Err(TlsError::NoPrivateKey(_))
    ));
    let garbled = pki.path("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    assert!(matches!(
        tls::client_config([&garbled]),
        Err(TlsError::Pem { .. })
    ));
    // A key that does not belong to the certificate.
    let other_key = pki.path("other-key.pem");
    std::fs::write(&other_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let Err(error) = tls::acceptor_from_pem(pki.path("cert.pem"), &other_key) else {
        panic!("a foreign key was accepted");
    };
    assert!(matches!(error, TlsError::Config(_)), "{error}");
}

#[tokio::test]
async fn connect_speaks_wss_with_a_configured_ca_and_refuses_unknown_ones() {
    let pki = Pki::new("connect");
    let addr = tls_echo_server(&pki).await;
    let url = format!("wss://localhost:{}/", addr.port());

    let config = tls::client_config([pki.path("ca.pem")]).unwrap();
    let client = Client::builder().tls_config(config).build().unwrap();
    let (mut ws, _) = client.connect(&url).await.unwrap();
    assert!(matches!(
        ws.get_ref(),
        switchboard::MaybeTlsStream::Rustls(_)
    ));
    ws.send("wss via connect").await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        Message::from("wss via connect")
    );
    ws.close(CloseCode::NORMAL, "").await.unwrap();

    // The default client trusts the webpki roots only.
    let error = switchboard::connect(&url).await.unwrap_err();
    assert_eq!(error.kind(), switchboard::ErrorKind::Tls);
    assert!(error.to_string().contains("UnknownIssuer"), "{error}");
}
