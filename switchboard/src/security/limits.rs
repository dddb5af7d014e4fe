//! [`ConnectionLimiter`]: at most N connections in total and M per client address.

use http::{HeaderValue, StatusCode};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use switchboard_protocol::handshake::Rejection;

/// Counts open connections, in total and per client address, and refuses new ones over
/// the limits. Cheap to clone; every clone shares the counts.
///
/// A connection holds a [`ConnectionPermit`] for as long as it lives; dropping the permit
/// frees its place.
///
/// IPv6 clients are counted per /64 prefix, since one subscriber usually gets a whole /64
/// and could otherwise open a connection from every address in it. IPv4-mapped IPv6
/// addresses count as the IPv4 address.
///
/// ```
/// use switchboard::security::ConnectionLimiter;
/// let limiter = ConnectionLimiter::new(10_000, 2);
/// let ip = "192.0.2.7".parse().unwrap();
/// let first = limiter.try_acquire(ip).unwrap();
/// let second = limiter.try_acquire(ip).unwrap();
/// assert!(limiter.try_acquire(ip).is_err()); // a third from the same address
/// drop(first);
/// assert!(limiter.try_acquire(ip).is_ok());
/// # drop(second);
/// ```
#[derive(Clone)]
pub struct ConnectionLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl fmt::Debug for ConnectionLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionLimiter")
            .field("max_total", &self.inner.max_total)
            .field("max_per_ip", &self.inner.max_per_ip)
            .field("active", &self.active())
            .finish()
    }
}

impl ConnectionLimiter {
    /// At most `max_total` connections at once, and `max_per_ip` from one client address.
    /// `usize::MAX` means no limit.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimiter {
            inner: Arc::new(Inner {
                max_total,
                max_per_ip,
                counts: Mutex::new(Counts::default()),
            }),
        }
    }

    /// At most `max_per_ip` from one address, and in total as many as the process's
    /// open-file limit leaves room for ([`fd_headroom_limit`]): a server that runs out of
    /// file descriptors can serve nobody, not even its health check, and its accept loop
    /// fails on every connection.
    pub fn within_fd_limit(max_per_ip: usize) -> Self {
        ConnectionLimiter::new(fd_headroom_limit(), max_per_ip)
    }

    /// The total limit.
    pub fn max_total(&self) -> usize {
        self.inner.max_total
    }

    /// Takes a place for a connection from `ip`, or says which limit is reached.
    pub fn try_acquire(&self, ip: IpAddr) -> Result<ConnectionPermit, LimitExceeded> {
        self.acquire(Some(ip))
    }

    /// Takes a place under the total limit only: for a connection from a trusted proxy,
    /// which carries many clients (count those per request, by their forwarded address).
    pub fn try_acquire_unkeyed(&self) -> Result<ConnectionPermit, LimitExceeded> {
        self.acquire(None)
    }

    fn acquire(&self, ip: Option<IpAddr>) -> Result<ConnectionPermit, LimitExceeded> {
        let mut counts = self.lock();
        if counts.total >= self.inner.max_total {
            return Err(LimitExceeded::Total {
                limit: self.inner.max_total,
            });
        }
        let key = ip.map(client_key);
        if let (Some(ip), Some(key)) = (ip, key) {
            let for_ip = counts.per_ip.entry(key).or_insert(0);
            if *for_ip >= self.inner.max_per_ip {
                return Err(LimitExceeded::PerClient {
                    ip,
                    limit: self.inner.max_per_ip,
                });
            }
            *for_ip += 1;
        }
        counts.total += 1;
        Ok(ConnectionPermit {
            limiter: self.clone(),
            key,
        })
    }

    /// Connections open now.
    pub fn active(&self) -> usize {
        self.lock().total
    }

    /// Connections open now from `ip` (from its /64, for IPv6).
    pub fn active_for(&self, ip: IpAddr) -> usize {
        self.lock()
            .per_ip
            .get(&client_key(ip))
            .copied()
            .unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts are updated in one step each; a panic elsewhere cannot tear them.
        self.inner
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn release(&self, key: Option<IpAddr>) {
        let mut counts = self.lock();
        counts.total -= 1;
        let Some(key) = key else {
            return;
        };
        if let Some(count) = counts.per_ip.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                // Forget idle addresses, so the map holds only clients that are connected.
                counts.per_ip.remove(&key);
            }
        }
    }
}

