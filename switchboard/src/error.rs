//! One error type for the whole library, with a [`kind`](Error::kind) to branch on.
//!
//! The `Display` wording is for humans and may change; match on [`ErrorKind`] and use the
//! predicates ([`Error::close_code`], [`Error::status`]) instead (the hyper habit). A clean
//! close is never an error: `recv` returns `None` for it.

use http::StatusCode;
use std::{fmt, io};
use switchboard_protocol::deflate::NegotiationError;
use switchboard_protocol::handshake::HandshakeError;
use switchboard_protocol::{CloseCode, ProtocolError, SendError};

/// What kind of failure an [`Error`] is.
///
/// ```no_run
/// use switchboard::{ErrorKind, HandshakeFailure};
/// # async fn run() {
/// match switchboard::connect("wss://example.com/chat").await {
///     Ok((ws, _)) => drop(ws),
///     Err(e) if e.kind() == ErrorKind::Tls => eprintln!("TLS: {e}"),
///     Err(e) if e.kind() == ErrorKind::Handshake => match (e.status(), e.handshake_failure()) {
///         (Some(status), _) => eprintln!("refused with {status}"),
///         (None, Some(HandshakeFailure::Http(rule))) => eprintln!("bad answer: {rule}"),
///         (None, _) => eprintln!("handshake failed: {e}"),
///     },
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The transport failed: connect, read or write error, or the peer dropped the
    /// connection without a close frame (`io::ErrorKind::UnexpectedEof`, close code 1006).
    Io,
    /// The peer broke RFC 6455 / RFC 7692 or exceeded a limit; the connection was closed with
    /// [`Error::close_code`].
    Protocol,
    /// The opening handshake failed; [`Error::status`] has the HTTP status when there was one
    /// and [`Error::handshake_failure`] the typed reason.
    Handshake,
    /// TLS failed: the peer's certificate did not verify (unknown issuer, wrong name,
    /// expired), the peer does not speak TLS, or a record did not decrypt.
    /// [`Error::io_error`] holds the `rustls::Error` inside the `io::Error` that carried it;
    /// `switchboard::tls::explain` says it in words (feature `tls`).
    Tls,
    /// A deadline passed: the handshake timeout or the close timeout.
    Timeout,
    /// The connection is closing or closed, so the operation cannot be done.
    Closed,
    /// The application passed something invalid: a bad URL, an unsendable close code, a
    /// control payload over 125 bytes, a close reason over 123 bytes.
    InvalidInput,
}

