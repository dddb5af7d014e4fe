//! `GET /ws/{channel}`: the seeds' chat room, as is.
//!
//! Works with a bare `new WebSocket("ws://host/ws/room")`: every text frame a client sends
//! is published on the channel (as a JSON string), and every message on the channel —
//! whoever published it, over any transport — arrives at every client as a text frame: the
//! text itself for string payloads, the JSON for anything else. The sender gets its own
//! message back too, which is how a chat page knows it went out.
//!
//! `?since=CURSOR` replays what followed it first. There is no room in a plain text stream
//! for a reset notice, so a cursor that history cannot honour just starts live. Binary
//! frames are refused with close code 1003; a client over its rate limit is closed with
//! 1008.
//!
//! Presence: every client of the room is in its presence (`?client=ID` and `?info=JSON`
//! name and describe it). `?presence=1` also sends it JSON texts:
//! `{"event":"presence","channel":…,"clients":…,"users":…,"entries":[…],"truncated":…}`
//! first, then `{"event":"join"|"leave","channel":…,"client":…,"user":…?,"info":…?}`.

use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use switchboard::axum::{WebSocket, WebSocketUpgrade, WebSocketUpgradeRejection};
use switchboard::Message;
use tokio::sync::mpsc;

use super::{Encoding, End, Event};
use crate::broker::{PresenceGuard, PresenceList, PresenceWatch};
use crate::core::{ChannelName, Payload};
use crate::hub::Subscription;
use crate::metrics::Transport;
use crate::security::TokenBucket;
use crate::transport::access::{self, Action, Caller};
use crate::transport::conn::ConnectionControl;
use crate::transport::error::ApiError;
use crate::transport::params::{self, Params};
use crate::transport::presence::{self, Identity, Shape};

/// What a room connection holds in presence: its session, and the snapshot and stream of
/// changes when it asked for them (boxed: handed to a task at once, yet as an argument of
/// the connection's future it would keep its room there for the connection's life).
struct RoomPresence {
    guard: Option<PresenceGuard>,
    watch: Option<Box<(PresenceList, PresenceWatch)>>,
}
use crate::transport::AppState;

/// The handler.
pub(crate) async fn handler(
    State(state): State<AppState>,
    Path(channel): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    req: Request,
) -> Response {
    // `Request` is not `Sync`: keep only its head across the await.
    let (req, _) = req.into_parts();
    match prepare(&state, &channel, &req, upgrade.is_ok()).await {
        Err(e) => e.into_response(),
        Ok((caller, channel, sub, room)) => match upgrade {
            Err(rejection) => rejection.into_response(),
            Ok(upgrade) => {
                let control = super::control_of(&state, &req.extensions);
                let ip = access::client_ip(&state, &req.headers, &req.extensions);
                let caller = caller.with_ip(ip);
                // Plain text whatever the name: take the page's first subprotocol, since a
                // browser that offered some fails the handshake if none is selected.
                let first = upgrade.requested_protocols().first().cloned();
                let version = req.version;
                upgrade
                    .protocols(first)
                    .config(super::socket_config(&state))
                    .on_upgrade(move |ws| {
                        super::accepted(&state, version);
                        run(state, caller, channel, sub, room, control, ws)
                    })
            }
        },
    }
}

/// Checks access and subscribes before answering the upgrade, so that refusals are plain
/// HTTP errors and no message published right after the 101 can be missed.
async fn prepare(
    state: &AppState,
    channel: &str,
    req: &http::request::Parts,
    upgrading: bool,
) -> Result<(Caller, ChannelName, Subscription, RoomPresence), ApiError> {
    let query = Params::from_uri(&req.uri)?;
    let caller = access::admit(state, &req.headers, query.get("token"))?;
    let channel = params::channel(channel)?;
    caller.authorize(Action::Subscribe, &channel)?;
    access::charge_read(
        state,
        access::client_ip(state, &req.headers, &req.extensions),
    )?;
    let since = query.cursor("since")?;
    let identity = Identity::from_query(state, &query)?;
    let wants_events = params::flag(&query, "presence")?;
    let sub = state.hub.subscribe(&channel, since).await?;
    // Not for a request that is no upgrade: it would join and leave for nothing.
    let guard = if upgrading {
        presence::join(state, &caller, &channel, &identity).await?
    } else {
        None
    };
    let watch = if wants_events && guard.is_some() && presence::events_on(state, &channel) {
        let limit = state.config.presence.max_list;
        Some(Box::new(state.hub.watch_presence(&channel, limit).await?))
    } else {
        None
    };
    Ok((caller, channel, sub, RoomPresence { guard, watch }))
}

