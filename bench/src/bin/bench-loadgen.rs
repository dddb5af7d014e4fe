//! Command-line front of `switchboard_bench::load`: an echo load generator on one thread.
//!
//! ```text
//! bench-loadgen ws://127.0.0.1:9001/ -c 100 -s 20 --text --duration 5
//! bench-loadgen tcp://127.0.0.1:9000 -c 1 -s 1MiB --binary --json
//! bench-loadgen ws://127.0.0.1:9001/ --idle 10000 --server-pid 1234 --json
//! ```

use std::time::Duration;

use clap::Parser as _;
use switchboard_bench::load::{self, IdleOptions, Options, Target};
use switchboard_bench::procstat;
use switchboard_bench::wire::PayloadKind;

#[derive(Debug, clap::Parser)]
#[command(about = "Echo load generator: msgs/s, MB/s and latency percentiles")]
struct Args {
    /// `ws://host:port/path` for a WebSocket echo, `tcp://host:port` for a plain TCP echo.
    url: String,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 100)]
    connections: usize,
    /// Payload size: bytes, or with a KiB / MiB suffix.
    #[arg(short = 's', long, default_value = "20", value_parser = parse_size)]
    size: usize,
    /// Send binary messages (default: text).
    #[arg(long, conflicts_with = "text")]
    binary: bool,
    /// Send text messages (the default).
    #[arg(long)]
    text: bool,
    /// Messages outstanding per connection.
    #[arg(long, default_value_t = 1)]
    in_flight: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds to measure.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Stop measuring after this many echoes.
    #[arg(long)]
    max_messages: Option<u64>,
    /// The server's PID: report its CPU use (and, with --idle, its memory).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Instead of load: open this many connections, measure the server's RSS before and after
    /// (needs --server-pid), then close them.
    #[arg(long)]
    idle: Option<usize>,
    /// With --idle: seconds to let the server settle before reading its RSS.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// The result of an --idle run.
#[derive(Debug, serde::Serialize)]
struct IdleReport {
    target: String,
    connections: usize,
    setup_secs: f64,
    rss_before_kib: Option<u64>,
    rss_after_kib: Option<u64>,
    kib_per_connection: Option<f64>,
}

fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().map_err(|_| format!("bad size {s}"))?;
    let unit = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1024,
        "m" | "mib" => 1024 * 1024,
        _ => return Err(format!("bad size unit in {s} (use B, KiB or MiB)")),
    };
    Ok(n * unit)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = Target::parse(&args.url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if let Some(connections) = args.idle {
        let rss_before = args.server_pid.and_then(procstat::rss_kib);
        let mut rss_after = None;
        let opts = IdleOptions::new(target, connections);
        let settle = Duration::from_secs_f64(args.settle);
        let setup = rt.block_on(load::hold_idle(&opts, |_| {}, async {
            tokio::time::sleep(settle).await;
            rss_after = args.server_pid.and_then(procstat::rss_kib);
        }))?;
        let report = IdleReport {
            target: args.url.clone(),
            connections,
            setup_secs: setup.as_secs_f64(),
            rss_before_kib: rss_before,
            rss_after_kib: rss_after,
            kib_per_connection: rss_before
                .zip(rss_after)
                .map(|(before, after)| (after as f64 - before as f64) / connections as f64),
        };
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            println!(
                "{connections} idle connections in {:.2} s; server RSS {:?} KiB -> {:?} KiB: {} KiB per connection",
                report.setup_secs,
                report.rss_before_kib,
                report.rss_after_kib,
                report.kib_per_connection.map_or("?".into(), |k| format!("{k:.2}"))
            );
        }
        return Ok(());
    }

    let opts = Options {
        connections: args.connections,
        size: args.size,
        kind: if args.binary {
            PayloadKind::Binary
        } else {
            PayloadKind::Text
        },
        in_flight: args.in_flight,
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        max_messages: args.max_messages,
        server_pid: args.server_pid,
        progress: !args.json,
        ..Options::new(target)
    };
    let report = rt.block_on(load::run(&opts))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let l = &report.latency;
        println!(
            "{} x {} B {:?}, {} in flight: {:.0} msg/s, {:.1} MB/s over {:.1} s\n\
             latency us: p50 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}\n\
             cpu: generator {:.0}%{}{}",
            report.connections,
            report.size,
            report.kind,
            report.in_flight,
            report.msgs_per_sec,
            report.mb_per_sec,
            report.seconds,
            l.p50_us,
            l.p99_us,
            l.p999_us,
            l.max_us,
            report.client_cpu * 100.0,
            report
                .server_cpu
                .map_or(String::new(), |c| format!(", server {:.0}%", c * 100.0)),
            if report.failed_connections > 0 {
                format!("\n{} connections failed", report.failed_connections)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
