//! Switchboard: a fast, strict WebSocket (RFC 6455, with RFC 7692 permessage-deflate)
//! client and server on tokio.
//!
//! This crate is the async shell around the sans-I/O [`switchboard_protocol`] core: it reads
//! and writes the stream, runs the timers, and gives you a [`WebSocket`] with `recv`, `send`,
//! `close` and `split`, plus `Stream`/`Sink` impls.
//!
//! # Server
//!
//! ```no_run
//! # async fn run() -> Result<(), switchboard::Error> {
//! let server = switchboard::Server::bind("127.0.0.1:9001").await?;
//! server
//!     .serve(|mut ws| async move {
//!         while let Some(Ok(message)) = ws.recv().await {
//!             if ws.send(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     })
//!     .await
//! # }
//! ```
//!
//! The handler gets a [`ServerWebSocket`], the type every server entry point gives: a
//! [`router::Router`] route (several paths, TLS, limits, `Origin` and auth checks), the hyper
//! upgrade and the axum extractor too, so a handler written once serves them all.
//! Every entry point takes its settings as one [`WebSocketConfig`].
//!
//! On a stream you accepted yourself, use [`accept`], or an [`Acceptor`] to set the
//! configuration, subprotocols and a callback that inspects the request (path, headers,
//! `Origin`) and accepts or rejects it.
//!
//! # Client
//!
//! ```no_run
//! # async fn run() -> Result<(), switchboard::Error> {
//! let (mut ws, _response) = switchboard::connect("ws://127.0.0.1:9001/").await?;
//! ws.send("hello").await?;
//! while let Some(message) = ws.recv().await {
//!     println!("{:?}", message?);
//! }
//! # Ok(()) }
//! ```
//!
//! [`Client::builder`] adds subprotocols, headers and configuration.
//!
//! # Errors and closing
//!
//! `recv` returns `None` when the connection is over, `Some(Err(_))` once for the error that
//! ended it. A clean close is not an error: [`WebSocket::close_info`] has the code and
//! reason. Every [`Error`] has a [`kind`](Error::kind).
//!
//! # Memory
//!
//! Buffers start empty and grow with need: an idle connection holds no read buffer (reads
//! go through the stack until data arrives), and a buffer that grew for a large message is
//! released when it empties. Received messages are handed out as `Bytes` that share the
//! read buffer, without a copy.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod config;
mod core;
mod error;
mod head;
mod server;
mod split;
mod stream;
mod websocket;

#[cfg(feature = "axum")]
pub mod axum;
mod backpressure;
#[cfg(feature = "http2")]
pub mod http2;
mod liveness;
mod negotiate;
pub mod proxy;
pub mod router;
pub mod security;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "hyper")]
pub mod upgrade;

pub use backpressure::{SlowConsumer, TrySendError};
pub use client::{connect, Client, ClientBuilder, IntoClientRequest, RefusalBody};
pub use config::WebSocketConfig;
pub use error::{Error, ErrorKind, HandshakeFailure};
pub use liveness::GoingAway;
pub use router::{ServerStream, ServerWebSocket};
pub use server::{
    accept, accept_connection, serve_connections, Accept, AcceptErrors, Acceptor, AcceptorBuilder,
    HandshakeRequest, Reject, Server,
};
pub use split::{WebSocketReader, WebSocketWriter, WriterFeed};
pub use stream::MaybeTlsStream;
pub use websocket::{Feed, Received, WebSocket};

/// The protocol core this crate drives, for lower-level use.
pub use switchboard_protocol as protocol;
pub use switchboard_protocol::deflate::DeflateConfig;
pub use switchboard_protocol::{
    CloseCode, CloseFrame, CloseInfo, Initiator, InvalidUtf8, Message, PreparedMessage, State,
    Utf8Bytes,
};

/// The migration guide's examples (`docs/migrating.md`), compiled as doctests; the axum
/// one needs the `axum` feature.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../../docs/migrating.md")]
pub struct MigratingDoctests;

/// The README's Rust examples, compiled as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
