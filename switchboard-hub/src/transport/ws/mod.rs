//! The WebSocket transports, on the Switchboard library's axum upgrade.
//!
//! - `GET /ws`: the JSON protocol ([`protocol`]): several channels per connection,
//!   subscribe with `since`, publish with acks, explicit resets and errors.
//! - `GET /ws/{channel}`: the seeds' chat room ([`chat`]): every text a client sends is
//!   published on the channel, every message on the channel arrives as plain text.
//!
//! Both read their subscriptions in the connection's own task and write the frames straight
//! to the socket ([`deliver`]): one task woken per batch of deliveries, no forwarding task
//! and no queue per subscription (an idle connection is its task and little else). The
//! subscription's ring is the bounded queue; the slow-consumer policy acts on it (see
//! [`deliver`]). Presence events, when a client asks for them, come from a task through a
//! bounded queue ([`super::outbox`]). The same task reads client frames and watches for
//! shutdown, its token's expiry and its kill switch, which every write races
//! ([`Exits::write`]); keepalive pings are the socket's own, driven by its reads
//! ([`socket_config`]).
//!
//! Fan-out shares bytes: the frame body a subscriber sends is [`Message::ws_envelope`] (or
//! [`Message::plain_text`]), encoded once per message and handed to every connection as a
//! clone of the same `Bytes`.
//!
//! [`Message::ws_envelope`]: crate::core::Message::ws_envelope
//! [`Message::plain_text`]: crate::core::Message::plain_text

pub(crate) mod chat;
mod few;
pub(crate) mod frame;
pub(crate) mod protocol;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use switchboard::axum::WebSocket;
use switchboard::{CloseCode, Message, PreparedMessage, Utf8Bytes};
use tokio::sync::{mpsc, watch};

use self::frame::ServerFrame;
use super::conn::ConnectionControl;
use super::wire::ResetNotice;
use super::AppState;
use crate::core::ChannelName;
use crate::hub::{Delivery, Subscription};
use crate::metrics::Transport;

/// How often every connection is pinged, whatever its client sends: keeps proxies that
/// time out a connection the server is silent on (nginx's 60 s `proxy_read_timeout`) from
/// cutting it, and checks that the peer is there.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How long a pinged peer has to answer (any bytes count) before it is cut off.
const PONG_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a close handshake may take before the socket is just dropped.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The close code for a connection whose token expired (`exp` passed while connected): in
/// the application range, documented in docs/protocol.md. The client reconnects with a
/// fresh token (or, on `/ws`, sends `{"op":"auth","token":…}` before `exp`).
pub(crate) const TOKEN_EXPIRED: u16 = 4001;

/// Most frames written per flush.
const BATCH: usize = 64;

/// A frame on its way to the client, tagged with the subscription that produced it, so
/// that frames of a subscription that was replaced or cancelled are not sent.
pub(crate) struct Outbound {
    pub(crate) tag: u64,
    /// Encoded once per message and shared by every subscriber's queue.
    pub(crate) frame: PreparedMessage,
    /// For a channel message: the transport it is counted under once it is written (a
    /// frame still queued when its client is dropped was never delivered).
    pub(crate) delivers: Option<Transport>,
}

/// How a forwarder encodes deliveries.
#[derive(Clone, Copy)]
pub(crate) enum Encoding {
    /// `/ws`: envelopes, plus `reset` frames.
    Envelope,
    /// `/ws/{channel}`: the payload as plain text; resets have no wire form.
    Plain,
}

impl Encoding {
    fn transport(self) -> Transport {
        match self {
            Encoding::Envelope => Transport::WebSocket,
            Encoding::Plain => Transport::ChatRoom,
        }
    }

    /// A message's frame, encoded once for every subscriber.
    fn frame(self, msg: &crate::core::Message) -> &PreparedMessage {
        match self {
            Encoding::Envelope => msg.ws_envelope_frame(),
            Encoding::Plain => msg.plain_text_frame(),
        }
    }

    /// The frame that tells the client about a delivery other than a message, if this
    /// encoding has one (rare: built on the spot).
    fn notice(self, channel: &ChannelName, delivery: &Delivery) -> Option<PreparedMessage> {
        let Encoding::Envelope = self else {
            return None;
        };
        let frame = match delivery {
            Delivery::Reset {
                epoch,
                reason,
                last,
            } => ServerFrame::Reset {
                channel: channel.clone(),
                notice: ResetNotice::new(*epoch, *reason, *last),
            },
            Delivery::Unavailable(e) => ServerFrame::Error {
                code: "broker_unavailable",
                channel: Some(channel.as_str().to_owned()),
                message: format!(
                    "{}; the subscription stays open and resumes when the broker is back",
                    e.describe()
                ),
            },
            // The connection stays; the client may subscribe again.
            Delivery::Closed(e) => ServerFrame::Error {
                code: "subscription_closed",
                channel: Some(channel.as_str().to_owned()),
                message: e.to_string(),
            },
            Delivery::Message(_) | Delivery::Lagged { .. } => return None,
        };
        frame.prepared()
    }
}

