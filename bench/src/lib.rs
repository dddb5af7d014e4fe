//! Side-by-side WebSocket echo benchmarking: the load generator core, plus the small helpers
//! the peer echo servers in `src/bin/` share.
//!
//! # Contract
//!
//! [`load::run`] opens `-c` connections to an echo server, keeps `in_flight` messages
//! outstanding on each (send, wait for the echo, send again), warms up, then measures for a
//! fixed duration and returns a [`load::Report`]: messages/s, MB/s, latency percentiles from an
//! HDR histogram, and the CPU time the generator (and, given its PID, the server) used while
//! measuring. That last figure is how a run shows whether the server or the generator was the
//! bottleneck.
//!
//! The generator speaks just enough WebSocket to stay out of the way ([`wire`]): one HTTP
//! upgrade per connection, then the same pre-built masked frame sent again and again, and a
//! parser that finds frame boundaries in the echo without copying or unmasking payloads. The
//! first echo on every connection is compared byte for byte with what was sent, so a server
//! that does not echo faithfully fails the run instead of winning it.
//!
//! # Limits and defaults
//!
//! Every run is bounded: by its warm-up plus duration, by an optional message count, and by a
//! drain timeout after which unfinished connections are dropped. Load only ever goes to the
//! address given; the harness (`bench/run.sh`) uses loopback only.
//!
//! # What this crate does not do
//!
//! It is not part of the product and never published: the peer servers' dependencies
//! (tokio-tungstenite, fastwebsockets, hyper) are here only to be measured against.

pub mod load;
pub mod procstat;
pub mod server;
pub mod wire;
