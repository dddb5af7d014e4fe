//! [`WebSocket::split`]: a reader and a writer for two tasks.
//!
//! # Design
//!
//! Both halves share one [`Core`] (stream, protocol state, read buffer) behind a
//! `std::sync::Mutex`. The lock is taken inside poll functions only, which never block and
//! never `.await`, so it is held for microseconds and never across a suspension point (the
//! mini-redis `db.rs` argument for a synchronous mutex). This costs one uncontended lock per
//! operation and no extra task, no channel and no copy per message, which a driver task
//! would (quinn's alternative, simpler to reason about but slower on the echo path, and it
//! would need a runtime to spawn on).
//!
//! What could take long is kept out of the lock: the reader takes it for one step at a
//! time (a read of at most 256 KiB, which over TLS is also what it decrypts; the parsing of
//! what came in; the hand-off of a compressed frame) and inflates each compressed frame,
//! up to the message size limit, with the lock let go (the protocol core lends the frame
//! and its decompressor out as an `Inflation`, and parses nothing until it is back).
//! Sending meanwhile works as usual: the compressor is the writer's.
//!
//! The reader writes too: pongs and the close echo it produces are flushed by the reader
//! before it waits for input, so they go out even if the writer is idle. When both halves
//! write, a stream keeps only one write waker; so every write goes through a fan-out waker
//! ([`WriteWakers`]) that wakes whichever halves are waiting for the stream to be writable.

use crate::backpressure::TrySendError;
use crate::core::{Core, Room, Step};
use crate::error::Error;
use crate::websocket::Received;
use crate::websocket::WebSocket;
use bytes::Bytes;
use futures_core::Stream;
use futures_sink::Sink;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{ready, Context, Poll, Wake, Waker};
use switchboard_protocol::{CloseCode, CloseFrame, CloseInfo, Message, State};
use tokio::io::{AsyncRead, AsyncWrite};

const READER: usize = 0;
const WRITER: usize = 1;

struct Shared<S> {
    core: Mutex<Box<Core<S>>>,
    /// How the connection ended, copied out of the core once it is over (nothing changes
    /// it then), so both halves can lend it as the whole socket does.
    ended: OnceLock<Option<CloseInfo>>,
    /// The reader's waker while it waits, so the writer can wake it after starting a close
    /// (the reader must start the close timer). Locked only with `core` held.
    reader_waker: Mutex<Option<Waker>>,
    wakers: Arc<WriteWakers>,
    /// A waker for `wakers`, built once: the stream sees the same waker from both halves.
    write_waker: Waker,
}

/// The tasks waiting for the stream to accept writes: slot 0 the reader, slot 1 the writer.
#[derive(Default)]
struct WriteWakers {
    slots: Mutex<[Option<Waker>; 2]>,
}

impl WriteWakers {
    /// Records `waker` for `half` before that half writes, so a wakeup that comes right
    /// after the stream registers interest is not lost.
    fn register(&self, half: usize, waker: &Waker) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match &slots[half] {
            Some(existing) if existing.will_wake(waker) => {}
            _ => slots[half] = Some(waker.clone()),
        }
    }
}

impl Wake for WriteWakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let taken = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            [slots[0].take(), slots[1].take()]
        };
        for waker in taken.into_iter().flatten() {
            waker.wake();
        }
    }
}

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, Box<Core<S>>> {
        // A panic under the lock cannot leave the core half-updated in a way that matters
        // more than the panic itself; keep going rather than poison both halves.
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How the connection ended, once it is over (see [`WebSocketReader::close_info`]).
    fn close_info(&self) -> Option<&CloseInfo> {
        if let Some(ended) = self.ended.get() {
            return ended.as_ref();
        }
        let core = self.lock();
        if !core.is_done() {
            return None;
        }
        let info = core.conn.close_info().cloned();
        drop(core);
        self.ended.get_or_init(|| info).as_ref()
    }

    /// The last keepalive round trip.
    fn latency(&self) -> Option<std::time::Duration> {
        self.lock().latency()
    }

    fn reader_waker(&self) -> MutexGuard<'_, Option<Waker>> {
        self.reader_waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) fn split<S>(ws: WebSocket<S>) -> (WebSocketReader<S>, WebSocketWriter<S>) {
    let wakers = Arc::new(WriteWakers::default());
    let mut core = ws.into_core();
    // Compressed frames are inflated by the reader without the lock (`poll_step`).
    core.conn.defer_inflation(true);
    let shared = Arc::new(Shared {
        core: Mutex::new(core),
        ended: OnceLock::new(),
        reader_waker: Mutex::new(None),
        write_waker: Waker::from(wakers.clone()),
        wakers,
    });
    (
        WebSocketReader {
            shared: shared.clone(),
        },
        WebSocketWriter { shared },
    )
}

