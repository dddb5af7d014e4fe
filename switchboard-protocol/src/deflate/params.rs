//! permessage-deflate negotiation (RFC 7692 §5, §7.1): the client's offers, the server's
//! choice and response, and the client's check of that response.
//!
//! Parameters are parsed once into [`Params`] (parse, don't validate); the rules that depend
//! on who is speaking (offer or response) live in [`Params::parse`], the rules that depend on
//! what was offered live in [`Offer::agree`].

use crate::handshake::Extension;
use std::fmt;

/// The extension token (RFC 7692 §7).
pub(super) const EXTENSION_NAME: &str = "permessage-deflate";

/// The smallest window RFC 7692 §7.1.2 allows on the wire.
const MIN_WINDOW_BITS: u8 = 8;
/// The largest window, and the one in force when nothing is negotiated (§7.1.2).
pub(super) const MAX_WINDOW_BITS: u8 = 15;

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// Policy for permessage-deflate on one side: what we offer (client) or accept (server).
///
/// As a client, the `server_*` fields are what we ask of the server and the `client_*`
/// fields what we promise; as a server, the `server_*` fields bind our compressor and the
/// `client_*` fields are what we ask of the client where the offer lets us (§7.1).
/// Window sizes outside 8–15 are clamped into that range.
///
/// ```
/// use switchboard_protocol::deflate::DeflateConfig;
///
/// // A client that keeps no state between messages and a small window: less memory.
/// let config = DeflateConfig {
///     client_no_context_takeover: true,
///     client_max_window_bits: 10,
///     ..DeflateConfig::default()
/// };
/// assert_eq!(
///     config.client_offer(),
///     "permessage-deflate; client_no_context_takeover; client_max_window_bits=10"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// zlib compression level, 0–9 (larger values count as 9). Default 1: most of the
    /// ratio for a fraction of the CPU.
    pub level: u32,
    /// The largest LZ77 window the server compresses with, 8–15. zlib runs an agreed 8 with
    /// its 9-bit window, which never reaches back more than 250 bytes (see `codec`).
    pub server_max_window_bits: u8,
    /// The largest LZ77 window the client compresses with, 8–15.
    pub client_max_window_bits: u8,
    /// Ask for / grant `server_no_context_takeover`.
    pub server_no_context_takeover: bool,
    /// Ask for / grant `client_no_context_takeover`.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this are sent uncompressed.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 1,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            threshold: 32,
        }
    }
}

/// The parameters both sides agreed on.
///
/// ```
/// use http::header::{HeaderMap, SEC_WEBSOCKET_EXTENSIONS};
/// use switchboard_protocol::deflate::{DeflateConfig, DeflateParams};
/// use switchboard_protocol::handshake::parse_extensions;
/// use switchboard_protocol::{Config, Connection};
///
/// let mut headers = HeaderMap::new(); // the client's request headers
/// let offer = "permessage-deflate; server_max_window_bits=10";
/// headers.insert(SEC_WEBSOCKET_EXTENSIONS, offer.parse()?);
/// let offers = parse_extensions(&headers)?;
/// let (params, response) = DeflateConfig::default().server_accept(&offers)?.expect("accepted");
/// assert_eq!(response, "permessage-deflate; server_max_window_bits=10"); // for the 101
/// let agreed = DeflateParams {
///     server_no_context_takeover: false,
///     client_no_context_takeover: false,
///     server_max_window_bits: 10,
///     client_max_window_bits: 15, // not negotiated: the RFC's default
/// };
/// assert_eq!(params, agreed);
/// let server = Connection::server(Config::default()).with_deflate(params);
/// assert!(server.is_compressed());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The largest window the server compresses with (8–15; 15 if not negotiated).
    pub server_max_window_bits: u8,
    /// The largest window the client compresses with (8–15; 15 if not negotiated).
    pub client_max_window_bits: u8,
}

/// Why permessage-deflate negotiation failed; the text names the parameter and the rule.
///
/// ```
/// use switchboard_protocol::deflate::DeflateConfig;
/// use switchboard_protocol::handshake::Extension;
///
/// // We asked for a server window of at most 10 bits; the server answers 12.
/// let config = DeflateConfig { server_max_window_bits: 10, ..DeflateConfig::default() };
/// let response = Extension {
///     name: "permessage-deflate".to_owned(),
///     params: vec![("server_max_window_bits".to_owned(), Some("12".to_owned()))],
/// };
/// let error = config.client_accept(&[response]).unwrap_err(); // fail the handshake
/// assert!(error.0.ends_with("server_max_window_bits=12 is larger than the 10 we asked for"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permessage-deflate negotiation failed: {0}")]
pub struct NegotiationError(pub String);

