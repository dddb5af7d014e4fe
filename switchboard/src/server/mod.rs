//! Server side: the opening handshake on any stream ([`accept`], [`Acceptor`]) and a small
//! standalone TCP server ([`Server`]).

mod accept;
mod serve;

pub use accept::{accept, Accept, Acceptor, AcceptorBuilder, HandshakeRequest, Reject};
pub use serve::Server;
