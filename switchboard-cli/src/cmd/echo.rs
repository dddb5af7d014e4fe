//! `switchboard echo`: an echo server, the seeds' first example and the Autobahn testee.
//!
//! Every path is served (Autobahn and browsers connect wherever they like); a plain HTTP
//! request gets 426. The options expose the serving features of the library: TLS, the
//! client's address behind a proxy, `Origin` allowlist, connection limits, keepalive and
//! timeouts, and graceful shutdown on Ctrl-C or SIGTERM (every client gets 1001).
//!
//! It serves from one thread per core, each with a current-thread runtime and its own
//! `SO_REUSEPORT` socket ([`Router::serve_threads`]): the kernel spreads the connections and
//! a connection never leaves its thread. One thread is one current-thread runtime, no
//! multi-thread scheduler at all.

use anyhow::Context;
use std::net::ToSocketAddrs;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;
use switchboard::http2::Http2Config;
use switchboard::router::{bind_per_thread, Route, Router, ServerWebSocket};
use switchboard::security::{ConnectionLimiter, OriginPolicy, TrustedProxies};
use switchboard::WebSocketConfig;

/// Options of `switchboard echo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: String,
    /// Serving threads, each with its own runtime and listening socket (default: the CPUs
    /// this process may run on, which `taskset` limits).
    #[arg(long, value_name = "N")]
    threads: Option<NonZeroUsize>,
    /// Speak only this subprotocol (repeatable; most preferred first). Default: select the
    /// first one the client offers, as Node's `ws` server does (browsers refuse a server
    /// that selects none of those they offered).
    #[arg(long, value_name = "PROTOCOL")]
    subprotocol: Vec<String>,
    /// Do not negotiate permessage-deflate (RFC 7692).
    #[arg(long)]
    no_compression: bool,
    /// Largest message (and frame) accepted, in bytes; the default admits Autobahn's 16 MiB
    /// messages with room to spare.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    max_message_size: usize,
    /// Serve wss://: the certificate chain, PEM (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert, PEM.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Believe X-Forwarded-For from this proxy address or range, e.g. 127.0.0.1 for a
    /// local nginx (repeatable).
    #[arg(long, value_name = "ADDR[/PREFIX]")]
    trust_proxy: Vec<String>,
    /// Only pages from this origin may connect, e.g. https://example.com (repeatable;
    /// default: any origin).
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Most connections at once (503 beyond).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    max_connections: usize,
    /// Most connections from one client address (429 beyond).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    max_connections_per_ip: usize,
    /// Seconds a client has to complete its opening handshake.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    handshake_timeout: f64,
    /// Ping a client after this many seconds of silence (0: never).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    ping_interval: f64,
    /// Seconds a client has to answer a ping before it is cut off.
    #[arg(long, default_value_t = 20.0, value_name = "SECONDS")]
    pong_timeout: f64,
    /// Close a connection after this many seconds without input (0: never).
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    idle_timeout: f64,
    /// With --tls-cert: offer only HTTP/1.1 over ALPN, no HTTP/2 (RFC 8441) WebSockets.
    #[arg(long)]
    no_http2: bool,
    /// Seconds a graceful shutdown waits for clients to close.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    shutdown_timeout: f64,
}

/// A duration from seconds on the command line; 0 (or less) is `None`.
fn seconds(value: f64) -> Option<Duration> {
    (value > 0.0).then(|| Duration::from_secs_f64(value))
}

/// Serves until Ctrl-C or SIGTERM, then shuts down gracefully. Not async: it builds a
/// runtime per serving thread.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
        NonZeroUsize::get,
    );
    let config = WebSocketConfig::default()
        .max_message_size(args.max_message_size)
        .max_frame_size(args.max_message_size)
        .compression(!args.no_compression)
        .keepalive(
            seconds(args.ping_interval),
            seconds(args.pong_timeout).unwrap_or(Duration::from_secs(20)),
        )
        .idle_timeout(seconds(args.idle_timeout))
        .handshake_timeout(seconds(args.handshake_timeout));
    let origins = if args.allow_origin.is_empty() {
        OriginPolicy::any()
    } else {
        OriginPolicy::allow(&args.allow_origin)
    };
    let route = Route::new(|ws, _info| echo(ws))
        .config(config)
        .protocols(args.subprotocol.clone())
        .first_offered_protocol(true)
        .origins(origins);
    let mut router = Router::new()
        .fallback(route)
        .connection_limits(ConnectionLimiter::new(
            args.max_connections,
            args.max_connections_per_ip,
        ))
        .trusted_proxies(TrustedProxies::new(&args.trust_proxy)?)
        .shutdown_timeout(seconds(args.shutdown_timeout).unwrap_or_default())
        .http2(Http2Config::default().enabled(!args.no_http2));
    let scheme = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            router = router.tls(switchboard::tls::acceptor_from_pem(cert, key)?);
            "wss"
        }
        _ => "ws",
    };
    let listeners =
        bind(&args.listen, threads).with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listeners[0].local_addr()?;
    // `bench/run.sh` waits for "listening on" and the address.
    tracing::info!(
        "echo server listening on {scheme}://{addr} ({threads} thread{}, compression {}){}",
        if threads == 1 { "" } else { "s" },
        if args.no_compression { "off" } else { "on" },
        match (scheme, args.no_http2) {
            ("wss", false) => "; HTTP/2 on (ALPN h2, RFC 8441)",
            ("wss", true) => "; HTTP/2 off",
            _ => "",
        }
    );
    router.serve_threads(listeners, async {
        super::shutdown_signal().await;
        tracing::info!("shutting down: closing every connection with 1001 Going Away");
    })?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// One listening socket per thread on `listen` (an address, or a host name and port: the
/// first of its addresses that binds).
fn bind(listen: &str, threads: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut failed = None;
    for addr in listen.to_socket_addrs()? {
        match bind_per_thread(addr, threads) {
            Ok(listeners) => return Ok(listeners),
            Err(error) => failed = Some(error),
        }
    }
    Err(failed.map_or_else(
        || anyhow::anyhow!("{listen} names no address"),
        anyhow::Error::from,
    ))
}

/// Echoes until the connection ends. Replies are fed, not flushed one by one: `recv`
/// flushes them before it waits for input, so a burst of messages is echoed in one write.
async fn echo(mut ws: ServerWebSocket) {
    loop {
        let message = match ws.recv().await {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                tracing::debug!(%error, "connection ended with an error");
                return;
            }
            None => return,
        };
        if let Err(error) = ws.feed(message).await {
            tracing::debug!(%error, "cannot echo");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard::protocol::{Config, Connection};
    use switchboard::router::ServerStream;

    #[tokio::test]
    async fn the_echo_task_is_small() {
        // Each idle connection of `switchboard echo` holds one of these futures (boxed by
        // the router): part of the per-connection memory the benchmark reports.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = ServerWebSocket::from_connection(
            ServerStream::Plain(tcp),
            Connection::server(Config::default()),
            &WebSocketConfig::default(),
        );
        let size = std::mem::size_of_val(&echo(ws));
        assert!(size <= 80, "the echo future is {size} bytes");
    }
}
