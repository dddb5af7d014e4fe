//! [`WebSocket`]: one connection after the opening handshake, over any async byte stream.

use crate::backpressure::TrySendError;
use crate::config::WebSocketConfig;
use crate::core::{Core, Room};
use crate::error::Error;
use crate::liveness::GoingAway;
use crate::split::{self, WebSocketReader, WebSocketWriter};
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use futures_sink::Sink;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};
use switchboard_protocol::{
    CloseCode, CloseFrame, CloseInfo, Connection, Message, PreparedMessage, State,
};
use tokio::io::{AsyncRead, AsyncWrite};

/// What [`WebSocket::recv_with_control`] returns: a message, or a control frame the peer sent.
///
/// ```no_run
/// use switchboard::Received;
/// # async fn run(mut ws: switchboard::ServerWebSocket) -> Result<(), switchboard::Error> {
/// ws.ping("are you there?").await?;
/// while let Some(received) = ws.recv_with_control().await {
///     match received? {
///         Received::Message(message) => println!("{message:?}"),
///         Received::Ping(payload) => println!("ping {payload:?} (the pong is queued)"),
///         Received::Pong(payload) => println!("pong {payload:?}"),
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A text or binary message, as [`WebSocket::recv`] returns it.
    Message(Message),
    /// A ping and its payload. The pong is already queued (it goes out with the next read or
    /// write).
    Ping(Bytes),
    /// A pong and its payload: the answer to a [`WebSocket::ping`], or a keepalive.
    Pong(Bytes),
}

/// A WebSocket connection over the stream `S` (a `TcpStream`, a TLS stream, a
/// `tokio::io::DuplexStream`, …), after the opening handshake.
///
/// Get one from [`crate::accept`] / [`crate::Acceptor`] on a server, [`crate::connect`] /
/// [`crate::Client`] on a client, or [`WebSocket::from_connection`] if you did the handshake
/// yourself.
///
/// ```no_run
/// # async fn run(mut ws: switchboard::WebSocket<tokio::net::TcpStream>) -> Result<(), switchboard::Error> {
/// while let Some(message) = ws.recv().await {
///     ws.send(message?).await?; // echo
/// }
/// // `None`: the peer closed cleanly; `ws.close_info()` says how.
/// # Ok(()) }
/// ```
///
/// # Automatic replies
///
/// Pings are answered and the peer's close frame is echoed by the protocol core; the replies
/// are written the next time `recv` waits for input (or by any `send`/`flush`), so a task that
/// keeps calling `recv` keeps the connection healthy.
///
/// # Cancel safety
///
/// [`recv`](WebSocket::recv) is cancel-safe: all parse state lives in the protocol core and
/// the read buffer in this struct, so dropping a `recv` future (in `tokio::select!`, or on a
/// timeout) loses nothing and the next `recv` continues mid-frame. `send`, `feed` and
/// `flush` are cancel-safe in the sense that a dropped future leaves the message queued
/// (if it was queued) for the next flush; `close` can be called again to resume.
///
/// # Batching
///
/// [`send`](WebSocket::send) writes and flushes each message. To send many small messages
/// in one syscall, [`feed`](WebSocket::feed) them and [`flush`](WebSocket::flush) once.
pub struct WebSocket<S> {
    // Boxed: the state is several hundred bytes, and a handler's future holds the socket
    // (often twice: async fn arguments get their own slot). One pointer keeps every idle
    // connection's task small and makes moving a `WebSocket` free.
    core: Box<Core<S>>,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("connection", &self.core.conn)
            .field("protocol", &self.core.protocol())
            .finish_non_exhaustive()
    }
}

impl<S> WebSocket<S> {
    /// Wraps a stream whose opening handshake is done, driven by `conn` (a
    /// [`Connection::server`] or [`Connection::client`], with deflate already set up if it
    /// was negotiated). `config.protocol` is not used: `conn` has its own.
    pub fn from_connection(stream: S, conn: Connection, config: &WebSocketConfig) -> Self {
        WebSocket {
            core: Box::new(Core::new(stream, conn, config)),
        }
    }

