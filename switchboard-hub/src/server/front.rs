//! The hub's own HTTP/1.1 driver for the requests that hold a connection open: `GET
//! /sse/{channel}` and `GET /poll/{channel}`.
//!
//! Why: hyper's HTTP/1.1 connection keeps a read buffer (up to 16 KiB once a request came
//! in) and an 8 KiB header write buffer for as long as the connection lives, whatever the
//! response. For a stream or a long poll that waits for minutes that is 24 KiB per idle
//! client, six times everything else it holds. Here the head is read into a small buffer
//! that is freed once the request is handed to the router, and the response is written
//! from the body's own chunks.
//!
//! What stays the same: the requests run through the *same* axum router, with the same
//! extensions as under hyper (the connection's [`ConnectionControl`], `ConnectInfo`,
//! `OverTls`), so every check (origin, token, rate limits, parameters, errors) is the
//! one hyper's requests get; only the connection driver differs. Anything else — another
//! method or path, a WebSocket upgrade, a request with a body — is handed to hyper with
//! the bytes already read put back in front ([`Rewind`]), and hyper serves the connection
//! from then on.
//!
//! The rules it follows, as hyper does: a head larger than [`MAX_HEAD`] (hyper is given
//! the same limit) is answered 431, a malformed one 400, and neither within
//! `HEADER_TIMEOUT` closes the connection; HTTP/1.1 keeps the connection alive unless a
//! side says `Connection: close`; HTTP/1.0 gets one answer and the connection closes; a
//! body of known size gets `Content-Length`, others `Transfer-Encoding: chunked` (on
//! HTTP/1.0, the end of the connection ends the body). While a request waits for its
//! answer and while the answer streams, the socket is still read: end of file (the client
//! went) drops the request at once, which ends the stream and its subscription; bytes that
//! arrive are the next pipelined request, kept up to [`MAX_HEAD`].

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use hyper::body::Body as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::metrics::Metrics;
use crate::transport::{ConnectionControl, OverTls};

/// The largest request head accepted, here and by hyper (`max_buf_size`): larger is 431.
pub(super) const MAX_HEAD: usize = 16 * 1024;

/// What the head buffer starts with; it doubles up to [`MAX_HEAD`] as a head needs.
const FIRST_HEAD_BUF: usize = 1024;

/// The most header lines in a head, as hyper allows: more is 431.
const MAX_HEADERS: usize = 100;

/// The stack buffer that reads the socket while a response is pending or streams.
const WATCH_BUF: usize = 512;

/// What one connection's requests get, as under hyper.
pub(super) struct Front {
    pub(super) router: Router,
    pub(super) control: ConnectionControl,
    pub(super) peer: SocketAddr,
    /// The hub terminated TLS on this connection.
    pub(super) tls: bool,
    pub(super) metrics: Arc<Metrics>,
}

