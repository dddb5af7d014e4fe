//! `switchboard`: the command-line tool.
//!
//! Each subcommand lives in its own module under `cmd/` with an `Args` struct (clap) and a
//! `run` function; adding one is a module plus one line in [`Command`].

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

mod cmd;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Switchboard: a WebSocket toolkit.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the real-time hub: channels over WebSocket, SSE, long polling and REST, with a
    /// chat page at `/`.
    Serve(cmd::serve::Args),
    /// Run a WebSocket echo server (every text and binary message is sent back).
    Echo(cmd::echo::Args),
    /// Connect to a WebSocket server interactively, like wscat.
    Connect(cmd::connect::Args),
    /// Load-test a WebSocket (or plain TCP) echo server from one core: msgs/s, MB/s,
    /// latency percentiles and CPU per message.
    Bench(cmd::bench::Args),
}

impl Command {
    /// The runtime this command runs on. `bench` gets a current-thread one: the load
    /// generator is one core by design, and its futures are not `Send`.
    fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            Command::Bench(_) => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
            // `echo` never asks: `main` runs it first, on a runtime per serving thread.
            Command::Serve(_) | Command::Echo(_) | Command::Connect(_) => {
                tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    // `echo` builds its own runtimes: a current-thread one per serving thread.
    if let Command::Echo(args) = cli.command {
        return cmd::echo::run(args).unwrap_or_else(|error| {
            eprintln!("error: {}", chain(&error));
            ExitCode::FAILURE
        });
    }

    let runtime = match cli.command.runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Echo(_) => unreachable!("echo runs on its own runtimes, above"),
            Command::Connect(args) => cmd::connect::run(args).await,
            Command::Bench(args) => cmd::bench::run(args).await,
        }
    });
    // Reading stdin blocks a thread that no task can interrupt; don't wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", chain(&error));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes as one line, `A: B: C`, leaving out a cause whose text is
/// already there: many errors (io, Redis, TLS) write their source into their own message
/// too, and `{:#}` would print it twice.
fn chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        // An error that prints its source itself, as redis-rs and many others do.
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "redis://127.0.0.1:6379: {}", self.0)
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let error = anyhow::Error::new(Wrapper(io())).context("cannot start the Redis broker");
        assert_eq!(
            chain(&error),
            format!(
                "cannot start the Redis broker: redis://127.0.0.1:6379: {}",
                io()
            )
        );
        // Causes that are not in the message still are.
        let error = anyhow::Error::new(io()).context("cannot connect to ws://x");
        assert_eq!(chain(&error), format!("cannot connect to ws://x: {}", io()));
    }
}