/// A connection's place under a [`ConnectionLimiter`]; dropping it frees the place.
///
/// ```
/// use switchboard::security::ConnectionLimiter;
///
/// let limiter = ConnectionLimiter::new(10_000, 8);
/// let permit = limiter.try_acquire("192.0.2.7".parse().unwrap())?;
/// assert_eq!(limiter.active(), 1);
/// drop(permit); // the connection ended: its place is free again
/// assert_eq!(limiter.active(), 0);
/// # Ok::<(), switchboard::security::LimitExceeded>(())
/// ```
#[must_use = "the place is freed as soon as the permit is dropped"]
pub struct ConnectionPermit {
    limiter: ConnectionLimiter,
    key: Option<IpAddr>,
}

impl fmt::Debug for ConnectionPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPermit")
            .field("client", &self.key)
            .finish()
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.limiter.release(self.key);
    }
}

/// Which connection limit a new connection ran into.
///
/// ```
/// use http::StatusCode;
/// use switchboard::security::{ConnectionLimiter, LimitExceeded};
///
/// let limiter = ConnectionLimiter::new(10_000, 1);
/// let ip = "192.0.2.7".parse().unwrap();
/// let _held = limiter.try_acquire(ip)?;
/// let refused = limiter.try_acquire(ip).unwrap_err();
/// assert_eq!(refused, LimitExceeded::PerClient { ip, limit: 1 });
/// assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
/// # Ok::<(), LimitExceeded>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    /// The server holds as many connections as it may: `503 Service Unavailable`.
    #[error("the server is at its limit of {limit} connections")]
    Total {
        /// The limit.
        limit: usize,
    },
    /// This client holds as many connections as it may: `429 Too Many Requests`.
    #[error("{ip} already holds {limit} connections")]
    PerClient {
        /// The client's address.
        ip: IpAddr,
        /// The limit.
        limit: usize,
    },
}

