//! Presence on every transport: who joins, the wire forms of snapshots and join/leave
//! events, and `GET /api/channels/{channel}/presence`.
//!
//! Every subscriber of a channel whose presence is on (`[presence]` in the config) is in its
//! presence for as long as its subscription lives; long polls only when they name their
//! client (`?client=`), since each poll is a request of its own. A client names itself with
//! `?client=ID` (the same id across reconnects keeps one entry, see
//! [`crate::core::PresenceRegistry`]) and describes itself with `?info=JSON` or the
//! subscribe frame's `info`; the user is the token's `sub`.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::StatusCode;
use switchboard::{CloseCode, Initiator, PreparedMessage};
use tokio::sync::mpsc;

use super::access::{self, Action, Caller};
use super::conn::ConnectionControl;
use super::error::ApiError;
use super::params::{self, Params};
use super::wire::{sorted_response, PresenceView};
use super::ws::frame::{RoomEvent, ServerFrame};
use super::ws::Outbound;
use super::AppState;
use crate::broker::{PresenceGuard, PresenceList, PresenceUpdate, PresenceWatch};
use crate::core::{ChannelName, ClientId, Payload, PresenceEntry, PresenceEvent};

/// Who a client says it is: its own id (or none: the server draws one) and its info.
#[derive(Clone, Debug, Default)]
pub(crate) struct Identity {
    pub(crate) client: Option<ClientId>,
    pub(crate) info: Option<Payload>,
}

impl Identity {
    /// `?client=` and `?info=` of a request.
    pub(crate) fn from_query(state: &AppState, query: &Params) -> Result<Self, ApiError> {
        let client = query.get("client").map(parse_client).transpose()?;
        let info = query
            .get("info")
            .map(|raw| parse_info(state, raw.as_bytes()))
            .transpose()?;
        Ok(Self { client, info })
    }
}

/// Parses a client id.
pub(crate) fn parse_client(raw: &str) -> Result<ClientId, ApiError> {
    ClientId::new(raw).map_err(|e| ApiError::BadParam {
        name: "client",
        message: e.to_string(),
    })
}

/// Parses and size-checks client info (any JSON value).
pub(crate) fn parse_info(state: &AppState, raw: &[u8]) -> Result<Payload, ApiError> {
    let info = Payload::from_json(raw).map_err(|e| ApiError::BadParam {
        name: "info",
        message: e.to_string(),
    })?;
    let limit = state.config.presence.max_info_bytes;
    if info.len() > limit {
        return Err(ApiError::BadParam {
            name: "info",
            message: format!("{} bytes is over the limit of {limit}", info.len()),
        });
    }
    Ok(info)
}

/// Puts the caller into `channel`'s presence if presence is on there; `None` if it is off.
pub(crate) async fn join(
    state: &AppState,
    caller: &Caller,
    channel: &ChannelName,
    identity: &Identity,
) -> Result<Option<PresenceGuard>, ApiError> {
    if !state.config.presence.policy(channel).enabled {
        return Ok(None);
    }
    let entry = PresenceEntry {
        client: identity
            .client
            .clone()
            .unwrap_or_else(|| ClientId::from_random_bits(rand::random())),
        user: caller.user().map(Arc::from),
        info: identity.info.clone(),
    };
    Ok(Some(state.hub.join_presence(channel, entry).await?))
}

/// Whether join/leave events may be sent on `channel`.
pub(crate) fn events_on(state: &AppState, channel: &ChannelName) -> bool {
    state.config.presence.policy(channel).events
}

/// Whether a WebSocket's end was a goodbye: the client closed with 1000 or 1001, so its
/// entries leave at once instead of after the grace period.
pub(crate) fn said_goodbye(ws: &switchboard::axum::WebSocket) -> bool {
    ws.close_info().is_some_and(|c| {
        c.initiator == Initiator::Remote
            && (c.code == CloseCode::NORMAL || c.code == CloseCode::GOING_AWAY)
    })
}

