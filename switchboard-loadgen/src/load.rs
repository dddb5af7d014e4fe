//! The load generator: many connections, each keeping `in_flight` echo round trips going, on
//! one thread.
//!
//! Cost per message is what matters here, so each connection is one hand-written future
//! (`Driver`) that owns its socket and polls reads and writes itself: no split halves, no
//! channels, no per-message allocation. Sends write slices of a buffer that holds the frame
//! `in_flight` times over, so several queued frames go out in one syscall; the echo is parsed
//! by [`EchoParser`], which skips payloads by counting.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;

use crate::procstat;
use crate::wire::{self, EchoParser, PayloadKind, WireError};

/// Where to send load.
///
/// ```
/// use switchboard_loadgen::Target;
///
/// let target = Target::parse("ws://127.0.0.1:9001/echo?room=1")?;
/// assert_eq!(
///     target,
///     Target::WebSocket {
///         addr: "127.0.0.1:9001".parse().unwrap(),
///         host: "127.0.0.1:9001".into(),
///         path: "/echo?room=1".into(),
///     }
/// );
/// assert!(matches!(Target::parse("tcp://127.0.0.1:9002")?, Target::RawTcp { .. }));
/// # Ok::<(), switchboard_loadgen::LoadError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A WebSocket server: `ws://host:port/path`.
    WebSocket {
        /// The address to connect to.
        addr: SocketAddr,
        /// The `Host` header (the URL's authority).
        host: String,
        /// The request target, e.g. `/`.
        path: String,
    },
    /// A plain TCP echo: `tcp://host:port`. No handshake; the same masked frames are sent and
    /// come back unchanged, so the figures are comparable with a WebSocket server's.
    RawTcp {
        /// The address to connect to.
        addr: SocketAddr,
    },
}

impl Target {
    /// Parses `ws://host:port/path` or `tcp://host:port`. Host names are resolved once here.
    pub fn parse(url: &str) -> Result<Self, LoadError> {
        let parsed = url::Url::parse(url).map_err(|e| LoadError::Target(format!("{url}: {e}")))?;
        // Before any name lookup: a wrong scheme should say so, not fail to resolve.
        let websocket = match parsed.scheme() {
            "ws" => true,
            "tcp" => false,
            other => {
                return Err(LoadError::Target(format!(
                    "{url}: scheme {other} (use ws:// or tcp://)"
                )))
            }
        };
        let addr = parsed
            .socket_addrs(|| Some(80))
            .map_err(|e| LoadError::Target(format!("{url}: {e}")))?
            .into_iter()
            .next()
            .ok_or_else(|| LoadError::Target(format!("{url}: no address")))?;
        if !websocket {
            return Ok(Target::RawTcp { addr });
        }
        let host = match parsed.port() {
            Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
            None => parsed.host_str().unwrap_or_default().to_owned(),
        };
        let mut path = parsed.path().to_owned();
        if let Some(query) = parsed.query() {
            path = format!("{path}?{query}");
        }
        Ok(Target::WebSocket { addr, host, path })
    }

    /// The socket address connected to.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Target::WebSocket { addr, .. } | Target::RawTcp { addr } => *addr,
        }
    }
}

/// What to run. `Options::new` gives the defaults documented on each field.
///
/// ```
/// use std::time::Duration;
/// use switchboard_loadgen::{Options, PayloadKind, Target};
///
/// let opts = Options {
///     connections: 10,
///     in_flight: 4,
///     kind: PayloadKind::Binary,
///     max_messages: Some(100_000),
///     ..Options::new(Target::parse("ws://127.0.0.1:9001/")?)
/// };
/// assert_eq!(opts.size, 20);
/// assert_eq!(opts.duration, Duration::from_secs(5));
/// # Ok::<(), switchboard_loadgen::LoadError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    /// The server.
    pub target: Target,
    /// Connections to open (default 100).
    pub connections: usize,
    /// Payload bytes per message (default 20).
    pub size: usize,
    /// Text or binary messages (default text).
    pub kind: PayloadKind,
    /// Messages outstanding per connection (default 1: send, wait for the echo, repeat).
    pub in_flight: usize,
    /// Load before measuring starts, so caches, allocators and TCP windows settle (default 2 s).
    pub warmup: Duration,
    /// How long to measure (default 5 s).
    pub duration: Duration,
    /// Stop measuring after this many echoes, if it comes before `duration`.
    pub max_messages: Option<u64>,
    /// Connection attempts in progress at once while connecting (default 64), so a large `-c`
    /// does not overflow the server's listen backlog.
    pub connect_concurrency: usize,
    /// How long connecting, and draining at the end, may each take (default 30 s).
    pub setup_timeout: Duration,
    /// The server's PID, to report its CPU use while measuring.
    pub server_pid: Option<u32>,
    /// A progress line on stderr once a second, if stderr is a terminal.
    pub progress: bool,
}

