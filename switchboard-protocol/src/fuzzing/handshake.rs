//! The opening handshake targets: the server's request parser and the client's response
//! check, each against httparse and RFC 6455 §4 read directly.

use crate::handshake::{
    encode_response, parse_request, validate_request, ClientHandshake, HandshakeError, Rejection,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The largest head the handshake targets accept.
const MAX_HEAD: usize = 8192;

/// A smaller limit, to check that the limit cuts the same request the same way.
const SMALL_HEAD: usize = 256;

/// The server side of the opening handshake on arbitrary bytes.
pub fn handshake_request(data: &[u8]) {
    let (request, consumed) = match parse_request(data, MAX_HEAD) {
        Ok(None) => {
            assert!(
                data.len() <= MAX_HEAD,
                "an incomplete head over the limit was not refused"
            );
            return;
        }
        Err(rejection) => return check_rejection(&rejection),
        Ok(Some(parsed)) => parsed,
    };
    assert!(consumed <= data.len());
    if consumed > 0 {
        assert!(
            matches!(parse_request(&data[..consumed - 1], MAX_HEAD), Ok(None)),
            "a cut head is not incomplete"
        );
    }
    // The limit is about where the head ends, not how the bytes arrived.
    match parse_request(data, SMALL_HEAD) {
        Ok(Some((small, n))) if consumed <= SMALL_HEAD => {
            assert_eq!(n, consumed);
            assert_eq!(small.uri(), request.uri());
            assert_eq!(small.headers(), request.headers());
        }
        Err(rejection) if consumed > SMALL_HEAD => {
            assert_eq!(
                rejection.status().as_u16(),
                431,
                "a head over the limit refused with {}",
                rejection.status()
            );
        }
        other => panic!("a {consumed}-byte head under a {SMALL_HEAD}-byte limit gave {other:?}"),
    }

    let offer = match validate_request(&request) {
        Ok(offer) => offer,
        Err(rejection) => return check_rejection(&rejection),
    };
    // §4.2.1 item 5: the key is base64 of 16 bytes, and it is the one the request sent.
    let nonce: [u8; 16] = BASE64
        .decode(offer.key())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .expect("an accepted key is base64 of 16 bytes");
    let sent: Vec<_> = request
        .headers()
        .get_all("sec-websocket-key")
        .iter()
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].as_bytes(), offer.key().as_bytes());

    let protocol = offer.protocols().first().map(String::as_str);
    let mut out = Vec::new();
    encode_response(&offer.response(protocol, None), &mut out);
    let head = parse_http_response(&out).expect("the 101 response does not parse");
    assert_eq!(
        head.len,
        out.len(),
        "the 101 response has bytes after its head"
    );
    assert_eq!(head.status, 101);
    assert_eq!(
        head.values("sec-websocket-accept"),
        [reference_accept(offer.key())],
        "Sec-WebSocket-Accept for key {:?}",
        offer.key()
    );
    assert!(head.has_token("upgrade", "websocket"));
    assert!(head.has_token("connection", "upgrade"));
    let expected_protocol: Vec<String> = protocol.map(str::to_owned).into_iter().collect();
    assert_eq!(head.values("sec-websocket-protocol"), expected_protocol);

    // The client side must accept what the server side built for its own request.
    let uri = "ws://fuzz.invalid/".parse().expect("a valid URI");
    let client = ClientHandshake::new(&uri, nonce).expect("a valid URI");
    if let Ok(client) = client.try_protocols(offer.protocols().iter().cloned()) {
        let (response, n) = ClientHandshake::parse_response(&out, MAX_HEAD)
            .expect("our 101 parses")
            .expect("our 101 is complete");
        assert_eq!(n, out.len());
        let answer = client
            .validate(&response)
            .expect("the client refuses the server's 101");
        assert_eq!(answer.protocol.as_deref(), protocol);
    }
}

