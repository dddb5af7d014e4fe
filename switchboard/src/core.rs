//! The I/O driver shared by [`crate::WebSocket`] and its split halves: it owns the stream,
//! the sans-I/O [`Connection`] and the read buffer, and runs the driving recipe from the
//! protocol crate as poll functions.
//!
//! Every piece of state lives in [`Core`], and every poll function can stop at any
//! `Pending` and resume later, so the async methods built on top are cancel-safe.
//!
//! Poll functions take two wakers: `rw` is woken when reading can progress, `ww` when
//! writing can. A plain `WebSocket` passes its task's waker twice; the split halves pass a
//! waker that wakes both halves for writes, since either may be the one flushing.

use crate::backpressure::SlowConsumer;
use crate::config::WebSocketConfig;
use crate::error::Error;
use crate::liveness::{GoingAway, Liveness, Timers, Verdict};
use crate::websocket::Received;
use bytes::BytesMut;
use std::cell::Cell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;
use switchboard_protocol::{
    CloseCode, CloseFrame, Connection, Event, Inflation, Message, Role, State,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Output chunks handed to one vectored write. The connection coalesces small frames into
/// one chunk, so this only bounds how many large payloads leave in one syscall.
const MAX_IOV: usize = 64;

/// The smallest read: a fresh read buffer has this much room, and a buffer with less spare
/// room than this grows before the next read.
const READ_CHUNK: usize = 4 << 10;

/// How far ahead of the bytes buffered so far a read buffer grows at once for a large frame
/// whose length the header announced; beyond that it doubles, so a peer cannot make us
/// reserve a whole 16 MiB frame by sending its header alone.
const MAX_READ_AHEAD: usize = 1 << 20;

/// An empty read buffer larger than this is freed rather than kept as the thread's spare.
/// The spare is one per thread, not per connection, so it can be large: a stream of big
/// messages then reuses one buffer instead of allocating (and faulting in) each.
const KEEP_READ_CAPACITY: usize = 1 << 20;

thread_local! {
    /// One spare read buffer per thread. A connection waiting for input holds no buffer (an
    /// idle connection costs no read memory); the next connection on this thread to get
    /// input takes this one instead of allocating. Messages are split off the buffer, so
    /// once the application has dropped them the buffer is reused in place.
    ///
    /// `ManuallyDrop`: a thread-local without a destructor is a plain load and store, where
    /// one with a destructor checks its registration on every access (twice per echoed
    /// message). [`SpareReadGuard`] frees the buffer when the thread exits instead.
    static SPARE_READ_BUFFER: Cell<Option<ManuallyDrop<BytesMut>>> = const { Cell::new(None) };
    /// Whether this thread's [`SPARE_READ_GUARD`] is registered.
    static SPARE_READ_GUARDED: Cell<bool> = const { Cell::new(false) };
    static SPARE_READ_GUARD: SpareReadGuard = const { SpareReadGuard };
}

/// Frees the thread's spare read buffer when the thread exits. (A buffer handed back by
/// another thread-local's destructor after this one ran is not freed: at most one, at exit.)
struct SpareReadGuard;

impl Drop for SpareReadGuard {
    fn drop(&mut self) {
        if let Some(buf) = SPARE_READ_BUFFER.take() {
            drop(ManuallyDrop::into_inner(buf));
        }
    }
}

#[inline]
fn take_spare_read_buffer() -> BytesMut {
    SPARE_READ_BUFFER
        .take()
        .map(ManuallyDrop::into_inner)
        .unwrap_or_default()
}

#[inline]
fn give_back_read_buffer(mut buf: BytesMut) {
    if buf.capacity() <= KEEP_READ_CAPACITY && buf.capacity() > 0 {
        buf.clear();
        if !SPARE_READ_GUARDED.get() {
            SPARE_READ_GUARDED.set(true);
            SPARE_READ_GUARD.with(|_| {});
        }
        if let Some(old) = SPARE_READ_BUFFER.replace(Some(ManuallyDrop::new(buf))) {
            drop(ManuallyDrop::into_inner(old));
        }
    }
}

/// `recv` stops reading while this much output (at least) is unwritten. Only automatic
/// replies can pile up there (`feed` waits at the high-water mark), so this bounds the
/// memory a peer can make us spend by sending pings and never reading the pongs.
const MIN_READ_PAUSE: usize = 1 << 20;

/// The most the split reader reads (and so decrypts, over TLS) in one go under its lock.
const SPLIT_READ_MAX: usize = 256 << 10;

/// Where [`Core::poll_step`] stopped.
pub(crate) enum Step {
    /// A message, or with `CONTROL` a ping or pong.
    Received(Received),
    /// `SPLIT` only: a compressed frame to inflate away from the core, then give back
    /// with [`Core::finish_inflation`].
    Inflate(Inflation),
    /// `SPLIT` only: a read completed; call again (after letting go of the lock).
    Read,
}

/// What [`Core::poll_step`] hands out: [`Received`] for the whole socket, whose path stays
/// as it was without the split reader's stops (same type, same moves), or [`Step`].
pub(crate) trait Stop: Sized {
    /// Whether this is the split reader's loop (see [`Core::poll_step`]).
    const SPLIT: bool;
    fn received(received: Received) -> Self;
    fn inflate(job: Inflation) -> Self;
    fn read() -> Self;
}

impl Stop for Received {
    const SPLIT: bool = false;

    #[inline]
    fn received(received: Received) -> Self {
        received
    }

    fn inflate(_: Inflation) -> Self {
        unreachable!("only the split reader defers inflation")
    }

    fn read() -> Self {
        unreachable!("only the split reader stops after a read")
    }
}

/// What [`Core::poll_recv`] hands out: only messages (without `CONTROL`, `poll_step` returns
/// no ping or pong).
impl Stop for Message {
    const SPLIT: bool = false;

    #[inline]
    fn received(received: Received) -> Self {
        match received {
            Received::Message(message) => message,
            Received::Ping(_) | Received::Pong(_) => {
                unreachable!("control frames are surfaced only when asked for")
            }
        }
    }

    fn inflate(_: Inflation) -> Self {
        unreachable!("only the split reader defers inflation")
    }

    fn read() -> Self {
        unreachable!("only the split reader stops after a read")
    }
}

impl Stop for Step {
    const SPLIT: bool = true;

    fn received(received: Received) -> Self {
        Step::Received(received)
    }

    fn inflate(job: Inflation) -> Self {
        Step::Inflate(job)
    }

    fn read() -> Self {
        Step::Read
    }
}

/// Where the connection is, from the shell's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Frames flow; the close handshake may have started (the core's state says).
    Open,
    /// The close handshake is over or the connection failed: write what is queued, close
    /// the transport (a client first waits for the server's FIN), then report.
    Finishing,
    /// The transport is closed (or broken); nothing more will be read.
    Done,
}