/// What became of a subscription after [`deliver`].
pub(crate) enum Fed {
    /// It goes on.
    Open,
    /// It ended; the client was told where the encoding has a frame for it.
    Ended,
}

/// Writes `first` and whatever else `sub` holds right now (up to a batch) with one flush,
/// straight from the subscription into the socket: the connection's task is the only one
/// woken per batch, and the frames are the shared ones encoded once per message.
///
/// The slow-consumer policy holds as with a queue in between: the subscription's ring is
/// the queue. While a flush cannot finish, the write timeout, the kill switch and shutdown
/// are raced (see [`Exits::write`]) and, under `disconnect`, so is the ring overtaking the
/// subscription; a `Lagged` found later drops the client if a write of its had to wait.
pub(crate) async fn deliver(
    exits: &mut Exits,
    ws: &mut WebSocket,
    sub: &mut Subscription,
    encoding: Encoding,
    first: Delivery,
) -> Result<Fed, End> {
    let mut batch = Batch {
        next: Some(first),
        taken: 1,
        queued: 0,
        flushed: false,
    };
    // Frames are queued without an await, so that no delivery or frame is held across the
    // flushes: what this future keeps across them is part of every idle connection's task.
    loop {
        let filled = batch.fill(exits, ws, sub, encoding)?;
        exits
            .flush_counted(ws, sub, encoding, &mut batch.queued)
            .await?;
        match filled {
            Filled::Batch => return Ok(Fed::Open),
            Filled::Ended => return Ok(Fed::Ended),
            Filled::Full => batch.flushed = true,
        }
    }
}

/// A batch of [`deliver`] between its flushes.
struct Batch {
    /// The delivery to write next; after [`Filled::Full`], the one that did not fit.
    next: Option<Delivery>,
    taken: usize,
    /// Messages queued since the last flush: counted as delivered once written.
    queued: u64,
    /// Set after a flush for [`Filled::Full`]: the delivery that did not fit is queued now
    /// whatever the high-water mark says (the buffer was just written out).
    flushed: bool,
}

/// Why [`Batch::fill`] stopped.
enum Filled {
    /// The batch is queued: flush it and wait for the next.
    Batch,
    /// Over the write buffer's high-water mark: flush, then fill again.
    Full,
    /// The subscription ended: flush and stop.
    Ended,
}

impl Batch {
    /// Queues deliveries on `ws` until the batch is done, the buffer is full or `sub` ends.
    fn fill(
        &mut self,
        exits: &Exits,
        ws: &mut WebSocket,
        sub: &mut Subscription,
        encoding: Encoding,
    ) -> Result<Filled, End> {
        while let Some(delivery) = self.next.take() {
            let notice;
            let frame = match &delivery {
                Delivery::Message(msg) => Some(encoding.frame(msg)),
                // Live messages overtook the subscription; it continues from history by
                // itself, unless the policy drops a slow client.
                Delivery::Lagged { .. } => {
                    if !super::outbox::lagged(&exits.state, Some(&exits.control)) {
                        return Err(End::Killed);
                    }
                    None
                }
                // A plain chat room has no frame for it: drop the connection, so that the
                // client reconnects (with `since`) instead of waiting forever.
                Delivery::Closed(_) if matches!(encoding, Encoding::Plain) => {
                    return Err(End::Killed)
                }
                other => {
                    notice = encoding.notice(sub.channel(), other);
                    notice.as_ref()
                }
            };
            if let Some(frame) = frame {
                let fed = ws.try_feed_prepared(frame).map_err(|_| End::Gone)?;
                if !fed && !std::mem::take(&mut self.flushed) {
                    self.next = Some(delivery);
                    return Ok(Filled::Full);
                }
                if let Delivery::Message(_) = delivery {
                    self.queued += 1;
                }
            }
            self.flushed = false;
            if let Delivery::Closed(_) = delivery {
                return Ok(Filled::Ended);
            }
            if self.taken < BATCH {
                self.next = sub.try_next();
                self.taken += 1;
            }
        }
        Ok(Filled::Batch)
    }
}