impl DeflateConfig {
    /// Client: the `Sec-WebSocket-Extensions` value to offer.
    ///
    /// One offer with every configured parameter, and always `client_max_window_bits`
    /// (with our limit as its value when it is below 15), because we can honour any window
    /// the server asks for (RFC 7692 §7.1.2.2). A single offer keeps the response
    /// unambiguous: with several, a response could match a looser offer and the checks
    /// below ("no larger window than we asked") would lose their meaning.
    pub fn client_offer(&self) -> String {
        self.client_offer_params().header_value()
    }

    /// Client: checks the server's accepted extensions. `Ok(None)` if the server declined.
    ///
    /// We offer no other extension, so every entry must be `permessage-deflate`, and only one
    /// (RFC 6455 §9.1). The response must be well formed (no unknown or repeated parameter,
    /// window bits 8–15 written without leading zeros, no value on a flag) and must match one
    /// of our offers (RFC 7692 §7.1): a window no larger than we asked, the
    /// `server_no_context_takeover` we asked for, and `client_max_window_bits` only if offered.
    /// Anything else fails the handshake, as RFC 7692 §7 requires of a client.
    pub fn client_accept(
        &self,
        accepted: &[Extension],
    ) -> Result<Option<DeflateParams>, NegotiationError> {
        let mut response = None;
        for extension in accepted {
            if !is_deflate(extension) {
                return Err(NegotiationError(format!(
                    "the server accepted the extension `{}`, which was not offered",
                    extension.name
                )));
            }
            if response.replace(extension).is_some() {
                return Err(NegotiationError(
                    "the server accepted permessage-deflate twice".to_owned(),
                ));
            }
        }
        let Some(response) = response else {
            return Ok(None);
        };
        let params = Params::parse(response, Speaker::Server)
            .map_err(|e| NegotiationError(format!("invalid response: {e}")))?;
        self.client_offer_params()
            .agree(&params)
            .map(Some)
            .map_err(|mismatch| {
                NegotiationError(format!("the response does not fit our offer: {mismatch}"))
            })
    }

    /// Server: picks the first acceptable offer. Returns the agreed parameters and the
    /// `Sec-WebSocket-Extensions` response value, or `Ok(None)` if nothing was offered
    /// that we accept.
    ///
    /// Offers are tried in the client's order of preference (RFC 7692 §5). An offer with an
    /// unknown parameter, a repeated parameter or an invalid value is *declined*, not failed:
    /// RFC 7692 §7 says "a server MUST decline an extension negotiation offer" in exactly
    /// these cases, and the connection then goes on without compression or with a later
    /// offer. We support every configuration the RFC defines (window bits 8–15, both
    /// no-context-takeover flags), so a well-formed offer is always accepted. The `Err` arm
    /// is therefore never taken today; it stays so a stricter policy needs no API change.
    pub fn server_accept(
        &self,
        offers: &[Extension],
    ) -> Result<Option<(DeflateParams, String)>, NegotiationError> {
        let accepted = offers
            .iter()
            .filter(|extension| is_deflate(extension))
            .find_map(|extension| Params::parse(extension, Speaker::Client).ok())
            .map(|offer| self.server_response(&offer));
        Ok(accepted)
    }

    /// Our offer.
    fn client_offer_params(&self) -> Offer {
        Offer {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: Some(clamp_bits(self.server_max_window_bits))
                .filter(|&bits| bits < MAX_WINDOW_BITS),
            client_max_window_bits: Some(clamp_bits(self.client_max_window_bits)),
        }
    }

