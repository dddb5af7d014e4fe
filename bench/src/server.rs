//! What the peer echo servers in `src/bin/` share: the command line and the runtime, so
//! every server runs on the same terms (one current-thread tokio runtime, so one core, and
//! `TCP_NODELAY` on every accepted socket).

use std::net::SocketAddr;

/// The command line every echo server takes.
#[derive(Debug, clap::Parser)]
pub struct EchoArgs {
    /// Address to listen on (the harness uses loopback only).
    #[arg(long, default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
}

/// A single-threaded tokio runtime: the server under test gets exactly one core's worth of
/// event loop, as every other server in the harness does.
pub fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Binds `addr` and tells the harness on stdout that the server is ready.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    Ok(listener)
}
