//! The one gate every request passes first: `Host` and `Origin` checks
//! ([`crate::security::OriginPolicy`]) and CORS, for every transport alike.
//!
//! CORS (the Fetch standard's protocol) is what lets a page served from another origin use
//! REST, SSE and long polling — `web/switchboard.js` on `https://app.example` against a hub
//! elsewhere. It applies `allowed_origins` exactly as the WebSocket handshake does:
//!
//! - a preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is
//!   answered 204 here, naming the methods and request headers the hub takes;
//! - every answer to an allowed cross-origin request carries
//!   `Access-Control-Allow-Origin: <that origin>` (and `Vary: Origin`);
//! - a request from an origin that is not allowed is refused with 403 before it reaches a
//!   handler, so it never gets CORS headers, nor subscribes, nor publishes.
//!
//! No `Access-Control-Allow-Credentials`: tokens travel in `Authorization` or `?token=`,
//! never in cookies.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, Method, StatusCode};

use super::error::ApiError;
use super::AppState;
use crate::security::{OriginRefusal, OriginVerdict};

const ALLOW_METHODS: HeaderValue = HeaderValue::from_static("GET, POST, OPTIONS");
const ALLOW_HEADERS: HeaderValue =
    HeaderValue::from_static("authorization, content-type, last-event-id");
const EXPOSE_HEADERS: HeaderValue = HeaderValue::from_static("retry-after");
const MAX_AGE: HeaderValue = HeaderValue::from_static("600");

/// The middleware.
pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .map(str::to_owned);
    let scheme = scheme_of(&state, &req);
    let verdict =
        state
            .origins
            .check_request(req.headers().get(header::ORIGIN), host.as_deref(), scheme);
    let origin = match verdict {
        Ok(OriginVerdict::Allowed(origin)) => Some(origin),
        Ok(OriginVerdict::Same | OriginVerdict::Absent) => None,
        Err(refusal) => {
            state.hub.metrics().record_rejected();
            let sent = |name| {
                req.headers()
                    .get(name)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default()
            };
            // At info: an operator wondering why a page cannot connect looks here first.
            tracing::info!(
                origin = %sent(header::ORIGIN),
                host = %sent(header::HOST),
                path = %req.uri().path(),
                "refused a browser request: {refusal:?} not allowed (--allow-origin / allowed_origins)"
            );
            return match refusal {
                OriginRefusal::Origin => ApiError::OriginNotAllowed {
                    origin: sent(header::ORIGIN),
                },
                OriginRefusal::Host => ApiError::HostNotAllowed,
            }
            .into_response();
        }
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = if preflight {
        let mut res = StatusCode::NO_CONTENT.into_response();
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS);
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS);
        h.insert(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE);
        res
    } else {
        next.run(req).await
    };
    if let Some(origin) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        let h = res.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
    res
}

/// The scheme the client reached the hub by: the request's own (HTTP/2 carries it), else
/// `https` on a connection the hub itself terminated TLS on, else `X-Forwarded-Proto` from
/// a trusted proxy (TLS ends there), else plain `http`.
fn scheme_of(state: &AppState, req: &Request) -> &'static str {
    let named = |s: &str| {
        if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("wss") {
            "https"
        } else {
            "http"
        }
    };
    if let Some(scheme) = req.uri().scheme_str() {
        return named(scheme);
    }
    if req.extensions().get::<super::OverTls>().is_some() {
        return "https";
    }
    let from_proxy =
        super::access::peer_ip(req.extensions()).is_some_and(|peer| state.proxies.is_trusted(peer));
    if from_proxy {
        if let Some(proto) = req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
        {
            return named(proto.split(',').next().unwrap_or("").trim());
        }
    }
    "http"
}