impl Options {
    /// Defaults for `target`.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            connections: 100,
            size: 20,
            kind: PayloadKind::Text,
            in_flight: 1,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(5),
            max_messages: None,
            connect_concurrency: 64,
            setup_timeout: Duration::from_secs(30),
            server_pid: None,
            progress: false,
        }
    }
}

/// Latency percentiles in microseconds, from send to the end of the echo.
///
/// No example: a value only the library hands out, as [`Report::latency`] of a run's
/// [`Report`]; read its fields.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest seen.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

/// The result of a run. MB are 10^6 bytes of payload, counted once per echoed message.
///
/// ```no_run
/// use switchboard_loadgen::{load, Options, Target};
///
/// let opts = Options {
///     server_pid: Some(4242), // the echo server's PID, for its CPU figures
///     ..Options::new(Target::parse("ws://127.0.0.1:9001/")?)
/// };
/// let report = load::run_on_current_thread(&opts)?;
/// println!("{:.0} msgs/s, {:.1} MB/s", report.msgs_per_sec, report.mb_per_sec);
/// println!("p50 {:.1} µs, p99 {:.1} µs", report.latency.p50_us, report.latency.p99_us);
/// if let (Some(server), Some(client)) = (report.server_us_per_msg(), report.client_us_per_msg()) {
///     println!("CPU per message: server {server:.2} µs, generator {client:.2} µs");
/// }
/// # Ok::<(), switchboard_loadgen::LoadError>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// The target as given.
    pub target: String,
    /// Connections that took part.
    pub connections: usize,
    /// Payload bytes per message.
    pub size: usize,
    /// Text or binary.
    pub kind: PayloadKind,
    /// Messages outstanding per connection.
    pub in_flight: usize,
    /// Seconds actually measured.
    pub seconds: f64,
    /// Echoes received while measuring.
    pub messages: u64,
    /// Echoes per second.
    pub msgs_per_sec: f64,
    /// Payload MB (10^6 bytes) echoed per second.
    pub mb_per_sec: f64,
    /// Round-trip latency.
    pub latency: Latency,
    /// CPU the generator used while measuring, in cores (1.0 = one core busy all the time).
    pub client_cpu: f64,
    /// The part of `client_cpu` spent in the generator's own code rather than the kernel:
    /// what a cheaper generator could save.
    pub client_user_cpu: f64,
    /// CPU the server used while measuring, in cores, when its PID was given (from the
    /// scheduler's nanosecond run times).
    pub server_cpu: Option<f64>,
    /// The part of `server_cpu` spent in user space: the server's own cost, without the TCP
    /// stack's. Counted in 10 ms ticks, so coarse over short runs.
    pub server_user_cpu: Option<f64>,
    /// Connections that failed or were cut off during the run (their echoes up to then count).
    pub failed_connections: usize,
}

impl Report {
    /// The generator's CPU microseconds (user plus kernel) per echoed message: its own cost,
    /// to set beside the server's.
    pub fn client_us_per_msg(&self) -> Option<f64> {
        self.us_per_msg(self.client_cpu)
    }

    /// The server's CPU microseconds (all threads, user plus kernel) per echoed message, when
    /// its PID was given.
    pub fn server_us_per_msg(&self) -> Option<f64> {
        self.server_cpu.and_then(|cores| self.us_per_msg(cores))
    }

