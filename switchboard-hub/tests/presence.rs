//! Presence over a real loopback server: every transport, the grace rule, rights, the caps,
//! churn; and the presence store contract, run against the in-process store.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{connect, recv_json, request, send, start, Client, HttpStream, WAIT};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use switchboard::{CloseCode, Message};
use switchboard_hub::config::{AuthConfig, PresenceConfig, PresenceRule};
use switchboard_hub::core::{ChannelName, ClientId, PresenceEntry};
use switchboard_hub::security::{Claims, JwtKey};
use switchboard_hub::{HubConfig, MemoryPresence, PresenceStore};

/// A short grace period so that the tests can wait it out.
const GRACE_MS: u64 = 400;

fn config() -> HubConfig {
    HubConfig {
        presence: PresenceConfig {
            grace_ms: GRACE_MS,
            ..PresenceConfig::default()
        },
        ..HubConfig::default()
    }
}

/// The next frame with one of `ops` (skipping others), or panics after `WAIT`.
async fn recv_op(ws: &mut Client, ops: &[&str]) -> Value {
    loop {
        let v = recv_json(ws).await;
        let op = v["op"].as_str().or(v["event"].as_str()).unwrap_or("");
        if ops.contains(&op) {
            return v;
        }
    }
}

/// Nothing but pings for `d` (no frame of `ops`).
async fn quiet(ws: &mut Client, ops: &[&str], d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, ws.recv()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                let op = v["op"].as_str().or(v["event"].as_str()).unwrap_or("");
                assert!(!ops.contains(&op), "unexpected {v}");
            }
            Ok(other) => panic!("connection ended: {other:?}"),
        }
    }
}

/// A `/ws` client in `channel` with presence events, as client `id` with `nick`; returns
/// the socket and the snapshot it got.
async fn member(
    addr: std::net::SocketAddr,
    channel: &str,
    id: &str,
    nick: &str,
) -> (Client, Value) {
    let mut ws = connect(addr, &format!("/ws?client={id}")).await;
    send(
        &mut ws,
        json!({"op":"subscribe","channel":channel,"presence":true,"info":{"nick":nick}}),
    )
    .await;
    let sub = recv_op(&mut ws, &["subscribed"]).await;
    assert_eq!(sub["presence"], true, "{sub}");
    let snap = recv_op(&mut ws, &["presence"]).await;
    (ws, snap)
}

fn clients(list: &Value) -> BTreeSet<String> {
    list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["client"].as_str().unwrap().to_owned())
        .collect()
}

