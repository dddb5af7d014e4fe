// A subscriber that reads nothing must not slow the others; it is reported and handled
// per `lag_policy`, and /metrics shows it.
//
// usage: node slow_check.mjs --url http://127.0.0.1:PORT --policy disconnect|resume
//                            [--python python3] [--messages 3000] [--size 4096]
//
// The hub must run with `admin_api = true`, no rate limit, a small `limits.queue_size`,
// and (for `resume`) history that holds --messages messages. The defaults send 12 MB to
// every subscriber: more than the kernel buffers a stalled socket can absorb (Linux lets a
// loopback send buffer grow to tcp_wmem max, 4 MiB by default). Two rounds, fresh channels:
//   baseline  3 fast `ws` subscribers on /ws; a publisher sends --messages publishes of
//             --size bytes over /ws, paced by the fast subscribers (at most 16 ahead of the
//             slowest of them); time until every subscriber has every message
//   slow      the same, plus tests/hub/slow_subscriber.py subscribed with a tiny receive
//             buffer and reading nothing
// Checks: the fast subscribers get everything in order and not much later than in the
// baseline; the publisher gets every ack; /metrics counts the lagged subscriber (and the
// drops and, under `disconnect`, the slow disconnect); under `disconnect` the slow
// connection is gone and its socket ends, under `resume` it stays and, once it reads again,
// gets every message once, in order. One PASS/FAIL line per check; exit 1 if any failed.
import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { Hub, Reporter, parseArgs, requireInterop, sleep, until, withTimeout } from "./lib.mjs";

const WebSocket = requireInterop("ws");
const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = parseArgs();
const base = (args.url ?? "").replace(/\/$/, "");
const policy = args.policy ?? "disconnect";
const python = args.python ?? "python3";
const M = Number(args.messages ?? 3000);
const SIZE = Number(args.size ?? 4096);
const FAST = 3;
const hub = new Hub(base);
const r = new Reporter(`hub slow subscriber (${policy})`);
const { hostname, port } = new URL(base);
if (hostname !== "127.0.0.1") {
  r.report(false, "arguments", `--url must be http://127.0.0.1:PORT, got '${base}'`);
  process.exit(1);
}
const wsBase = base.replace(/^http/, "ws");

// Publishes are paced by the fast subscribers: message i goes out once every fast
// subscriber has message i - WINDOW. So a fast subscriber is never more than WINDOW
// messages (less than the hub's queue) behind, and whatever happens to the slow one is
// about the slow one. (An unpaced burst faster than the hub can write to sockets fills
// every queue, and under `disconnect` drops readers too: that is the policy, not a slow
// client.)
const WINDOW = 16;
let progress = () => {};

/** A `ws` client on /ws subscribed to `channel`, recording every message id. */
async function fastSubscriber(channel) {
  const ws = new WebSocket(`${wsBase}/ws`, { perMessageDeflate: false });
  const sub = { ws, ids: [], closed: false, gaps: 0 };
  ws.on("close", () => {
    sub.closed = true;
    progress();
  });
  await withTimeout(new Promise((res, rej) => (ws.once("open", res), ws.once("error", rej))), 10000, "a subscriber to connect");
  const subscribed = new Promise((res) => {
    ws.on("message", (raw) => {
      const f = JSON.parse(raw.toString());
      if (f.op === "subscribed") res();
      else if (f.op === "message") {
        if (sub.ids.length && f.id !== sub.ids.at(-1) + 1) sub.gaps += 1;
        sub.ids.push(f.id);
        progress();
      }
    });
  });
  ws.send(JSON.stringify({ op: "subscribe", channel }));
  await withTimeout(subscribed, 10000, "`subscribed`");
  return sub;
}

/** Waits until `cond()` holds, re-checked whenever a subscriber makes progress. */
function whenProgress(cond, ms, what) {
  return withTimeout(
    new Promise((res) => {
      const check = () => {
        if (cond()) {
          progress = () => {};
          res();
        }
      };
      progress = check;
      check();
    }),
    ms,
    what,
  );
}

