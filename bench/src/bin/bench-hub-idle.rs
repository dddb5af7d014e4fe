//! `bench-hub-idle`: the hub's memory per idle connection of one transport, measured from
//! outside as `switchboard bench --idle` measures an echo server: the server's `VmRSS`
//! before and after opening N connections, divided by N.
//!
//! ```text
//! bench-hub-idle --addr 127.0.0.1:8080 --kind chat --connections 10000 --server-pid 1234
//! ```
//!
//! Kinds (all on one channel, `--channel`):
//!
//! - `ws`: `GET /ws`, then `{"op":"subscribe",…}`; open once `subscribed` arrived;
//! - `ws-bare`: `GET /ws` without a subscription;
//! - `chat`: `GET /ws/{channel}` (subscribed by the handshake itself);
//! - `sse`: `GET /sse/{channel}`; open once the response head and the `retry:` preamble
//!   arrived;
//! - `poll`: `GET /poll/{channel}?timeout=S`: a waiting long poll (it answers only after
//!   `S` seconds, so the client checks at the end that every poll answers 200 then).
//!
//! Connections open `--concurrency` at a time on one thread; the whole run is bounded
//! (`--setup-timeout`, and the poll wait). Loopback only. Prints one JSON line.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;
use switchboard_loadgen::{procstat, wire};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Which transport an idle connection uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    /// `/ws` with one subscription.
    Ws,
    /// `/ws` without a subscription.
    WsBare,
    /// `/ws/{channel}`.
    Chat,
    /// `/sse/{channel}`.
    Sse,
    /// `/poll/{channel}`.
    Poll,
}

#[derive(Debug, clap::Parser)]
#[command(about = "Hub memory per idle connection: RSS delta / connections")]
struct Args {
    /// The hub (loopback only).
    #[arg(long)]
    addr: SocketAddr,
    /// The transport.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// The hub's PID (its VmRSS is read).
    #[arg(long)]
    server_pid: u32,
    /// The channel every connection uses.
    #[arg(long, default_value = "idle")]
    channel: String,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to let the server settle before reading its memory.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Longest the connecting may take, in seconds.
    #[arg(long, default_value_t = 120)]
    setup_timeout: u64,
    /// `poll`: the poll's `timeout` in seconds (it must outlast connecting and settling).
    #[arg(long, default_value_t = 60)]
    poll_timeout: u64,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    kind: Kind,
    connections: usize,
    connect_secs: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    kib_per_connection: f64,
    /// `poll` only: polls that answered 200 when their timeout passed.
    polls_answered: Option<usize>,
}

const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.addr.ip().is_loopback(), "--addr must be loopback");
    anyhow::ensure!(args.connections > 0, "--connections must be > 0");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&runtime, run(&args))?;
    println!("{}", serde_json::to_string(&report)?);
    std::process::exit(0);
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let rss = || procstat::rss_kib(args.server_pid).context("cannot read the server's VmRSS");
    let before = rss()?;
    let t0 = Instant::now();
    let limit = Rc::new(Semaphore::new(args.concurrency.max(1)));
    let spec = Rc::new(Spec {
        addr: args.addr,
        kind: args.kind,
        channel: args.channel.clone(),
        poll_timeout: args.poll_timeout,
    });
    let mut pending = Vec::with_capacity(args.connections);
    for n in 0..args.connections {
        let limit = Rc::clone(&limit);
        let spec = Rc::clone(&spec);
        pending.push(tokio::task::spawn_local(async move {
            let _permit = limit.acquire().await?;
            open(&spec, n as u64)
                .await
                .with_context(|| format!("connection {n}"))
        }));
    }
    let all = async {
        let mut streams = Vec::with_capacity(pending.len());
        for p in pending {
            streams.push(p.await??);
        }
        anyhow::Ok(streams)
    };
    let mut streams = tokio::time::timeout(Duration::from_secs(args.setup_timeout), all)
        .await
        .context("connecting timed out")??;
    let connect_secs = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let after = rss()?;
    if args.kind == Kind::Poll {
        anyhow::ensure!(
            connect_secs + args.settle < args.poll_timeout as f64,
            "connecting took {connect_secs:.1} s: polls may have answered before the reading"
        );
    }
    let polls_answered = if args.kind == Kind::Poll {
        let wait = Duration::from_secs(args.poll_timeout + 30);
        let answered = tokio::time::timeout(wait, async {
            let mut ok = 0;
            for s in &mut streams {
                if poll_answered(s).await.unwrap_or(false) {
                    ok += 1;
                }
            }
            ok
        })
        .await
        .context("polls did not answer")?;
        anyhow::ensure!(
            answered == streams.len(),
            "{answered} of {} polls answered 200",
            streams.len()
        );
        Some(answered)
    } else {
        None
    };
    drop(streams);
    Ok(Report {
        kind: args.kind,
        connections: args.connections,
        connect_secs,
        rss_before_kib: before,
        rss_after_kib: after,
        kib_per_connection: (after as f64 - before as f64) / args.connections as f64,
        polls_answered,
    })
}

