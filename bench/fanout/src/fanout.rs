//! The measurement: subscribers count what they receive, the publisher keeps a bounded
//! window of messages in flight and times each round.
//!
//! Every subscriber connection receives the channel's messages in order, so its k-th data
//! frame is message k of the run: a subscriber only counts frames, and `delivered[k]` counts
//! the subscribers that have message k. Message k is *complete* once every subscriber has
//! it, which implies every earlier message is complete too. The publisher sends message k
//! only once message k - window is complete, so no subscriber is ever more than `window`
//! messages behind and no server queue ever overflows: what is measured is the sustained
//! rate at which the server gets every message to every subscriber.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use switchboard_loadgen::procstat;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, Notify};

use crate::conn::Joined;
use crate::frames;
use crate::target::{Incoming, Target};

/// What the subscribers share with the publisher (one thread: plain cells).
pub(crate) struct Shared {
    subscribers: usize,
    /// Per message number (from 1): how many subscribers have it.
    delivered: Vec<Cell<u32>>,
    /// The highest message number every subscriber has.
    completed: Cell<usize>,
    /// Data frames received, all subscribers together.
    deliveries: Cell<u64>,
    /// Subscriber connections that ended (closed by the server, or broken).
    ended: Cell<usize>,
    first_error: RefCell<Option<String>>,
    progress: Notify,
    /// When message k was written by the publisher (for publish-to-delivery latency).
    sent_at: RefCell<Vec<Option<Instant>>>,
    /// Latency samples, in microseconds, of subscribers marked remote (another node than the
    /// publisher's, in a multi-node run); only while `sampling` is on.
    latencies: RefCell<Vec<u32>>,
    sampling: Cell<bool>,
}

impl Shared {
    /// State for `subscribers` connections and at most `messages` messages in the run.
    pub(crate) fn new(subscribers: usize, messages: usize) -> Rc<Self> {
        Rc::new(Self {
            subscribers,
            delivered: (0..=messages).map(|_| Cell::new(0)).collect(),
            completed: Cell::new(0),
            deliveries: Cell::new(0),
            ended: Cell::new(0),
            first_error: RefCell::new(None),
            progress: Notify::new(),
            sent_at: RefCell::new(vec![None; messages + 1]),
            latencies: RefCell::new(Vec::new()),
            sampling: Cell::new(false),
        })
    }

    fn sample(&self, k: usize) {
        if !self.sampling.get() {
            return;
        }
        if let Some(Some(t)) = self.sent_at.borrow().get(k) {
            let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
            self.latencies.borrow_mut().push(us);
        }
    }

    /// Starts (or stops) collecting latency samples, dropping those collected so far.
    pub(crate) fn sample_latency(&self, on: bool) {
        self.sampling.set(on);
        self.latencies.borrow_mut().clear();
    }

    /// `(p50, p99, samples)` of the latencies collected, in microseconds.
    pub(crate) fn latency_percentiles(&self) -> Option<(u32, u32, usize)> {
        let mut v = self.latencies.borrow().clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some((at(0.50), at(0.99), v.len()))
    }

    fn delivered(&self, k: usize) {
        self.deliveries.set(self.deliveries.get() + 1);
        if let Some(cell) = self.delivered.get(k) {
            let d = cell.get() + 1;
            cell.set(d);
            if d as usize == self.subscribers && k > self.completed.get() {
                self.completed.set(k);
                self.progress.notify_one();
            }
        }
    }

    fn ended(&self, error: Option<String>) {
        self.ended.set(self.ended.get() + 1);
        if let Some(e) = error {
            self.first_error.borrow_mut().get_or_insert(e);
        }
        self.progress.notify_one();
    }

    /// Total data frames received so far.
    pub(crate) fn deliveries(&self) -> u64 {
        self.deliveries.get()
    }

    /// Subscriber connections that ended, and the first error among them.
    pub(crate) fn ended_connections(&self) -> (usize, Option<String>) {
        (self.ended.get(), self.first_error.borrow().clone())
    }
}

/// Reads one subscriber connection until it ends, counting data frames; a `remote` one
/// (on another node than the publisher) also samples publish-to-delivery latency.
pub(crate) async fn subscriber(target: Target, joined: Joined, shared: Rc<Shared>, remote: bool) {
    let Joined {
        mut stream,
        leftover,
    } = joined;
    let mut buf = leftover;
    buf.reserve(64 * 1024);
    let mut count = 0usize;
    let result: anyhow::Result<&'static str> = async {
        loop {
            let mut used = 0;
            while let Some((frame, n)) = frames::parse(&buf[used..])? {
                used += n;
                match target.classify(&frame) {
                    Incoming::Data => {
                        count += 1;
                        if remote {
                            shared.sample(count);
                        }
                        shared.delivered(count);
                    }
                    Incoming::Reply(bytes) => stream.write_all(&bytes).await?,
                    Incoming::Ignore => {}
                    Incoming::Close => return Ok("close frame"),
                }
            }
            buf.drain(..used);
            if buf.capacity() - buf.len() < 16 * 1024 {
                buf.reserve(64 * 1024);
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok("end of stream");
            }
        }
    }
    .await;
    shared.ended(Some(match result {
        Ok(why) => format!("a subscriber's connection ended ({why}) after {count} messages"),
        Err(e) => format!("a subscriber's connection failed after {count} messages: {e}"),
    }));
}