/// How the front left a connection.
pub(super) enum Outcome<I> {
    /// Closed, or the client went.
    Done,
    /// A request this driver does not serve: hyper takes the connection, bytes read first.
    Handover(Rewind<I>),
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Larger than [`MAX_HEAD`] or more than [`MAX_HEADERS`] lines: 431.
    TooLarge,
    /// Not an HTTP/1.x request head: 400, with what is wrong.
    Malformed(&'static str),
}

/// The router's answer to one request, on its way.
type Answer = Pin<Box<tower::util::Oneshot<Router, Request<Body>>>>;

/// What follows a head.
enum Next {
    /// Ours: the router's answer, for a request of `version`; `close` when the connection
    /// ends after it; the bytes read past the head.
    Answer {
        answer: Answer,
        version: Version,
        close: bool,
        pipelined: BytesMut,
    },
    /// Hyper's.
    Hyper,
    /// Refused.
    Refuse(Refusal),
}

/// A complete head, sorted.
// Not boxed: a `Head` only passes from the parser to the caller, and boxing would cost
// every request an allocation.
#[allow(clippy::large_enum_variant)]
enum Head {
    /// A request this driver serves; `close` when the connection ends after its answer.
    Ours { request: Request<Body>, close: bool },
    /// Anything else: hyper's.
    Theirs,
}

impl Front {
    /// Serves requests on `io` until the client goes, a side closes, `closing` turns true
    /// between two requests, or a request is hyper's.
    pub(super) async fn serve<I>(&self, mut io: I, mut closing: watch::Receiver<bool>) -> Outcome<I>
    where
        I: AsyncRead + AsyncWrite + Unpin,
    {
        // What was read past the last head: the start of the next request.
        let mut buf = BytesMut::new();
        // Every value that is large and short-lived (the head read, the request, the
        // response head) lives in a block without an await after it, or in a box: a
        // stream's task then keeps only what writes the body while the stream lasts.
        loop {
            let next = {
                // Boxed: the head read's timer and the shutdown wait are gone once the
                // head is in.
                let read = read_head(&mut io, &mut buf, &mut closing);
                match Box::pin(tokio::time::timeout(super::HEADER_TIMEOUT, read)).await {
                    Ok(Ok(Some(Ok((len, head))))) => self.start(head, len, &mut buf),
                    Ok(Ok(Some(Err(refusal)))) => Next::Refuse(refusal),
                    // End of file, shutdown, a read error or too slow: close, as hyper does.
                    Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return Outcome::Done,
                }
            };
            let (mut answer, version, close, mut pipelined) = match next {
                Next::Answer {
                    answer,
                    version,
                    close,
                    pipelined,
                } => (answer, version, close, pipelined),
                Next::Hyper => return Outcome::Handover(Rewind::new(buf.freeze(), io)),
                Next::Refuse(refusal) => {
                    tracing::debug!(peer = %self.peer, ?refusal, "request head refused");
                    let _ = io.write_all(&refusal_response(refusal)).await;
                    let _ = io.shutdown().await;
                    return Outcome::Done;
                }
            };
            let answered = std::future::poll_fn(|cx| {
                if let Poll::Ready(response) = answer.as_mut().poll(cx) {
                    return Poll::Ready(Ok(match response {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }));
                }
                watch_reads(&mut io, cx, &mut pipelined).map(Err)
            });
            let (head, body, framing, keep_alive) = match answered.await {
                Ok(response) => encode_head(response, version, close),
                Err(error) => {
                    tracing::trace!(peer = %self.peer, %error, "connection ended");
                    return Outcome::Done;
                }
            };
            // The router's state goes with its future.
            drop(answer);
            if let Err(error) = write_body(&mut io, head, body, framing, &mut pipelined).await {
                tracing::trace!(peer = %self.peer, %error, "connection ended");
                return Outcome::Done;
            }
            if !keep_alive || *closing.borrow() {
                let _ = io.shutdown().await;
                return Outcome::Done;
            }
            buf = pipelined;
        }
    }

    /// What to do with a complete head of `len` bytes at the start of `buf`: for ours, the
    /// head buffer goes (`buf` is left empty) and only a pipelined request's bytes are
    /// kept; the router's future is boxed, to be dropped once it answered.
    fn start(&self, head: Head, len: usize, buf: &mut BytesMut) -> Next {
        let (request, close) = match head {
            Head::Ours { request, close } => (request, close),
            Head::Theirs => return Next::Hyper,
        };
        let pipelined = if buf.len() > len {
            BytesMut::from(&buf[len..])
        } else {
            BytesMut::new()
        };
        *buf = BytesMut::new();
        let version = request.version();
        Next::Answer {
            answer: Box::pin(self.router.clone().oneshot(self.prepare(request))),
            version,
            close,
            pipelined,
        }
    }

