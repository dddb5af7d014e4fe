//! `bench-fanout`: fan-out deliveries per second from one publisher to N WebSocket
//! subscribers of one channel, against `switchboard serve` or a Socket.IO server.
//!
//! ```text
//! bench-fanout --target switchboard --addr 127.0.0.1:8080 --subscribers 10000 --json
//! bench-fanout --target socketio --addr 127.0.0.1:3000 --subscribers 1000
//! ```
//!
//! Opens the subscribers (a bounded number of connects at a time), one publisher, then
//! runs warm-up and measured rounds of `--messages` publishes each (see [`fanout`] for how
//! the window keeps every queue short). Everything runs on one thread, so the client costs
//! one core; `bench/fanout/run.sh` pins it to a core of its own. Every round is bounded by
//! `--round-timeout`; the address must be a loopback one.

mod conn;
mod fanout;
mod frames;
mod target;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser as _;
use switchboard_loadgen::wire;
use tokio::sync::Semaphore;

use crate::fanout::{Publisher, Round, Shared};
use crate::target::Target;

#[derive(Debug, clap::Parser)]
#[command(about = "Fan-out benchmark client: deliveries/s from one publisher to N subscribers")]
struct Args {
    /// The server under test.
    #[arg(long, value_enum)]
    target: Target,
    /// Its address (loopback only).
    #[arg(long)]
    addr: SocketAddr,
    /// Spread the subscribers over these servers, round-robin (repeatable; default: --addr).
    /// Nodes that share channels (switchboard --redis, Socket.IO with a Redis adapter):
    /// latency is sampled on the subscribers of the nodes other than --addr.
    #[arg(long = "sub-addr")]
    sub_addrs: Vec<SocketAddr>,
    /// Subscriber connections.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Messages per round (default: 2,000,000 deliveries' worth, 20 to 20,000).
    #[arg(long)]
    messages: Option<usize>,
    /// Payload bytes per message (ASCII letters).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Messages in flight: message k is published once k - window reached everyone.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Measured rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Unmeasured rounds first.
    #[arg(long, default_value_t = 1)]
    warmup_rounds: usize,
    /// Longest one round may take, in seconds.
    #[arg(long, default_value_t = 60)]
    round_timeout: u64,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// The channel (switchboard) to publish on.
    #[arg(long, default_value = "fanout")]
    channel: String,
    /// The server's PID, to report its CPU time per round.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print one JSON report instead of text.
    #[arg(long)]
    json: bool,
}

