//! [`HubConfig`]: every setting of `switchboard serve`, loadable from TOML.
//!
//! The hub's defaults are written once, here: the `Default` impls of [`HubConfig`]'s
//! sections. Everything else takes them from there — the brokers' and the hub's own
//! settings (`MemoryBrokerConfig`, `RedisBrokerConfig`, `HistoryLimits`, `HubOptions`,
//! `PresenceSettings` default to what [`HubConfig::default`] converts to), `serve --help`,
//! and the documents, which tests check against it: the example below is
//! `switchboard.example.toml` at the top of the repository, included here as it is, and it
//! must parse to [`HubConfig::default`]; every default `docs/protocol.md` states must be
//! the code's.
//!
//! ```toml
#![doc = include_str!("../../switchboard.example.toml")]
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::broker::MemoryBrokerConfig;
use crate::core::HistoryLimits;
use crate::hub::HubOptions;

/// Everything `switchboard serve` can be told. Every field has a default; a TOML file only
/// needs the ones it changes. Unknown keys are refused, so a typo does not go unnoticed.
///
/// ```
/// use switchboard_hub::{HubConfig, LagPolicy};
///
/// let config = HubConfig::from_toml(
///     r#"
///     listen = ":9000"
///     lag_policy = "resume"
///     [history]
///     max_messages = 50
///     "#,
/// )?;
/// assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
/// assert_eq!(config.lag_policy, LagPolicy::Resume);
/// assert_eq!(config.history.max_messages, 50);
/// assert_eq!(config.limits, HubConfig::default().limits); // the rest keeps its defaults
/// # Ok::<(), switchboard_hub::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Where to listen. Default `127.0.0.1:8080`. In TOML also `"localhost:8080"`,
    /// `":8080"` (loopback) or `"[::1]:8080"`, as [`parse_listen`] reads them.
    #[serde(deserialize_with = "deserialize_listen")]
    pub listen: SocketAddr,
    /// Per-channel history.
    pub history: HistoryConfig,
    /// Sizes, counts and timeouts.
    pub limits: LimitsConfig,
    /// What happens to a subscriber that falls a whole queue behind.
    pub lag_policy: LagPolicy,
    /// Origins allowed to connect from a browser: `[]` allows only the hub's own origin (and
    /// clients that send no `Origin`), `["*"]` allows any.
    pub allowed_origins: Vec<String>,
    /// Publish rate limit.
    pub rate_limit: RateLimitConfig,
    /// Token auth; absent means open access.
    pub auth: Option<AuthConfig>,
    /// Serve https:// and wss:// with this certificate and key; absent means plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Reverse proxies (addresses or CIDR ranges, e.g. `127.0.0.1`) whose `X-Forwarded-For`
    /// names the client: rate limits and connection caps then count the client's address,
    /// not the proxy's. Empty (the default): the TCP peer is the client.
    pub trust_proxy: Vec<String>,
    /// The header those proxies append the client's address to: `x-forwarded-for` (the
    /// default; nginx's `$proxy_add_x_forwarded_for`) or `forwarded` (RFC 7239). Only one
    /// is read: a proxy passes the other through from the client unchanged.
    pub trust_proxy_header: ProxyHeader,
    /// `Host` names this hub answers to (`host` or `host:port`; `*.example.com` for
    /// subdomains). Empty (the default): any `Host`, but a browser request whose `Origin`
    /// merely equals its `Host` counts as same-origin only when that host is an IP address
    /// or `localhost` — so a DNS-rebinding page (attacker's name pointed at this hub) is
    /// refused. Set it to the names the hub is reached by to refuse every other `Host`.
    pub allowed_hosts: Vec<String>,
    /// When set, `GET /metrics` requires `Authorization: Bearer <metrics_token>`.
    pub metrics_token: Option<String>,
    /// Serve `GET /api/admin/connections` and `POST /api/admin/disconnect` (list and
    /// forcibly close subscriber connections: for operators and end-to-end tests). With
    /// `auth`, they need a token with `"admin": true`. Default off.
    pub admin_api: bool,
    /// Presence: who is in a channel, and join/leave events.
    pub presence: PresenceConfig,
    /// Where channels live: in this process (default) or in Redis, shared by every node.
    pub broker: BrokerConfig,
}

/// `[broker]`: which broker holds the channels.
///
/// ```
/// use switchboard_hub::config::BrokerKind;
/// use switchboard_hub::HubConfig;
///
/// let config = HubConfig::from_toml(
///     r#"
///     [broker]
///     kind = "redis"
///     url = "redis://127.0.0.1:6379/2"
///     "#,
/// )?;
/// assert_eq!(config.broker.kind, BrokerKind::Redis);
/// assert_eq!(config.redis_broker().url, "redis://127.0.0.1:6379/2");
/// # Ok::<(), switchboard_hub::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// `memory` (default) or `redis`.
    pub kind: BrokerKind,
    /// The Redis URL (`redis://[user:password@]host:port[/db]`), for `kind = "redis"`.
    pub url: String,
    /// Prepended to every Redis key and pub/sub channel.
    pub key_prefix: String,
    /// How often each subscribed channel's position is checked against Redis, in ms.
    pub check_interval_ms: u64,
}

