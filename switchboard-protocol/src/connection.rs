//! The connection state machine: frames in, events out; commands in, bytes out.

use crate::close::{CloseCode, CloseFrame};
use crate::config::Config;
use crate::deflate::DeflateParams;
use crate::error::{ProtocolError, SendError};
use crate::frame::Role;
use crate::message::Message;
use bytes::{Bytes, BytesMut};
use std::io::IoSlice;

/// What the peer sent, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text or binary message.
    Message(Message),
    /// A ping. The pong is already queued; this is for visibility.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The peer's close frame (`None`: it carried no status code). If we had not sent a
    /// close frame yet, the reply is already queued.
    Close(Option<CloseFrame>),
}

/// Lifecycle of a connection after the handshake (RFC 6455 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    Closing,
    /// Both close frames were exchanged, or the connection failed.
    Closed,
}

/// Who started the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// This end (the application, or the library on a protocol error).
    Local,
    /// The peer.
    Remote,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The code: the peer's if the peer closed first, ours otherwise; 1005 when a close frame
    /// had no code, 1006 when the transport ended without a close frame.
    pub code: CloseCode,
    /// The reason that came with the code.
    pub reason: String,
    /// Who started the close.
    pub initiator: Initiator,
    /// Whether both close frames were exchanged.
    pub clean: bool,
}

/// One WebSocket connection after the opening handshake, sans I/O.
///
/// INTERFACE STUB — implementation in progress.
pub struct Connection {
    role: Role,
    config: Config,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("role", &self.role).finish_non_exhaustive()
    }
}

impl Connection {
    /// A server-side connection.
    pub fn server(config: Config) -> Self {
        Connection { role: Role::Server, config }
    }

    /// A client-side connection; `mask_key` is called once per frame for its masking key
    /// and must return unpredictable values (RFC 6455 §5.3).
    pub fn client(config: Config, mask_key: impl FnMut() -> [u8; 4] + Send + 'static) -> Self {
        let _ = mask_key;
        Connection { role: Role::Client, config }
    }

    /// Turns on permessage-deflate with the parameters the handshake agreed on.
    pub fn with_deflate(self, params: DeflateParams) -> Self {
        let _ = params;
        self
    }

    // ----- inputs -----

    /// Parses the next event from `buf`, consuming the bytes it used. `Ok(None)`: more input
    /// is needed (or the connection is closed and discards input).
    pub fn poll_event(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, ProtocolError> {
        let _ = buf;
        todo!()
    }

    /// The transport reached end of file.
    pub fn handle_eof(&mut self) {
        todo!()
    }

    // ----- commands -----

    /// Queues a data message.
    pub fn send(&mut self, message: Message) -> Result<(), SendError> {
        let _ = message;
        todo!()
    }

    /// Queues a ping.
    pub fn ping(&mut self, payload: Bytes) -> Result<(), SendError> {
        let _ = payload;
        todo!()
    }

    /// Queues an unsolicited pong.
    pub fn pong(&mut self, payload: Bytes) -> Result<(), SendError> {
        let _ = payload;
        todo!()
    }

    /// Starts the close handshake.
    pub fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), SendError> {
        let _ = frame;
        todo!()
    }

    // ----- outputs -----

    /// Fills `dst` with the queued output, oldest first; returns how many slices were used.
    pub fn output_chunks<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let _ = dst;
        todo!()
    }

    /// The queued output as a list of slices (convenience for tests and simple shells).
    pub fn output_chunks_vec(&self) -> Vec<&[u8]> {
        todo!()
    }

    /// Marks `n` bytes of output as written.
    pub fn advance_output(&mut self, n: usize) {
        let _ = n;
        todo!()
    }

    /// Whether the shell should close the transport now: all output is written and the
    /// close handshake is over or the connection failed. A server closes TCP first (§7.1.1).
    pub fn should_close_transport(&self) -> bool {
        todo!()
    }

    // ----- getters -----

    /// Bytes queued but not yet written (the browser API's `bufferedAmount`).
    pub fn buffered_amount(&self) -> usize {
        todo!()
    }

    /// The lifecycle state.
    pub fn state(&self) -> State {
        todo!()
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How the connection ended, once it has.
    pub fn close_info(&self) -> Option<&CloseInfo> {
        todo!()
    }
}
