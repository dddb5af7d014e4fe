//! `switchboard`: the command-line tool.
//!
//! Each subcommand lives in its own module under `cmd/` with an `Args` struct (clap) and a
//! `run` function; adding one is a module plus one line in [`Command`].

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

mod cmd;

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

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Echo(args) => cmd::echo::run(args).await,
            Command::Connect(args) => cmd::connect::run(args).await,
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
