//! [`Router::serve_threads`]: one router served by several threads, each with its own
//! current-thread runtime and its own listening socket (thread per core, the way
//! uWebSockets and fastwebsockets scale): the kernel spreads connections over the sockets
//! and a connection lives its whole life on the thread that accepted it, so the hot path
//! has no work stealing and no wakeups across threads.

use super::Router;
use crate::error::Error;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::Poll;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::watch;

impl Router {
    /// Serves on one thread per listener until `signal` completes, then shuts every thread
    /// down gracefully; blocks the calling thread until then.
    ///
    /// Each listener gets a thread with a current-thread tokio runtime of its own; the
    /// calling thread serves the first listener (so one listener means no extra thread and
    /// no multi-thread scheduler). Bind the listeners to one address with
    /// [`bind_per_thread`](super::bind_per_thread) so the kernel spreads the connections.
    /// A connection's handler, and whatever it `tokio::spawn`s, runs on the thread that
    /// accepted it.
    ///
    /// The threads share this router: one set of [connection
    /// limits](Router::connection_limits) counts every thread's connections. `signal` runs
    /// on the calling thread (it need not be `Send`); when it completes every thread stops
    /// accepting, every connection is closed with 1001 Going Away, and each thread waits up
    /// to the [shutdown timeout](Router::shutdown_timeout) for its connections, as in
    /// [`Router::serve_with_shutdown`].
    ///
    /// Fails at once, before serving, if `listeners` is empty, if a runtime or a thread
    /// cannot be made, or if called from inside a tokio runtime (this function runs its
    /// own); and after the shutdown if a serving thread panicked.
    ///
    /// ```no_run
    /// use switchboard::router::{bind_per_thread, Route, Router};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let router = Router::new().fallback(Route::new(|mut ws, _info| async move {
    ///     while let Some(Ok(message)) = ws.recv().await {
    ///         if ws.send(message).await.is_err() {
    ///             break;
    ///         }
    ///     }
    /// }));
    /// // As many threads as cores this process may run on (`taskset` counts).
    /// let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    /// let listeners = bind_per_thread("127.0.0.1:9001".parse()?, threads)?;
    /// router.serve_threads(listeners, async {
    ///     let _ = tokio::signal::ctrl_c().await;
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn serve_threads(
        self,
        listeners: Vec<std::net::TcpListener>,
        signal: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(io::Error::other(
                "Router::serve_threads runs its own runtimes: call it outside a tokio runtime",
            )
            .into());
        }
        // Every runtime and registration first, so a failure (out of file descriptors)
        // returns before any thread serves.
        let mut served = listeners
            .into_iter()
            .map(runtime_for)
            .collect::<io::Result<Vec<_>>>()?
            .into_iter();
        let Some((local, first)) = served.next() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Router::serve_threads needs at least one listener",
            )
            .into());
        };

        let mut signal = std::pin::pin!(signal);
        // One poll before anyone is served, so a handler the signal installs (SIGTERM)
        // is in place before the first client can be answered.
        let fired = local.block_on(std::future::poll_fn(|cx| {
            Poll::Ready(signal.as_mut().poll(cx).is_ready())
        }));
        let (stop, stopped) = watch::channel(fired);
        let router = Arc::new(self);
        let mut workers = Vec::new();
        for (index, (runtime, listener)) in served.enumerate() {
            let router = router.clone();
            let stopped = stopped.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("switchboard-{}", index + 1))
                .spawn(move || {
                    runtime.block_on(router.accept_loop(listener, until_stopped(stopped)))
                });
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(error) => {
                    // Out of threads: stop the ones already serving, and say so.
                    stop.send_replace(true);
                    for worker in workers {
                        let _ = worker.join();
                    }
                    return Err(error.into());
                }
            }
        }

        let mut result = local.block_on(async {
            let relay = async {
                if !fired {
                    signal.await;
                }
                stop.send_replace(true);
            };
            tokio::join!(relay, router.accept_loop(first, until_stopped(stopped))).1
        });
        for worker in workers {
            let served = worker
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a serving thread panicked").into()));
            result = result.and(served);
        }
        result
    }
}

/// A current-thread runtime and `listener` registered with it, ready to move to its thread.
fn runtime_for(listener: std::net::TcpListener) -> io::Result<(Runtime, TcpListener)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Tokio needs a non-blocking socket; a caller's own listener may not be one.
    listener.set_nonblocking(true)?;
    let listener = {
        let _context = runtime.enter();
        TcpListener::from_std(listener)?
    };
    Ok((runtime, listener))
}

/// Completes once the stop flag is set (or its sender is gone).
async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
