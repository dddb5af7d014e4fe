//! The connection state machine: frames in, events out; commands in, bytes out.

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::deflate::{Decompressor, Deflate, DeflateParams, InflateError};
use crate::error::{ProtocolError, SendError};
use crate::frame::{
    apply_mask, unmask_checking_ascii, FrameHeader, HeaderError, OpCode, Role, MAX_HEADER_LEN,
    VECTOR_MIN,
};
use crate::message::Message;
use crate::utf8::{Utf8Bytes, Utf8Validator};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::mem::ManuallyDrop;

/// What the peer sent, as the application sees it.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_protocol::{Config, Connection, Event};
///
/// let mut server = Connection::server(Config::default());
/// // A masked ping "hi" (with an all-zero key, so the payload stays readable).
/// let mut buf = BytesMut::from(&b"\x89\x82\0\0\0\0hi"[..]);
/// while let Some(event) = server.poll_event(&mut buf)? {
///     match event {
///         Event::Message(message) => println!("{} bytes", message.len()),
///         Event::Ping(payload) => assert_eq!(payload, "hi"),
///         Event::Pong(_) => {}
///         Event::Close(frame) => println!("the peer closed: {frame:?}"),
///     }
/// }
/// assert_eq!(server.output_chunks_vec().concat(), b"\x8a\x02hi"); // the pong, queued
/// # Ok::<(), switchboard_protocol::ProtocolError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text or binary message.
    Message(Message),
    /// A ping. The pong is already queued; this is for visibility.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The peer's close frame (`None`: it carried no status code). If we had not sent a
    /// close frame yet, the reply is already queued.
    Close(Option<CloseFrame>),
}

/// Lifecycle of a connection after the handshake (RFC 6455 §7).
///
/// ```
/// use switchboard_protocol::{Config, Connection, State};
///
/// let mut server = Connection::server(Config::default());
/// assert_eq!(server.state(), State::Open);
/// server.close(None)?; // our close frame is queued; the peer's has not come yet
/// assert_eq!(server.state(), State::Closing);
/// server.handle_eof(); // the transport ended instead
/// assert_eq!(server.state(), State::Closed);
/// # Ok::<(), switchboard_protocol::SendError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    Closing,
    /// Both close frames were exchanged, or the connection failed.
    Closed,
}

/// Who started the close.
///
/// ```
/// use switchboard_protocol::{Config, Connection, Initiator};
///
/// let mut server = Connection::server(Config::default());
/// server.close(None)?;
/// let who = match server.close_info().map(|info| info.initiator) {
///     Some(Initiator::Local) => "we closed",
///     Some(Initiator::Remote) => "the peer closed",
///     None => "still open",
/// };
/// assert_eq!(who, "we closed");
/// # Ok::<(), switchboard_protocol::SendError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// This end (the application, or the library on a protocol error).
    Local,
    /// The peer.
    Remote,
}

/// How a connection ended.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_protocol::{CloseCode, Config, Connection, Initiator};
///
/// let mut server = Connection::server(Config::default());
/// assert!(server.close_info().is_none()); // open
/// // The client's masked close frame with code 1000 (zero key: the payload reads as is).
/// let mut buf = BytesMut::from(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8][..]);
/// server.poll_event(&mut buf)?; // our reply is queued: the close handshake is complete
/// let info = server.close_info().expect("closing");
/// assert_eq!(info.code, CloseCode::NORMAL);
/// assert_eq!(info.initiator, Initiator::Remote);
/// assert!(info.clean);
/// # Ok::<(), switchboard_protocol::ProtocolError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The code: the peer's if the peer closed first, ours otherwise; 1005 when a close frame
    /// had no code, 1006 when the transport ended without a close frame.
    pub code: CloseCode,
    /// The reason that came with the code.
    pub reason: String,
    /// Who started the close.
    pub initiator: Initiator,
    /// Whether both close frames were exchanged.
    pub clean: bool,
}

/// A data message encoded once as an unmasked, uncompressed frame, to be sent to many
/// connections with [`Connection::send_prepared`]. Cloning it is cheap.
///
/// ```
/// use switchboard_protocol::{Config, Connection, Message, PreparedMessage};
///
/// let tick = PreparedMessage::new(Message::from("tick")); // encoded once
/// assert_eq!(&tick.frame()[..], b"\x81\x04tick");
/// let mut subscribers: Vec<Connection> =
///     (0..3).map(|_| Connection::server(Config::default())).collect();
/// for subscriber in &mut subscribers {
///     subscriber.send_prepared(&tick)?; // queues the shared bytes, without a copy
/// }
/// assert_eq!(subscribers[2].output_chunks_vec().concat(), b"\x81\x04tick");
/// # Ok::<(), switchboard_protocol::SendError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PreparedMessage {
    message: Message,
    frame: Bytes,
}

impl PreparedMessage {
    /// Encodes `message` as a server frame.
    pub fn new(message: Message) -> Self {
        let (opcode, payload) = match &message {
            Message::Text(text) => (OpCode::Text, text.as_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes),
        };
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        let mut frame = BytesMut::with_capacity(header.encoded_len() + payload.len());
        let mut head = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut head);
        frame.extend_from_slice(&head[..n]);
        frame.extend_from_slice(payload);
        PreparedMessage {
            message,
            frame: frame.freeze(),
        }
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The encoded server frame.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }
}

