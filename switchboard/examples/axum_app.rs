//! An axum app with REST routes and two WebSocket routes on one port.
//!
//! ```text
//! cargo run -p switchboard --features axum --example axum_app -- 127.0.0.1:3000
//! curl http://127.0.0.1:3000/health               # REST
//! curl -X POST -d 'hi all' http://127.0.0.1:3000/api/announce
//! switchboard connect ws://127.0.0.1:3000/echo    # echoes each line
//! switchboard connect ws://127.0.0.1:3000/chat    # every text goes to everyone on /chat
//! ```
//!
//! `GET /echo` without an upgrade gets `426 Upgrade Required`; other paths get axum's 404.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use switchboard::axum::{WebSocket, WebSocketUpgrade};
use switchboard::{Message, WebSocketConfig};
use tokio::sync::broadcast;

/// What the routes share: the chat room's fan-out and its head count.
#[derive(Clone)]
struct App {
    room: broadcast::Sender<String>,
    members: Arc<AtomicUsize>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let app = App {
        room: broadcast::channel(256).0,
        members: Arc::new(AtomicUsize::new(0)),
    };
    let router = Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/api/stats", get(stats))
        .route("/api/announce", post(announce))
        .route("/echo", get(echo))
        .route("/chat", get(chat))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await
}

/// `GET /api/stats`: how many are in the chat room.
async fn stats(State(app): State<App>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "chat_members": app.members.load(Ordering::Relaxed) }))
}

/// `POST /api/announce`: the body goes to everyone in the chat room.
async fn announce(State(app): State<App>, body: String) -> Json<serde_json::Value> {
    // No receiver is not an error: nobody was there to hear it.
    let delivered = app.room.send(format!("[announce] {body}")).unwrap_or(0);
    Json(serde_json::json!({ "delivered": delivered }))
}

/// `GET /echo`: every text and binary message comes back.
async fn echo(ws: WebSocketUpgrade) -> Response {
    ws.config(
        WebSocketConfig::default()
            .max_message_size(1 << 20)
            .compression(true),
    )
    .on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if socket.send(message).await.is_err() {
                break;
            }
        }
    })
}

/// `GET /chat`: the seeds' chat room, every text broadcast to every member.
async fn chat(ws: WebSocketUpgrade, State(app): State<App>) -> Response {
    ws.protocols(["chat.v1"])
        .config(WebSocketConfig::default().max_message_size(16 << 10))
        .on_upgrade(move |socket| room_member(socket, app))
}

async fn room_member(socket: WebSocket, app: App) {
    let mut inbox = app.room.subscribe();
    app.members.fetch_add(1, Ordering::Relaxed);
    let (mut reader, mut writer) = socket.split();
    let room = app.room.clone();
    let mut from_peer = tokio::spawn(async move {
        while let Some(Ok(message)) = reader.recv().await {
            if let Message::Text(text) = message {
                let _ = room.send(text.to_string());
            }
        }
    });
    loop {
        tokio::select! {
            _ = &mut from_peer => break,
            received = inbox.recv() => match received {
                Ok(text) => {
                    if writer.send(text).await.is_err() {
                        break;
                    }
                }
                // A member too slow for the room misses messages rather than stalling it.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    from_peer.abort();
    app.members.fetch_sub(1, Ordering::Relaxed);
}