    /// Any of the CPU figures above (cores busy over the measured window, e.g.
    /// `client_user_cpu`) as microseconds per echoed message; `None` if nothing was echoed.
    pub fn us_per_msg(&self, cores: f64) -> Option<f64> {
        (self.msgs_per_sec > 0.0).then(|| cores * 1e6 / self.msgs_per_sec)
    }
}

/// Why a run could not be done.
///
/// ```
/// use switchboard_loadgen::{LoadError, Target};
///
/// match Target::parse("http://127.0.0.1:9001/") {
///     Err(LoadError::Target(why)) => assert!(why.contains("use ws:// or tcp://")),
///     other => panic!("expected a bad target, got {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The target URL is not usable.
    #[error("bad target {0}")]
    Target(String),
    /// Connecting, the handshake or the first echo failed on some connection.
    #[error("connection {index} failed")]
    Setup {
        /// Which connection (0-based).
        index: usize,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Connecting took longer than `setup_timeout`.
    #[error("connecting timed out")]
    SetupTimeout,
    /// Options that cannot work, e.g. zero connections.
    #[error("bad options: {0}")]
    Options(&'static str),
    /// The server answered with something other than the echo of what was sent (more
    /// messages than were sent, a malformed frame): the figures would mean nothing.
    #[error("connection {index}: {source}")]
    NotAnEcho {
        /// Which connection (0-based) noticed first.
        index: usize,
        /// What it saw.
        source: std::io::Error,
    },
}

/// Runs the benchmark described by `opts` on the current thread and returns its report.
///
/// The returned future is not `Send`: every connection is a task on a [`tokio::task::LocalSet`]
/// sharing one histogram without locks. Await it from `block_on` (or use
/// [`run_on_current_thread`], which makes its own one-thread runtime).
///
/// ```no_run
/// use switchboard_loadgen::{load, Options, Target};
///
/// let opts = Options::new(Target::parse("ws://127.0.0.1:9001/")?);
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let report = rt.block_on(load::run(&opts))?;
/// println!("{:.0} msgs/s", report.msgs_per_sec);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn run(opts: &Options) -> Result<Report, LoadError> {
    if opts.connections == 0 || opts.in_flight == 0 {
        return Err(LoadError::Options(
            "connections and in_flight must be at least 1",
        ));
    }
    let local = tokio::task::LocalSet::new();
    local.run_until(run_local(opts)).await
}

/// [`run`] on a new current-thread runtime: the generator uses exactly one core.
///
/// ```no_run
/// use switchboard_loadgen::{load, Options, Target};
///
/// let report = load::run_on_current_thread(&Options::new(Target::parse("tcp://127.0.0.1:9002")?))?;
/// println!("p99.9 {:.1} µs", report.latency.p999_us);
/// # Ok::<(), switchboard_loadgen::LoadError>(())
/// ```
pub fn run_on_current_thread(opts: &Options) -> Result<Report, LoadError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| LoadError::Setup { index: 0, source })?;
    rt.block_on(run(opts))
}

/// What the connection tasks share with the controller. Single-threaded, so plain cells.
struct Shared {
    /// Where the run is; drivers read it on every echo.
    phase: Cell<Phase>,
    /// Echoes received while measuring.
    measured: Cell<u64>,
    /// Echoes received in any phase, for the progress line.
    echoed: Cell<u64>,
    /// Round-trip times in nanoseconds while measuring.
    histogram: RefCell<Histogram<u64>>,
    /// `max_messages`, or `u64::MAX`.
    max_messages: u64,
    /// Signalled when `max_messages` is reached, so measuring ends then, not at `duration`.
    limit_reached: tokio::sync::Notify,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Measure,
    /// Queue no more messages; finish once the outstanding ones are back.
    Drain,
}

