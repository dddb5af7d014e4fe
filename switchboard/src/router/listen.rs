//! Listening sockets for a server that runs one accept loop per thread: several sockets
//! bound to one address with `SO_REUSEPORT`, so the kernel spreads incoming connections
//! over them and no thread hands work to another.

use std::io;
use std::net::{SocketAddr, TcpListener};

/// Pending connections the kernel queues per socket before it refuses more (tokio's and
/// mio's choice; the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 1024;

/// A non-blocking listening socket on `addr` with `SO_REUSEPORT` set, so other sockets of
/// this user may bind the same address and the kernel spreads new connections among them
/// (by a hash of each connection's addresses and ports).
///
/// Turn it into a tokio listener inside a runtime with
/// [`tokio::net::TcpListener::from_std`], or hand a set of them to
/// [`Router::serve_threads`](super::Router::serve_threads).
///
/// Supported where the kernel balances connections over such sockets: Linux, Android
/// (`SO_REUSEPORT`), FreeBSD (`SO_REUSEPORT_LB`). Elsewhere (macOS and the other BSDs bind
/// but hand every connection to one socket; Windows has no such option) it fails with
/// [`io::ErrorKind::Unsupported`].
///
/// Mind that any process of the same user can bind the same address too and take a share
/// of the connections, and that binding succeeds while an older server of yours still
/// listens there: with a single socket, bind without this option and get `AddrInUse`.
///
/// ```no_run
/// use switchboard::router::reuseport_listener;
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let addr = "127.0.0.1:9001".parse()?;
/// let first = reuseport_listener(addr)?;
/// let second = reuseport_listener(addr)?; // the same port: the kernel spreads connections
/// let listener = tokio::net::TcpListener::from_std(first)?;
/// # let _ = (second, listener);
/// # Ok(()) }
/// ```
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    listening_socket(addr, BACKLOG, true)
}

/// A non-blocking socket listening on `addr` with a queue of `backlog`, sharing its port
/// ([`reuseport_listener`]) or not.
fn listening_socket(addr: SocketAddr, backlog: i32, shared: bool) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // What `std` does on Unix: rebinding while old connections sit in TIME_WAIT is fine.
    socket.set_reuse_address(true)?;
    if shared {
        share_port(&socket)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// A non-blocking listening socket on `addr` whose kernel queue of connections not yet
/// accepted holds `backlog` (the kernel caps it at `net.core.somaxconn`): a reconnect storm
/// of thousands of clients overflows a small queue, and the kernel then drops their SYNs
/// and they retry only after a second or more.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use switchboard::router::{listener_with_backlog, Route, Router};
///
/// let listener = listener_with_backlog("0.0.0.0:9001".parse()?, 8192)?;
/// let listener = tokio::net::TcpListener::from_std(listener)?;
/// Router::new().fallback(Route::new(|_ws, _info| async {})).serve(listener).await?;
/// # Ok(()) }
/// ```
pub fn listener_with_backlog(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    listening_socket(addr, i32::try_from(backlog).unwrap_or(i32::MAX), false)
}

/// `threads` non-blocking listening sockets on `addr`, one per serving thread: a plain one
/// for one thread (so a busy port is an error, as with `TcpListener::bind`), else
/// [`reuseport_listener`]s. With port 0 the first socket picks the port and the others
/// bind the same one.
///
/// ```no_run
/// use switchboard::router::bind_per_thread;
///
/// let listeners = bind_per_thread("127.0.0.1:0".parse()?, 4)?;
/// let port = listeners[0].local_addr()?.port();
/// assert!(listeners.iter().all(|l| l.local_addr().unwrap().port() == port));
/// // Then `router.serve_threads(listeners, signal)`.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn bind_per_thread(addr: SocketAddr, threads: usize) -> io::Result<Vec<TcpListener>> {
    if threads <= 1 {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        return Ok(vec![listener]);
    }
    let first = reuseport_listener(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = Vec::with_capacity(threads);
    listeners.push(first);
    for _ in 1..threads {
        listeners.push(reuseport_listener(bound)?);
    }
    Ok(listeners)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn share_port(socket: &socket2::Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

/// FreeBSD's `SO_REUSEPORT` lets sockets share an address but does not balance; its
/// `SO_REUSEPORT_LB` does.
#[cfg(target_os = "freebsd")]
fn share_port(socket: &socket2::Socket) -> io::Result<()> {
    socket.set_reuse_port_lb(true)
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn share_port(_socket: &socket2::Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "this platform does not balance connections over sockets sharing a port; serve on one thread",
    ))
}