    /// Gives the connection the bytes that were read past the end of the handshake head
    /// (a client may send its first frame right behind its request). Call before `recv`.
    pub fn with_read_buffer(mut self, buf: BytesMut) -> Self {
        self.core.set_read_buffer(buf);
        self
    }

    /// Records the subprotocol the handshake settled on, for [`WebSocket::protocol`].
    pub fn with_protocol(mut self, protocol: Option<String>) -> Self {
        self.core.set_protocol(protocol);
        self
    }

    pub(crate) fn into_core(self) -> Box<Core<S>> {
        self.core
    }

    pub(crate) fn from_core(core: Box<Core<S>>) -> Self {
        WebSocket { core }
    }

    /// The subprotocol the handshake agreed on (`Sec-WebSocket-Protocol`), if any.
    pub fn protocol(&self) -> Option<&str> {
        self.core.protocol()
    }

    /// Bytes queued but not yet written to the stream (the browser's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.core.conn.buffered_amount()
    }

    /// Messages dropped so far because the write queue was full under
    /// [`SlowConsumer::Drop`](crate::SlowConsumer::Drop).
    pub fn dropped_messages(&self) -> u64 {
        self.core.dropped()
    }

    /// Closes with 1001 Going Away when `signal` fires; see [`GoingAway`]. The router
    /// does this for every connection it serves.
    pub fn close_on(&mut self, signal: &GoingAway) {
        self.core.watch_going_away(signal.clone());
    }

    /// The state of the close handshake.
    pub fn state(&self) -> State {
        self.core.conn.state()
    }

    /// How the connection ended (code, reason, who closed, whether cleanly), once it has
    /// started to end.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.core.conn.close_info()
    }

    /// The connection's round-trip time, as the last keepalive ping measured it (from the
    /// ping to its pong, Python websockets' `latency`): `None` without keepalive
    /// ([`WebSocketConfig::ping_interval`]) and until the first pong. Updated while `recv`
    /// runs, with every keepalive ping that is answered.
    ///
    /// ```no_run
    /// # async fn run(mut ws: switchboard::ServerWebSocket) {
    /// // With `WebSocketConfig::default().keepalive(Some(Duration::from_secs(20)), pong_timeout)`:
    /// while let Some(Ok(_message)) = ws.recv().await {
    ///     if let Some(rtt) = ws.latency() {
    ///         eprintln!("round trip: {rtt:?}");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn latency(&self) -> Option<std::time::Duration> {
        self.core.latency()
    }

    /// Whether permessage-deflate was negotiated.
    pub fn is_compressed(&self) -> bool {
        self.core.conn.is_compressed()
    }

    /// The underlying stream, e.g. for `peer_addr`.
    pub fn get_ref(&self) -> &S {
        &self.core.stream
    }

    /// The underlying stream, mutably. Reading or writing it directly corrupts the
    /// connection; this is for socket options.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.core.stream
    }

    /// The protocol state machine (for inspection).
    pub fn connection(&self) -> &Connection {
        &self.core.conn
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Receives the next text or binary message.
    ///
    /// Returns `None` once the connection is over: after a clean close (see
    /// [`WebSocket::close_info`] for the code and reason), and after the one error that ended
    /// it. On a protocol violation the close frame with the right code is sent and the
    /// transport closed before the error is returned. Cancel-safe.
    ///
    /// A message is not copied out of the read buffer: it shares it, and the buffer is
    /// reused once its messages are dropped. Keeping a message keeps the buffer it came in
    /// (up to the size of what was read with it); to store many small messages for a long
    /// time, store copies (`Bytes::copy_from_slice`, `String::from`).
    // Not an `async fn`: the `poll_fn` itself is the future, with no state machine around
    // it for every message to step through.
    pub fn recv(&mut self) -> impl Future<Output = Option<Result<Message, Error>>> + '_ {
        poll_fn(|cx| self.core.poll_recv(cx.waker(), cx.waker()))
    }

    /// Like [`recv`](WebSocket::recv), but also returns the pings and pongs the peer sends,
    /// for tools that show them (a ping's pong is already queued when it is returned).
    /// Cancel-safe.
    pub async fn recv_with_control(&mut self) -> Option<Result<Received, Error>> {
        poll_fn(|cx| self.core.poll_received::<true>(cx.waker(), cx.waker())).await
    }

    /// Sends a message and flushes it (and everything queued before it).
    ///
    /// Waits while more than [`WebSocketConfig::write_buffer_high_water`] bytes are queued,
    /// so a slow peer slows the sender down.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues a message without flushing, after waiting for the queue to be below the
    /// high-water mark. Follow with [`WebSocket::flush`] (or a `send`, or a `recv` that
    /// waits for input, which also flushes).
    ///
    /// Over the high-water mark, the connection's
    /// [`SlowConsumer`](crate::SlowConsumer) policy decides: wait (the default), drop the
    /// message (returning `Ok`), or close the connection (returning an error).
    pub fn feed(&mut self, message: impl Into<Message>) -> Feed<'_, S> {
        Feed {
            ws: self,
            message: Some(message.into()),
        }
    }

    /// Like [`WebSocket::feed`], for a message encoded once and sent to many connections:
    /// on a server connection the shared frame bytes are queued as they are (no re-encoding,
    /// no UTF-8 re-check), unless this connection compresses the message (deflate state is
    /// per connection). Follow with [`WebSocket::flush`].
    pub async fn feed_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        match poll_fn(|cx| self.core.poll_room(cx.waker())).await? {
            Room::Free => self.core.queue_prepared(prepared),
            Room::Full => self.core.overflow(),
        }
    }

    /// Queues a message encoded once for many connections without waiting and without
    /// writing: `Ok(false)`, with nothing queued, when more than
    /// [`WebSocketConfig::write_buffer_high_water`] bytes are queued already. For a fan-out
    /// loop that takes a batch of frames from a source it must not hold across an await:
    /// queue while this answers `true`, then [`WebSocket::flush`] once.
    pub fn try_feed_prepared(&mut self, prepared: &PreparedMessage) -> Result<bool, Error> {
        if self.core.is_full() {
            return Ok(false);
        }
        self.core.queue_prepared(prepared)?;
        Ok(true)
    }

    /// [`WebSocket::feed_prepared`], then flush.
    pub async fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), Error> {
        self.feed_prepared(prepared).await?;
        self.flush().await
    }

    /// Queues a message without waiting: [`TrySendError::Full`] hands it back when more
    /// than the high-water mark is queued. Writes what the socket takes at once; the rest
    /// goes out with the next `recv`, `send` or `flush`.
    pub fn try_send(&mut self, message: impl Into<Message>) -> Result<(), TrySendError> {
        let message = message.into();
        // Nobody waits on these polls: whatever does not fit now waits for the next
        // `recv`/`send`/`flush`, which register their own wakers.
        let waker = Waker::noop();
        if self.core.is_full() {
            if let Poll::Ready(Err(error)) = self.core.poll_ready(waker) {
                return Err(TrySendError::Failed(error));
            }
            if self.core.is_full() {
                return Err(TrySendError::Full(message));
            }
        }
        self.core.queue(message)?;
        if let Poll::Ready(Err(error)) = self.core.poll_flush(waker) {
            return Err(TrySendError::Failed(error));
        }
        Ok(())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.core.poll_flush(cx.waker())).await
    }

    /// Sends a ping with up to 125 bytes of payload. The peer's pong is not returned by
    /// `recv`.
    pub async fn ping(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.send_control(payload.into(), false).await
    }

    /// Sends an unsolicited pong with up to 125 bytes of payload: a one-way heartbeat
    /// (RFC 6455 §5.5.3), which the peer does not answer. Pings are answered without
    /// this: their pongs are queued by the protocol core.
    pub async fn pong(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.send_control(payload.into(), true).await
    }

    async fn send_control(&mut self, payload: Bytes, pong: bool) -> Result<(), Error> {
        poll_fn(|cx| self.core.poll_ready(cx.waker())).await?;
        self.core.queue_control(payload, pong)?;
        self.flush().await
    }

    /// Closes the connection: sends a close frame with `code` and `reason` (at most 123
    /// bytes), then reads until the peer's close frame or end of file, and closes the
    /// transport. Messages that arrive meanwhile are discarded. Waits at most
    /// [`WebSocketConfig::close_timeout`] for the peer (then [`crate::ErrorKind::Timeout`]).
    ///
    /// If the close handshake has already begun (the peer closed first), this only drives
    /// it to its end; calling it on a closed connection does nothing.
    pub async fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<(), Error> {
        self.core
            .start_close(Some(CloseFrame::new(code.into(), reason)))?;
        poll_fn(|cx| self.core.poll_close(cx.waker(), cx.waker())).await
    }

    /// Starts the close handshake without waiting for it: sends a close frame with `code`
    /// and `reason` and flushes it. Keep calling [`recv`](WebSocket::recv): it returns the
    /// messages the peer sent before it saw our close, then `None` once the peer answers
    /// (or an error after [`WebSocketConfig::close_timeout`]).
    pub async fn send_close(
        &mut self,
        code: impl Into<CloseCode>,
        reason: &str,
    ) -> Result<(), Error> {
        self.core
            .start_close(Some(CloseFrame::new(code.into(), reason)))?;
        self.flush().await
    }

    /// Splits the connection into a reader and a writer that can be used from two tasks.
    ///
    /// Both halves share the connection behind a lock that is only held while a poll
    /// function runs, never across an `.await`. Automatic replies (pongs, the close echo)
    /// produced while reading are flushed by the reader itself, so they go out even if
    /// the writer is idle. See [`WebSocketReader`] and [`WebSocketWriter`].
    pub fn split(self) -> (WebSocketReader<S>, WebSocketWriter<S>) {
        split::split(self)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.core.poll_recv(cx.waker(), cx.waker())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().core.poll_ready(cx.waker())
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().core.queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().core.poll_flush(cx.waker())
    }

    /// Closes with 1000 (Normal Closure) and waits for the peer's close, as
    /// [`WebSocket::close`] does.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.core
            .start_close(Some(CloseFrame::new(CloseCode::NORMAL, "")))?;
        this.core.poll_close(cx.waker(), cx.waker())
    }
}

/// The future of [`WebSocket::feed`]: the message and the socket, nothing more, so a
/// handler that awaits it (every echo loop) keeps a small state per connection.
///
/// ```no_run
/// # async fn run(mut ws: switchboard::ServerWebSocket) -> Result<(), switchboard::Error> {
/// for line in ["one", "two", "three"] {
///     ws.feed(line).await?; // queued, not yet written
/// }
/// ws.flush().await?; // one write for all three
/// # Ok(()) }
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Feed<'a, S> {
    ws: &'a mut WebSocket<S>,
    message: Option<Message>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Feed<'_, S> {
    type Output = Result<(), Error>;

    // Inline: an echo loop polls one `Feed` per message, and it is ready at once.
    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let room = ready!(this.ws.core.poll_room(cx.waker()))?;
        let Some(message) = this.message.take() else {
            panic!("`Feed` polled after it completed");
        };
        Poll::Ready(match room {
            Room::Free => this.ws.core.queue(message),
            Room::Full => this.ws.core.overflow(),
        })
    }
}