pub(crate) struct Core<S> {
    pub(crate) stream: S,
    pub(crate) conn: Connection,
    /// Bytes read but not yet parsed. Only ever appended to between `poll_event` calls (the
    /// connection unmasks payload in place as it arrives).
    read_buf: BytesMut,
    phase: Phase,
    /// What most connections never need until they end: allocated on first use, so an
    /// open connection does not carry it (every byte of an idle connection counts).
    rare: Option<Box<Rare>>,
    /// The write queue's high-water mark in bytes (saturating at 4 GiB, far past any
    /// useful mark): four bytes rather than eight leave room in `Core`'s size class for
    /// `ServerStream`'s variant tag.
    high_water: u32,
    /// The close timeout in milliseconds (saturating at about 49 days): four bytes rather
    /// than a `Duration`'s sixteen keep `Core` inside its allocation size class.
    close_timeout_ms: u32,
    /// Keepalive, idle timeout and the server's going-away signal.
    liveness: Liveness,
    slow_consumer: SlowConsumer,
}

/// The seldom-used part of [`Core`].
#[derive(Default)]
struct Rare {
    /// An error to report once the transport is closed (a protocol error, a timeout).
    pending_error: Option<Error>,
    /// The close timeout, armed when the close handshake starts (boxed: `Sleep` is not
    /// `Unpin`).
    deadline: Option<Pin<Box<Sleep>>>,
    /// The negotiated subprotocol.
    protocol: Option<Box<str>>,
    /// Messages dropped by [`SlowConsumer::Drop`].
    dropped: u64,
}

