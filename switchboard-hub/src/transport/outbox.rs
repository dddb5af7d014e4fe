//! The bounded per-connection queue between a subscription and a client, and what happens
//! when it is full.
//!
//! A forwarding task reads the subscription and pushes encoded frames here; the connection
//! drains it as fast as the client reads. A full queue means the client has stopped keeping
//! up, and [`push`] applies the [`LagPolicy`]: disconnect (count it, kill the connection),
//! or wait for room while the subscription itself falls behind and later resumes from
//! history — but no longer than the write timeout: a queue that does not move at all for
//! that long belongs to a client that stopped reading, which is dropped under either policy.

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;

use super::conn::ConnectionControl;
use super::AppState;
use crate::config::LagPolicy;

/// Queues `item`; false when the client is gone or was dropped for being too slow.
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
    let metrics = state.hub.metrics();
    match state.config.lag_policy {
        LagPolicy::Disconnect => {
            metrics.record_lag(1);
            metrics.record_slow_disconnect();
            if let Some(control) = control {
                tracing::debug!(peer = %control.peer(), "client too slow, disconnecting");
                control.kill();
            }
            false
        }
        LagPolicy::Resume => {
            tokio::select! {
                permit = tokio::time::timeout(state.config.write_timeout(), tx.reserve()) => {
                    match permit {
                        Ok(Ok(permit)) => {
                            permit.send(item);
                            true
                        }
                        Ok(Err(_)) => false,
                        Err(_) => {
                            metrics.record_slow_disconnect();
                            if let Some(control) = control {
                                tracing::debug!(peer = %control.peer(), "client stopped reading, disconnecting");
                                control.kill();
                            }
                            false
                        }
                    }
                }
                _ = super::closing(closing) => false,
            }
        }
    }
}