/// Which broker holds the channels.
///
/// ```
/// use switchboard_hub::config::{BrokerConfig, BrokerKind};
///
/// let broker = BrokerConfig { kind: BrokerKind::Redis, ..BrokerConfig::default() };
/// assert_eq!(BrokerConfig::default().kind, BrokerKind::Memory);
/// assert_eq!(broker.key_prefix, "switchboard:");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerKind {
    /// In this process's memory: one node.
    #[default]
    Memory,
    /// In Redis: every node with the same URL and prefix shares the channels.
    Redis,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            kind: BrokerKind::Memory,
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "switchboard:".into(),
            check_interval_ms: 5000,
        }
    }
}

/// Presence settings: defaults, per-pattern rules and limits.
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::HubConfig;
///
/// let config = HubConfig::from_toml(
///     r#"
///     [presence]
///     grace_ms = 2000
///     max_list = 20
///     "#,
/// )?;
/// assert_eq!(config.presence.grace(), Duration::from_secs(2));
/// assert_eq!(config.presence.max_list, 20);
/// # Ok::<(), switchboard_hub::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Whether subscribers appear in presence on channels no rule matches. Default on.
    pub enabled: bool,
    /// Whether join/leave events are sent (to subscribers who ask) on channels no rule
    /// matches. Default on.
    pub events: bool,
    /// Milliseconds an entry stays after its last connection ended, so that a reconnect
    /// (or the next long poll) does not leave and join again.
    pub grace_ms: u64,
    /// Largest client info accepted, in bytes of compact JSON.
    pub max_info_bytes: usize,
    /// Most entries one presence answer lists; counts are exact regardless.
    pub max_list: usize,
    /// Redis broker: seconds between a node's refreshes of its entries' expiry. Entries
    /// expire after 2.5 times this, so a killed node's clients leave within that.
    pub refresh_secs: u64,
    /// Per-pattern overrides; the first match wins.
    pub rules: Vec<PresenceRule>,
}

/// Presence settings for the channels matching `pattern`.
///
/// ```
/// use switchboard_hub::config::{PresenceConfig, PresenceRule};
/// use switchboard_hub::core::ChannelName;
///
/// let presence = PresenceConfig {
///     rules: vec![PresenceRule {
///         pattern: "ticker:*".into(),
///         enabled: Some(false),
///         events: None,
///     }],
///     ..PresenceConfig::default()
/// };
/// assert!(!presence.policy(&ChannelName::new("ticker:eur")?).enabled);
/// assert!(presence.policy(&ChannelName::new("chat")?).enabled); // no rule: the defaults
/// # Ok::<(), switchboard_hub::core::ChannelNameError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceRule {
    /// An exact channel name, `prefix*`, or `*`.
    pub pattern: String,
    /// Presence on or off; unset: [`PresenceConfig::enabled`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Join/leave events on or off; unset: [`PresenceConfig::events`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<bool>,
}

/// What presence does on one channel (see [`PresenceConfig::policy`]).
///
/// ```
/// use switchboard_hub::config::{PresenceConfig, PresencePolicy, PresenceRule};
/// use switchboard_hub::core::ChannelName;
///
/// let presence = PresenceConfig {
///     rules: vec![PresenceRule {
///         pattern: "big:*".into(),
///         enabled: None,
///         events: Some(false),
///     }],
///     ..PresenceConfig::default()
/// };
/// let policy = presence.policy(&ChannelName::new("big:stadium")?);
/// assert_eq!(policy, PresencePolicy { enabled: true, events: false }); // counts, no events
/// # Ok::<(), switchboard_hub::core::ChannelNameError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresencePolicy {
    /// Subscribers appear in presence and presence can be read.
    pub enabled: bool,
    /// Join/leave events are sent to subscribers who ask (only if `enabled`).
    pub events: bool,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            events: true,
            grace_ms: 5000,
            max_info_bytes: 256,
            max_list: 100,
            refresh_secs: 10,
            rules: Vec::new(),
        }
    }
}

impl PresenceConfig {
    /// The policy for `channel`: the first matching rule, else the defaults.
    pub fn policy(&self, channel: &crate::core::ChannelName) -> PresencePolicy {
        let rule = self
            .rules
            .iter()
            .find(|r| crate::security::pattern_matches(&r.pattern, channel.as_str()));
        let enabled = rule.and_then(|r| r.enabled).unwrap_or(self.enabled);
        let events = rule.and_then(|r| r.events).unwrap_or(self.events);
        PresencePolicy {
            enabled,
            events: enabled && events,
        }
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms)
    }

    /// The Redis broker's refresh interval.
    pub fn refresh(&self) -> Duration {
        Duration::from_secs(self.refresh_secs)
    }
}