/// What every connection of the run opens.
struct Spec {
    addr: SocketAddr,
    kind: Kind,
    channel: String,
    poll_timeout: u64,
}

async fn open(spec: &Spec, n: u64) -> anyhow::Result<TcpStream> {
    let mut last = None;
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        let once = tokio::time::timeout(Duration::from_secs(10), try_open(spec, n));
        match once.await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(anyhow::anyhow!("timed out")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
}

async fn try_open(spec: &Spec, n: u64) -> anyhow::Result<TcpStream> {
    let Spec {
        addr,
        kind,
        ref channel,
        poll_timeout,
    } = *spec;
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let host = addr.to_string();
    let mut buf = Vec::with_capacity(1024);
    match kind {
        Kind::Ws | Kind::WsBare | Kind::Chat => {
            let path = match kind {
                Kind::Chat => format!("/ws/{channel}"),
                _ => "/ws".to_owned(),
            };
            let key = wire::client_key(n);
            stream
                .write_all(&wire::client_request(&host, &path, &key))
                .await?;
            let head = loop {
                read_some(&mut stream, &mut buf).await?;
                if let Some(len) = wire::check_server_response(&buf, &key)? {
                    break len;
                }
            };
            buf.drain(..head);
            if kind == Kind::Ws {
                let sub = format!(r#"{{"op":"subscribe","channel":"{channel}"}}"#);
                stream
                    .write_all(&wire::masked_frame(0x1, sub.as_bytes(), MASK))
                    .await?;
                loop {
                    if let Some((payload, used)) = wire::parse_whole_message(&buf)? {
                        buf.drain(..used);
                        let subscribed = br#""op":"subscribed""#;
                        if payload.windows(subscribed.len()).any(|w| w == subscribed) {
                            break;
                        }
                        anyhow::bail!(
                            "expected subscribed, got {}",
                            String::from_utf8_lossy(&payload)
                        );
                    }
                    read_some(&mut stream, &mut buf).await?;
                }
            }
        }
        Kind::Sse => {
            let req = format!(
                "GET /sse/{channel} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
            );
            stream.write_all(req.as_bytes()).await?;
            loop {
                read_some(&mut stream, &mut buf).await?;
                let text = String::from_utf8_lossy(&buf);
                if let Some(at) = text.find("\r\n\r\n") {
                    anyhow::ensure!(
                        text.starts_with("HTTP/1.1 200"),
                        "SSE answered {}",
                        text.lines().next().unwrap_or("")
                    );
                    if text[at..].contains("retry:") {
                        break;
                    }
                }
            }
        }
        Kind::Poll => {
            let req = format!(
                "GET /poll/{channel}?timeout={poll_timeout} HTTP/1.1\r\nHost: {host}\r\n\r\n"
            );
            stream.write_all(req.as_bytes()).await?;
            // Nothing arrives until the poll answers (after `poll_timeout`); a refusal
            // would, and is caught by the check at the end.
        }
    }
    Ok(stream)
}

async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut chunk = [0u8; 2048];
    let got = stream.read(&mut chunk).await?;
    anyhow::ensure!(got > 0, "closed by the server");
    anyhow::ensure!(buf.len() < 64 * 1024, "answer too long");
    buf.extend_from_slice(&chunk[..got]);
    Ok(())
}

/// Whether a waiting poll answers `200` (after its timeout).
async fn poll_answered(stream: &mut TcpStream) -> anyhow::Result<bool> {
    let mut buf = Vec::new();
    loop {
        read_some(stream, &mut buf).await?;
        if buf.len() >= 12 {
            return Ok(buf.starts_with(b"HTTP/1.1 200"));
        }
    }
}
