//! The bounded per-connection queue between a subscription and a client, and what happens
//! when it is full.
//!
//! A forwarding task reads the subscription and pushes encoded frames here; the connection
//! drains it as fast as the client reads. When the queue is full, [`push`] waits for room:
//! that is what paces a replay (a subscriber resuming 5,000 messages behind reads them from
//! history as fast as it takes them, never pushed into the queue at memory speed), and it
//! costs nothing, since the subscription holds only a position. Two things end the wait:
//!
//! - the queue does not move at all for the write timeout: the client stopped reading, and
//!   is dropped under either policy;
//! - live messages overtake the subscription by a whole ring ([`lagged`]): the client reads
//!   slower than the channel is published to. The [`LagPolicy`] decides: disconnect (count
//!   it, kill the connection; it reconnects and resumes from history), or carry on from
//!   history at the client's pace.

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;

use super::conn::ConnectionControl;
use super::AppState;
use crate::broker::Subscription;
use crate::config::LagPolicy;

/// How often a forwarder waiting on a full queue looks whether live messages overtook its
/// subscription meanwhile.
pub(crate) const OVERRUN_CHECK: std::time::Duration = std::time::Duration::from_millis(20);

/// [`push`] for a subscription's forwarder: while it waits for room, live messages may
/// overtake `sub` by a whole ring; under policy `disconnect` the slow client is dropped then
/// (as [`lagged`] does), without waiting for the write timeout.
pub(crate) async fn push_for<T>(
    state: &AppState,
    tx: &mpsc::Sender<T>,
    item: T,
    control: &ConnectionControl,
    closing: &mut watch::Receiver<bool>,
    // `&mut`: a `Subscription` is `Send` but not `Sync`.
    sub: &mut Subscription,
) -> bool {
    if state.config.lag_policy == LagPolicy::Resume {
        return push(state, tx, item, Some(control), closing).await;
    }
    let ring = state.config.limits.queue_size.max(1).next_power_of_two();
    let overrun = async move {
        loop {
            tokio::time::sleep(OVERRUN_CHECK).await;
            let unread = sub.live_unread();
            if unread > ring {
                return unread;
            }
        }
    };
    tokio::select! {
        pushed = push(state, tx, item, Some(control), closing) => pushed,
        unread = overrun => {
            // What the subscription would report as `Lagged` on its next read.
            state.hub.metrics().record_lag((unread - ring) as u64);
            // Under `disconnect` (the only policy that gets here) this drops the client.
            control.note_backpressure();
            lagged(state, Some(control))
        }
    }
}

/// Queues `item`, waiting for room as long as the client makes progress; false when the
/// client is gone or was dropped for not reading.
pub(crate) async fn push<T>(
    state: &AppState,
    tx: &mpsc::Sender<T>,
    item: T,
    control: Option<&ConnectionControl>,
    closing: &mut watch::Receiver<bool>,
) -> bool {
    let item = match tx.try_send(item) {
        Ok(()) => return true,
        Err(TrySendError::Closed(_)) => return false,
        Err(TrySendError::Full(item)) => item,
    };
    if let Some(control) = control {
        control.note_backpressure();
    }
    tokio::select! {
        permit = tokio::time::timeout(state.config.write_timeout(), tx.reserve()) => {
            match permit {
                Ok(Ok(permit)) => {
                    permit.send(item);
                    true
                }
                Ok(Err(_)) => false,
                Err(_) => {
                    match control {
                        Some(control) => {
                            tracing::debug!(peer = %control.peer(), "client stopped reading, disconnecting");
                            control.kill_as_slow(state.hub.metrics());
                        }
                        None => state.hub.metrics().record_slow_disconnect(),
                    }
                    false
                }
            }
        }
        _ = super::closing(closing) => false,
    }
}

/// The subscription reported [`Delivery::Lagged`](crate::Delivery::Lagged): live messages
/// overtook it by a ring. True to carry on (the subscription continues from history by
/// itself), false when the client was dropped: under policy `disconnect`, if its queue was
/// full at some point since the last such report (the client is slow; otherwise only the
/// forwarding task was not scheduled for a while, and the client is not to blame).
pub(crate) fn lagged(state: &AppState, control: Option<&ConnectionControl>) -> bool {
    let client_was_slow = control.is_some_and(ConnectionControl::take_backpressure);
    match state.config.lag_policy {
        LagPolicy::Resume => true,
        LagPolicy::Disconnect if !client_was_slow => true,
        LagPolicy::Disconnect => {
            match control {
                Some(control) => {
                    tracing::debug!(peer = %control.peer(), "client too slow, disconnecting");
                    control.kill_as_slow(state.hub.metrics());
                }
                None => state.hub.metrics().record_slow_disconnect(),
            }
            false
        }
    }
}
