//! The accept loop every server here runs ([`serve_connections`]: the
//! [`Router`](crate::router::Router), so [`Server`](super::Server), and servers built on the
//! library, such as the hub), and the `accept` under it that rides out errors without
//! spinning or flooding the log ([`accept_connection`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Pause after an `accept` error that is about the process rather than one client (out of
/// file descriptors, out of memory), so the loop does not spin while it lasts.
const BACKOFF: Duration = Duration::from_millis(50);

/// At most one warning per this interval; the others are counted into the next one.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The state [`accept_connection`] keeps between calls: when it last warned and how many
/// errors it has not reported since.
///
/// ```no_run
/// use switchboard::{accept_connection, AcceptErrors};
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// let mut errors = AcceptErrors::new(); // one per accept loop
/// loop {
///     let (tcp, _peer) = accept_connection(&listener, &mut errors).await;
///     tokio::spawn(async move {
///         let _ws = switchboard::accept(tcp).await;
///     });
/// }
/// # }
/// ```
#[derive(Debug, Default)]
pub struct AcceptErrors {
    last_warning: Option<Instant>,
    unreported: u64,
}

impl AcceptErrors {
    /// No errors seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn record(&mut self, error: &io::Error) {
        let now = Instant::now();
        if self
            .last_warning
            .is_some_and(|at| now.duration_since(at) < WARN_EVERY)
        {
            self.unreported += 1;
            return;
        }
        tracing::warn!(%error, also = self.unreported, "accept failed; backing off (lower the connection limit or raise the open-file limit)");
        self.last_warning = Some(now);
        self.unreported = 0;
    }
}

/// The next connection from `listener`. Errors that concern only the connection being
/// accepted (reset or aborted before we took it) are skipped; errors about the process
/// (`EMFILE`, `ENFILE`, `ENOMEM`, `ENOBUFS`) pause the loop for 50 ms, since retrying at
/// once would fail again and spin a core, and are logged at most once per 10 s.
///
/// Cancel-safe, like [`TcpListener::accept`].
///
/// ```no_run
/// use switchboard::{accept_connection, AcceptErrors};
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// let mut errors = AcceptErrors::new();
/// loop {
///     // Never fails: EMFILE and friends are waited out, not returned.
///     let (tcp, peer) = accept_connection(&listener, &mut errors).await;
///     tokio::spawn(async move {
///         if let Ok(mut ws) = switchboard::accept(tcp).await {
///             let _ = ws.send(format!("hello, {peer}")).await;
///         }
///     });
/// }
/// # }
/// ```
pub async fn accept_connection(
    listener: &TcpListener,
    errors: &mut AcceptErrors,
) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(error) if is_per_connection(&error) => {
                tracing::debug!(%error, "accept failed for one connection");
            }
            Err(error) => {
                errors.record(&error);
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
}

/// The accept loop: runs `connection` on every connection `listener` accepts (with
/// `TCP_NODELAY` set: small frames leave at once, coalescing is `feed`/`flush`'s), each
/// future in its own task, until `signal` completes. Then it stops accepting, drops
/// `connection`, calls `stop` to tell the open connections to finish (fire a
/// [`GoingAway`](crate::GoingAway), say), and waits up to `grace` for both their tasks and
/// the future `stop` returns (for work the tasks handed on, such as upgraded connections
/// on tasks of their own); what is still open then is dropped.
///
/// Accept errors are ridden out as [`accept_connection`] does. Connection limits, TLS and
/// the protocol are the caller's, in `connection`: the [`Router`](crate::router::Router)
/// runs its handshake there, the hub its HTTP server.
///
/// ```no_run
/// use switchboard::GoingAway;
/// use std::time::Duration;
///
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
/// let going_away = GoingAway::new();
/// let per_connection = going_away.clone();
/// switchboard::serve_connections(
///     listener,
///     async { let _ = tokio::signal::ctrl_c().await; },
///     move |tcp, _peer| {
///         let signal = per_connection.clone();
///         async move {
///             if let Ok(mut ws) = switchboard::accept(tcp).await {
///                 ws.close_on(&signal);
///                 while let Some(Ok(message)) = ws.recv().await {
///                     if ws.send(message).await.is_err() {
///                         break;
///                     }
///                 }
///             }
///         }
///     },
///     move || {
///         going_away.fire();
///         std::future::ready(())
///     },
///     Duration::from_secs(10),
/// )
/// .await;
/// # Ok(()) }
/// ```
pub async fn serve_connections<C, F, S, D>(
    listener: TcpListener,
    signal: impl Future<Output = ()>,
    mut connection: C,
    stop: S,
    grace: Duration,
) where
    C: FnMut(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
    S: FnOnce() -> D,
    D: Future<Output = ()>,
{
    let mut signal = std::pin::pin!(signal);
    let mut connections = JoinSet::new();
    let mut errors = AcceptErrors::new();
    loop {
        tokio::select! {
            () = &mut signal => break,
            // Reap finished connections so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            (tcp, peer) = accept_connection(&listener, &mut errors) => {
                let _ = tcp.set_nodelay(true);
                connections.spawn(connection(tcp, peer));
            }
        }
    }
    drop(listener);
    drop(connection);
    tracing::info!(
        open = connections.len(),
        timeout = ?grace,
        "shutting down: asking connections to finish"
    );
    let handed_on = stop();
    let all_closed = async {
        while connections.join_next().await.is_some() {}
        handed_on.await;
    };
    if tokio::time::timeout(grace, all_closed).await.is_err() {
        tracing::warn!(
            left = connections.len(),
            "connections still open at the shutdown deadline; dropping them"
        );
        connections.shutdown().await;
    }
}

/// Errors from `accept` that concern only the connection being accepted.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn warnings_are_rate_limited_and_count_what_they_skipped() {
        let mut errors = AcceptErrors::new();
        let emfile = io::Error::from_raw_os_error(24);
        errors.record(&emfile);
        for _ in 0..100 {
            errors.record(&emfile);
        }
        assert_eq!(errors.unreported, 100);
        tokio::time::advance(WARN_EVERY).await;
        errors.record(&emfile);
        assert_eq!(errors.unreported, 0);
    }
}
