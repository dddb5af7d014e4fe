//! Counters for Prometheus, kept with plain atomics and rendered by hand in the text
//! exposition format (version 0.0.4).
//!
//! Hand-rolled because the set is small and fixed, and atomics keep the fan-out hot path to a
//! few relaxed increments.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::core::Message;

/// The ways a client reaches the hub, as metric labels.
///
/// ```
/// use switchboard_hub::metrics::Transport;
///
/// assert_eq!(Transport::Sse.label(), "sse");
/// assert_eq!(Transport::ChatRoom.label(), "chatroom");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `GET /ws`, the JSON protocol.
    WebSocket,
    /// `GET /ws/{channel}`, the plain chat room.
    ChatRoom,
    /// `GET /sse/{channel}`.
    Sse,
    /// `GET /poll/{channel}`.
    Poll,
    /// The REST API.
    Rest,
}

impl Transport {
    const ALL: [Transport; 5] = [
        Transport::WebSocket,
        Transport::ChatRoom,
        Transport::Sse,
        Transport::Poll,
        Transport::Rest,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::ChatRoom => "chatroom",
            Transport::Sse => "sse",
            Transport::Poll => "poll",
            Transport::Rest => "rest",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

const N: usize = Transport::ALL.len();

/// Upper bounds of the fan-out latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// The hub's metrics. Shared behind an `Arc` by the hub and every transport.
///
/// ```
/// use switchboard_hub::core::{ChannelName, Payload};
/// use switchboard_hub::metrics::Transport;
/// use switchboard_hub::{Hub, HubOptions, MemoryBrokerConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::in_memory(MemoryBrokerConfig::default(), HubOptions::default());
/// hub.publish(&ChannelName::new("chat")?, Payload::text("hi"), Transport::Rest).await?;
/// let text = hub.metrics().render(); // what GET /metrics serves
/// assert!(text.contains("switchboard_messages_in_total{transport=\"rest\"} 1\n"));
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct Metrics {
    connections: [AtomicI64; N],
    connections_total: [AtomicU64; N],
    published: [AtomicU64; N],
    delivered: [AtomicU64; N],
    lagged_subscribers: AtomicU64,
    resets: AtomicU64,
    broker_reconnects: AtomicU64,
    gaps_detected: AtomicU64,
    gaps_repaired: AtomicU64,
    queue_drops: AtomicU64,
    slow_disconnects: AtomicU64,
    rejected: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
    /// By HTTP version ([`version_index`]): client connections, requests, WebSockets.
    http_connections: [AtomicU64; 2],
    http_requests: [AtomicU64; 2],
    websockets: [AtomicU64; 2],
}

/// The HTTP versions the metrics tell apart, as label values.
const VERSIONS: [&str; 2] = ["1.1", "2"];

/// 0 for HTTP/1.x, 1 for HTTP/2.
fn version_index(version: http::Version) -> usize {
    usize::from(version == http::Version::HTTP_2)
}

impl Metrics {
    /// Counts an open connection until the guard drops.
    pub fn connection(self: &std::sync::Arc<Self>, t: Transport) -> ConnectionGuard {
        self.connections[t.index()].fetch_add(1, Relaxed);
        self.connections_total[t.index()].fetch_add(1, Relaxed);
        ConnectionGuard {
            metrics: std::sync::Arc::clone(self),
            transport: t,
        }
    }

    /// Counts a message accepted from a client over `t`.
    pub fn record_publish(&self, t: Transport) {
        self.published[t.index()].fetch_add(1, Relaxed);
    }

    /// Counts a message handed to a client over `t`.
    pub fn record_delivery(&self, t: Transport, _msg: &Message) {
        self.record_delivered(t, 1);
    }

    /// Counts `n` messages written to a client's connection over `t`. Streaming transports
    /// count here, when a message leaves the connection's queue for its socket, so that
    /// what sat in the queue of a client that was then dropped is not counted as out.
    pub fn record_delivered(&self, t: Transport, n: u64) {
        self.delivered[t.index()].fetch_add(n, Relaxed);
    }

    /// Messages delivered over `t` so far.
    pub fn delivered(&self, t: Transport) -> u64 {
        self.delivered[t.index()].load(Relaxed)
    }

    /// Observes the fan-out latency of a live message (publish to its subscriber taking it
    /// from the live ring). Not for history replays: their age is how long the client was
    /// away, not how fast the hub is.
    pub fn record_fanout(&self, msg: &Message) {
        let elapsed = crate::core::age(std::time::SystemTime::now(), msg.published_at());
        self.observe_latency(elapsed);
    }

    /// Fan-out latencies observed so far.
    pub fn fanout_observations(&self) -> u64 {
        self.latency_count.load(Relaxed)
    }

    /// Counts a subscriber that fell behind and the messages it missed.
    pub fn record_lag(&self, missed: u64) {
        self.lagged_subscribers.fetch_add(1, Relaxed);
        self.queue_drops.fetch_add(missed, Relaxed);
    }

    /// Counts a reset handed to a subscriber (history could not continue its position).
    pub fn record_reset(&self) {
        self.resets.fetch_add(1, Relaxed);
    }

    /// Counts a reconnect of the broker to its store (Redis).
    pub fn record_broker_reconnect(&self) {
        self.broker_reconnects.fetch_add(1, Relaxed);
    }

    /// Counts a gap a broker found in a channel's live feed (id jump, epoch change,
    /// messages missed across a reconnect or found by a position check).
    pub fn record_gap_detected(&self) {
        self.gaps_detected.fetch_add(1, Relaxed);
    }

    /// Counts a gap filled from history without any subscriber noticing.
    pub fn record_gap_repaired(&self) {
        self.gaps_repaired.fetch_add(1, Relaxed);
    }

    /// `(reconnects, gaps detected, gaps repaired)` so far.
    pub fn broker_counts(&self) -> (u64, u64, u64) {
        (
            self.broker_reconnects.load(Relaxed),
            self.gaps_detected.load(Relaxed),
            self.gaps_repaired.load(Relaxed),
        )
    }

    /// Resets handed to subscribers so far.
    pub fn resets(&self) -> u64 {
        self.resets.load(Relaxed)
    }

    /// Counts a subscriber disconnected for being too slow.
    pub fn record_slow_disconnect(&self) {
        self.slow_disconnects.fetch_add(1, Relaxed);
    }

    /// Counts a client connection over `version` (HTTP/2 when TLS picked `h2`).
    pub fn record_http_connection(&self, version: http::Version) {
        self.http_connections[version_index(version)].fetch_add(1, Relaxed);
    }

    /// Counts a request over `version`: every REST call, SSE stream, long poll, page and
    /// WebSocket handshake.
    pub fn record_http_request(&self, version: http::Version) {
        self.http_requests[version_index(version)].fetch_add(1, Relaxed);
    }

    /// Counts a WebSocket accepted over `version` (HTTP/2: an RFC 8441 stream).
    pub fn record_websocket(&self, version: http::Version) {
        self.websockets[version_index(version)].fetch_add(1, Relaxed);
    }

    /// WebSockets accepted so far over `version`.
    pub fn websockets(&self, version: http::Version) -> u64 {
        self.websockets[version_index(version)].load(Relaxed)
    }

    /// Counts a request refused (auth, origin, rate or size limit).
    pub fn record_rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    fn observe_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Clients dropped for not keeping up so far (each counted once it is gone).
    pub fn slow_disconnects(&self) -> u64 {
        self.slow_disconnects.load(Relaxed)
    }

    /// Subscribers reported lagged so far.
    pub fn lagged_subscribers(&self) -> u64 {
        self.lagged_subscribers.load(Relaxed)
    }

    /// Messages skipped for lagging subscribers so far.
    pub fn queue_drops(&self) -> u64 {
        self.queue_drops.load(Relaxed)
    }

    /// Open connections over `t`.
    pub fn open_connections(&self, t: Transport) -> i64 {
        self.connections[t.index()].load(Relaxed)
    }

    /// The metrics in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let per_transport =
            |out: &mut String, name: &str, kind: &str, help: &str, f: &dyn Fn(usize) -> String| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for t in Transport::ALL {
                    let _ = writeln!(
                        out,
                        "{name}{{transport=\"{}\"}} {}",
                        t.label(),
                        f(t.index())
                    );
                }
            };
        per_transport(
            &mut out,
            "switchboard_connections",
            "gauge",
            "Open client connections.",
            &|i| self.connections[i].load(Relaxed).to_string(),
        );
        per_transport(
            &mut out,
            "switchboard_connections_total",
            "counter",
            "Client connections accepted.",
            &|i| self.connections_total[i].load(Relaxed).to_string(),
        );
        per_transport(
            &mut out,
            "switchboard_messages_in_total",
            "counter",
            "Messages published by clients.",
            &|i| self.published[i].load(Relaxed).to_string(),
        );
        per_transport(
            &mut out,
            "switchboard_messages_out_total",
            "counter",
            "Messages delivered to clients.",
            &|i| self.delivered[i].load(Relaxed).to_string(),
        );
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "switchboard_lagged_subscribers_total",
            "Times a subscriber fell a full queue behind.",
            self.lagged_subscribers.load(Relaxed),
        );
        counter(
            &mut out,
            "switchboard_queue_drops_total",
            "Messages skipped for lagging subscribers.",
            self.queue_drops.load(Relaxed),
        );
        counter(
            &mut out,
            "switchboard_resets_total",
            "Resets sent to subscribers: history could not continue their position.",
            self.resets.load(Relaxed),
        );
        counter(
            &mut out,
            "switchboard_broker_reconnects_total",
            "Reconnects of the broker to its store (Redis pub/sub).",
            self.broker_reconnects.load(Relaxed),
        );
        counter(
            &mut out,
            "switchboard_broker_gaps_detected_total",
            "Gaps found in a channel's live feed from the broker's store.",
            self.gaps_detected.load(Relaxed),
        );
        counter(
            &mut out,
            "switchboard_broker_gaps_repaired_total",
            "Gaps filled from the store's history before any subscriber saw them.",
            self.gaps_repaired.load(Relaxed),
        );
        counter(
            &mut out,
            "switchboard_slow_disconnects_total",
            "Subscribers disconnected for lagging.",
            self.slow_disconnects.load(Relaxed),
        );
        counter(
            &mut out,
            "switchboard_rejected_total",
            "Requests refused by auth, origin, rate or size limits.",
            self.rejected.load(Relaxed),
        );
        for (name, help, values) in [
            (
                "switchboard_http_connections_total",
                "Client connections by HTTP version.",
                &self.http_connections,
            ),
            (
                "switchboard_http_requests_total",
                "Requests by HTTP version.",
                &self.http_requests,
            ),
            (
                "switchboard_websockets_total",
                "WebSockets accepted by HTTP version (2: RFC 8441 streams).",
                &self.websockets,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (version, value) in VERSIONS.iter().zip(values) {
                let _ = writeln!(
                    out,
                    "{name}{{version=\"{version}\"}} {}",
                    value.load(Relaxed)
                );
            }
        }
        let name = "switchboard_fanout_latency_seconds";
        let _ = writeln!(out, "# HELP {name} Time from publish to hand-off to a client connection.\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.latency_sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
        out
    }
}

/// Decrements the open-connection gauge of its transport when dropped.
///
/// ```
/// use std::sync::Arc;
/// use switchboard_hub::metrics::{Metrics, Transport};
///
/// let metrics = Arc::new(Metrics::default());
/// let guard = metrics.connection(Transport::Sse); // a client connected
/// assert_eq!(metrics.open_connections(Transport::Sse), 1);
/// drop(guard); // it went away
/// assert_eq!(metrics.open_connections(Transport::Sse), 0);
/// ```
pub struct ConnectionGuard {
    metrics: std::sync::Arc<Metrics>,
    transport: Transport,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections[self.transport.index()].fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Arc::new(Metrics::default());
        let guard = m.connection(Transport::Sse);
        m.record_lag(5);
        m.observe_latency(Duration::from_micros(50));
        m.observe_latency(Duration::from_millis(3));
        m.observe_latency(Duration::from_secs(5));
        let text = m.render();
        assert!(
            text.contains("switchboard_connections{transport=\"sse\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("switchboard_queue_drops_total 5\n"));
        assert!(text.contains("switchboard_lagged_subscribers_total 1\n"));
        assert!(text.contains("switchboard_fanout_latency_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("switchboard_fanout_latency_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("switchboard_fanout_latency_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("switchboard_fanout_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("switchboard_fanout_latency_seconds_count 3\n"));
        drop(guard);
        assert!(m
            .render()
            .contains("switchboard_connections{transport=\"sse\"} 0\n"));
        // Every non-comment line is `name{labels} value` or `name value`.
        for line in m.render().lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