/// Before a polite close (shutdown 1001, a policy close): writes what `sub` already holds,
/// every message acknowledged before the close included, until `deadline`.
pub(crate) async fn drain_subscription(
    exits: &mut Exits,
    ws: &mut WebSocket,
    sub: &mut Subscription,
    encoding: Encoding,
    deadline: tokio::time::Instant,
) -> Result<(), End> {
    let drained = tokio::time::timeout_at(deadline, async {
        while let Some(d) = sub.try_next() {
            if let Fed::Ended = deliver(exits, ws, sub, encoding, d).await? {
                break;
            }
        }
        Ok(())
    });
    drained.await.unwrap_or(Ok(()))
}

/// Before a polite close: writes what the presence tasks already queued, for at most
/// [`CLOSE_TIMEOUT`]. `rx` must have no other sender left than theirs.
pub(crate) async fn drain(
    exits: &mut Exits,
    ws: &mut WebSocket,
    rx: &mut mpsc::Receiver<Outbound>,
    is_live: impl Fn(u64) -> bool + Copy,
) -> Result<(), End> {
    let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(out)) => exits.write_batch(ws, out, rx, is_live).await?,
            Ok(None) | Err(_) => return Ok(()),
        }
    }
}

/// Completes when `at` passes; never without one. The timer is boxed so that a connection
/// without an expiry holds none (the select of every idle connection holds this future).
pub(crate) async fn expired(at: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match at {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The next item of `rx`; never when there is none (a select branch that is off).
pub(crate) async fn recv_some<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Serialises a server frame of the JSON protocol.
/// A text message from bytes the hub produced (always UTF-8).
fn text(frame: Bytes) -> Option<Message> {
    Utf8Bytes::try_from_bytes(frame).ok().map(Message::Text)
}

/// The ways out of a connection that every write races, so that no write can wedge the
/// connection's task: a client that sends but never reads fills its socket, and a write
/// that waited on it alone would keep the task (and its kernel buffers) forever, deaf to
/// the slow-consumer kill, the admin API, keepalive and shutdown.
///
/// Two handles and nothing else: every idle connection's task holds one. The closing watch
/// and the write timeout are taken from `state` by the write that needs them.
pub(crate) struct Exits {
    state: AppState,
    control: ConnectionControl,
}

impl Exits {
    /// The exits of `control`'s connection, with the configured write timeout.
    pub(crate) fn new(state: &AppState, control: &ConnectionControl) -> Self {
        Self {
            state: state.clone(),
            control: control.clone(),
        }
    }

    /// [`Exits::flush`], then counts the `queued` messages it wrote as delivered.
    async fn flush_counted(
        &mut self,
        ws: &mut WebSocket,
        sub: &mut Subscription,
        encoding: Encoding,
        queued: &mut u64,
    ) -> Result<(), End> {
        if !self.flush_now(ws)? {
            Box::pin(self.flush(ws, sub)).await?;
        }
        if *queued > 0 {
            let n = std::mem::take(queued);
            self.state
                .hub
                .metrics()
                .record_delivered(encoding.transport(), n);
        }
        Ok(())
    }

    /// Writes what is queued on `ws` if the socket takes it all at once (the rule): `false`
    /// when it does not, and [`Exits::flush`] must wait. Only that wait needs the races of
    /// `flush`, so only it holds them (boxed): inline, they would be part of every idle
    /// connection's task, since a task is as large as its largest await.
    fn flush_now(&self, ws: &mut WebSocket) -> Result<bool, End> {
        if self.control.is_killed() {
            return Err(End::Killed);
        }
        // Nobody waits on this poll: a flush that cannot finish is polled again by `flush`,
        // which registers the task's waker.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match futures_util::Sink::<Message>::poll_flush(std::pin::Pin::new(ws), &mut cx) {
            std::task::Poll::Ready(Ok(())) => Ok(true),
            std::task::Poll::Ready(Err(_)) => Err(End::Gone),
            std::task::Poll::Pending => {
                // What `write` notes for a write that cannot finish at once.
                self.control.note_backpressure();
                Ok(false)
            }
        }
    }

    /// Writes what is queued on `ws` (see [`Exits::write`]); under the `disconnect` policy,
    /// a flush that waits while live messages overtake `sub` by a whole ring drops the
    /// client then, without waiting for the write timeout.
    pub(crate) async fn flush(
        &mut self,
        ws: &mut WebSocket,
        // `&mut`: a `Subscription` is `Send` but not `Sync`.
        sub: &mut Subscription,
    ) -> Result<(), End> {
        if self.state.config.lag_policy == crate::config::LagPolicy::Resume {
            return self.write(ws.flush()).await;
        }
        let ring = self
            .state
            .config
            .limits
            .queue_size
            .max(1)
            .next_power_of_two();
        // Started only if the flush does not finish at once (`biased`): no timer otherwise.
        let overrun = async move {
            loop {
                tokio::time::sleep(super::outbox::OVERRUN_CHECK).await;
                let unread = sub.live_unread();
                if unread > ring {
                    return unread;
                }
            }
        };
        tokio::select! {
            biased;
            written = self.write(ws.flush()) => written,
            unread = overrun => {
                // What the subscription would report as `Lagged` on its next read.
                self.state.hub.metrics().record_lag((unread - ring) as u64);
                self.control.note_backpressure();
                super::outbox::lagged(&self.state, Some(&self.control));
                Err(End::Killed)
            }
        }
    }

    /// Runs one write. It ends early, with the `End` to report, when the connection is
    /// killed, when it makes no progress for the write timeout (the client stopped reading:
    /// dropped as too slow), or when it is still stuck [`CLOSE_TIMEOUT`] after the server
    /// began shutting down (so shutdown waits on nobody, yet a write in progress when the
    /// signal came can still finish).
    pub(crate) async fn write<T, E>(
        &mut self,
        write: impl Future<Output = Result<T, E>>,
    ) -> Result<T, End> {
        let shutdown_stuck = async {
            let mut closing_rx = self.state.closing.clone();
            closing(&mut closing_rx).await;
            tokio::time::sleep(CLOSE_TIMEOUT).await;
        };
        if self.control.is_killed() {
            return Err(End::Killed);
        }
        // A write that cannot finish at once means the client's socket is full: it reads
        // slower than we write (the policy's test for a `Lagged` that follows).
        let mut write = std::pin::pin!(write);
        let mut first = true;
        let control = &self.control;
        let write = std::future::poll_fn(move |cx| {
            let polled = write.as_mut().poll(cx);
            if std::mem::take(&mut first) && polled.is_pending() {
                control.note_backpressure();
            }
            polled
        });
        tokio::select! {
            biased;
            _ = self.control.killed() => Err(End::Killed),
            () = shutdown_stuck => Err(End::Stuck),
            done = tokio::time::timeout(self.state.config.write_timeout(), write) => match done {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(_)) => Err(End::Gone),
                Err(_) => {
                    // Counted once the connection is gone, not now.
                    self.control.kill_as_slow(self.state.hub.metrics());
                    Err(End::TooSlow)
                }
            },
        }
    }

    /// Sends one text frame.
    pub(crate) async fn send_text(&mut self, ws: &mut WebSocket, frame: Bytes) -> Result<(), End> {
        match text(frame) {
            Some(m) => self.write(ws.send(m)).await,
            None => Ok(()),
        }
    }

    /// Writes `first` and whatever else is already queued (up to a batch), with one flush.
    /// Frames whose tag `is_live` rejects are skipped.
    pub(crate) async fn write_batch(
        &mut self,
        ws: &mut WebSocket,
        first: Outbound,
        rx: &mut mpsc::Receiver<Outbound>,
        is_live: impl Fn(u64) -> bool,
    ) -> Result<(), End> {
        // Messages written, by transport (a connection carries one).
        let mut written: Option<(Transport, u64)> = None;
        let batch = async {
            let mut next = Some(first);
            let mut n = 0;
            while let Some(out) = next.take() {
                if is_live(out.tag) {
                    ws.feed_prepared(&out.frame).await?;
                    if let Some(t) = out.delivers {
                        written.get_or_insert((t, 0)).1 += 1;
                    }
                }
                n += 1;
                if n < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            ws.flush().await
        };
        let result = self.write(batch).await;
        if let (Ok(()), Some((t, n))) = (&result, written) {
            self.state.hub.metrics().record_delivered(t, n);
        }
        result
    }
}

/// Closes with `code`, giving the peer [`CLOSE_TIMEOUT`] to answer.
pub(crate) async fn close(ws: &mut WebSocket, code: CloseCode, reason: &str) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(code, reason)).await;
}