/// Why an opening handshake failed: the reason of an [`ErrorKind::Handshake`] error, from
/// [`Error::handshake_failure`] (its HTTP status is [`Error::status`]). [`ErrorKind`]'s
/// example matches on it.
///
/// ```no_run
/// use switchboard::HandshakeFailure;
/// # async fn run() {
/// if let Err(e) = switchboard::connect("ws://127.0.0.1:9001/").await {
///     match e.handshake_failure() {
///         Some(HandshakeFailure::Http(rule)) => eprintln!("refused or not RFC 6455: {rule}"),
///         Some(HandshakeFailure::Deflate(why)) => eprintln!("bad permessage-deflate answer: {why}"),
///         Some(other) => eprintln!("handshake failed: {other}"),
///         None => eprintln!("{e}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// The request or the response broke RFC 6455 (or RFC 8441), or the server refused:
    /// which rule, or the refusal's status and reason
    /// ([`HandshakeError::Refused`], [`HandshakeError::NotSwitchingProtocols`]).
    #[error(transparent)]
    Http(#[from] HandshakeError),
    /// The server's permessage-deflate answer does not fit the client's offer (RFC 7692 §7).
    #[error(transparent)]
    Deflate(#[from] NegotiationError),
    /// The HTTP proxy refused the CONNECT tunnel or answered with something else than an
    /// HTTP response.
    #[error("{0}")]
    Proxy(String),
}

/// An error from a WebSocket operation: see [`ErrorKind`] for the categories.
///
/// ```no_run
/// use switchboard::ErrorKind;
/// # async fn run(mut ws: switchboard::ServerWebSocket) {
/// while let Some(message) = ws.recv().await {
///     match message {
///         Ok(message) => println!("{message:?}"),
///         Err(e) if e.kind() == ErrorKind::Protocol => eprintln!("closed with {:?}: {e}", e.close_code()),
///         Err(e) if e.is_timeout() => eprintln!("timed out"),
///         Err(e) => eprintln!("{e}"),
///     }
/// }
/// # }
/// ```
pub struct Error {
    // Boxed so `Result<Message, Error>` stays two words and the happy path stays cheap.
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    detail: Detail,
}

enum Detail {
    Io(io::Error),
    Protocol(ProtocolError),
    Send(SendError),
    Handshake {
        error: HandshakeFailure,
        status: Option<StatusCode>,
        response: Option<http::Response<()>>,
    },
    Message(String),
}

impl Error {
    fn new(kind: ErrorKind, detail: Detail) -> Self {
        Error {
            inner: Box::new(Inner { kind, detail }),
        }
    }

    pub(crate) fn io(error: io::Error) -> Self {
        let kind = if is_tls(&error) {
            ErrorKind::Tls
        } else {
            ErrorKind::Io
        };
        Error::new(kind, Detail::Io(error))
    }

    /// The peer dropped the transport without a close frame.
    pub(crate) fn abnormal_eof() -> Self {
        Error::io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection ended without a close frame (1006)",
        ))
    }

    pub(crate) fn protocol(error: ProtocolError) -> Self {
        Error::new(ErrorKind::Protocol, Detail::Protocol(error))
    }

    pub(crate) fn send(error: SendError) -> Self {
        let kind = match error {
            SendError::Closed => ErrorKind::Closed,
            _ => ErrorKind::InvalidInput,
        };
        Error::new(kind, Detail::Send(error))
    }

    pub(crate) fn closed() -> Self {
        Error::send(SendError::Closed)
    }

    pub(crate) fn timeout(what: &str) -> Self {
        Error::new(
            ErrorKind::Timeout,
            Detail::Message(format!("{what} timed out")),
        )
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, Detail::Message(message.into()))
    }

    /// A handshake that failed on our side of the exchange (server: the request we refused,
    /// with the status we answered; client: a response we could not accept).
    pub(crate) fn handshake(
        error: impl Into<HandshakeFailure>,
        status: Option<StatusCode>,
        response: Option<http::Response<()>>,
    ) -> Self {
        Error::new(
            ErrorKind::Handshake,
            Detail::Handshake {
                error: error.into(),
                status,
                response,
            },
        )
    }

    /// The category, to branch on.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The close code the connection was closed with, for [`ErrorKind::Protocol`] errors
    /// (1002, 1007, 1009, …).
    pub fn close_code(&self) -> Option<CloseCode> {
        match &self.inner.detail {
            Detail::Protocol(error) => Some(error.close_code()),
            _ => None,
        }
    }

    /// The HTTP status of a failed handshake: on a server the status we answered (400, 426,
    /// 431, or the application's), on a client the status the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.inner.detail {
            Detail::Handshake { status, .. } => *status,
            _ => None,
        }
    }

    /// Why the handshake failed, for [`ErrorKind::Handshake`] errors.
    pub fn handshake_failure(&self) -> Option<&HandshakeFailure> {
        match &self.inner.detail {
            Detail::Handshake { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The server's response, for a client handshake the server did not accept.
    pub fn response(&self) -> Option<&http::Response<()>> {
        match &self.inner.detail {
            Detail::Handshake { response, .. } => response.as_ref(),
            _ => None,
        }
    }

    /// The peer's protocol violation, for [`ErrorKind::Protocol`] errors.
    pub fn protocol_error(&self) -> Option<&ProtocolError> {
        match &self.inner.detail {
            Detail::Protocol(error) => Some(error),
            _ => None,
        }
    }

    /// The underlying I/O error, for [`ErrorKind::Io`] and [`ErrorKind::Tls`] errors.
    pub fn io_error(&self) -> Option<&io::Error> {
        match &self.inner.detail {
            Detail::Io(error) => Some(error),
            _ => None,
        }
    }

    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }

    /// Whether the operation failed because the connection is closing or closed.
    pub fn is_closed(&self) -> bool {
        self.inner.kind == ErrorKind::Closed
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        match &self.inner.detail {
            Detail::Io(e) => d.field("io", e),
            Detail::Protocol(e) => d.field("protocol", e),
            Detail::Send(e) => d.field("send", e),
            Detail::Handshake { error, status, .. } => {
                d.field("handshake", error).field("status", status)
            }
            Detail::Message(m) => d.field("message", m),
        };
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner.detail {
            Detail::Io(e) => write!(f, "I/O error: {e}"),
            Detail::Protocol(e) => write!(f, "protocol error (close {}): {e}", e.close_code()),
            Detail::Send(e) => write!(f, "{e}"),
            Detail::Handshake { error, .. } => write!(f, "handshake failed: {error}"),
            Detail::Message(m) => f.write_str(m),
        }
    }
}

/// `Display` already names the immediate cause (the I/O error, the protocol violation, the
/// handshake failure), so `source` continues the chain from that cause's own source: an
/// error report (`anyhow`'s `{:#}`, say) then says each thing once. The cause itself is
/// available through [`Error::io_error`], [`Error::protocol_error`] and the predicates.
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.detail {
            Detail::Io(e) => e.source(),
            Detail::Protocol(e) => e.source(),
            Detail::Send(e) => e.source(),
            Detail::Handshake { error, .. } => error.source(),
            Detail::Message(_) => None,
        }
    }
}

