//! [`HubConfig`]: every setting of `switchboard serve`, loadable from TOML.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! lag_policy = "disconnect"          # or "resume"
//! allowed_origins = ["https://app.example"]   # [] = same origin only, ["*"] = any
//! admin_api = false                  # /api/admin/connections and /api/admin/disconnect
//!
//! [history]
//! max_messages = 1000                # per channel; 0 = no history
//! max_age_secs = 3600                # 0 = no age limit
//!
//! [limits]
//! max_message_bytes = 65536
//! queue_size = 1024                  # messages a subscriber may fall behind before it lags
//! max_channels = 10000
//! poll_timeout_secs = 25             # longest a long poll waits (clients may ask for less)
//! poll_max_messages = 100
//! history_page_max = 1000
//! sse_heartbeat_secs = 15
//! max_subscriptions = 100            # per /ws connection
//!
//! [rate_limit]                       # per connection (WebSocket) or per client IP (HTTP)
//! messages_per_second = 20.0         # 0 = off
//! burst = 40
//!
//! [auth]                             # optional: HMAC-SHA256 JWTs
//! jwt_secret = "change me: at least 16 random bytes"
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::broker::MemoryBrokerConfig;
use crate::core::HistoryLimits;
use crate::hub::HubOptions;

/// Everything `switchboard serve` can be told. Every field has a default; a TOML file only
/// needs the ones it changes. Unknown keys are refused, so a typo does not go unnoticed.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Where to listen. Default `127.0.0.1:8080`.
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
    /// Serve `GET /api/admin/connections` and `POST /api/admin/disconnect` (list and
    /// forcibly close subscriber connections: for operators and end-to-end tests). With
    /// `auth`, they need a token with `"admin": true`. Default off.
    pub admin_api: bool,
}

/// Per-channel history settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Messages kept per channel (0: none).
    pub max_messages: usize,
    /// Seconds a message is kept (0: no age limit).
    pub max_age_secs: u64,
}

/// Sizes, counts and timeouts.
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
}

/// What to do with a subscriber that fell a whole queue behind.
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

/// A token bucket: `messages_per_second` refill, `burst` capacity.
#[derive(Clone, Copy, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained publishes per second (0: no limit).
    pub messages_per_second: f64,
    /// Publishes allowed in a burst.
    pub burst: u32,
}

/// Token auth settings.
#[derive(Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The HMAC-SHA256 key JWTs are signed with.
    pub jwt_secret: String,
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
            admin_api: false,
        }
    }
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_messages: 1000,
            max_age_secs: 3600,
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
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            messages_per_second: 50.0,
            burst: 100,
        }
    }
}

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or holds unknown keys or bad values.
    #[error("invalid config: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value is out of range.
    #[error("invalid config: {0}")]
    Invalid(String),
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Checks ranges serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.limits.queue_size == 0 {
            return bad("limits.queue_size must be at least 1");
        }
        if self.limits.max_message_bytes == 0 {
            return bad("limits.max_message_bytes must be at least 1");
        }
        if self.limits.poll_max_messages == 0 || self.limits.history_page_max == 0 {
            return bad("limits.poll_max_messages and limits.history_page_max must be at least 1");
        }
        if self.limits.sse_heartbeat_secs == 0 {
            return bad("limits.sse_heartbeat_secs must be at least 1");
        }
        if !(self.rate_limit.messages_per_second >= 0.0
            && self.rate_limit.messages_per_second.is_finite())
        {
            return bad("rate_limit.messages_per_second must be a finite number >= 0");
        }
        if self.auth.as_ref().is_some_and(|a| a.jwt_secret.len() < 16) {
            return bad("auth.jwt_secret must be at least 16 bytes");
        }
        Ok(())
    }

    /// The history limits for the broker.
    pub fn history_limits(&self) -> HistoryLimits {
        HistoryLimits {
            max_messages: self.history.max_messages,
            max_age: (self.history.max_age_secs > 0)
                .then(|| Duration::from_secs(self.history.max_age_secs)),
        }
    }

    /// The in-memory broker's settings.
    pub fn memory_broker(&self) -> MemoryBrokerConfig {
        MemoryBrokerConfig {
            history: self.history_limits(),
            queue_size: self.limits.queue_size,
            max_channels: self.limits.max_channels,
        }
    }

    /// The hub's own settings.
    pub fn hub_options(&self) -> HubOptions {
        HubOptions {
            max_message_bytes: self.limits.max_message_bytes,
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
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs");
        let example: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let c = HubConfig::from_toml(&example).unwrap();
        assert_eq!(c.lag_policy, LagPolicy::Disconnect);
        assert_eq!(c.allowed_origins, ["https://app.example"]);
        assert!(c.auth.unwrap().jwt_secret.starts_with("change me"));
        assert_eq!(c.limits.sse_heartbeat_secs, 15);
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
}