/// A rejection is a client error whose bytes are a complete response with a one-line body
/// and the headers §4.4 and RFC 7231 require for its status.
fn check_rejection(rejection: &Rejection) {
    let status = rejection.status();
    assert!(status.is_client_error(), "refused with {status}");
    if !matches!(rejection.error, HandshakeError::Refused { .. }) {
        assert_eq!(rejection.error.status(), status);
    }
    let bytes = rejection.to_bytes();
    let head = parse_http_response(&bytes).expect("the rejection does not parse as HTTP");
    assert_eq!(head.status, status.as_u16());
    let body = &bytes[head.len..];
    let length = head.values("content-length");
    assert_eq!(length.len(), 1);
    assert_eq!(length[0], body.len().to_string(), "Content-Length");
    assert!(
        body.ends_with(b"\n") && body.iter().filter(|&&b| b == b'\n').count() == 1,
        "body is not one line"
    );
    assert!(std::str::from_utf8(body).is_ok());
    assert!(head.has_token("connection", "close"));
    if status.as_u16() == 426 {
        assert_eq!(head.values("sec-websocket-version"), ["13"]);
    }
    if status.as_u16() == 405 {
        assert_eq!(head.values("allow"), ["GET"]);
    }
}

/// The client side of the opening handshake on arbitrary bytes, for the RFC 6455 §1.3
/// sample key, offering two subprotocols and permessage-deflate.
pub fn handshake_response(data: &[u8]) {
    const NONCE: [u8; 16] = *b"the sample nonce";
    const OFFERED: [&str; 2] = ["chat", "superchat"];
    let uri = "ws://example.com/chat".parse().expect("a valid URI");
    let client = ClientHandshake::new(&uri, NONCE)
        .expect("a valid URI")
        .protocols(OFFERED)
        .extensions("permessage-deflate; client_max_window_bits");

    let (response, consumed) = match ClientHandshake::parse_response(data, MAX_HEAD) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            assert!(data.len() <= MAX_HEAD);
            return;
        }
        Err(_) => return,
    };
    assert!(consumed <= data.len());
    let head = parse_http_response(&data[..consumed]).expect("httparse disagrees about the head");
    assert_eq!(head.len, consumed);
    assert_eq!(head.status, response.status().as_u16());

    match client.validate(&response) {
        Ok(answer) => {
            assert_eq!(head.status, 101, "accepted a {} response", head.status);
            // §1.3: the accept value for "dGhlIHNhbXBsZSBub25jZQ==".
            assert_eq!(
                head.values("sec-websocket-accept"),
                ["s3pPLMBiTxaQ9kYGzzhZRbK+xOo="]
            );
            assert!(
                head.has_token("upgrade", "websocket"),
                "accepted without Upgrade: websocket"
            );
            assert!(
                head.has_token("connection", "upgrade"),
                "accepted without Connection: upgrade"
            );
            if let Some(protocol) = &answer.protocol {
                assert!(
                    OFFERED.contains(&protocol.as_str()),
                    "accepted unoffered subprotocol {protocol:?}"
                );
            }
            for extension in &answer.extensions {
                assert!(
                    extension.name.eq_ignore_ascii_case("permessage-deflate"),
                    "accepted {:?}",
                    extension.name
                );
            }
        }
        Err(HandshakeError::NotSwitchingProtocols(status)) => {
            assert_eq!(status.as_u16(), head.status);
            assert_ne!(head.status, 101);
        }
        Err(_) => assert_eq!(
            head.status, 101,
            "a {} response refused for another reason than its status",
            head.status
        ),
    }
}

/// `Sec-WebSocket-Accept` computed from RFC 6455 §4.2.2 step 5.4 directly.
fn reference_accept(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    BASE64.encode(sha1.finalize())
}

/// A response head as httparse reads it, independent of the code under test.
struct Head {
    status: u16,
    len: usize,
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    /// Every value of header `name`, in order. Bytes that are not UTF-8 become U+FFFD,
    /// so such a value never equals an expected ASCII one.
    fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// Whether some value of `name` lists `token` (RFC 7230 §7 list, case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name).iter().any(|value| {
            value
                .split(',')
                .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
        })
    }
}

fn parse_http_response(bytes: &[u8]) -> Option<Head> {
    let mut lines = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut lines);
    let httparse::Status::Complete(len) = response.parse(bytes).ok()? else {
        return None;
    };
    let headers = response
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    Some(Head {
        status: response.code?,
        len,
        headers,
    })
}
