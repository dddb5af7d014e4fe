//! One handler function, written once, serves all four server entry points: `Server`,
//! `Router`, the hyper upgrade and the axum extractor (plus `accept` on a `ServerStream`).
//! That it compiles is half the test; each is then driven by a real client.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::router::{Route, Router};
use switchboard::{Client, Message, Server, ServerStream, ServerWebSocket};
use tokio::net::TcpListener;

/// The handler: answers each text with the text and the HTTP version of the handshake,
/// through the stream type every entry point shares.
async fn handler(mut ws: ServerWebSocket) {
    let version = ws.get_ref().http_version();
    while let Some(Ok(message)) = ws.recv().await {
        let Message::Text(text) = message else {
            continue;
        };
        if ws.send(format!("{text} {version:?}")).await.is_err() {
            break;
        }
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

async fn server() -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(Server::from_listener(listener).serve(handler));
    addr
}

async fn router() -> SocketAddr {
    let (listener, addr) = listener().await;
    let router = Router::new().route("/", Route::new(|ws, _info| handler(ws)));
    tokio::spawn(router.serve(listener));
    addr
}

async fn hyper() -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|mut req| async move {
                let options = switchboard::upgrade::UpgradeOptions::new();
                let response = match switchboard::upgrade::upgrade(&mut req, &options) {
                    Ok((response, websocket)) => {
                        tokio::spawn(async move { handler(websocket.await.unwrap()).await });
                        response.map(|body| body.map_err(|never| match never {}).boxed())
                    }
                    Err(rejection) => rejection
                        .response
                        .map(|body| Full::new(Bytes::from(body)).boxed()),
                };
                Ok::<_, Infallible>(response)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .with_upgrades(),
            );
        }
    });
    addr
}

async fn axum() -> SocketAddr {
    let (listener, addr) = listener().await;
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|ws: switchboard::axum::WebSocketUpgrade| async move {
            ws.on_upgrade(handler)
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn accept() -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = switchboard::accept(ServerStream::Plain(tcp)).await.unwrap();
        handler(ws).await;
    });
    addr
}

#[tokio::test]
async fn one_handler_serves_every_entry_point() {
    let servers = [
        ("Server", server().await),
        ("Router", router().await),
        ("hyper", hyper().await),
        ("axum", axum().await),
        ("accept", accept().await),
    ];
    for (name, addr) in servers {
        let talk = async {
            let (mut ws, _) = Client::default()
                .connect(&format!("ws://{addr}/"))
                .await
                .unwrap();
            ws.send(name).await.unwrap();
            ws.recv().await.unwrap().unwrap()
        };
        let reply = tokio::time::timeout(Duration::from_secs(10), talk)
            .await
            .unwrap_or_else(|_| panic!("{name} answered in time"));
        assert_eq!(reply, Message::from(format!("{name} HTTP/1.1")), "{name}");
    }
}
