//! An Autobahn|Testsuite server testee as a library user would write it (the suite itself
//! runs against `switchboard echo`, which is the same thing with command-line options):
//!
//! ```text
//! cargo run --release -p switchboard --example autobahn_server -- 127.0.0.1:9002
//! ```

use switchboard::{Server, WebSocketConfig};

#[tokio::main]
async fn main() -> Result<(), switchboard::Error> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_owned());
    let config = WebSocketConfig::default()
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
        .compression(true);
    let server = Server::bind(&addr).await?.config(config);
    println!("autobahn testee listening on ws://{}", server.local_addr()?);
    server
        .serve(|mut ws| async move {
            while let Some(Ok(message)) = ws.recv().await {
                if ws.feed(message).await.is_err() {
                    break;
                }
            }
        })
        .await
}
