//! The handshake's header grammar: the accept-key computation (RFC 6455 §4.2.2), comma-separated
//! token lists (RFC 7230 §7), `Sec-WebSocket-Extensions` (§9.1) and `Sec-WebSocket-Protocol`
//! (§4.1, §11.3.4), plus the one function that writes an HTTP/1.1 head.
//!
//! Every reader here looks at *all* occurrences of a header: HTTP allows a list-valued field
//! to be split over several lines, and a proxy may have done exactly that.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::header::AsHeaderName;
use http::header::SEC_WEBSOCKET_EXTENSIONS;
use http::HeaderMap;
use sha1::{Digest, Sha1};

use super::{Extension, HandshakeError};

/// The GUID that RFC 6455 §1.3 appends to the key before hashing it. Fixed by the RFC.
///
/// ```
/// use base64::Engine as _;
/// use sha1::{Digest, Sha1};
/// use switchboard_protocol::handshake::{accept_key, GUID};
///
/// // What accept_key computes, spelled out: base64(SHA-1(key + GUID)).
/// let key = "dGhlIHNhbXBsZSBub25jZQ==";
/// let digest = Sha1::digest(format!("{key}{GUID}"));
/// let accept = base64::engine::general_purpose::STANDARD.encode(digest);
/// assert_eq!(accept, accept_key(key.as_bytes()));
/// ```
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: base64 of the SHA-1 of the key
/// (as sent, still base64) followed by [`GUID`] (RFC 6455 §4.2.2, step 5.4).
///
/// ```
/// use switchboard_protocol::handshake::accept_key;
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// Whether any occurrence of header `name` lists `token`, compared ASCII case-insensitively.
///
/// The value is read as an RFC 7230 §7 list: elements separated by commas with optional
/// whitespace, so `Connection: keep-alive, Upgrade` (what Firefox sends) lists `upgrade`.
///
/// ```
/// use http::header::{HeaderMap, CONNECTION};
/// use switchboard_protocol::handshake::header_has_token;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(CONNECTION, "keep-alive, Upgrade".parse().unwrap());
/// assert!(header_has_token(&headers, CONNECTION, "upgrade"));
/// assert!(!header_has_token(&headers, CONNECTION, "close"));
/// ```
pub fn header_has_token(headers: &HeaderMap, name: impl AsHeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .any(|element| trim_ows(element).eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Parses every `Sec-WebSocket-Extensions` header, in order, into [`Extension`]s.
///
/// The grammar is RFC 6455 §9.1: `extension *( ";" extension-param )` elements in a comma
/// list, each parameter `token [ "=" ( token / quoted-string ) ]`. A quoted value is returned
/// unquoted, and — as §9.1 requires — must be a token once unquoted. Empty list elements are
/// skipped (RFC 7230 §7 asks recipients to tolerate them); anything else that does not fit
/// the grammar is [`HandshakeError::InvalidExtensions`].
///
/// ```
/// use http::header::{HeaderMap, SEC_WEBSOCKET_EXTENSIONS};
/// use switchboard_protocol::handshake::parse_extensions;
///
/// let mut headers = HeaderMap::new();
/// let value = r#"permessage-deflate; client_max_window_bits; server_max_window_bits="10", x-a"#;
/// headers.insert(SEC_WEBSOCKET_EXTENSIONS, value.parse().unwrap());
/// let extensions = parse_extensions(&headers)?;
/// assert_eq!(extensions.len(), 2);
/// assert_eq!(extensions[0].name, "permessage-deflate");
/// assert_eq!(extensions[0].params[0], ("client_max_window_bits".to_owned(), None));
/// assert_eq!(extensions[0].params[1].1.as_deref(), Some("10")); // unquoted
/// assert_eq!(extensions[1].name, "x-a");
/// # Ok::<(), switchboard_protocol::handshake::HandshakeError>(())
/// ```
pub fn parse_extensions(headers: &HeaderMap) -> Result<Vec<Extension>, HandshakeError> {
    let mut extensions = Vec::new();
    for value in headers.get_all(SEC_WEBSOCKET_EXTENSIONS) {
        ExtensionParser {
            input: value.as_bytes(),
            pos: 0,
        }
        .parse_into(&mut extensions)
        .map_err(HandshakeError::InvalidExtensions)?;
    }
    Ok(extensions)
}

/// Parses every `Sec-WebSocket-Protocol` header, in order, into subprotocol names.
///
/// Each is a comma list of tokens (RFC 6455 §4.1 item 10, §11.3.4); empty elements are
/// skipped, anything that is not a token is [`HandshakeError::InvalidProtocols`]. Names keep
/// their case: subprotocols are compared exactly.
///
/// ```
/// use http::header::{HeaderMap, SEC_WEBSOCKET_PROTOCOL};
/// use switchboard_protocol::handshake::{parse_protocols, HandshakeError};
///
/// let mut headers = HeaderMap::new();
/// headers.append(SEC_WEBSOCKET_PROTOCOL, "chat.v2, chat.v1".parse().unwrap());
/// headers.append(SEC_WEBSOCKET_PROTOCOL, "Legacy".parse().unwrap()); // a second line
/// assert_eq!(parse_protocols(&headers)?, ["chat.v2", "chat.v1", "Legacy"]);
/// headers.append(SEC_WEBSOCKET_PROTOCOL, "not a token".parse().unwrap());
/// assert_eq!(parse_protocols(&headers), Err(HandshakeError::InvalidProtocols));
/// # Ok::<(), HandshakeError>(())
/// ```
pub fn parse_protocols(headers: &HeaderMap) -> Result<Vec<String>, HandshakeError> {
    let mut protocols = Vec::new();
    for value in headers.get_all(http::header::SEC_WEBSOCKET_PROTOCOL) {
        for element in value.as_bytes().split(|&b| b == b',') {
            let element = trim_ows(element);
            if element.is_empty() {
                continue;
            }
            if !is_token(element) {
                return Err(HandshakeError::InvalidProtocols);
            }
            // A token is ASCII, so this cannot fail; the error path keeps it panic-free.
            let name =
                std::str::from_utf8(element).map_err(|_| HandshakeError::InvalidProtocols)?;
            protocols.push(name.to_owned());
        }
    }
    Ok(protocols)
}

/// Whether `s` is an RFC 7230 §3.2.6 `token`: one or more visible ASCII characters other than
/// the separators. Subprotocol and extension names must be tokens.
///
/// ```
/// use switchboard_protocol::handshake::is_token;
///
/// assert!(is_token("chat.v2"));
/// assert!(!is_token("chat v2")); // no spaces,
/// assert!(!is_token("a,b")); // no separators,
/// assert!(!is_token("")); // and not empty
/// ```
pub fn is_token(s: impl AsRef<[u8]>) -> bool {
    let s = s.as_ref();
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// The single occurrence of `name`, trimmed: `Ok(None)` when absent, `Err` when repeated.
/// Used for headers the RFC says appear once (`Host`, `Sec-WebSocket-Key`, …).
pub(super) fn single<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h [u8]>, HandshakeError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(HandshakeError::DuplicateHeader(name));
    }
    Ok(first.map(|v| trim_ows(v.as_bytes())))
}

/// Writes an HTTP/1.1 head: `start_line`, then each header as `Name: value`, then the empty
/// line. Header names go out in their canonical lower case, which HTTP/1.1 allows (field
/// names are case-insensitive, RFC 7230 §3.2).
pub(super) fn encode_head(start_line: &str, headers: &HeaderMap, dst: &mut Vec<u8>) {
    dst.extend_from_slice(start_line.as_bytes());
    dst.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// RFC 7230 §3.2.6 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Strips RFC 7230 `OWS` (spaces and tabs) from both ends.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A cursor over one `Sec-WebSocket-Extensions` value. Errors are short reasons; the caller
/// wraps them in [`HandshakeError::InvalidExtensions`].
struct ExtensionParser<'a> {
    input: &'a [u8],
    pos: usize,
}

impl ExtensionParser<'_> {
    fn parse_into(mut self, out: &mut Vec<Extension>) -> Result<(), String> {
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(()),
                // An empty list element, e.g. the second comma of `a,,b`.
                Some(b',') => self.pos += 1,
                Some(_) => out.push(self.extension()?),
            }
        }
    }

    /// `extension-token *( ";" extension-param )`, consuming the `,` that ends it.
    fn extension(&mut self) -> Result<Extension, String> {
        let name = self.token("an extension name")?;
        let mut params = Vec::new();
        loop {
            self.skip_ows();
            match self.peek() {
                None => break,
                Some(b',') => {
                    self.pos += 1;
                    break;
                }
                Some(b';') => {
                    self.pos += 1;
                    self.skip_ows();
                    let param = self.token("a parameter name")?;
                    self.skip_ows();
                    let value = if self.peek() == Some(b'=') {
                        self.pos += 1;
                        self.skip_ows();
                        Some(self.param_value(&param)?)
                    } else {
                        None
                    };
                    params.push((param, value));
                }
                Some(other) => return Err(self.unexpected(other)),
            }
        }
        Ok(Extension { name, params })
    }

    /// `token / quoted-string`; §9.1: a quoted value MUST be a token once unquoted.
    fn param_value(&mut self, param: &str) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return self.token("a parameter value");
        }
        self.pos += 1;
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(format!("unterminated quoted value for {param}")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                    match self.input.get(self.pos + 1) {
                        Some(&b) if b == b'\t' || b >= 0x20 && b != 0x7f => value.push(b),
                        _ => return Err(format!("bad escape in quoted value for {param}")),
                    }
                    self.pos += 2;
                }
                Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                    value.push(b);
                    self.pos += 1;
                }
                Some(b) => return Err(self.unexpected(b)),
            }
        }
        if !is_token(&value) {
            return Err(format!("quoted value for {param} is not a token"));
        }
        // A token is ASCII.
        String::from_utf8(value).map_err(|_| format!("quoted value for {param} is not a token"))
    }

    fn token(&mut self, what: &str) -> Result<String, String> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        match std::str::from_utf8(&self.input[start..self.pos]) {
            Ok(token) if !token.is_empty() => Ok(token.to_owned()),
            _ => Err(match self.peek() {
                Some(b) => format!("expected {what}, found {}", describe(b)),
                None => format!("expected {what}, found the end"),
            }),
        }
    }

    fn unexpected(&self, b: u8) -> String {
        format!("unexpected {} at byte {}", describe(b), self.pos)
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }
}