async fn rest_presence(addr: std::net::SocketAddr, channel: &str, query: &str) -> Value {
    let r = request(
        addr,
        "GET",
        &format!("/api/channels/{channel}/presence{query}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// Polls the REST presence until `want` holds, or panics after `WAIT`.
async fn wait_rest(
    addr: std::net::SocketAddr,
    channel: &str,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = rest_presence(addr, channel, "").await;
        if want(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "presence never became as wanted: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn ws_members_see_each_other_join_and_leave() {
    let hub = start(config()).await;
    let (mut ann, snap) = member(hub.addr, "room", "ann-1", "ann").await;
    assert_eq!(clients(&snap), BTreeSet::from(["ann-1".to_owned()]));
    assert_eq!(
        (snap["clients"].as_u64(), snap["users"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(snap["entries"][0]["info"], json!({"nick":"ann"}));

    let (mut bob, snap) = member(hub.addr, "room", "bob-1", "bob").await;
    assert_eq!(
        clients(&snap),
        BTreeSet::from(["ann-1".to_owned(), "bob-1".to_owned()])
    );
    let join = recv_op(&mut ann, &["join", "leave"]).await;
    assert_eq!(
        join,
        json!({"op":"join","channel":"room","client":"bob-1","info":{"nick":"bob"}})
    );

    // The `presence` op and REST agree.
    send(&mut ann, json!({"op":"presence","channel":"room","ref":9})).await;
    let mut op = recv_op(&mut ann, &["presence"]).await;
    assert_eq!(op["ref"], 9);
    op.as_object_mut().unwrap().remove("ref");
    op.as_object_mut().unwrap().remove("op");
    assert_eq!(op, rest_presence(hub.addr, "room", "").await);
    assert_eq!(op["clients"], 2);

    // A goodbye (close 1000) leaves at once, well before the grace period ends.
    let t = Instant::now();
    bob.close(CloseCode::NORMAL, "bye").await.unwrap();
    let leave = recv_op(&mut ann, &["join", "leave"]).await;
    assert_eq!(leave["op"], "leave");
    assert_eq!(leave["client"], "bob-1");
    assert!(
        t.elapsed() < Duration::from_millis(GRACE_MS),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        clients(&rest_presence(hub.addr, "room", "").await),
        BTreeSet::from(["ann-1".to_owned()])
    );

    // Unsubscribing leaves at once too.
    let (mut cy, _) = member(hub.addr, "room", "cy-1", "cy").await;
    assert_eq!(
        recv_op(&mut ann, &["join", "leave"]).await["client"],
        "cy-1"
    );
    send(&mut cy, json!({"op":"unsubscribe","channel":"room"})).await;
    let leave = recv_op(&mut ann, &["join", "leave"]).await;
    assert_eq!(
        (leave["op"].as_str(), leave["client"].as_str()),
        (Some("leave"), Some("cy-1"))
    );
}

#[tokio::test]
async fn a_reconnect_within_the_grace_period_does_not_flap() {
    let hub = start(config()).await;
    let (mut ann, _) = member(hub.addr, "g", "ann", "ann").await;
    let (bob, _) = member(hub.addr, "g", "bob", "bob").await;
    assert_eq!(recv_op(&mut ann, &["join"]).await["client"], "bob");

    // The connection breaks (no close handshake): bob is still listed during the grace
    // period, and his reconnect with the same id takes the entry over silently.
    drop(bob);
    tokio::time::sleep(Duration::from_millis(GRACE_MS / 4)).await;
    assert_eq!(rest_presence(hub.addr, "g", "").await["clients"], 2);
    let (bob, snap) = member(hub.addr, "g", "bob", "bob").await;
    assert_eq!(snap["clients"], 2);
    quiet(
        &mut ann,
        &["join", "leave"],
        Duration::from_millis(GRACE_MS * 2),
    )
    .await;

    // Breaking again without coming back: one leave, after the grace period.
    let t = Instant::now();
    drop(bob);
    let leave = recv_op(&mut ann, &["join", "leave"]).await;
    assert_eq!(
        (leave["op"].as_str(), leave["client"].as_str()),
        (Some("leave"), Some("bob"))
    );
    assert!(
        t.elapsed() >= Duration::from_millis(GRACE_MS - 50),
        "{:?}",
        t.elapsed()
    );
    quiet(
        &mut ann,
        &["join", "leave"],
        Duration::from_millis(GRACE_MS * 2),
    )
    .await;
}

/// A connection the server drops (as it drops a slow consumer: the kill switch) leaves
/// once, after the grace period.
#[tokio::test]
async fn a_connection_killed_by_the_server_leaves_once() {
    let mut c = config();
    c.admin_api = true;
    let hub = start(c).await;
    let (mut ann, _) = member(hub.addr, "k", "ann", "ann").await;
    let (mut bob, _) = member(hub.addr, "k", "bob", "bob").await;
    assert_eq!(recv_op(&mut ann, &["join"]).await["client"], "bob");
    let bob_conn = request(hub.addr, "GET", "/api/admin/connections", &[], b"")
        .await
        .json()["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .max()
        .unwrap();
    let t = Instant::now();
    let r = request(
        hub.addr,
        "POST",
        &format!("/api/admin/disconnect?id={bob_conn}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.json()["disconnected"], 1);
    // Bob's socket is dropped without a close handshake.
    let end = tokio::time::timeout(WAIT, bob.recv())
        .await
        .expect("bob still connected");
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
    let leave = recv_op(&mut ann, &["join", "leave"]).await;
    assert_eq!(
        (leave["op"].as_str(), leave["client"].as_str()),
        (Some("leave"), Some("bob"))
    );
    assert!(
        t.elapsed() >= Duration::from_millis(GRACE_MS - 50),
        "{:?}",
        t.elapsed()
    );
    quiet(
        &mut ann,
        &["join", "leave"],
        Duration::from_millis(GRACE_MS * 2),
    )
    .await;
}

#[tokio::test]
async fn chat_room_sse_and_poll_are_in_presence_too() {
    let hub = start(config()).await;
    let (mut ann, _) = member(hub.addr, "mix", "ann", "ann").await;

    // The plain chat room with ?presence=1: a snapshot text, then join/leave texts; its own
    // messages stay plain text.
    let mut room = connect(hub.addr, "/ws/mix?presence=1&client=room-1&info=%22rita%22").await;
    let snap = recv_json(&mut room).await;
    assert_eq!(snap["event"], "presence");
    assert_eq!(
        clients(&snap),
        BTreeSet::from(["ann".to_owned(), "room-1".to_owned()])
    );
    let join = recv_op(&mut ann, &["join"]).await;
    assert_eq!(
        (join["client"].as_str(), join["info"].as_str()),
        (Some("room-1"), Some("rita"))
    );

    // SSE with ?presence=1: `event: presence`, then join/leave, none with an id.
    let mut sse = HttpStream::open(
        hub.addr,
        "GET",
        "/sse/mix?presence=1&client=sse-1",
        &[],
        b"",
    )
    .await;
    let first = sse.next_event().await.unwrap();
    assert_eq!(first.event.as_deref(), Some("presence"));
    assert_eq!(first.id, None);
    let snap: Value = serde_json::from_str(first.data.as_deref().unwrap()).unwrap();
    assert_eq!(snap["clients"], 3);
    assert_eq!(recv_op(&mut ann, &["join"]).await["client"], "sse-1");
    assert_eq!(recv_op(&mut room, &["join"]).await["client"], "sse-1");

    // A long poll with a client id is present while it waits and for the grace period
    // after; ?presence=1 puts the list into the answer.
    let poll = request(
        hub.addr,
        "GET",
        "/poll/mix?timeout=0&client=poll-1&presence=1",
        &[],
        b"",
    )
    .await;
    let body = poll.json();
    assert_eq!(body["presence"]["clients"], 4, "{body}");
    assert!(clients(&body["presence"]).contains("poll-1"));
    assert_eq!(recv_op(&mut ann, &["join"]).await["client"], "poll-1");
    let sse_join = sse.next_event().await.unwrap();
    assert_eq!(sse_join.event.as_deref(), Some("join"));
    assert_eq!(sse_join.id, None);
    // An anonymous poll is not in presence.
    request(hub.addr, "GET", "/poll/mix?timeout=0", &[], b"").await;
    assert_eq!(rest_presence(hub.addr, "mix", "").await["clients"], 4);
    // The poller does not come back: it leaves after the grace period.
    let leave = recv_op(&mut ann, &["join", "leave"]).await;
    assert_eq!(
        (leave["op"].as_str(), leave["client"].as_str()),
        (Some("leave"), Some("poll-1"))
    );
    let sse_leave = sse.next_event().await.unwrap();
    assert_eq!(sse_leave.event.as_deref(), Some("leave"));
    assert_eq!(
        serde_json::from_str::<Value>(sse_leave.data.as_deref().unwrap()).unwrap()["client"],
        "poll-1"
    );

    // The room client says goodbye; the SSE stream is dropped (a broken connection).
    room.close(CloseCode::GOING_AWAY, "").await.unwrap();
    assert_eq!(recv_op(&mut ann, &["leave"]).await["client"], "room-1");
    drop(sse);
    assert_eq!(recv_op(&mut ann, &["leave"]).await["client"], "sse-1");
    assert_eq!(
        clients(&rest_presence(hub.addr, "mix", "").await),
        BTreeSet::from(["ann".to_owned()])
    );

    // /api/channels carries the counts.
    let list = request(hub.addr, "GET", "/api/channels", &[], b"")
        .await
        .json();
    let mix = list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mix")
        .unwrap()
        .clone();
    assert_eq!(mix["presence"], json!({"clients":1,"users":1}));
}

#[tokio::test]
async fn bad_presence_parameters_are_refused() {
    let hub = start(config()).await;
    let too_big = format!("/sse/x?info=%22{}%22", "a".repeat(300));
    for path in [
        "/sse/x?client=a%20b",
        "/poll/x?client=&info=%7B",
        too_big.as_str(),
        "/sse/x?presence=maybe",
    ] {
        let r = request(hub.addr, "GET", path, &[], b"").await;
        assert_eq!(
            r.status,
            400,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["error"]["code"], "invalid_parameter", "{path}");
    }
    let mut ws = connect(hub.addr, "/ws").await;
    send(
        &mut ws,
        json!({"op":"subscribe","channel":"x","info":"x".repeat(300)}),
    )
    .await;
    let err = recv_op(&mut ws, &["error"]).await;
    assert_eq!(err["code"], "invalid_parameter");
}

#[tokio::test]
async fn rules_turn_presence_and_events_off_per_pattern() {
    let mut c = config();
    c.presence.rules = vec![
        PresenceRule {
            pattern: "quiet-*".into(),
            enabled: None,
            events: Some(false),
        },
        PresenceRule {
            pattern: "off".into(),
            enabled: Some(false),
            events: None,
        },
    ];
    let hub = start(c).await;
    // Events off: listed, but no snapshot or join/leave frames.
    let mut ws = connect(hub.addr, "/ws?client=q").await;
    send(
        &mut ws,
        json!({"op":"subscribe","channel":"quiet-1","presence":true}),
    )
    .await;
    assert_eq!(recv_op(&mut ws, &["subscribed"]).await["presence"], false);
    assert_eq!(rest_presence(hub.addr, "quiet-1", "").await["clients"], 1);
    // Presence off: nobody is listed, and reading it is refused.
    send(
        &mut ws,
        json!({"op":"subscribe","channel":"off","presence":true}),
    )
    .await;
    assert_eq!(recv_op(&mut ws, &["subscribed"]).await["presence"], false);
    let r = request(hub.addr, "GET", "/api/channels/off/presence", &[], b"").await;
    assert_eq!(r.status, 400);
    send(&mut ws, json!({"op":"presence","channel":"off"})).await;
    assert_eq!(
        recv_op(&mut ws, &["error"]).await["code"],
        "invalid_parameter"
    );
    quiet(
        &mut ws,
        &["presence", "join", "leave"],
        Duration::from_millis(200),
    )
    .await;
}

#[tokio::test]
async fn with_auth_the_user_is_the_subject_and_reading_needs_subscribe_rights() {
    const SECRET: &str = "a secret of sixteen+ bytes";
    let mut c = config();
    c.auth = Some(AuthConfig {
        jwt_secret: SECRET.into(),
    });
    let hub = start(c).await;
    let key = JwtKey::new(SECRET.as_bytes());
    let token = |sub: &str, subscribe: &[&str]| {
        key.sign(&Claims {
            sub: Some(sub.into()),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            ..Claims::default()
        })
    };
    let ann = token("ann", &["team"]);
    let eve = token("eve", &["team"]);
    let other = token("olga", &["lobby"]);
    let mut a = connect(hub.addr, &format!("/ws?client=x&token={ann}")).await;
    send(
        &mut a,
        json!({"op":"subscribe","channel":"team","presence":true}),
    )
    .await;
    recv_op(&mut a, &["presence"]).await;
    // Eve asks for Ann's client id: she gets an id of her own, Ann's entry is untouched.
    let mut e = connect(hub.addr, &format!("/ws?client=x&token={eve}")).await;
    send(
        &mut e,
        json!({"op":"subscribe","channel":"team","presence":true}),
    )
    .await;
    let snap = recv_op(&mut e, &["presence"]).await;
    assert_eq!(
        (snap["clients"].as_u64(), snap["users"].as_u64()),
        (Some(2), Some(2))
    );
    let join = recv_op(&mut a, &["join"]).await;
    assert_eq!(join["user"], "eve");
    assert_ne!(join["client"], "x");
    let list = rest_presence(hub.addr, "team", &format!("?token={ann}")).await;
    let users: BTreeSet<_> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["user"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(users, BTreeSet::from(["ann".to_owned(), "eve".to_owned()]));
    drop(e);
    assert_eq!(recv_op(&mut a, &["leave"]).await["user"], "eve");
    assert_eq!(
        rest_presence(hub.addr, "team", &format!("?token={ann}")).await["entries"][0]["client"],
        "x"
    );

    // No token, or a token without subscribe rights on the channel: refused.
    let r = request(hub.addr, "GET", "/api/channels/team/presence", &[], b"").await;
    assert_eq!(r.status, 401);
    let r = request(
        hub.addr,
        "GET",
        &format!("/api/channels/team/presence?token={other}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 403);
    let mut o = connect(hub.addr, &format!("/ws?token={other}")).await;
    send(&mut o, json!({"op":"presence","channel":"team"})).await;
    assert_eq!(recv_op(&mut o, &["error"]).await["code"], "forbidden");
}

#[tokio::test]
async fn counts_hold_at_ten_thousand_without_listing_them_all() {
    let hub = start(config()).await;
    let chan = ChannelName::new("big").unwrap();
    let mut guards = Vec::new();
    for i in 0..10_000 {
        let entry = PresenceEntry {
            client: ClientId::new(&format!("m{i:05}")).unwrap(),
            user: Some(Arc::from(format!("u{}", i % 2500))),
            info: None,
        };
        guards.push(hub.hub.join_presence(&chan, entry).await.unwrap());
    }
    let t = Instant::now();
    let list = rest_presence(hub.addr, "big", "").await;
    let took = t.elapsed();
    assert_eq!(
        (list["clients"].as_u64(), list["users"].as_u64()),
        (Some(10_000), Some(2500))
    );
    assert_eq!(list["entries"].as_array().unwrap().len(), 100);
    assert_eq!(list["truncated"], true);
    assert_eq!(list["entries"][0]["client"], "m00000");
    // A smaller limit is honoured, a larger one capped.
    assert_eq!(
        rest_presence(hub.addr, "big", "?limit=5").await["entries"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        rest_presence(hub.addr, "big", "?limit=100000").await["entries"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    // A /ws watcher gets the counts and a capped snapshot.
    let (mut ws, snap) = member(hub.addr, "big", "watcher", "w").await;
    assert_eq!(snap["clients"], 10_001);
    assert_eq!(snap["entries"].as_array().unwrap().len(), 100);
    // Everyone leaves at once (a goodbye each): the watcher sees 10 000 leaves or, if it
    // fell behind, fresh snapshots; either way it ends with only itself.
    for g in guards.drain(..) {
        g.leave();
    }
    loop {
        let v = recv_op(&mut ws, &["presence", "leave"]).await;
        if v["op"] == "presence" && v["clients"] == 1 {
            break;
        }
        if v["op"] == "leave" && v["client"] == "m09999" {
            break;
        }
    }
    assert_eq!(
        clients(&rest_presence(hub.addr, "big", "").await),
        BTreeSet::from(["watcher".to_owned()])
    );
    eprintln!("REST presence of 10 000 members: {took:?}");
}

/// 500 clients join and leave at random over `/ws`, some saying goodbye and some just
/// dropping their connection, some reconnecting with the same id; when it settles,
/// presence is exactly the set of clients still connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_of_500_clients_ends_with_exactly_the_connected_set() {
    // Every client is on 127.0.0.1, and client frames are rate limited per address too.
    let mut c = config();
    c.rate_limit.messages_per_second = 0.0;
    let hub = start(c).await;
    let addr = hub.addr;
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut open: Vec<Option<Client>> = (0..500).map(|_| None).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut steps = 0;
    // 500 joins in random order, interleaved with 1000 random leaves/rejoins.
    let mut order: Vec<usize> = (0..500).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut joins = order.into_iter();
    while steps < 1500 && Instant::now() < deadline {
        steps += 1;
        let i = match joins.next() {
            Some(i) => i,
            None => rng.random_range(0..500),
        };
        match open[i].take() {
            None => {
                let mut ws = connect(addr, &format!("/ws?client=c{i}")).await;
                send(&mut ws, json!({"op":"subscribe","channel":"churn"})).await;
                recv_op(&mut ws, &["subscribed"]).await;
                open[i] = Some(ws);
            }
            Some(mut ws) => {
                if rng.random_bool(0.5) {
                    ws.close(CloseCode::NORMAL, "").await.unwrap();
                    // Read the server's close so the goodbye has landed.
                    let _ = tokio::time::timeout(WAIT, ws.recv()).await;
                } else {
                    drop(ws);
                }
            }
        }
    }
    assert!(
        steps >= 1500,
        "churn did not finish in time ({steps} steps)"
    );
    let want: BTreeSet<String> = open
        .iter()
        .enumerate()
        .filter(|(_, ws)| ws.is_some())
        .map(|(i, _)| format!("c{i}"))
        .collect();
    // Dropped connections leave after the grace period; then presence is the open set.
    tokio::time::sleep(Duration::from_millis(GRACE_MS)).await;
    let settled = wait_rest(addr, "churn", |v| {
        v["clients"].as_u64() == Some(want.len() as u64)
    })
    .await;
    let mut listed = BTreeSet::new();
    // The list is capped at 100: read it through the in-process hub without the cap.
    let full = hub
        .hub
        .presence(&ChannelName::new("churn").unwrap(), usize::MAX)
        .await
        .unwrap();
    for e in &full.entries {
        listed.insert(e.client.as_str().to_owned());
    }
    assert_eq!(listed, want, "{settled}");
    // And it stays so.
    tokio::time::sleep(Duration::from_millis(GRACE_MS * 2)).await;
    assert_eq!(
        rest_presence(addr, "churn", "").await["clients"].as_u64(),
        Some(want.len() as u64)
    );
    eprintln!("churn: {steps} steps, {} connected at the end", want.len());
}

/// The presence store contract, for any [`PresenceStore`]: a shared store's test calls
/// these with two stores on one backend.
mod contract {
    use super::*;
    use switchboard_hub::broker::{PresenceUpdate, PresenceWatch};
    use switchboard_hub::PresenceGuard;

    fn entry(c: &str, user: Option<&str>) -> PresenceEntry {
        PresenceEntry {
            client: ClientId::new(c).unwrap(),
            user: user.map(Arc::from),
            info: None,
        }
    }

    async fn join(
        store: &Arc<dyn PresenceStore>,
        ch: &ChannelName,
        e: PresenceEntry,
    ) -> PresenceGuard {
        let key = store.join(ch.clone(), e).await.unwrap();
        PresenceGuard::new(Arc::clone(store), ch.clone(), key)
    }

    async fn next(w: &mut PresenceWatch) -> (String, String) {
        match tokio::time::timeout(WAIT, w.next())
            .await
            .expect("no presence event")
        {
            Some(PresenceUpdate::Event(ev)) => {
                (ev.kind().to_owned(), ev.entry().client.to_string())
            }
            other => panic!("{other:?}"),
        }
    }

    async fn none_for(w: &mut PresenceWatch, d: Duration) {
        if let Ok(u) = tokio::time::timeout(d, w.next()).await {
            panic!("unexpected {u:?}");
        }
    }

    /// `a` and `b` are two nodes' stores on one backend (the same store for a local one);
    /// both keep entries `grace` after their last session.
    pub(crate) async fn run(a: Arc<dyn PresenceStore>, b: Arc<dyn PresenceStore>, grace: Duration) {
        let ch = ChannelName::new("contract").unwrap();
        let (snap, mut wa) = a.watch(ch.clone(), 10).await.unwrap();
        assert_eq!(snap.counts.clients, 0);
        let (_, mut wb) = b.watch(ch.clone(), 10).await.unwrap();

        let g1 = join(&a, &ch, entry("one", Some("u1"))).await;
        assert_eq!(next(&mut wa).await, ("join".into(), "one".into()));
        assert_eq!(next(&mut wb).await, ("join".into(), "one".into()));
        let g2 = join(&b, &ch, entry("two", Some("u1"))).await;
        assert_eq!(next(&mut wa).await, ("join".into(), "two".into()));
        assert_eq!(next(&mut wb).await, ("join".into(), "two".into()));
        for s in [&a, &b] {
            let l = s.list(ch.clone(), 1).await.unwrap();
            assert_eq!(
                (
                    l.counts.clients,
                    l.counts.users,
                    l.entries.len(),
                    l.truncated
                ),
                (2, 1, 1, true)
            );
            assert_eq!(s.counts(vec![ch.clone()]).await.unwrap()[0].clients, 2);
        }

        // A second session of "one" and the end of the first: nothing happens.
        let g1b = join(&a, &ch, entry("one", Some("u1"))).await;
        drop(g1);
        none_for(&mut wb, grace * 2).await;
        // A goodbye leaves at once, exactly once, seen by both.
        g1b.leave();
        assert_eq!(next(&mut wa).await, ("leave".into(), "one".into()));
        assert_eq!(next(&mut wb).await, ("leave".into(), "one".into()));
        // A dropped session leaves after the grace period; a return within it is silent.
        drop(g2);
        tokio::time::sleep(grace / 3).await;
        let g2b = join(&b, &ch, entry("two", Some("u1"))).await;
        none_for(&mut wa, grace * 2).await;
        let t = Instant::now();
        drop(g2b);
        assert_eq!(next(&mut wa).await, ("leave".into(), "two".into()));
        assert!(t.elapsed() + Duration::from_millis(50) >= grace);
        assert_eq!(next(&mut wb).await, ("leave".into(), "two".into()));
        none_for(&mut wa, grace).await;
        assert_eq!(a.list(ch.clone(), 10).await.unwrap().counts.clients, 0);

        // Shutdown lets a node's entries leave at once.
        let g3 = join(&a, &ch, entry("three", None)).await;
        assert_eq!(next(&mut wb).await, ("join".into(), "three".into()));
        a.shutdown().await;
        assert_eq!(next(&mut wb).await, ("leave".into(), "three".into()));
        drop(g3);
        none_for(&mut wb, grace * 2).await;
    }

    /// A throwaway `redis-server` on a free loopback port, killed (by PID) on drop.
    struct RedisServer {
        child: std::process::Child,
        url: String,
    }

    impl RedisServer {
        async fn start() -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is needed for the Redis presence contract (apt-get install redis-server)");
            let deadline = Instant::now() + WAIT;
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                assert!(
                    Instant::now() < deadline,
                    "redis-server did not listen on {port}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Self {
                child,
                url: format!("redis://127.0.0.1:{port}"),
            }
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn redis_store(url: &str, grace: Duration, refresh: Duration) -> Arc<dyn PresenceStore> {
        let settings = switchboard_hub::PresenceSettings {
            grace,
            queue_size: 64,
            refresh,
        };
        switchboard_hub::broker::RedisPresence::new(url, "t:", settings).unwrap()
    }

    #[tokio::test]
    async fn redis_stores_on_two_nodes() {
        let redis = RedisServer::start().await;
        let grace = Duration::from_millis(300);
        let refresh = Duration::from_secs(10);
        let a = redis_store(&redis.url, grace, refresh);
        let b = redis_store(&redis.url, grace, refresh);
        run(a, b, grace).await;
    }

    /// A node that stops refreshing (killed: its store is just forgotten, no leave is
    /// written) loses its entries on the other node within 2.5 refresh intervals, once.
    #[tokio::test]
    async fn redis_entries_of_a_dead_node_expire() {
        let redis = RedisServer::start().await;
        let grace = Duration::from_millis(200);
        let refresh = Duration::from_millis(400);
        let ch = ChannelName::new("dead").unwrap();
        let survivor = redis_store(&redis.url, grace, refresh);
        let (_, mut w) = survivor.watch(ch.clone(), 10).await.unwrap();
        let _mine = join(&survivor, &ch, entry("alive", None)).await;
        assert_eq!(next(&mut w).await, ("join".into(), "alive".into()));
        let doomed = redis_store(&redis.url, grace, refresh);
        let key = doomed
            .join(ch.clone(), entry("ghost", Some("g")))
            .await
            .unwrap();
        assert_eq!(next(&mut w).await, ("join".into(), "ghost".into()));
        // The node dies: its tasks stop (the store is dropped without a release or a
        // shutdown), so nothing refreshes "ghost" any more.
        let t = Instant::now();
        std::mem::forget(key);
        drop(doomed);
        assert_eq!(next(&mut w).await, ("leave".into(), "ghost".into()));
        let took = t.elapsed();
        assert!(
            took <= refresh * 5 / 2 + Duration::from_millis(300),
            "{took:?}"
        );
        none_for(&mut w, refresh * 3).await;
        // The survivor's own entry is refreshed and stays.
        let l = survivor.list(ch.clone(), 10).await.unwrap();
        assert_eq!(
            l.entries
                .iter()
                .map(|e| e.client.to_string())
                .collect::<Vec<_>>(),
            ["alive"]
        );
        eprintln!("a dead node's entry left after {took:?} (refresh {refresh:?})");
    }

    /// Counts stay exact at 10 000 entries in Redis, and a list stays capped.
    #[tokio::test]
    async fn redis_counts_at_ten_thousand() {
        let redis = RedisServer::start().await;
        let store = redis_store(&redis.url, Duration::from_secs(5), Duration::from_secs(10));
        let ch = ChannelName::new("big").unwrap();
        let mut keys = Vec::new();
        for i in 0..10_000 {
            let e = entry(&format!("m{i:05}"), Some(&format!("u{}", i % 2500)));
            keys.push(store.join(ch.clone(), e).await.unwrap());
        }
        // The writer puts the joins into Redis in order; wait until all are there.
        let deadline = Instant::now() + WAIT * 2;
        let counts = loop {
            let c = store.counts(vec![ch.clone()]).await.unwrap()[0];
            if c.clients == 10_000 || Instant::now() > deadline {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!((counts.clients, counts.users), (10_000, 2500));
        let t = Instant::now();
        let l = store.list(ch.clone(), 100).await.unwrap();
        let took = t.elapsed();
        assert_eq!((l.entries.len(), l.truncated), (100, true));
        assert_eq!(l.entries[0].client.as_str(), "m00000");
        eprintln!("Redis presence list of 10 000 members: {took:?}");
        drop(keys);
    }

    /// A node that shuts down lets its clients leave at once on the other nodes, without
    /// waiting for the grace period (10 s here) or the expiry.
    #[tokio::test]
    async fn redis_a_node_shutting_down_lets_its_clients_leave_at_once() {
        let redis = RedisServer::start().await;
        let node = |url: &str| {
            let mut c = config();
            c.presence.grace_ms = 10_000;
            c.broker.kind = switchboard_hub::config::BrokerKind::Redis;
            c.broker.url = url.to_owned();
            c
        };
        let start_node = |config: HubConfig| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = switchboard_hub::HubServer::connect(config).await.unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(server.serve(listener, async move {
                let _ = rx.await;
            }));
            (addr, tx, task)
        };
        let (a, stop_a, task_a) = start_node(node(&redis.url)).await;
        let (b, _stop_b, _task_b) = start_node(node(&redis.url)).await;
        let (mut watcher, _) = member(b, "bye", "w", "w").await;
        let (_leaver, snap) = member(a, "bye", "x", "x").await;
        assert_eq!(snap["clients"], 2, "{snap}");
        assert_eq!(recv_op(&mut watcher, &["join"]).await["client"], "x");
        let t = Instant::now();
        stop_a.send(()).unwrap();
        let leave = recv_op(&mut watcher, &["join", "leave"]).await;
        assert_eq!(
            (leave["op"].as_str(), leave["client"].as_str()),
            (Some("leave"), Some("x"))
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        tokio::time::timeout(WAIT, task_a)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn memory_store() {
        let grace = Duration::from_millis(200);
        let store: Arc<dyn PresenceStore> = MemoryPresence::new(grace, 64);
        run(Arc::clone(&store), store, grace).await;
    }
}