/// Whether a message may be queued now (see [`Core::poll_room`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// Under the high-water mark.
    Free,
    /// Over it, and the policy is not to wait.
    Full,
}

impl<S> Core<S> {
    pub(crate) fn new(stream: S, conn: Connection, config: &WebSocketConfig) -> Self {
        Core {
            stream,
            conn,
            read_buf: BytesMut::new(),
            phase: Phase::Open,
            rare: None,
            high_water: u32::try_from(config.write_buffer_high_water).unwrap_or(u32::MAX),
            close_timeout_ms: u32::try_from(config.close_timeout.as_millis()).unwrap_or(u32::MAX),
            liveness: Liveness::new(Timers {
                ping_interval: config.ping_interval,
                pong_timeout: config.pong_timeout,
                steady_pings: config.steady_pings,
                idle_timeout: config.idle_timeout,
            }),
            slow_consumer: config.slow_consumer,
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    fn set_pending_error(&mut self, error: Error) {
        self.rare().pending_error = Some(error);
    }

    fn take_pending_error(&mut self) -> Option<Error> {
        self.rare
            .as_mut()
            .and_then(|rare| rare.pending_error.take())
    }

    fn set_deadline(&mut self, after: Duration) {
        self.rare().deadline = Some(Box::pin(tokio::time::sleep(after)));
    }

    /// Closes with 1001 Going Away when `signal` fires (graceful shutdown).
    pub(crate) fn watch_going_away(&mut self, signal: GoingAway) {
        self.liveness.watch(signal);
    }

    /// The round trip of the last answered keepalive ping.
    pub(crate) fn latency(&self) -> Option<Duration> {
        self.liveness.latency()
    }

    /// Whether the connection is over: nothing about it changes any more.
    pub(crate) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Messages dropped by [`SlowConsumer::Drop`] so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.rare.as_ref().map_or(0, |rare| rare.dropped)
    }

    /// A message found the queue full under a policy that does not wait: drop it, or
    /// start closing the connection.
    pub(crate) fn overflow(&mut self) -> Result<(), Error> {
        match self.slow_consumer {
            SlowConsumer::Close(code) => {
                tracing::info!(%code, queued = self.conn.buffered_amount(), "closing a connection that reads too slowly");
                self.start_close(Some(CloseFrame::new(code, "too slow")))?;
                Err(Error::closed())
            }
            SlowConsumer::Wait | SlowConsumer::Drop => {
                self.rare().dropped += 1;
                Ok(())
            }
        }
    }

    /// The high-water mark in bytes.
    #[inline(always)]
    fn high_water(&self) -> usize {
        self.high_water as usize
    }

    /// Whether more than the high-water mark is queued.
    pub(crate) fn is_full(&self) -> bool {
        self.conn.buffered_amount() > self.high_water()
    }

    /// Bytes that arrived after the handshake head (a client may pipeline its first frame).
    pub(crate) fn set_read_buffer(&mut self, buf: BytesMut) {
        debug_assert!(self.read_buf.is_empty());
        // An empty handshake buffer still holds its capacity; an idle connection should not.
        self.read_buf = if buf.is_empty() { BytesMut::new() } else { buf };
    }

    pub(crate) fn set_protocol(&mut self, protocol: Option<String>) {
        if let Some(protocol) = protocol {
            self.rare().protocol = Some(protocol.into_boxed_str());
        }
    }

    pub(crate) fn protocol(&self) -> Option<&str> {
        self.rare.as_ref().and_then(|rare| rare.protocol.as_deref())
    }

    fn release_read_buffer(&mut self) {
        give_back_read_buffer(std::mem::take(&mut self.read_buf));
    }

    fn arm_deadline(&mut self) {
        if self
            .rare
            .as_ref()
            .is_none_or(|rare| rare.deadline.is_none())
        {
            self.set_deadline(Duration::from_millis(self.close_timeout_ms.into()));
        }
    }

    /// Whether the close timeout has passed (registers `waker` if not).
    fn deadline_passed(&mut self, waker: &Waker) -> bool {
        match self.rare.as_mut().and_then(|rare| rare.deadline.as_mut()) {
            Some(sleep) => sleep
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_ready(),
            None => false,
        }
    }

    fn enter_finishing(&mut self) {
        self.phase = Phase::Finishing;
        self.arm_deadline();
    }

    /// Starts the close handshake unless it has started already (or the connection is
    /// over), in which case there is nothing to send and this is not an error.
    pub(crate) fn start_close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        if self.conn.state() == State::Open && self.phase == Phase::Open {
            self.conn.close(frame)?;
        }
        Ok(())
    }

