//! The smallest useful server: echo every message back.
//!
//! ```text
//! cargo run -p switchboard --example echo_server
//! ```
//! then, in a browser console: `ws = new WebSocket("ws://127.0.0.1:9001"); ws.onmessage = e => console.log(e.data); ws.onopen = () => ws.send("hi")`.

#[tokio::main]
async fn main() -> Result<(), switchboard::Error> {
    let server = switchboard::Server::bind("127.0.0.1:9001").await?;
    println!("listening on ws://{}", server.local_addr()?);
    server
        .serve(|mut ws| async move {
            while let Some(Ok(message)) = ws.recv().await {
                if ws.send(message).await.is_err() {
                    break;
                }
            }
        })
        .await
}
