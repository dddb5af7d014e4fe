//! Sans-I/O WebSocket: RFC 6455 framing, handshakes and the close handshake, with
//! RFC 7692 permessage-deflate.
//!
//! # Contract
//!
//! 1. **No I/O.** This crate never touches a socket, the clock, the OS random source or a
//!    thread. Bytes come in through [`Connection::poll_event`], bytes to send come out through
//!    [`Connection::output_chunks`], and mask keys come from a source the caller supplies.
//!    That makes every behaviour testable byte by byte and the whole crate fuzzable.
//! 2. **Never panics on input.** Every violation by the peer becomes a [`ProtocolError`],
//!    whose [`ProtocolError::close_code`] is the code the connection already queued in its
//!    close frame.
//! 3. **Incomplete is normal.** All parse state lives in [`Connection`], so a caller may stop
//!    and resume at any byte boundary; an async shell built on it is cancel-safe for free.
//!
//! # Driving a connection
//!
//! ```
//! use bytes::BytesMut;
//! use switchboard_protocol::{Config, Connection, Event, Message};
//!
//! let mut server = Connection::server(Config::default());
//! let mut read_buf = BytesMut::new();
//! // A masked client text frame "Hello" (RFC 6455 §5.7).
//! read_buf.extend_from_slice(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//! // 1. feed bytes and drain events until the connection needs more input
//! while let Some(event) = server.poll_event(&mut read_buf).unwrap() {
//!     if let Event::Message(Message::Text(text)) = event {
//!         server.send(Message::Text(text)).unwrap(); // echo
//!     }
//! }
//! // 2. write what is queued, then tell the connection how much went out
//! let queued: Vec<u8> = server.output_chunks_vec().concat();
//! assert_eq!(queued, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
//! server.advance_output(queued.len());
//! // 3. close the transport when the connection says so
//! assert!(!server.should_close_transport());
//! ```
//!
//! # Limits and defaults
//!
//! | limit | default | on breach |
//! | --- | --- | --- |
//! | [`Config::max_frame_size`] | 16 MiB | close 1009, refused from the header alone |
//! | [`Config::max_message_size`] | 16 MiB | close 1009, refused as soon as the sum passes it; also bounds inflation |
//! | [`Config::max_handshake_size`] | 8 KiB | HTTP 431 |
//!
//! # What this crate does not do
//!
//! It does not read or write sockets, run timers (ping intervals and close timeouts belong to
//! the shell, see the `switchboard` crate), or speak HTTP beyond the upgrade handshake.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod close;
mod config;
mod connection;
pub mod deflate;
mod error;
pub mod frame;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod handshake;
mod message;
mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{CloseInfo, Connection, Event, Inflation, Initiator, PreparedMessage, State};
pub use error::{ProtocolError, SendError};
pub use frame::{OpCode, Role};
pub use message::Message;
pub use utf8::{InvalidUtf8, Utf8Bytes, Utf8Validator};
