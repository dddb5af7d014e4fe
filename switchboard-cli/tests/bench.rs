//! `switchboard bench` end to end: against `switchboard echo` on a free loopback port (the
//! JSON report, the `--max-messages` bound, the human summary, `--idle`), and against a port
//! where nothing listens. Every run is bounded by its own options and by `LIMIT`.

mod support;

use std::net::TcpListener;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::EchoServer;

/// How long one `switchboard bench` run may take before the test fails.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `switchboard bench URL ARGS` (`args` split at spaces) to completion, within `LIMIT`.
fn bench(url: &str, args: &str) -> Output {
    let mut command = support::switchboard(&["bench", url]);
    command.args(args.split_whitespace());
    support::run(command, "", LIMIT)
}

/// Runs `switchboard bench` against a `switchboard echo` of its own, with `ARGS` and
/// `--server-pid` naming that server (so the report has the server's side too).
fn bench_against_echo(args: &str) -> Output {
    let echo = EchoServer::start(&[]);
    bench(&echo.url(), &format!("{args} --server-pid {}", echo.pid()))
}

/// The one JSON object a successful `--json` run prints.
fn json_report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "stdout: {stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn f64_at(report: &Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer} in {report}"))
}

#[test]
fn json_report_against_echo_has_messages_and_ordered_percentiles() {
    let output = bench_against_echo("-c 4 -s 100 --warmup 0.2 --duration 0.5 --json");
    let report = json_report(&output);
    assert!(report["messages"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["connections"], 4, "{report}");
    assert_eq!(report["size"], 100, "{report}");
    assert_eq!(report["kind"], "text", "{report}");
    assert_eq!(report["failed_connections"], 0, "{report}");
    let p50 = f64_at(&report, "/latency/p50_us");
    let p99 = f64_at(&report, "/latency/p99_us");
    let p999 = f64_at(&report, "/latency/p999_us");
    let max = f64_at(&report, "/latency/max_us");
    assert!(
        0.0 < p50 && p50 <= p99 && p99 <= p999 && p999 <= max,
        "{report}"
    );
    assert!(f64_at(&report, "/msgs_per_sec") > 0.0, "{report}");
    assert!(f64_at(&report, "/client_cpu") > 0.0, "{report}");
    assert!(f64_at(&report, "/server_cpu") > 0.0, "{report}");
}

#[test]
fn max_messages_bounds_the_run() {
    let echo = EchoServer::start(&[]);
    let output = bench(
        &echo.url(),
        "-c 4 -s 1KiB --binary --warmup 0 --duration 30 --max-messages 300 --json",
    );
    let report = json_report(&output);
    assert_eq!(report["messages"], 300, "{report}");
    assert_eq!(report["kind"], "binary", "{report}");
    assert_eq!(report["size"], 1024, "{report}");
    // Ended by the count, not by the 30 s duration.
    assert!(f64_at(&report, "/seconds") < 15.0, "{report}");
}

#[test]
fn default_output_is_a_summary_and_no_progress_line_off_a_terminal() {
    let output = bench_against_echo("-c 2 --warmup 0 --duration 0.3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr: {stderr}");
    for part in [
        "2 connections x 20 B text",
        "msgs/s",
        "MB/s",
        "p50 ",
        "p99 ",
        "p99.9 ",
        "max ",
        "generator ",
        "server ",
        "us/msg",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from {stdout}");
    }
    // stderr is a pipe here, not a terminal: no progress line.
    assert_eq!(stderr, "");
}

#[test]
fn idle_reports_server_memory_per_connection() {
    let output = bench_against_echo("--idle 20 --settle 0.1 --json");
    let report = json_report(&output);
    assert_eq!(report["connections"], 20, "{report}");
    assert!(f64_at(&report, "/rss_before_kib") > 0.0, "{report}");
    assert!(f64_at(&report, "/rss_after_kib") > 0.0, "{report}");
    // A number, whatever the allocator did: before and after were both read.
    f64_at(&report, "/kib_per_connection");
}

#[test]
fn nothing_listening_fails_with_one_line() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("ws://{addr}/");
    let output = bench(&url, "-c 2 --warmup 0 --duration 0.2");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "stderr: {stderr}");
    assert!(output.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot benchmark {url}")),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
}

#[test]
fn bench_against_a_broadcast_endpoint_fails_clearly_instead_of_panicking() {
    // The hub's chat room sends every client's messages to all of them: not an echo.
    let hub = support::HubProcess::start(&[]);
    let url = format!("ws://{}/ws/chat", hub.addr);
    let output = support::run(
        support::switchboard(&["bench", &url, "-c", "4", "--warmup", "0", "--duration", "2"]),
        "",
        LIMIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("not an echo server"), "{stderr}");
}