    /// `request` with the extensions hyper's requests get in `Conn::serve_hyper`.
    fn prepare(&self, mut request: Request<Body>) -> Request<Body> {
        self.metrics.record_http_request(request.version());
        let extensions = request.extensions_mut();
        extensions.insert(self.control.clone());
        extensions.insert(ConnectInfo(self.peer));
        if self.tls {
            extensions.insert(OverTls);
        }
        request
    }
}

/// Reads into `buf` until it holds a complete head: `Some(Ok((head length, head)))`, or
/// the refusal to answer with; `None` at end of file before a head, or when `closing`
/// turns true while no request has begun.
async fn read_head<I>(
    io: &mut I,
    buf: &mut BytesMut,
    closing: &mut watch::Receiver<bool>,
) -> io::Result<Option<Result<(usize, Head), Refusal>>>
where
    I: AsyncRead + Unpin,
{
    loop {
        if !buf.is_empty() {
            match parse_head(buf) {
                Ok(Some(parsed)) => return Ok(Some(Ok(parsed))),
                Ok(None) if buf.len() >= MAX_HEAD => return Ok(Some(Err(Refusal::TooLarge))),
                Ok(None) => {}
                Err(refusal) => return Ok(Some(Err(refusal))),
            }
        }
        if buf.len() == buf.capacity() {
            let want = buf.capacity().max(FIRST_HEAD_BUF / 2) * 2;
            buf.reserve(want.min(MAX_HEAD) - buf.len());
        }
        let room = MAX_HEAD - buf.len();
        let mut limited = (&mut *io).take(room as u64);
        let n = if buf.is_empty() {
            tokio::select! {
                n = limited.read_buf(buf) => n?,
                _ = crate::transport::closing(closing) => return Ok(None),
            }
        } else {
            limited.read_buf(buf).await?
        };
        if n == 0 {
            return Ok(None);
        }
    }
}

/// Parses the head at the start of `buf`: `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, Head)>, Refusal> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut lines);
    let len = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        Err(httparse::Error::Version) => {
            return Err(Refusal::Malformed("unsupported HTTP version"))
        }
        Err(_) => return Err(Refusal::Malformed("malformed request head")),
    };
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(Refusal::Malformed("malformed request line"));
    };
    let path = target.split('?').next().unwrap_or_default();
    let streaming_route = path.starts_with("/sse/") || path.starts_with("/poll/");
    if method != "GET" || !streaming_route {
        return Ok(Some((len, Head::Theirs)));
    }
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    let mut close = minor == 0;
    for line in parsed.headers.iter() {
        let name = HeaderName::from_bytes(line.name.as_bytes())
            .map_err(|_| Refusal::Malformed("invalid header name"))?;
        let value = HeaderValue::from_bytes(line.value)
            .map_err(|_| Refusal::Malformed("invalid header value"))?;
        // A body, an upgrade or `Expect`: hyper knows what to do with those.
        let for_hyper = name == header::UPGRADE
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || (name == header::CONTENT_LENGTH && value.as_bytes() != b"0");
        if for_hyper {
            return Ok(Some((len, Head::Theirs)));
        }
        if name == header::CONNECTION {
            close |= has_token(&value, "close");
        }
        headers.append(name, value);
    }
    let uri: Uri = target
        .parse()
        .map_err(|_| Refusal::Malformed("invalid request target"))?;
    let mut request = Request::new(Body::empty());
    *request.method_mut() = Method::GET;
    *request.uri_mut() = uri;
    *request.version_mut() = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *request.headers_mut() = headers;
    Ok(Some((len, Head::Ours { request, close })))
}

/// Whether the comma-separated header `value` holds `token` (case-insensitive).
fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .unwrap_or_default()
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The answer to a refused head; the connection closes after it.
fn refusal_response(refusal: Refusal) -> Vec<u8> {
    let (status, code, message) = match refusal {
        Refusal::TooLarge => (
            "431 Request Header Fields Too Large",
            "request_head_too_large",
            "request head larger than 16384 bytes or 100 header lines",
        ),
        Refusal::Malformed(what) => ("400 Bad Request", "bad_request", what),
    };
    let body = format!("{{\"error\":{{\"code\":\"{code}\",\"message\":\"{message}\"}}}}");
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\ndate: {}\r\n\r\n{body}",
        body.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now()),
    )
    .into_bytes()
}

