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
//! 4. if the client stops keeping up (its queue of `queue_size` events is full): under the
//!    `disconnect` policy the connection is closed — the browser reconnects and resumes
//!    from history; under `resume`, delivery pauses and continues from history once the
//!    client has caught up.
//!
//! Presence: every stream puts its client into the channel's presence (`?client=ID`, the
//! same id across `EventSource`'s reconnects, and `?info=JSON`). `?presence=1` adds an
//! `event: presence` snapshot after the preamble and then `event: join` / `event: leave`
//! events, each `data:` one JSON object and without `id:` (so they do not move the
//! stream's resume position).
//!
//! `?format=plain` (the default) sends text payloads as their text, so a plain
//! `new EventSource(url)` page shows what was typed; `?format=json` sends every payload as
//! its exact JSON; `?format=message` sends `{"id":…,"ts":…,"data":…}`, the payload with the
//! hub's acceptance time (what the browser client uses: the other two forms are the payload
//! alone, so that plain pages keep working, and have no room for it).
//!
//! Shape: a forwarding task reads the subscription and pushes encoded events into a bounded
//! queue that the response body drains. The task keeps reading even when the client does
//! not, which is how a stalled client is noticed at all (whoever writes the response stops
//! polling the body of a response whose socket is full). On HTTP/1.1 the hub's own driver
//! writes it (`server::front`, which keeps no HTTP buffers while a stream is idle); on
//! HTTP/2, and on a keep-alive connection hyper took over, hyper does; the handler and this
//! shape are the same for both.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::access::{self, Action};
use super::conn::ConnectionControl;
use super::error::ApiError;
use super::params::{self, Params};
use super::presence::{self as presence_wire, Identity};
use super::wire::{sorted_json, ErrorDetail, PresenceView, ResetNotice};
use super::AppState;
use crate::broker::{PresenceGuard, PresenceUpdate, PresenceWatch};
use crate::core::{sse_event, ChannelName, Cursor, SseFormat};
use crate::hub::{Delivery, Subscription};
use crate::metrics::{ConnectionGuard, Transport};

const PING: Bytes = Bytes::from_static(b": ping\n\n");

/// How long a stream may take to hand over what was published before a shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Sent when the client's token expires, just before the stream ends (a browser's
/// `EventSource` would otherwise retry with the same, now refused, URL unknowingly).
const EXPIRED: &[u8] = b"event: expired\ndata: {\"reason\":\"token expired\"}\n\n";

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
    access::charge_read(
        &state,
        access::client_ip(&state, req.headers(), req.extensions()),
    )?;
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
        Some("message") => SseFormat::Message,
        Some(_) => {
            return Err(ApiError::BadParam {
                name: "format",
                message: "expected plain, json or message".into(),
            })
        }
    };
    let identity = Identity::from_query(&state, &query)?;
    let wants_events = params::flag(&query, "presence")?;
    let sub = state.hub.subscribe(&channel, since).await?;
    let guard = presence_wire::join(&state, &caller, &channel, &identity).await?;
    let watch = if wants_events && guard.is_some() && presence_wire::events_on(&state, &channel) {
        let limit = state.config.presence.max_list;
        Some(state.hub.watch_presence(&channel, limit).await?)
    } else {
        None
    };
    let (tx, mut rx) = mpsc::channel::<Chunk>(state.config.limits.queue_size.max(2));
    let preamble = Bytes::from(format!("retry: 1000\nid: {}\n\n", sub.cursor()));
    // Cannot fail: the queue is new and holds at least two.
    let _ = tx.try_send(preamble.into());
    let watch = watch.map(|(list, watch)| {
        let _ = tx.try_send(
            presence_chunk(
                "presence",
                &PresenceView {
                    channel: channel.clone(),
                    news: list,
                },
            )
            .into(),
        );
        watch
    });
    let state_metrics = std::sync::Arc::clone(state.hub.metrics());
    let forwarder = Forwarder {
        guard: state.hub.metrics().connection(Transport::Sse),
        heartbeat: Duration::from_secs(state.config.limits.sse_heartbeat_secs),
        control: {
            let control = super::control_of(&state, req.extensions());
            control.set_transport(Transport::Sse);
            control.add_channel(&channel);
            control
        },
        closing: state.closing.clone(),
        expiry: caller.expiry(),
        channel,
        watch,
        _presence: guard,
        state,
        sub,
        format,
        tx,
    };
    tokio::spawn(forwarder.run());
    // Messages are counted as delivered when hyper takes them for the socket, not when
    // queued: what sits in the queue of a client that is then dropped never reached it.
    let metrics = state_metrics;
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|chunk| {
            chunk.map(|c| {
                if c.message {
                    metrics.record_delivered(Transport::Sse, 1);
                }
                Ok::<_, std::convert::Infallible>(c.bytes)
            })
        })
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