async fn run_local(opts: &Options) -> Result<Report, LoadError> {
    let payload = wire::payload(opts.kind, opts.size);
    let streams = tokio::time::timeout(opts.setup_timeout, connect_all(opts, &payload))
        .await
        .map_err(|_| LoadError::SetupTimeout)??;

    let shared = Rc::new(Shared {
        phase: Cell::new(Phase::Warmup),
        measured: Cell::new(0),
        echoed: Cell::new(0),
        // 1 ns to 100 s at 3 significant figures.
        histogram: RefCell::new(
            Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds"),
        ),
        max_messages: opts.max_messages.unwrap_or(u64::MAX),
        limit_reached: tokio::sync::Notify::new(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (index, stream) in streams.into_iter().enumerate() {
        let frame = wire::client_frame(opts.kind, &payload, mask_for(index));
        let driver = Driver::new(stream, &frame, opts.in_flight, shared.clone());
        tasks.spawn_local(async move { driver.await.map_err(|e| (index, e)) });
    }

    let progress = opts.progress && std::io::stderr().is_terminal();
    tick_until(&shared, "warm-up", opts.warmup, progress).await;

    shared.phase.set(Phase::Measure);
    let start = Instant::now();
    let client_cpu0 = procstat::own_cpu_time();
    let server_cpu0 = opts.server_pid.and_then(procstat::process_cpu_time);
    let server_run0 = opts.server_pid.and_then(procstat::process_run_time);
    tick_until(&shared, "measure", opts.duration, progress).await;
    let seconds = start.elapsed().as_secs_f64();
    let client = procstat::own_cpu_time().since(client_cpu0);
    let server = match (
        server_cpu0,
        opts.server_pid.and_then(procstat::process_cpu_time),
    ) {
        (Some(before), Some(after)) => Some(after.since(before)),
        _ => None,
    };
    let server_run = match (
        server_run0,
        opts.server_pid.and_then(procstat::process_run_time),
    ) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let cores = |d: Duration| d.as_secs_f64() / seconds;
    shared.phase.set(Phase::Drain);
    let measured = shared.measured.get();
    if progress {
        eprintln!();
    }

    let mut failed = 0;
    let mut not_an_echo = None;
    let drained = tokio::time::timeout(opts.setup_timeout, async {
        while let Some(result) = tasks.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err((index, e))) if e.kind() == std::io::ErrorKind::InvalidData => {
                    not_an_echo.get_or_insert((index, e));
                    failed += 1;
                }
                _ => failed += 1,
            }
        }
    })
    .await;
    if drained.is_err() {
        failed += tasks.len();
        tasks.abort_all();
    }
    if let Some((index, source)) = not_an_echo {
        return Err(LoadError::NotAnEcho { index, source });
    }

    let histogram = shared.histogram.borrow();
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(Report {
        target: match &opts.target {
            Target::WebSocket { host, path, .. } => format!("ws://{host}{path}"),
            Target::RawTcp { addr } => format!("tcp://{addr}"),
        },
        connections: opts.connections,
        size: opts.size,
        kind: opts.kind,
        in_flight: opts.in_flight,
        seconds,
        messages: measured,
        msgs_per_sec: measured as f64 / seconds,
        mb_per_sec: measured as f64 * opts.size as f64 / seconds / 1e6,
        latency: Latency {
            p50_us: us(histogram.value_at_quantile(0.5)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
            mean_us: histogram.mean() / 1000.0,
        },
        client_cpu: cores(client.total()),
        client_user_cpu: cores(client.user),
        server_cpu: server_run.or(server.map(|s| s.total())).map(cores),
        server_user_cpu: server.map(|s| cores(s.user)),
        failed_connections: failed,
    })
}

/// Sleeps for `length` or until the message limit is reached, printing a progress line once
/// a second when asked.
async fn tick_until(shared: &Shared, label: &str, length: Duration, progress: bool) {
    let end = tokio::time::Instant::now() + length;
    let start = Instant::now();
    let mut last = shared.echoed.get();
    while tokio::time::Instant::now() < end {
        let step = if progress {
            (end - tokio::time::Instant::now()).min(Duration::from_secs(1))
        } else {
            end - tokio::time::Instant::now()
        };
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            _ = shared.limit_reached.notified() => return,
        }
        if progress {
            let now = shared.echoed.get();
            let rate = (now - last) as f64 / step.as_secs_f64().max(1e-9);
            last = now;
            eprint!(
                "\r{label} {:>5.1}/{:.0} s  {:>12.0} msg/s   ",
                start.elapsed().as_secs_f64(),
                length.as_secs_f64(),
                rate
            );
        }
    }
}

