//! One module per subcommand: `Args` for clap and an async `run` returning the exit code.

pub(crate) mod bench;
pub(crate) mod connect;
pub(crate) mod echo;
pub(crate) mod serve;

/// Ctrl-C, or SIGTERM on Unix (what `kill`, `docker stop` and systemd send): the graceful
/// shutdown signal of the serving commands.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
