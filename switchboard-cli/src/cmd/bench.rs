//! `switchboard bench`: an echo load generator on one core, the front of
//! `switchboard-loadgen`.
//!
//! ```text
//! switchboard bench ws://127.0.0.1:9001/ -c 100 -s 20 --text --duration 5
//! switchboard bench tcp://127.0.0.1:9000 -c 1 -s 1MiB --binary --json
//! switchboard bench ws://127.0.0.1:9001/ --idle 10000 --server-pid 1234
//! ```
//!
//! The default output is a short human-readable summary on stdout; `--json` prints the
//! library's `Report` as one JSON object instead (what `bench/run.sh` records). A progress
//! line goes to stderr once a second, only when stderr is a terminal. `main` runs this
//! command on a current-thread runtime: the generator is one core by design, so the other
//! cores are left to the server.

use anyhow::Context as _;
use std::process::ExitCode;
use std::time::Duration;
use switchboard_loadgen::{load, procstat, IdleOptions, Options, PayloadKind, Report, Target};

/// Options of `switchboard bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// `ws://host:port/path` for a WebSocket echo server, `tcp://host:port` for a plain TCP
    /// echo (the same frames, no handshake: the ceiling to compare against).
    url: String,
    /// Connections.
    #[arg(short = 'c', long, default_value_t = 100, value_name = "N")]
    connections: usize,
    /// Payload size: bytes, or with a KiB / MiB suffix (e.g. 16KiB).
    #[arg(short = 's', long, default_value = "20", value_parser = parse_size, value_name = "SIZE")]
    size: usize,
    /// Send binary messages (default: text).
    #[arg(long, conflicts_with = "text")]
    binary: bool,
    /// Send text messages (the default).
    #[arg(long)]
    text: bool,
    /// Messages outstanding per connection (1: send, wait for the echo, send again).
    #[arg(long, default_value_t = 1, value_name = "N")]
    in_flight: usize,
    /// Seconds of load before measuring.
    #[arg(long, default_value = "2", value_parser = parse_seconds, value_name = "SECONDS")]
    warmup: Duration,
    /// Seconds to measure.
    #[arg(long, default_value = "5", value_parser = parse_seconds, value_name = "SECONDS")]
    duration: Duration,
    /// Stop measuring after this many echoes, if that comes before --duration.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,
    /// The server's PID, to report its CPU use per message (and, with --idle, its memory).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Instead of load: open N connections (handshake and one echo each), hold them idle,
    /// and report the server's resident memory per connection (needs --server-pid).
    #[arg(long, value_name = "N")]
    idle: Option<usize>,
    /// With --idle: seconds to let the server settle before reading its memory.
    #[arg(long, default_value = "1", value_parser = parse_seconds, value_name = "SECONDS")]
    settle: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

/// The result of an `--idle` run; field names are what `bench-table` reads.
#[derive(Debug, serde::Serialize)]
struct IdleReport {
    /// The URL as given.
    target: String,
    /// Connections held.
    connections: usize,
    /// Seconds connecting took.
    setup_secs: f64,
    /// The server's RSS before connecting, KiB.
    rss_before_kib: Option<u64>,
    /// The server's RSS with every connection open, after settling, KiB.
    rss_after_kib: Option<u64>,
    /// (after − before) / connections.
    kib_per_connection: Option<f64>,
}

