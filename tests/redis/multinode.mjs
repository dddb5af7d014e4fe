// tests/redis/multinode.mjs - three `switchboard serve --redis` nodes on one real redis-server.
//
// usage: node multinode.mjs --bin SWITCHBOARD_BIN --logs DIR [--phase fanout|chaos|all]
//
// fanout: subscribers on every node over /ws, /ws/{channel}, SSE and long polling; messages
//         published on every node over REST, /ws and /ws/{channel}. Every subscriber must see
//         the channel's whole history (read back over REST afterwards) exactly once, in id
//         order.
// chaos:  publishers on all three nodes (REST and /ws, acknowledged publishes recorded) while
//         subscribers on every node (/ws, SSE, long polling) log everything; meanwhile
//         CLIENT KILL TYPE pubsub, redis SIGKILL + restart with its fsynced append-only file,
//         one hub node SIGKILLed (its subscribers move to another node with their last
//         cursor), redis SIGKILL + restart without persistence. The checker then requires,
//         for every subscriber: ids consecutive within an epoch except across an explicit
//         reset; every acknowledged publish delivered with its payload, or inside the span
//         of a reset; a reset (epoch_changed) after the restart without persistence; and no
//         new epoch from the restart with persistence.
//
// Starts and stops everything itself (by PID), on free loopback ports; every wait is bounded.
// Prints PASS/FAIL lines; exit status 1 if any check failed.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { parseArgs, Reporter, requireInterop, sleep, until } from "../hub/lib.mjs";

const WebSocket = requireInterop("ws");
const args = parseArgs();
const BIN = args.bin;
const LOGS = args.logs ?? fs.mkdtempSync("/tmp/switchboard-redis-");
const PHASE = args.phase ?? "all";
fs.mkdirSync(LOGS, { recursive: true });
const r = new Reporter("redis");

const children = new Set();
function launch(name, cmd, argv, env = {}) {
  const out = fs.openSync(path.join(LOGS, `${name}.log`), "a");
  const child = spawn(cmd, argv, { stdio: ["ignore", out, out], env: { ...process.env, ...env } });
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}
function killHard(child) {
  if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function portOpen(port) {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

/** One raw Redis command over RESP (no redis-cli needed). */
async function redisCommand(port, ...parts) {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, "127.0.0.1");
    let buf = "";
    c.setTimeout(3000, () => {
      c.destroy();
      reject(new Error("redis command timed out"));
    });
    c.on("data", (d) => {
      buf += d;
      if (buf.endsWith("\r\n")) {
        c.destroy();
        resolve(buf);
      }
    });
    c.on("error", reject);
    c.write(`*${parts.length}\r\n` + parts.map((p) => `$${Buffer.byteLength(String(p))}\r\n${p}\r\n`).join(""));
  });
}

class Redis {
  constructor(port) {
    this.port = port;
    this.dir = fs.mkdtempSync("/tmp/switchboard-redis-aof-");
    this.child = null;
  }
  async start(persistent) {
    const argv = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--dir", this.dir];
    argv.push(...(persistent ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]));
    if (!persistent) fs.rmSync(path.join(this.dir, "appendonlydir"), { recursive: true, force: true });
    this.child = launch("redis", "redis-server", argv);
    await until(async () => (await portOpen(this.port)) && (await redisCommand(this.port, "PING").catch(() => "")).startsWith("+PONG"), 10000, "redis-server");
  }
  kill() {
    killHard(this.child);
  }
}

class Node {
  constructor(name, redisPort) {
    this.name = name;
    this.redisPort = redisPort;
  }
  async start() {
    this.port = this.port ?? (await freePort());
    this.url = `http://127.0.0.1:${this.port}`;
    const toml = path.join(LOGS, `${this.name}.toml`);
    fs.writeFileSync(
      toml,
      [
        "admin_api = true",
        "[rate_limit]",
        "messages_per_second = 0.0",
        "[history]",
        "max_messages = 100000",
        "[limits]",
        "max_connections_per_ip = 100000",
        "[broker]",
        "check_interval_ms = 500",
      ].join("\n") + "\n",
    );
    this.child = launch(this.name, BIN, ["serve", "--listen", `127.0.0.1:${this.port}`, "--config", toml, "--redis", `redis://127.0.0.1:${this.redisPort}`], { RUST_LOG: "info" });
    await until(() => portOpen(this.port), 20000, `node ${this.name}`);
  }
  kill() {
    killHard(this.child);
  }
}

