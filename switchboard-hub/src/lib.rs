//! The Switchboard real-time hub: named channels with bounded history and resume, fanned out
//! to WebSocket, Server-Sent Events, long-polling and REST clients.
//!
//! Layers, innermost first:
//!
//! - [`core`]: pure data and rules (channel names, ids and epochs, payloads, history, the
//!   resume rule). No I/O, no clock.
//! - [`broker`]: where channels live, behind the [`Broker`] trait; [`MemoryBroker`] is the
//!   embedded default.
//! - [`Hub`]: the handle transports use — publish, subscribe, history, channel list — with
//!   limits and [`metrics`].
//! - [`transport`]: the axum router (REST, SSE, long polling, WebSocket), served by
//!   [`HubServer`].
#![deny(unsafe_code)]

pub mod broker;
pub mod config;
pub mod core;
mod hub;
pub mod metrics;
pub mod security;
mod server;
pub mod transport;

pub use broker::{Broker, BrokerError, ChannelInfo, MemoryBroker, MemoryBrokerConfig};
pub use config::{ConfigError, HubConfig, LagPolicy};
pub use hub::{Delivery, Hub, HubOptions, PublishError, Published, SubscribeError, Subscription};
pub use server::HubServer;