/** Publishes M messages over one /ws connection, paced by `subs`; {ms, acks, errors, t0}. */
async function publishAll(channel, subs) {
  const ws = new WebSocket(`${wsBase}/ws`, { perMessageDeflate: false });
  await withTimeout(new Promise((res, rej) => (ws.once("open", res), ws.once("error", rej))), 10000, "the publisher to connect");
  let acks = 0;
  let errors = 0;
  const done = new Promise((res) => {
    ws.on("message", (raw) => {
      const f = JSON.parse(raw.toString());
      if (f.op === "ack") acks += 1;
      else if (f.op === "error") errors += 1;
      if (acks + errors === M) res();
    });
  });
  const pad = "x".repeat(SIZE);
  const t0 = Date.now();
  const dead = () => subs.some((s) => s.closed);
  const least = () => Math.min(...subs.map((s) => s.ids.length));
  try {
    for (let i = 1; i <= M; i++) {
      if (least() < i - WINDOW) await whenProgress(() => dead() || least() >= i - WINDOW, 30000, `fast subscribers to reach message ${i - WINDOW}`);
      if (dead()) break;
      ws.send(JSON.stringify({ op: "publish", channel, data: { n: i, pad }, ref: i }));
    }
    await withTimeout(done, 30000, "every publish ack");
  } catch {
    /* the counts tell */
  }
  const ms = Date.now() - t0;
  ws.close();
  return { ms, acks, errors, t0 };
}

/** One round: fast subscribers (the slow one, if any, is already subscribed) and M publishes. */
async function round(channel) {
  const subs = [];
  for (let i = 0; i < FAST; i++) subs.push(await fastSubscriber(channel));
  const pub = await publishAll(channel, subs);
  let allMs = null;
  try {
    await until(() => subs.every((s) => s.ids.length >= M), 30000, "every fast subscriber to get every message", 10);
    allMs = Date.now() - pub.t0;
  } catch {
    /* reported by the caller */
  }
  return { subs, pub, allMs };
}

