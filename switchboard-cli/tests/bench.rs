//! `switchboard bench` end to end: against `switchboard echo` on a free loopback port (the
//! JSON report, the `--max-messages` bound, the human summary, `--idle`), and against a port
//! where nothing listens. Every run is bounded by its own options and by `LIMIT`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_switchboard");
const LIMIT: Duration = Duration::from_secs(60);

/// `switchboard echo` on port 0, killed on drop.
struct Echo {
    child: Child,
    url: String,
}

impl Echo {
    fn start() -> Echo {
        let mut child = Command::new(BIN)
            .args(["echo", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let line = lines.next().expect("a log line").unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("ws://"))
            .unwrap_or_else(|| panic!("no URL in the log line {line:?}"))
            .to_owned();
        // Keep reading the log, so the server never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Echo { child, url }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `switchboard bench URL ARGS` (`args` split at spaces) to completion, within `LIMIT`.
fn bench(url: &str, args: &str) -> Output {
    let child = Command::new(BIN)
        .args(["bench", url])
        .args(args.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(LIMIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(&pid).status();
            panic!("switchboard bench {url} {args} did not exit within {LIMIT:?}");
        }
    }
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
    let echo = Echo::start();
    let output = bench(
        &echo.url,
        &format!(
            "-c 4 -s 100 --warmup 0.2 --duration 0.5 --server-pid {} --json",
            echo.pid()
        ),
    );
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
    let echo = Echo::start();
    let output = bench(
        &echo.url,
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
    let echo = Echo::start();
    let output = bench(
        &echo.url,
        &format!("-c 2 --warmup 0 --duration 0.3 --server-pid {}", echo.pid()),
    );
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
    let echo = Echo::start();
    let output = bench(
        &echo.url,
        &format!("--idle 20 --settle 0.1 --server-pid {} --json", echo.pid()),
    );
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
