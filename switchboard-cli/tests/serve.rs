//! `switchboard serve` explains itself: flags, their environment variables and the config
//! file in that order of precedence, `--print-config`, listen addresses as people write
//! them, config errors that name the file once, and a startup log that says what runs.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::LIMIT;

/// `switchboard serve ARGS --print-config` with `env`; answers (exit code, stdout, stderr).
fn print_config(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = support::switchboard(&["serve"]);
    command.args(args).arg("--print-config");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = support::run(command, "", LIMIT);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn flags_override_the_environment_and_the_file_which_overrides_defaults() {
    let file = temp_file(
        "precedence.toml",
        "[history]\nmax_messages = 7\nmax_age_secs = 60\n[limits]\nmax_message_bytes = 1000\n",
    );
    let file = file.to_str().unwrap();
    let (code, out, err) = print_config(&["--config", file], &[]);
    assert_eq!(code, 0, "{err}");
    let config: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(config["history"]["max_messages"].as_integer(), Some(7));
    assert_eq!(config["history"]["max_age_secs"].as_integer(), Some(60));
    // A default the file does not touch.
    assert_eq!(config["limits"]["queue_size"].as_integer(), Some(1024));

    let env = [
        ("SWITCHBOARD_HISTORY", "9"),
        (
            "SWITCHBOARD_ALLOW_ORIGIN",
            "http://a.example,http://b.example",
        ),
        ("SWITCHBOARD_LISTEN", ":9000"),
    ];
    let (code, out, err) = print_config(&["--config", file], &env);
    assert_eq!(code, 0, "{err}");
    let config: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(config["history"]["max_messages"].as_integer(), Some(9));
    assert_eq!(config["listen"].as_str(), Some("127.0.0.1:9000"));
    assert_eq!(
        config["allowed_origins"].as_array().unwrap().len(),
        2,
        "{out}"
    );

    let (code, out, err) = print_config(
        &[
            "--config",
            file,
            "--history",
            "11",
            "--max-message-bytes",
            "2048",
            "--listen",
            "[::1]:9001",
            "--jwt-secret",
            "sixteen bytes or more",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let config: toml::Table = toml::from_str(&out).unwrap();
    assert_eq!(config["history"]["max_messages"].as_integer(), Some(11));
    assert_eq!(
        config["limits"]["max_message_bytes"].as_integer(),
        Some(2048)
    );
    assert_eq!(config["listen"].as_str(), Some("[::1]:9001"));
    assert!(!out.contains("sixteen bytes"), "the secret is shown: {out}");
    assert_eq!(
        config["auth"]["jwt_secret"].as_str(),
        Some("<hidden, 21 bytes>")
    );
}

#[test]
fn defaults_print_as_the_example_file_says() {
    let (code, out, err) = print_config(&[], &[]);
    assert_eq!(code, 0, "{err}");
    let example = include_str!("../../switchboard.example.toml");
    let parse = |text: &str| switchboard_hub::HubConfig::from_toml(text).unwrap();
    assert_eq!(parse(&out), parse(example), "{out}");
}

#[test]
fn config_errors_name_the_file_and_are_printed_once() {
    let file = temp_file("typo.toml", "lisen = \"127.0.0.1:1\"\n");
    let (code, _, err) = print_config(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert_eq!(err.matches("unknown field").count(), 1, "{err}");
    let (code, _, err) = print_config(&["--config", "no-such-hub.toml"], &[]);
    assert_eq!(code, 1);
    assert_eq!(err.matches("no-such-hub.toml").count(), 1, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let (code, _, err) = print_config(&["--jwt-secret", "short"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("jwt_secret"), "{err}");
    let (code, _, err) = print_config(&["--listen", "nine-thousand"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("HOST:PORT"), "{err}");
}

#[test]
fn the_startup_log_says_what_is_running() {
    let mut child = support::switchboard(&[
        "serve",
        "--listen",
        "localhost:0",
        "--allow-origin",
        "https://app.example",
        "--history",
        "50",
    ])
    .env("RUST_LOG", "info")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + LIMIT;
    let mut log = String::new();
    while !log.contains("history:") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
    assert!(log.contains("broker: in-memory"), "{log}");
    assert!(log.contains("auth: off"), "{log}");
    assert!(log.contains("https://app.example"), "{log}");
    assert!(log.contains("history: 50 messages per channel"), "{log}");
}

#[test]
fn an_unreachable_redis_stops_serve_with_its_cause_said_once() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut command = support::switchboard(&["serve", "--listen", "127.0.0.1:0", "--redis", &url]);
    command.env_remove("RUST_LOG");
    let out = support::run(command, "", LIMIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // As the README's failure table says.
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.starts_with(&format!(
            "error: cannot start the Redis broker: broker unavailable: {url}: "
        )),
        "{line}"
    );
    assert_eq!(line.matches("refused").count(), 1, "{line}");
}
