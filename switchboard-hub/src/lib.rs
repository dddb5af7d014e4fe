//! The Switchboard real-time hub: named channels with bounded history and resume, fanned out
//! to WebSocket, Server-Sent Events, long-polling and REST clients.
//!
//! Layers, innermost first:
//!
//! - [`core`]: pure data and rules (channel names, ids and epochs, payloads, history, the
//!   resume rule). No I/O, no clock.
//! - [`broker`]: where channels live, behind the [`Broker`] trait; [`MemoryBroker`] is the
//!   embedded default. The broker-neutral [`Subscription`] (a stream of [`Delivery`]s, its
//!   backlog pulled at the reader's pace) and [`BrokerError`] live here too, and presence
//!   ([`PresenceStore`], in process: [`MemoryPresence`]).
//! - [`Hub`]: the handle transports use — publish, subscribe, history, channel list,
//!   presence — with limits and [`metrics`].
//! - [`transport`]: the axum router (REST, SSE, long polling, WebSocket), served by
//!   [`HubServer`].
//!
//! # Using the hub in process
//!
//! ```
//! use switchboard_hub::core::{ChannelName, Payload};
//! use switchboard_hub::metrics::Transport;
//! use switchboard_hub::{Delivery, Hub, HubOptions, MemoryBrokerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::in_memory(MemoryBrokerConfig::default(), HubOptions::default());
//! let chat = ChannelName::new("chat")?;
//! let first = hub.publish(&chat, Payload::text("hello"), Transport::Rest).await?;
//! hub.publish(&chat, Payload::text("world"), Transport::Rest).await?;
//!
//! // A client that saw "hello" resumes after it: exactly "world" follows.
//! let mut sub = hub.subscribe(&chat, Some(first.cursor())).await?;
//! assert!(sub.recovered());
//! match sub.next().await {
//!     Some(Delivery::Message(m)) => assert_eq!(m.data().plain_text(), "world"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Serving it
//!
//! ```no_run
//! use switchboard_hub::{HubConfig, HubServer};
//!
//! # async fn run() -> std::io::Result<()> {
//! let config = HubConfig::default(); // or HubConfig::load(path)
//! let listener = tokio::net::TcpListener::bind(config.listen).await?;
//! HubServer::new(config)
//!     .serve(listener, async { let _ = tokio::signal::ctrl_c().await; })
//!     .await
//! # }
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod broker;
pub mod config;
pub mod core;
mod hub;
pub mod metrics;
pub mod security;
mod server;
pub mod transport;

pub use broker::{
    Broker, BrokerError, BrokerHealth, BrokerState, ChannelInfo, Delivery, MemoryBroker,
    MemoryBrokerConfig, MemoryPresence, PresenceGuard, PresenceSettings, PresenceStore,
    Subscription,
};
pub use config::{parse_listen, ConfigError, HubConfig, LagPolicy};
pub use hub::{Hub, HubOptions, PublishError, Published, SubscribeError};
pub use server::{bind, HubServer};
