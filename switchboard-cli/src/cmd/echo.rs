//! `switchboard echo`: an echo server, the seeds' first example and the Autobahn testee.
//!
//! Every path is served (Autobahn and browsers connect wherever they like); a plain HTTP
//! request gets 426. The options expose the serving features of the library: TLS, the
//! client's address behind a proxy, `Origin` allowlist, connection limits, keepalive and
//! timeouts, and graceful shutdown on Ctrl-C or SIGTERM (every client gets 1001).

use anyhow::Context;
use std::process::ExitCode;
use std::time::Duration;
use switchboard::router::{Route, Router, ServerWebSocket};
use switchboard::security::{ConnectionLimiter, OriginPolicy, TrustedProxies};
use switchboard::WebSocketConfig;

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
    /// Seconds a graceful shutdown waits for clients to close.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    shutdown_timeout: f64,
}

/// A duration from seconds on the command line; 0 (or less) is `None`.
fn seconds(value: f64) -> Option<Duration> {
    (value > 0.0).then(|| Duration::from_secs_f64(value))
}

/// Serves until Ctrl-C or SIGTERM, then shuts down gracefully.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = WebSocketConfig::default()
        .max_message_size(args.max_message_size)
        .max_frame_size(args.max_message_size)
        .compression(!args.no_compression)
        .keepalive(
            seconds(args.ping_interval),
            seconds(args.pong_timeout).unwrap_or(Duration::from_secs(20)),
        )
        .idle_timeout(seconds(args.idle_timeout));
    let origins = if args.allow_origin.is_empty() {
        OriginPolicy::any()
    } else {
        OriginPolicy::allow(&args.allow_origin)
    };
    let route = Route::new(|ws, _info| echo(ws))
        .config(config)
        .origins(origins);
    let mut router = Router::new()
        .fallback(route)
        .connection_limits(ConnectionLimiter::new(
            args.max_connections,
            args.max_connections_per_ip,
        ))
        .trusted_proxies(TrustedProxies::new(&args.trust_proxy)?)
        .handshake_timeout(seconds(args.handshake_timeout))
        .shutdown_timeout(seconds(args.shutdown_timeout).unwrap_or_default());
    let scheme = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            router = router.tls(switchboard::tls::acceptor_from_pem(cert, key)?);
            "wss"
        }
        _ => "ws",
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "echo server listening on {scheme}://{addr} (compression {})",
        if args.no_compression { "off" } else { "on" }
    );
    router
        .serve_with_shutdown(listener, shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Echoes until the connection ends. Replies are fed, not flushed one by one: `recv`
/// flushes them before it waits for input, so a burst of messages is echoed in one write.
async fn echo(mut ws: ServerWebSocket) {
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

/// Ctrl-C, or SIGTERM on Unix (what `kill`, `docker stop` and systemd send).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down: closing every connection with 1001 Going Away");
}
