//! The README's shell examples, run as written against a running hub, so the README cannot
//! drift from what the binary does.
//!
//! Every `curl` line of a `sh` block in README.md is run verbatim by `sh -c`, except that
//! the README's `127.0.0.1:8080` becomes the test hub's own port (tests never take fixed
//! ports: several run at once). Each one is matched to a check of its answer by what it asks
//! for; a `curl` line no check knows fails the test, so a new example needs a check. Every
//! `switchboard …` line is checked against `--help`: the subcommand exists and takes every
//! `--flag` the line shows. The runnable `switchboard` lines (no `[optional]` parts) are run
//! too, with the binary under test first on `PATH` and free ports for the README's fixed
//! ones, and their answers checked against what their comments say; a line that no check
//! runs must be listed in [`NOT_RUN`] with the reason. The Redis section's block runs
//! against a real `redis-server`, the server example must be `examples/echo_server.rs`,
//! and the `--only` phases must be the test command's.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::{EchoServer, HubProcess, LIMIT};

const README: &str = include_str!("../../README.md");

/// The lines of every ```sh block, with `\` continuations joined.
fn shell_lines() -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in README.lines() {
        let trimmed = line.trim();
        if !in_sh {
            in_sh = trimmed == "```sh";
            continue;
        }
        if trimmed == "```" {
            in_sh = false;
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        if !full.trim().is_empty() && !full.trim_start().starts_with('#') {
            lines.push(full.trim().to_owned());
        }
    }
    lines
}

