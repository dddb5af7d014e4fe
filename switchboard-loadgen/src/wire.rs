//! The least WebSocket (RFC 6455) a load generator needs, written for a low cost per message:
//! the opening handshake for both ends, client frames built once, and a parser that finds
//! message boundaries in a server's byte stream without touching payload bytes.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID every `Sec-WebSocket-Accept` is derived from (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The longest handshake either end will buffer; a larger one is an error, not a wait.
///
/// ```
/// use switchboard_loadgen::wire::{server_response, MAX_HANDSHAKE_LEN};
///
/// // An unfinished header block is waited for, until it reaches the limit.
/// let mut request = b"GET / HTTP/1.1\r\nX-Padding: ".to_vec();
/// assert!(server_response(&request).unwrap().is_none());
/// request.resize(MAX_HANDSHAKE_LEN, b'a');
/// assert!(server_response(&request).is_err());
/// ```
pub const MAX_HANDSHAKE_LEN: usize = 8 * 1024;

/// Why the wire format was not what we expected.
///
/// ```
/// use switchboard_loadgen::wire::{EchoParser, WireError};
///
/// // A close frame (opcode 0x8) from the server in the middle of a run.
/// match EchoParser::new().feed(&[0x88, 0x00]) {
///     Err(WireError::Closed) => println!("the server closed the connection"),
///     Err(e) => println!("protocol error: {e}"),
///     Ok(echoes) => println!("{echoes} echoes"),
/// }
/// ```
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The HTTP upgrade request or response could not be parsed or was refused.
    #[error("bad handshake: {0}")]
    Handshake(String),
    /// The server sent a frame header with a reserved opcode or a malformed length.
    #[error("bad frame header from server: {0}")]
    BadHeader(&'static str),
    /// The server sent a close frame in the middle of the run.
    #[error("server sent a close frame")]
    Closed,
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2, item 5.4).
///
/// ```
/// use switchboard_loadgen::wire::accept_key;
///
/// // The example from RFC 6455 §1.3.
/// assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID);
    BASE64.encode(sha.finalize())
}

/// A `Sec-WebSocket-Key` for connection number `n`. The RFC asks for a random nonce; a load
/// generator only needs it to differ between connections, so it is derived from `n`.
///
/// ```
/// use switchboard_loadgen::wire::client_key;
///
/// assert_eq!(client_key(7).len(), 24); // 16 bytes, base64
/// assert_ne!(client_key(0), client_key(1));
/// ```
pub fn client_key(n: u64) -> String {
    let mut nonce = [0x5au8; 16];
    nonce[..8].copy_from_slice(&n.to_le_bytes());
    BASE64.encode(nonce)
}

/// The client's opening handshake request (RFC 6455 §4.1), without extensions, so servers
/// never negotiate compression with the generator.
///
/// ```
/// use switchboard_loadgen::wire::{client_key, client_request};
///
/// let request = client_request("127.0.0.1:9001", "/echo", &client_key(0));
/// assert!(request.starts_with(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n"));
/// assert!(request.ends_with(b"\r\n\r\n"));
/// ```
pub fn client_request(host: &str, path: &str, key: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// Checks a complete server response (`buf` holds at least the header block) against the key
/// we sent. Returns the length of the header block, so any bytes after it can be kept.
/// `Ok(None)` means the header block is not complete yet.
///
/// ```
/// use switchboard_loadgen::wire::{check_server_response, client_key, client_request, server_response};
///
/// let key = client_key(0);
/// let request = client_request("127.0.0.1:9001", "/", &key);
/// let (answer, _) = server_response(&request)?.unwrap();
/// assert_eq!(check_server_response(&answer, &key)?, Some(answer.len()));
/// assert_eq!(check_server_response(&answer[..10], &key)?, None); // not complete yet
/// assert!(check_server_response(b"HTTP/1.1 404 Not Found\r\n\r\n", &key).is_err());
/// # Ok::<(), switchboard_loadgen::wire::WireError>(())
/// ```
pub fn check_server_response(buf: &[u8], key: &str) -> Result<Option<usize>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HANDSHAKE_LEN => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(WireError::Handshake("response too long".into()))
        }
        Err(e) => return Err(WireError::Handshake(e.to_string())),
    };
    if response.code != Some(101) {
        return Err(WireError::Handshake(format!(
            "status {:?}, not 101",
            response.code
        )));
    }
    let expected = accept_key(key);
    let accept = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value);
    if accept != Some(expected.as_bytes()) {
        return Err(WireError::Handshake(
            "missing or wrong Sec-WebSocket-Accept".into(),
        ));
    }
    Ok(Some(len))
}