/// Per-channel history settings.
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::config::HistoryConfig;
///
/// let history = HistoryConfig { max_messages: 100, max_age_secs: 60, ..HistoryConfig::default() };
/// assert_eq!(history.limits().max_age, Some(Duration::from_secs(60)));
/// let no_age_limit = HistoryConfig { max_age_secs: 0, ..history };
/// assert_eq!(no_age_limit.limits().max_age, None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Messages kept per channel (0: none).
    pub max_messages: usize,
    /// Seconds a message is kept (0: no age limit).
    pub max_age_secs: u64,
    /// Bytes the history of all channels together may hold (each message counts its
    /// payload's compact JSON plus about 350 bytes of bookkeeping). Past it the oldest
    /// messages of the whole hub leave history first, whatever their channel, as they do
    /// at the count and age limits: publishing goes on, and a client resuming from before
    /// them is told `expired`. In-memory broker only: Redis is capped by its `maxmemory`.
    pub max_bytes: usize,
}

/// Sizes, counts and timeouts.
///
/// ```
/// use std::time::Duration;
/// use switchboard_hub::HubConfig;
///
/// let config = HubConfig::from_toml(
///     r#"
///     [limits]
///     max_message_bytes = 4096
///     write_timeout_secs = 5
///     "#,
/// )?;
/// assert_eq!(config.limits.max_message_bytes, 4096);
/// assert_eq!(config.write_timeout(), Duration::from_secs(5));
/// # Ok::<(), switchboard_hub::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest message, in bytes (of compact JSON; also caps request bodies and frames).
    pub max_message_bytes: usize,
    /// Messages a subscriber may fall behind before it is reported lagged.
    pub queue_size: usize,
    /// Channels that may exist at once.
    pub max_channels: usize,
    /// Longest a long poll waits, in seconds.
    pub poll_timeout_secs: u64,
    /// Most messages one long-poll answer carries.
    pub poll_max_messages: usize,
    /// Most messages one history page carries.
    pub history_page_max: usize,
    /// Seconds between SSE comment heartbeats.
    pub sse_heartbeat_secs: u64,
    /// Channels one `/ws` connection may subscribe to at once.
    pub max_subscriptions: usize,
    /// Seconds a write to a client may make no progress before the client is dropped (it
    /// is not reading).
    pub write_timeout_secs: u64,
    /// Seconds a request body may take to arrive completely (408 after).
    pub body_timeout_secs: u64,
    /// Connections open at once over every transport; 0 means the process's open-file
    /// limit minus headroom for the listener, logs and the over-limit answers.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 /64 counts as one).
    pub max_connections_per_ip: usize,
    /// Pending connections the kernel queues before `accept` (capped by
    /// `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// Deepest nesting of arrays and objects a JSON payload or frame may have.
    pub max_json_depth: usize,
}

/// What to do with a subscriber that fell a whole queue behind.
///
/// ```
/// use switchboard_hub::{HubConfig, LagPolicy};
///
/// assert_eq!(HubConfig::default().lag_policy, LagPolicy::Disconnect);
/// let config = HubConfig::from_toml(r#"lag_policy = "resume""#)?;
/// assert_eq!(config.lag_policy, LagPolicy::Resume);
/// # Ok::<(), switchboard_hub::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LagPolicy {
    /// Close its connection; it reconnects with its last id and resumes from history (or is
    /// told that history does not reach back far enough). Protects the server from a
    /// client that cannot keep up. The default.
    #[default]
    Disconnect,
    /// Keep the connection and replay the missed messages from history.
    Resume,
}

/// Which forwarding header names the client behind a trusted proxy.
///
/// ```
/// use switchboard_hub::config::ProxyHeader;
/// use switchboard_hub::HubConfig;
///
/// let config = HubConfig::from_toml(
///     r#"
///     trust_proxy = ["127.0.0.1"]
///     trust_proxy_header = "forwarded"
///     "#,
/// )?;
/// assert_eq!(config.trust_proxy_header, ProxyHeader::Forwarded);
/// # Ok::<(), switchboard_hub::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client`.
    Forwarded,
}

impl HubConfig {
    /// The trusted proxies, as the library checks them.
    pub fn trusted_proxies(&self) -> switchboard::security::TrustedProxies {
        let header = match self.trust_proxy_header {
            ProxyHeader::XForwardedFor => switchboard::security::ForwardedHeader::XForwardedFor,
            ProxyHeader::Forwarded => switchboard::security::ForwardedHeader::Forwarded,
        };
        // `validate` refuses an invalid list; unvalidated, it trusts nobody.
        switchboard::security::TrustedProxies::new(&self.trust_proxy)
            .unwrap_or_default()
            .header(header)
    }
}