    /// Server: the agreement and response value for a well-formed `offer`.
    fn server_response(&self, offer: &Params) -> (DeflateParams, String) {
        // §7.1.1.1: the server accepts server_no_context_takeover by echoing it, and may
        // send it unasked (our config).
        let server_no_context_takeover =
            offer.server_no_context_takeover || self.server_no_context_takeover;
        // §7.1.1.2: the server may forbid client context takeover; a client that offered
        // it has promised it anyway, so we echo it to make the agreement explicit.
        let client_no_context_takeover =
            offer.client_no_context_takeover || self.client_no_context_takeover;
        // §7.1.2.1: answer with the same or a smaller value than asked; without a request
        // we may still announce our own limit.
        let own_server_bits = clamp_bits(self.server_max_window_bits);
        let server_max_window_bits = match offer.server_max_window_bits {
            Some(asked) => Some(asked.min(own_server_bits)),
            None => Some(own_server_bits).filter(|&bits| bits < MAX_WINDOW_BITS),
        };
        // §7.1.2.2: only if offered may the response carry client_max_window_bits, and its
        // value must not exceed the offered one. Without it in the offer the client may
        // use 15 bits whatever our config says; we accept that rather than decline, since
        // our inflater copes with any window (the config is a memory preference).
        let own_client_bits = clamp_bits(self.client_max_window_bits);
        let client_max_window_bits = match offer.client_max_window_bits {
            ClientBits::Absent => None,
            ClientBits::NoValue => Some(own_client_bits),
            ClientBits::Value(limit) => Some(limit.min(own_client_bits)),
        }
        .filter(|&bits| bits < MAX_WINDOW_BITS);

        let agreed = DeflateParams {
            server_no_context_takeover,
            client_no_context_takeover,
            server_max_window_bits: server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
            client_max_window_bits: client_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
        };
        let mut value = String::from(EXTENSION_NAME);
        if server_no_context_takeover {
            push_param(&mut value, SERVER_NO_CONTEXT_TAKEOVER, None);
        }
        if client_no_context_takeover {
            push_param(&mut value, CLIENT_NO_CONTEXT_TAKEOVER, None);
        }
        if let Some(bits) = server_max_window_bits {
            push_param(&mut value, SERVER_MAX_WINDOW_BITS, Some(bits));
        }
        if let Some(bits) = client_max_window_bits {
            push_param(&mut value, CLIENT_MAX_WINDOW_BITS, Some(bits));
        }
        (agreed, value)
    }
}

/// Clamps a configured window size into the range RFC 7692 §7.1.2 allows.
///
/// Configs are plain structs, so an out-of-range value is a local mistake; clamping keeps the
/// wire correct without a panic.
pub(super) fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

fn is_deflate(extension: &Extension) -> bool {
    extension.name.eq_ignore_ascii_case(EXTENSION_NAME)
}

fn push_param(value: &mut String, name: &str, bits: Option<u8>) {
    value.push_str("; ");
    value.push_str(name);
    if let Some(bits) = bits {
        value.push('=');
        value.push_str(&bits.to_string());
    }
}

/// Who wrote the parameters: the rules for `client_max_window_bits` differ (§7.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaker {
    /// An offer: `client_max_window_bits` may come without a value.
    Client,
    /// A response: every window parameter carries a value.
    Server,
}

/// `client_max_window_bits` as written in an offer or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientBits {
    /// Not present.
    Absent,
    /// Present without a value: the client can limit its window (offers only).
    NoValue,
    /// Present with a value.
    Value(u8),
}

/// The permessage-deflate parameters of one offer or response, syntactically valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: ClientBits,
}

