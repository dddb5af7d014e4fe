//! The Switchboard real-time hub: named channels with bounded history and resume, fanned out
//! to WebSocket, Server-Sent Events, long-polling and REST clients.
//!
//! Layers, innermost first:
//!
//! - [`core`]: pure data and rules (channel names, ids and epochs, payloads, history, the
//!   resume rule). No I/O, no clock.
#![deny(unsafe_code)]

pub mod core;