/// A token bucket: `messages_per_second` refill, `burst` capacity.
///
/// ```
/// use switchboard_hub::HubConfig;
///
/// let config = HubConfig::from_toml(
///     r#"
///     [rate_limit]
///     messages_per_second = 5.0
///     burst = 10
///     "#,
/// )?;
/// assert_eq!(config.rate_limit.burst, 10);
/// assert_eq!(config.rate_limit.per_ip_burst, HubConfig::default().rate_limit.per_ip_burst);
/// # Ok::<(), switchboard_hub::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained publishes per second (0: no limit).
    pub messages_per_second: f64,
    /// Publishes allowed in a burst.
    pub burst: u32,
    /// WebSocket publishes (`/ws` publish ops and chat-room texts) per second from one
    /// client address across all its connections (0: no limit), so that opening more
    /// connections buys no more rate. Higher than the per-connection rate: one address may
    /// carry several tabs or users behind NAT. Other ops (subscribe, ping, presence) cost
    /// only the connection's own bucket, so many clients behind one address can all join.
    pub per_ip_messages_per_second: f64,
    /// WebSocket publishes one client address may send in a burst.
    pub per_ip_burst: u32,
    /// Reads per second from one client address (0: no limit): history pages, long polls,
    /// SSE streams, chat-room joins and `/ws` subscribe ops, so that one client cannot
    /// sweep through channel names. Generous, because many clients may share one address
    /// (NAT, a load generator on loopback) and each of them reads at least once to join.
    pub per_ip_reads_per_second: f64,
    /// Reads one client address may make in a burst: 10,000 clients behind one address can
    /// all subscribe at once.
    pub per_ip_read_burst: u32,
}

/// Token auth settings.
///
/// ```
/// use switchboard_hub::HubConfig;
///
/// let config = HubConfig::from_toml(
///     r#"
///     [auth]
///     jwt_secret = "a secret of 16+ bytes"
///     "#,
/// )?;
/// let auth = config.auth.as_ref().unwrap();
/// assert_eq!(auth.jwt_secret, "a secret of 16+ bytes");
/// assert_eq!(format!("{auth:?}"), "AuthConfig { .. }"); // never logged
/// # Ok::<(), switchboard_hub::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The HMAC-SHA256 key JWTs are signed with.
    pub jwt_secret: String,
}

/// A PEM certificate chain and its private key.
///
/// ```
/// use std::path::Path;
/// use switchboard_hub::HubConfig;
///
/// let config = HubConfig::from_toml(
///     r#"
///     [tls]
///     cert = "/etc/switchboard/cert.pem"
///     key = "/etc/switchboard/key.pem"
///     "#,
/// )?;
/// assert_eq!(config.tls.unwrap().cert, Path::new("/etc/switchboard/cert.pem"));
/// # Ok::<(), switchboard_hub::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM.
    pub cert: std::path::PathBuf,
    /// Its private key, PEM.
    pub key: std::path::PathBuf,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never log the secret.
        f.debug_struct("AuthConfig").finish_non_exhaustive()
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            history: HistoryConfig::default(),
            limits: LimitsConfig::default(),
            lag_policy: LagPolicy::default(),
            allowed_origins: Vec::new(),
            rate_limit: RateLimitConfig::default(),
            auth: None,
            tls: None,
            trust_proxy: Vec::new(),
            trust_proxy_header: ProxyHeader::default(),
            allowed_hosts: Vec::new(),
            metrics_token: None,
            admin_api: false,
            presence: PresenceConfig::default(),
            broker: BrokerConfig::default(),
        }
    }
}

impl HistoryConfig {
    /// As the brokers take them (`max_age_secs = 0`: no age limit).
    pub fn limits(&self) -> HistoryLimits {
        HistoryLimits {
            max_messages: self.max_messages,
            max_age: (self.max_age_secs > 0).then(|| Duration::from_secs(self.max_age_secs)),
        }
    }
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_messages: 1000,
            max_age_secs: 3600,
            max_bytes: 256 << 20,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            queue_size: 1024,
            max_channels: 10_000,
            poll_timeout_secs: 25,
            poll_max_messages: 100,
            history_page_max: 1000,
            sse_heartbeat_secs: 15,
            max_subscriptions: 100,
            write_timeout_secs: 10,
            body_timeout_secs: 30,
            max_connections: 0,
            max_connections_per_ip: 20_000,
            listen_backlog: 4096,
            // The depth `Payload::from_json` allows (what Redis-stored payloads are read with).
            max_json_depth: crate::core::DEFAULT_MAX_DEPTH,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            messages_per_second: 50.0,
            burst: 100,
            per_ip_messages_per_second: 200.0,
            per_ip_burst: 1000,
            per_ip_reads_per_second: 1000.0,
            per_ip_read_burst: 20_000,
        }
    }
}

