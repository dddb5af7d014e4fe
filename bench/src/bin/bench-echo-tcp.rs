//! Plain TCP echo on one tokio current-thread runtime: the ceiling for the harness. It does
//! what any echo must (one read, one write per burst) and nothing a WebSocket server must
//! (handshake, header parsing, unmasking, UTF-8), so no WebSocket server can beat it.

use clap::Parser as _;
use switchboard_bench::server::{bind, current_thread_runtime, EchoArgs};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Per-connection buffer: big enough to move 64 KiB and 1 MiB messages at full speed.
const BUF_LEN: usize = 64 * 1024;

fn main() -> std::io::Result<()> {
    let args = EchoArgs::parse();
    current_thread_runtime()?.block_on(async move {
        let listener = bind(args.listen).await?;
        loop {
            let (mut stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let mut buf = vec![0u8; BUF_LEN];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    })
}