async function rest(base, method, p, body) {
  const res = await fetch(base + p, {
    method,
    body,
    headers: body !== undefined ? { "content-type": "text/plain; charset=utf-8" } : {},
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

// --- subscribers: each keeps a log of {t:"m",epoch,id,data} / {t:"reset",epoch,last} -----

/** Cursor text "E:N" → {epoch, id}. */
const parseCursor = (c) => {
  const [e, i] = String(c).split(":");
  return { epoch: Number(e), id: Number(i) };
};

class Subscriber {
  constructor(kind, nodes, channel, homeIndex) {
    this.kind = kind;
    this.nodes = nodes;
    this.channel = channel;
    this.home = homeIndex;
    this.name = `${kind}@${nodes[homeIndex].name}`;
    this.log = [];
    this.cursor = null; // {epoch, id} of the last thing seen
    this.stopped = false;
    this.reconnects = 0;
    this.moves = 0;
  }
  /** The node to (re)connect to: home while it is up, else the next one. */
  node(attempt) {
    return this.nodes[(this.home + this.moves) % this.nodes.length];
  }
  record(entry) {
    this.log.push(entry);
    if (entry.t === "m") this.cursor = { epoch: entry.epoch, id: entry.id };
    else this.cursor = { epoch: entry.epoch, id: entry.last };
  }
  since() {
    return this.cursor ? `${this.cursor.epoch}:${this.cursor.id}` : null;
  }
  async run() {
    while (!this.stopped) {
      const node = this.node();
      try {
        await this.session(node);
      } catch (e) {
        /* connection refused or dropped: reconnect below */
      }
      if (this.stopped) break;
      this.reconnects += 1;
      if (!(await portOpen(node.port))) this.moves += 1; // the node is gone: move on
      await sleep(200);
    }
  }
  stop() {
    this.stopped = true;
    this.abort?.();
  }
}

class WsSubscriber extends Subscriber {
  session(node) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(node.url.replace("http", "ws") + "/ws");
      this.abort = () => ws.terminate();
      ws.on("open", () => {
        const cmd = { op: "subscribe", channel: this.channel };
        if (this.cursor) cmd.since = this.since();
        else cmd.since = 0;
        ws.send(JSON.stringify(cmd));
      });
      ws.on("message", (raw) => {
        const f = JSON.parse(raw.toString());
        if (f.op === "subscribed") this.epoch = f.epoch;
        else if (f.op === "message") this.record({ t: "m", epoch: this.epoch, id: f.id, data: f.data });
        else if (f.op === "reset") {
          this.epoch = f.epoch;
          this.record({ t: "reset", epoch: f.epoch, last: f.last, reason: f.reason });
        }
      });
      ws.on("close", resolve);
      ws.on("error", reject);
    });
  }
}

class SseSubscriber extends Subscriber {
  async session(node) {
    const ctrl = new AbortController();
    this.abort = () => ctrl.abort();
    const headers = {};
    if (this.cursor) headers["last-event-id"] = this.since();
    const q = this.cursor ? "" : "&since=0";
    const res = await fetch(`${node.url}/sse/${this.channel}?format=json${q}`, { headers, signal: ctrl.signal });
    if (!res.ok) throw new Error(`sse ${res.status}`);
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let event = "message",
          id = null,
          data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("id: ")) id = line.slice(4);
          else if (line.startsWith("data: ")) data.push(line.slice(6));
        }
        if (data.length === 0) continue;
        if (event === "message" && id) {
          const c = parseCursor(id);
          this.record({ t: "m", epoch: c.epoch, id: c.id, data: JSON.parse(data.join("\n")) });
        } else if (event === "reset") {
          const d = JSON.parse(data.join("\n"));
          this.record({ t: "reset", epoch: d.epoch, last: d.last, reason: d.reason });
        }
      }
    }
  }
}

