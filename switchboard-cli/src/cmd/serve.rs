//! `switchboard serve`: the real-time hub (channels over WebSocket, SSE, long polling and
//! REST, the chat page at `/`), on the embedded in-memory broker, or on Redis with
//! `--redis URL` so that several nodes share channels.
//!
//! Settings come from three places, each overriding the one before: the built-in defaults
//! ([`HubConfig::default`], written out in `switchboard.example.toml`), the `--config` file,
//! and the flags (each also an environment variable `SWITCHBOARD_*`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use switchboard::http2::Http2Config;
use switchboard_hub::config::{AuthConfig, TlsConfig};
use switchboard_hub::{HubConfig, HubServer};

/// What `--help` says after the options: where settings come from.
const PRECEDENCE: &str = "\
Settings: flags (or their SWITCHBOARD_* environment variables) override the --config file,
and the file overrides the built-in defaults (written out, commented, in
switchboard.example.toml). --print-config shows the result. Only the settings people change
first have flags; the file has them all.

The WebSocket endpoint /ws accepts the subprotocol \"switchboard.v1\" (the JSON protocol of
docs/protocol.md) and also clients that offer none.";

/// Options of `switchboard serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = PRECEDENCE)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", env = "SWITCHBOARD_LISTEN",
          value_parser = switchboard_hub::parse_listen,
          help = format!("Address to listen on: 127.0.0.1:8080, localhost:8080, :8080 (loopback) \
                          or [::1]:8080; 0.0.0.0:8080 for every interface [default: {}]",
                         HubConfig::default().listen))]
    listen: Option<SocketAddr>,
    /// A TOML config file (every setting; see switchboard.example.toml)
    #[arg(long, value_name = "FILE", env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Share channels with every node on this Redis (`redis://host:6379`); overrides the
    /// config file's `[broker]`. Unreachable at start: exit with an error naming the URL.
    #[arg(long, value_name = "URL", env = "SWITCHBOARD_REDIS_URL")]
    redis: Option<String>,
    /// Let pages from this origin connect, e.g. https://app.example; "*" allows any
    /// (repeatable; in the environment, comma-separated) [default: the hub's own origin only]
    #[arg(
        long,
        value_name = "ORIGIN",
        env = "SWITCHBOARD_ALLOW_ORIGIN",
        value_delimiter = ','
    )]
    allow_origin: Vec<String>,
    /// Require HS256 JWTs signed with this secret (at least 16 bytes) [default: no auth]
    #[arg(
        long,
        value_name = "SECRET",
        env = "SWITCHBOARD_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_secret_file"
    )]
    jwt_secret: Option<String>,
    /// Like --jwt-secret, the secret read from this file (a trailing newline is dropped)
    #[arg(long, value_name = "FILE", env = "SWITCHBOARD_JWT_SECRET_FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// Messages kept per channel for history and resume.
    #[arg(long, value_name = "N", env = "SWITCHBOARD_HISTORY",
          help = format!("Messages kept per channel for history and resume; 0 keeps none \
                          [default: {}]", HubConfig::default().history.max_messages))]
    history: Option<usize>,
    /// Largest message in bytes.
    #[arg(long, value_name = "BYTES", env = "SWITCHBOARD_MAX_MESSAGE_BYTES",
          help = format!("Largest message in bytes (a text counts its own bytes) [default: {}]",
                         HubConfig::default().limits.max_message_bytes))]
    max_message_bytes: Option<usize>,
    /// Serve https:// and wss://: the certificate chain, PEM (with --tls-key)
    #[arg(
        long,
        value_name = "FILE",
        env = "SWITCHBOARD_TLS_CERT",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert, PEM
    #[arg(
        long,
        value_name = "FILE",
        env = "SWITCHBOARD_TLS_KEY",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// With TLS: offer only HTTP/1.1 over ALPN, no HTTP/2 (the kill switch; by default
    /// clients that pick h2 get HTTP/2 for everything, WebSockets as RFC 8441 streams)
    #[arg(long, env = "SWITCHBOARD_NO_HTTP2")]
    no_http2: bool,
    /// Print the effective settings as TOML (secrets hidden) and exit
    #[arg(long)]
    print_config: bool,
}