/// Why a config file could not be loaded.
///
/// ```
/// use switchboard_hub::{ConfigError, HubConfig};
///
/// match HubConfig::from_toml("[limits]\nqueue_size = 0") {
///     Err(ConfigError::Invalid { key, problem }) => {
///         assert_eq!(key, "limits.queue_size");
///         assert!(problem.starts_with("must be between 1 and"));
///     }
///     other => panic!("{other:?}"),
/// }
/// assert!(matches!(HubConfig::from_toml("lisen = ':80'"), Err(ConfigError::Parse(_))));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    // `cause`, not `source`: thiserror would make a `source` field the error's source, and
    // error chains would print it twice.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The TOML is malformed or holds unknown keys or bad values.
    // Not a `#[source]`: the message already holds it, and error chains would print it twice.
    #[error("invalid config: {0}")]
    Parse(toml::de::Error),
    /// A value is out of range or makes no sense.
    #[error("invalid config: {key} {problem}")]
    Invalid {
        /// The key, as written in the file (`limits.queue_size`).
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
    /// One of the above, in a file.
    #[error("{path}: {error}")]
    InFile {
        /// The file.
        path: String,
        /// What is wrong in it.
        error: Box<ConfigError>,
    },
}

impl From<toml::de::Error> for ConfigError {
    fn from(e: toml::de::Error) -> Self {
        ConfigError::Parse(e)
    }
}

/// Reads a listen address as people write it: `127.0.0.1:8080`, `[::1]:8080`,
/// `localhost:8080` (resolved; IPv4 first) or `:8080` (a port alone: loopback, the safe
/// default, not every interface; say `0.0.0.0:8080` for that).
///
/// ```
/// use switchboard_hub::parse_listen;
///
/// assert_eq!(parse_listen(":8080")?.to_string(), "127.0.0.1:8080");
/// assert_eq!(parse_listen("[::1]:8080")?.to_string(), "[::1]:8080");
/// assert_eq!(parse_listen("0.0.0.0:80")?.port(), 80);
/// assert!(parse_listen("8080").is_err());
/// # Ok::<(), String>(())
/// ```
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port_of = |port: &str| {
        port.parse::<u16>()
            .map_err(|_| format!("{text:?}: the port must be a number from 0 to 65535"))
    };
    if let Some(port) = text.strip_prefix(':') {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port_of(port)?)));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "{text:?}: expected HOST:PORT, e.g. 127.0.0.1:8080, localhost:8080, :8080 or [::1]:8080"
        ));
    };
    let port = port_of(port)?;
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("{text:?}: cannot resolve {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text:?}: {host} has no address"))
}

fn deserialize_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

