//! `GET /ws`: the JSON protocol.
//!
//! Client frames (text, one JSON object each; `ref` is optional, any JSON value, and is
//! echoed in the answer):
//!
//! - `{"op":"subscribe","channel":"chat","since":41,"epoch":E,"ref":…}` → `subscribed`,
//!   then the replay and live `message`s (or a `reset` first). `since` may also be the
//!   cursor string `"E:41"`. Subscribing again to the same channel replaces the
//!   subscription.
//! - `{"op":"unsubscribe","channel":"chat","ref":…}` → `unsubscribed`.
//! - `{"op":"publish","channel":"chat","data":…,"ref":…}` → `ack` with the id.
//! - `{"op":"ping","ref":…}` → `pong` (browsers cannot send WebSocket pings).
//! - `{"op":"presence","channel":"chat","limit":N,"ref":…}` → `presence`: who is there.
//!
//! Presence: `/ws?client=ID` names the connection's client (else the server draws an id);
//! every subscription puts it into the channel's presence (when presence is on there), with
//! the subscribe frame's `info`; `"presence":true` in the subscribe frame asks for a
//! `presence` snapshot and then `join`/`leave` frames. Unsubscribing, or closing with 1000
//! or 1001, leaves at once; any other end leaves after the grace period.
//!
//! Server frames (the types are [`super::frame::ServerFrame`]; `message` is spliced by
//! [`crate::core::Message::ws_envelope_frame`]):
//!
//! - `{"op":"subscribed","channel":…,"epoch":…,"recovered":true|false,"cursor":"E:N","ref":…}`
//! - `{"op":"message","channel":…,"id":…,"ts":…,"data":…}` (`ts`: when the hub accepted it, ms)
//! - `{"op":"reset","channel":…,"epoch":…,"reason":"expired","message":…,"last":…}`
//! - `{"op":"ack","channel":…,"id":…,"epoch":…,"ts":…,"ref":…}`
//! - `{"op":"unsubscribed","channel":…,"ref":…}`, `{"op":"pong","ref":…}`
//! - `{"op":"presence","channel":…,"clients":…,"users":…,"entries":[…],"truncated":…}`
//! - `{"op":"join"|"leave","channel":…,"client":…,"user":…?,"info":…?}`
//! - `{"op":"error","code":…,"message":…,"channel":…?,"ref":…?}` with the REST error codes.
//!
//! A client that stops reading is disconnected (policy `disconnect`) and resumes with
//! `since` when it reconnects.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use switchboard::axum::{WebSocket, WebSocketUpgrade, WebSocketUpgradeRejection};
use switchboard::Message;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::few::Few;
use super::frame::ServerFrame;
use super::{Encoding, End, Event, Fed, Outbound};
use crate::broker::{Delivery, PresenceGuard, Subscription};
use crate::core::{ChannelName, ClientId, Payload};
use crate::metrics::Transport;
use crate::security::TokenBucket;
use crate::transport::access::{self, Action, Caller};
use crate::transport::command::{self, Command};
use crate::transport::conn::ConnectionControl;
use crate::transport::error::ApiError;
use crate::transport::params::Params;
use crate::transport::presence::{self, Identity, Shape};
use crate::transport::wire::PresenceView;
use crate::transport::AppState;

/// The subprotocol name of this JSON protocol: `new WebSocket(url, "switchboard.v1")`.
/// Clients that offer no subprotocol are served the same.
pub(crate) const PROTOCOL: &str = "switchboard.v1";

/// Consecutive refused frames after which a flooding client is disconnected.
const MAX_REFUSED_IN_A_ROW: u32 = 100;

