//! WebSocket echo over HTTP/2 (RFC 8441) next to HTTP/1.1, against `switchboard echo
//! --tls-cert … --tls-key …`: the same client (switchboard's, forced onto h2 or kept on
//! HTTP/1.1), the same TLS, one message in flight per connection. Reports echoes/s and the
//! server's and the client's CPU per echo (bench/h2/run.sh drives it; results in
//! bench/h2/RESULTS.md).

use anyhow::Context;
use clap::Parser;
use std::time::{Duration, Instant};
use switchboard::http2::Http2Mode;
use switchboard::{Client, Message, WebSocketConfig};
use switchboard_loadgen::procstat::{own_cpu_time, process_cpu_time};

/// Options of bench-h2.
#[derive(Debug, Parser)]
struct Args {
    /// wss://host:port/path of the echo server.
    #[arg(long)]
    url: String,
    /// The test CA that signed the server's certificate (PEM).
    #[arg(long)]
    ca: std::path::PathBuf,
    /// Use HTTP/2 (else HTTP/1.1).
    #[arg(long)]
    http2: bool,
    /// Connections (each one WebSocket; over h2 each on its own h2 connection, like a
    /// browser tab per client).
    #[arg(short = 'c', long, default_value_t = 10)]
    connections: usize,
    /// Payload bytes per message.
    #[arg(short = 's', long, default_value_t = 20)]
    size: usize,
    /// Seconds of warm-up, then seconds measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// The server's PID, for its CPU time per echo.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Instead of running for a time: each connection echoes exactly this many messages
    /// (warm-up included), then closes. For instruction counts under callgrind, where a
    /// count, not a duration, makes two runs comparable (bench/h2/callgrind.sh).
    #[arg(long)]
    echoes_per_connection: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One thread: the client's CPU per echo is then comparable between the versions.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::builder()
        .tls_config(switchboard::tls::client_config([&args.ca])?)
        .http2(if args.http2 {
            Http2Mode::Force
        } else {
            Http2Mode::Never
        })
        .config(WebSocketConfig::default().compression(false))
        .build()?;
    let payload = Message::from(vec![b'x'; args.size]);
    let warm_end = Instant::now() + Duration::from_secs_f64(args.warmup);
    let end = warm_end + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (mut ws, _) = client
            .connect(&args.url)
            .await
            .with_context(|| format!("cannot connect to {}", args.url))?;
        let want = if args.http2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        anyhow::ensure!(
            ws.get_ref().http_version() == want,
            "connected over the wrong version"
        );
        let payload = payload.clone();
        let limit = args.echoes_per_connection;
        tasks.push(tokio::spawn(async move {
            let mut counted = 0u64;
            let mut sent = 0u64;
            while match limit {
                Some(limit) => sent < limit,
                None => Instant::now() < end,
            } {
                sent += 1;
                ws.send(payload.clone()).await?;
                match ws.recv().await {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(anyhow::Error::from(e)),
                    None => anyhow::bail!("the server closed"),
                }
                if limit.is_some() || Instant::now() >= warm_end {
                    counted += 1;
                }
            }
            let _ = ws.close(switchboard::CloseCode::NORMAL, "").await;
            Ok(counted)
        }));
    }
    if args.echoes_per_connection.is_none() {
        tokio::time::sleep_until(warm_end.into()).await;
    }
    let (server0, client0) = (args.server_pid.and_then(process_cpu_time), own_cpu_time());
    let measured_from = Instant::now();
    let mut echoes = 0;
    for task in tasks {
        echoes += task.await??;
    }
    let (server1, client1) = (args.server_pid.and_then(process_cpu_time), own_cpu_time());
    let seconds = match args.echoes_per_connection {
        Some(_) => measured_from.elapsed().as_secs_f64(),
        None => args.duration,
    };
    let per_echo = |d: Duration| d.as_secs_f64() * 1e6 / echoes.max(1) as f64;
    let server_us = match (server0, server1) {
        (Some(a), Some(b)) => format!("{:.2}", per_echo(b.since(a).total())),
        _ => "null".to_owned(),
    };
    println!(
        "{{\"http\":\"{}\",\"size\":{},\"connections\":{},\"echoes\":{},\"echoes_per_s\":{:.0},\"server_cpu_us_per_echo\":{},\"client_cpu_us_per_echo\":{:.2}}}",
        if args.http2 { "2" } else { "1.1" },
        args.size,
        args.connections,
        echoes,
        echoes as f64 / seconds,
        server_us,
        per_echo(client1.since(client0).total()),
    );
    Ok(())
}