// Not an `async fn`: see the comment on its `async` block.
#[allow(clippy::manual_async_fn)]
fn run(
    state: AppState,
    caller: Caller,
    channel: ChannelName,
    mut sub: Subscription,
    room: RoomPresence,
    control: ConnectionControl,
    mut ws: WebSocket,
) -> impl std::future::Future<Output = ()> {
    // An `async` block, not an `async fn`: an `async fn` keeps its arguments in its
    // future beside the locals it moves them into (for drop order), so every idle
    // connection's task held them twice; the block uses them where they are.
    async move {
        let counted = state.hub.metrics().connection(Transport::ChatRoom);
        control.set_transport(Transport::ChatRoom);
        control.add_channel(&channel);
        crate::transport::relay_closing(&state, &control);
        // Messages go from the subscription straight to the socket (`super::deliver`); only
        // presence events, when asked for, come through a task and a queue.
        let (presence_forwarder, mut presence_rx) = match room.watch {
            Some(watch) => {
                let (list, watch) = *watch;
                let (tx, rx) = mpsc::channel(state.config.limits.queue_size.max(2));
                let task = tokio::spawn(presence::forward(
                    state.clone(),
                    channel.clone(),
                    Shape::Event,
                    Some(list),
                    watch,
                    0,
                    tx,
                    control.clone(),
                ));
                (Some(task), Some(rx))
            }
            None => (None, None),
        };
        let mut bucket = TokenBucket::new(state.rate_limit(), Instant::now());
        let may_publish = caller.authorize(Action::Publish, &channel).is_ok();
        let mut exits = super::Exits::new(&state, &control);
        let mut expiry = caller
            .expiry()
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        let end = loop {
            // The select only says what happened; it is handled once the select is over, so
            // that no handling's await sits on top of the branches' futures in the task.
            let event = tokio::select! {
                stop = control.stopped() => Event::End(stop.into()),
                () = super::expired(&mut expiry) => Event::End(End::Expired),
                msg = ws.recv() => Event::Received(msg),
                delivery = sub.next() => Event::Delivery(delivery),
                Some(out) = super::recv_some(&mut presence_rx) => Event::Presence(out),
            };
            match event {
                Event::End(end) => break end,
                Event::Received(msg) => match msg {
                    None | Some(Err(_)) => break End::Gone,
                    Some(Ok(Message::Binary(_))) => {
                        break End::Unsupported("this chat room carries text only")
                    }
                    Some(Ok(Message::Text(text))) => {
                        if !may_publish {
                            break End::Policy("this token may not publish here");
                        }
                        if bucket.try_take(Instant::now()).is_err() {
                            state.hub.metrics().record_rejected();
                            break End::Policy("rate limit exceeded");
                        }
                        if caller.charge_frame(&state).is_err() {
                            break End::Policy("rate limit exceeded");
                        }
                        if let Err(end) = publish(&state, &channel, text.as_str()).await {
                            break end;
                        }
                    }
                },
                Event::Delivery(delivery) => {
                    let Some(delivery) = delivery else {
                        break End::Killed;
                    };
                    if let Err(end) =
                        super::deliver(&mut exits, &mut ws, &mut sub, Encoding::Plain, delivery)
                            .await
                    {
                        break end;
                    }
                }
                Event::Presence(out) => {
                    if let Some(rx) = presence_rx.as_mut() {
                        if let Err(end) =
                            Box::pin(exits.write_batch(&mut ws, out, rx, |_| true)).await
                        {
                            break end;
                        }
                    }
                }
            }
        };
        if let Some(task) = presence_forwarder {
            task.abort();
        }
        // A polite close (shutdown, rate limit) first delivers what was published before it,
        // the client's own accepted messages included.
        let end = match end {
            End::Shutdown | End::Policy(_) => {
                let deadline = tokio::time::Instant::now() + super::CLOSE_TIMEOUT;
                let drained = super::drain_subscription(
                    &mut exits,
                    &mut ws,
                    &mut sub,
                    Encoding::Plain,
                    deadline,
                );
                match Box::pin(drained).await {
                    Ok(()) => end,
                    Err(e) => e,
                }
            }
            other => other,
        };
        drop(sub);
        let goodbye = matches!(end, End::Gone) && presence::said_goodbye(&ws);
        presence::release_all(room.guard, goodbye);
        Box::pin(super::finish(&mut ws, end)).await;
        // Out of the open-connection gauge before `control` drops (see `protocol::run`).
        drop(counted);
    }
}

/// Publishes a client's text on the room (boxed: a rare, large future that would otherwise
/// be part of every idle connection's task).
async fn publish(state: &AppState, channel: &ChannelName, text: &str) -> Result<(), End> {
    let payload = Payload::text(text);
    let published = Box::pin(state.hub.publish(channel, payload, Transport::ChatRoom)).await;
    published.map(|_| ()).map_err(|e| {
        tracing::debug!(error = %e, "chat room publish refused");
        End::Policy(match e {
            crate::hub::PublishError::TooLarge { .. } => "message too large",
            crate::hub::PublishError::Broker(_) => "publish refused",
        })
    })
}