/// Parses a client's upgrade request and builds the `101` answer (RFC 6455 §4.2.2), for echo
/// servers that do the handshake themselves. Returns the answer and the length of the request's
/// header block; `Ok(None)` means the header block is not complete yet.
///
/// ```
/// use switchboard_loadgen::wire::{client_key, client_request, server_response};
///
/// let request = client_request("127.0.0.1:9001", "/", &client_key(0));
/// let (answer, used) = server_response(&request)?.expect("a whole header block");
/// assert_eq!(used, request.len());
/// assert!(answer.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
/// # Ok::<(), switchboard_loadgen::wire::WireError>(())
/// ```
pub fn server_response(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HANDSHAKE_LEN => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(WireError::Handshake("request too long".into()))
        }
        Err(e) => return Err(WireError::Handshake(e.to_string())),
    };
    let key = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .ok_or_else(|| WireError::Handshake("no Sec-WebSocket-Key".into()))?;
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.trim())
    );
    Ok(Some((answer.into_bytes(), len)))
}

/// The kind of data message the generator sends.
///
/// ```
/// use switchboard_loadgen::wire::payload;
/// use switchboard_loadgen::PayloadKind;
///
/// assert!(std::str::from_utf8(&payload(PayloadKind::Text, 20)).is_ok());
/// assert!(std::str::from_utf8(&payload(PayloadKind::Binary, 20)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// Text frames (opcode 0x1) with ASCII payloads, so servers run UTF-8 validation.
    Text,
    /// Binary frames (opcode 0x2) with bytes that are not UTF-8.
    Binary,
}

/// A payload of `len` bytes: ASCII letters for text, a byte pattern that is not UTF-8 for
/// binary (so a server that validated binary by mistake would fail, not pass).
///
/// ```
/// use switchboard_loadgen::wire::payload;
/// use switchboard_loadgen::PayloadKind;
///
/// let text = payload(PayloadKind::Text, 16);
/// assert_eq!(text.len(), 16);
/// assert!(text.is_ascii());
/// assert!(std::str::from_utf8(&payload(PayloadKind::Binary, 16)).is_err());
/// ```
pub fn payload(kind: PayloadKind, len: usize) -> Vec<u8> {
    match kind {
        PayloadKind::Text => (0..len).map(|i| b'a' + (i % 26) as u8).collect(),
        // 0xFF never occurs in UTF-8.
        PayloadKind::Binary => (0..len)
            .map(|i| {
                if i % 64 == 0 {
                    0xff
                } else {
                    i.wrapping_mul(131) as u8
                }
            })
            .collect(),
    }
}

/// One complete, masked client data frame (FIN set) carrying `payload` (RFC 6455 §5.2, §5.3).
///
/// ```
/// use switchboard_loadgen::wire::client_frame;
/// use switchboard_loadgen::PayloadKind;
///
/// let frame = client_frame(PayloadKind::Text, b"hi", [1, 2, 3, 4]);
/// // FIN + text, MASK + length 2, the mask key, then the masked payload.
/// assert_eq!(frame, [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
/// ```
pub fn client_frame(kind: PayloadKind, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let opcode = match kind {
        PayloadKind::Text => 0x1,
        PayloadKind::Binary => 0x2,
    };
    masked_frame(opcode, payload, mask)
}

/// One complete, masked client frame (FIN set) with any `opcode` (low nibble), e.g. a pong
/// (0xA) answering a server's ping.
///
/// ```
/// use switchboard_loadgen::wire::masked_frame;
///
/// let pong = masked_frame(0xA, b"", [1, 2, 3, 4]);
/// assert_eq!(pong, [0x8A, 0x80, 1, 2, 3, 4]);
/// ```
pub fn masked_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if len <= 0xffff {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    frame
}

/// Finds the ends of data messages in a server's byte stream.
///
/// It reads headers (which may be split across reads) and skips payloads by counting, so its
/// cost per message is a few branches whatever the size. It accepts masked frames too: a plain
/// TCP echo returns our own masked frames, and the same parser then measures it.
///
/// ```
/// use switchboard_loadgen::wire::EchoParser;
///
/// let mut parser = EchoParser::new();
/// // Two unmasked server frames ("hi" as text, then an empty binary), the first header split.
/// assert_eq!(parser.feed(&[0x81])?, 0);
/// assert_eq!(parser.feed(&[0x02, b'h', b'i', 0x82, 0x00])?, 2);
/// # Ok::<(), switchboard_loadgen::wire::WireError>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct EchoParser {
    /// Payload bytes of the current frame still to skip; `None` between frames.
    remaining: Option<u64>,
    /// Whether the current frame ends a data message (FIN on a data or continuation frame).
    ends_message: bool,
    /// Header bytes received so far, when a header is split across reads.
    header: [u8; 14],
    /// How many of `header` are filled.
    header_len: usize,
}

