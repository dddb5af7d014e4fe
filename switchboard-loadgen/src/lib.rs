//! An echo load generator for WebSocket (RFC 6455) and plain TCP servers, on one thread: the
//! engine behind `switchboard bench` and the comparison harness in `bench/`.
//!
//! # What it measures
//!
//! [`load::run`] opens [`Options::connections`] connections to an echo server, keeps
//! [`Options::in_flight`] messages outstanding on each (send, wait for the whole echo, send
//! again), loads the server for a warm-up, then measures for a fixed duration (or until a
//! message count) and returns a [`Report`]:
//!
//! - echoes per second, and payload MB (10^6 bytes) per second, counted once per echo;
//! - round-trip latency from the write of a message to the end of its echo, as p50, p99,
//!   p99.9, max and mean, from an HDR histogram (1 ns – 100 s, 3 significant figures);
//! - the CPU time the generator used while measuring, split into user and kernel time, and,
//!   given the server's PID, the server's (see [`procstat`]). Divided by the message count
//!   these are each side's CPU cost per message, which is how a run shows whether the figure
//!   is the server's or the generator's.
//!
//! [`load::hold_idle`] opens connections and holds them idle, for measuring a server's memory
//! per connection from the outside ([`procstat::rss_kib`]).
//!
//! A target is `ws://host:port/path` (WebSocket, one HTTP upgrade per connection, no
//! extensions offered, so no compression) or `tcp://host:port`: a plain TCP echo receives the
//! very same masked frames and returns them unchanged, so its figures are the ceiling a
//! WebSocket server is compared against.
//!
//! # How it stays out of the way
//!
//! A generator that costs more per message than the server measures itself. This one keeps
//! its share small on one core:
//!
//! - **One thread.** Every connection is a task on one current-thread runtime sharing one
//!   histogram and a few counters in plain cells: no locks, no atomics, no cross-thread
//!   wake-ups. One core by design, so the other cores are the server's.
//! - **Hand-written per-connection futures.** Each connection is one future that owns its
//!   socket and polls reads and writes itself: no split halves, no channels, no allocation
//!   per message.
//! - **Pre-built masked frames.** The frame is built and masked once per connection (each
//!   with its own nonzero mask key, so the server's unmasking does real work) and held
//!   `in_flight` times over in one buffer, so any run of queued frames leaves in one write.
//! - **An echo parser that skips payloads.** [`wire::EchoParser`] reads frame headers, even
//!   when split across reads, and skips payloads by counting: a few branches per message
//!   whatever its size, with no copying and no unmasking.
//! - **The first echo verified byte for byte.** Before the load starts, every connection
//!   sends one message and compares the whole echo with what it sent, so a server that does
//!   not echo faithfully fails the run ([`LoadError::Setup`]) instead of winning it.
//!
//! # Bounds
//!
//! Every run ends by itself: after its warm-up plus duration, or earlier at
//! [`Options::max_messages`]; connecting and the final drain are each bounded by
//! [`Options::setup_timeout`], after which unfinished connections are dropped and counted in
//! [`Report::failed_connections`]. Load only ever goes to the address given.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use switchboard_loadgen::{load, Options, PayloadKind, Target};
//!
//! let opts = Options {
//!     connections: 100,
//!     size: 20,
//!     kind: PayloadKind::Text,
//!     duration: Duration::from_secs(5),
//!     ..Options::new(Target::parse("ws://127.0.0.1:9001/")?)
//! };
//! let report = load::run_on_current_thread(&opts)?;
//! println!("{:.0} msgs/s, p99 {:.1} µs", report.msgs_per_sec, report.latency.p99_us);
//! # Ok::<(), switchboard_loadgen::LoadError>(())
//! ```
//!
//! # What this crate does not do
//!
//! It is not a WebSocket client: it speaks only as much of the protocol as echo load needs
//! (no fragmentation, no pings answered, no close handshake) and trusts the server with
//! everything after the first echo. Use the `switchboard` crate's `Client` to talk to a
//! server; use this one to measure it.

#![warn(missing_docs)]

pub mod load;
pub mod procstat;
pub mod wire;

pub use load::{IdleOptions, Latency, LoadError, Options, Report, Target};
pub use wire::PayloadKind;
