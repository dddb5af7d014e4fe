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
    claims: Option<Claims>,
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

    /// Charges one publish or client frame to the caller's address.
    pub(crate) fn charge(&self, state: &AppState) -> Result<(), ApiError> {
        charge(state, self.ip)
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

/// Checks the `Origin` header and verifies the token (from `Authorization: Bearer …` or the
/// `token` query parameter, which is all a browser's `WebSocket` and `EventSource` can send).
pub(crate) fn admit(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Caller, ApiError> {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !state.origins.allows(origin, host) {
        state.hub.metrics().record_rejected();
        return Err(ApiError::OriginNotAllowed);
    }
    let Some(key) = &state.jwt else {
        return Ok(Caller::default());
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let claims = match bearer.or(query_token) {
        None => None,
        Some(token) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            match key.verify(token.trim(), now) {
                Ok(c) => Some(c),
                Err(e) => {
                    state.hub.metrics().record_rejected();
                    return Err(e.into());
                }
            }
        }
    };
    Ok(Caller {
        claims,
        auth_enabled: true,
        ip: None,
    })
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

/// Charges one publish or client frame to the client's address.
pub(crate) fn charge(state: &AppState, ip: Option<IpAddr>) -> Result<(), ApiError> {
    let Some(ip) = ip else {
        return Ok(());
    };
    let now = tokio::time::Instant::now().into_std();
    state.ip_rate.try_take(ip, now).map_err(|retry_after| {
        state.hub.metrics().record_rejected();
        ApiError::RateLimited { retry_after }
    })
}
