//! Side-by-side WebSocket echo benchmarking: the peer echo servers in `src/bin/`, the table
//! printer, the fan-out benchmark, and what the servers share ([`server`]).
//!
//! # Contract
//!
//! Every server here runs one current-thread tokio runtime on the address it is given and
//! says `listening on ADDR` on stdout once it accepts connections; `bench/run.sh` starts each
//! one on core 0 and points `switchboard bench` (the `switchboard-loadgen` crate) at it from
//! core 1. `bench-table` turns the generator's JSON reports into the markdown tables of
//! `bench/RESULTS.md`.
//!
//! # What this crate does not do
//!
//! It is not part of the product and never published: the peer servers' dependencies
//! (tokio-tungstenite, fastwebsockets, hyper) are here only to be measured against. The load
//! generator itself is product code and lives in `switchboard-loadgen`.

pub mod server;