/// One measured round.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Round {
    /// Messages published in the round.
    pub(crate) messages: usize,
    /// Data frames received by all subscribers during the round.
    pub(crate) deliveries: u64,
    /// From the first publish to the moment the last message reached every subscriber.
    pub(crate) secs: f64,
    /// `deliveries / secs`.
    pub(crate) deliveries_per_sec: f64,
    /// Whether every message reached every subscriber before the round's time limit.
    pub(crate) complete: bool,
    /// CPU seconds the load client used during the round.
    pub(crate) client_cpu_secs: f64,
    /// CPU seconds the server used during the round (with `--server-pid`).
    pub(crate) server_cpu_secs: Option<f64>,
}

/// The publisher: one connection, its reader drains acks and answers pings.
pub(crate) struct Publisher {
    writer: Rc<Mutex<OwnedWriteHalf>>,
    frame: Vec<u8>,
    published: usize,
}

impl Publisher {
    /// Takes over a joined connection; `frame` is the publish frame sent for every message.
    pub(crate) fn new(target: Target, joined: Joined, frame: Vec<u8>) -> Self {
        let (mut reader, writer) = joined.stream.into_split();
        let writer = Rc::new(Mutex::new(writer));
        let replies = Rc::clone(&writer);
        let mut buf = joined.leftover;
        tokio::task::spawn_local(async move {
            loop {
                let mut used = 0;
                while let Ok(Some((frame, n))) = frames::parse(&buf[used..]) {
                    used += n;
                    if let Incoming::Reply(bytes) = target.classify(&frame) {
                        if replies.lock().await.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                }
                buf.drain(..used);
                buf.reserve(16 * 1024);
                match reader.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        Self {
            writer,
            frame,
            published: 0,
        }
    }

    /// Messages published so far.
    pub(crate) fn published(&self) -> usize {
        self.published
    }

    /// Publishes `messages` messages with at most `window` incomplete at any time; gives up
    /// at `limit`.
    pub(crate) async fn round(
        &mut self,
        shared: &Shared,
        messages: usize,
        window: usize,
        limit: Duration,
        server_pid: Option<u32>,
    ) -> anyhow::Result<Round> {
        let end = self.published + messages;
        anyhow::ensure!(
            end < shared.delivered.len(),
            "more messages than the run was sized for"
        );
        let mut batch = Vec::with_capacity(self.frame.len() * window);
        let cpu0 = procstat::own_cpu_time();
        let server0 = server_pid.and_then(procstat::process_cpu_time);
        let d0 = shared.deliveries();
        let t0 = Instant::now();
        let deadline = tokio::time::Instant::from_std(t0 + limit);
        let complete = loop {
            let completed = shared.completed.get();
            if completed >= end {
                break true;
            }
            if shared.ended.get() > 0 {
                break false;
            }
            let allowed = (completed + window).min(end).saturating_sub(self.published);
            if allowed > 0 {
                batch.clear();
                for _ in 0..allowed {
                    batch.extend_from_slice(&self.frame);
                }
                let now = Instant::now();
                {
                    let mut sent = shared.sent_at.borrow_mut();
                    for k in self.published + 1..=self.published + allowed {
                        if let Some(slot) = sent.get_mut(k) {
                            *slot = Some(now);
                        }
                    }
                }
                self.writer.lock().await.write_all(&batch).await?;
                self.published += allowed;
                continue;
            }
            if tokio::time::timeout_at(deadline, shared.progress.notified())
                .await
                .is_err()
            {
                break false;
            }
        };
        let secs = t0.elapsed().as_secs_f64();
        let deliveries = shared.deliveries() - d0;
        Ok(Round {
            messages,
            deliveries,
            secs,
            deliveries_per_sec: deliveries as f64 / secs,
            complete,
            client_cpu_secs: procstat::own_cpu_time().since(cpu0).total().as_secs_f64(),
            server_cpu_secs: server0.and_then(|s0| {
                let s1 = procstat::process_cpu_time(server_pid?)?;
                Some(s1.since(s0).total().as_secs_f64())
            }),
        })
    }
}
