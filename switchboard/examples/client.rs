//! A client: connect, send a message, print the reply, close.
//!
//! ```text
//! cargo run -p switchboard --example client -- ws://127.0.0.1:9001
//! ```

use switchboard::{CloseCode, Message};

#[tokio::main]
async fn main() -> Result<(), switchboard::Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let (mut ws, response) = switchboard::Client::builder()
        .protocols(["chat"])
        .header("User-Agent", "switchboard-example")
        .connect(&url)
        .await?;
    println!(
        "connected: HTTP {} (subprotocol {:?})",
        response.status(),
        ws.protocol()
    );

    ws.send("Hello, WebSocket!").await?;
    match ws.recv().await {
        Some(Ok(Message::Text(text))) => println!("received: {text}"),
        Some(Ok(Message::Binary(bytes))) => println!("received {} bytes", bytes.len()),
        Some(Err(error)) => return Err(error),
        None => println!("the server closed the connection"),
    }

    ws.close(CloseCode::NORMAL, "done").await?;
    if let Some(info) = ws.close_info() {
        println!(
            "closed: {} {:?} (clean: {})",
            info.code, info.reason, info.clean
        );
    }
    Ok(())
}