/// Whether `error` carries a TLS failure (rustls reports them inside `io::Error`s).
#[cfg(feature = "tls")]
fn is_tls(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<rustls::Error>())
}

#[cfg(not(feature = "tls"))]
fn is_tls(_: &io::Error) -> bool {
    false
}

impl From<io::Error> for Error {
    fn from(error: io::Error) -> Self {
        Error::io(error)
    }
}

impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Self {
        Error::protocol(error)
    }
}

impl From<SendError> for Error {
    fn from(error: SendError) -> Self {
        Error::send(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn kinds_and_predicates() {
        let e = Error::protocol(ProtocolError::InvalidUtf8);
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert_eq!(e.close_code(), Some(CloseCode::INVALID_PAYLOAD));
        assert!(e.to_string().contains("1007"), "{e}");
        assert!(
            e.source().is_none(),
            "the cause is in Display, not repeated as source"
        );

        let e = Error::send(SendError::Closed);
        assert!(e.is_closed());
        let e = Error::send(SendError::ReasonTooLong(200));
        assert_eq!(e.kind(), ErrorKind::InvalidInput);

        let e = Error::handshake(
            HandshakeError::MissingKey,
            Some(StatusCode::BAD_REQUEST),
            None,
        );
        assert_eq!(e.kind(), ErrorKind::Handshake);
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));
        assert!(matches!(
            e.handshake_failure(),
            Some(HandshakeFailure::Http(HandshakeError::MissingKey))
        ));

        assert!(Error::timeout("close handshake").is_timeout());
        assert_eq!(
            Error::abnormal_eof().io_error().unwrap().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_certificate_failure_is_tls_not_io() {
        let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = Error::from(io::Error::new(io::ErrorKind::InvalidData, bad));
        assert_eq!(e.kind(), ErrorKind::Tls);
        assert!(e.io_error().is_some());
        let e = Error::from(io::Error::new(io::ErrorKind::InvalidData, "not TLS"));
        assert_eq!(e.kind(), ErrorKind::Io);
    }

    #[test]
    fn result_of_message_stays_small() {
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }
}