/// Runs `switchboard bench`. Must be awaited on a current-thread runtime (the generator's
/// futures are not `Send`, and it is meant to use one core).
pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target = Target::parse(&args.url)?;
    if let Some(connections) = args.idle {
        return idle(&args, target, connections).await;
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
        warmup: args.warmup,
        duration: args.duration,
        max_messages: args.max_messages,
        server_pid: args.server_pid,
        progress: true,
        ..Options::new(target)
    };
    let report = load::run(&opts)
        .await
        .with_context(|| format!("cannot benchmark {}", args.url))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", summary(&report));
    }
    if report.failed_connections > 0 {
        // The figures above undercount: say so in the exit status too, for scripts.
        eprintln!(
            "error: {} of {} connections failed or were cut off by the server during the run",
            report.failed_connections, report.connections
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn idle(args: &Args, target: Target, connections: usize) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(connections > 0, "--idle needs at least 1 connection");
    let rss_before = args.server_pid.and_then(procstat::rss_kib);
    let mut rss_after = None;
    let settle = args.settle;
    let hold = async {
        tokio::time::sleep(settle).await;
        rss_after = args.server_pid.and_then(procstat::rss_kib);
    };
    let setup = load::hold_idle(&IdleOptions::new(target, connections), |_| {}, hold)
        .await
        .with_context(|| format!("cannot open {connections} connections to {}", args.url))?;
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
        let memory = match (report.rss_before_kib, report.rss_after_kib) {
            (Some(before), Some(after)) => format!(
                "server RSS {before} KiB -> {after} KiB: {:.2} KiB per connection",
                report.kib_per_connection.unwrap_or_default()
            ),
            _ => "server memory not read (give --server-pid)".to_owned(),
        };
        println!(
            "{connections} idle connections open in {:.2} s; {memory}",
            report.setup_secs
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The human-readable result: rates, latency percentiles, and each side's CPU per message.
fn summary(r: &Report) -> String {
    let kind = match r.kind {
        PayloadKind::Text => "text",
        PayloadKind::Binary => "binary",
    };
    let l = &r.latency;
    let mut out = format!(
        "{}: {} connections x {} B {kind}, {} in flight, {:.1} s measured\n\
         \x20 {} msgs/s   {:.1} MB/s   ({} messages)\n\
         \x20 latency us   p50 {:.1}   p99 {:.1}   p99.9 {:.1}   max {:.1}\n",
        r.target,
        r.connections,
        r.size,
        r.in_flight,
        r.seconds,
        grouped(r.msgs_per_sec.round() as u64),
        r.mb_per_sec,
        grouped(r.messages),
        l.p50_us,
        l.p99_us,
        l.p999_us,
        l.max_us,
    );
    let per_msg = |us: Option<f64>| us.map_or("-".to_owned(), |us| format!("{us:.2}"));
    out += &format!(
        "  cpu          generator {:.0}% of a core, {} us/msg (user {})",
        r.client_cpu * 100.0,
        per_msg(r.client_us_per_msg()),
        per_msg(r.us_per_msg(r.client_user_cpu)),
    );
    if let Some(server) = r.server_cpu {
        out += &format!(
            "; server {:.0}%, {} us/msg (user {})",
            server * 100.0,
            per_msg(r.server_us_per_msg()),
            per_msg(r.server_user_cpu.and_then(|c| r.us_per_msg(c))),
        );
    }
    out.push('\n');
    if r.client_cpu >= 0.9 {
        out += "  note: the generator used 90% or more of its core, so these figures may be \
                its limit rather than the server's\n";
    }
    if r.failed_connections > 0 {
        out += &format!(
            "  {} connections failed or were cut off during the run (their echoes until then \
             count)\n",
            r.failed_connections
        );
    }
    out
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A payload size: bytes, or with a KiB / MiB suffix (`K`, `M` and `B` are accepted too).
fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: usize = digits.parse().map_err(|_| format!("bad size {s:?}"))?;
    let unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        _ => return Err(format!("bad size unit in {s:?} (use B, KiB or MiB)")),
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Seconds as a decimal number, zero or more.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("bad number of seconds {s:?}"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is not a duration in seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_loadgen::Latency;

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("20"), Ok(20));
        assert_eq!(parse_size("16KiB"), Ok(16 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("3k"), Ok(3 * 1024));
        assert_eq!(parse_size("7B"), Ok(7));
        assert!(parse_size("1GiB").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("99999999999999999999MiB").is_err());
    }

    #[test]
    fn seconds_are_non_negative_numbers() {
        assert_eq!(parse_seconds("0.2"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    fn report() -> Report {
        Report {
            target: "ws://127.0.0.1:9001/".into(),
            connections: 100,
            size: 20,
            kind: PayloadKind::Text,
            in_flight: 1,
            seconds: 5.0,
            messages: 1_000_000,
            msgs_per_sec: 200_000.0,
            mb_per_sec: 4.0,
            latency: Latency {
                p50_us: 480.0,
                p99_us: 700.0,
                p999_us: 900.5,
                max_us: 2_000.0,
                mean_us: 500.0,
            },
            client_cpu: 0.8,
            client_user_cpu: 0.2,
            server_cpu: None,
            server_user_cpu: None,
            failed_connections: 0,
        }
    }

    #[test]
    fn summary_shows_rates_percentiles_and_cpu_per_message() {
        let text = summary(&report());
        assert!(text.contains("200,000 msgs/s"), "{text}");
        assert!(text.contains("4.0 MB/s"), "{text}");
        assert!(
            text.contains("p50 480.0   p99 700.0   p99.9 900.5   max 2000.0"),
            "{text}"
        );
        // 0.8 cores / 200k msgs/s = 4 us per message, 1 of it user time.
        assert!(
            text.contains("generator 80% of a core, 4.00 us/msg (user 1.00)"),
            "{text}"
        );
        assert!(!text.contains("server"), "{text}");
        assert!(!text.contains("note:"), "{text}");

        let text = summary(&Report {
            server_cpu: Some(1.0),
            server_user_cpu: Some(0.3),
            client_cpu: 0.95,
            failed_connections: 2,
            ..report()
        });
        assert!(
            text.contains("server 100%, 5.00 us/msg (user 1.50)"),
            "{text}"
        );
        assert!(text.contains("note: the generator used 90%"), "{text}");
        assert!(text.contains("2 connections failed"), "{text}");
    }
}