    /// Queues a message, failing if the connection can no longer send.
    #[inline]
    pub(crate) fn queue(&mut self, message: Message) -> Result<(), Error> {
        if self.phase != Phase::Open || self.conn.state() == State::Closed {
            return Err(Error::closed());
        }
        self.conn.send(message)?;
        Ok(())
    }

    /// Queues a message encoded once for many connections (fan-out).
    pub(crate) fn queue_prepared(
        &mut self,
        prepared: &switchboard_protocol::PreparedMessage,
    ) -> Result<(), Error> {
        if self.phase != Phase::Open || self.conn.state() == State::Closed {
            return Err(Error::closed());
        }
        self.conn.send_prepared(prepared)?;
        Ok(())
    }

    /// Queues a ping, or with `pong` an unsolicited pong.
    pub(crate) fn queue_control(&mut self, payload: bytes::Bytes, pong: bool) -> Result<(), Error> {
        if self.phase != Phase::Open || self.conn.state() == State::Closed {
            return Err(Error::closed());
        }
        if pong {
            self.conn.pong(payload)?;
        } else {
            self.conn.ping(payload)?;
        }
        Ok(())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Core<S> {
    /// The next message; `None` once the connection is over (after a clean close, or after
    /// the one error that ended it was returned).
    pub(crate) fn poll_recv(
        &mut self,
        rw: &Waker,
        ww: &Waker,
    ) -> Poll<Option<Result<Message, Error>>> {
        // Handed out as a `Message` from where it is parsed: no `Received` to unwrap.
        self.poll_step::<false, Message>(rw, ww)
    }

    /// [`Core::poll_recv`], and with `CONTROL` also the pings (already answered) and pongs
    /// the peer sends. A const parameter, so the message-only path stays as it was.
    pub(crate) fn poll_received<const CONTROL: bool>(
        &mut self,
        rw: &Waker,
        ww: &Waker,
    ) -> Poll<Option<Result<Received, Error>>> {
        self.poll_step::<CONTROL, Received>(rw, ww)
    }

    /// Takes back a frame [`Step::Inflate`] handed out, inflated: the message once its last
    /// frame is in. A protocol error is kept for the reader, as [`Core::poll_step`] keeps
    /// one, and the connection starts finishing.
    pub(crate) fn finish_inflation(&mut self, job: Inflation) -> Option<Message> {
        match self.conn.finish_inflation(job) {
            Ok(Some(Event::Message(message))) => Some(message),
            Ok(_) => None,
            Err(error) => {
                self.protocol_failed(error);
                None
            }
        }
    }

    /// The peer broke the protocol: the connection queued a close frame with the error's
    /// code; report the error once the transport is closed.
    fn protocol_failed(&mut self, error: switchboard_protocol::ProtocolError) {
        tracing::debug!(%error, "protocol error from peer");
        self.set_pending_error(Error::protocol(error));
        self.enter_finishing();
    }

    /// The reading loop behind [`Core::poll_received`]. With `SPLIT` ([`Step`]: the split reader,
    /// which holds a lock the writer also needs) it stops after every read, so the lock can
    /// be let go between reads, and at every compressed frame, which it hands out to be
    /// inflated without the lock ([`Step::Inflate`]); reads are then at most
    /// [`SPLIT_READ_MAX`] bytes, so no one read decrypts much under the lock either.
    pub(crate) fn poll_step<const CONTROL: bool, O: Stop>(
        &mut self,
        rw: &Waker,
        ww: &Waker,
    ) -> Poll<Option<Result<O, Error>>> {
        loop {
            match self.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Finishing => {
                    ready!(self.poll_finish(rw, ww));
                    self.phase = Phase::Done;
                    self.release_read_buffer();
                    return Poll::Ready(self.take_pending_error().map(Err));
                }
                Phase::Open => {}
            }

            match self.conn.poll_event(&mut self.read_buf) {
                Ok(Some(Event::Message(message))) => {
                    return Poll::Ready(Some(Ok(O::received(Received::Message(message)))))
                }
                // The pong is queued by the connection; it goes out before the next read.
                Ok(Some(Event::Ping(payload))) if CONTROL => {
                    return Poll::Ready(Some(Ok(O::received(Received::Ping(payload)))))
                }
                Ok(Some(Event::Pong(payload))) => {
                    self.liveness.on_pong(&payload);
                    if CONTROL {
                        return Poll::Ready(Some(Ok(O::received(Received::Pong(payload)))));
                    }
                    continue;
                }
                Ok(Some(Event::Ping(_))) => continue,
                Ok(Some(Event::Close(_))) => {
                    self.enter_finishing();
                    continue;
                }
                Err(error) => {
                    self.protocol_failed(error);
                    continue;
                }
                Ok(None) => {
                    if O::SPLIT {
                        if let Some(job) = self.conn.take_inflation() {
                            return Poll::Ready(Some(Ok(O::inflate(job))));
                        }
                    }
                }
            }

            // One look at the state per round (it is several flags): open, with the
            // timers and signal to ask, or closing, with the close timeout to watch.
            let state = self.conn.state();
            if state == State::Open && self.liveness.is_active() {
                match self.liveness.poll(rw) {
                    Verdict::Wait => {}
                    Verdict::Ping => {
                        // Goes out with the flush below.
                        let _ = self.conn.ping(bytes::Bytes::new());
                    }
                    Verdict::Dead { waited } => {
                        tracing::info!(
                            ?waited,
                            "closing a dead connection: no answer to a keepalive ping"
                        );
                        let _ = self.conn.close(Some(CloseFrame::new(
                            CloseCode::INTERNAL_ERROR,
                            "keepalive timeout",
                        )));
                        self.set_pending_error(Error::timeout("keepalive (no answer to a ping)"));
                        // No close handshake with a dead peer: cut the transport now.
                        self.set_deadline(Duration::ZERO);
                        self.phase = Phase::Finishing;
                        continue;
                    }
                    Verdict::Idle { after } => {
                        tracing::debug!(?after, "closing an idle connection");
                        let _ = self
                            .conn
                            .close(Some(CloseFrame::new(CloseCode::GOING_AWAY, "idle timeout")));
                        continue;
                    }
                    Verdict::GoingAway => {
                        let _ = self.conn.close(Some(CloseFrame::new(
                            CloseCode::GOING_AWAY,
                            "server shutting down",
                        )));
                        continue;
                    }
                }
            }

            // A verdict that changed the state went round again (`continue`) above, and a
            // ping does not change it: `state` is still current here.
            if state == State::Closing {
                // Our close frame is out (or queued); the peer has `close_timeout` to answer.
                self.arm_deadline();
                if self.deadline_passed(rw) {
                    tracing::debug!("peer did not answer our close frame in time");
                    self.set_pending_error(Error::timeout("close handshake"));
                    self.phase = Phase::Finishing;
                    continue;
                }
            }

            // Opportunistic flush before waiting for input: pongs, close replies and fed
            // messages leave now, coalesced into one write.
            if self.conn.buffered_amount() > 0 {
                if let Poll::Ready(Err(error)) = self.poll_write_all(ww) {
                    return Poll::Ready(Some(Err(self.fail_io(error))));
                }
                if self.conn.buffered_amount() > self.high_water().max(MIN_READ_PAUSE) {
                    // The peer is not reading what we owe it; stop reading until it does.
                    return Poll::Pending;
                }
            }

            // `O::SPLIT` is a constant: one arm is left.
            let filled = if O::SPLIT {
                self.poll_fill::<true>(rw)
            } else {
                self.poll_fill::<false>(rw)
            };
            match filled {
                Poll::Pending => {
                    if self.read_buf.is_empty() {
                        // Idle: hold no buffer while waiting (the next read uses the stack).
                        self.release_read_buffer();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => {
                    let closing = self.conn.state() == State::Closing;
                    self.conn.handle_eof();
                    self.phase = Phase::Done;
                    self.release_read_buffer();
                    if closing {
                        // We asked to close and the peer hung up instead of answering: the
                        // connection is over as requested, if not cleanly (close_info: 1006).
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(Error::abnormal_eof())));
                }
                Poll::Ready(Ok(_)) => {
                    self.liveness.on_inbound();
                    if O::SPLIT {
                        return Poll::Ready(Some(Ok(O::read())));
                    }
                    continue;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(self.fail_io(error)))),
            }
        }
    }

    /// Drives the close handshake to its end, discarding messages that arrive meanwhile.
    pub(crate) fn poll_close(&mut self, rw: &Waker, ww: &Waker) -> Poll<Result<(), Error>> {
        loop {
            match ready!(self.poll_recv(rw, ww)) {
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Poll::Ready(Err(error)),
                None => return Poll::Ready(Ok(())),
            }
        }
    }

    /// Waits until at most the high-water mark is queued, writing meanwhile.
    pub(crate) fn poll_ready(&mut self, ww: &Waker) -> Poll<Result<(), Error>> {
        if self.phase == Phase::Done {
            return Poll::Ready(Err(Error::closed()));
        }
        let target = self.high_water();
        self.poll_write_until(ww, target)
            .map_err(|e| self.fail_io(e))
    }

    /// Like [`Core::poll_ready`], but under a policy that does not wait, reports
    /// [`Room::Full`] instead of waiting for the peer.
    #[inline]
    pub(crate) fn poll_room(&mut self, ww: &Waker) -> Poll<Result<Room, Error>> {
        if self.phase != Phase::Done && !self.is_full() {
            // Under the high-water mark: nothing to write first (every message asks).
            return Poll::Ready(Ok(Room::Free));
        }
        match (self.poll_ready(ww), self.slow_consumer) {
            (Poll::Ready(result), _) => Poll::Ready(result.map(|()| Room::Free)),
            (Poll::Pending, SlowConsumer::Wait) => Poll::Pending,
            (Poll::Pending, _) => Poll::Ready(Ok(Room::Full)),
        }
    }

    /// Writes everything queued and flushes the stream.
    pub(crate) fn poll_flush(&mut self, ww: &Waker) -> Poll<Result<(), Error>> {
        if self.phase == Phase::Done && self.conn.buffered_amount() > 0 {
            return Poll::Ready(Err(Error::closed()));
        }
        self.poll_write_all(ww).map_err(|e| self.fail_io(e))
    }

    /// The transport failed: the connection is over.
    fn fail_io(&mut self, error: io::Error) -> Error {
        tracing::debug!(%error, "transport error");
        self.conn.handle_eof();
        self.phase = Phase::Done;
        self.release_read_buffer();
        Error::io(error)
    }

    /// Finishing: write the close frame, close the transport (a client after the server's
    /// FIN, §7.1.1), all within the close timeout. Transport errors here end quietly: the
    /// close handshake is already decided.
    fn poll_finish(&mut self, rw: &Waker, ww: &Waker) -> Poll<()> {
        loop {
            if self.deadline_passed(rw) {
                // Give up on the peer; one attempt at a FIN, then drop it.
                let _ = Pin::new(&mut self.stream).poll_shutdown(&mut Context::from_waker(ww));
                if self.conn.state() != State::Closed {
                    self.conn.handle_eof();
                }
                return Poll::Ready(());
            }
            if self.conn.buffered_amount() > 0 {
                match ready!(self.poll_write_all(ww)) {
                    Ok(()) => {}
                    Err(_) => {
                        self.conn.handle_eof();
                        return Poll::Ready(());
                    }
                }
            }
            if !self.conn.should_close_transport() && self.conn.role() == Role::Client {
                // The server closes TCP first; wait for its FIN, discarding anything else.
                match ready!(self.poll_fill::<false>(rw)) {
                    Ok(0) | Err(_) => self.conn.handle_eof(),
                    Ok(_) => self.read_buf.clear(),
                }
                continue;
            }
            let _ = ready!(Pin::new(&mut self.stream).poll_shutdown(&mut Context::from_waker(ww)));
            return Poll::Ready(());
        }
    }

    #[inline(always)]
    fn poll_write_all(&mut self, ww: &Waker) -> Poll<io::Result<()>> {
        ready!(self.poll_write_until(ww, 0))?;
        Pin::new(&mut self.stream).poll_flush(&mut Context::from_waker(ww))
    }

    /// Writes queued output until at most `target` bytes remain.
    #[inline(always)]
    fn poll_write_until(&mut self, ww: &Waker, target: usize) -> Poll<io::Result<()>> {
        let mut cx = Context::from_waker(ww);
        while self.conn.buffered_amount() > target {
            let written = if let Some(bytes) = self.conn.contiguous_output() {
                ready!(Pin::new(&mut self.stream).poll_write(&mut cx, bytes))?
            } else {
                ready!(self.poll_write_chunks(&mut cx))?
            };
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.conn.advance_output(written);
        }
        Poll::Ready(Ok(()))
    }

    /// One write of output in several pieces (vectored when the stream can), out of line:
    /// its array of slices is a kilobyte of stack the usual one-piece write does not need.
    #[inline(never)]
    fn poll_write_chunks(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut stream = Pin::new(&mut self.stream);
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let count = self.conn.output_chunks(&mut slices);
        if count > 1 && stream.is_write_vectored() {
            stream.as_mut().poll_write_vectored(cx, &slices[..count])
        } else {
            stream.as_mut().poll_write(cx, &slices[0])
        }
    }

    /// Reads more bytes into the buffer (with `SPLIT`, at most [`SPLIT_READ_MAX`]); `Ok(0)`
    /// at end of file.
    #[inline(always)]
    fn poll_fill<const SPLIT: bool>(&mut self, rw: &Waker) -> Poll<io::Result<usize>> {
        let mut cx = Context::from_waker(rw);
        if self.read_buf.capacity() == 0 {
            self.read_buf = take_spare_read_buffer();
        }
        // Room for the rest of the frame being received (its header told its length), so a
        // large frame arrives in few reads and few reallocations; at least `READ_CHUNK`.
        let buffered = self.read_buf.len();
        let missing = self
            .conn
            .frame_bytes_missing(buffered)
            .min(buffered.max(MAX_READ_AHEAD));
        let spare = self.read_buf.capacity() - buffered;
        if spare < missing || spare < READ_CHUNK / 4 {
            // Reclaims the buffer in place when the messages split off it are gone.
            self.read_buf.reserve(missing.max(READ_CHUNK));
        }
        let dst = self.read_buf.spare_capacity_mut();
        let dst = if SPLIT {
            let len = dst.len().min(SPLIT_READ_MAX);
            &mut dst[..len]
        } else {
            dst
        };
        let dst_ptr = dst.as_ptr();
        let mut rb = ReadBuf::uninit(dst);
        ready!(Pin::new(&mut self.stream).poll_read(&mut cx, &mut rb))?;
        // A reader could swap in another buffer; then our memory was not written.
        assert_eq!(
            dst_ptr.cast::<u8>(),
            rb.filled().as_ptr(),
            "AsyncRead replaced the read buffer"
        );
        let n = rb.filled().len();
        // SAFETY: `ReadBuf` guarantees its first `n` bytes, which are the first `n` bytes of
        // our spare capacity (checked above), have been initialised.
        #[allow(unsafe_code)]
        unsafe {
            self.read_buf.set_len(self.read_buf.len() + n);
        }
        Poll::Ready(Ok(n))
    }
}

#[cfg(test)]
mod tests {
    //! Memory behaviour that the public API cannot observe: idle connections hold no read
    //! buffer.
    use super::*;
    use switchboard_protocol::Config;
    use tokio::io::AsyncWriteExt;