/// The handler.
pub(crate) async fn handler(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    req: Request,
) -> Response {
    let query = match Params::from_uri(req.uri()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    // With auth on, a client without a valid token is refused here, at the handshake,
    // rather than holding a connection it may do nothing with.
    let caller = match access::admit(&state, req.headers(), query.get("token"))
        .and_then(|c| c.require_token().map(|()| c))
    {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let client = match query.get("client").map(presence::parse_client).transpose() {
        // One id for every channel of the connection: it is one client.
        Ok(c) => c.unwrap_or_else(|| ClientId::from_random_bits(rand::random())),
        Err(e) => return e.into_response(),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    let control = super::control_of(&state, req.extensions());
    let caller = caller.with_ip(access::client_ip(&state, req.headers(), req.extensions()));
    let version = req.version();
    upgrade
        .protocols([PROTOCOL])
        .config(super::socket_config(&state))
        .on_upgrade(move |ws| {
            super::accepted(&state, version);
            run(state, caller, client, control, ws)
        })
}

/// A subscription's place in presence: the session, and the task sending join/leave.
struct PresenceHold {
    guard: Option<PresenceGuard>,
    task: Option<JoinHandle<()>>,
}

impl Drop for PresenceHold {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A subscription of the connection, waiting for its next delivery. The connection's own
/// task polls it (no forwarding task, no queue in between): the wait owns the subscription
/// and hands it back with the delivery, and is boxed once per wake-up of this
/// subscription, not per message (a batch follows from `try_next`). The subscription is
/// boxed apart so that handing it back moves a pointer, not the subscription, through the
/// connection's task (which would otherwise keep room for it in every idle connection).
struct Waiting(Pin<Box<dyn Future<Output = Woken> + Send>>);

/// What a [`Waiting`] hands back.
type Woken = (Box<Subscription>, Option<Delivery>);

impl Waiting {
    fn new(mut sub: Box<Subscription>) -> Self {
        Waiting(Box::pin(async move {
            let d = sub.next().await;
            (sub, d)
        }))
    }
}

/// One subscription of the connection: its tag (frames queued by its presence task carry
/// it) and its wait; `None` while its deliveries are being written.
struct Slot {
    tag: u64,
    waiting: Option<Waiting>,
}

/// The next delivery of any subscription, taking turns from `start` so that a busy channel
/// does not starve the others.
fn next_delivery<'a>(
    subs: &'a mut Few<ChannelName, Slot>,
    start: &'a mut usize,
) -> impl Future<Output = (ChannelName, Box<Subscription>, Option<Delivery>)> + 'a {
    std::future::poll_fn(move |cx| {
        let n = subs.len();
        if n == 0 {
            return Poll::Pending;
        }
        let first = *start % n;
        // Two passes (from `first` to the end, then from the start): every wait is polled
        // once, so each registers its waker.
        for pass in [first..n, 0..first] {
            for (i, (channel, slot)) in subs.iter_mut().enumerate() {
                if !pass.contains(&i) {
                    continue;
                }
                let Some(waiting) = slot.waiting.as_mut() else {
                    continue;
                };
                if let Poll::Ready((sub, d)) = waiting.0.as_mut().poll(cx) {
                    slot.waiting = None;
                    *start = i + 1;
                    return Poll::Ready((channel.clone(), sub, d));
                }
            }
        }
        Poll::Pending
    })
}

struct Session {
    state: AppState,
    caller: Caller,
    control: ConnectionControl,
    ws: WebSocket,
    /// Every write to `ws` goes through these.
    exits: super::Exits,
    /// Presence frames (join/leave) from their tasks; made with the first presence watch.
    tx: Option<mpsc::Sender<Outbound>>,
    rx: Option<mpsc::Receiver<Outbound>>,
    subs: Few<ChannelName, Slot>,
    /// The tags of `subs` (presence frames of any other tag belong to a subscription that
    /// was replaced or ended, and are skipped). Kept apart from `subs`, whose waits are not
    /// `Sync`, so that a write can borrow it.
    live: Vec<u64>,
    /// Where [`next_delivery`] starts looking.
    turn: usize,
    presence: Few<ChannelName, PresenceHold>,
    client: ClientId,
    next_tag: u64,
    bucket: TokenBucket,
    refused_in_a_row: u32,
    /// Set when a write inside a command failed: how the connection ends.
    ended: Option<End>,
}

// Not an `async fn`: see the comment on its `async` block.
#[allow(clippy::manual_async_fn)]
fn run(
    state: AppState,
    caller: Caller,
    client: ClientId,
    control: ConnectionControl,
    ws: WebSocket,
) -> impl std::future::Future<Output = ()> {
    // An `async` block, not an `async fn`: an `async fn` keeps its arguments in its
    // future beside the locals it moves them into (for drop order), so every idle
    // connection's task held them twice; the block uses them where they are.
    async move {
        let counted = state.hub.metrics().connection(Transport::WebSocket);
        control.set_transport(Transport::WebSocket);
        crate::transport::relay_closing(&state, &control);
        let bucket = TokenBucket::new(state.rate_limit(), Instant::now());
        let exits = super::Exits::new(&state, &control);
        let mut s = Session {
            state,
            caller,
            control,
            ws,
            exits,
            tx: None,
            rx: None,
            subs: Few::new(),
            live: Vec::new(),
            turn: 0,
            presence: Few::new(),
            client,
            next_tag: 0,
            bucket,
            refused_in_a_row: 0,
            ended: None,
        };
        let control = s.control.clone();
        let mut expiry = None;
        let end = loop {
            super::arm(&mut expiry, s.caller.expiry());
            let event = tokio::select! {
                stop = control.stopped() => Event::End(stop.into()),
                () = super::expired(&mut expiry) => Event::End(End::Expired),
                msg = s.ws.recv() => Event::Received(msg),
                (channel, sub, delivery) = next_delivery(&mut s.subs, &mut s.turn) => {
                    Event::Delivery((channel, sub, delivery))
                }
                Some(out) = super::recv_some(&mut s.rx) => Event::Presence(out),
            };
            match event {
                Event::End(end) => break end,
                Event::Received(msg) => match msg {
                    None | Some(Err(_)) => break End::Gone,
                    Some(Ok(Message::Text(text))) => {
                        // Boxed: a client frame is rare next to what the connection waits
                        // for, and its handling (subscribe, publish, presence) is large.
                        if let Some(end) = Box::pin(s.handle(text.as_str())).await {
                            break end;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        break End::Unsupported("binary frames are not part of this protocol")
                    }
                },
                Event::Delivery((channel, sub, delivery)) => {
                    if let Err(end) = s.delivered(channel, sub, delivery).await {
                        break end;
                    }
                }
                Event::Presence(out) => {
                    let live = &s.live;
                    if let Some(rx) = s.rx.as_mut() {
                        let written = s
                            .exits
                            .write_batch(&mut s.ws, out, rx, |t| live.contains(&t));
                        if let Err(end) = Box::pin(written).await {
                            break end;
                        }
                    }
                }
            }
        };
        let goodbye = matches!(end, End::Gone) && presence::said_goodbye(&s.ws);
        let holds: Vec<_> = s.presence.drain().map(|(_, h)| h).collect();
        presence::release_all(
            holds.into_iter().filter_map(|mut h| h.guard.take()),
            goodbye,
        );
        // A polite close first delivers what was published before it (every acknowledged
        // message), from every subscription.
        let end = match end {
            End::Shutdown | End::Policy(_) => match Box::pin(s.drain()).await {
                Ok(()) => end,
                Err(e) => e,
            },
            other => other,
        };
        // Boxed: a close's timer would otherwise be part of every idle connection's task.
        Box::pin(super::finish(&mut s.ws, end)).await;
        // Out of the open-connection gauge before the connection's control handles drop:
        // the last of them counts a slow client as dropped, and it must be gone by then.
        drop(counted);
    }
}

impl Session {
    /// Handles one client frame; `Some` ends the connection.
    async fn handle(&mut self, text: &str) -> Option<End> {
        // Every frame costs the connection's bucket; publishes (what fans out) also cost
        // the address's publish bucket and subscribes its far larger read bucket, so that
        // many clients behind one address (a NAT, a load generator) can still all
        // subscribe at once.
        if self.bucket.try_take(Instant::now()).is_err() {
            self.state.hub.metrics().record_rejected();
            self.refused_in_a_row += 1;
            if self.refused_in_a_row > MAX_REFUSED_IN_A_ROW {
                return Some(End::Policy("rate limit exceeded"));
            }
            let err = ApiError::RateLimited {
                retry_after: std::time::Duration::from_secs(1),
            };
            return self.reply_error(&err, None, None).await;
        }
        self.refused_in_a_row = 0;
        let depth = self.state.config.limits.max_json_depth.saturating_add(1);
        let cmd = match command::parse(text, depth) {
            Ok(c) => c,
            Err(refusal) => {
                let channel = refusal.channel.as_deref();
                return self
                    .reply_error(&refusal.error, channel, refusal.reference)
                    .await;
            }
        };
        let reference = cmd.reference;
        let result = match &*cmd.op {
            "subscribe" => self.subscribe(&cmd).await,
            "unsubscribe" => self.unsubscribe(&cmd).map(Some),
            "publish" => self.publish(&cmd).await.map(Some),
            "ping" => Ok(Some(ServerFrame::Pong)),
            "auth" => self.refresh(&cmd).await,
            "presence" => self.presence(&cmd).await.map(Some),
            other => Err(ApiError::BadMessage(format!("unknown op {other:?}"))),
        };
        match result {
            Ok(None) => self.ended.take(),
            Ok(Some(answer)) => self.reply(answer, reference).await,
            Err(err) => {
                self.reply_error(&err, cmd.channel.as_deref(), reference)
                    .await
            }
        }
    }

    /// Sends `answer` with the client's `ref`; `Some` when the connection is gone.
    async fn reply(&mut self, answer: ServerFrame, reference: Option<&RawValue>) -> Option<End> {
        let frame = answer.encode(reference);
        self.exits.send_text(&mut self.ws, frame).await.err()
    }

    fn channel(cmd: &Command<'_>) -> Result<ChannelName, ApiError> {
        let name = cmd.channel.as_deref().ok_or(ApiError::BadParam {
            name: "channel",
            message: "missing".into(),
        })?;
        Ok(ChannelName::new(name)?)
    }

    /// Subscribes and answers `subscribed` itself (it must precede the replay), hence
    /// `Ok(None)`.
    async fn subscribe(&mut self, cmd: &Command<'_>) -> Result<Option<ServerFrame>, ApiError> {
        let channel = Self::channel(cmd)?;
        self.caller.authorize(Action::Subscribe, &channel)?;
        let limit = self.state.config.limits.max_subscriptions;
        if !self.subs.contains_key(&channel) && self.subs.len() >= limit {
            return Err(ApiError::BadParam {
                name: "channel",
                message: format!("at most {limit} subscriptions per connection"),
            });
        }
        self.caller.charge_read(&self.state)?;
        let since = cmd.since;
        let info = cmd
            .info
            .map(|raw| presence::parse_info(&self.state, raw.get().as_bytes()))
            .transpose()?;
        let sub = self.state.hub.subscribe(&channel, since).await?;
        let identity = Identity {
            client: Some(self.client.clone()),
            info,
        };
        // Joined before the old subscription's session (if replacing) is released, so a
        // replacement is a takeover, not a leave and a join.
        let guard = presence::join(&self.state, &self.caller, &channel, &identity).await?;
        let watch = if cmd.presence && guard.is_some() && presence::events_on(&self.state, &channel)
        {
            let limit = self.state.config.presence.max_list;
            Some(self.state.hub.watch_presence(&channel, limit).await?)
        } else {
            None
        };
        let answer = ServerFrame::Subscribed {
            channel: channel.clone(),
            epoch: sub.epoch(),
            recovered: sub.recovered(),
            cursor: sub.cursor(),
            presence: watch.is_some(),
        };
        // Replacing: the old subscription ends, and presence frames already queued for it
        // are skipped.
        if let Some(old) = self.subs.remove(&channel) {
            self.live.retain(|&t| t != old.tag);
        }
        let old_hold = self.presence.remove(&channel);
        let tag = self.next_tag;
        self.next_tag += 1;
        // `subscribed` must reach the client before the first replayed message; the
        // subscription is only read after this frame is written.
        if let Some(end) = self.reply(answer, cmd.reference).await {
            self.ended = Some(end);
            return Ok(None);
        }
        let presence_task = watch.map(|(list, watch)| {
            let queue = self.state.config.limits.queue_size.max(2);
            let tx = match &self.tx {
                Some(tx) => tx.clone(),
                None => {
                    let (tx, rx) = mpsc::channel(queue);
                    self.rx = Some(rx);
                    self.tx.insert(tx).clone()
                }
            };
            tokio::spawn(presence::forward(
                self.state.clone(),
                channel.clone(),
                Shape::Op,
                Some(list),
                watch,
                tag,
                tx,
                self.control.clone(),
            ))
        });
        drop(old_hold);
        self.presence.insert(
            channel.clone(),
            PresenceHold {
                guard,
                task: presence_task,
            },
        );
        self.control.add_channel(&channel);
        self.live.push(tag);
        let waiting = Some(Waiting::new(Box::new(sub)));
        self.subs.insert(channel, Slot { tag, waiting });
        Ok(None)
    }

    /// Writes a subscription's delivery (and what follows it at once), then waits on it
    /// again, unless it ended or was replaced meanwhile.
    async fn delivered(
        &mut self,
        channel: ChannelName,
        mut sub: Box<Subscription>,
        delivery: Option<Delivery>,
    ) -> Result<(), End> {
        let fed = match delivery {
            Some(d) => {
                super::deliver(
                    &mut self.exits,
                    &mut self.ws,
                    &mut sub,
                    Encoding::Envelope,
                    d,
                )
                .await?
            }
            None => Fed::Ended,
        };
        match fed {
            Fed::Open => {
                if let Some(slot) = self.subs.get_mut(&channel) {
                    slot.waiting = Some(Waiting::new(sub));
                }
            }
            // The connection stays; the client may subscribe again.
            Fed::Ended => {
                if let Some(slot) = self.subs.remove(&channel) {
                    self.live.retain(|&t| t != slot.tag);
                    self.control.remove_channel(&channel);
                }
            }
        }
        Ok(())
    }

    /// Before a polite close: writes what every subscription already holds (every message
    /// acknowledged before the close), then the queued presence frames, for at most
    /// [`super::CLOSE_TIMEOUT`].
    async fn drain(&mut self) -> Result<(), End> {
        let deadline = tokio::time::Instant::now() + super::CLOSE_TIMEOUT;
        let slots: Vec<Slot> = self.subs.drain().map(|(_, slot)| slot).collect();
        for slot in slots {
            // A wait that is not ready now has nothing to hand over now.
            let Some(mut waiting) = slot.waiting else {
                continue;
            };
            let ready = {
                let mut noop = std::task::Context::from_waker(std::task::Waker::noop());
                waiting.0.as_mut().poll(&mut noop)
            };
            let Poll::Ready((mut sub, Some(d))) = ready else {
                continue;
            };
            let exits = &mut self.exits;
            let ws = &mut self.ws;
            let first = async {
                match super::deliver(exits, ws, &mut sub, Encoding::Envelope, d).await? {
                    Fed::Open => Ok(()),
                    Fed::Ended => Err(None),
                }
            };
            match tokio::time::timeout_at(deadline, first).await {
                Ok(Ok(())) => {}
                Ok(Err(None)) => continue,
                Ok(Err(Some(end))) => return Err(end),
                Err(_) => return Ok(()),
            }
            super::drain_subscription(exits, ws, &mut sub, Encoding::Envelope, deadline).await?;
        }
        drop(self.tx.take());
        if let Some(mut rx) = self.rx.take() {
            let live = &self.live;
            super::drain(&mut self.exits, &mut self.ws, &mut rx, |t| {
                live.contains(&t)
            })
            .await?;
        }
        Ok(())
    }

    /// Who is in a channel; needs subscribe rights.
    async fn presence(&mut self, cmd: &Command<'_>) -> Result<ServerFrame, ApiError> {
        let channel = Self::channel(cmd)?;
        self.caller.authorize(Action::Subscribe, &channel)?;
        let list = presence::read(&self.state, &channel, cmd.limit).await?;
        Ok(ServerFrame::Presence(PresenceView {
            channel,
            news: list,
        }))
    }

    /// `{"op":"auth","token":…}`: continues under a new token (before the old one expires).
    /// Subscriptions the new token does not allow end with `unsubscribed`.
    async fn refresh(&mut self, cmd: &Command<'_>) -> Result<Option<ServerFrame>, ApiError> {
        let token = cmd.token.as_deref().ok_or(ApiError::BadParam {
            name: "token",
            message: "missing".into(),
        })?;
        self.caller = self.caller.refreshed(&self.state, token)?;
        let revoked: Vec<ChannelName> = self
            .subs
            .keys()
            .filter(|c| self.caller.authorize(Action::Subscribe, c).is_err())
            .cloned()
            .collect();
        for channel in revoked {
            self.drop_subscription(&channel);
            let gone = ServerFrame::Unsubscribed {
                channel,
                reason: Some("the new token does not allow this channel"),
            };
            if let Some(end) = self.reply(gone, None).await {
                self.ended = Some(end);
                return Ok(None);
            }
        }
        Ok(Some(ServerFrame::Authed {
            exp: self.caller.exp(),
        }))
    }

    fn unsubscribe(&mut self, cmd: &Command<'_>) -> Result<ServerFrame, ApiError> {
        let channel = Self::channel(cmd)?;
        self.drop_subscription(&channel);
        Ok(ServerFrame::Unsubscribed {
            channel,
            reason: None,
        })
    }

    /// Ends the subscription to `channel`, if any: its forwarder, its queued frames, its
    /// presence.
    fn drop_subscription(&mut self, channel: &ChannelName) {
        if let Some(slot) = self.subs.remove(channel) {
            self.live.retain(|&t| t != slot.tag);
            self.control.remove_channel(channel);
        }
        if let Some(guard) = self
            .presence
            .remove(channel)
            .and_then(|mut h| h.guard.take())
        {
            guard.leave();
        }
    }

    async fn publish(&mut self, cmd: &Command<'_>) -> Result<ServerFrame, ApiError> {
        let channel = Self::channel(cmd)?;
        self.caller.authorize(Action::Publish, &channel)?;
        self.caller.charge_frame(&self.state)?;
        let payload = match cmd.data {
            Some(raw) => Payload::from_json_with_depth(
                raw.get().as_bytes(),
                self.state.config.limits.max_json_depth,
            )
            .map_err(|e| ApiError::BadMessage(e.to_string()))?,
            None => Payload::from_value(&serde_json::Value::Null),
        };
        let published = self
            .state
            .hub
            .publish(&channel, payload, Transport::WebSocket)
            .await?;
        Ok(ServerFrame::Ack {
            channel,
            id: published.id,
            epoch: published.epoch,
            ts: published.ts,
        })
    }

    async fn reply_error(
        &mut self,
        err: &ApiError,
        channel: Option<&str>,
        reference: Option<&RawValue>,
    ) -> Option<End> {
        let frame = ServerFrame::Error {
            code: err.code(),
            message: err.to_string(),
            channel: channel.map(str::to_owned),
        };
        self.reply(frame, reference).await
    }
}