impl Args {
    /// The defaults, overridden by the file, overridden by the flags.
    fn effective_config(&self) -> anyhow::Result<HubConfig> {
        let mut config = match &self.config {
            // The error names the file and says what is wrong, once.
            Some(path) => HubConfig::load(path)?,
            None => HubConfig::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(url) = self.redis.clone().filter(|u| !u.is_empty()) {
            config.broker.kind = switchboard_hub::config::BrokerKind::Redis;
            config.broker.url = url;
        }
        if !self.allow_origin.is_empty() {
            config.allowed_origins = self.allow_origin.clone();
        }
        if let Some(secret) = &self.jwt_secret {
            config.auth = Some(AuthConfig {
                jwt_secret: secret.clone(),
            });
        }
        if let Some(path) = &self.jwt_secret_file {
            let secret = std::fs::read_to_string(path)
                .with_context(|| format!("--jwt-secret-file: cannot read {}", path.display()))?;
            config.auth = Some(AuthConfig {
                jwt_secret: secret.trim_end_matches(['\r', '\n']).to_owned(),
            });
        }
        if let Some(n) = self.history {
            config.history.max_messages = n;
        }
        if let Some(n) = self.max_message_bytes {
            config.limits.max_message_bytes = n;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            config.tls = Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{e} (after applying the flags)"))?;
        Ok(config)
    }
}

/// The config as TOML, the secret replaced by a note of its length.
fn printable(config: &HubConfig) -> anyhow::Result<String> {
    let mut shown = config.clone();
    if let Some(auth) = &mut shown.auth {
        auth.jwt_secret = format!("<hidden, {} bytes>", auth.jwt_secret.len());
    }
    Ok(toml::to_string(&shown)?)
}

/// One line per thing a newcomer wants to know at startup.
fn describe(config: &HubConfig, addr: SocketAddr, source: Option<&PathBuf>) {
    let (http, ws) = if config.tls.is_some() {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    // `listening on` and the URL: what scripts and tests wait for.
    tracing::info!(
        "switchboard hub listening on {http}://{addr} (chat page at /, WebSocket at {ws}://{addr}/ws)"
    );
    match source {
        Some(path) => tracing::info!("settings: {} overridden by flags", path.display()),
        None => tracing::info!("settings: built-in defaults and flags (no --config file)"),
    }
    if config.broker.kind == switchboard_hub::config::BrokerKind::Redis {
        tracing::info!(
            "broker: Redis (channels shared with every node on it; key prefix {:?})",
            config.broker.key_prefix
        );
    } else {
        tracing::info!("broker: in-memory (this process only; --redis URL shares channels)");
    }
    tracing::info!(
        "auth: {}",
        if config.auth.is_some() {
            "on (HS256 JWTs required)"
        } else {
            "off (anyone may publish and subscribe; --jwt-secret turns it on)"
        }
    );
    tracing::info!(
        "allowed origins: {}",
        if config.allowed_origins.is_empty() {
            "the hub's own only (--allow-origin adds more)".to_owned()
        } else {
            format!("the hub's own and {}", config.allowed_origins.join(", "))
        }
    );
    let age = match config.history.max_age_secs {
        0 => "no age limit".to_owned(),
        secs => format!("at most {secs} s old"),
    };
    tracing::info!(
        "history: {} messages per channel, {age}; messages up to {} bytes",
        config.history.max_messages,
        config.limits.max_message_bytes
    );
}

/// Serves until Ctrl-C or SIGTERM, then shuts down gracefully.
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.effective_config()?;
    if args.print_config {
        print!("{}", printable(&config)?);
        return Ok(ExitCode::SUCCESS);
    }
    let tls = match &config.tls {
        Some(TlsConfig { cert, key }) => Some(switchboard::tls::acceptor_from_pem(cert, key)?),
        None => None,
    };
    // Redis first: a node that cannot reach it must not start serving alone.
    let mut server = HubServer::connect(config.clone())
        .await
        .context("cannot start the Redis broker")?;
    let listener = switchboard_hub::bind(&config)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    describe(&config, addr, args.config.as_ref());
    server = server.http2(Http2Config::default().enabled(!args.no_http2));
    if let Some(acceptor) = tls {
        server = server.with_tls(acceptor);
        tracing::info!(
            "HTTP/2: {}",
            if args.no_http2 {
                "off (--no-http2: ALPN offers http/1.1 only)"
            } else {
                "on (ALPN h2 and http/1.1; WebSockets over h2 as RFC 8441 streams)"
            }
        );
    }
    server.serve(listener, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
