//! Liveness timers for one connection: keepalive pings with a pong timeout, the idle
//! timeout, and the server's "going away" signal for graceful shutdown.
//!
//! The driver (`core`) reports inbound traffic with [`Liveness::on_inbound`] and asks
//! [`Liveness::poll`] what to do whenever it is about to wait for input. Any bytes from the
//! peer count as a sign of life, not only the matching pong: a peer that is sending is
//! alive, and checking bytes is cheaper than matching payloads.
//!
//! One `Sleep` serves all the timers: it is re-armed for whichever deadline comes first,
//! and allocated only for connections that use a timer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// `Clock::latency_us` before anything was measured.
const NO_LATENCY: u32 = u32::MAX;

/// Keepalive and idle settings; see [`crate::WebSocketConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timers {
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) pong_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    /// Ping every `ping_interval` whatever arrives (see `WebSocketConfig::steady_pings`).
    pub(crate) steady_pings: bool,
}

/// What the driver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing: keep waiting (the timer is armed and will wake the task).
    Wait,
    /// Send a ping now (the peer has been quiet for the ping interval).
    Ping,
    /// The peer did not answer a ping within the pong timeout: it is gone.
    Dead {
        /// How long we waited for the pong.
        waited: Duration,
    },
    /// Nothing has arrived for the idle timeout.
    Idle {
        /// The idle timeout.
        after: Duration,
    },
    /// The server is shutting down: close with 1001 Going Away.
    GoingAway,
}

/// A server-wide signal that every connection should close with 1001 Going Away.
/// Cheap to clone. The [`Router`](crate::router::Router) has its own; a server of your own
/// (around [`accept`](crate::accept), say) fires one at shutdown:
///
/// ```no_run
/// # async fn run(listener: tokio::net::TcpListener) -> Result<(), switchboard::Error> {
/// use switchboard::GoingAway;
///
/// let going_away = GoingAway::new();
/// let (tcp, _) = listener.accept().await?;
/// let mut ws = switchboard::accept(tcp).await?;
/// ws.close_on(&going_away);
/// let handler = tokio::spawn(async move { while let Some(Ok(_)) = ws.recv().await {} });
/// going_away.fire(); // the socket sends a 1001 close, and `recv` ends
/// let _ = handler.await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct GoingAway {
    // One allocation for both: every connection holds a clone.
    inner: Arc<GoingAwayInner>,
}

#[derive(Debug, Default)]
struct GoingAwayInner {
    notify: Arc<Notify>,
    fired: std::sync::atomic::AtomicBool,
}

impl GoingAway {
    /// A signal that has not fired.
    pub fn new() -> Self {
        GoingAway::default()
    }

    /// Tells every connection watching this signal to close with 1001 Going Away.
    pub fn fire(&self) {
        self.inner
            .fired
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`GoingAway::fire`] has been called.
    pub fn has_fired(&self) -> bool {
        self.inner.fired.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Completes once [`GoingAway::fire`] has been called (at once if it has been).
    #[cfg(feature = "http2")]
    pub(crate) async fn fired(&self) {
        let notified = self.inner.notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so a fire in between is not missed.
        notified.as_mut().enable();
        if !self.has_fired() {
            notified.await;
        }
    }
}

/// The timers of one connection.
pub(crate) struct Liveness {
    /// `None` when neither keepalive nor the idle timeout is on (boxed: most connections
    /// have neither, and every byte of an idle connection counts).
    clock: Option<Box<Clock>>,
    going_away: Option<Watch>,
}

/// A connection's registration for the going-away signal.
struct Watch {
    signal: GoingAway,
    notified: Pin<Box<OwnedNotified>>,
    /// The waker `notified` was last polled with. Re-polling takes the signal's lock, and
    /// the driver asks before every wait, so it is done only when the task's waker changed.
    registered: Option<Waker>,
}

/// The state of the keepalive and idle timers. The settings are held field by field, not
/// as a `Timers`, so that the flags fill the padding after `latency_us` and the clock
/// stays in its allocation size class.
struct Clock {
    ping_interval: Option<Duration>,
    pong_timeout: Duration,
    idle_timeout: Option<Duration>,
    last_inbound: Instant,
    /// When the last keepalive ping was sent (the clock's start before the first): the
    /// peer is alive once anything arrives after it (`last_inbound` passes it), but only
    /// the pong ends the round trip. With steady pings, the next one is due an interval
    /// after it.
    ping_sent: Instant,
    /// The round trip of the last keepalive ping answered, in microseconds (`NO_LATENCY`
    /// before the first): four bytes, so the clock stays in its allocation size class.
    latency_us: u32,
    /// A keepalive ping is out and its pong has not come yet (it measures the latency).
    awaiting_pong: bool,
    steady_pings: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Liveness");
        if let Some(clock) = &self.clock {
            d.field("ping_interval", &clock.ping_interval)
                .field("steady_pings", &clock.steady_pings)
                .field("ping_outstanding", &clock.awaiting_pong);
        }
        d.field("going_away", &self.going_away.is_some())
            .finish_non_exhaustive()
    }
}

