//! The errors every transport reports, and the one place they map to HTTP statuses.
//!
//! REST answers with the status and `{"error":{"code":"…","message":"…"}}`; the WebSocket
//! JSON protocol sends `{"op":"error","code":"…","message":"…"}` with the same codes.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

use crate::broker::BrokerError;
use crate::core::{ChannelNameError, CursorError};
use crate::hub::{PublishError, SubscribeError};
use crate::security::TokenError;

/// A request the hub refuses or cannot serve.
///
/// ```
/// use http::StatusCode;
/// use switchboard_hub::core::ChannelName;
/// use switchboard_hub::transport::ApiError;
///
/// let error = ApiError::from(ChannelName::new("a b").unwrap_err());
/// assert_eq!(error.status(), StatusCode::BAD_REQUEST);
/// assert_eq!(error.code(), "invalid_channel");
/// assert_eq!(error.body()["error"]["code"], "invalid_channel");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The channel name is invalid.
    #[error("invalid channel name: {0}")]
    BadChannel(#[from] ChannelNameError),
    /// A `since` cursor or `Last-Event-ID` is malformed.
    #[error("invalid cursor: {0}")]
    BadCursor(#[from] CursorError),
    /// A query parameter or request field is malformed.
    #[error("invalid {name}: {message}")]
    BadParam {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The message body is not acceptable (bad JSON, not UTF-8, malformed protocol frame).
    #[error("{0}")]
    BadMessage(String),
    /// The body's media type is neither JSON nor text.
    #[error("unsupported content type (send application/json or text/plain)")]
    UnsupportedMediaType,
    /// The message is larger than the limit.
    #[error("message exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No valid token was presented where one is required.
    #[error("{0}")]
    Unauthorized(String),
    /// The token does not grant this right.
    #[error("{0}")]
    Forbidden(String),
    /// The request's `Origin` is not allowed.
    #[error(
        "origin {origin} is not allowed: start the hub with --allow-origin {origin} \
         (or allowed_origins = [\"{origin}\"] in the config file)"
    )]
    OriginNotAllowed {
        /// The refused `Origin`, as sent.
        origin: String,
    },
    /// The request's `Host` is not one of `allowed_hosts`.
    #[error("host not allowed")]
    HostNotAllowed,
    /// Too many requests or messages.
    #[error("rate limit exceeded, retry in {}", RetryIn(*retry_after))]
    RateLimited {
        /// When a retry can succeed.
        retry_after: Duration,
    },
    /// The channel limit is reached.
    #[error("too many channels (limit {limit})")]
    TooManyChannels {
        /// The limit.
        limit: usize,
    },
    /// The server (or this client's address) holds as many connections as it may.
    #[error("{}", if *per_client { "too many connections from this address" } else { "server at its connection limit" })]
    TooManyConnections {
        /// True for the per-address limit (429), false for the server's (503).
        per_client: bool,
    },
    /// The request body did not arrive within `limits.body_timeout_secs`.
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    /// The broker failed or the hub is shutting down.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The broker's store (Redis) is unreachable: nothing was stored. Retry later.
    #[error("{0}")]
    BrokerUnavailable(String),
    /// No such route.
    #[error(
        "not found: no route for {path} (the API is under /api/channels, see docs/protocol.md)"
    )]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// The route exists, but not for this method.
    #[error("method {method} is not allowed on {path} (the Allow header lists those that are)")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The path.
        path: String,
    },
}

/// A retry delay as people read it: whole milliseconds below a second (rounded up, so that
/// a retry after that long succeeds), tenths of seconds above.
struct RetryIn(Duration);

impl std::fmt::Display for RetryIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos < 1_000_000_000 {
            write!(f, "{} ms", nanos.div_ceil(1_000_000).max(1))
        } else {
            let tenths = nanos.div_ceil(100_000_000);
            write!(f, "{}.{} s", tenths / 10, tenths % 10)
        }
    }
}

