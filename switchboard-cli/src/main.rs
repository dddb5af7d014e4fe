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
            eprintln!("error: {error:#}");
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
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
