//! Switchboard: a fast, strict WebSocket (RFC 6455, RFC 7692) client and server on tokio.
//!
//! This crate is the async shell around the sans-I/O [`switchboard_protocol`] core.
#![deny(unsafe_code)]

mod config;
mod core;
mod error;
mod split;
mod websocket;

pub use config::WebSocketConfig;
pub use error::{Error, ErrorKind};
pub use split::{WebSocketReader, WebSocketWriter};
pub use websocket::WebSocket;

pub use switchboard_protocol::deflate::DeflateConfig;
pub use switchboard_protocol::{CloseCode, CloseFrame, CloseInfo, Initiator, Message, State, Utf8Bytes};
