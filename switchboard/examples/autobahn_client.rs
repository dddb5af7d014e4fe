//! The Autobahn|Testsuite client testee: run `wstest -m fuzzingserver`, then
//!
//! ```text
//! cargo run --release -p switchboard --example autobahn_client -- ws://127.0.0.1:9001
//! ```
//!
//! It follows the suite's client protocol: `/getCaseCount` answers with the number of
//! cases; `/runCase?case=I&agent=A` runs case I, for which we echo every message until the
//! server closes; `/updateReports?agent=A` writes the reports. The URL comes from the first
//! argument or `AUTOBAHN_URL`, the agent name from `AUTOBAHN_AGENT` (default
//! `switchboard`). Messages up to 64 MiB are accepted and permessage-deflate is offered.

use std::error::Error;
use switchboard::{Client, Message, WebSocketConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let base = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("AUTOBAHN_URL").ok())
        .unwrap_or_else(|| "ws://127.0.0.1:9001".to_owned());
    let base = base.trim_end_matches('/');
    let agent = std::env::var("AUTOBAHN_AGENT").unwrap_or_else(|_| "switchboard".to_owned());
    let config = WebSocketConfig::default()
        .max_message_size(64 << 20)
        .max_frame_size(64 << 20)
        .compression(true);
    let client = Client::builder().config(config).build()?;

    let count = case_count(&client, base).await?;
    println!("{count} cases");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        if let Err(error) = echo_until_closed(&client, &url).await {
            // Many cases end in a deliberate protocol violation; the report judges them.
            println!("case {case}: {error}");
        }
    }

    let (mut ws, _) = client
        .connect(&format!("{base}/updateReports?agent={agent}"))
        .await?;
    while ws.recv().await.is_some() {}
    println!("reports updated");
    Ok(())
}

async fn case_count(client: &Client, base: &str) -> Result<u32, Box<dyn Error>> {
    let (mut ws, _) = client.connect(&format!("{base}/getCaseCount")).await?;
    let count = match ws.recv().await {
        Some(Ok(Message::Text(text))) => text.trim().parse()?,
        other => return Err(format!("unexpected answer to getCaseCount: {other:?}").into()),
    };
    while ws.recv().await.is_some() {}
    Ok(count)
}

/// Echoes every message; replies are fed and go out when `recv` waits for input.
async fn echo_until_closed(client: &Client, url: &str) -> Result<(), switchboard::Error> {
    let (mut ws, _) = client.connect(url).await?;
    while let Some(message) = ws.recv().await {
        ws.feed(message?).await?;
    }
    Ok(())
}