impl HubConfig {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.display().to_string(),
            cause,
        })?;
        Self::from_toml(&text).map_err(|error| ConfigError::InFile {
            path: path.display().to_string(),
            error: Box::new(error),
        })
    }

    /// Checks ranges serde cannot express, so that a value that makes no sense is refused
    /// at start with its key named, rather than misbehaving under load.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn range<T: PartialOrd + std::fmt::Display>(
            key: &'static str,
            value: T,
            min: T,
            max: T,
        ) -> Result<(), ConfigError> {
            if value >= min && value <= max {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key,
                    problem: format!("must be between {min} and {max} (is {value})"),
                })
            }
        }
        let l = &self.limits;
        range("limits.max_message_bytes", l.max_message_bytes, 1, 64 << 20)?;
        // A broadcast ring of this many slots is allocated per channel with subscribers.
        range("limits.queue_size", l.queue_size, 1, 1 << 20)?;
        range("limits.max_channels", l.max_channels, 1, 100_000_000)?;
        range("limits.poll_timeout_secs", l.poll_timeout_secs, 0, 3600)?;
        range("limits.poll_max_messages", l.poll_max_messages, 1, 100_000)?;
        range("limits.history_page_max", l.history_page_max, 1, 100_000)?;
        range("limits.sse_heartbeat_secs", l.sse_heartbeat_secs, 1, 3600)?;
        range("limits.max_subscriptions", l.max_subscriptions, 1, 100_000)?;
        range("limits.write_timeout_secs", l.write_timeout_secs, 1, 3600)?;
        range("limits.body_timeout_secs", l.body_timeout_secs, 1, 3600)?;
        range("limits.max_connections", l.max_connections, 0, 100_000_000)?;
        range(
            "limits.max_connections_per_ip",
            l.max_connections_per_ip,
            1,
            100_000_000,
        )?;
        range("limits.listen_backlog", l.listen_backlog, 1, 65_535)?;
        range("limits.max_json_depth", l.max_json_depth, 1, 1000)?;
        range(
            "history.max_messages",
            self.history.max_messages,
            0,
            10_000_000,
        )?;
        if self.history.max_messages > 0 {
            // Below one largest message, a message could be evicted by the message that
            // follows it before anyone could resume from it.
            range(
                "history.max_bytes",
                self.history.max_bytes,
                l.max_message_bytes.saturating_mul(2).max(1 << 16),
                1 << 50,
            )?;
        }
        let rate = self.rate_limit.messages_per_second;
        // 0 turns limiting off; anything else must be a rate a token can refill at within
        // a sane time (a 1e-30 rate would ask clients to retry in 1e30 seconds).
        if !(rate == 0.0 || (0.001..=1e9).contains(&rate)) {
            return Err(ConfigError::Invalid {
                key: "rate_limit.messages_per_second",
                problem: format!("must be 0 (off) or between 0.001 and 1e9 (is {rate})"),
            });
        }
        if rate > 0.0 {
            range("rate_limit.burst", self.rate_limit.burst, 1, 1_000_000_000)?;
        }
        for (rate_key, rate, burst_key, burst) in [
            (
                "rate_limit.per_ip_messages_per_second",
                self.rate_limit.per_ip_messages_per_second,
                "rate_limit.per_ip_burst",
                self.rate_limit.per_ip_burst,
            ),
            (
                "rate_limit.per_ip_reads_per_second",
                self.rate_limit.per_ip_reads_per_second,
                "rate_limit.per_ip_read_burst",
                self.rate_limit.per_ip_read_burst,
            ),
        ] {
            if !(rate == 0.0 || (0.001..=1e9).contains(&rate)) {
                return Err(ConfigError::Invalid {
                    key: rate_key,
                    problem: format!("must be 0 (off) or between 0.001 and 1e9 (is {rate})"),
                });
            }
            if rate > 0.0 {
                range(burst_key, burst, 1, 1_000_000_000)?;
            }
        }
        let p = &self.presence;
        range("presence.max_list", p.max_list, 1, 100_000)?;
        range("presence.refresh_secs", p.refresh_secs, 1, 3600)?;
        range("presence.grace_ms", p.grace_ms, 0, 3_600_000)?;
        range("presence.max_info_bytes", p.max_info_bytes, 0, 64 << 10)?;
        if p.rules.iter().any(|r| r.pattern.is_empty()) {
            return Err(ConfigError::Invalid {
                key: "presence.rules",
                problem: "a pattern must not be empty".into(),
            });
        }
        if self.auth.as_ref().is_some_and(|a| a.jwt_secret.len() < 16) {
            return Err(ConfigError::Invalid {
                key: "auth.jwt_secret",
                problem: "must be at least 16 bytes".into(),
            });
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid {
                key: "metrics_token",
                problem: "must be at least 16 bytes".into(),
            });
        }
        if let Err(e) = switchboard::security::TrustedProxies::new(&self.trust_proxy) {
            return Err(ConfigError::Invalid {
                key: "trust_proxy",
                problem: e.to_string(),
            });
        }
        for origin in &self.allowed_origins {
            let o = origin.trim();
            let ok = o == "*"
                || o == "null"
                || o.split_once("://").is_some_and(|(s, h)| {
                    !s.is_empty() && !h.is_empty() && !h.trim_end_matches('/').contains('/')
                });
            if !ok {
                return Err(ConfigError::Invalid {
                    key: "allowed_origins",
                    problem: format!("{origin:?} is not scheme://host[:port], \"null\" or \"*\""),
                });
            }
        }
        for host in &self.allowed_hosts {
            if host.trim().is_empty() || host.contains(['/', ' ']) {
                return Err(ConfigError::Invalid {
                    key: "allowed_hosts",
                    problem: format!("{host:?} is not host or host:port"),
                });
            }
        }
        Ok(())
    }

    /// How long a write may make no progress.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.write_timeout_secs)
    }

    /// How long a request body may take.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.body_timeout_secs)
    }

    /// The history limits for the broker.
    pub fn history_limits(&self) -> HistoryLimits {
        self.history.limits()
    }

    /// The in-memory broker's settings.
    pub fn memory_broker(&self) -> MemoryBrokerConfig {
        MemoryBrokerConfig {
            history: self.history_limits(),
            queue_size: self.limits.queue_size,
            max_channels: self.limits.max_channels,
            history_max_bytes: self.history.max_bytes,
        }
    }

    /// The Redis broker's settings (history and limits as for the in-memory broker).
    pub fn redis_broker(&self) -> crate::broker::RedisBrokerConfig {
        crate::broker::RedisBrokerConfig {
            url: self.broker.url.clone(),
            key_prefix: self.broker.key_prefix.clone(),
            history: self.history_limits(),
            queue_size: self.limits.queue_size,
            max_channels: self.limits.max_channels,
            check_interval: Duration::from_millis(self.broker.check_interval_ms.max(1)),
        }
    }

    /// The hub's own settings.
    pub fn hub_options(&self) -> HubOptions {
        HubOptions {
            max_message_bytes: self.limits.max_message_bytes,
            presence: crate::broker::PresenceSettings {
                grace: self.presence.grace(),
                queue_size: self.limits.queue_size,
                refresh: self.presence.refresh(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(HubConfig::from_toml("").unwrap(), HubConfig::default());
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let example = include_str!("../../switchboard.example.toml");
        assert_eq!(HubConfig::from_toml(example).unwrap(), HubConfig::default());
    }

    /// The defaults `docs/protocol.md` states, as `` `section.key` (default N …`` (or
    /// `` `key`, default N`` after another key of the same section, or a number right after
    /// the key: `` `limits.listen_backlog` (4096``), read from the text.
    fn documented_defaults(doc: &str) -> Vec<(String, f64)> {
        let text = doc.split_whitespace().collect::<Vec<_>>().join(" ");
        let number = |rest: &str| -> Option<f64> {
            let digits: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',' || *c == '.')
                .filter(|c| *c != ',')
                .collect();
            let value: f64 = digits.trim_end_matches('.').parse().ok()?;
            let unit = rest[digits.len()..].trim_start_matches(',').trim_start();
            Some(if unit.starts_with("KiB") {
                value * 1024.0
            } else if unit.starts_with("MiB") {
                value * 1048576.0
            } else {
                value
            })
        };
        let mut found = Vec::new();
        let mut section = String::new();
        let mut spans = text.split('`');
        spans.next();
        while let (Some(key), Some(rest)) = (spans.next(), spans.next()) {
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || "._".contains(c))
            {
                continue;
            }
            let value = if !key.contains('.') {
                // A bare name counts only in a list, "`burst`, default 100" (else it is a
                // query parameter or an error code).
                rest.strip_prefix(", default ").and_then(number)
            } else if let Some(r) = rest
                .strip_prefix(" (default ")
                .or(rest.strip_prefix(", default "))
            {
                number(r)
            } else if let Some(r) = rest.strip_prefix(" (").or(rest.strip_prefix(", ")) {
                number(r)
            } else {
                rest.split_once("(default ")
                    .filter(|(between, _)| between.len() < 40 && !between.contains('('))
                    .and_then(|(_, r)| number(r))
            };
            let full = match key.split_once('.') {
                // `switchboard.js`, `docs/protocol.md`: not settings.
                Some((s, _)) if s == "switchboard" || s == "docs" => continue,
                Some((s, _)) => {
                    section = s.to_owned();
                    key.to_owned()
                }
                None => format!("{section}.{key}"),
            };
            if let Some(v) = value {
                found.push((full, v));
            }
        }
        found
    }

    #[test]
    fn the_defaults_the_protocol_doc_states_are_the_codes() {
        let doc = include_str!("../../docs/protocol.md");
        let defaults = serde_json::to_value(HubConfig::default()).unwrap();
        let stated = documented_defaults(doc);
        assert!(
            stated.len() >= 20,
            "the doc's defaults are no longer found: {stated:?}"
        );
        for (key, value) in &stated {
            let (section, name) = key.split_once('.').unwrap();
            let code = defaults[section][name].as_f64();
            assert_eq!(
                code,
                Some(*value),
                "docs/protocol.md says {key} defaults to {value}"
            );
        }
    }

    #[test]
    fn the_commented_out_settings_of_the_example_parse_too() {
        // Uncomment every `# key = value` line: the optional sections must be valid as shown.
        let example = include_str!("../../switchboard.example.toml");
        let uncommented: String = example
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") || rest.starts_with('[') => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = HubConfig::from_toml(&uncommented).unwrap();
        assert!(c.auth.is_some() && c.tls.is_some(), "{c:?}");
    }

    #[test]
    fn listen_addresses_as_people_write_them() {
        let v4 = |p| SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(parse_listen("127.0.0.1:9000").unwrap(), v4(9000));
        assert_eq!(parse_listen(":9000").unwrap(), v4(9000));
        assert_eq!(parse_listen("localhost:9000").unwrap().port(), 9000);
        assert!(parse_listen("localhost:9000").unwrap().ip().is_loopback());
        assert_eq!(
            parse_listen("[::1]:9000").unwrap(),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 9000))
        );
        assert!(parse_listen("9000").is_err());
        assert!(parse_listen(":99999").is_err());
        let c = HubConfig::from_toml("listen = \":9000\"").unwrap();
        assert_eq!(c.listen, v4(9000));
    }

    #[test]
    fn file_errors_name_the_file_and_say_it_once() {
        let dir = std::env::temp_dir().join(format!("sb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hub.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let error = HubConfig::load(&path).unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with(&path.display().to_string()), "{text}");
        assert_eq!(text.matches("unknown field").count(), 1, "{text}");
        assert!(std::error::Error::source(&error).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn presence_rules_first_match_wins() {
        let c = HubConfig::from_toml(
            "[presence]\nevents = false\n[[presence.rules]]\npattern = \"room-1\"\nevents = true\n[[presence.rules]]\npattern = \"room-*\"\nenabled = false\n",
        )
        .unwrap();
        let name = |n: &str| crate::core::ChannelName::new(n).unwrap();
        assert!(c.presence.policy(&name("room-1")).events);
        assert!(!c.presence.policy(&name("room-2")).enabled);
        assert!(!c.presence.policy(&name("room-2")).events);
        assert!(c.presence.policy(&name("lobby")).enabled);
        assert!(!c.presence.policy(&name("lobby")).events);
        assert!(HubConfig::from_toml("[presence]\nmax_list = 0").is_err());
        assert!(HubConfig::from_toml("[[presence.rules]]\npattern = \"\"").is_err());
        assert!(HubConfig::from_toml("[[presence.rules]]\npatern = \"x\"").is_err());
    }

    #[test]
    fn broker_section_selects_redis_and_keeps_history() {
        assert_eq!(HubConfig::default().broker.kind, BrokerKind::Memory);
        let c = HubConfig::from_toml(
            "[history]\nmax_messages = 7\n[broker]\nkind = \"redis\"\nurl = \"redis://h:1\"\nkey_prefix = \"p:\"\n",
        )
        .unwrap();
        let r = c.redis_broker();
        assert_eq!(
            (c.broker.kind, r.url.as_str(), r.key_prefix.as_str()),
            (BrokerKind::Redis, "redis://h:1", "p:")
        );
        assert_eq!(r.history.max_messages, 7);
        assert!(HubConfig::from_toml("[broker]\nkind = \"etcd\"\n").is_err());
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c = HubConfig::from_toml("[history]\nmax_age_secs = 0\n").unwrap();
        assert_eq!(c.history.max_messages, 1000);
        assert_eq!(c.history_limits().max_age, None);
        assert_eq!(c.listen.port(), 8080);
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        assert!(HubConfig::from_toml("lisen = \"1.2.3.4:5\"").is_err());
        assert!(HubConfig::from_toml("[limits]\nqueue_size = 0").is_err());
        assert!(HubConfig::from_toml("lag_policy = \"drop\"").is_err());
        assert!(HubConfig::from_toml("[auth]\njwt_secret = \"short\"").is_err());
    }

    #[test]
    fn nonsense_values_are_refused_naming_the_key() {
        for (toml, key) in [
            (
                "[rate_limit]\nmessages_per_second = 1e-30",
                "rate_limit.messages_per_second",
            ),
            (
                "[rate_limit]\nmessages_per_second = -1.0",
                "rate_limit.messages_per_second",
            ),
            (
                "[rate_limit]\nmessages_per_second = nan",
                "rate_limit.messages_per_second",
            ),
            ("[rate_limit]\nburst = 0", "rate_limit.burst"),
            (
                "[rate_limit]\nper_ip_reads_per_second = 1e-9",
                "rate_limit.per_ip_reads_per_second",
            ),
            (
                "[rate_limit]\nper_ip_read_burst = 0",
                "rate_limit.per_ip_read_burst",
            ),
            ("[history]\nmax_bytes = 1000", "history.max_bytes"),
            ("[limits]\nqueue_size = 0", "limits.queue_size"),
            ("[limits]\nqueue_size = 100000000", "limits.queue_size"),
            ("[limits]\nmax_channels = 0", "limits.max_channels"),
            (
                "[limits]\nwrite_timeout_secs = 0",
                "limits.write_timeout_secs",
            ),
            ("[limits]\nlisten_backlog = 0", "limits.listen_backlog"),
            ("[limits]\nmax_json_depth = 0", "limits.max_json_depth"),
            (
                "[limits]\nmax_subscriptions = 0",
                "limits.max_subscriptions",
            ),
            ("trust_proxy = [\"nginx\"]", "trust_proxy"),
            ("allowed_origins = [\"example.com\"]", "allowed_origins"),
            ("metrics_token = \"short\"", "metrics_token"),
        ] {
            match HubConfig::from_toml(toml) {
                Err(e @ ConfigError::Invalid { .. }) => {
                    assert!(e.to_string().contains(key), "{toml}: {e}")
                }
                other => panic!("{toml}: {other:?}"),
            }
        }
        assert!(HubConfig::from_toml("[rate_limit]\nmessages_per_second = 0.0").is_ok());
    }
}