impl Liveness {
    pub(crate) fn new(timers: Timers) -> Self {
        let clock = (timers.ping_interval.is_some() || timers.idle_timeout.is_some()).then(|| {
            let now = Instant::now();
            Box::new(Clock {
                ping_interval: timers.ping_interval,
                pong_timeout: timers.pong_timeout,
                idle_timeout: timers.idle_timeout,
                last_inbound: now,
                ping_sent: now,
                latency_us: NO_LATENCY,
                awaiting_pong: false,
                steady_pings: timers.steady_pings,
                sleep: None,
            })
        });
        Liveness {
            clock,
            going_away: None,
        }
    }

    /// Whether any timer or signal is in use (if not, the driver need not ask).
    pub(crate) fn is_active(&self) -> bool {
        self.clock.is_some() || self.going_away.is_some()
    }

    /// Watches `signal` from now on.
    pub(crate) fn watch(&mut self, signal: GoingAway) {
        let notified = Box::pin(signal.inner.notify.clone().notified_owned());
        self.going_away = Some(Watch {
            signal,
            notified,
            registered: None,
        });
    }

    /// The peer sent something.
    pub(crate) fn on_inbound(&mut self) {
        if let Some(clock) = &mut self.clock {
            clock.last_inbound = Instant::now();
        }
    }

    /// The peer sent a pong with `payload`: if it answers our keepalive ping (an empty
    /// payload while one is out), its round trip is the new latency.
    pub(crate) fn on_pong(&mut self, payload: &[u8]) {
        if let Some(clock) = &mut self.clock {
            if payload.is_empty() && std::mem::take(&mut clock.awaiting_pong) {
                let micros = clock.ping_sent.elapsed().as_micros();
                clock.latency_us = u32::try_from(micros)
                    .unwrap_or(u32::MAX)
                    .min(NO_LATENCY - 1);
            }
        }
    }

    /// The round trip of the last answered keepalive ping: `None` before the first answer
    /// and without keepalive.
    pub(crate) fn latency(&self) -> Option<Duration> {
        self.clock
            .as_ref()
            .filter(|clock| clock.latency_us != NO_LATENCY)
            .map(|clock| Duration::from_micros(clock.latency_us.into()))
    }

    /// Decides what to do now. After [`Verdict::Wait`] and [`Verdict::Ping`], `waker` is
    /// woken at the next deadline (or when the going-away signal fires).
    #[inline]
    pub(crate) fn poll(&mut self, waker: &Waker) -> Verdict {
        // The driver asks twice per message; with no timers and the signal already watched
        // by this waker, the answer is two comparisons and a load, made here inline.
        if let (None, Some(watch)) = (&self.clock, &self.going_away) {
            if watch
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(waker))
                && !watch.signal.has_fired()
            {
                return Verdict::Wait;
            }
        }
        self.poll_slow(waker)
    }

    #[inline(never)]
    fn poll_slow(&mut self, waker: &Waker) -> Verdict {
        if let Some(watch) = &mut self.going_away {
            if !watch
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(waker))
            {
                // Register first, then check the flag: a `fire` between the two is not lost.
                let ready = watch
                    .notified
                    .as_mut()
                    .poll(&mut Context::from_waker(waker))
                    .is_ready();
                watch.registered = Some(waker.clone());
                if ready {
                    self.going_away = None;
                    return Verdict::GoingAway;
                }
            }
            if watch.signal.has_fired() {
                self.going_away = None;
                return Verdict::GoingAway;
            }
        }
        match &mut self.clock {
            Some(clock) => clock.poll(waker),
            None => Verdict::Wait,
        }
    }
}