/// A piece of the response body; `message` when it is a channel message (counted as
/// delivered once it leaves the queue for the socket).
struct Chunk {
    bytes: Bytes,
    message: bool,
}

impl From<Bytes> for Chunk {
    fn from(bytes: Bytes) -> Self {
        Self {
            bytes,
            message: false,
        }
    }
}

/// What to do after a delivery.
enum Step {
    Send(Chunk),
    Skip,
    End,
}

struct Forwarder {
    state: AppState,
    sub: Subscription,
    format: SseFormat,
    tx: mpsc::Sender<Chunk>,
    heartbeat: Duration,
    /// Before `control`, so it drops first: the connection's last control handle counts a
    /// slow client as dropped, and it must be out of the open-connection gauge by then.
    #[allow(dead_code)] // held for its Drop: the open-connection gauge
    guard: ConnectionGuard,
    control: ConnectionControl,
    closing: tokio::sync::watch::Receiver<bool>,
    channel: ChannelName,
    /// Join/leave events, when the client asked for them.
    watch: Option<PresenceWatch>,
    /// The client's presence session: released (with the grace period) when the stream ends.
    _presence: Option<PresenceGuard>,
    /// When the client's token expires: the stream ends then, after `event: expired`.
    expiry: Option<tokio::time::Instant>,
}

/// An SSE event without `id:`: presence does not move the stream's resume position.
fn presence_chunk<T: serde::Serialize>(kind: &str, view: &PresenceView<T>) -> Bytes {
    json_event(kind, "", view)
}

/// An `event: KIND` whose data is `body`'s JSON (one line: JSON holds no raw line breaks).
fn json_event<T: serde::Serialize>(kind: &str, id: &str, body: &T) -> Bytes {
    let json = sorted_json(body);
    Bytes::from(sse_event(
        Some(kind),
        id,
        std::str::from_utf8(&json).unwrap_or_default(),
    ))
}

/// The next presence update, or never without a watch.
async fn next_update(watch: &mut Option<PresenceWatch>) -> Option<PresenceUpdate> {
    match watch {
        Some(w) => w.next().await,
        None => std::future::pending().await,
    }
}