/// Why a parameter list is malformed (RFC 7692 §7: unknown name, repeated name, bad value).
#[derive(Debug, Clone, PartialEq, Eq)]
enum ParamError {
    Unknown(String),
    Repeated(&'static str),
    UnexpectedValue(&'static str),
    MissingValue(&'static str),
    BadWindowBits(&'static str, String),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Unknown(name) => write!(f, "unknown parameter `{name}`"),
            ParamError::Repeated(name) => write!(f, "parameter `{name}` given more than once"),
            ParamError::UnexpectedValue(name) => write!(f, "parameter `{name}` takes no value"),
            ParamError::MissingValue(name) => write!(f, "parameter `{name}` needs a value"),
            ParamError::BadWindowBits(name, value) => write!(
                f,
                "parameter `{name}` has value `{value}`; expected 8 to 15 without leading zeros"
            ),
        }
    }
}

impl Params {
    /// Parses `extension`'s parameters under the §7.1 syntax rules for `speaker`.
    fn parse(extension: &Extension, speaker: Speaker) -> Result<Params, ParamError> {
        let mut params = Params {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: ClientBits::Absent,
        };
        let mut seen = [false; 4];
        for (name, value) in &extension.params {
            let value = value.as_deref();
            let (index, canonical) = match name.to_ascii_lowercase().as_str() {
                SERVER_NO_CONTEXT_TAKEOVER => (0, SERVER_NO_CONTEXT_TAKEOVER),
                CLIENT_NO_CONTEXT_TAKEOVER => (1, CLIENT_NO_CONTEXT_TAKEOVER),
                SERVER_MAX_WINDOW_BITS => (2, SERVER_MAX_WINDOW_BITS),
                CLIENT_MAX_WINDOW_BITS => (3, CLIENT_MAX_WINDOW_BITS),
                _ => return Err(ParamError::Unknown(name.clone())),
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(ParamError::Repeated(canonical));
            }
            match index {
                0 | 1 => {
                    if value.is_some() {
                        return Err(ParamError::UnexpectedValue(canonical));
                    }
                    if index == 0 {
                        params.server_no_context_takeover = true;
                    } else {
                        params.client_no_context_takeover = true;
                    }
                }
                2 => {
                    let value = value.ok_or(ParamError::MissingValue(canonical))?;
                    params.server_max_window_bits = Some(parse_bits(canonical, value)?);
                }
                _ => {
                    params.client_max_window_bits = match (value, speaker) {
                        (Some(value), _) => ClientBits::Value(parse_bits(canonical, value)?),
                        (None, Speaker::Client) => ClientBits::NoValue,
                        (None, Speaker::Server) => return Err(ParamError::MissingValue(canonical)),
                    };
                }
            }
        }
        Ok(params)
    }
}

/// Parses a window size: `1*DIGIT` without leading zeros, 8–15 (§7.1.2.1). A value may
/// arrive in quoted-string form; after unquoting it must meet the same rule (§7.1).
fn parse_bits(name: &'static str, value: &str) -> Result<u8, ParamError> {
    let digits = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let bad = || ParamError::BadWindowBits(name, value.to_owned());
    if digits.is_empty() || digits.len() > 2 || digits.starts_with('0') {
        return Err(bad());
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let bits: u8 = digits.parse().map_err(|_| bad())?;
    if (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) {
        Ok(bits)
    } else {
        Err(bad())
    }
}

/// One offer a client sends, as it sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// `None`: not requested.
    server_max_window_bits: Option<u8>,
    /// `None`: not offered. Ours always offer it (we can honour any limit); the value is
    /// written only when below 15.
    client_max_window_bits: Option<u8>,
}

/// Why a well-formed response does not fit one of our offers (§7.1.1.1, §7.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mismatch {
    MissingServerNoContextTakeover,
    MissingServerMaxWindowBits(u8),
    ServerWindowTooLarge { asked: u8, got: u8 },
    ClientWindowNotOffered,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::MissingServerNoContextTakeover => {
                write!(
                    f,
                    "we asked for server_no_context_takeover, the server did not grant it"
                )
            }
            Mismatch::MissingServerMaxWindowBits(asked) => write!(
                f,
                "we asked for server_max_window_bits={asked}, the server did not grant it"
            ),
            Mismatch::ServerWindowTooLarge { asked, got } => write!(
                f,
                "server_max_window_bits={got} is larger than the {asked} we asked for"
            ),
            Mismatch::ClientWindowNotOffered => {
                write!(
                    f,
                    "client_max_window_bits in the response, but we did not offer it"
                )
            }
        }
    }
}