/// One WebSocket connection after the opening handshake, sans I/O.
///
/// Methods come in four kinds (the quinn-proto habit): **inputs** ([`poll_event`] parses what
/// the transport delivered, [`handle_eof`]), **commands** ([`send`], [`ping`], [`pong`],
/// [`close`]), **outputs** ([`output_chunks`], [`advance_output`],
/// [`should_close_transport`]) and **getters**.
///
/// # Driving recipe
///
/// 1. Append bytes read from the transport to a `BytesMut` and call [`poll_event`] with it
///    until it returns `Ok(None)`. Pass the same buffer every time, changed only by appending:
///    the connection unmasks and validates a frame's payload in place as it arrives.
/// 2. After any input or command, write [`output_chunks`] to the transport (vectored if you
///    can) and report what went out with [`advance_output`].
/// 3. When [`should_close_transport`] is true, close the transport. A client whose close
///    handshake is done waits for the server to close TCP (§7.1.1) — with a timeout, which is
///    the shell's business — and calls [`handle_eof`] when it does.
///
/// # States (RFC 6455 §7)
///
/// ```text
///            close() / protocol error          peer's Close
///   Open ─────────────────────────────► Closing ─────────────► Closed
///     │                                                         ▲
///     └──────────── peer's Close (reply queued) / EOF ──────────┘
/// ```
///
/// # Example
///
/// A client and a server talking through a buffer instead of a socket (see the
/// [crate documentation](crate) for a server reading real bytes):
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_protocol::{Config, Connection, Event, Message, State};
///
/// // A fixed key keeps the example short; a real client draws each one from a CSPRNG.
/// let mut client = Connection::client(Config::default(), || [0x37, 0xfa, 0x21, 0x3d]);
/// let mut server = Connection::server(Config::default());
/// client.send(Message::from("hello"))?;
/// client.close(None)?;
/// // The "transport": hand the client's queued bytes to the server.
/// let mut wire = BytesMut::from(&client.output_chunks_vec().concat()[..]);
/// client.advance_output(wire.len());
/// assert_eq!(server.poll_event(&mut wire)?, Some(Event::Message("hello".into())));
/// assert_eq!(server.poll_event(&mut wire)?, Some(Event::Close(None)));
/// assert_eq!(server.state(), State::Closed); // and its reply is queued for the client
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`poll_event`]: Connection::poll_event
/// [`handle_eof`]: Connection::handle_eof
/// [`send`]: Connection::send
/// [`ping`]: Connection::ping
/// [`pong`]: Connection::pong
/// [`close`]: Connection::close
/// [`output_chunks`]: Connection::output_chunks
/// [`advance_output`]: Connection::advance_output
/// [`should_close_transport`]: Connection::should_close_transport
pub struct Connection {
    role: Role,
    config: Config,
    /// Set once our close frame is queued: RFC 6455 §5.5.1 forbids any frame after it.
    close_sent: bool,
    /// Set once the peer's close frame arrived; input after it is discarded.
    close_received: bool,
    /// A protocol error happened: close the transport as soon as our close frame is out.
    failed: bool,
    /// The transport ended.
    eof: bool,
    /// Boxed: set once, at the end; an open connection should not carry its space.
    close_info: Option<Box<CloseInfo>>,
    /// Client only: a fresh masking key per frame.
    mask_key: Option<Box<dyn FnMut() -> [u8; 4] + Send>>,
    /// Boxed: most connections do not negotiate it.
    deflate: Option<Box<Deflate>>,
    /// The frame whose header has been consumed but whose payload is still arriving.
    frame: Option<InFrame>,
    /// The data message being received (from its first frame to the frame with FIN).
    message: Option<Assembly>,
    out: OutQueue,
}

#[derive(Debug, Clone, Copy)]
struct InFrame {
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
    /// Payload bytes at the front of the buffer already unmasked (and, for uncompressed
    /// text, validated), so nothing is done twice when the rest arrives.
    processed: usize,
}

#[derive(Debug)]
struct Assembly {
    text: bool,
    compressed: bool,
    /// Fragments so far (inflated, if compressed). Stays empty for an unfragmented,
    /// uncompressed message, whose payload is handed out without a copy.
    data: BytesMut,
    /// Bytes received so far, for the message size limit before decompression.
    wire_len: usize,
    utf8: Utf8Validator,
    /// A frame of it is being inflated elsewhere (an [`Inflation`] is out): parse nothing
    /// more until it is back.
    inflating: bool,
}

/// One frame of a compressed message, with the decompressor, to inflate away from the
/// [`Connection`]: for a shell that shares the connection between a reader and a writer
/// under a lock, so that inflating (up to the message size limit) does not hold the lock.
///
/// After [`Connection::defer_inflation`], [`Connection::poll_event`] answers `Ok(None)`
/// when a compressed frame is complete and [`Connection::take_inflation`] hands it out;
/// [`Inflation::run`] inflates it (and checks the UTF-8 of text), with no access to the
/// connection; [`Connection::finish_inflation`] takes it back and gives the event (the
/// message, once its last frame is back) or the protocol error. Meanwhile the connection
/// parses nothing, and sending goes on as usual.
///
/// ```
/// use bytes::BytesMut;
/// use switchboard_protocol::deflate::DeflateParams;
/// use switchboard_protocol::{Config, Connection, Event, Message};
///
/// let params = DeflateParams {
///     server_no_context_takeover: false,
///     client_no_context_takeover: false,
///     server_max_window_bits: 15,
///     client_max_window_bits: 15,
/// };
/// let mut client = Connection::client(Config::default(), || [7; 4]).with_deflate(params);
/// let mut server = Connection::server(Config::default()).with_deflate(params);
/// server.defer_inflation(true);
/// let text = "hello ".repeat(100);
/// client.send(Message::from(text.as_str()))?;
/// let mut wire = BytesMut::from(&client.output_chunks_vec().concat()[..]);
///
/// assert_eq!(server.poll_event(&mut wire)?, None);
/// let mut job = server.take_inflation().expect("a compressed frame");
/// job.run(); // no lock needed: the connection is not touched
/// match server.finish_inflation(job)? {
///     Some(Event::Message(message)) => assert_eq!(message.as_text(), Some(text.as_str())),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Inflation(Box<InflationJob>);

