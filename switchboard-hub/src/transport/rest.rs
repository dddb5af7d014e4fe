//! The REST API: publish, read history, list channels, health.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};

use super::access::{self, Action};
use super::error::ApiError;
use super::params::{self, Params};
use super::wire::{
    json_response, sorted_response, ChannelList, ListedChannel, MessageList, PublishAnswer,
    WireReset,
};
use super::AppState;
use crate::core::Payload;
use crate::metrics::Transport;

/// `POST /api/channels/{channel}/messages`: the body is the message, JSON
/// (`application/json` or any `+json` type) or text (`text/*`, no content type, or
/// `application/x-www-form-urlencoded`, what `curl -d` sends: the body is taken as it is,
/// not form-decoded). An empty body is refused. Answers
/// `{"channel":…,"id":…,"epoch":…,"ts":…,"cursor":"EPOCH:ID"}`.
pub(crate) async fn publish(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let _counted = state.hub.metrics().connection(Transport::Rest);
    let (parts, body) = req.into_parts();
    let query = Params::from_uri(&parts.uri)?;
    let caller = access::admit(&state, &parts.headers, query.get("token"))?;
    let channel = params::channel(&channel)?;
    caller.authorize(Action::Publish, &channel)?;
    access::charge(
        &state,
        access::client_ip(&state, &parts.headers, &parts.extensions),
    )?;
    let payload = read_payload(&state, &parts.headers, body).await?;
    let published = state
        .hub
        .publish(&channel, payload, Transport::Rest)
        .await?;
    Ok(sorted_response(
        StatusCode::OK,
        &PublishAnswer {
            channel: &channel,
            id: published.id,
            epoch: published.epoch,
            ts: published.ts,
            cursor: published.cursor(),
        },
    ))
}

/// Reads and validates a publish body.
async fn read_payload(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Payload, ApiError> {
    enum Kind {
        Json,
        Text,
    }
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let kind = match media.as_deref() {
        None | Some("") => Kind::Text,
        Some("application/json") => Kind::Json,
        Some(m) if m.ends_with("+json") => Kind::Json,
        Some(m) if m.starts_with("text/") => Kind::Text,
        // `curl -d 'hello'` labels its body so; people type that first.
        Some("application/x-www-form-urlencoded") => Kind::Text,
        Some(_) => return Err(ApiError::UnsupportedMediaType),
    };
    let limit = state.hub.max_message_bytes();
    // The limit applies to the stored (compact JSON) form, which the hub checks; the raw
    // body may carry some whitespace or fewer escapes, so allow it some room, but bounded.
    let raw_limit = limit.saturating_mul(2).saturating_add(1024);
    // A declared length over the limit is refused before a byte is read, and a body that
    // trickles in (or never comes: `Content-Length: 10000000000` and silence) is cut off
    // at the body timeout, so it cannot hold a connection and its task forever.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > raw_limit as u64) {
        return Err(ApiError::TooLarge { limit });
    }
    let bytes = tokio::time::timeout(
        state.config.body_timeout(),
        axum::body::to_bytes(body, raw_limit),
    )
    .await
    .map_err(|_| ApiError::BodyTimeout)?
    .map_err(|_| ApiError::TooLarge { limit })?;
    if bytes.is_empty() {
        return Err(ApiError::BadMessage(
            "empty body: the request body is the message (text, or JSON with \
             Content-Type: application/json)"
                .into(),
        ));
    }
    match kind {
        Kind::Json => Payload::from_json_with_depth(&bytes, state.config.limits.max_json_depth)
            .map_err(|e| ApiError::BadMessage(e.to_string())),
        Kind::Text => std::str::from_utf8(&bytes)
            .map(Payload::text)
            .map_err(|_| ApiError::BadMessage("text body is not valid UTF-8".into())),
    }
}

/// `GET /api/channels/{channel}/messages?since=&limit=`: with `since`, the messages after
/// it, oldest first; without, the latest `limit`. Continue with `next`; `more` says whether
/// more are already there. When `since` cannot be honoured, `reset` says why and `next`
/// points before the oldest message still held.
pub(crate) async fn history(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let _counted = state.hub.metrics().connection(Transport::Rest);
    let query = Params::from_uri(req.uri())?;
    let caller = access::admit(&state, req.headers(), query.get("token"))?;
    let channel = params::channel(&channel)?;
    caller.authorize(Action::Subscribe, &channel)?;
    access::charge_read(
        &state,
        access::client_ip(&state, req.headers(), req.extensions()),
    )?;
    let since = query.cursor("since")?;
    let max = state.config.limits.history_page_max;
    let limit = query.count("limit")?.unwrap_or(100).min(max);
    let page = state.hub.history(&channel, since, limit).await?;
    let mut list = MessageList::new(&channel, page.epoch, &page.messages, page.next);
    list.more = Some(page.more);
    list.reset = page.reset.map(WireReset::from);
    Ok(json_response(StatusCode::OK, &list))
}

/// `GET /api/channels`:
/// `{"channels":[{"name","epoch","last_id","retained","subscribers","presence":{"clients","users"}?}]}`
/// (`presence` on channels where it is on).
pub(crate) async fn channels(
    State(state): State<AppState>,
    req: Request,
) -> Result<Response, ApiError> {
    let _counted = state.hub.metrics().connection(Transport::Rest);
    let query = Params::from_uri(req.uri())?;
    access::admit(&state, req.headers(), query.get("token"))?.require_token()?;
    let channels = state.hub.channels().await?;
    let names = channels.iter().map(|c| c.name.clone()).collect();
    let counts = state.hub.presence_counts(names).await?;
    let listed: Vec<ListedChannel<'_>> = channels
        .iter()
        .zip(counts)
        .map(|(info, counts)| ListedChannel {
            info,
            presence: state
                .config
                .presence
                .policy(&info.name)
                .enabled
                .then_some(counts),
        })
        .collect();
    Ok(sorted_response(
        StatusCode::OK,
        &ChannelList { channels: listed },
    ))
}

/// `GET /healthz`: see [`super::healthz_response`].
pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    super::healthz_response(&state.hub)
}

/// `GET /metrics`: Prometheus text format. With `metrics_token` set, only for
/// `Authorization: Bearer <metrics_token>` (compared in constant time).
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.config.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(access::bearer_token)
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return ApiError::Unauthorized("/metrics needs the metrics token".into())
                .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.hub.metrics().render(),
    )
        .into_response()
}

/// Compares without an early exit, so timing does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Any other path: a JSON 404.
pub(crate) async fn not_found(uri: http::Uri) -> ApiError {
    ApiError::NotFound {
        path: uri.path().to_owned(),
    }
}

/// A known path with the wrong method: a JSON 405 (axum adds the `Allow` header).
pub(crate) async fn method_not_allowed(method: http::Method, uri: http::Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