impl Offer {
    fn header_value(&self) -> String {
        let mut value = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            push_param(&mut value, SERVER_NO_CONTEXT_TAKEOVER, None);
        }
        if self.client_no_context_takeover {
            push_param(&mut value, CLIENT_NO_CONTEXT_TAKEOVER, None);
        }
        if let Some(bits) = self.server_max_window_bits {
            push_param(&mut value, SERVER_MAX_WINDOW_BITS, Some(bits));
        }
        if let Some(bits) = self.client_max_window_bits {
            let bits = Some(bits).filter(|&b| b < MAX_WINDOW_BITS);
            push_param(&mut value, CLIENT_MAX_WINDOW_BITS, bits);
        }
        value
    }

    /// Client: the agreement if `response` accepts this offer.
    fn agree(&self, response: &Params) -> Result<DeflateParams, Mismatch> {
        // §7.1.1.1: a server accepts server_no_context_takeover by including it.
        if self.server_no_context_takeover && !response.server_no_context_takeover {
            return Err(Mismatch::MissingServerNoContextTakeover);
        }
        // §7.1.2.1: ... with the same or smaller value as the offer.
        let server_max_window_bits =
            match (self.server_max_window_bits, response.server_max_window_bits) {
                (Some(asked), None) => return Err(Mismatch::MissingServerMaxWindowBits(asked)),
                (Some(asked), Some(got)) if got > asked => {
                    return Err(Mismatch::ServerWindowTooLarge { asked, got })
                }
                (_, got) => got.unwrap_or(MAX_WINDOW_BITS),
            };
        // §7.1.2.2: a client MUST fail if the response has client_max_window_bits it did
        // not offer. A larger value than we offered is harmless: we keep our own limit.
        let own_client_bits = self.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS);
        let client_max_window_bits = match response.client_max_window_bits {
            ClientBits::Absent => own_client_bits,
            _ if self.client_max_window_bits.is_none() => {
                return Err(Mismatch::ClientWindowNotOffered)
            }
            ClientBits::Value(bits) => bits.min(own_client_bits),
            // `Params::parse` rejects a value-less client_max_window_bits in a response.
            ClientBits::NoValue => own_client_bits,
        };
        Ok(DeflateParams {
            server_no_context_takeover: response.server_no_context_takeover,
            // §7.1.1.2: we honour our own offer even if the server does not repeat it.
            client_no_context_takeover: response.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits,
            client_max_window_bits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a header value like `permessage-deflate; a; b=1, other` (test helper only; the
    /// real parser is the handshake's).
    fn extensions(header: &str) -> Vec<Extension> {
        header
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|item| {
                let mut parts = item.split(';').map(str::trim);
                let name = parts.next().unwrap_or_default().to_owned();
                let params = parts
                    .map(|p| match p.split_once('=') {
                        Some((k, v)) => (k.trim().to_owned(), Some(v.trim().to_owned())),
                        None => (p.to_owned(), None),
                    })
                    .collect();
                Extension { name, params }
            })
            .collect()
    }

    fn params(snct: bool, cnct: bool, sbits: u8, cbits: u8) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
        }
    }

    mod parse {
        use super::*;

        fn parse(header: &str, speaker: Speaker) -> Result<Params, ParamError> {
            Params::parse(&extensions(header)[0], speaker)
        }

        #[test]
        fn window_bits_syntax() {
            for (value, ok) in [
                ("8", Some(8)),
                ("9", Some(9)),
                ("15", Some(15)),
                ("\"10\"", Some(10)),
                ("7", None),
                ("16", None),
                ("0", None),
                ("09", None),
                ("010", None),
                ("+9", None),
                ("-9", None),
                ("", None),
                ("9a", None),
                ("1e1", None),
                ("\"\"", None),
                ("\"", None),
                ("255", None),
            ] {
                assert_eq!(parse_bits("x", value).ok(), ok, "value {value:?}");
            }
        }

        #[test]
        fn every_malformation() {
            use ParamError::*;
            let cases: &[(&str, Speaker, ParamError)] = &[
                (
                    "permessage-deflate; foo",
                    Speaker::Client,
                    Unknown("foo".into()),
                ),
                (
                    "permessage-deflate; foo=1",
                    Speaker::Server,
                    Unknown("foo".into()),
                ),
                (
                    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                    Speaker::Client,
                    Repeated(SERVER_NO_CONTEXT_TAKEOVER),
                ),
                (
                    "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
                    Speaker::Client,
                    Repeated(CLIENT_MAX_WINDOW_BITS),
                ),
                (
                    "permessage-deflate; Server_Max_Window_Bits=10; server_max_window_bits=10",
                    Speaker::Server,
                    Repeated(SERVER_MAX_WINDOW_BITS),
                ),
                (
                    "permessage-deflate; client_no_context_takeover=1",
                    Speaker::Client,
                    UnexpectedValue(CLIENT_NO_CONTEXT_TAKEOVER),
                ),
                (
                    "permessage-deflate; server_no_context_takeover=true",
                    Speaker::Server,
                    UnexpectedValue(SERVER_NO_CONTEXT_TAKEOVER),
                ),
                (
                    "permessage-deflate; server_max_window_bits",
                    Speaker::Client,
                    MissingValue(SERVER_MAX_WINDOW_BITS),
                ),
                (
                    "permessage-deflate; client_max_window_bits",
                    Speaker::Server,
                    MissingValue(CLIENT_MAX_WINDOW_BITS),
                ),
                (
                    "permessage-deflate; server_max_window_bits=16",
                    Speaker::Client,
                    BadWindowBits(SERVER_MAX_WINDOW_BITS, "16".into()),
                ),
                (
                    "permessage-deflate; client_max_window_bits=7",
                    Speaker::Server,
                    BadWindowBits(CLIENT_MAX_WINDOW_BITS, "7".into()),
                ),
            ];
            for (header, speaker, error) in cases {
                assert_eq!(parse(header, *speaker).as_ref(), Err(error), "{header}");
                // Every reason reads as a sentence naming the parameter.
                assert!(error.to_string().contains('`'), "{error}");
            }
        }

        #[test]
        fn well_formed() {
            let p = parse(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits",
                Speaker::Client,
            )
            .unwrap();
            assert_eq!(
                p,
                Params {
                    server_no_context_takeover: true,
                    client_no_context_takeover: true,
                    server_max_window_bits: Some(10),
                    client_max_window_bits: ClientBits::NoValue,
                }
            );
        }
    }

    mod client {
        use super::*;

        #[test]
        fn offers() {
            let cases: &[(DeflateConfig, &str)] = &[
                (
                    DeflateConfig::default(),
                    "permessage-deflate; client_max_window_bits",
                ),
                (
                    DeflateConfig {
                        client_max_window_bits: 10,
                        client_no_context_takeover: true,
                        ..DeflateConfig::default()
                    },
                    "permessage-deflate; client_no_context_takeover; client_max_window_bits=10",
                ),
                (
                    DeflateConfig {
                        server_no_context_takeover: true,
                        server_max_window_bits: 9,
                        ..DeflateConfig::default()
                    },
                    "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; \
                     client_max_window_bits",
                ),
                (
                    DeflateConfig {
                        server_max_window_bits: 3,
                        client_max_window_bits: 200,
                        ..DeflateConfig::default()
                    },
                    "permessage-deflate; server_max_window_bits=8; client_max_window_bits",
                ),
            ];
            for (config, expected) in cases {
                assert_eq!(config.client_offer(), *expected);
            }
        }

        #[test]
        fn accepts() {
            let default = DeflateConfig::default();
            let asking = DeflateConfig {
                server_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 12,
                client_no_context_takeover: true,
                ..DeflateConfig::default()
            };
            let cases: &[(&DeflateConfig, &str, Option<DeflateParams>)] = &[
                (&default, "", None),
                (
                    &default,
                    "permessage-deflate",
                    Some(params(false, false, 15, 15)),
                ),
                (
                    &default,
                    "PerMessage-Deflate",
                    Some(params(false, false, 15, 15)),
                ),
                (
                    &default,
                    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                    Some(params(true, true, 15, 15)),
                ),
                (
                    &default,
                    "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8",
                    Some(params(false, false, 9, 8)),
                ),
                (
                    &default,
                    "permessage-deflate; client_max_window_bits=\"10\"",
                    Some(params(false, false, 15, 10)),
                ),
                // Our preferred offer granted, possibly tighter than asked.
                (
                    &asking,
                    "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
                    Some(params(true, true, 9, 12)),
                ),
                // A larger client window than we offered: we keep ours.
                (
                    &asking,
                    "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
                     client_max_window_bits=15",
                    Some(params(true, true, 10, 12)),
                ),
                (
                    &asking,
                    "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
                     client_max_window_bits=9",
                    Some(params(true, true, 10, 9)),
                ),
            ];
            for (config, response, expected) in cases {
                assert_eq!(
                    config.client_accept(&extensions(response)),
                    Ok(*expected),
                    "{response}"
                );
            }
        }

        #[test]
        fn rejects() {
            let default = DeflateConfig::default();
            let asking = DeflateConfig {
                server_no_context_takeover: true,
                server_max_window_bits: 10,
                ..DeflateConfig::default()
            };
            let only_window = DeflateConfig {
                server_max_window_bits: 10,
                ..DeflateConfig::default()
            };
            let only_takeover = DeflateConfig {
                server_no_context_takeover: true,
                ..DeflateConfig::default()
            };
            let cases: &[(&DeflateConfig, &str, &str)] = &[
                (
                    &default,
                    "x-webkit-deflate-frame",
                    "`x-webkit-deflate-frame`, which was not offered",
                ),
                (
                    &default,
                    "permessage-deflate, permessage-deflate",
                    "accepted permessage-deflate twice",
                ),
                (
                    &default,
                    "permessage-deflate; foo",
                    "unknown parameter `foo`",
                ),
                (
                    &default,
                    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                    "`server_no_context_takeover` given more than once",
                ),
                (
                    &default,
                    "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
                    "`client_max_window_bits` given more than once",
                ),
                (
                    &default,
                    "permessage-deflate; client_no_context_takeover=yes",
                    "`client_no_context_takeover` takes no value",
                ),
                (
                    &default,
                    "permessage-deflate; client_max_window_bits",
                    "`client_max_window_bits` needs a value",
                ),
                (
                    &default,
                    "permessage-deflate; server_max_window_bits",
                    "`server_max_window_bits` needs a value",
                ),
                (
                    &default,
                    "permessage-deflate; server_max_window_bits=16",
                    "`server_max_window_bits` has value `16`",
                ),
                (
                    &default,
                    "permessage-deflate; client_max_window_bits=07",
                    "`client_max_window_bits` has value `07`",
                ),
                // The response must fit our offer.
                (
                    &asking,
                    "permessage-deflate; server_max_window_bits=11; server_no_context_takeover",
                    "server_max_window_bits=11 is larger than the 10 we asked for",
                ),
                (
                    &only_window,
                    "permessage-deflate; server_max_window_bits=12",
                    "server_max_window_bits=12 is larger than the 10 we asked for",
                ),
                (
                    &asking,
                    "permessage-deflate; server_max_window_bits=10",
                    "we asked for server_no_context_takeover, the server did not grant it",
                ),
                (
                    &asking,
                    "permessage-deflate; server_no_context_takeover",
                    "we asked for server_max_window_bits=10, the server did not grant it",
                ),
                (
                    &only_takeover,
                    "permessage-deflate; server_max_window_bits=20",
                    "has value `20`",
                ),
            ];
            for (config, response, reason) in cases {
                let error = config.client_accept(&extensions(response)).unwrap_err();
                assert!(error.0.contains(reason), "{response}: got {error}");
            }
        }

        #[test]
        fn client_max_window_bits_not_offered() {
            let offer = Offer {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: None,
                client_max_window_bits: None,
            };
            let response = Params {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: None,
                client_max_window_bits: ClientBits::Value(10),
            };
            assert_eq!(
                offer.agree(&response),
                Err(Mismatch::ClientWindowNotOffered)
            );
            let offered = Offer {
                client_max_window_bits: Some(15),
                ..offer
            };
            assert_eq!(offered.agree(&response), Ok(params(false, false, 15, 10)));
            assert!(Mismatch::ClientWindowNotOffered
                .to_string()
                .contains("we did not offer it"));
        }
    }

    mod server {
        use super::*;

        fn accept(config: &DeflateConfig, offers: &str) -> Option<(DeflateParams, String)> {
            config.server_accept(&extensions(offers)).unwrap()
        }

        #[test]
        fn responses() {
            let default = DeflateConfig::default();
            let frugal = DeflateConfig {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: 10,
                client_max_window_bits: 11,
                ..DeflateConfig::default()
            };
            type Case<'a> = (&'a DeflateConfig, &'a str, Option<(DeflateParams, &'a str)>);
            let cases: &[Case] = &[
                (&default, "", None),
                (&default, "x-webkit-deflate-frame", None),
                (
                    &default,
                    "permessage-deflate",
                    Some((params(false, false, 15, 15), "permessage-deflate")),
                ),
                (
                    &default,
                    "permessage-deflate; client_max_window_bits",
                    Some((params(false, false, 15, 15), "permessage-deflate")),
                ),
                // Chromium's offer.
                (
                    &default,
                    "permessage-deflate; client_max_window_bits; server_no_context_takeover",
                    Some((
                        params(true, false, 15, 15),
                        "permessage-deflate; server_no_context_takeover",
                    )),
                ),
                (
                    &default,
                    "permessage-deflate; client_no_context_takeover",
                    Some((
                        params(false, true, 15, 15),
                        "permessage-deflate; client_no_context_takeover",
                    )),
                ),
                (
                    &default,
                    "permessage-deflate; server_max_window_bits=10",
                    Some((
                        params(false, false, 10, 15),
                        "permessage-deflate; server_max_window_bits=10",
                    )),
                ),
                // 8 is answered as 8; the compressor keeps to it (see codec docs).
                (
                    &default,
                    "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
                    Some((
                        params(false, false, 8, 8),
                        "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
                    )),
                ),
                (
                    &default,
                    "permessage-deflate; client_max_window_bits=9",
                    Some((
                        params(false, false, 15, 9),
                        "permessage-deflate; client_max_window_bits=9",
                    )),
                ),
                // Our config imposes its limits where the RFC lets it.
                (
                    &frugal,
                    "permessage-deflate; client_max_window_bits",
                    Some((
                        params(true, true, 10, 11),
                        "permessage-deflate; server_no_context_takeover; \
                         client_no_context_takeover; server_max_window_bits=10; \
                         client_max_window_bits=11",
                    )),
                ),
                (
                    &frugal,
                    "permessage-deflate; server_max_window_bits=9; client_max_window_bits=12",
                    Some((
                        params(true, true, 9, 11),
                        "permessage-deflate; server_no_context_takeover; \
                         client_no_context_takeover; server_max_window_bits=9; \
                         client_max_window_bits=11",
                    )),
                ),
                (
                    &frugal,
                    "permessage-deflate; client_max_window_bits=9",
                    Some((
                        params(true, true, 10, 9),
                        "permessage-deflate; server_no_context_takeover; \
                         client_no_context_takeover; server_max_window_bits=10; \
                         client_max_window_bits=9",
                    )),
                ),
                // No client_max_window_bits offered: we must not send it (§7.1.2.2) and
                // accept the client's 15-bit window.
                (
                    &frugal,
                    "permessage-deflate",
                    Some((
                        params(true, true, 10, 15),
                        "permessage-deflate; server_no_context_takeover; \
                         client_no_context_takeover; server_max_window_bits=10",
                    )),
                ),
            ];
            for (config, offers, expected) in cases {
                let expected = expected.map(|(p, v)| (p, v.to_owned()));
                assert_eq!(accept(config, offers), expected, "{offers}");
            }
        }

        /// RFC 7692 §7: "A server MUST decline an extension negotiation offer" with an
        /// unknown or repeated parameter or an invalid value; the next offer is tried.
        #[test]
        fn declines_malformed_offers_and_takes_the_next() {
            let default = DeflateConfig::default();
            for bad in [
                "permessage-deflate; foo",
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
                "permessage-deflate; server_max_window_bits",
                "permessage-deflate; server_max_window_bits=7",
                "permessage-deflate; server_max_window_bits=16",
                "permessage-deflate; client_max_window_bits=010",
                "permessage-deflate; client_no_context_takeover=1",
                "permessage-deflate; server_no_context_takeover=\"\"",
            ] {
                assert_eq!(accept(&default, bad), None, "{bad}");
                let with_fallback =
                    format!("{bad}, x-foo, permessage-deflate; server_max_window_bits=12");
                assert_eq!(
                    accept(&default, &with_fallback),
                    Some((
                        params(false, false, 12, 15),
                        "permessage-deflate; server_max_window_bits=12".to_owned()
                    )),
                    "{with_fallback}"
                );
            }
        }

        #[test]
        fn first_acceptable_offer_wins() {
            let offers = "permessage-deflate; server_max_window_bits=10, permessage-deflate";
            let (agreed, _) = accept(&DeflateConfig::default(), offers).unwrap();
            assert_eq!(agreed.server_max_window_bits, 10);
        }

        /// What the server answers, the client accepts, and both sides agree.
        #[test]
        fn round_trip_with_our_client() {
            let configs = [
                DeflateConfig::default(),
                DeflateConfig {
                    server_no_context_takeover: true,
                    client_max_window_bits: 9,
                    ..DeflateConfig::default()
                },
                DeflateConfig {
                    server_max_window_bits: 8,
                    client_no_context_takeover: true,
                    ..DeflateConfig::default()
                },
                DeflateConfig {
                    server_max_window_bits: 12,
                    client_max_window_bits: 11,
                    server_no_context_takeover: true,
                    client_no_context_takeover: true,
                    ..DeflateConfig::default()
                },
            ];
            for client in &configs {
                for server in &configs {
                    let offer = extensions(&client.client_offer());
                    let (server_view, response) = server.server_accept(&offer).unwrap().unwrap();
                    let client_view = client.client_accept(&extensions(&response)).unwrap();
                    assert_eq!(client_view, Some(server_view), "{client:?} / {server:?}");
                }
            }
        }
    }
}
