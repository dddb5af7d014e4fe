//! `GET /sse/{channel}`: Server-Sent Events.
//!
//! Every message is an event whose `id:` is its cursor, `EPOCH:ID`. The browser's
//! `EventSource` remembers the last id and sends it back as `Last-Event-ID` when it
//! reconnects, so a dropped connection resumes exactly where it stopped, across any number
//! of reconnects, with no client code. The epoch in the id lets the hub tell a cursor from
//! before a restart apart from a current one.
//!
//! The stream, in order:
//!
//! 1. `retry: 1000` and an `id:` line with the starting cursor (no data, so no event fires,
//!    but `EventSource` now has a position to resume from even if nothing arrives before the
//!    connection drops);
//! 2. the replay of missed messages, or an `event: reset` when history cannot reach back;
//! 3. live messages, with a `: ping` comment after `sse_heartbeat_secs` of silence (proxies
//!    close idle connections, and a write is how a server notices a vanished client);
//! 4. if the client falls a whole queue behind: `event: lagged` and the end of the stream
//!    (policy `disconnect`; the browser reconnects and resumes from history), or a silent
//!    resume from history (policy `resume`).
//!
//! `?format=plain` (the default) sends text payloads as their text, so a plain
//! `new EventSource(url)` page shows what was typed; `?format=json` sends every payload as
//! its exact JSON, which the browser client uses.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue};
use tokio::time::Instant;

use super::access::{self, Action};
use super::error::ApiError;
use super::params::{self, Params};
use super::AppState;
use crate::config::LagPolicy;
use crate::core::{sse_event, Cursor, SseFormat};
use crate::hub::{Delivery, Subscription};
use crate::metrics::{ConnectionGuard, Transport};

/// The handler.
pub(crate) async fn sse(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let query = Params::from_uri(req.uri())?;
    let caller = access::admit(&state, req.headers(), query.get("token"))?;
    let channel = params::channel(&channel)?;
    caller.authorize(Action::Subscribe, &channel)?;
    // `Last-Event-ID` wins: `?since=` is part of the URL `EventSource` keeps reusing, so it
    // only describes where the *first* connection started.
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("").trim())
        .filter(|v| !v.is_empty());
    let since = match last_event_id {
        Some(id) => Some(id.parse::<Cursor>()?),
        None => query.cursor("since")?,
    };
    let format = match query.get("format") {
        None | Some("plain") => SseFormat::Plain,
        Some("json") => SseFormat::Json,
        Some(_) => {
            return Err(ApiError::BadParam {
                name: "format",
                message: "expected plain or json".into(),
            })
        }
    };
    let sub = state.hub.subscribe(&channel, since).await?;
    let heartbeat = Duration::from_secs(state.config.limits.sse_heartbeat_secs);
    let preamble = Bytes::from(format!("retry: 1000\nid: {}\n\n", sub.cursor()));
    let state_closing = state.closing.clone();
    let session = Session {
        guard: state.hub.metrics().connection(Transport::Sse),
        state,
        sub,
        format,
        heartbeat,
        beat_at: Instant::now() + heartbeat,
        preamble: Some(preamble),
        done: false,
        closing: state_closing,
    };
    let stream = futures_util::stream::unfold(session, |mut s| async move {
        let chunk = s.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), s))
    });
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers proxied responses unless told otherwise.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

struct Session {
    state: AppState,
    sub: Subscription,
    format: SseFormat,
    heartbeat: Duration,
    beat_at: Instant,
    preamble: Option<Bytes>,
    done: bool,
    closing: tokio::sync::watch::Receiver<bool>,
    #[allow(dead_code)] // held for its Drop: the open-connection gauge
    guard: ConnectionGuard,
}

impl Session {
    /// The next bytes to send; `None` ends the response.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(p) = self.preamble.take() {
            return Some(p);
        }
        loop {
            if self.done {
                return None;
            }
            let delivery = tokio::select! {
                d = self.sub.next() => d?,
                _ = super::closing(&mut self.closing) => return None,
                _ = tokio::time::sleep_until(self.beat_at) => {
                    self.beat_at = Instant::now() + self.heartbeat;
                    return Some(Bytes::from_static(b": ping\n\n"));
                }
            };
            if let Some(chunk) = self.render(delivery).await {
                self.beat_at = Instant::now() + self.heartbeat;
                return Some(chunk);
            }
        }
    }

    async fn render(&mut self, delivery: Delivery) -> Option<Bytes> {
        let metrics = self.state.hub.metrics();
        match delivery {
            Delivery::Message(msg) => {
                metrics.record_delivery(Transport::Sse, &msg);
                Some(msg.sse_event(self.format))
            }
            Delivery::Reset {
                epoch,
                reason,
                last,
            } => {
                let data = serde_json::json!({
                    "epoch": epoch,
                    "reason": reason.code(),
                    "message": reason.describe(),
                    "last": last,
                });
                let id = Cursor::new(epoch, last).to_string();
                Some(Bytes::from(sse_event(
                    Some("reset"),
                    &id,
                    &data.to_string(),
                )))
            }
            Delivery::Lagged { missed } => match self.state.config.lag_policy {
                LagPolicy::Disconnect => {
                    metrics.record_slow_disconnect();
                    self.done = true;
                    let data = serde_json::json!({ "missed": missed }).to_string();
                    Some(Bytes::from(sse_event(Some("lagged"), "", &data)))
                }
                LagPolicy::Resume => {
                    let cursor = self.sub.cursor();
                    match self
                        .state
                        .hub
                        .subscribe(self.sub.channel(), Some(cursor))
                        .await
                    {
                        Ok(sub) => self.sub = sub,
                        Err(_) => self.done = true,
                    }
                    None
                }
            },
        }
    }
}
