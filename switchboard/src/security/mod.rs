//! Security hooks for servers: which pages may open connections ([`OriginPolicy`]), how
//! many connections a client and the whole server may hold ([`ConnectionLimiter`]), and
//! whose address a connection really comes from behind a proxy ([`TrustedProxies`]).
//!
//! Each is plain data plus a check, so the same policy serves the standalone
//! [`Server`](crate::Server) (through [`Acceptor`](crate::Acceptor)'s `on_request` callback),
//! a hyper service or an axum handler.

mod forwarded;
mod limits;
mod origin;

pub use forwarded::{ForwardedHeader, InvalidProxyRange, TrustedProxies};
pub use limits::{
    client_key, fd_headroom_limit, open_file_limit, ConnectionLimiter, ConnectionPermit,
    LimitExceeded,
};
pub use origin::{same_origin, OriginPolicy, OriginRefusal, OriginVerdict};
