//! tokio-tungstenite echo server, written the way its documentation shows (`next()` then
//! `send()`), on one tokio current-thread runtime. `--read-buffer` and `--write-buffer` select
//! the variant: the defaults are tungstenite's (128 KiB each); the harness also runs 4096/4096.

use clap::Parser as _;
use futures_util::{SinkExt as _, StreamExt as _};
use switchboard_bench::server::{bind, current_thread_runtime, EchoArgs};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, clap::Parser)]
struct Args {
    #[command(flatten)]
    echo: EchoArgs,
    /// `WebSocketConfig::read_buffer_size`; tungstenite's default when absent.
    #[arg(long)]
    read_buffer: Option<usize>,
    /// `WebSocketConfig::write_buffer_size`; tungstenite's default when absent.
    #[arg(long)]
    write_buffer: Option<usize>,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut config = WebSocketConfig::default();
    if let Some(size) = args.read_buffer {
        config = config.read_buffer_size(size);
    }
    if let Some(size) = args.write_buffer {
        config = config.write_buffer_size(size);
    }
    current_thread_runtime()?.block_on(async move {
        let listener = bind(args.echo.listen).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
                else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    let is_data = matches!(message, Message::Text(_) | Message::Binary(_));
                    if message.is_close() || (is_data && ws.send(message).await.is_err()) {
                        return;
                    }
                }
            });
        }
    })
}