impl ApiError {
    /// The HTTP status for this error: the single mapping every REST endpoint uses.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadChannel(_)
            | ApiError::BadCursor(_)
            | ApiError::BadParam { .. }
            | ApiError::BadMessage(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_)
            | ApiError::OriginNotAllowed { .. }
            | ApiError::HostNotAllowed => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooManyChannels { .. }
            | ApiError::Unavailable(_)
            | ApiError::BrokerUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyConnections { per_client: true } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooManyConnections { per_client: false } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadChannel(_) => "invalid_channel",
            ApiError::BadCursor(_) => "invalid_cursor",
            ApiError::BadParam { .. } => "invalid_parameter",
            ApiError::BadMessage(_) => "invalid_message",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooLarge { .. } => "message_too_large",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::OriginNotAllowed { .. } => "origin_not_allowed",
            ApiError::HostNotAllowed => "host_not_allowed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::TooManyChannels { .. } => "too_many_channels",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::BrokerUnavailable(_) => "broker_unavailable",
            ApiError::TooManyConnections { .. } => "too_many_connections",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
        }
    }

    /// The JSON body `{"error":{"code":…,"message":…}}`.
    pub fn body(&self) -> serde_json::Value {
        let body = super::wire::ErrorBody {
            error: super::wire::ErrorDetail {
                code: self.code(),
                message: self.to_string(),
            },
        };
        super::wire::sorted_value(&body).unwrap_or_default()
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::TooManyChannels { limit } => ApiError::TooManyChannels { limit },
            e @ BrokerError::Unavailable { .. } => ApiError::BrokerUnavailable(e.describe()),
            e @ (BrokerError::Protocol(_) | BrokerError::Closed) => {
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::TooLarge { limit, .. } => ApiError::TooLarge { limit },
            PublishError::Broker(b) => b.into(),
        }
    }
}

impl From<SubscribeError> for ApiError {
    fn from(e: SubscribeError) -> Self {
        match e {
            SubscribeError::Broker(b) => b.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status(), axum::Json(self.body())).into_response();
        match &self {
            ApiError::RateLimited { retry_after } => {
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            ApiError::Unauthorized(_) => {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyConnections { .. } => {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (
                ApiError::BadChannel(ChannelNameError::Empty),
                400,
                "invalid_channel",
            ),
            (
                ApiError::BadCursor(CursorError::Malformed),
                400,
                "invalid_cursor",
            ),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (ApiError::TooLarge { limit: 1 }, 413, "message_too_large"),
            (ApiError::Unauthorized("x".into()), 401, "unauthorized"),
            (
                ApiError::OriginNotAllowed {
                    origin: "https://evil.example".into(),
                },
                403,
                "origin_not_allowed",
            ),
            (
                ApiError::RateLimited {
                    retry_after: Duration::from_millis(1),
                },
                429,
                "rate_limited",
            ),
            (
                ApiError::TooManyChannels { limit: 1 },
                503,
                "too_many_channels",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status().as_u16(), e.code()), (status, code));
        }
    }

    #[test]
    fn rate_limit_response_says_when_to_retry() {
        let res = ApiError::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn retry_delays_are_rounded_up_for_people() {
        let message = |nanos| {
            ApiError::RateLimited {
                retry_after: Duration::from_nanos(nanos),
            }
            .to_string()
        };
        assert_eq!(message(2_026_921), "rate limit exceeded, retry in 3 ms");
        assert_eq!(message(1), "rate limit exceeded, retry in 1 ms");
        assert_eq!(
            message(999_000_001),
            "rate limit exceeded, retry in 1000 ms"
        );
        assert_eq!(
            message(1_500_000_000),
            "rate limit exceeded, retry in 1.5 s"
        );
        assert_eq!(
            message(2_010_000_000),
            "rate limit exceeded, retry in 2.1 s"
        );
    }
}
