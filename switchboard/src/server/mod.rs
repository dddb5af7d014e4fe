//! Server side: the opening handshake on any stream ([`accept`], [`Acceptor`]) and a small
//! standalone TCP server ([`Server`]).

mod accept;
mod listener;
mod serve;

pub use accept::{accept, Accept, Acceptor, AcceptorBuilder, HandshakeRequest, Reject};
pub use listener::{accept_connection, serve_connections, AcceptErrors};
pub use serve::Server;