function startSlow(channel) {
  const child = spawn(python, [path.join(HERE, "slow_subscriber.py"), "--port", port, "--channel", channel, "--until-id", String(M), "--drain-timeout", "20"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = readline.createInterface({ input: child.stdout });
  const waiters = [];
  const seen = [];
  lines.on("line", (l) => {
    seen.push(l);
    for (const w of waiters.splice(0)) w();
  });
  const line = (prefix, ms) =>
    withTimeout(
      (async () => {
        for (;;) {
          const l = seen.find((x) => x.startsWith(prefix));
          if (l) return JSON.parse(l.slice(prefix.length + 1));
          await new Promise((res) => waiters.push(res));
        }
      })(),
      ms,
      `the slow subscriber's ${prefix} line`,
    );
  return { child, line };
}

const metric = (m, name) => m[name] ?? 0;
let slow;
try {
  await hub.connections().catch((e) => {
    throw new Error(`admin API needed (admin_api = true): ${e.message}`);
  });

  const baseline = await round(`baseline-${policy}-${Date.now()}`);
  r.report(
    baseline.allMs !== null && baseline.subs.every((s) => s.gaps === 0),
    `baseline: ${FAST} fast subscribers got all ${M} messages of ${SIZE} B in order`,
    `${baseline.allMs} ms`,
  );
  for (const s of baseline.subs) s.ws.close();

  const channel = `slow-${policy}-${Date.now()}`;
  slow = startSlow(channel);
  const ready = await slow.line("READY", 15000);
  const slowPeer = `127.0.0.1:${ready.local_port}`;
  const listed = (await hub.connections()).find((c) => c.peer === slowPeer);
  r.report(listed?.transport === "websocket" && listed.channels.includes(channel), "the slow subscriber is connected and subscribed", JSON.stringify(listed));
  const before = await hub.metrics();

  const withSlow = await round(channel);
  r.report(
    withSlow.pub.acks === M && withSlow.pub.errors === 0,
    "the publisher got every ack while a subscriber read nothing",
    `${withSlow.pub.acks} acks, ${withSlow.pub.errors} errors, ${withSlow.pub.ms} ms`,
  );
  const inOrder = withSlow.subs.every((s) => s.ids.length === M && s.gaps === 0 && !s.closed);
  r.report(
    withSlow.allMs !== null && inOrder,
    `the ${FAST} fast subscribers got all ${M} messages in order and stayed connected`,
    withSlow.subs.map((s) => `${s.ids.length}${s.gaps ? `/${s.gaps} gaps` : ""}`).join(", "),
  );
  // Generous bound: the machine is shared and timings wobble; a stalled fan-out would
  // take forever (or hit the 30 s limit above), not twice as long.
  const bound = Math.max(5 * (baseline.allMs ?? 0), (baseline.allMs ?? 0) + 2000);
  r.report(
    withSlow.allMs !== null && baseline.allMs !== null && withSlow.allMs <= bound,
    "the slow subscriber did not slow the others down",
    `${withSlow.allMs} ms with it vs ${baseline.allMs} ms without (bound ${bound} ms)`,
  );

  // Give the hub a moment to act on the full queue, then look at what it reports.
  await sleep(300);
  const counters = async () => {
    const after = await hub.metrics();
    const d = (n) => metric(after, n) - metric(before, n);
    return {
      lagged: d("switchboard_lagged_subscribers_total"),
      drops: d("switchboard_queue_drops_total"),
      slowDisc: d("switchboard_slow_disconnects_total"),
    };
  };
  const lagReport = (c) =>
    r.report(c.lagged >= 1 && c.drops >= 1, "/metrics: switchboard_lagged_subscribers_total and switchboard_queue_drops_total went up", `+${c.lagged} lagged, +${c.drops} drops`);
  const c1 = await counters();
  const stillListed = (await hub.connections()).some((c) => c.peer === slowPeer);
  if (policy === "disconnect") {
    lagReport(c1);
    r.report(c1.slowDisc >= 1, "/metrics: switchboard_slow_disconnects_total went up", `+${c1.slowDisc}`);
    r.report(!stillListed, "the slow connection was dropped (gone from the admin list)");
  } else {
    r.report(stillListed, "the slow connection is kept under `resume`");
  }

  // Now let it read.
  slow.child.stdin.write("drain\n");
  const drained = await slow.line("DRAINED", 30000);
  const first = withSlow.subs[0].ids[0];
  const last = withSlow.subs[0].ids.at(-1);
  if (policy === "disconnect") {
    r.report(
      (drained.end === "eof" || drained.end === "reset") && drained.count < M,
      "the slow subscriber's socket was closed by the hub before it had everything",
      JSON.stringify(drained),
    );
  } else {
    r.report(
      drained.end === "until" && drained.count === M && drained.in_order && drained.ids[0] === first && drained.ids[1] === last && drained.resets === 0,
      "once it reads again, the slow subscriber gets every message once, in order (resumed from history)",
      JSON.stringify(drained),
    );
    // Under `resume` the lag is noticed when the paused forwarder reads its subscription
    // again, that is once the client has made room.
    const c2 = await counters();
    lagReport(c2);
    r.report(c2.slowDisc === 0, "/metrics: no slow disconnect under `resume`", `+${c2.slowDisc}`);
  }
  for (const s of withSlow.subs) s.ws.close();
  const m = await hub.metrics();
  console.log(
    `    metrics: lagged ${metric(m, "switchboard_lagged_subscribers_total")}, drops ${metric(m, "switchboard_queue_drops_total")}, slow disconnects ${metric(m, "switchboard_slow_disconnects_total")}`,
  );
} catch (e) {
  r.report(false, "run", String(e.message ?? e).split("\n")[0]);
} finally {
  if (slow && slow.child.exitCode === null) slow.child.kill("SIGTERM");
}
process.exit(r.failed ? 1 : 0);