impl LimitExceeded {
    /// The HTTP status that answers a handshake over this limit: 503 for the server's
    /// limit (everyone should come back later), 429 for the client's own.
    pub fn status(&self) -> StatusCode {
        match self {
            LimitExceeded::Total { .. } => StatusCode::SERVICE_UNAVAILABLE,
            LimitExceeded::PerClient { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The whole refusal (status, one-line body, `Retry-After`, `Connection: close`), for
    /// a server that answers on the raw connection before reading the request.
    pub fn rejection(&self) -> Rejection {
        // The body names no address: it goes to the client, the log gets `Display`.
        let reason = match self {
            LimitExceeded::Total { .. } => "server at its connection limit",
            LimitExceeded::PerClient { .. } => "too many connections from this address",
        };
        let mut rejection = Rejection::with_status(self.status(), reason);
        rejection
            .response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
        rejection
    }
}

/// The process's soft limit on open files (`RLIMIT_NOFILE`), where it can be read
/// (`/proc/self/limits` on Linux); `None` elsewhere.
///
/// ```
/// use switchboard::security::open_file_limit;
///
/// match open_file_limit() {
///     Some(files) => println!("this process may open {files} files"),
///     None => println!("the open-file limit cannot be read here"),
/// }
/// ```
pub fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(usize::MAX),
        n => n.parse().ok(),
    }
}

/// How many connections a server can hold and still have file descriptors left for its
/// listener, logs, files and the short-lived connections it refuses over a limit: the
/// open-file limit minus 1/16 of it and 64 more (1,024 → 896), or 896 where the limit
/// cannot be read.
///
/// ```
/// use switchboard::security::{fd_headroom_limit, open_file_limit, ConnectionLimiter};
///
/// let connections = fd_headroom_limit();
/// if let Some(files) = open_file_limit() {
///     assert!(connections < files);
/// }
/// let limiter = ConnectionLimiter::new(connections, 64); // what `within_fd_limit(64)` makes
/// # let _ = limiter;
/// ```
pub fn fd_headroom_limit() -> usize {
    let limit = open_file_limit().unwrap_or(1024);
    limit.saturating_sub(limit / 16 + 64).max(1)
}

/// The address a client is counted under: IPv4 addresses as they are (IPv4-mapped IPv6
/// too), IPv6 addresses by their /64, since one subscriber usually gets a whole /64.
///
/// ```
/// use std::net::IpAddr;
/// use switchboard::security::client_key;
///
/// let ip = |s: &str| s.parse::<IpAddr>().unwrap();
/// assert_eq!(client_key(ip("192.0.2.7")), ip("192.0.2.7"));
/// assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
/// assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
/// ```
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_total_limit_counts_everyone() {
        let limiter = ConnectionLimiter::new(2, 10);
        let a = limiter.try_acquire(ip("10.0.0.1")).unwrap();
        let _b = limiter.try_acquire(ip("10.0.0.2")).unwrap();
        let over = limiter.try_acquire(ip("10.0.0.3")).unwrap_err();
        assert_eq!(over, LimitExceeded::Total { limit: 2 });
        assert_eq!(over.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(a);
        assert_eq!(limiter.active(), 1);
        assert!(limiter.try_acquire(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn the_per_client_limit_counts_one_address_and_forgets_it_when_idle() {
        let limiter = ConnectionLimiter::new(100, 1);
        let permit = limiter.try_acquire(ip("10.0.0.1")).unwrap();
        let over = limiter.try_acquire(ip("10.0.0.1")).unwrap_err();
        assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(limiter.try_acquire(ip("10.0.0.2")).is_ok());
        assert_eq!(limiter.active_for(ip("10.0.0.1")), 1);
        drop(permit);
        assert_eq!(limiter.active_for(ip("10.0.0.1")), 0);
        assert!(limiter.lock().per_ip.is_empty());
    }

    #[test]
    fn unkeyed_permits_count_toward_the_total_only() {
        let limiter = ConnectionLimiter::new(2, 1);
        let _a = limiter.try_acquire(ip("10.0.0.1")).unwrap();
        let b = limiter.try_acquire_unkeyed().unwrap();
        assert!(limiter.try_acquire_unkeyed().is_err());
        drop(b);
        assert_eq!(limiter.active(), 1);
        assert_eq!(limiter.active_for(ip("10.0.0.1")), 1);
    }

    #[test]
    fn the_default_total_leaves_headroom_below_the_fd_limit() {
        let total = fd_headroom_limit();
        if let Some(fds) = open_file_limit() {
            assert!(
                total < fds && total >= fds - fds / 16 - 64,
                "{total} of {fds}"
            );
        }
        assert_eq!(ConnectionLimiter::within_fd_limit(5).max_total(), total);
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let limiter = ConnectionLimiter::new(100, 1);
        let _a = limiter.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        assert!(limiter.try_acquire(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(limiter.try_acquire(ip("2001:db8:1:3::1")).is_ok());
        let _v4 = limiter.try_acquire(ip("192.0.2.1")).unwrap();
        assert!(limiter.try_acquire(ip("::ffff:192.0.2.1")).is_err());
    }

    #[test]
    fn the_refusal_says_when_to_come_back_and_names_no_address() {
        let over = LimitExceeded::PerClient {
            ip: ip("10.0.0.1"),
            limit: 1,
        };
        let bytes = String::from_utf8(over.rejection().to_bytes()).unwrap();
        assert!(
            bytes.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{bytes}"
        );
        assert!(
            bytes.to_ascii_lowercase().contains("retry-after: 5\r\n"),
            "{bytes}"
        );
        assert!(!bytes.contains("10.0.0.1"), "{bytes}");
    }
}