impl EchoParser {
    /// A parser at a frame boundary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes `buf` and returns how many data messages ended in it.
    pub fn feed(&mut self, mut buf: &[u8]) -> Result<u32, WireError> {
        let mut done = 0;
        while !buf.is_empty() {
            let remaining = match self.remaining {
                Some(remaining) => remaining,
                None => {
                    // Fast path: the whole header is in `buf`; else gather it across reads.
                    let parsed = if self.header_len == 0 {
                        parse_header(buf)?
                    } else {
                        let take = (self.header.len() - self.header_len).min(buf.len());
                        self.header[self.header_len..self.header_len + take]
                            .copy_from_slice(&buf[..take]);
                        match parse_header(&self.header[..self.header_len + take])? {
                            Some((len, used, ends)) => {
                                let from_buf = used - self.header_len;
                                self.header_len = 0;
                                Some((len, from_buf, ends))
                            }
                            None => {
                                self.header_len += take;
                                return Ok(done);
                            }
                        }
                    };
                    let Some((len, used, ends)) = parsed else {
                        self.header[..buf.len()].copy_from_slice(buf);
                        self.header_len = buf.len();
                        return Ok(done);
                    };
                    buf = &buf[used..];
                    self.ends_message = ends;
                    len
                }
            };
            let skip = remaining.min(buf.len() as u64);
            buf = &buf[skip as usize..];
            if skip == remaining {
                self.remaining = None;
                done += u32::from(self.ends_message);
            } else {
                self.remaining = Some(remaining - skip);
            }
        }
        Ok(done)
    }
}

/// Parses one header: `(payload length, header length, ends a data message)`.
fn parse_header(buf: &[u8]) -> Result<Option<(u64, usize, bool)>, WireError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    let fin = b0 & 0x80 != 0;
    let ends = match b0 & 0x0f {
        0x0..=0x2 => fin,
        0x8 => return Err(WireError::Closed),
        // Ping and pong: skipped, never counted. A server does not ping during a short run;
        // if one did, the missing pong would show up as a closed connection, not a wrong figure.
        0x9 | 0xa => false,
        _ => return Err(WireError::BadHeader("reserved opcode")),
    };
    let (len, mut used) = match b1 & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let len = u64::from_be_bytes(b.try_into().expect("eight bytes"));
                if len >> 63 != 0 {
                    return Err(WireError::BadHeader("64-bit length with the top bit set"));
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if b1 & 0x80 != 0 {
        used += 4;
        if buf.len() < used {
            return Ok(None);
        }
    }
    Ok(Some((len, used, ends)))
}

