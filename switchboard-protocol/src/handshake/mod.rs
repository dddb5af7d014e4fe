//! The opening handshake (RFC 6455 §4): the server validates a request and builds the
//! response or a rejection; the client builds a request and validates the response.
//!
//! INTERFACE STUB — to be implemented.

/// One entry of a `Sec-WebSocket-Extensions` header: a name and its parameters (§9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order; a parameter without `=value` has `None`.
    pub params: Vec<(String, Option<String>)>,
}