impl Forwarder {
    /// Runs until the client goes, the channel closes, the server shuts down or the client
    /// is dropped for lagging. Returning drops `tx`, which ends the response.
    async fn run(mut self) {
        let mut beat_at = Instant::now() + self.heartbeat;
        loop {
            let delivery = tokio::select! {
                d = self.sub.next() => match d {
                    Some(d) => d,
                    None => return,
                },
                _ = self.tx.closed() => return,
                _ = super::closing(&mut self.closing) => {
                    // Deliver what was published before the shutdown, then end the stream.
                    while let Some(d) = self.sub.try_next() {
                        match self.render(d).await {
                            Step::Send(chunk) => {
                                let sent = self.tx.send(chunk);
                                if tokio::time::timeout(DRAIN_TIMEOUT, sent).await.is_err() {
                                    return;
                                }
                            }
                            Step::Skip => {}
                            Step::End => return,
                        }
                    }
                    return;
                }
                // Without the hub's own server the socket cannot be dropped from here;
                // ending the stream is the next best thing.
                _ = self.control.killed() => return,
                () = super::until(self.expiry) => {
                    let _ = self.tx.try_send(Bytes::from_static(EXPIRED).into());
                    return;
                }
                update = next_update(&mut self.watch) => {
                    let Some(chunk) = self.presence_update(update).await else {
                        continue;
                    };
                    let control = Some(&self.control);
                    if !super::outbox::push(&self.state, &self.tx, chunk.into(), control, &mut self.closing).await {
                        return;
                    }
                    beat_at = Instant::now() + self.heartbeat;
                    continue;
                }
                _ = tokio::time::sleep_until(beat_at) => {
                    beat_at = Instant::now() + self.heartbeat;
                    // A full queue already tells the client we are alive.
                    let _ = self.tx.try_send(PING.into());
                    continue;
                }
            };
            let chunk = match self.render(delivery).await {
                Step::Send(chunk) => chunk,
                Step::Skip => continue,
                Step::End => return,
            };
            let (state, control) = (&self.state, &self.control);
            if !super::outbox::push_for(
                state,
                &self.tx,
                chunk,
                control,
                &mut self.closing,
                &mut self.sub,
            )
            .await
            {
                return;
            }
            beat_at = Instant::now() + self.heartbeat;
        }
    }

    /// The SSE form of a presence update; after a lag, a fresh snapshot.
    async fn presence_update(&mut self, update: Option<PresenceUpdate>) -> Option<Bytes> {
        match update {
            Some(PresenceUpdate::Event(ev)) => Some(presence_chunk(
                ev.kind(),
                &PresenceView {
                    channel: self.channel.clone(),
                    news: ev.entry(),
                },
            )),
            Some(PresenceUpdate::Lagged) => {
                let limit = self.state.config.presence.max_list;
                match self.state.hub.watch_presence(&self.channel, limit).await {
                    Ok((list, watch)) => {
                        self.watch = Some(watch);
                        Some(presence_chunk(
                            "presence",
                            &PresenceView {
                                channel: self.channel.clone(),
                                news: list,
                            },
                        ))
                    }
                    Err(_) => {
                        self.watch = None;
                        None
                    }
                }
            }
            None => {
                self.watch = None;
                None
            }
        }
    }

    async fn render(&mut self, delivery: Delivery) -> Step {
        match delivery {
            Delivery::Message(msg) => Step::Send(Chunk {
                bytes: msg.sse_event(self.format),
                message: true,
            }),
            Delivery::Reset {
                epoch,
                reason,
                last,
            } => {
                let id = Cursor::new(epoch, last).to_string();
                let notice = ResetNotice::new(epoch, reason, last);
                Step::Send(json_event("reset", &id, &notice).into())
            }
            Delivery::Unavailable(e) => {
                // The stream stays open and resumes when the broker is back; a comment
                // tells a human watching with curl, and fires no event.
                Step::Send(Bytes::from(format!(": {}\n\n", e.describe())).into())
            }
            Delivery::Closed(e) => {
                // Say why, then end the stream: `EventSource` reconnects with its
                // `Last-Event-ID` and resumes.
                let detail = ErrorDetail {
                    code: "subscription_closed",
                    message: e.to_string(),
                };
                let _ = self.tx.try_send(json_event("error", "", &detail).into());
                Step::End
            }
            // Live messages overtook the subscription; it continues from history by itself,
            // unless the policy drops a slow client.
            Delivery::Lagged { .. } => {
                if super::outbox::lagged(&self.state, Some(&self.control)) {
                    Step::Skip
                } else {
                    Step::End
                }
            }
        }
    }
}