/// Runs `command` with `sh -c` to its end within [`LIMIT`]; answers stdout.
fn sh(command: &str) -> String {
    let output = support::run(
        {
            let mut c = Command::new("sh");
            c.args(["-c", command]);
            c
        },
        "",
        LIMIT,
    );
    assert!(
        output.status.success(),
        "`{command}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn json(text: &str, command: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("`{command}` answered {text:?}: {e}"))
}

#[test]
fn the_readme_curl_examples_do_what_the_readme_says() {
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "curl is needed to run the README's examples"
    );
    let hub = HubProcess::start(&[]);
    let port = hub.addr.port().to_string();
    let curls: Vec<String> = shell_lines()
        .into_iter()
        .filter(|l| l.starts_with("curl "))
        .map(|l| l.replace("127.0.0.1:8080", &format!("127.0.0.1:{port}")))
        .collect();
    assert!(
        curls.len() >= 4,
        "the README's curl examples are gone: {curls:?}"
    );
    let mut published = Vec::new();
    let mut stamps = Vec::new();
    for command in &curls {
        if command.contains(" -d ") && command.contains("/api/channels/") {
            // "publish; answers {"id":…,"epoch":…,"ts":…}"
            let answer = json(&sh(command), command);
            assert!(answer["id"].as_u64().is_some(), "{command}: {answer}");
            assert!(answer["epoch"].as_u64().is_some(), "{command}: {answer}");
            assert!(answer["ts"].as_u64().is_some(), "{command}: {answer}");
            published.push(answer["id"].as_u64().unwrap());
            stamps.push(answer["ts"].clone());
        } else if command.contains("/api/channels/") && command.contains("since=0") {
            // "history": what was published above.
            let answer = json(&sh(command), command);
            let ids: Vec<_> = answer["messages"]
                .as_array()
                .unwrap_or_else(|| panic!("{command}: {answer}"))
                .iter()
                .filter_map(|m| m["id"].as_u64())
                .collect();
            assert_eq!(ids, published, "{command}: {answer}");
            let times: Vec<_> = answer["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["ts"].clone())
                .collect();
            assert_eq!(times, stamps, "the publish's ts is the history's: {answer}");
            assert_eq!(
                answer["messages"][0]["data"], "hello",
                "{command}: {answer}"
            );
        } else if command.contains("/sse/") {
            let publish = format!(
                "curl -s -d 'from the sse check' http://127.0.0.1:{port}/api/channels/chat/messages"
            );
            sse_shows_what_is_published(command, &publish, "from the sse check");
        } else if command.contains("/poll/") && command.contains("since=0") {
            // "long polling": with since=0 and messages there, it answers at once.
            let answer = json(&sh(command), command);
            assert_eq!(
                answer["messages"][0]["data"], "hello",
                "{command}: {answer}"
            );
        } else {
            panic!("README command without a check in tests/readme.rs: {command}");
        }
    }
    assert!(!published.is_empty(), "no publish example in {curls:?}");
}

/// `curl -N …/sse/chat` streams until stopped: run it, run `publish`, and see `expect`
/// arrive as an event's data.
fn sse_shows_what_is_published(command: &str, publish: &str, expect: &str) {
    let mut child = Command::new("sh")
        .args(["-c", &format!("exec {command}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, seen) = mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    // The stream is open once curl has seen its first bytes (SSE sends a `retry:` first);
    // else the publish could land before the subscription.
    let first = seen.recv_timeout(LIMIT);
    assert!(first.is_ok(), "`{command}` printed nothing");
    sh(publish);
    let mut got = Vec::new();
    let found = loop {
        match seen.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.starts_with("data:") && line.contains(expect) => break true,
            Ok(line) => got.push(line),
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found,
        "`{command}` did not show {expect:?} after `{publish}`: {got:?}"
    );
}

#[test]
fn every_switchboard_line_in_the_readme_uses_real_subcommands_and_flags() {
    let lines: Vec<String> = shell_lines()
        .into_iter()
        .filter_map(|l| {
            // `cargo run … -- serve`, `switchboard …`, `target/release/switchboard …`.
            let at = l.find("switchboard ")?;
            let head = &l[..at];
            (head.is_empty() || head.ends_with('/') || head.ends_with("-- "))
                .then(|| l[at..].to_owned())
                .or_else(|| {
                    l.contains(" -- serve")
                        .then(|| "switchboard serve".to_owned())
                })
        })
        .collect();
    assert!(lines.len() >= 8, "README lost its examples: {lines:?}");
    for line in &lines {
        // Drop comments and what follows a shell operator.
        let line = line.split(" #").next().unwrap();
        let line = line.split(['&', '|', ';']).next().unwrap();
        let mut words = line.split_whitespace().skip(1);
        let Some(sub) = words.next() else { continue };
        let help = support::run(support::switchboard(&[sub, "--help"]), "", LIMIT);
        assert!(
            help.status.success(),
            "`switchboard {sub}` is not a subcommand ({line})"
        );
        let help = String::from_utf8(help.stdout).unwrap();
        for word in line.split_whitespace() {
            let word = word.trim_start_matches('[');
            let Some(flag) = word.strip_prefix("--") else {
                continue;
            };
            let flag = flag.split(['=', ']']).next().unwrap().trim_end_matches(',');
            assert!(
                help.contains(&format!("--{flag}")),
                "README: `switchboard {sub}` has no --{flag} ({line})"
            );
        }
    }
}

/// The body of the ```rust block that follows the line containing `marker`.
fn rust_block_after(marker: &str) -> String {
    let start = README
        .find(marker)
        .unwrap_or_else(|| panic!("README lost {marker:?}"));
    let rest = &README[start..];
    let open = rest
        .find("```rust")
        .expect("no rust block after the marker");
    let body = &rest[open..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_owned()
}

#[test]
fn the_readme_server_is_the_echo_server_example() {
    // "A server (this is `switchboard/examples/echo_server.rs`):" must stay true: the
    // example is the README's code plus its doc comment.
    let example = include_str!("../../switchboard/examples/echo_server.rs");
    let code: String = example
        .lines()
        .filter(|l| !l.starts_with("//!"))
        .skip_while(|l| l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        rust_block_after("this is `switchboard/examples/echo_server.rs`"),
        code
    );
}

/// The `switchboard` lines of the README's ```sh blocks that no check below runs, with why.
/// Lines with `[optional]` parts are syntax, not commands, and are only checked against
/// `--help`. Any other `switchboard` line must be run by a check or be listed here.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "switchboard serve --redis ",
        "needs a Redis (tests/redis runs serve --redis)",
    ),
    (
        "switchboard echo --threads 4",
        "takes the fixed port 9001 (tests/threads.rs runs --threads)",
    ),
    (
        "switchboard bench ",
        "a load test (tests/bench.rs runs bench briefly)",
    ),
    (
        "switchboard echo --listen 127.0.0.1:9001 --no-compression &",
        "starts the bench lines' server",
    ),
];

/// A scratch directory for one test, empty.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-readme-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `sh -c LINE` in `dir`, with the binary under test first on `PATH` as the README says to
/// put it, and `input` on stdin.
fn readme_shell(line: &str, dir: &std::path::Path) -> Command {
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_switchboard"))
        .parent()
        .unwrap()
        .to_owned();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut command = Command::new("sh");
    command
        .args(["-c", line])
        .current_dir(dir)
        .env("PATH", path);
    command
}

/// Runs `line` to its end with `input`; answers (exit code, stdout, stderr).
fn run_line(line: &str, dir: &std::path::Path, input: &str) -> (i32, String, String) {
    let output = support::run(readme_shell(line, dir), input, LIMIT);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The one README shell line that starts with `prefix`.
fn line_starting(lines: &[String], prefix: &str) -> String {
    let found: Vec<_> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(
        found.len(),
        1,
        "README lines starting with {prefix:?}: {found:?}"
    );
    found[0].clone()
}

/// Starts a serving README line with its fixed `addr` made a free port; answers the child
/// (killed on drop) and the address it listens on.
fn start_line(line: &str, addr: &str, dir: &std::path::Path, scheme: &str) -> Served {
    assert!(line.contains(addr), "{line} has no {addr}");
    let line = line.replace(addr, "127.0.0.1:0");
    let (child, addr, _) =
        support::start_logged_command(readme_shell(&format!("exec {line}"), dir), &line, scheme);
    Served { child, addr }
}

/// A server started from a README line; killed on drop.
struct Served {
    child: std::process::Child,
    addr: std::net::SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_readme_switchboard_lines_do_what_their_comments_say() {
    let lines = shell_lines();
    let dir = scratch("lines");
    let mut ran = Vec::new();

    // The certificate, as the README makes it.
    let openssl = line_starting(&lines, "openssl req -x509");
    let (code, _, err) = run_line(&openssl, &dir, "");
    assert_eq!(code, 0, "{openssl}: {err}");
    assert!(dir.join("cert.pem").exists() && dir.join("key.pem").exists());

    // "show the settings in effect, then exit"
    let print = line_starting(
        &lines,
        "switchboard serve --tls-cert cert.pem --tls-key key.pem --print-config",
    );
    let (code, out, err) = run_line(&print, &dir, "");
    assert_eq!(code, 0, "{print}: {err}");
    assert!(
        out.contains("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\""),
        "{print}: {out}"
    );
    ran.push(print);

    // The hub with its first flags, listening where the test says (flags override the
    // environment, and this line has no --listen).
    let hub = line_starting(&lines, "switchboard serve --allow-origin ");
    std::fs::write(
        dir.join("secret.txt"),
        "a secret of at least thirty-two bytes\n",
    )
    .unwrap();
    let mut command = readme_shell(&format!("exec {hub}"), &dir);
    command.env("SWITCHBOARD_LISTEN", "127.0.0.1:0");
    let (child, addr, _) = support::start_logged_command(command, &hub, "http://");
    let hub_process = Served { child, addr };
    let status = |origin: &str, method: &str| {
        let url = format!("http://{}/api/channels/chat/messages", hub_process.addr);
        let curl = format!(
            "curl -s -o /dev/null -w '%{{http_code}}' -X {method} -H 'Origin: {origin}' -d x {url}"
        );
        sh(&curl)
    };
    // --allow-origin: that origin passes the Origin check (and then needs a token, since
    // --jwt-secret-file turned auth on); another is refused.
    assert_eq!(status("https://app.example", "POST"), "401", "{hub}");
    assert_eq!(status("https://elsewhere.example", "POST"), "403", "{hub}");
    drop(hub_process);
    ran.push(hub);

    // echo over wss:// on the port the connect lines use, and those lines.
    let tls_echo = line_starting(
        &lines,
        "switchboard echo --listen 127.0.0.1:9443 --tls-cert ",
    );
    let echo = start_line(&tls_echo, "127.0.0.1:9443", &dir, "wss://");
    ran.push(tls_echo);
    let port = echo.addr.port().to_string();
    for prefix in [
        "switchboard connect wss://localhost:9443 --ca cert.pem",
        "switchboard connect wss://localhost:9443 --insecure",
    ] {
        let line = line_starting(&lines, prefix);
        let (code, out, err) = run_line(&line.replace("9443", &port), &dir, "over tls\n");
        assert_eq!(code, 0, "{line}: {err}");
        assert_eq!(out, "over tls\n", "{line}: {err}");
        assert!(err.lines().any(|l| l == "closed: 1000"), "{line}: {err}");
        if line.contains("--insecure") {
            assert!(err.contains("warning: --insecure"), "{line}: {err}");
        }
        ran.push(line);
    }

    // "then: /ping hi, /close 4000 bye": type what the comment says.
    let slash = line_starting(&lines, "switchboard connect ws://127.0.0.1:9001 --slash");
    let plain = EchoServer::start(&[]);
    let typed = slash
        .split("# then: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{slash}: no `# then:` comment"));
    let input: String = typed.split(", ").map(|c| format!("{c}\n")).collect();
    let (code, _, err) = run_line(
        &slash.replace("127.0.0.1:9001", &plain.addr.to_string()),
        &dir,
        &input,
    );
    assert_eq!(code, 0, "{slash}: {err}");
    assert!(err.lines().any(|l| l == "pong: hi"), "{slash}: {err}");
    assert!(
        err.lines().any(|l| l == "closed: 4000 bye"),
        "{slash}: {err}"
    );
    ran.push(slash);

    // Every other switchboard line is syntax or listed as not run.
    for line in lines.iter().filter(|l| l.starts_with("switchboard ")) {
        if line.contains('[') || ran.contains(line) {
            continue;
        }
        assert!(
            NOT_RUN.iter().any(|(prefix, _)| line.starts_with(prefix)),
            "README line neither run by tests/readme.rs nor listed in NOT_RUN: {line}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_readme_lists_the_test_commands_phases() {
    let script = include_str!("../../scripts/test.sh");
    let phases = script
        .lines()
        .find_map(|l| l.strip_prefix("ALL_PHASES=("))
        .and_then(|l| l.strip_suffix(')'))
        .expect("scripts/test.sh has no ALL_PHASES=(…)");
    let listed = shell_lines()
        .into_iter()
        .find_map(|l| l.split("# a subset of: ").nth(1).map(str::to_owned))
        .expect("README: no `--only` line listing the phases");
    assert_eq!(listed.trim(), phases);
}

/// The lines of the ```console block that starts with `first`.
fn console_block(first: &str) -> Vec<String> {
    let start = README
        .find(&format!("```console\n{first}"))
        .unwrap_or_else(|| panic!("README: no console block starting with {first:?}"));
    let body = &README[start + "```console\n".len()..];
    body[..body.find("```").unwrap()]
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A free loopback port (nothing listens on it once this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_readme_redis_nodes_share_a_channel() {
    // The Redis section's block, as written, with free ports for its fixed ones: a publish
    // on one node "reaches subscribers of" the other.
    let block = console_block("redis-server ");
    assert_eq!(block.len(), 4, "{block:?}");
    let (redis, node1, node2, publish) = (&block[0], &block[1], &block[2], &block[3]);
    let dir = scratch("redis");
    let redis_port = free_port().to_string();
    let with_redis = |line: &str| {
        let line = line.split(" #").next().unwrap().trim();
        let line = line.strip_suffix('&').unwrap_or(line).trim();
        assert!(line.contains("6379"), "{line}");
        line.replace("6379", &redis_port)
    };

    let redis_line = with_redis(redis);
    let redis = readme_shell(&format!("exec env {redis_line}"), &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{redis_line}: {e} (redis-server is needed)"));
    let redis = Served {
        child: redis,
        addr: format!("127.0.0.1:{redis_port}").parse().unwrap(),
    };
    let deadline = std::time::Instant::now() + LIMIT;
    while std::net::TcpStream::connect(redis.addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{redis_line}: Redis never listened (is redis-server installed?)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let start_node = |line: &str, fixed: &str| {
        let line = with_redis(line);
        assert!(line.contains(fixed), "{line}");
        let line = line.replace(fixed, "127.0.0.1:0");
        let (child, addr, _) = support::start_logged_command(
            readme_shell(&format!("exec env {line}"), &dir),
            &line,
            "http://",
        );
        Served { child, addr }
    };
    let first = start_node(node1, "127.0.0.1:8081");
    let second = start_node(node2, "127.0.0.1:8082");

    let sse = format!("curl -sN http://{}/sse/chat", second.addr);
    assert!(publish.contains("127.0.0.1:8081"), "{publish}");
    let publish = publish.replace("127.0.0.1:8081", &first.addr.to_string());
    let publish = publish.replacen("curl ", "curl -s ", 1);
    sse_shows_what_is_published(&sse, &publish, "hi");
    drop((first, second, redis));
    let _ = std::fs::remove_dir_all(&dir);
}