/// Reads one whole unmasked-or-masked data message from the front of `buf`, for the one-time
/// echo check: `Some((payload, consumed))` once the message is complete. Only single-frame
/// messages are accepted, which is what every server under test sends back.
///
/// ```
/// use switchboard_loadgen::wire::{client_frame, parse_whole_message};
/// use switchboard_loadgen::PayloadKind;
///
/// let frame = client_frame(PayloadKind::Binary, b"echo", [9, 8, 7, 6]);
/// assert_eq!(parse_whole_message(&frame)?, Some((b"echo".to_vec(), frame.len())));
/// assert_eq!(parse_whole_message(&frame[..3])?, None); // not complete yet
/// # Ok::<(), switchboard_loadgen::wire::WireError>(())
/// ```
pub fn parse_whole_message(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, WireError> {
    let Some((len, used, ends)) = parse_header(buf)? else {
        return Ok(None);
    };
    if !ends {
        return Err(WireError::BadHeader(
            "echo was fragmented or a control frame",
        ));
    }
    let end = used as u64 + len;
    if (buf.len() as u64) < end {
        return Ok(None);
    }
    let mut payload = buf[used..end as usize].to_vec();
    if buf[1] & 0x80 != 0 {
        let key = [buf[used - 4], buf[used - 3], buf[used - 2], buf[used - 1]];
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
    }
    Ok(Some((payload, end as usize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(payload_len: usize) -> Vec<u8> {
        let mut frame = client_frame(PayloadKind::Binary, &vec![7; payload_len], [1, 2, 3, 4]);
        // Clear the MASK bit and drop the key: what a server sends.
        let key_at = frame.len() - payload_len - 4;
        frame[1] &= 0x7f;
        frame.drain(key_at..key_at + 4);
        frame
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn handshake_round_trips() {
        let key = client_key(42);
        let request = client_request("127.0.0.1:1", "/", &key);
        let (answer, used) = server_response(&request).unwrap().unwrap();
        assert_eq!(used, request.len());
        assert_eq!(check_server_response(&answer, &key), Ok(Some(answer.len())));
        assert!(check_server_response(&answer, &client_key(43)).is_err());
        assert_eq!(
            check_server_response(&answer[..answer.len() - 1], &key),
            Ok(None)
        );
    }

    #[test]
    fn parser_counts_messages_across_every_split() {
        let mut stream = Vec::new();
        for len in [0, 5, 125, 126, 300, 65535, 65536, 70000] {
            stream.extend(server_frame(len));
        }
        // And a masked one, as a plain TCP echo returns it.
        stream.extend(client_frame(PayloadKind::Text, b"hello", [9, 9, 9, 9]));
        for chunk in [1, 2, 3, 7, 13, 4096, stream.len()] {
            let mut parser = EchoParser::new();
            let total: u32 = stream.chunks(chunk).map(|c| parser.feed(c).unwrap()).sum();
            assert_eq!(total, 9, "chunk size {chunk}");
        }
    }

    #[test]
    fn parser_does_not_count_fragments_or_pings() {
        // "he" (text, no FIN), ping, "llo" (continuation, FIN).
        let stream = [0x01, 2, b'h', b'e', 0x89, 0, 0x80, 3, b'l', b'l', b'o'];
        let mut parser = EchoParser::new();
        assert_eq!(parser.feed(&stream[..8]), Ok(0));
        assert_eq!(parser.feed(&stream[8..]), Ok(1));
    }

    #[test]
    fn parser_reports_close_and_reserved_opcodes() {
        assert_eq!(EchoParser::new().feed(&[0x88, 0]), Err(WireError::Closed));
        assert!(matches!(
            EchoParser::new().feed(&[0x83, 0]),
            Err(WireError::BadHeader(_))
        ));
    }

    #[test]
    fn masked_frames_carry_the_opcode_and_unmask_to_the_payload() {
        let frame = masked_frame(0xA, b"hello", [1, 2, 3, 4]);
        assert_eq!(&frame[..6], &[0x8A, 0x85, 1, 2, 3, 4]);
        let unmasked: Vec<u8> = frame[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i & 3])
            .collect();
        assert_eq!(unmasked, b"hello");
    }

    #[test]
    fn whole_message_unmasks_and_waits_for_the_end() {
        let payload = payload(PayloadKind::Text, 300);
        let frame = client_frame(PayloadKind::Text, &payload, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(parse_whole_message(&frame[..frame.len() - 1]), Ok(None));
        assert_eq!(
            parse_whole_message(&frame),
            Ok(Some((payload, frame.len())))
        );
    }

    #[test]
    fn binary_payload_is_not_utf8_and_text_is() {
        assert!(std::str::from_utf8(&payload(PayloadKind::Binary, 20)).is_err());
        assert!(std::str::from_utf8(&payload(PayloadKind::Text, 20)).is_ok());
    }

    /// A server frame: `opcode`, FIN, optionally masked (a raw TCP echo returns ours).
    fn frame(opcode: u8, fin: bool, len: usize, masked: bool) -> Vec<u8> {
        let mut f = masked_frame(opcode, &vec![0x5a; len], [3, 1, 4, 1]);
        if !fin {
            f[0] &= 0x7f;
        }
        if !masked {
            let key_at = f.len() - len - 4;
            f[1] &= 0x7f;
            f.drain(key_at..key_at + 4);
        }
        f
    }

    proptest::proptest! {
        #[test]
        fn parser_counts_exactly_the_data_messages_however_the_stream_is_split(
            frames in proptest::collection::vec(
                (0usize..4, proptest::bool::ANY, proptest::prop_oneof![0usize..130, 60_000usize..70_000], proptest::bool::ANY),
                0..12,
            ),
            cuts in proptest::collection::vec(1usize..5000, 1..20),
        ) {
            let mut stream = Vec::new();
            let mut want = 0u32;
            for (kind, fin, len, masked) in frames {
                // Control frames are short and final, as RFC 6455 §5.5 requires.
                let (opcode, fin, len) = match kind {
                    0 => (0x1, fin, len),
                    1 => (0x2, fin, len),
                    2 => (0x0, fin, len),
                    _ => (0x9, true, len % 126),
                };
                want += u32::from(fin && opcode <= 0x2);
                stream.extend(frame(opcode, fin, len, masked));
            }
            let mut parser = EchoParser::new();
            let mut got = 0;
            let mut rest = &stream[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*cut).min(rest.len()));
                got += parser.feed(chunk).unwrap();
                rest = tail;
            }
            proptest::prop_assert_eq!(got, want);
        }

        #[test]
        fn parser_never_panics_on_arbitrary_bytes(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
            cut in 1usize..64,
        ) {
            let mut parser = EchoParser::new();
            for chunk in bytes.chunks(cut) {
                if parser.feed(chunk).is_err() {
                    break;
                }
            }
            let _ = parse_whole_message(&bytes);
        }
    }
}