    fn client_frames(messages: &[Message]) -> Vec<u8> {
        let mut client = Connection::client(Config::default(), || [1, 2, 3, 4]);
        for message in messages {
            client.send(message.clone()).unwrap();
        }
        client.output_chunks_vec().concat()
    }

    #[tokio::test]
    async fn idle_connection_holds_no_read_buffer() {
        let (a, mut b) = tokio::io::duplex(1 << 22);
        let mut core = Core::new(
            a,
            Connection::server(Config::default()),
            &WebSocketConfig::default(),
        );
        let waker = Waker::noop();
        assert_eq!(
            core.read_buf.capacity(),
            0,
            "nothing allocated before the first byte"
        );

        let big = Message::Binary(vec![7u8; 1 << 20].into());
        b.write_all(&client_frames(&[
            big.clone(),
            Message::Text("small".into()),
        ]))
        .await
        .unwrap();
        let mut got = Vec::new();
        while let Poll::Ready(Some(message)) = core.poll_recv(waker, waker) {
            got.push(message.unwrap());
        }
        assert_eq!(got, vec![big, Message::Text("small".into())]);
        assert_eq!(
            core.read_buf.capacity(),
            0,
            "released once drained and waiting"
        );
    }

    #[tokio::test]
    async fn partial_frame_keeps_its_bytes() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut core = Core::new(
            a,
            Connection::server(Config::default()),
            &WebSocketConfig::default(),
        );
        let waker = Waker::noop();
        let frame = client_frames(&[Message::Text("hello there".into())]);
        b.write_all(&frame[..8]).await.unwrap();
        assert!(core.poll_recv(waker, waker).is_pending());
        assert!(
            !core.read_buf.is_empty(),
            "payload received so far stays buffered"
        );
        b.write_all(&frame[8..]).await.unwrap();
        match core.poll_recv(waker, waker) {
            Poll::Ready(Some(Ok(message))) => {
                assert_eq!(message, Message::Text("hello there".into()))
            }
            other => panic!("{other:?}"),
        }
    }
}
#[cfg(test)]
mod size_budget {
    //! What an idle connection costs is mostly the size of these types (its read buffer is
    //! released, see above), so they have a budget: a field that grows them past it should
    //! be boxed or moved out of the hot struct, or the budget raised knowingly.
    use super::Core;
    use std::mem::size_of;

    #[test]
    fn a_websocket_is_one_pointer() {
        // Handlers' futures hold the socket, often twice (async fn arguments get their own
        // slot): boxing the state keeps every task small.
        assert_eq!(
            size_of::<crate::router::ServerWebSocket>(),
            size_of::<usize>()
        );
    }

    #[test]
    fn the_connection_state_fits_its_budget() {
        let core = size_of::<Core<crate::router::ServerStream>>();
        // 384 is an allocator size class (mimalloc's, which the binary uses; glibc's is
        // close): a few bytes more cost 64 per connection. With or without the `tls`
        // feature, which makes `ServerStream` 8 bytes larger.
        assert!(core <= 384, "Core is {core} bytes, budget 384");
        let conn = size_of::<switchboard_protocol::Connection>();
        assert!(conn <= 240, "Connection is {conn} bytes, budget 240");
    }
}
