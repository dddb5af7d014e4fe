//! `switchboard echo`: an echo server, the seeds' first example and the Autobahn testee.

use anyhow::Context;
use std::process::ExitCode;
use switchboard::{Acceptor, Server, WebSocket, WebSocketConfig};
use tokio::net::TcpStream;

/// Options of `switchboard echo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: String,
    /// Do not negotiate permessage-deflate (RFC 7692).
    #[arg(long)]
    no_compression: bool,
    /// Largest message (and frame) accepted, in bytes; the default admits Autobahn's 16 MiB
    /// messages with room to spare.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    max_message_size: usize,
}

/// Serves until Ctrl-C.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = WebSocketConfig::default()
        .max_message_size(args.max_message_size)
        .max_frame_size(args.max_message_size)
        .compression(!args.no_compression);
    let acceptor = Acceptor::builder().config(config).build();
    let server = Server::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?
        .acceptor(acceptor);
    let addr = server.local_addr()?;
    tracing::info!(
        "echo server listening on ws://{addr} (compression {})",
        if args.no_compression { "off" } else { "on" }
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    };
    server.serve_with_shutdown(echo, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Echoes until the connection ends. Replies are fed, not flushed one by one: `recv`
/// flushes them before it waits for input, so a burst of messages is echoed in one write.
async fn echo(mut ws: WebSocket<TcpStream>) {
    while let Some(received) = ws.recv().await {
        let message = match received {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%error, "connection ended with an error");
                return;
            }
        };
        if let Err(error) = ws.feed(message).await {
            tracing::debug!(%error, "cannot echo");
            return;
        }
    }
}