/// Reads the socket while an answer is pending: the bytes go to `pipelined` (up to
/// [`MAX_HEAD`]; past that, reading stops until the next head is read); end of file or a
/// read error is `Ready` with the error that ends the exchange.
fn watch_reads<I>(io: &mut I, cx: &mut Context<'_>, pipelined: &mut BytesMut) -> Poll<io::Error>
where
    I: AsyncRead + Unpin,
{
    while pipelined.len() < MAX_HEAD {
        let mut stack = [0u8; WATCH_BUF];
        let mut read = ReadBuf::new(&mut stack);
        match Pin::new(&mut *io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                return Poll::Ready(io::ErrorKind::UnexpectedEof.into());
            }
            Poll::Ready(Ok(())) => pipelined.extend_from_slice(read.filled()),
            Poll::Ready(Err(error)) => return Poll::Ready(error),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Pending
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length,
    Chunked,
    /// HTTP/1.0 without a length: the end of the connection ends the body.
    Close,
}

/// The head of `response` to a `version` request, its body, how the body is framed, and
/// whether the connection may carry another request after it (not when `close`).
fn encode_head(
    response: Response<Body>,
    version: Version,
    close: bool,
) -> (Bytes, Body, Framing, bool) {
    let (parts, body) = response.into_parts();
    let mut head = BytesMut::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.extend_from_slice(b" ");
    head.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or_default()
            .as_bytes(),
    );
    head.extend_from_slice(b"\r\n");
    let framing = if parts.headers.contains_key(header::CONTENT_LENGTH) {
        Framing::Length
    } else if let Some(len) = body.size_hint().exact() {
        head.extend_from_slice(format!("content-length: {len}\r\n").as_bytes());
        Framing::Length
    } else if version == Version::HTTP_11 {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    } else {
        Framing::Close
    };
    let answer_closes = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| has_token(v, "close"));
    let keep_alive = !close && !answer_closes && framing != Framing::Close;
    for (name, value) in &parts.headers {
        if name == header::TRANSFER_ENCODING {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        let now = httpdate::fmt_http_date(std::time::SystemTime::now());
        head.extend_from_slice(format!("date: {now}\r\n").as_bytes());
    }
    if !keep_alive && !answer_closes {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    (head.freeze(), body, framing, keep_alive)
}

/// Writes `head`, then `body`'s frames as they come, framed by `framing`.
async fn write_body<I>(
    io: &mut I,
    head: Bytes,
    mut body: Body,
    framing: Framing,
    pipelined: &mut BytesMut,
) -> io::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = Pending {
        head,
        ..Pending::default()
    };
    let mut finished = false;
    std::future::poll_fn(|cx| loop {
        if let Poll::Ready(error) = watch_reads(io, cx, pipelined) {
            return Poll::Ready(Err(error));
        }
        if !out.is_empty() {
            ready!(out.poll_write(io, cx))?;
            continue;
        }
        if finished {
            return Pin::new(&mut *io).poll_flush(cx);
        }
        let frame = match Pin::new(&mut body).poll_frame(cx) {
            Poll::Ready(frame) => frame,
            // Nothing to send for now: what was written must reach the client (TLS
            // buffers it), then wait for the body or the socket.
            Poll::Pending => {
                ready!(Pin::new(&mut *io).poll_flush(cx))?;
                return Poll::Pending;
            }
        };
        match frame {
            Some(Ok(frame)) => {
                // Trailers are dropped, as hyper does on HTTP/1.1 unless asked for.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                // An empty chunk would end a chunked body.
                if !data.is_empty() {
                    out.body(data, framing == Framing::Chunked);
                }
            }
            Some(Err(error)) => return Poll::Ready(Err(io::Error::other(error))),
            None => {
                if framing == Framing::Chunked {
                    out.tail = b"0\r\n\r\n";
                }
                finished = true;
            }
        }
    })
    .await
}

/// What is waiting to be written: a response head, a chunk's size line, its data, and
/// the chunk's end; written with one vectored write where the stream takes them.
#[derive(Default)]
struct Pending {
    head: Bytes,
    size_line: SizeLine,
    data: Bytes,
    tail: &'static [u8],
}

/// `{len:x}\r\n` without an allocation.
#[derive(Default)]
struct SizeLine {
    bytes: [u8; 18],
    start: usize,
    end: usize,
}

impl SizeLine {
    fn new(len: usize) -> Self {
        let mut line = Self::default();
        let digits = format_hex(len, &mut line.bytes[..16]);
        line.bytes[digits] = b'\r';
        line.bytes[digits + 1] = b'\n';
        line.end = digits + 2;
        line
    }

    fn remaining(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }
}

/// Writes `n` in lower-case hex at the start of `out`; returns the number of digits.
fn format_hex(n: usize, out: &mut [u8]) -> usize {
    let digits = ((usize::BITS - n.leading_zeros()).div_ceil(4)).max(1) as usize;
    for (i, slot) in out[..digits].iter_mut().enumerate() {
        let shift = 4 * (digits - 1 - i);
        *slot = b"0123456789abcdef"[(n >> shift) & 0xf];
    }
    digits
}

impl Pending {
    /// Queues `data`, framed as a chunk when `chunked`.
    fn body(&mut self, data: Bytes, chunked: bool) {
        if chunked {
            self.size_line = SizeLine::new(data.len());
            self.tail = b"\r\n";
        }
        self.data = data;
    }

    fn is_empty(&self) -> bool {
        self.head.is_empty()
            && self.size_line.remaining().is_empty()
            && self.data.is_empty()
            && self.tail.is_empty()
    }

    /// Writes until everything went or the stream is full.
    fn poll_write<I: AsyncWrite + Unpin>(
        &mut self,
        io: &mut I,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.is_empty() {
            let slices = [
                IoSlice::new(&self.head),
                IoSlice::new(self.size_line.remaining()),
                IoSlice::new(&self.data),
                IoSlice::new(self.tail),
            ];
            let n = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        // The buffers go with what they held: an idle stream keeps none.
        self.head = Bytes::new();
        self.data = Bytes::new();
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, mut n: usize) {
        let take = n.min(self.head.len());
        self.head.advance(take);
        n -= take;
        let take = n.min(self.size_line.remaining().len());
        self.size_line.start += take;
        n -= take;
        let take = n.min(self.data.len());
        self.data.advance(take);
        n -= take;
        self.tail = &self.tail[n.min(self.tail.len())..];
    }
}

/// A stream with bytes already read from it put back in front, for hyper.
pub(super) struct Rewind<I> {
    prefix: Bytes,
    io: I,
}

impl<I> Rewind<I> {
    /// `io`, whose next bytes read are `prefix`.
    pub(super) fn new(prefix: Bytes, io: I) -> Self {
        Self { prefix, io }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            // Frees the head buffer.
            self.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<(usize, Head)>, Refusal> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn sse_and_poll_gets_are_ours_the_rest_hypers() {
        let ours = |t: &str| matches!(head(t), Ok(Some((_, Head::Ours { .. }))));
        let theirs = |t: &str| matches!(head(t), Ok(Some((_, Head::Theirs))));
        assert!(ours("GET /sse/room HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(ours("GET /poll/a?since=1:2 HTTP/1.1\r\n\r\n"));
        assert!(ours("GET /poll/a HTTP/1.1\r\ncontent-length: 0\r\n\r\n"));
        assert!(theirs(
            "POST /poll/a HTTP/1.1\r\ncontent-length: 2\r\n\r\nhi"
        ));
        assert!(theirs("GET /ws HTTP/1.1\r\n\r\n"));
        assert!(theirs("GET /sse/a HTTP/1.1\r\nupgrade: websocket\r\n\r\n"));
        assert!(theirs(
            "GET /sse/a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
        ));
        assert!(theirs(
            "GET /sse/a HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello"
        ));
        assert!(theirs("HEAD /sse/a HTTP/1.1\r\n\r\n"));
        assert!(matches!(
            head("GET /sse/a HTTP/1.1\r\nHost: x\r\n"),
            Ok(None)
        ));
    }

    #[test]
    fn connection_close_and_http_1_0_close() {
        let close = |t: &str| match head(t) {
            Ok(Some((_, Head::Ours { close, .. }))) => close,
            _ => panic!("not ours: {t}"),
        };
        assert!(!close("GET /sse/a HTTP/1.1\r\n\r\n"));
        assert!(close(
            "GET /sse/a HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n"
        ));
        assert!(close("GET /sse/a HTTP/1.0\r\n\r\n"));
    }

    #[test]
    fn bad_heads_are_refused() {
        assert!(matches!(
            head("\x01\x02 nonsense\r\n\r\n"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            head("GET /sse/a HTTP/2.0\r\n\r\n"),
            Err(Refusal::Malformed(_))
        ));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: y\r\n")).collect();
        let flood = format!("GET /sse/a HTTP/1.1\r\n{many}\r\n");
        assert!(matches!(head(&flood), Err(Refusal::TooLarge)));
    }

    #[test]
    fn size_lines_are_hex() {
        for (n, text) in [
            (0, "0\r\n"),
            (9, "9\r\n"),
            (255, "ff\r\n"),
            (4096, "1000\r\n"),
        ] {
            assert_eq!(SizeLine::new(n).remaining(), text.as_bytes());
        }
        assert_eq!(
            SizeLine::new(usize::MAX).remaining().len(),
            usize::BITS as usize / 4 + 2
        );
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut out = Pending {
            head: Bytes::from_static(b"HEAD"),
            ..Pending::default()
        };
        out.body(Bytes::from_static(b"hello"), true);
        let mut all = Vec::new();
        while !out.is_empty() {
            let mut piece = Vec::new();
            piece.extend_from_slice(&out.head);
            piece.extend_from_slice(out.size_line.remaining());
            piece.extend_from_slice(&out.data);
            piece.extend_from_slice(out.tail);
            all.push(piece[0]);
            out.advance(1);
        }
        assert_eq!(all, b"HEAD5\r\nhello\r\n");
    }
}