/// The whole run, as printed with `--json`.
#[derive(Debug, serde::Serialize)]
struct Report {
    target: Target,
    subscribers: usize,
    messages_per_round: usize,
    size: usize,
    window: usize,
    connect_secs: f64,
    warmup: Vec<Round>,
    rounds: Vec<Round>,
    /// Median of the measured rounds' deliveries/s (complete rounds only; null if none).
    median_deliveries_per_sec: Option<f64>,
    /// Every message of every round reached every subscriber, and nothing else arrived.
    all_complete: bool,
    lost: u64,
    error: Option<String>,
    /// Nodes the subscribers were spread over.
    nodes: usize,
    /// Publish-to-delivery latency on the other nodes' subscribers over the measured rounds,
    /// in microseconds (multi-node runs only; includes the pacing window's queueing).
    latency_p50_us: Option<u32>,
    latency_p99_us: Option<u32>,
    latency_samples: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.addr.ip().is_loopback(),
        "--addr must be a loopback address"
    );
    anyhow::ensure!(
        args.subscribers > 0 && args.window > 0,
        "--subscribers and --window must be > 0"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let report = local.block_on(&runtime, run(&args))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_text(&report);
    }
    // Skip the orderly teardown of thousands of sockets; the OS closes them.
    std::process::exit(if report.all_complete { 0 } else { 1 });
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let messages = args
        .messages
        .unwrap_or_else(|| (2_000_000 / args.subscribers).clamp(20, 20_000));
    let total = messages * (args.rounds + args.warmup_rounds);
    let shared = Shared::new(args.subscribers, total);

    let t0 = Instant::now();
    let limit = Rc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let path = args.target.subscriber_path(&args.channel);
    let nodes = if args.sub_addrs.is_empty() {
        vec![args.addr]
    } else {
        args.sub_addrs.clone()
    };
    anyhow::ensure!(
        nodes.iter().all(|a| a.ip().is_loopback()),
        "--sub-addr must be loopback addresses"
    );
    let mut pending = Vec::with_capacity(args.subscribers);
    for n in 0..args.subscribers {
        let limit = Rc::clone(&limit);
        let path = path.clone();
        let (target, addr) = (args.target, nodes[n % nodes.len()]);
        pending.push(tokio::task::spawn_local(async move {
            let _permit = limit.acquire().await?;
            conn::open(target, addr, &path, n as u64)
                .await
                .map(|j| (j, addr))
        }));
    }
    for p in pending {
        let (joined, addr) = p.await??;
        let remote = nodes.len() > 1 && addr != args.addr;
        tokio::task::spawn_local(fanout::subscriber(
            args.target,
            joined,
            Rc::clone(&shared),
            remote,
        ));
    }
    let connect_secs = t0.elapsed().as_secs_f64();
    let publisher = conn::open(
        args.target,
        args.addr,
        &args.target.publisher_path(),
        u64::MAX,
    )
    .await?;
    let payload = String::from_utf8(wire::payload(wire::PayloadKind::Text, args.size))?;
    let mut publisher = Publisher::new(
        args.target,
        publisher,
        args.target.publish_frame(&args.channel, &payload),
    );
    if !args.json {
        eprintln!(
            "{:?}: {} subscribers connected in {connect_secs:.1} s; {} rounds of {messages} messages",
            args.target,
            args.subscribers,
            args.warmup_rounds + args.rounds
        );
    }

    let limit = Duration::from_secs(args.round_timeout);
    let mut warmup = Vec::new();
    let mut rounds = Vec::new();
    let mut error = None;
    for i in 0..args.warmup_rounds + args.rounds {
        if i == args.warmup_rounds {
            shared.sample_latency(true);
        }
        let r = publisher
            .round(&shared, messages, args.window, limit, args.server_pid)
            .await?;
        if !args.json {
            eprintln!(
                "  {} {}: {:.0} deliveries/s ({} in {:.2} s){}",
                if i < args.warmup_rounds {
                    "warm-up"
                } else {
                    "round"
                },
                i + 1,
                r.deliveries_per_sec,
                r.deliveries,
                r.secs,
                if r.complete { "" } else { " INCOMPLETE" }
            );
        }
        let complete = r.complete;
        if i < args.warmup_rounds {
            warmup.push(r);
        } else {
            rounds.push(r);
        }
        if !complete {
            let (ended, first) = shared.ended_connections();
            error = Some(match first {
                Some(e) => format!("{ended} subscriber connection(s) ended: {e}"),
                None => format!("round {} hit its {}s limit", i + 1, args.round_timeout),
            });
            break;
        }
    }
    // Let stragglers (a frame beyond the last one counted) show up before the tally.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expected = (publisher.published() * args.subscribers) as u64;
    let all_complete = error.is_none() && shared.deliveries() == expected;
    if error.is_none() && shared.deliveries() != expected {
        error = Some(format!(
            "{} deliveries, expected {expected}",
            shared.deliveries()
        ));
    }
    let mut rates: Vec<f64> = rounds
        .iter()
        .filter(|r| r.complete)
        .map(|r| r.deliveries_per_sec)
        .collect();
    rates.sort_by(f64::total_cmp);
    let median = (!rates.is_empty()).then(|| {
        let m = rates.len() / 2;
        if rates.len() % 2 == 1 {
            rates[m]
        } else {
            (rates[m - 1] + rates[m]) / 2.0
        }
    });
    let latency = shared.latency_percentiles();
    Ok(Report {
        nodes: nodes.len(),
        latency_p50_us: latency.map(|l| l.0),
        latency_p99_us: latency.map(|l| l.1),
        latency_samples: latency.map_or(0, |l| l.2),
        target: args.target,
        subscribers: args.subscribers,
        messages_per_round: messages,
        size: args.size,
        window: args.window,
        connect_secs,
        warmup,
        rounds,
        median_deliveries_per_sec: median,
        all_complete,
        lost: expected.saturating_sub(shared.deliveries()),
        error,
    })
}

fn print_text(r: &Report) {
    match r.median_deliveries_per_sec {
        Some(m) => println!(
            "{:?} x{} on {} node(s): median {m:.0} deliveries/s over {} rounds{}{}",
            r.target,
            r.subscribers,
            r.nodes,
            r.rounds.len(),
            match (r.latency_p50_us, r.latency_p99_us) {
                (Some(a), Some(b)) => format!(", cross-node latency p50 {a} us p99 {b} us"),
                _ => String::new(),
            },
            r.error
                .as_deref()
                .map(|e| format!(" (error: {e})"))
                .unwrap_or_default()
        ),
        None => println!(
            "{:?} x{}: no complete round ({})",
            r.target,
            r.subscribers,
            r.error.as_deref().unwrap_or("?")
        ),
    }
}