/// Ends `guards`: at once after a goodbye, else with the grace period (by dropping them).
pub(crate) fn release_all(guards: impl IntoIterator<Item = PresenceGuard>, goodbye: bool) {
    for g in guards {
        if goodbye {
            g.leave();
        } else {
            drop(g);
        }
    }
}

/// How a WebSocket transport frames presence news.
pub(crate) enum Shape {
    /// `/ws`: `{"op":"join",…}` ([`ServerFrame`]).
    Op,
    /// `/ws/{channel}?presence=1`: `{"event":"join",…}` ([`RoomEvent`]).
    Event,
}

impl Shape {
    /// A snapshot's frame.
    fn list(&self, channel: &ChannelName, list: PresenceList) -> Option<PreparedMessage> {
        let view = PresenceView {
            channel: channel.clone(),
            news: list,
        };
        match self {
            Shape::Op => ServerFrame::Presence(view).prepared(),
            Shape::Event => RoomEvent::Presence(view).prepared(),
        }
    }

    /// A join's or leave's frame.
    fn event(&self, channel: &ChannelName, ev: &PresenceEvent) -> Option<PreparedMessage> {
        match self {
            Shape::Op => ServerFrame::presence_event(channel, ev).prepared(),
            Shape::Event => RoomEvent::presence_event(channel, ev).prepared(),
        }
    }
}

/// Sends a WebSocket subscriber `channel`'s snapshot, then its joins and leaves (a fresh
/// snapshot after falling behind), into the connection's outbox under `tag`, until the
/// client or the store goes.
#[allow(clippy::too_many_arguments)] // one call site per WebSocket transport
pub(crate) async fn forward(
    state: AppState,
    channel: ChannelName,
    shape: Shape,
    mut first: Option<PresenceList>,
    mut watch: PresenceWatch,
    tag: u64,
    tx: mpsc::Sender<Outbound>,
    control: ConnectionControl,
) {
    let mut closing = state.closing.clone();
    let limit = state.config.presence.max_list;
    loop {
        let frame = if let Some(list) = first.take() {
            shape.list(&channel, list)
        } else {
            let update = tokio::select! {
                u = watch.next() => u,
                _ = tx.closed() => return,
            };
            match update {
                None => return,
                Some(PresenceUpdate::Event(ev)) => shape.event(&channel, &ev),
                Some(PresenceUpdate::Lagged) => {
                    match state.hub.watch_presence(&channel, limit).await {
                        Ok((list, again)) => {
                            watch = again;
                            shape.list(&channel, list)
                        }
                        Err(_) => return,
                    }
                }
            }
        };
        let Some(frame) = frame else { continue };
        let out = Outbound {
            tag,
            frame,
            delivers: None,
        };
        if !super::outbox::push(&state, &tx, out, Some(&control), &mut closing).await {
            return;
        }
    }
}

/// `GET /api/channels/{channel}/presence?limit=N`: exact counts and at most `limit`
/// entries (default and maximum `presence.max_list`). Needs subscribe rights.
pub(crate) async fn rest(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let _counted = state
        .hub
        .metrics()
        .connection(crate::metrics::Transport::Rest);
    let query = Params::from_uri(req.uri())?;
    let caller = access::admit(&state, req.headers(), query.get("token"))?;
    let channel = params::channel(&channel)?;
    caller.authorize(Action::Subscribe, &channel)?;
    let list = read(&state, &channel, query.count("limit")?).await?;
    Ok(sorted_response(
        StatusCode::OK,
        &PresenceView {
            channel,
            news: list,
        },
    ))
}

/// Reads `channel`'s presence with `limit` capped; a channel with presence off is
/// refused, so that "nobody here" is never a lie.
pub(crate) async fn read(
    state: &AppState,
    channel: &ChannelName,
    limit: Option<usize>,
) -> Result<PresenceList, ApiError> {
    if !state.config.presence.policy(channel).enabled {
        return Err(ApiError::BadParam {
            name: "channel",
            message: "presence is off for this channel".into(),
        });
    }
    let max = state.config.presence.max_list;
    let limit = limit.unwrap_or(max).min(max);
    Ok(state.hub.presence(channel, limit).await?)
}