/// A mask key per connection: nonzero, so the server's unmasking does real work.
fn mask_for(index: usize) -> [u8; 4] {
    let i = index as u32;
    (0x37fa_213d_u32 ^ i.wrapping_mul(0x9e37_79b9))
        .to_be_bytes()
        .map(|b| b | 1)
}

/// Opens every connection, at most `connect_concurrency` at a time, each with its handshake
/// and one verified echo.
async fn connect_all(opts: &Options, payload: &[u8]) -> Result<Vec<TcpStream>, LoadError> {
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(opts.connect_concurrency.max(1)));
    let payload: Rc<[u8]> = payload.into();
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..opts.connections {
        let permit = limit.clone().acquire_owned().await.expect("never closed");
        let target = opts.target.clone();
        let payload = payload.clone();
        let kind = opts.kind;
        tasks.spawn_local(async move {
            let result = open(&target, index, kind, &payload).await;
            drop(permit);
            (index, result)
        });
    }
    let mut streams = Vec::with_capacity(opts.connections);
    while let Some(joined) = tasks.join_next().await {
        let (index, result) = joined.expect("connection setup task panicked");
        streams.push(result.map_err(|source| LoadError::Setup { index, source })?);
    }
    Ok(streams)
}

/// Connects, does the handshake (unless raw TCP) and checks one echo byte for byte.
///
/// ```no_run
/// use switchboard_loadgen::{load, wire, PayloadKind, Target};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let target = Target::parse("ws://127.0.0.1:9001/")?;
/// let hello = wire::payload(PayloadKind::Text, 20);
/// let stream = load::open(&target, 0, PayloadKind::Text, &hello).await?;
/// // `stream` is past the handshake and has echoed `hello` once.
/// # drop(stream);
/// # Ok(()) }
/// ```
pub async fn open(
    target: &Target,
    index: usize,
    kind: PayloadKind,
    payload: &[u8],
) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(target.addr()).await?;
    // Frames are written whole; Nagle would only add delay to the round trip.
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    if let Target::WebSocket { host, path, .. } = target {
        let key = wire::client_key(index as u64);
        stream
            .write_all(&wire::client_request(host, path, &key))
            .await?;
        loop {
            if read_more(&mut stream, &mut buf).await? == 0 {
                return Err(eof("during the handshake"));
            }
            if let Some(used) = wire::check_server_response(&buf, &key).map_err(invalid)? {
                buf.drain(..used);
                break;
            }
        }
    }
    stream
        .write_all(&wire::client_frame(kind, payload, mask_for(index)))
        .await?;
    loop {
        if let Some((echo, used)) = wire::parse_whole_message(&buf).map_err(invalid)? {
            if echo != payload || used != buf.len() {
                return Err(invalid("the first echo differs from the message sent: the server is not an echo server"));
            }
            return Ok(stream);
        }
        if read_more(&mut stream, &mut buf).await? == 0 {
            return Err(eof("before the first echo"));
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let len = buf.len();
    buf.resize(len + 64 * 1024, 0);
    let n = stream.read(&mut buf[len..]).await?;
    buf.truncate(len + n);
    Ok(n)
}

fn eof(when: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("server closed {when}"),
    )
}

