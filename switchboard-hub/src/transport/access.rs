//! Per-request access checks shared by every transport: origin, token, rights, rate.

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ConnectInfo;
use http::{header, HeaderMap};

use super::error::ApiError;
use super::AppState;
use crate::core::ChannelName;
use crate::security::Claims;

/// What a client wants to do with a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Publish,
    Subscribe,
}

/// The client's verified identity: `None` claims when auth is off.
#[derive(Clone, Debug, Default)]
pub(crate) struct Caller {
    // Boxed: every connection's task holds a caller for its whole life, and most hold no
    // token; inline, the claims' room (about 100 bytes) would be in every one of them.
    claims: Option<Box<Claims>>,
    auth_enabled: bool,
    /// The client's address as rate limits count it (see [`client_ip`]).
    ip: Option<IpAddr>,
}

impl Caller {
    /// The caller, known to come from `ip`.
    pub(crate) fn with_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.ip = ip;
        self
    }

    /// When the caller's token expires (tokio time), if it does: connections end then.
    pub(crate) fn expiry(&self) -> Option<tokio::time::Instant> {
        let exp = self.claims.as_ref()?.exp?;
        let left = exp.saturating_sub(unix_now());
        Some(tokio::time::Instant::now() + std::time::Duration::from_secs(left))
    }

    /// The caller with the rights of a new `token` (the `auth` op of `/ws`), or why not.
    pub(crate) fn refreshed(&self, state: &AppState, token: &str) -> Result<Caller, ApiError> {
        let Some(key) = &state.jwt else {
            return Err(ApiError::BadParam {
                name: "token",
                message: "this hub does not use tokens".into(),
            });
        };
        let claims = key.verify(token.trim(), unix_now()).inspect_err(|_| {
            state.hub.metrics().record_rejected();
        })?;
        Ok(Caller {
            claims: Some(Box::new(claims)),
            auth_enabled: true,
            ip: self.ip,
        })
    }

    /// The token's expiry in seconds since the Unix epoch, for the `authed` answer.
    pub(crate) fn exp(&self) -> Option<u64> {
        self.claims.as_ref()?.exp
    }

    /// Charges one WebSocket publish to the caller's address.
    pub(crate) fn charge_frame(&self, state: &AppState) -> Result<(), ApiError> {
        charge_to(state, &state.ws_ip_rate, self.ip)
    }

    /// Charges one read (a subscribe) to the caller's address.
    pub(crate) fn charge_read(&self, state: &AppState) -> Result<(), ApiError> {
        charge_to(state, &state.read_ip_rate, self.ip)
    }

    /// Checks that this caller may do `action` on `channel`.
    pub(crate) fn authorize(&self, action: Action, channel: &ChannelName) -> Result<(), ApiError> {
        if !self.auth_enabled {
            return Ok(());
        }
        let claims = self
            .claims
            .as_ref()
            .ok_or_else(|| ApiError::Unauthorized("a token is required".into()))?;
        let allowed = match action {
            Action::Publish => claims.may_publish(channel),
            Action::Subscribe => claims.may_subscribe(channel),
        };
        if allowed {
            Ok(())
        } else {
            let verb = match action {
                Action::Publish => "publish to",
                Action::Subscribe => "subscribe to",
            };
            Err(ApiError::Forbidden(format!(
                "the token does not allow to {verb} {channel:?}"
            )))
        }
    }

    /// The token's `sub`, when auth is on and the token names one: the user in presence.
    pub(crate) fn user(&self) -> Option<&str> {
        self.claims.as_ref().and_then(|c| c.sub.as_deref())
    }

    /// Requires a token with `"admin": true` when auth is on.
    pub(crate) fn require_admin(&self) -> Result<(), ApiError> {
        self.require_token()?;
        match &self.claims {
            Some(c) if !c.admin => Err(ApiError::Forbidden(
                "the token is not an admin token".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Requires a valid token when auth is on (for endpoints not tied to one channel).
    pub(crate) fn require_token(&self) -> Result<(), ApiError> {
        if self.auth_enabled && self.claims.is_none() {
            return Err(ApiError::Unauthorized("a token is required".into()));
        }
        Ok(())
    }
}

/// Verifies the token (from `Authorization: Bearer …` or the `token` query parameter, which
/// is all a browser's `WebSocket` and `EventSource` can send). `Origin` and `Host` were
/// checked before routing, for every request (`transport::cors`).
pub(crate) fn admit(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Caller, ApiError> {
    let Some(key) = &state.jwt else {
        return Ok(Caller::default());
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let claims = match bearer.or(query_token) {
        None => None,
        Some(token) => match key.verify(token.trim(), unix_now()) {
            Ok(c) => Some(Box::new(c)),
            Err(e) => {
                state.hub.metrics().record_rejected();
                return Err(e.into());
            }
        },
    };
    Ok(Caller {
        claims,
        auth_enabled: true,
        ip: None,
    })
}

/// Seconds since the Unix epoch, as token claims count time.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The token of an `Authorization: Bearer TOKEN` value. The scheme is matched without
/// regard to case (RFC 9110 §11.1: auth schemes are case-insensitive), with any amount of
/// whitespace after it.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim_start();
    let (scheme, token) = value.split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The TCP peer's address, when the server recorded it (`serve` does; router tests don't).
pub(crate) fn peer_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// The client's address as rate limits count it: the peer, or behind a trusted proxy the
/// address its forwarding header names; an IPv6 /64 counts as one client.
pub(crate) fn client_ip(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &http::Extensions,
) -> Option<IpAddr> {
    let peer = peer_ip(extensions)?;
    Some(switchboard::security::client_key(
        state.proxies.client_ip(peer, headers),
    ))
}

/// Charges one REST publish to the client's address.
pub(crate) fn charge(state: &AppState, ip: Option<IpAddr>) -> Result<(), ApiError> {
    charge_to(state, &state.ip_rate, ip)
}

/// Charges one read (history page, poll, stream, chat-room join) to the client's address.
pub(crate) fn charge_read(state: &AppState, ip: Option<IpAddr>) -> Result<(), ApiError> {
    charge_to(state, &state.read_ip_rate, ip)
}

fn charge_to(
    state: &AppState,
    limiter: &crate::security::KeyedRateLimiter<IpAddr>,
    ip: Option<IpAddr>,
) -> Result<(), ApiError> {
    let Some(ip) = ip else {
        return Ok(());
    };
    let now = tokio::time::Instant::now().into_std();
    limiter.try_take(ip, now).map_err(|retry_after| {
        state.hub.metrics().record_rejected();
        ApiError::RateLimited { retry_after }
    })
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer t",
            "bearer t",
            "BEARER t",
            "BeArEr   t ",
            "Bearer\tt",
        ] {
            assert_eq!(bearer_token(v), Some("t"), "{v:?}");
        }
        for v in ["Basic t", "Bearer", "Bearer ", "Bearert"] {
            assert_eq!(bearer_token(v), None, "{v:?}");
        }
    }
}
