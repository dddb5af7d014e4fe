//! [`accept_connection`]: `accept` that rides out errors without spinning or flooding the log,
//! shared by every accept loop ([`Server`](super::Server), the [`Router`](crate::router::Router)
//! and servers built on the library, such as the hub).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Pause after an `accept` error that is about the process rather than one client (out of
/// file descriptors, out of memory), so the loop does not spin while it lasts.
const BACKOFF: Duration = Duration::from_millis(50);

/// At most one warning per this interval; the others are counted into the next one.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The state [`accept_connection`] keeps between calls: when it last warned and how many
/// errors it has not reported since.
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