fn invalid(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// How much one read may take. Large enough that a 16 KiB echo usually arrives in one read,
/// small enough that 10,000 connections cost 640 MiB only if they all run at once.
const READ_BUF_LEN: usize = 64 * 1024;

/// One connection's load loop as a hand-polled future; see the module docs.
struct Driver {
    stream: TcpStream,
    /// The frame `in_flight` times over: any run of queued frames is one slice of it.
    batch: Box<[u8]>,
    frame_len: usize,
    /// Frames queued and not yet completely written (at most `in_flight`).
    queued: usize,
    /// Bytes of the first queued frame already written.
    written: usize,
    /// Send times of the messages whose echo has not ended yet, oldest first.
    sent_at: VecDeque<Instant>,
    read_buf: Box<[u8]>,
    parser: EchoParser,
    shared: Rc<Shared>,
}

impl Driver {
    fn new(stream: TcpStream, frame: &[u8], in_flight: usize, shared: Rc<Shared>) -> Self {
        let now = Instant::now();
        Self {
            stream,
            batch: frame.repeat(in_flight).into_boxed_slice(),
            frame_len: frame.len(),
            queued: in_flight,
            written: 0,
            sent_at: std::iter::repeat_n(now, in_flight).collect(),
            read_buf: vec![0; READ_BUF_LEN].into_boxed_slice(),
            parser: EchoParser::new(),
            shared,
        }
    }

    /// Writes queued frames until none are left (`Ready`) or the socket is full (`Pending`).
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.queued > 0 {
            let end = self.queued * self.frame_len;
            match Pin::new(&mut self.stream).poll_write(cx, &self.batch[self.written..end]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => {
                    let total = self.written + n;
                    self.queued -= total / self.frame_len;
                    self.written = total % self.frame_len;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Accounts for `done` echoes that just ended, queueing as many new messages unless the
    /// run is draining. More echoes than messages on the wire is not an echo server.
    fn on_echoes(&mut self, done: u32) -> std::io::Result<()> {
        // `queued` frames are not (wholly) written yet, so no echo of them can be back.
        let on_wire = self.sent_at.len() - self.queued;
        if done as usize > on_wire {
            return Err(invalid(format!(
                "the server sent {done} messages while {on_wire} were awaiting their echo: it \
                 is not an echo server (a broadcast or chat endpoint, such as the hub's \
                 /ws/CHANNEL, sends every client's messages to all of them)"
            )));
        }
        let now = Instant::now();
        let shared = &*self.shared;
        let mut phase = shared.phase.get();
        shared.echoed.set(shared.echoed.get() + u64::from(done));
        for _ in 0..done {
            let Some(sent) = self.sent_at.pop_front() else {
                break;
            };
            if phase == Phase::Measure {
                let measured = shared.measured.get() + 1;
                shared.measured.set(measured);
                let ns = now.duration_since(sent).as_nanos() as u64;
                shared.histogram.borrow_mut().saturating_record(ns.max(1));
                if measured == shared.max_messages {
                    shared.phase.set(Phase::Drain);
                    shared.limit_reached.notify_one();
                    phase = Phase::Drain;
                }
            }
            if phase != Phase::Drain {
                self.queued += 1;
                self.sent_at.push_back(now);
            }
        }
        Ok(())
    }
}

impl Future for Driver {
    type Output = Result<(), std::io::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            let send_blocked = match this.poll_send(cx) {
                Poll::Ready(Ok(())) => false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => true,
            };
            if this.sent_at.is_empty() {
                // Draining and every echo is back.
                return Poll::Ready(Ok(()));
            }
            let mut read_buf = ReadBuf::new(&mut this.read_buf);
            match Pin::new(&mut this.stream).poll_read(cx, &mut read_buf) {
                Poll::Ready(Ok(())) => {
                    let filled = read_buf.filled();
                    if filled.is_empty() {
                        return Poll::Ready(Err(eof("mid-run")));
                    }
                    match this.parser.feed(filled) {
                        Ok(done) => {
                            if let Err(e) = this.on_echoes(done) {
                                return Poll::Ready(Err(e));
                            }
                        }
                        Err(WireError::Closed) => {
                            return Poll::Ready(Err(eof("with a close frame")))
                        }
                        Err(e) => return Poll::Ready(Err(invalid(e))),
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // Both directions are waiting (or there is nothing to send): the socket will
                // wake us for whichever comes first.
                Poll::Pending if send_blocked || this.queued == 0 => return Poll::Pending,
                Poll::Pending => {}
            }
        }
    }
}

/// Options for [`hold_idle`].
///
/// ```
/// use switchboard_loadgen::{IdleOptions, Target};
///
/// let opts = IdleOptions {
///     echo_once: false, // handshake only
///     ..IdleOptions::new(Target::parse("ws://127.0.0.1:9001/")?, 10_000)
/// };
/// assert_eq!(opts.connect_concurrency, 64);
/// # Ok::<(), switchboard_loadgen::LoadError>(())
/// ```
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// The server.
    pub target: Target,
    /// Connections to open and hold.
    pub connections: usize,
    /// Whether each connection exchanges one 20-byte text echo after its handshake, so the
    /// server has allocated whatever it allocates for a connection that has seen traffic
    /// (default true).
    pub echo_once: bool,
    /// Connection attempts in progress at once (default 64).
    pub connect_concurrency: usize,
    /// How long connecting may take (default 60 s).
    pub setup_timeout: Duration,
}

impl IdleOptions {
    /// Defaults for `target` and `connections`.
    pub fn new(target: Target, connections: usize) -> Self {
        Self {
            target,
            connections,
            echo_once: true,
            connect_concurrency: 64,
            setup_timeout: Duration::from_secs(60),
        }
    }
}

/// Opens `opts.connections` connections, calls `ready` once all are open, then keeps them
/// open until `hold` completes, and closes them. For measuring a server's memory per idle
/// connection from the outside. Returns how long connecting took.
///
/// ```no_run
/// use std::time::Duration;
/// use switchboard_loadgen::{load, IdleOptions, Target};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let opts = IdleOptions::new(Target::parse("ws://127.0.0.1:9001/")?, 1_000);
/// let hold = tokio::time::sleep(Duration::from_secs(10)); // read the server's RSS meanwhile
/// let took = load::hold_idle(&opts, |n| println!("{n} connections open"), hold).await?;
/// println!("connecting took {took:?}");
/// # Ok(()) }
/// ```
pub async fn hold_idle(
    opts: &IdleOptions,
    ready: impl FnOnce(usize),
    hold: impl Future<Output = ()>,
) -> Result<Duration, LoadError> {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let start = Instant::now();
            let load = Options {
                connections: opts.connections,
                connect_concurrency: opts.connect_concurrency,
                ..Options::new(opts.target.clone())
            };
            let connect = async {
                if opts.echo_once {
                    connect_all(&load, &wire::payload(PayloadKind::Text, 20)).await
                } else {
                    connect_without_echo(&load).await
                }
            };
            let streams = tokio::time::timeout(opts.setup_timeout, connect)
                .await
                .map_err(|_| LoadError::SetupTimeout)??;
            let took = start.elapsed();
            ready(streams.len());
            hold.await;
            drop(streams);
            Ok(took)
        })
        .await
}

async fn connect_without_echo(opts: &Options) -> Result<Vec<TcpStream>, LoadError> {
    let mut streams = Vec::with_capacity(opts.connections);
    for index in 0..opts.connections {
        let setup = async {
            let mut stream = TcpStream::connect(opts.target.addr()).await?;
            if let Target::WebSocket { host, path, .. } = &opts.target {
                let key = wire::client_key(index as u64);
                stream
                    .write_all(&wire::client_request(host, path, &key))
                    .await?;
                let mut buf = Vec::new();
                while wire::check_server_response(&buf, &key)
                    .map_err(invalid)?
                    .is_none()
                {
                    if read_more(&mut stream, &mut buf).await? == 0 {
                        return Err(eof("during the handshake"));
                    }
                }
            }
            Ok(stream)
        };
        streams.push(
            setup
                .await
                .map_err(|source| LoadError::Setup { index, source })?,
        );
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = Target::parse("ws://127.0.0.1:9001/echo?x=1").unwrap();
        assert_eq!(
            t,
            Target::WebSocket {
                addr: "127.0.0.1:9001".parse().unwrap(),
                host: "127.0.0.1:9001".into(),
                path: "/echo?x=1".into()
            }
        );
        assert_eq!(
            Target::parse("tcp://127.0.0.1:7").unwrap(),
            Target::RawTcp {
                addr: "127.0.0.1:7".parse().unwrap()
            }
        );
        // The scheme is refused before any name is looked up.
        let err = Target::parse("wss://no-such-host.invalid/").unwrap_err();
        assert!(err.to_string().contains("scheme wss"), "{err}");
    }

    #[test]
    fn report_json_keeps_the_names_the_harness_reads() {
        let report = Report {
            target: "ws://127.0.0.1:9001/".into(),
            connections: 2,
            size: 20,
            kind: PayloadKind::Text,
            in_flight: 1,
            seconds: 2.0,
            messages: 200_000,
            msgs_per_sec: 100_000.0,
            mb_per_sec: 2.0,
            latency: Latency {
                p50_us: 10.0,
                p99_us: 20.0,
                p999_us: 30.0,
                max_us: 40.0,
                mean_us: 11.0,
            },
            client_cpu: 0.5,
            client_user_cpu: 0.1,
            server_cpu: Some(0.9),
            server_user_cpu: None,
            failed_connections: 0,
        };
        let json = serde_json::to_value(&report).unwrap();
        // bench-table and bench/run.sh read these by name.
        for key in [
            "messages",
            "msgs_per_sec",
            "mb_per_sec",
            "client_cpu",
            "client_user_cpu",
            "server_cpu",
            "server_user_cpu",
            "failed_connections",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(json["kind"], "text");
        assert_eq!(json["latency"]["p99_us"], 20.0);
        assert_eq!(serde_json::from_value::<Report>(json).unwrap(), report);
        assert_eq!(report.client_us_per_msg(), Some(5.0));
        assert_eq!(report.server_us_per_msg(), Some(9.0));
        let idle = Report {
            msgs_per_sec: 0.0,
            ..report
        };
        assert_eq!(idle.client_us_per_msg(), None);
    }

    #[test]
    fn masks_are_nonzero_in_every_byte() {
        for i in 0..10_000 {
            assert!(mask_for(i).iter().all(|&b| b != 0));
        }
    }

    /// A raw TCP echo on loopback, bounded by the run's own duration.
    async fn tcp_echo() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// The generator's own kind of runtime: one thread.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn runs_against_a_tcp_echo_and_counts_every_echo() {
        runtime().block_on(async {
            let addr = tcp_echo().await;
            for (size, in_flight) in [(20, 1), (70_000, 3)] {
                let opts = Options {
                    connections: 4,
                    size,
                    kind: PayloadKind::Binary,
                    in_flight,
                    warmup: Duration::from_millis(50),
                    duration: Duration::from_millis(200),
                    max_messages: Some(2_000),
                    server_pid: Some(std::process::id()),
                    ..Options::new(Target::RawTcp { addr })
                };
                let report = run(&opts).await.unwrap();
                assert!(
                    report.messages > 0 && report.messages <= 2_000 + 4 * in_flight as u64,
                    "{report:?}"
                );
                assert_eq!(report.failed_connections, 0);
                assert!(
                    report.latency.p50_us > 0.0 && report.latency.p50_us <= report.latency.max_us
                );
                assert!(report.server_cpu.is_some());
            }
        });
    }

    #[test]
    fn max_messages_ends_measuring_early() {
        runtime().block_on(async {
            let addr = tcp_echo().await;
            let opts = Options {
                connections: 2,
                warmup: Duration::ZERO,
                duration: Duration::from_secs(20),
                max_messages: Some(500),
                ..Options::new(Target::RawTcp { addr })
            };
            let report = run(&opts).await.unwrap();
            assert_eq!(report.messages, 500);
            assert!(report.seconds < 10.0, "{report:?}");
        });
    }

    #[test]
    fn a_server_that_does_not_echo_faithfully_fails_setup() {
        runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 64];
                let n = stream.read(&mut buf).await.unwrap();
                buf[n - 1] ^= 1; // flip one payload bit
                stream.write_all(&buf[..n]).await.unwrap();
            });
            let opts = Options {
                connections: 1,
                ..Options::new(Target::RawTcp { addr })
            };
            assert!(matches!(
                run(&opts).await,
                Err(LoadError::Setup { index: 0, .. })
            ));
        });
    }
}
