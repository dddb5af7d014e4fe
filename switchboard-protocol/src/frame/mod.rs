//! Frame headers (RFC 6455 §5.2) and masking (§5.3).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! ```

mod header;
mod mask;
mod opcode;

pub use header::{FrameHeader, HeaderError, MAX_HEADER_LEN};
pub use mask::{apply_mask, apply_mask_naive, MaskPath};
pub(crate) use mask::{unmask_checking_ascii, VECTOR_MIN};
pub use opcode::OpCode;

/// Which end of the connection we are. It decides the masking rule (RFC 6455 §5.1): clients
/// mask every frame, servers never do, and each side rejects frames that break the rule.
///
/// ```
/// use switchboard_protocol::{Config, Connection, Role};
///
/// let connection = Connection::server(Config::default());
/// let masking = match connection.role() {
///     Role::Client => "masks every frame it sends",
///     Role::Server => "sends unmasked frames and refuses unmasked ones",
/// };
/// assert_eq!(masking, "sends unmasked frames and refuses unmasked ones");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that sent the opening handshake.
    Client,
    /// The end that answered it with `101 Switching Protocols`.
    Server,
}
