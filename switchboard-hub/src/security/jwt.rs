//! HMAC-SHA256 JSON Web Tokens (RFC 7519, JWS compact form RFC 7515) with per-channel rights.
//!
//! Claims the hub reads:
//!
//! ```json
//! {"sub": "alice", "exp": 1767225600, "publish": ["chat", "room-*"], "subscribe": ["*"]}
//! ```
//!
//! `publish` and `subscribe` list channel patterns: an exact name, `prefix*`, or `*`. `exp`
//! and `nbf` are checked when present (seconds since the Unix epoch, no leeway). Only
//! `alg: HS256` is accepted; anything else, `none` above all, is refused (RFC 8725 §3.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::core::ChannelName;

/// A shared HMAC-SHA256 key that signs and verifies tokens.
///
/// ```
/// use switchboard_hub::security::{Claims, JwtKey};
///
/// let key = JwtKey::new(b"a secret of 16+ bytes");
/// let claims = Claims { sub: Some("alice".into()), exp: Some(2_000), ..Claims::default() };
/// let token = key.sign(&claims);
/// assert_eq!(key.verify(&token, 1_000)?, claims);
/// # Ok::<(), switchboard_hub::security::TokenError>(())
/// ```
#[derive(Clone)]
pub struct JwtKey {
    mac: Hmac<Sha256>,
}

/// The claims of a verified token.
///
/// ```
/// use switchboard_hub::core::ChannelName;
/// use switchboard_hub::security::Claims;
///
/// let claims = Claims {
///     sub: Some("alice".into()),
///     publish: vec!["chat".into()],
///     subscribe: vec!["chat".into(), "news:*".into()],
///     ..Claims::default()
/// };
/// assert!(claims.may_subscribe(&ChannelName::new("news:sport")?));
/// assert!(!claims.may_publish(&ChannelName::new("news:sport")?));
/// # Ok::<(), switchboard_hub::core::ChannelNameError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Claims {
    /// Who the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not valid before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Channel patterns the bearer may publish to.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Channel patterns the bearer may subscribe to and read history of.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Whether the bearer may use the admin API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

/// Why a token was refused.
///
/// ```
/// use switchboard_hub::security::{Claims, JwtKey, TokenError};
///
/// let key = JwtKey::new(b"a secret of 16+ bytes");
/// let token = key.sign(&Claims { exp: Some(1_000), ..Claims::default() });
/// assert_eq!(key.verify(&token, 1_001), Err(TokenError::Expired));
/// let other = JwtKey::new(b"another secret, 16+ bytes");
/// assert_eq!(other.verify(&token, 0), Err(TokenError::BadSignature));
/// assert_eq!(key.verify("not.a.token", 0), Err(TokenError::Malformed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with JSON header and claims.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than HS256.
    #[error("unsupported token algorithm (only HS256)")]
    UnsupportedAlgorithm,
    /// The signature does not match.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` has not come yet.
    #[error("token not yet valid")]
    NotYetValid,
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
}

impl JwtKey {
    /// A key from the shared secret.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            // HMAC accepts keys of any length.
            mac: Hmac::new_from_slice(secret).unwrap_or_else(|_| unreachable!()),
        }
    }

    /// Signs `claims` into a compact token (for tests and tooling).
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{body}");
        let mut mac = self.mac.clone();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Verifies `token` at `now_unix` (seconds since the Unix epoch) and returns its claims.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(body), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed);
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let mut mac = self.mac.clone();
        mac.update(&token.as_bytes()[..token.len() - sig.len() - 1]);
        // `verify_slice` compares in constant time.
        mac.verify_slice(&decode(sig)?)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims =
            serde_json::from_slice(&decode(body)?).map_err(|_| TokenError::Malformed)?;
        if claims.exp.is_some_and(|exp| now_unix >= exp) {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now_unix < nbf) {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(..)")
    }
}

impl Claims {
    /// Whether the bearer may publish to `channel`.
    pub fn may_publish(&self, channel: &ChannelName) -> bool {
        self.publish.iter().any(|p| matches(p, channel.as_str()))
    }

    /// Whether the bearer may subscribe to `channel`.
    pub fn may_subscribe(&self, channel: &ChannelName) -> bool {
        self.subscribe.iter().any(|p| matches(p, channel.as_str()))
    }
}

/// Whether a channel pattern (an exact name, `prefix*`, or `*`) matches `name`: the one
/// pattern syntax of tokens and of the config.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> JwtKey {
        JwtKey::new(b"a secret of sixteen+ bytes")
    }

    fn claims() -> Claims {
        Claims {
            sub: Some("alice".into()),
            exp: Some(2000),
            nbf: None,
            publish: vec!["chat".into(), "room-*".into()],
            subscribe: vec!["*".into()],
            admin: false,
        }
    }

    #[test]
    fn round_trip_and_rights() {
        let token = key().sign(&claims());
        let c = key().verify(&token, 1000).unwrap();
        assert_eq!(c, claims());
        let ch = |s| ChannelName::new(s).unwrap();
        assert!(c.may_publish(&ch("chat")));
        assert!(c.may_publish(&ch("room-7")));
        assert!(!c.may_publish(&ch("chat2")));
        assert!(!c.may_publish(&ch("news")));
        assert!(c.may_subscribe(&ch("anything")));
        assert!(!Claims::default().may_subscribe(&ch("chat")));
    }

    #[test]
    fn time_claims() {
        let token = key().sign(&claims());
        assert_eq!(key().verify(&token, 2000), Err(TokenError::Expired));
        let early = key().sign(&Claims {
            nbf: Some(500),
            ..claims()
        });
        assert_eq!(key().verify(&early, 499), Err(TokenError::NotYetValid));
        assert!(key().verify(&early, 500).is_ok());
    }

    #[test]
    fn tampering_is_detected() {
        let token = key().sign(&claims());
        assert_eq!(
            JwtKey::new(b"another secret, also long").verify(&token, 1000),
            Err(TokenError::BadSignature)
        );
        // Swap in claims granting more, keep the signature.
        let (head, rest) = token.split_once('.').unwrap();
        let sig = rest.rsplit_once('.').unwrap().1;
        let forged_body = URL_SAFE_NO_PAD.encode(br#"{"publish":["*"]}"#);
        let forged = format!("{head}.{forged_body}.{sig}");
        assert_eq!(key().verify(&forged, 1000), Err(TokenError::BadSignature));
    }

    #[test]
    fn alg_none_and_junk_are_refused() {
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let body = URL_SAFE_NO_PAD.encode(br#"{"publish":["*"]}"#);
        assert_eq!(
            key().verify(&format!("{none_header}.{body}."), 0),
            Err(TokenError::UnsupportedAlgorithm)
        );
        for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!", "e30.e30.e30"] {
            assert!(key().verify(junk, 0).is_err(), "{junk}");
        }
    }
}