impl Clock {
    fn poll(&mut self, waker: &Waker) -> Verdict {
        let now = Instant::now();
        let mut verdict = Verdict::Wait;
        let mut next: Option<Instant> = None;
        if let Some(idle) = self.idle_timeout {
            let deadline = self.last_inbound + idle;
            if now >= deadline {
                return Verdict::Idle { after: idle };
            }
            next = Some(deadline);
        }
        if let Some(interval) = self.ping_interval {
            let sent = self.ping_sent;
            // Waiting for a sign of life: nothing has arrived since the ping.
            let deadline = if self.last_inbound < sent {
                let answer_due = sent + self.pong_timeout;
                if now >= answer_due {
                    return Verdict::Dead { waited: now - sent };
                }
                // No other ping while one waits for its answer, steady or not.
                answer_due
            } else {
                let ping_due = if self.steady_pings {
                    sent + interval
                } else {
                    self.last_inbound + interval
                };
                if now >= ping_due {
                    // Ping now, and wake up when the answer is due.
                    self.ping_sent = now;
                    self.awaiting_pong = true;
                    verdict = Verdict::Ping;
                    now + self.pong_timeout
                } else {
                    ping_due
                }
            };
            next = Some(next.map_or(deadline, |n| n.min(deadline)));
        }
        if let Some(deadline) = next {
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            if sleep
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_ready()
            {
                // The deadline passed between `now` and here: decide again next time round.
                waker.wake_by_ref();
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Poll, Waker};

    fn timers(ping: Option<u64>, pong: u64, idle: Option<u64>) -> Timers {
        Timers {
            ping_interval: ping.map(Duration::from_secs),
            pong_timeout: Duration::from_secs(pong),
            idle_timeout: idle.map(Duration::from_secs),
            steady_pings: false,
        }
    }

    fn steady(ping: u64, pong: u64) -> Timers {
        Timers {
            steady_pings: true,
            ..timers(Some(ping), pong, None)
        }
    }

    /// Polls `l` (a 10 s ping interval, a 5 s pong timeout, a silent peer) the way a task
    /// does, being woken only by its timer: one ping goes out at 10 s and the peer is dead
    /// 5 s later.
    async fn dies_after_one_ping(mut l: Liveness) {
        let mut pings = 0;
        let verdict = std::future::poll_fn(|cx| match l.poll(cx.waker()) {
            Verdict::Wait => Poll::Pending,
            Verdict::Ping => {
                pings += 1;
                Poll::Pending
            }
            verdict => Poll::Ready(verdict),
        });
        let started = Instant::now();
        assert_eq!(
            verdict.await,
            Verdict::Dead {
                waited: Duration::from_secs(5)
            }
        );
        assert_eq!(started.elapsed(), Duration::from_secs(15));
        assert_eq!(pings, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn steady_pings_go_out_every_interval_while_the_peer_talks() {
        let waker = Waker::noop();
        let mut l = Liveness::new(steady(10, 5));
        // The peer sends every 3 s: without steady pings it would never be pinged.
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(3)).await;
            l.on_inbound();
            assert_eq!(l.poll(waker), Verdict::Wait);
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(l.poll(waker), Verdict::Ping);
        tokio::time::advance(Duration::from_millis(7)).await;
        l.on_inbound();
        l.on_pong(b"");
        assert_eq!(l.latency(), Some(Duration::from_millis(7)));
        // Due an interval after the last ping, not after the last bytes.
        tokio::time::advance(Duration::from_millis(9_992)).await;
        l.on_inbound();
        assert_eq!(l.poll(waker), Verdict::Wait);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(l.poll(waker), Verdict::Ping);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_declared_dead_with_steady_pings_too() {
        dies_after_one_ping(Liveness::new(steady(10, 5))).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_peer_is_pinged_and_declared_dead_without_a_pong() {
        let waker = Waker::noop();
        let mut l = Liveness::new(timers(Some(10), 5, None));
        assert_eq!(l.poll(waker), Verdict::Wait);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(l.poll(waker), Verdict::Ping);
        assert_eq!(l.poll(waker), Verdict::Wait);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            l.poll(waker),
            Verdict::Dead {
                waited: Duration::from_secs(5)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn any_inbound_bytes_count_as_the_pong() {
        let waker = Waker::noop();
        let mut l = Liveness::new(timers(Some(10), 5, None));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(l.poll(waker), Verdict::Ping);
        tokio::time::advance(Duration::from_secs(4)).await;
        l.on_inbound();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(l.poll(waker), Verdict::Wait);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(l.poll(waker), Verdict::Ping);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pong_of_a_keepalive_ping_measures_the_latency() {
        let waker = Waker::noop();
        let mut l = Liveness::new(timers(Some(10), 5, None));
        assert_eq!(l.latency(), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(l.poll(waker), Verdict::Ping);
        tokio::time::advance(Duration::from_millis(30)).await;
        // Other bytes first: alive, but not the answer.
        l.on_inbound();
        l.on_pong(b"not ours");
        assert_eq!(l.latency(), None);
        tokio::time::advance(Duration::from_millis(12)).await;
        l.on_pong(b"");
        assert_eq!(l.latency(), Some(Duration::from_millis(42)));
        // A second, unsolicited pong changes nothing.
        tokio::time::advance(Duration::from_millis(100)).await;
        l.on_pong(b"");
        assert_eq!(l.latency(), Some(Duration::from_millis(42)));
        assert_eq!(Liveness::new(timers(None, 5, None)).latency(), None);
    }

    #[test]
    fn the_clock_stays_in_its_size_class() {
        // Every connection with keepalive allocates one (the hub's WebSockets do): 96 bytes
        // is a size class of mimalloc, which the binary uses; the latency made it no larger there.
        let size = std::mem::size_of::<Clock>();
        assert!(size <= 96, "Clock is {size} bytes, budget 96");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_past_the_idle_timeout_is_reported() {
        let waker = Waker::noop();
        let mut l = Liveness::new(timers(None, 5, Some(30)));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(l.poll(waker), Verdict::Wait);
        l.on_inbound();
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(l.poll(waker), Verdict::Wait);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(
            l.poll(waker),
            Verdict::Idle {
                after: Duration::from_secs(30)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_ping_the_timer_wakes_the_task_when_the_pong_is_due() {
        dies_after_one_ping(Liveness::new(timers(Some(10), 5, None))).await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_wakes_the_task_at_the_next_deadline() {
        let mut l = Liveness::new(timers(Some(10), 5, Some(7)));
        let woken = std::future::poll_fn(|cx| match l.poll(cx.waker()) {
            Verdict::Wait => Poll::Pending,
            verdict => Poll::Ready(verdict),
        });
        let started = Instant::now();
        assert_eq!(
            woken.await,
            Verdict::Idle {
                after: Duration::from_secs(7)
            }
        );
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test]
    async fn going_away_fires_once_for_every_watcher() {
        let signal = GoingAway::new();
        let mut a = Liveness::new(timers(None, 5, None));
        let mut b = Liveness::new(timers(None, 5, None));
        a.watch(signal.clone());
        b.watch(signal.clone());
        assert!(a.is_active());
        assert_eq!(a.poll(Waker::noop()), Verdict::Wait);
        signal.fire();
        assert_eq!(a.poll(Waker::noop()), Verdict::GoingAway);
        assert_eq!(b.poll(Waker::noop()), Verdict::GoingAway);
        assert_eq!(a.poll(Waker::noop()), Verdict::Wait);
        // A connection that starts watching after the signal still hears it.
        let mut late = Liveness::new(timers(None, 5, None));
        late.watch(signal);
        assert_eq!(late.poll(Waker::noop()), Verdict::GoingAway);
    }
}