/// A byte as it should appear in an error message.
fn describe(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte {b:#04x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> Extension {
        Extension {
            name: name.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    /// RFC 6455 §1.3 and §4.2.2: the worked example.
    mod accept_key_computation {
        use super::*;

        #[test]
        fn rfc_sample_key_gives_rfc_sample_accept() {
            assert_eq!(
                accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
            );
        }

        #[test]
        fn different_key_gives_different_accept() {
            assert_ne!(
                accept_key(b"AAAAAAAAAAAAAAAAAAAAAA=="),
                "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
            );
        }
    }

    /// RFC 7230 §7: comma-separated lists, as used by `Upgrade` and `Connection`.
    mod token_lists {
        use super::*;

        #[test]
        fn single_token_any_case() {
            for value in ["Upgrade", "upgrade", "UPGRADE"] {
                let map = headers(&[("connection", value)]);
                assert!(header_has_token(&map, "connection", "upgrade"), "{value}");
            }
        }

        #[test]
        fn firefox_keep_alive_then_upgrade() {
            let map = headers(&[("connection", "keep-alive, Upgrade")]);
            assert!(header_has_token(&map, http::header::CONNECTION, "upgrade"));
        }

        #[test]
        fn tabs_and_no_spaces_around_commas() {
            let map = headers(&[("connection", "close,\tupgrade\t ,x")]);
            assert!(header_has_token(&map, "connection", "upgrade"));
        }

        #[test]
        fn token_in_a_later_duplicate_header() {
            let map = headers(&[("connection", "keep-alive"), ("connection", "Upgrade")]);
            assert!(header_has_token(&map, "connection", "upgrade"));
        }

        #[test]
        fn substring_is_not_a_token() {
            let map = headers(&[
                ("connection", "upgraded, no-upgrade"),
                ("upgrade", "websocket2"),
            ]);
            assert!(!header_has_token(&map, "connection", "upgrade"));
            assert!(!header_has_token(&map, "upgrade", "websocket"));
        }

        #[test]
        fn absent_header() {
            assert!(!header_has_token(&HeaderMap::new(), "upgrade", "websocket"));
        }
    }

    /// RFC 6455 §9.1: the `Sec-WebSocket-Extensions` grammar.
    mod extension_grammar {
        use super::*;

        fn parse(values: &[&'static str]) -> Result<Vec<Extension>, HandshakeError> {
            let pairs: Vec<_> = values
                .iter()
                .map(|v| ("sec-websocket-extensions", *v))
                .collect();
            parse_extensions(&headers(&pairs))
        }

        #[test]
        fn none_when_absent() {
            assert_eq!(parse(&[]).unwrap(), vec![]);
        }

        #[test]
        fn name_only() {
            assert_eq!(
                parse(&["permessage-deflate"]).unwrap(),
                vec![ext("permessage-deflate", &[])]
            );
        }

        #[test]
        fn chrome_offer() {
            assert_eq!(
                parse(&["permessage-deflate; client_max_window_bits"]).unwrap(),
                vec![ext(
                    "permessage-deflate",
                    &[("client_max_window_bits", None)]
                )]
            );
        }

        #[test]
        fn several_offers_params_and_whitespace() {
            assert_eq!(
                parse(&["permessage-deflate;server_max_window_bits=10 ; client_no_context_takeover , \tpermessage-deflate"])
                    .unwrap(),
                vec![
                    ext(
                        "permessage-deflate",
                        &[("server_max_window_bits", Some("10")), ("client_no_context_takeover", None)]
                    ),
                    ext("permessage-deflate", &[]),
                ]
            );
        }

        #[test]
        fn quoted_value_is_unquoted() {
            assert_eq!(
                parse(&[r#"x-ext; a="10"; b = "w\xy""#]).unwrap(),
                vec![ext("x-ext", &[("a", Some("10")), ("b", Some("wxy"))])]
            );
        }

        #[test]
        fn all_headers_in_order() {
            assert_eq!(
                parse(&["a; p=1", "b, c"]).unwrap(),
                vec![ext("a", &[("p", Some("1"))]), ext("b", &[]), ext("c", &[])]
            );
        }

        #[test]
        fn empty_elements_are_skipped() {
            assert_eq!(
                parse(&[", a,, b ,"]).unwrap(),
                vec![ext("a", &[]), ext("b", &[])]
            );
        }

        #[test]
        fn bad_syntax_is_an_error() {
            for bad in [
                "a b",          // two tokens without a separator
                "a;",           // missing parameter name
                "a; =1",        // missing parameter name
                "a; p=",        // missing value
                "a; p=1 2",     // junk after a value
                "a; p=\"1",     // unterminated quoted string
                "a; p=\"1 2\"", // quoted value that is not a token
                "a; p=\"\"",    // empty quoted value
                "a; p=\"x\\",   // escape at the end
                ";p",           // parameter without an extension
                "a/b",          // separator inside a name
                "a; p=(1)",     // separators are not a token
            ] {
                assert!(
                    matches!(parse(&[bad]), Err(HandshakeError::InvalidExtensions(_))),
                    "{bad:?} parsed"
                );
            }
        }

        #[test]
        fn one_bad_header_fails_the_lot() {
            assert!(parse(&["a", "b c"]).is_err());
        }
    }

    /// RFC 6455 §4.1 item 10 and §11.3.4: `Sec-WebSocket-Protocol` token lists.
    mod protocol_lists {
        use super::*;

        fn parse(values: &[&'static str]) -> Result<Vec<String>, HandshakeError> {
            let pairs: Vec<_> = values
                .iter()
                .map(|v| ("sec-websocket-protocol", *v))
                .collect();
            parse_protocols(&headers(&pairs))
        }

        #[test]
        fn tokens_across_headers_keep_case_and_order() {
            assert_eq!(
                parse(&["chat, Superchat", "v2.json"]).unwrap(),
                ["chat", "Superchat", "v2.json"]
            );
        }

        #[test]
        fn absent_or_empty_elements() {
            assert_eq!(parse(&[]).unwrap(), Vec::<String>::new());
            assert_eq!(parse(&[" , chat,"]).unwrap(), ["chat"]);
        }

        #[test]
        fn non_tokens_are_refused() {
            for bad in ["chat room", "a;b", "\"chat\"", "a/b"] {
                assert_eq!(
                    parse(&[bad]),
                    Err(HandshakeError::InvalidProtocols),
                    "{bad:?}"
                );
            }
        }
    }

    mod helpers {
        use super::*;

        #[test]
        fn tokens() {
            assert!(is_token("permessage-deflate"));
            assert!(is_token("!#$%&'*+-.^_`|~09azAZ"));
            for bad in ["", "a b", "a,b", "a\"", "é", "a=b", "a\t"] {
                assert!(!is_token(bad), "{bad:?}");
            }
        }

        #[test]
        fn single_header_rules() {
            let map = headers(&[("host", " example.com "), ("x", "1"), ("x", "2")]);
            assert_eq!(single(&map, "host").unwrap(), Some(&b"example.com"[..]));
            assert_eq!(single(&map, "y").unwrap(), None);
            assert_eq!(single(&map, "x"), Err(HandshakeError::DuplicateHeader("x")));
        }

        #[test]
        fn head_encoding() {
            let map = headers(&[("upgrade", "websocket"), ("x", "1"), ("x", "2")]);
            let mut out = Vec::new();
            encode_head("HTTP/1.1 101 Switching Protocols", &map, &mut out);
            assert_eq!(
                out,
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nx: 1\r\nx: 2\r\n\r\n"
            );
        }
    }
}