struct InflationJob {
    decompressor: Decompressor,
    payload: BytesMut,
    fin: bool,
    text: bool,
    max: usize,
    /// The message so far (inflated), and its UTF-8 state.
    data: BytesMut,
    utf8: Utf8Validator,
    /// `None` until [`Inflation::run`].
    result: Option<Result<(), ProtocolError>>,
}

impl std::fmt::Debug for Inflation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflation")
            .field("payload", &self.0.payload.len())
            .field("fin", &self.0.fin)
            .field("inflated", &self.0.result.is_some())
            .finish_non_exhaustive()
    }
}

impl Inflation {
    /// Inflates the frame (once; later calls do nothing). The result waits for
    /// [`Connection::finish_inflation`].
    pub fn run(&mut self) {
        let job = &mut *self.0;
        if job.result.is_none() {
            job.result = Some(inflate_frame(
                &mut job.decompressor,
                &job.payload,
                job.fin,
                job.max,
                job.text.then_some(&mut job.utf8),
                &mut job.data,
            ));
        }
    }

    /// The compressed bytes of the frame.
    pub fn compressed_len(&self) -> usize {
        self.0.payload.len()
    }
}

/// Inflates one frame of a compressed message into `data` within the size limit `max`,
/// checking the UTF-8 of what it adds with `utf8` (text only).
fn inflate_frame(
    decompressor: &mut Decompressor,
    payload: &[u8],
    fin: bool,
    max: usize,
    utf8: Option<&mut Utf8Validator>,
    data: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let before = data.len();
    decompressor
        .decompress(payload, fin, max, data)
        .map_err(|e| match e {
            InflateError::TooBig => ProtocolError::MessageTooBig {
                size: max as u64 + 1,
                max,
            },
            InflateError::Corrupt => ProtocolError::InflateFailed,
        })?;
    if let Some(utf8) = utf8 {
        utf8.feed(&data[before..])
            .map_err(|_| ProtocolError::InvalidUtf8)?;
    }
    Ok(())
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state())
            .field("buffered_amount", &self.out.len)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A server-side connection.
    pub fn server(config: Config) -> Self {
        Self::new(Role::Server, config, None)
    }

    /// A client-side connection; `mask_key` is called once per frame for its masking key
    /// and must return unpredictable values (RFC 6455 §5.3: "derived from a strong source of
    /// entropy").
    pub fn client(config: Config, mask_key: impl FnMut() -> [u8; 4] + Send + 'static) -> Self {
        Self::new(Role::Client, config, Some(Box::new(mask_key)))
    }

    fn new(
        role: Role,
        config: Config,
        mask_key: Option<Box<dyn FnMut() -> [u8; 4] + Send>>,
    ) -> Self {
        Connection {
            role,
            config,
            close_sent: false,
            close_received: false,
            failed: false,
            eof: false,
            close_info: None,
            mask_key,
            deflate: None,
            frame: None,
            message: None,
            out: OutQueue::default(),
        }
    }

    /// Turns on permessage-deflate with the parameters the handshake agreed on. The codec's
    /// policy (level, threshold) comes from [`Config::deflate`], or its default.
    pub fn with_deflate(mut self, params: DeflateParams) -> Self {
        let policy = self.config.deflate.clone().unwrap_or_default();
        self.deflate = Some(Box::new(Deflate::new(self.role, params, &policy)));
        self
    }

    /// Whether permessage-deflate is on.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// With `on`, compressed frames are not inflated by [`Connection::poll_event`] but
    /// handed out as an [`Inflation`] (see there). Off by default; no effect without
    /// permessage-deflate.
    pub fn defer_inflation(&mut self, on: bool) {
        if let Some(deflate) = &mut self.deflate {
            deflate.defer = on;
        }
    }

    /// The compressed frame [`Connection::poll_event`] stopped at (it answered `Ok(None)`),
    /// under [`Connection::defer_inflation`]. Until it comes back through
    /// [`Connection::finish_inflation`], `poll_event` parses nothing.
    pub fn take_inflation(&mut self) -> Option<Inflation> {
        self.deflate.as_mut()?.pending.take()
    }

    /// Takes back an [`Inflation`] (running it first if it has not run): the message once
    /// its last frame is in, `Ok(None)` while more frames are to come or if the connection
    /// ended meanwhile, or the protocol error, after which the connection has failed as
    /// with `poll_event`'s.
    pub fn finish_inflation(&mut self, mut job: Inflation) -> Result<Option<Event>, ProtocolError> {
        job.run();
        let job = *job.0;
        if let Some(deflate) = &mut self.deflate {
            deflate.return_decompressor(job.decompressor);
        }
        // The connection failed or ended while the frame was out: it is discarded.
        let Some(message) = self.message.as_mut().filter(|m| m.inflating) else {
            return Ok(None);
        };
        message.inflating = false;
        message.data = job.data;
        message.utf8 = job.utf8;
        let finished = job.result.expect("run above").and_then(|()| match job.fin {
            true => self.finish_message(BytesMut::new()),
            false => Ok(None),
        });
        if let Err(error) = &finished {
            self.fail(error);
        }
        finished
    }

    // ----- inputs -----

    /// Parses the next event from `buf`, consuming the bytes it used. `Ok(None)`: more input
    /// is needed, or the connection is closed and discards input.
    ///
    /// `Err` means the peer broke the protocol: the close frame with
    /// [`ProtocolError::close_code`] is already queued, the state is [`State::Closed`], and
    /// [`Connection::should_close_transport`] turns true once the output is written.
    #[inline]
    pub fn poll_event(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        // The shell asks after every read and before every wait, so most calls find nothing:
        // answer those without the full parser's frame. (A zero-length frame is finished in
        // the call that consumed its header, so an empty buffer never completes a frame.)
        if buf.is_empty() {
            return Ok(None);
        }
        self.poll_event_in(buf)
    }

    fn poll_event_in(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        // A whole message in one frame, with no frame or message in progress and input
        // still wanted: `parse` would take `whole_message` first too. Here without the
        // general parser's state, so the usual call is a small one.
        if self.frame.is_none()
            && self.message.is_none()
            && !(self.close_received || self.failed || self.eof)
        {
            match self.whole_message(buf) {
                Some(Ok(event)) => return Ok(Some(event)),
                Some(Err(error)) => return Err(self.failed_on(error, buf)),
                None => {}
            }
        }
        self.poll_event_general(buf)
    }

    /// [`Connection::poll_event`] for everything but a whole message in one frame.
    #[inline(never)]
    fn poll_event_general(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        match self.parse(buf) {
            Ok(event) => Ok(event),
            Err(error) => Err(self.failed_on(error, buf)),
        }
    }

    /// The peer broke the protocol: fail the connection, discard its input, hand the error
    /// back.
    #[cold]
    fn failed_on(&mut self, error: ProtocolError, buf: &mut BytesMut) -> ProtocolError {
        self.fail(&error);
        buf.clear();
        error
    }

    fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        loop {
            if self.close_received || self.failed || self.eof {
                // §5.5.1: after the peer's Close, "the endpoint ... MUST NOT" expect more
                // frames; anything that still arrives is discarded.
                buf.clear();
                return Ok(None);
            }
            if self.frame.is_none() && self.message.is_none() {
                if let Some(event) = self.whole_message(buf) {
                    return event.map(Some);
                }
            } else if self.message.as_ref().is_some_and(|m| m.inflating) {
                // A frame is out being inflated (`take_inflation`): wait for it.
                return Ok(None);
            }
            let frame = match self.frame {
                Some(frame) => frame,
                None => {
                    let Some((header, header_len)) =
                        FrameHeader::parse(buf).map_err(|e| match e {
                            HeaderError::ReservedOpcode(op) => ProtocolError::ReservedOpcode(op),
                            HeaderError::LengthTopBit => ProtocolError::LengthTopBit,
                        })?
                    else {
                        return Ok(None);
                    };
                    let frame = self.start_frame(&header)?;
                    buf.advance(header_len);
                    self.frame = Some(frame);
                    frame
                }
            };
            let available = buf.len().min(frame.len);
            if available > frame.processed {
                self.process_payload(&mut buf[frame.processed..available], frame)?;
                if let Some(f) = self.frame.as_mut() {
                    f.processed = available;
                }
            }
            if available < frame.len {
                return Ok(None);
            }
            self.frame = None;
            // Split, not taken: the buffer keeps its allocation, and once the application
            // drops the message the shell can reuse it without allocating.
            let payload = buf.split_to(frame.len);
            if let Some(event) = self.finish_frame(frame, payload)? {
                return Ok(Some(event));
            }
            if self.message.as_ref().is_some_and(|m| m.inflating) {
                return Ok(None);
            }
        }
    }

    /// The common case in one step: the buffer holds a whole message in one frame (FIN,
    /// no RSV bits, text or binary, masked as the role requires, within the limits, with
    /// a 7- or 16-bit length). It is unmasked, validated and split off without the
    /// per-frame state the general parser keeps for frames that arrive in pieces. `None`:
    /// not that case, nothing was consumed, and the general parser decides (including
    /// every error but invalid UTF-8, which is the same error either way).
    #[inline]
    fn whole_message(&mut self, buf: &mut BytesMut) -> Option<Result<Event, ProtocolError>> {
        let bytes = &buf[..];
        let (&b0, &b1) = (bytes.first()?, bytes.get(1)?);
        let text = match b0 {
            0x81 => true,
            0x82 => false,
            _ => return None,
        };
        let masked = b1 & 0x80 != 0;
        if masked != (self.role == Role::Server) {
            return None;
        }
        let (len, mut header_len) = match b1 & 0x7f {
            127 => return None,
            126 => (
                usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
                4,
            ),
            n => (usize::from(n), 2),
        };
        let key = if masked {
            let key: [u8; 4] = bytes.get(header_len..header_len + 4)?.try_into().ok()?;
            header_len += 4;
            Some(key)
        } else {
            None
        };
        if bytes.len() - header_len < len
            || len > self.config.max_frame_size
            || len > self.config.max_message_size
        {
            return None;
        }
        // Split, not taken: the buffer keeps its allocation, and once the application
        // drops the message the shell can reuse it without allocating. Header and payload
        // leave in one split, and the header is stepped over in the frozen `Bytes` (pointer
        // arithmetic, inline), not with a second split.
        let mut frame = buf.split_to(header_len + len);
        let payload = &mut frame[header_len..];
        let ascii = match key {
            // The usual short message: unmasked and found ASCII in one pass.
            Some(key) if payload.len() < VECTOR_MIN => unmask_checking_ascii(payload, key),
            Some(key) => {
                apply_mask(payload, key, 0);
                text && payload.is_ascii()
            }
            None => text && payload.is_ascii(),
        };
        if text && !ascii && simdutf8::basic::from_utf8(payload).is_err() {
            return Some(Err(ProtocolError::InvalidUtf8));
        }
        let mut payload = frame.freeze();
        payload.advance(header_len);
        if !text {
            return Some(Ok(Event::Message(Message::Binary(payload))));
        }
        Some(Ok(Event::Message(Message::Text(
            Utf8Bytes::from_validated(payload),
        ))))
    }

    /// Checks everything the header decides, given the connection's state (§5.1–§5.5).
    fn start_frame(&mut self, header: &FrameHeader) -> Result<InFrame, ProtocolError> {
        match (self.role, header.mask.is_some()) {
            // §5.1: "a server MUST close the connection upon receiving a frame that is not
            // masked"; "a client MUST close a connection if it detects a masked frame".
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        // §5.2: RSV bits "MUST be 0 unless an extension is negotiated that defines meanings
        // for non-zero values"; RFC 7692 §6 defines RSV1 on the first frame of a data message.
        let starts_message = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        let allowed_rsv = if self.deflate.is_some() && starts_message {
            0b100
        } else {
            0
        };
        if header.rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        if header.opcode.is_control() {
            // §5.5: "All control frames MUST have a payload length of 125 bytes or less and
            // MUST NOT be fragmented."
            if !header.fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if header.payload_len > 125 {
                return Err(ProtocolError::ControlTooLong(header.payload_len));
            }
        }
        if header.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooBig {
                size: header.payload_len,
                max: self.config.max_frame_size,
            });
        }
        let len = header.payload_len as usize;
        match header.opcode {
            OpCode::Continuation => {
                let Some(message) = self.message.as_mut() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                message.wire_len += len;
                if !message.compressed && message.wire_len > self.config.max_message_size {
                    return Err(ProtocolError::MessageTooBig {
                        size: message.wire_len as u64,
                        max: self.config.max_message_size,
                    });
                }
            }
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                let compressed = header.rsv & 0b100 != 0;
                if !compressed && len > self.config.max_message_size {
                    return Err(ProtocolError::MessageTooBig {
                        size: len as u64,
                        max: self.config.max_message_size,
                    });
                }
                self.message = Some(Assembly {
                    text: header.opcode == OpCode::Text,
                    compressed,
                    data: BytesMut::new(),
                    wire_len: len,
                    utf8: Utf8Validator::new(),
                    inflating: false,
                });
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => {}
        }
        Ok(InFrame {
            fin: header.fin,
            opcode: header.opcode,
            mask: header.mask,
            len,
            processed: 0,
        })
    }

    /// Unmasks newly arrived payload bytes and, for uncompressed text, validates them now,
    /// so invalid UTF-8 fails the connection before the rest of the frame arrives (§8.1).
    fn process_payload(&mut self, bytes: &mut [u8], frame: InFrame) -> Result<(), ProtocolError> {
        if let Some(key) = frame.mask {
            apply_mask(bytes, key, frame.processed);
        }
        if frame.opcode.is_control() {
            return Ok(());
        }
        if let Some(message) = self.message.as_mut() {
            if message.text && !message.compressed {
                message
                    .utf8
                    .feed(bytes)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
            }
        }
        Ok(())
    }

    fn finish_frame(
        &mut self,
        frame: InFrame,
        payload: BytesMut,
    ) -> Result<Option<Event>, ProtocolError> {
        match frame.opcode {
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                self.finish_data_frame(frame, payload)
            }
            OpCode::Ping => {
                let payload = payload.freeze();
                if !self.close_sent {
                    // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame
                    // in response" with "identical Application data".
                    self.queue_frame(OpCode::Pong, false, payload.clone());
                }
                Ok(Some(Event::Ping(payload)))
            }
            OpCode::Pong => Ok(Some(Event::Pong(payload.freeze()))),
            OpCode::Close => self.receive_close(&payload).map(Some),
        }
    }

    fn finish_data_frame(
        &mut self,
        frame: InFrame,
        payload: BytesMut,
    ) -> Result<Option<Event>, ProtocolError> {
        let max = self.config.max_message_size;
        let message = self
            .message
            .as_mut()
            .expect("a data frame always has a message in progress");
        if message.compressed {
            let deflate = self
                .deflate
                .as_mut()
                .expect("RSV1 is only accepted with deflate negotiated");
            if deflate.defer {
                // Handed out whole, to be inflated elsewhere (see `Inflation`).
                message.inflating = true;
                deflate.pending = Some(Inflation(Box::new(InflationJob {
                    decompressor: deflate.lend_decompressor(),
                    payload,
                    fin: frame.fin,
                    text: message.text,
                    max,
                    data: std::mem::take(&mut message.data),
                    utf8: std::mem::take(&mut message.utf8),
                    result: None,
                })));
                return Ok(None);
            }
            inflate_frame(
                deflate.decompressor_mut(),
                &payload,
                frame.fin,
                max,
                message.text.then_some(&mut message.utf8),
                &mut message.data,
            )?;
        } else if !frame.fin || !message.data.is_empty() {
            message.data.extend_from_slice(&payload);
        }
        if !frame.fin {
            return Ok(None);
        }
        self.finish_message(payload)
    }

    /// The message in progress is complete (its last frame's `payload` is its data if it
    /// was neither fragmented nor compressed).
    fn finish_message(&mut self, payload: BytesMut) -> Result<Option<Event>, ProtocolError> {
        let mut message = self.message.take().expect("a message is in progress");
        let data = if message.compressed || !message.data.is_empty() {
            message.data
        } else {
            payload
        };
        let data = data.freeze();
        if message.text {
            message
                .utf8
                .finish()
                .map_err(|_| ProtocolError::InvalidUtf8)?;
            Ok(Some(Event::Message(Message::Text(
                Utf8Bytes::from_validated(data),
            ))))
        } else {
            Ok(Some(Event::Message(Message::Binary(data))))
        }
    }

    /// §5.5.1 and §7.1.5: parse the peer's close, answer it once, and finish the handshake.
    fn receive_close(&mut self, payload: &[u8]) -> Result<Event, ProtocolError> {
        let frame = match payload.len() {
            0 => None,
            1 => return Err(ProtocolError::InvalidClosePayload),
            _ => {
                let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_valid_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason =
                    std::str::from_utf8(&payload[2..]).map_err(|_| ProtocolError::InvalidUtf8)?;
                Some(CloseFrame::new(code, reason))
            }
        };
        self.close_received = true;
        self.frame = None;
        self.message = None;
        if self.close_sent {
            if let Some(info) = self.close_info.as_mut() {
                info.clean = true;
            }
        } else {
            // §5.5.1: "the endpoint MUST send a Close frame in response", typically
            // "echoing the status code it received".
            let payload = frame.as_ref().map(encode_close_payload).unwrap_or_default();
            self.queue_frame(OpCode::Close, false, payload);
            self.close_sent = true;
            self.close_info = Some(Box::new(CloseInfo {
                code: frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code),
                reason: frame
                    .as_ref()
                    .map_or_else(String::new, |f| f.reason.to_string()),
                initiator: Initiator::Remote,
                clean: true,
            }));
        }
        Ok(Event::Close(frame))
    }

    /// _Fail the WebSocket Connection_ (§7.1.7): send a close frame if we still may, then
    /// drop the connection.
    fn fail(&mut self, error: &ProtocolError) {
        let code = error.close_code();
        if !self.close_sent {
            let reason = truncate_utf8(&error.to_string(), CloseFrame::MAX_REASON_LEN).to_owned();
            let frame = CloseFrame::new(code, reason.as_str());
            self.queue_frame(OpCode::Close, false, encode_close_payload(&frame));
            self.close_sent = true;
            self.close_info = Some(Box::new(CloseInfo {
                code,
                reason,
                initiator: Initiator::Local,
                clean: false,
            }));
        }
        self.failed = true;
        self.frame = None;
        self.message = None;
    }

    /// The transport reached end of file. Without a finished close handshake the connection
    /// closed abnormally (1006).
    pub fn handle_eof(&mut self) {
        self.eof = true;
        self.frame = None;
        self.message = None;
        if !self.close_received && !self.failed {
            let initiator = self
                .close_info
                .as_ref()
                .map_or(Initiator::Remote, |i| i.initiator);
            self.close_info = Some(Box::new(CloseInfo {
                code: CloseCode::ABNORMAL,
                reason: String::new(),
                initiator,
                clean: false,
            }));
        }
    }

    // ----- commands -----

    /// Queues a data message, compressed if permessage-deflate is on and the message is
    /// above the threshold.
    // Always inline: its usual case is a few tests and a copy, and the call and the moves of
    // the `Message` into it cost more (20 B echo: 1,723 -> 1,711 instructions per message).
    #[inline(always)]
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        let (opcode, payload) = match message {
            Message::Text(text) => (OpCode::Text, text.into_bytes()),
            Message::Binary(bytes) => (OpCode::Binary, bytes),
        };
        // The common case, inline at the caller: a server's small frame (no mask, no
        // deflate, no chunk of its own), two header bytes and a copy into the tail.
        if payload.len() <= usize::from(MAX_SHORT_LEN)
            && payload.len() < self.config.vectored_write_threshold
            && self.mask_key.is_none()
            && self.deflate.is_none()
        {
            self.out.push_short(opcode, &payload);
            return Ok(());
        }
        self.send_general(opcode, payload)
    }

    /// [`Connection::send`] for every frame its inline case does not take.
    fn send_general(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        if let Some(deflate) = self.deflate.as_mut() {
            if deflate.should_compress(payload.len()) {
                let mut compressed = BytesMut::new();
                deflate.compress(&payload, &mut compressed);
                self.queue_frame(opcode, true, compressed.freeze());
                return Ok(());
            }
        }
        self.queue_frame(opcode, false, payload);
        Ok(())
    }

    /// Queues a message encoded once for many connections (fan-out). On a server connection
    /// without compression for this message, the shared frame bytes are queued as they are,
    /// with no copy and no re-encoding; otherwise (a client must mask per connection, and a
    /// deflate context is per connection) the message is encoded as by [`Connection::send`].
    pub fn send_prepared(&mut self, prepared: &PreparedMessage) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        let compress = self
            .deflate
            .as_ref()
            .is_some_and(|d| d.should_compress(prepared.message.len()));
        if self.role == Role::Client || compress {
            return self.send(prepared.message.clone());
        }
        self.out
            .push_encoded(prepared.frame.clone(), self.config.vectored_write_threshold);
        Ok(())
    }

    /// Queues a ping with up to 125 bytes of payload.
    pub fn ping(&mut self, payload: Bytes) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong (a unidirectional heartbeat, §5.5.3).
    pub fn pong(&mut self, payload: Bytes) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        if payload.len() > 125 {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        self.queue_frame(opcode, false, payload);
        Ok(())
    }

    /// Starts the close handshake with an optional code and reason. Afterwards no data may be
    /// sent, but messages the peer sent before its close still arrive.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        if self.close_sent {
            return Err(SendError::Closed);
        }
        if let Some(frame) = &frame {
            if !frame.code.is_valid_on_wire() {
                return Err(SendError::InvalidCloseCode(frame.code.0));
            }
            if frame.reason.len() > CloseFrame::MAX_REASON_LEN {
                return Err(SendError::ReasonTooLong(frame.reason.len()));
            }
        }
        let payload = frame.as_ref().map(encode_close_payload).unwrap_or_default();
        self.queue_frame(OpCode::Close, false, payload);
        self.close_sent = true;
        self.close_info = Some(Box::new(CloseInfo {
            code: frame.as_ref().map_or(CloseCode::NO_STATUS, |f| f.code),
            reason: frame
                .as_ref()
                .map_or_else(String::new, |f| f.reason.to_string()),
            initiator: Initiator::Local,
            clean: false,
        }));
        Ok(())
    }

    fn queue_frame(&mut self, opcode: OpCode, compressed: bool, payload: Bytes) {
        let mask = self.mask_key.as_mut().map(|next| next());
        let header = FrameHeader {
            fin: true,
            rsv: if compressed { 0b100 } else { 0 },
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        self.out
            .push_frame(&header, payload, self.config.vectored_write_threshold);
    }

    // ----- outputs -----

    /// Fills `dst` with the queued output, oldest first; returns how many slices were used.
    pub fn output_chunks<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.out.chunks(dst)
    }

    /// How many more bytes the frame being received needs, given that `buffered` bytes of
    /// it (the bytes the shell holds for [`Connection::poll_event`]) have arrived; 0 when no
    /// frame header has been read. Lets a shell size its next read to the frame.
    #[inline]
    pub fn frame_bytes_missing(&self, buffered: usize) -> usize {
        self.frame.map_or(0, |f| f.len.saturating_sub(buffered))
    }

    /// The queued output when it is one slice (the usual case: small frames are coalesced),
    /// so a shell can write it without building a vector of slices; `None` when nothing is
    /// queued or it is in several pieces (use [`Connection::output_chunks`]).
    #[inline]
    pub fn contiguous_output(&self) -> Option<&[u8]> {
        let tail = self.out.tail_pending();
        match (self.out.chunks.len(), tail.is_empty()) {
            (0, false) => Some(tail),
            (1, true) => Some(&self.out.chunks[0]),
            _ => None,
        }
    }

    /// The queued output as a list of slices (convenience for tests and simple shells).
    pub fn output_chunks_vec(&self) -> Vec<&[u8]> {
        self.out
            .chunks
            .iter()
            .map(|c| &c[..])
            .chain(Some(self.out.tail_pending()).filter(|t| !t.is_empty()))
            .collect()
    }

    /// Marks `n` bytes of output as written.
    ///
    /// # Panics
    ///
    /// If `n` is more than [`Connection::buffered_amount`].
    #[inline]
    pub fn advance_output(&mut self, n: usize) {
        if n == self.out.len && self.out.chunks.is_empty() {
            // Everything written, and it was all in the tail (the usual case), inline.
            self.out.len = 0;
            self.out.release_tail();
            return;
        }
        self.out.advance(n);
    }

    /// Whether the shell should close the transport now: all output is written and either
    /// the connection failed, or the close handshake is over and we are the server (§7.1.1:
    /// "the server ... SHOULD close the underlying TCP connection first"), or the transport
    /// already ended.
    pub fn should_close_transport(&self) -> bool {
        self.out.len == 0
            && (self.failed
                || self.eof
                || (self.close_sent && self.close_received && self.role == Role::Server))
    }

    // ----- getters -----

    /// Bytes queued but not yet written (the browser API's `bufferedAmount`).
    #[inline]
    pub fn buffered_amount(&self) -> usize {
        self.out.len
    }

    /// The lifecycle state.
    #[inline]
    pub fn state(&self) -> State {
        if self.failed || self.eof || (self.close_sent && self.close_received) {
            State::Closed
        } else if self.close_sent {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Whether we may still send data frames.
    pub fn can_send(&self) -> bool {
        !self.close_sent
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How the connection ended, once it has started to (our close sent, or the peer's
    /// received, or the transport lost).
    pub fn close_info(&self) -> Option<&CloseInfo> {
        self.close_info.as_deref()
    }
}

fn encode_close_payload(frame: &CloseFrame) -> Bytes {
    let mut payload = BytesMut::with_capacity(2 + frame.reason.len());
    payload.put_u16(frame.code.0);
    payload.extend_from_slice(frame.reason.as_bytes());
    payload.freeze()
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Encoded frames waiting for the transport. Small frames are copied into `tail`, so many
/// of them leave in one write; payloads at or above the vectored-write threshold are kept as
/// their own `Bytes` chunk (no copy), for a vectored write.
#[derive(Debug, Default)]
struct OutQueue {
    chunks: VecDeque<Bytes>,
    tail: BytesMut,
    /// How much of `tail` is already written. Tracked here rather than by advancing `tail`,
    /// which would give its front away: once everything is written the whole buffer is
    /// reused from the start, with no reallocation.
    tail_written: usize,
    len: usize,
}

/// A drained write buffer up to this size is kept for reuse (see [`SPARE_TAIL`]); a larger
/// one is freed, so one big message does not pin its memory.
const KEEP_TAIL_CAPACITY: usize = 16 << 10;

/// The longest payload whose length fits the header's seven bits (§5.2): such a frame from
/// a server has a two-byte header.
const MAX_SHORT_LEN: u8 = 125;

thread_local! {
    /// One drained write buffer per thread. A connection whose output is all written holds
    /// no buffer (idle connections cost no write memory), and the next connection on this
    /// thread to send takes this one instead of allocating. Reuse is a policy about memory,
    /// not I/O, so it lives here with the queue.
    ///
    /// `ManuallyDrop`: a thread-local without a destructor is a plain load and store, where
    /// one with a destructor checks its registration on every access (twice per echoed
    /// message). [`SpareTailGuard`] frees the buffer when the thread exits instead.
    static SPARE_TAIL: Cell<Option<ManuallyDrop<BytesMut>>> = const { Cell::new(None) };
    /// Whether this thread's [`SPARE_TAIL_GUARD`] is registered.
    static SPARE_TAIL_GUARDED: Cell<bool> = const { Cell::new(false) };
    static SPARE_TAIL_GUARD: SpareTailGuard = const { SpareTailGuard };
}

/// Frees the thread's spare write buffer when the thread exits. (A buffer handed back by
/// another thread-local's destructor after this one ran is not freed: at most one, at exit.)
struct SpareTailGuard;

impl Drop for SpareTailGuard {
    fn drop(&mut self) {
        if let Some(tail) = SPARE_TAIL.take() {
            drop(ManuallyDrop::into_inner(tail));
        }
    }
}

/// Takes the thread's spare write buffer, if it has one.
#[inline]
fn take_spare_tail() -> Option<BytesMut> {
    SPARE_TAIL.take().map(ManuallyDrop::into_inner)
}

/// Makes `tail` the thread's spare write buffer (freeing one already there).
#[inline]
fn give_spare_tail(tail: BytesMut) {
    if !SPARE_TAIL_GUARDED.get() {
        SPARE_TAIL_GUARDED.set(true);
        SPARE_TAIL_GUARD.with(|_| {});
    }
    if let Some(old) = SPARE_TAIL.replace(Some(ManuallyDrop::new(tail))) {
        drop(ManuallyDrop::into_inner(old));
    }
}

impl OutQueue {
    /// Makes sure `tail` has an allocation to append to, reusing the thread's spare one.
    #[inline]
    fn prepare_tail(&mut self) {
        if self.tail.capacity() == 0 {
            if let Some(spare) = take_spare_tail() {
                self.tail = spare;
            }
        }
    }

    fn push_frame(&mut self, header: &FrameHeader, payload: Bytes, vectored_threshold: usize) {
        self.prepare_tail();
        let mut head = [0u8; MAX_HEADER_LEN];
        let head_len = header.encode(&mut head);
        self.len += head_len + payload.len();
        if head_len == 2 {
            // The usual server header: a fixed-size copy, no call to `memcpy`.
            self.tail.extend_from_slice(&head[..2]);
        } else {
            self.tail.extend_from_slice(&head[..head_len]);
        }
        match header.mask {
            Some(key) => {
                // A client must copy to mask; the copy is the masking pass.
                let start = self.tail.len();
                self.tail.extend_from_slice(&payload);
                apply_mask(&mut self.tail[start..], key, 0);
            }
            None if payload.len() >= vectored_threshold => {
                self.seal_tail();
                self.chunks.push_back(payload);
            }
            None => self.tail.extend_from_slice(&payload),
        }
    }

    /// Appends an unmasked frame of at most [`MAX_SHORT_LEN`] payload bytes, FIN set, no RSV
    /// bits: a two-byte header (the one [`FrameHeader::encode`] writes for it) and a copy.
    #[inline]
    fn push_short(&mut self, opcode: OpCode, payload: &[u8]) {
        debug_assert!(payload.len() <= usize::from(MAX_SHORT_LEN));
        self.prepare_tail();
        self.len += 2 + payload.len();
        self.tail.reserve(2 + payload.len());
        self.tail
            .extend_from_slice(&[0x80 | opcode.as_u8(), payload.len() as u8]);
        self.tail.extend_from_slice(payload);
    }

    fn push_encoded(&mut self, frame: Bytes, vectored_threshold: usize) {
        self.prepare_tail();
        self.len += frame.len();
        if frame.len() >= vectored_threshold {
            self.seal_tail();
            self.chunks.push_back(frame);
        } else {
            self.tail.extend_from_slice(&frame);
        }
    }

    /// Moves what is unwritten in `tail` to `chunks`, so a large payload can follow it
    /// without being copied.
    fn seal_tail(&mut self) {
        if self.tail.len() > self.tail_written {
            let mut pending = self.tail.split();
            pending.advance(self.tail_written);
            self.chunks.push_back(pending.freeze());
        } else {
            self.tail.clear();
        }
        self.tail_written = 0;
    }

    /// The unwritten part of `tail`.
    fn tail_pending(&self) -> &[u8] {
        &self.tail[self.tail_written..]
    }

    fn chunks<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let pending = self.tail_pending();
        let tail = (!pending.is_empty()).then_some(pending);
        let mut n = 0;
        for chunk in self
            .chunks
            .iter()
            .map(|c| &c[..])
            .filter(|c| !c.is_empty())
            .chain(tail)
        {
            if n == dst.len() {
                break;
            }
            dst[n] = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len, "advanced past the queued output");
        if n == self.len && self.chunks.is_empty() {
            // Everything written, and it was all in the tail (the common case).
            self.len = 0;
            self.release_tail();
            return;
        }
        self.len -= n;
        while n > 0 {
            match self.chunks.front_mut() {
                Some(front) if front.len() <= n => {
                    n -= front.len();
                    self.chunks.pop_front();
                }
                Some(front) => {
                    front.advance(n);
                    n = 0;
                }
                None => {
                    self.tail_written += n;
                    n = 0;
                }
            }
        }
        if self.len == 0 {
            self.chunks.clear();
            self.release_tail();
        }
    }

    /// Everything is written: the tail goes to the thread's spare (or is freed, if large).
    #[inline]
    fn release_tail(&mut self) {
        self.tail_written = 0;
        let mut tail = std::mem::take(&mut self.tail);
        if (1..=KEEP_TAIL_CAPACITY).contains(&tail.capacity()) {
            tail.clear();
            give_spare_tail(tail);
        }
    }
}

#[cfg(test)]
mod tests;
