//! `switchboard serve`: the real-time hub (channels over WebSocket, SSE, long polling and
//! REST, the chat page at `/`), on the embedded in-memory broker, or on Redis with
//! `--redis URL` so that several nodes share channels.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use switchboard_hub::{HubConfig, HubServer};

/// Options of `switchboard serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (overrides the config file). Default 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// A TOML config file (see `switchboard_hub::config`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Share channels with every node on this Redis (`redis://host:6379`); overrides the
    /// config file's `[broker]`. Unreachable at start: exit with an error naming the URL.
    #[arg(long, value_name = "URL", env = "SWITCHBOARD_REDIS_URL")]
    redis: Option<String>,
}

/// Serves until Ctrl-C or SIGTERM, then shuts down gracefully.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => HubConfig::load(path)?,
        None => HubConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(url) = args.redis.filter(|u| !u.is_empty()) {
        config.broker.kind = switchboard_hub::config::BrokerKind::Redis;
        config.broker.url = url;
    }
    // Redis first: a node that cannot reach it must not start serving alone.
    let server = HubServer::connect(config.clone())
        .await
        .context("cannot start the Redis broker")?;
    let listener = switchboard_hub::bind(&config)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "switchboard hub listening on http://{addr} (chat page at /, WebSocket at ws://{addr}/ws)"
    );
    if config.broker.kind == switchboard_hub::config::BrokerKind::Redis {
        tracing::info!(
            "channels shared through Redis (key prefix {:?})",
            config.broker.key_prefix
        );
    }
    server.serve(listener, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