/// The receiving half of a [`WebSocket`], from [`WebSocket::split`].
///
/// Keep calling [`recv`](WebSocketReader::recv) (or polling the `Stream`): it also writes
/// the automatic pongs and the close echo.
///
/// ```no_run
/// # async fn run(ws: switchboard::ServerWebSocket) -> Result<(), switchboard::Error> {
/// let (mut reader, mut writer) = ws.split();
/// let printer = tokio::spawn(async move {
///     while let Some(Ok(message)) = reader.recv().await {
///         println!("{message:?}");
///     }
/// });
/// writer.send("hello").await?;
/// printer.await.expect("the reading task panicked");
/// # Ok(()) }
/// ```
pub struct WebSocketReader<S> {
    shared: Arc<Shared<S>>,
}

/// The sending half of a [`WebSocket`], from [`WebSocket::split`].
///
/// ```no_run
/// use std::time::Duration;
/// # async fn run(ws: switchboard::ServerWebSocket) -> Result<(), switchboard::Error> {
/// let (mut reader, mut writer) = ws.split();
/// let ticker = tokio::spawn(async move {
///     let mut tick = tokio::time::interval(Duration::from_secs(1));
///     loop {
///         tick.tick().await;
///         if writer.send("tick").await.is_err() {
///             break; // closed
///         }
///     }
/// });
/// while let Some(Ok(_)) = reader.recv().await {}
/// ticker.abort();
/// # Ok(()) }
/// ```
pub struct WebSocketWriter<S> {
    shared: Arc<Shared<S>>,
}

