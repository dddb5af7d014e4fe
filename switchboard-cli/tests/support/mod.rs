//! What the end-to-end tests of the `switchboard` binary share: `switchboard echo` on a port
//! the kernel picks ([`EchoServer`]), and running the binary to its exit within a bound
//! ([`run`]). Each test file is its own crate and says `mod support;`.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// How long the server may take to say it is listening, and a client to get an answer.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// A `switchboard ARGS` command, for [`run`] (add more arguments or environment first).
pub(crate) fn switchboard(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    command
}

/// Runs `command` to its exit with `input` on stdin (then closed) and stdout and stderr
/// captured. Past `limit` the process is killed and the test fails.
#[allow(dead_code)] // The terminal tests run the binary on a pseudo-terminal instead.
pub(crate) fn run(mut command: Command, input: &str, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Dropped at the end of the statement: the process sees the end of its input.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let pid = child.id().to_string();
    // `wait_with_output` has no timeout: wait on a thread of its own, and kill by PID
    // (the `Child` has moved there) if it does not come back in time.
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(&pid).status();
            panic!("{command:?} did not exit within {limit:?}");
        }
    }
}

/// `switchboard echo --listen 127.0.0.1:0 EXTRA`, started and listening; killed on drop if
/// still running.
#[allow(dead_code)] // Not every test binary starts an echo server.
pub(crate) struct EchoServer {
    child: Child,
    /// The address the server listens on, as its log line announced it.
    pub(crate) addr: SocketAddr,
    /// The log line that announced the address.
    #[allow(dead_code)] // Only the `--threads` tests check the line itself.
    pub(crate) listening: String,
}

#[allow(dead_code)]
impl EchoServer {
    /// Starts the server and waits (within [`LIMIT`]) for its "listening on" log line, the
    /// one `bench/run.sh` waits for too.
    pub(crate) fn start(extra: &[&str]) -> EchoServer {
        let mut args = vec!["echo", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let (child, addr, listening) = start_logged(&args, "ws://");
        EchoServer {
            child,
            addr,
            listening,
        }
    }

    /// `ws://ADDR/`, the URL clients connect to.
    pub(crate) fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

// Not every test binary needs the server's PID or stops it by hand, and each one compiles
// this module on its own.
#[allow(dead_code)]
impl EchoServer {
    /// The server's process ID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, the signal a deployment stops the server with.
    pub(crate) fn sigterm(&self) {
        let kill = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
    }

    /// Waits for the process to exit; fails the test if it still runs at `deadline`.
    pub(crate) async fn exit_by(&mut self, deadline: Instant) -> ExitStatus {
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "switchboard echo still running at its deadline"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit, failing after `within`.
    pub(crate) async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        self.sigterm();
        self.exit_by(deadline).await
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        // Only our own child, by its handle: never a process found by name.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `switchboard ARGS` (a serving command on port 0) and waits within [`LIMIT`] for
/// the "listening on SCHEME ADDR" log line; answers the child, the address and the line.
/// The rest of stderr is drained on a thread, so the server never blocks on a full pipe.
pub(crate) fn start_logged(args: &[&str], scheme: &str) -> (Child, SocketAddr, String) {
    start_logged_command(switchboard(args), &format!("switchboard {args:?}"), scheme)
}

/// [`start_logged`] for any command that starts a serving `switchboard` (`what` names it in
/// a failure).
pub(crate) fn start_logged_command(
    mut command: Command,
    what: &str,
    scheme: &str,
) -> (Child, SocketAddr, String) {
    let mut child = command
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (lines, log) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + LIMIT;
    let listening = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match log.recv_timeout(left) {
            Ok(line) if line.contains("listening on") => break line,
            Ok(_) => {}
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} never said it was listening");
            }
        }
    };
    let addr = listening
        .split(scheme)
        .nth(1)
        .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no {scheme} address in {listening:?}"));
    (child, addr, listening)
}

/// `switchboard serve --listen 127.0.0.1:0 EXTRA`, started and listening; killed on drop.
#[allow(dead_code)] // Not every test binary starts a hub.
pub(crate) struct HubProcess {
    child: Child,
    /// The address the hub listens on.
    pub(crate) addr: SocketAddr,
    /// The startup log line.
    pub(crate) listening: String,
}

#[allow(dead_code)]
impl HubProcess {
    /// Starts the hub and waits for its "listening on http://ADDR" line.
    pub(crate) fn start(extra: &[&str]) -> HubProcess {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let (child, addr, listening) = start_logged(&args, "http://");
        HubProcess {
            child,
            addr,
            listening,
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