/// What a connection's select saw. It is handled once the select is over, so that no
/// handling's await sits on top of the branches' futures: a task is as large as its largest
/// await, and a select's futures live until its arm is done.
pub(crate) enum Event<D> {
    /// The connection ends.
    End(End),
    /// A frame from the client, or the end of the socket.
    Received(Option<Result<Message, switchboard::Error>>),
    /// A subscription's next delivery.
    Delivery(D),
    /// A frame from a presence task.
    Presence(Outbound),
}

/// Arms `timer` for `at` (a token's expiry, which `auth` may move), boxed and only when
/// there is one: the select of every idle connection holds [`expired`]'s future, which is
/// small only while the timer is not in it.
pub(crate) fn arm(
    timer: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    at: Option<tokio::time::Instant>,
) {
    match (timer.as_mut(), at) {
        (Some(sleep), Some(at)) if sleep.deadline() == at => {}
        (Some(sleep), Some(at)) => sleep.as_mut().reset(at),
        (None, Some(at)) => *timer = Some(Box::pin(tokio::time::sleep_until(at))),
        (_, None) => *timer = None,
    }
}

/// Why a connection loop ended, for the close code.
pub(crate) enum End {
    /// The client closed or the connection broke.
    Gone,
    /// Server shutdown: 1001.
    Shutdown,
    /// Killed (too slow, or by an operator): drop without ceremony.
    Killed,
    /// A write made no progress for the write timeout: the client does not read. Dropped
    /// without ceremony (a close frame would not get through either), counted as a slow
    /// disconnect when the connection is gone.
    TooSlow,
    /// The server is shutting down and a write is still stuck: dropped.
    Stuck,
    /// The client's token expired: [`TOKEN_EXPIRED`].
    Expired,
    /// A policy violation by the client: 1008 with a reason.
    Policy(&'static str),
    /// The client sent binary frames where text is expected: 1003.
    Unsupported(&'static str),
}

impl From<super::conn::Stop> for End {
    fn from(stop: super::conn::Stop) -> Self {
        match stop {
            super::conn::Stop::Killed => End::Killed,
            super::conn::Stop::Shutdown => End::Shutdown,
        }
    }
}

/// Performs the close that `end` calls for.
pub(crate) async fn finish(ws: &mut WebSocket, end: End) {
    match end {
        End::Gone | End::Killed | End::Stuck => {}
        // Counted as a slow disconnect by the connection itself, once it is gone.
        End::TooSlow => tracing::debug!("client stopped reading, dropped"),
        End::Shutdown => close(ws, CloseCode::GOING_AWAY, "server shutting down").await,
        End::Policy(reason) => close(ws, CloseCode::POLICY_VIOLATION, reason).await,
        End::Unsupported(reason) => close(ws, CloseCode::UNSUPPORTED_DATA, reason).await,
        End::Expired => close(ws, CloseCode(TOKEN_EXPIRED), "token expired").await,
    }
}

/// The connection's kill switch: the one from the server, or a new one when the router is
/// mounted elsewhere (it still ends the hub's tasks for the WebSocket).
pub(crate) fn control_of(state: &AppState, extensions: &http::Extensions) -> ConnectionControl {
    super::control_of(state, extensions)
}

/// Completes when the server begins shutting down.
pub(crate) async fn closing(rx: &mut watch::Receiver<bool>) {
    super::closing(rx).await
}

/// A WebSocket was accepted over `version`: counted and logged, so that a socket that ran
/// as an HTTP/2 stream shows as one.
pub(crate) fn accepted(state: &AppState, version: http::Version) {
    state.hub.metrics().record_websocket(version);
    tracing::debug!(?version, "WebSocket accepted");
}

/// The WebSocket limits for the hub: messages up to the hub's limit plus room for the JSON
/// envelope of the `/ws` protocol; no compression (so broadcast bytes are shared as is).
/// Every connection is pinged every [`PING_INTERVAL`] (steady pings: also while its client
/// talks, for proxies that count only the server's bytes) and has [`PONG_TIMEOUT`] to
/// answer (any bytes), else it is cut off (1011): a half-open connection (a dead phone, a
/// pulled cable) ends, and its presence entry leaves, within about a minute instead of
/// lingering. The socket's own keepalive does it: one timer per connection, none in the
/// connection's task.
pub(crate) fn socket_config(state: &AppState) -> switchboard::WebSocketConfig {
    let max = state
        .config
        .limits
        .max_message_bytes
        .saturating_mul(2)
        .saturating_add(4096);
    switchboard::WebSocketConfig::default()
        .max_message_size(max)
        .max_frame_size(max)
        .keepalive(Some(PING_INTERVAL), PONG_TIMEOUT)
        .steady_pings(true)
}
