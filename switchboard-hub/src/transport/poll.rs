//! `GET /poll/{channel}?since=CURSOR&timeout=SECS&limit=N`: long polling.
//!
//! Answers at once when something follows `since`, else waits up to `timeout` (capped by
//! `poll_timeout_secs`) for the next message. The answer is
//! `{"channel","epoch","messages":[{"id","data"}],"next":"EPOCH:ID"}` plus `reset` when
//! `since` could not be honoured. The client passes `next` as its next `since`: because the
//! cursor is resolved against history, a message published while the client is between two
//! requests is in the next answer — the gap between polls loses nothing.
//!
//! Without `since`, the poll starts at the channel's current end and waits for the next
//! message; the answer's `next` is the cursor to continue with either way.
//!
//! Presence: a poll that names its client (`?client=ID`, `?info=JSON`) is in the channel's
//! presence while it waits, and stays there for the grace period after it answers, so a
//! client that polls again at once is present without a break. `?presence=1` adds the
//! channel's presence, read when the poll answers, as `"presence":{…}`. There are no
//! join/leave events here: a client compares two answers.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::StatusCode;

use super::access::{self, Action};
use super::error::ApiError;
use super::params::{self, Params};
use super::presence::{self, Identity};
use super::wire::{
    json_response, sorted_response, MessageList, PollWithPresence, PresenceView, WireReset,
};
use super::AppState;
use crate::core::{Message, ResetReason};
use crate::hub::Delivery;
use crate::metrics::Transport;

/// The handler.
pub(crate) async fn poll(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let query = Params::from_uri(req.uri())?;
    let caller = access::admit(&state, req.headers(), query.get("token"))?;
    let channel = params::channel(&channel)?;
    caller.authorize(Action::Subscribe, &channel)?;
    access::charge_read(
        &state,
        access::client_ip(&state, req.headers(), req.extensions()),
    )?;
    let since = query.cursor("since")?;
    let max_wait = std::time::Duration::from_secs(state.config.limits.poll_timeout_secs);
    let wait = query.seconds("timeout")?.unwrap_or(max_wait).min(max_wait);
    let max = state.config.limits.poll_max_messages;
    let limit = query.count("limit")?.unwrap_or(max).clamp(1, max);

    let metrics = Arc::clone(state.hub.metrics());
    let _guard = metrics.connection(Transport::Poll);
    let identity = Identity::from_query(&state, &query)?;
    let wants_presence = params::flag(&query, "presence")?;
    let mut sub = state.hub.subscribe(&channel, since).await?;
    // Only a named client: an anonymous poll would join and leave on every request.
    let _presence = match identity.client {
        Some(_) => presence::join(&state, &caller, &channel, &identity).await?,
        None => None,
    };
    let control = super::control_of(&state, req.extensions());
    control.set_transport(Transport::Poll);
    control.add_channel(&channel);
    let mut closing = state.closing.clone();
    let deadline = tokio::time::Instant::now() + wait;
    let mut messages: Vec<Arc<Message>> = Vec::new();
    let mut reset: Option<ResetReason> = None;
    // Take what is ready; if nothing is, wait for one delivery, then take what followed it.
    let mut ready = sub.try_next();
    loop {
        match ready {
            Some(Delivery::Message(m)) => {
                metrics.record_delivery(Transport::Poll, &m);
                messages.push(m);
                if messages.len() >= limit {
                    break;
                }
            }
            Some(Delivery::Reset { reason, .. }) => {
                reset = Some(reason);
                break;
            }
            // The cursor still points before the skipped messages: the next poll replays
            // them from history (or reports that it cannot).
            Some(Delivery::Lagged { .. }) => break,
            // The store is down: keep waiting, the subscription resumes when it is back.
            Some(Delivery::Unavailable(_)) => {}
            // Answer with what there is; the next poll subscribes afresh.
            Some(Delivery::Closed(_)) => break,
            None if messages.is_empty() => {
                let next = tokio::select! {
                    n = tokio::time::timeout_at(deadline, sub.next()) => n,
                    _ = super::closing(&mut closing) => break,
                };
                match next {
                    Ok(Some(d)) => {
                        ready = Some(d);
                        continue;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            None => break,
        }
        ready = sub.try_next();
    }
    let mut list = MessageList::new(&channel, sub.epoch(), &messages, sub.cursor());
    list.reset = reset.map(WireReset::from);
    if !wants_presence {
        return Ok(json_response(StatusCode::OK, &list));
    }
    let here = presence::read(&state, &channel, None).await?;
    let answer = PollWithPresence {
        list,
        presence: PresenceView {
            channel: channel.clone(),
            news: here,
        },
    };
    // Sorted, as this answer always was (without presence it never was; see `wire`).
    Ok(sorted_response(StatusCode::OK, &answer))
}