impl<S> std::fmt::Debug for WebSocketReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketReader").finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for WebSocketWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketWriter").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketReader<S> {
    /// Receives the next message; see [`WebSocket::recv`]. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Like [`WebSocketReader::recv`], but also returns the pings and pongs the peer sends;
    /// see [`WebSocket::recv_with_control`]. Cancel-safe.
    pub async fn recv_with_control(&mut self) -> Option<Result<Received, Error>> {
        poll_fn(|cx| self.poll_received::<true>(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        self.poll_received::<false>(cx).map(|received| {
            received.map(|received| {
                received.map(|received| match received {
                    Received::Message(message) => message,
                    Received::Ping(_) | Received::Pong(_) => {
                        unreachable!("control frames are surfaced only when asked for")
                    }
                })
            })
        })
    }

    /// The reading loop, holding the lock only for each step: a read (at most 256 KiB,
    /// decrypted under the lock), the parsing of what it brought, and the hand-off of a
    /// compressed frame, which is inflated here with the lock let go (up to the message
    /// size limit, 16 MiB by default), so the writer is never held up for that long.
    fn poll_received<const CONTROL: bool>(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Received, Error>>> {
        let shared = &*self.shared;
        shared.wakers.register(READER, cx.waker());
        loop {
            let step = {
                let mut core = shared.lock();
                let step = core.poll_step::<CONTROL, Step>(cx.waker(), &shared.write_waker);
                if step.is_pending() {
                    let mut reader = shared.reader_waker();
                    match &*reader {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => *reader = Some(cx.waker().clone()),
                    }
                }
                step
            };
            match ready!(step) {
                Some(Ok(Step::Received(received))) => return Poll::Ready(Some(Ok(received))),
                Some(Ok(Step::Read)) => {}
                Some(Ok(Step::Inflate(mut job))) => {
                    job.run();
                    if let Some(message) = shared.lock().finish_inflation(job) {
                        return Poll::Ready(Some(Ok(Received::Message(message))));
                    }
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => return Poll::Ready(None),
            }
        }
    }

    /// Whether `writer` is the other half of this reader.
    pub fn is_pair_of(&self, writer: &WebSocketWriter<S>) -> bool {
        Arc::ptr_eq(&self.shared, &writer.shared)
    }

    /// Puts the halves back together.
    ///
    /// # Errors
    ///
    /// Gives both halves back if they come from different connections.
    #[allow(clippy::result_large_err)]
    pub fn reunite(
        self,
        writer: WebSocketWriter<S>,
    ) -> Result<WebSocket<S>, (Self, WebSocketWriter<S>)> {
        if !self.is_pair_of(&writer) {
            return Err((self, writer));
        }
        drop(writer);
        let shared = Arc::try_unwrap(self.shared).unwrap_or_else(|_| {
            unreachable!("both halves were given, so no other reference exists")
        });
        let mut core = shared
            .core
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        core.conn.defer_inflation(false);
        Ok(WebSocket::from_core(core))
    }

    /// How the connection ended (code, reason, who closed, whether cleanly), lent as
    /// [`WebSocket::close_info`] lends it; but only once the connection is over (`recv`
    /// returned `None` or the error that ended it): until then the other half may still
    /// change it, so this is `None`.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.shared.close_info()
    }

    /// The connection's round-trip time from keepalive pings; see [`WebSocket::latency`].
    pub fn latency(&self) -> Option<std::time::Duration> {
        self.shared.latency()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketWriter<S> {
    /// Sends and flushes a message; see [`WebSocket::send`].
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), Error> {
        self.feed(message).await?;
        self.flush().await
    }

    /// Queues a message after waiting for room; see [`WebSocket::feed`]. A named future,
    /// as the whole socket's is.
    ///
    /// Over the high-water mark, the [`SlowConsumer`](crate::SlowConsumer) policy decides.
    pub fn feed(&mut self, message: impl Into<Message>) -> WriterFeed<'_, S> {
        WriterFeed {
            writer: self,
            message: Some(message.into()),
        }
    }

    /// Queues a message without waiting; see [`WebSocket::try_send`].
    pub fn try_send(&mut self, message: impl Into<Message>) -> Result<(), TrySendError> {
        let message = message.into();
        let shared = &*self.shared;
        let mut core = shared.lock();
        // The fan-out waker: a half already waiting for the stream stays registered.
        let waker = &shared.write_waker;
        if core.is_full() {
            if let Poll::Ready(Err(error)) = core.poll_ready(waker) {
                return Err(TrySendError::Failed(error));
            }
            if core.is_full() {
                return Err(TrySendError::Full(message));
            }
        }
        core.queue(message)?;
        if let Poll::Ready(Err(error)) = core.poll_flush(waker) {
            return Err(TrySendError::Failed(error));
        }
        Ok(())
    }

    /// Messages dropped so far under [`SlowConsumer::Drop`](crate::SlowConsumer::Drop).
    pub fn dropped_messages(&self) -> u64 {
        self.shared.lock().dropped()
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        poll_fn(|cx| self.with_core(cx, |core, ww| core.poll_flush(ww))).await
    }

    /// Sends a ping; see [`WebSocket::ping`].
    pub async fn ping(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.send_control(payload.into(), false).await
    }

    /// Sends an unsolicited pong; see [`WebSocket::pong`].
    pub async fn pong(&mut self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.send_control(payload.into(), true).await
    }

    async fn send_control(&mut self, payload: Bytes, pong: bool) -> Result<(), Error> {
        poll_fn(|cx| self.with_core(cx, |core, ww| core.poll_ready(ww))).await?;
        self.shared.lock().queue_control(payload, pong)?;
        self.flush().await
    }

    /// Sends a close frame and flushes it.
    ///
    /// The writer does not read, so it does not wait for the peer's answer: the reader's
    /// `recv` returns `None` once the close handshake is over (or an error after the close
    /// timeout). If the reader half has been dropped, this reads until the peer's close
    /// itself, as [`WebSocket::close`] does.
    pub async fn close(&mut self, code: impl Into<CloseCode>, reason: &str) -> Result<(), Error> {
        {
            let mut core = self.shared.lock();
            core.start_close(Some(CloseFrame::new(code.into(), reason)))?;
            // The reader may be waiting for input; it must start the close timer.
            if let Some(waker) = self.shared.reader_waker().take() {
                waker.wake();
            }
        }
        poll_fn(|cx| self.poll_close(cx)).await
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if Arc::strong_count(&self.shared) == 1 {
            let shared = &*self.shared;
            shared.wakers.register(WRITER, cx.waker());
            let mut core = shared.lock();
            // Alone, the writer reads (and inflates) as the whole socket does.
            core.conn.defer_inflation(false);
            return core.poll_close(cx.waker(), &shared.write_waker);
        }
        self.with_core(cx, |core, ww| match core.poll_flush(ww) {
            // Closed: the reader already finished the handshake; nothing left to do.
            Poll::Ready(Err(e)) if e.is_closed() => Poll::Ready(Ok(())),
            other => other,
        })
    }

    fn with_core<T>(&self, cx: &mut Context<'_>, f: impl FnOnce(&mut Core<S>, &Waker) -> T) -> T {
        let shared = &*self.shared;
        shared.wakers.register(WRITER, cx.waker());
        let mut core = shared.lock();
        f(&mut core, &shared.write_waker)
    }

    /// How the connection ended, once it is over; see [`WebSocketReader::close_info`].
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.shared.close_info()
    }

    /// The connection's round-trip time from keepalive pings; see [`WebSocket::latency`].
    pub fn latency(&self) -> Option<std::time::Duration> {
        self.shared.latency()
    }

    /// Bytes queued but not yet written (the browser's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        self.shared.lock().conn.buffered_amount()
    }

    /// The state of the close handshake.
    pub fn state(&self) -> State {
        self.shared.lock().conn.state()
    }
}

/// The future of [`WebSocketWriter::feed`]: resolves once the message is queued (or
/// dropped or refused by the [`SlowConsumer`](crate::SlowConsumer) policy). Dropping it
/// before then queues nothing.
///
/// ```no_run
/// # async fn run(ws: switchboard::ServerWebSocket) -> Result<(), switchboard::Error> {
/// let (_reader, mut writer) = ws.split();
/// for i in 0..10 {
///     writer.feed(format!("{i}")).await?; // queued, not yet written
/// }
/// writer.flush().await?; // one write for all ten
/// # Ok(()) }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct WriterFeed<'a, S> {
    writer: &'a mut WebSocketWriter<S>,
    message: Option<Message>,
}

impl<S> std::fmt::Debug for WriterFeed<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterFeed").finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for WriterFeed<'_, S> {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let message = &mut this.message;
        // One lock for the room check and the queueing.
        this.writer.with_core(cx, |core, ww| {
            let room = ready!(core.poll_room(ww))?;
            let Some(message) = message.take() else {
                panic!("`WriterFeed` polled after it completed");
            };
            Poll::Ready(match room {
                Room::Free => core.queue(message),
                Room::Full => core.overflow(),
            })
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocketReader<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocketWriter<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.with_core(cx, |core, ww| core.poll_ready(ww))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.shared.lock().queue(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.with_core(cx, |core, ww| core.poll_flush(ww))
    }

    /// Sends a close frame with 1000 (Normal Closure) and flushes it; see
    /// [`WebSocketWriter::close`].
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        {
            let mut core = this.shared.lock();
            core.start_close(Some(CloseFrame::new(CloseCode::NORMAL, "")))?;
            if let Some(waker) = this.shared.reader_waker().take() {
                waker.wake();
            }
        }
        this.poll_close(cx)
    }
}