class PollSubscriber extends Subscriber {
  async session(node) {
    for (;;) {
      if (this.stopped) return;
      const since = this.cursor ? this.since() : "0";
      const ctrl = new AbortController();
      this.abort = () => ctrl.abort();
      const res = await fetch(`${node.url}/poll/${this.channel}?since=${since}&timeout=2&limit=100`, { signal: ctrl.signal });
      const body = await res.json();
      if (!res.ok) {
        await sleep(200);
        continue;
      }
      const next = parseCursor(body.next);
      if (body.reset) this.record({ t: "reset", epoch: next.epoch, last: next.id, reason: body.reset.reason });
      for (const m of body.messages) this.record({ t: "m", epoch: body.epoch, id: m.id, data: m.data });
      if (!body.reset && body.messages.length === 0) this.cursor = next;
    }
  }
}

/** /ws/{channel}: plain text, no ids; the payload texts in arrival order. */
class ChatSubscriber extends Subscriber {
  session(node) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${node.url.replace("http", "ws")}/ws/${this.channel}?since=0`);
      this.ws = ws;
      this.abort = () => ws.terminate();
      ws.on("open", () => (this.open = true));
      ws.on("message", (raw) => this.log.push({ t: "text", data: raw.toString() }));
      ws.on("close", resolve);
      ws.on("error", reject);
    });
  }
}

// --- the checker ------------------------------------------------------------------------

/**
 * Checks one subscriber's log against the acknowledged publishes. Returns a list of
 * problems (empty: fine). `acked` maps "epoch:id" → payload.
 */
function checkLog(log, acked) {
  const problems = [];
  let pos = null; // {epoch, id}
  const seen = new Set();
  const spans = []; // resets: [{fromEpoch, fromId, toEpoch, toId}]
  for (const e of log) {
    if (e.t === "reset") {
      spans.push({ fromEpoch: pos?.epoch, fromId: pos?.id ?? 0, toEpoch: e.epoch, toId: e.last });
      pos = { epoch: e.epoch, id: e.last };
      continue;
    }
    const key = `${e.epoch}:${e.id}`;
    if (seen.has(key)) problems.push(`duplicate ${key}`);
    seen.add(key);
    if (pos && pos.epoch === e.epoch && e.id !== pos.id + 1) problems.push(`after ${pos.epoch}:${pos.id} came ${key} with no reset`);
    if (pos && pos.epoch !== e.epoch) problems.push(`epoch changed to ${key} with no reset`);
    if (acked.has(key) && JSON.stringify(acked.get(key)) !== JSON.stringify(e.data)) problems.push(`${key} has the wrong payload`);
    pos = { epoch: e.epoch, id: e.id };
  }
  const covered = (epoch, id) =>
    spans.some(
      (s) =>
        (s.fromEpoch === undefined && (epoch !== s.toEpoch || id <= s.toId)) ||
        (epoch === s.fromEpoch && id > s.fromId && (s.toEpoch !== s.fromEpoch || id <= s.toId)) ||
        (epoch === s.toEpoch && s.toEpoch !== s.fromEpoch && id <= s.toId),
    );
  let missing = 0,
    firstMissing = null;
  for (const key of acked.keys()) {
    if (seen.has(key)) continue;
    const c = parseCursor(key);
    if (!covered(c.epoch, c.id)) {
      missing += 1;
      firstMissing ??= key;
    }
  }
  if (missing) problems.push(`${missing} acknowledged publishes neither delivered nor covered by a reset (first ${firstMissing})`);
  return problems;
}

// --- phases -----------------------------------------------------------------------------

async function fanout(nodes) {
  const channel = `fan-${Date.now()}`;
  const subs = [];
  for (let i = 0; i < nodes.length; i++) {
    for (const K of [WsSubscriber, SseSubscriber, PollSubscriber, ChatSubscriber]) subs.push(new K(K.name.replace("Subscriber", "").toLowerCase(), nodes, channel, i));
  }
  const running = subs.map((s) => s.run());
  await sleep(1500); // every subscription confirmed on every node
  const PER = 20;
  const publishers = [];
  for (const node of nodes) {
    // REST
    publishers.push(
      (async () => {
        for (let i = 0; i < PER; i++) {
          const res = await rest(node.url, "POST", `/api/channels/${channel}/messages`, `rest-${node.name}-${i}`);
          if (res.status !== 200) throw new Error(`REST publish on ${node.name}: ${res.status} ${res.text}`);
        }
      })(),
    );
    // /ws publish with acks
    publishers.push(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(node.url.replace("http", "ws") + "/ws");
        let acks = 0;
        ws.on("open", () => {
          for (let i = 0; i < PER; i++) ws.send(JSON.stringify({ op: "publish", channel, data: `ws-${node.name}-${i}`, ref: i }));
        });
        ws.on("message", (raw) => {
          const f = JSON.parse(raw.toString());
          if (f.op === "error") reject(new Error(`/ws publish error ${raw}`));
          if (f.op === "ack" && ++acks === PER) {
            ws.close();
            resolve();
          }
        });
        ws.on("error", reject);
      }),
    );
    // /ws/{channel}: each text is published
    publishers.push(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`${node.url.replace("http", "ws")}/ws/${channel}`);
        let echoes = 0;
        ws.on("open", () => {
          for (let i = 0; i < PER; i++) ws.send(`chat-${node.name}-${i}`);
        });
        ws.on("message", (raw) => {
          if (raw.toString().startsWith(`chat-${node.name}-`) && ++echoes === PER) {
            ws.close();
            resolve();
          }
        });
        ws.on("error", reject);
      }),
    );
  }
  try {
    await Promise.all(publishers);
    r.report(true, `published ${PER * 3 * nodes.length} messages over REST, /ws and /ws/{channel} on all ${nodes.length} nodes`);
  } catch (e) {
    r.report(false, "publishing on every node over every transport", e.message);
  }
  const total = PER * 3 * nodes.length;
  const history = (await rest(nodes[0].url, "GET", `/api/channels/${channel}/messages?since=0&limit=1000`)).json;
  const expected = history.messages.map((m) => m.data);
  r.report(
    history.messages.length === total && history.messages.every((m, i) => m.id === i + 1),
    "the channel's history holds every message once, ids 1..N",
    `${history.messages.length} of ${total}`,
  );
  const complete = () => subs.every((s) => (s instanceof ChatSubscriber ? s.log.length : s.log.filter((e) => e.t === "m").length) >= total);
  await until(complete, 20000, "every subscriber to receive everything").catch(() => {});
  await sleep(500); // duplicates, if any, arrive too
  for (const s of subs) s.stop();
  for (const s of subs) {
    const got = s instanceof ChatSubscriber ? s.log.map((e) => JSON.stringify(e.data)) : s.log.filter((e) => e.t === "m").map((e) => JSON.stringify(e.data));
    const want = expected.map((d) => JSON.stringify(s instanceof ChatSubscriber ? d : d));
    // The chat room sends string payloads as their text.
    const gotNorm = s instanceof ChatSubscriber ? s.log.map((e) => e.data) : got;
    const wantNorm = s instanceof ChatSubscriber ? expected : want;
    const ok = gotNorm.length === wantNorm.length && gotNorm.every((d, i) => d === wantNorm[i]);
    const resets = s.log.filter((e) => e.t === "reset").length;
    r.report(ok && resets === 0, `${s.name} got all ${total} exactly once, in id order`, ok ? "" : `${gotNorm.length} received, first difference at ${gotNorm.findIndex((d, i) => d !== wantNorm[i])}`);
  }
  await Promise.race([Promise.all(running), sleep(3000)]);
}

async function chaos(nodes, redis) {
  const channel = `chaos-${Date.now()}`;
  const subs = [];
  for (let i = 0; i < nodes.length; i++) for (const K of [WsSubscriber, SseSubscriber, PollSubscriber]) subs.push(new K(K.name.replace("Subscriber", "").toLowerCase(), nodes, channel, i));
  const running = subs.map((s) => s.run());
  await sleep(1500);
  const acked = new Map(); // "epoch:id" → payload
  const ackEpochs = [];
  let stop = false,
    attempts = 0,
    refused = 0,
    rest503 = 0,
    wsRefusedWithRef = 0;
  const publisher = async (node, via, k) => {
    let ws = null,
      pending = new Map(),
      n = 0;
    while (!stop) {
      const data = `${via}-${node.name}-${k}-${n++}`;
      attempts += 1;
      try {
        let ack;
        if (via === "rest") {
          const res = await rest(node.url, "POST", `/api/channels/${channel}/messages`, data);
          if (res.status === 200) ack = res.json;
          else {
            refused += 1;
            if (res.status === 503 && res.json?.error?.code === "broker_unavailable") rest503 += 1;
          }
        } else {
          if (!ws || ws.readyState !== WebSocket.OPEN) {
            ws = new WebSocket(node.url.replace("http", "ws") + "/ws");
            ws.on("message", (raw) => {
              const f = JSON.parse(raw.toString());
              const p = pending.get(f.ref);
              if (p) {
                pending.delete(f.ref);
                p(f);
              }
            });
            ws.on("error", () => {});
            await new Promise((res, rej) => {
              ws.once("open", res);
              ws.once("error", rej);
              setTimeout(() => rej(new Error("open timeout")), 2000);
            });
          }
          const f = await new Promise((res, rej) => {
            pending.set(n, res);
            ws.send(JSON.stringify({ op: "publish", channel, data, ref: n }));
            setTimeout(() => rej(new Error("ack timeout")), 5000);
          });
          if (f.op === "ack") ack = f;
          else {
            refused += 1;
            // Found by its ref: the error answered this very publish.
            if (f.op === "error" && f.code === "broker_unavailable") wsRefusedWithRef += 1;
          }
        }
        if (ack) {
          acked.set(`${ack.epoch}:${ack.id}`, data);
          if (ackEpochs[ackEpochs.length - 1] !== ack.epoch) ackEpochs.push(ack.epoch);
        }
      } catch {
        refused += 1;
        ws?.terminate();
        ws = null;
        await sleep(100);
      }
      await sleep(15);
    }
    ws?.close();
  };
  const pubs = [];
  for (const node of nodes) for (const via of ["rest", "ws"]) pubs.push(publisher(node, via, 0));
  const step = async (what, fn) => {
    try {
      await fn();
      r.report(true, `chaos: ${what}`);
    } catch (e) {
      r.report(false, `chaos: ${what}`, e.message);
    }
  };
  await sleep(2000);
  await step("CLIENT KILL TYPE pubsub", async () => {
    const reply = await redisCommand(redis.port, "CLIENT", "KILL", "TYPE", "pubsub");
    if (!/^:[1-9]/.test(reply)) throw new Error(`reply ${reply.trim()}`);
  });
  await sleep(2500);
  const epochBeforePersistentRestart = ackEpochs[ackEpochs.length - 1];
  await step("redis SIGKILL and restart with its append-only file", async () => {
    redis.kill();
    await sleep(700);
    await redis.start(true);
  });
  await sleep(3000);
  await step("hub node C SIGKILLed while publishing (its subscribers move on)", async () => {
    nodes[2].kill();
  });
  await sleep(3000);
  const ackedBeforeLoss = acked.size;
  const tLoss = Date.now();
  await step("redis SIGKILL and restart without persistence", async () => {
    redis.kill();
    await sleep(700);
    await redis.start(false);
  });
  await sleep(4000);
  stop = true;
  await Promise.all(pubs);
  await sleep(3000); // let deliveries settle
  for (const s of subs) s.stop();
  await Promise.race([Promise.all(running), sleep(3000)]);

  r.report(acked.size > 100, `acknowledged publishes during chaos: ${acked.size} (${refused} refused or unanswered of ${attempts})`);
  r.report(rest503 > 0 && wsRefusedWithRef > 0, "while Redis was down, publishes were refused: REST 503 broker_unavailable, /ws error op carrying the publish's ref", `${rest503} REST, ${wsRefusedWithRef} /ws`);
  r.report(
    ackEpochs.length === 2 && ackEpochs[0] === epochBeforePersistentRestart,
    "the restart with persistence kept the epoch, the one without made a new one",
    `epochs in acknowledged order: ${ackEpochs.join(" → ")}`,
  );
  fs.writeFileSync(path.join(LOGS, "chaos-acked.json"), JSON.stringify([...acked]));
  for (const s of subs) {
    fs.writeFileSync(path.join(LOGS, `chaos-${s.name}.json`), JSON.stringify(s.log));
    const problems = checkLog(s.log, acked);
    const resetAfterLoss = s.log.some((e) => e.t === "reset" && e.reason === "epoch_changed");
    const msgs = s.log.filter((e) => e.t === "m").length;
    r.report(problems.length === 0, `${s.name}: every acknowledged publish exactly once in order, or inside a reset`, problems.slice(0, 3).join("; ") || `${msgs} messages, ${s.reconnects} reconnects`);
    r.report(resetAfterLoss, `${s.name}: told with a reset (epoch_changed) after Redis lost its data`);
  }
  void ackedBeforeLoss;
  void tLoss;
}

/** The checker must be able to fail: a dropped, a duplicated and a reordered message. */
function checkerSelfTest() {
  const acked = new Map([["7:1", "a"], ["7:2", "b"], ["7:3", "c"]]);
  const m = (id, data) => ({ t: "m", epoch: 7, id, data });
  const good = checkLog([m(1, "a"), m(2, "b"), m(3, "c")], acked).length === 0;
  const dropped = checkLog([m(1, "a"), m(3, "c")], acked).length > 0;
  const dup = checkLog([m(1, "a"), m(2, "b"), m(2, "b"), m(3, "c")], acked).length > 0;
  const reordered = checkLog([m(2, "b"), m(1, "a"), m(3, "c")], acked).length > 0;
  const wrong = checkLog([m(1, "a"), m(2, "x"), m(3, "c")], acked).length > 0;
  const reset = checkLog([m(1, "a"), { t: "reset", epoch: 7, last: 3 }], acked).length === 0;
  r.report(good && dropped && dup && reordered && wrong && reset, "the checker accepts a clean log and a reset, and refuses a drop, a duplicate, a reordering and a wrong payload");
}

async function main() {
  checkerSelfTest();
  if (!BIN || !fs.existsSync(BIN)) {
    r.report(false, `switchboard binary missing: ${BIN}`);
    process.exit(1);
  }
  const redis = new Redis(await freePort());
  await redis.start(true);
  const nodes = ["A", "B", "C"].map((n) => new Node(n, redis.port));
  for (const n of nodes) await n.start();
  const health = await rest(nodes[1].url, "GET", "/healthz");
  r.report(health.json?.broker?.kind === "redis" && health.json?.broker?.state === "up", "three nodes up on one redis (/healthz)", health.text);
  try {
    if (PHASE === "fanout" || PHASE === "all") await fanout(nodes);
    if (PHASE === "chaos" || PHASE === "all") await chaos(nodes, redis);
    const m = await rest(nodes[0].url, "GET", "/metrics");
    const line = (name) => (m.text.match(new RegExp(`^${name} (\\d+)`, "m")) ?? [])[1];
    if (PHASE !== "fanout") {
      r.report(Number(line("switchboard_broker_reconnects_total")) >= 1, "node A counted its Redis reconnects", `switchboard_broker_reconnects_total ${line("switchboard_broker_reconnects_total")}`);
      r.report(Number(line("switchboard_resets_total")) >= 1, "node A counted the resets it sent", `resets ${line("switchboard_resets_total")}, gaps detected ${line("switchboard_broker_gaps_detected_total")}, repaired ${line("switchboard_broker_gaps_repaired_total")}`);
    }
  } catch (e) {
    r.report(false, "suite crashed", e.stack);
  }
  for (const n of nodes) n.kill();
  redis.kill();
  fs.rmSync(redis.dir, { recursive: true, force: true });
  process.exit(r.failed ? 1 : 0);
}

main();
