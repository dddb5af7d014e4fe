// Presence end to end in headless Chromium: three chat pages (web/index.html) in one room,
// each on another transport (WebSocket, SSE, long polling), each sees the other two in its
// "online" bar; the hub's REST and /ws answers agree; closing a page makes it leave on the
// others, with a "left" line in their logs.
//
// usage: node presence.mjs --url http://127.0.0.1:PORT[,http://127.0.0.1:PORT2,...]
//                          [--grace-ms 1500] [--kill-pid PID --kill-url URL --ttl-ms N]
//                          [--chromium /usr/bin/chromium] [--label TEXT]
//
// With several URLs (nodes sharing a broker), page i opens on node i mod n, and every REST
// answer is read from every node. With --kill-pid, a fourth page is opened on --kill-url,
// the process PID (that node) is killed with SIGKILL, and the page must disappear from the
// other pages within --ttl-ms.
// Prints one PASS/FAIL line per check; exits 1 if any failed.
import { Hub, Reporter, openChatPage, runInChromium, parseArgs, requireInterop, until } from "./lib.mjs";

const { chromium } = requireInterop("playwright-core");
const WebSocket = requireInterop("ws");
const args = parseArgs();
const bases = (args.url ?? "").split(",").map((u) => u.replace(/\/$/, "")).filter(Boolean);
const hubs = bases.map((b) => new Hub(b));
const r = new Reporter(args.label ?? "hub presence");
const GRACE = Number(args["grace-ms"] ?? 1500);
// A closed long-poll page is noticed when its pending poll ends (at most the poll timeout
// the page asks for, 25 s) plus the grace period; everything else within the grace period.
const WAIT = 45000;
const ROOM = `presence-${Date.now()}`;

if (!bases.length || !bases.every((b) => b.startsWith("http://127.0.0.1:") || b.startsWith("http://[::1]:"))) {
  r.report(false, "arguments", `--url must be loopback http:// URLs, got '${args.url}'`);
  process.exit(1);
}

const consoleLines = [];

async function openChat(context, { base, transport, nick }) {
  const page = await openChatPage(context, base, { channel: ROOM, transport, nick }, consoleLines);
  page.clientId = await page.evaluate(() => window.__switchboard.client.clientId);
  return page;
}

/** The nicks in a page's online bar (the rendered list), sorted. */
const shownNicks = (page) =>
  page.$$eval("#members li", (els) => els.map((e) => e.textContent.replace(/ \(you\)$/, "")).sort());
/** The client ids the page's hook holds. */
const hookClients = (page) => page.evaluate(() => window.__switchboard.presence.members.map((e) => e.client).sort());

async function waitShown(page, nicks, what) {
  const want = JSON.stringify([...nicks].sort());
  return until(async () => (JSON.stringify(await shownNicks(page)) === want ? true : null), WAIT, what)
    .then(() => true, () => false);
}

/** The /ws `presence` op answer from `base`, through a fresh Node WebSocket. */
function wsPresence(base) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base.replace(/^http/, "ws") + "/ws");
    const timer = setTimeout(() => { ws.terminate(); reject(new Error("no /ws presence answer")); }, 10000);
    ws.on("open", () => ws.send(JSON.stringify({ op: "presence", channel: ROOM, ref: 1 })));
    ws.on("message", (d) => {
      const f = JSON.parse(String(d));
      if (f.op === "presence" && f.ref === 1) {
        clearTimeout(timer);
        ws.close(1000);
        resolve(f);
      }
    });
    ws.on("error", (e) => { clearTimeout(timer); reject(e); });
  });
}

const restClients = async (h) => (await h.request("GET", `/api/channels/${ROOM}/presence`)).json;

async function run(context) {
  const specs = [
    { transport: "websocket", nick: "wanda" },
    { transport: "sse", nick: "sam" },
    { transport: "poll", nick: "polly" },
  ];
  const pages = [];
  for (const [i, s] of specs.entries()) pages.push(await openChat(context, { ...s, base: bases[i % bases.length] }));
  const where = pages.map((p, i) => `${p.nick}/${p.transport}@node${i % bases.length}`).join(", ");
  const all = specs.map((s) => s.nick);

  // (1) each page sees the other two (and itself).
  for (const p of pages) {
    const ok = await waitShown(p, all, `${p.nick}'s online list`);
    r.report(ok, `three pages: ${p.nick} (${p.transport}) shows all three online`, `${JSON.stringify(await shownNicks(p))}; ${where}`);
  }
  const ids = pages.map((p) => p.clientId).sort();
  for (const p of pages) {
    const got = await hookClients(p);
    r.report(JSON.stringify(got) === JSON.stringify(ids), `three pages: ${p.nick}'s switchboard.js members are the three client ids`, JSON.stringify(got));
  }

  // (2) REST and /ws agree, on every node.
  for (const [i, h] of hubs.entries()) {
    const rest = await restClients(h);
    const ws = await wsPresence(bases[i]);
    const restIds = rest.entries.map((e) => e.client).sort();
    const wsIds = ws.entries.map((e) => e.client).sort();
    r.report(rest.clients === 3 && JSON.stringify(restIds) === JSON.stringify(ids), `node${i}: REST presence lists the three pages`, JSON.stringify(rest));
    r.report(
      ws.clients === rest.clients && ws.users === rest.users && JSON.stringify(wsIds) === JSON.stringify(restIds)
        && JSON.stringify(ws.entries) === JSON.stringify(rest.entries),
      `node${i}: the /ws presence op and REST agree`,
      `ws ${ws.clients}/${ws.users}, rest ${rest.clients}/${rest.users}`,
    );
    const list = (await h.request("GET", "/api/channels")).json.channels.find((c) => c.name === ROOM);
    r.report(list?.presence?.clients === 3, `node${i}: /api/channels counts the three`, JSON.stringify(list?.presence));
  }

  // (3) close the SSE page: the other two see it leave, with a line in the log.
  const [wanda, sam, polly] = pages;
  let t = Date.now();
  await sam.close();
  for (const p of [wanda, polly]) {
    const ok = await waitShown(p, ["wanda", "polly"], `sam gone from ${p.nick}'s list`);
    const line = await p.$$eval("#log li[data-presence=leave]", (els) => els.map((e) => e.textContent));
    r.report(ok && line.includes("sam left"), `closing the SSE page: ${p.nick} (${p.transport}) sees sam leave`, `${Date.now() - t} ms; log ${JSON.stringify(line)}`);
  }

  // (4) close the WebSocket page (the browser says goodbye with 1001): polly sees it leave.
  t = Date.now();
  await wanda.close();
  const ok = await waitShown(polly, ["polly"], "wanda gone from polly's list");
  r.report(ok, "closing the WebSocket page: polly (long polling) sees wanda leave", `${Date.now() - t} ms`);
  const joins = await polly.evaluate(() => window.__switchboard.presence.events.map((e) => `${e.kind}:${e.info && e.info.nick}`));
  const leaves = joins.filter((e) => e.startsWith("leave:"));
  r.report(
    leaves.length === 2 && new Set(leaves).size === 2,
    "each page left once on polly's page (no flapping)",
    JSON.stringify(joins),
  );

  // (5) close the last page: the room empties on every node.
  await polly.close();
  for (const [i, h] of hubs.entries()) {
    const empty = await until(async () => ((await restClients(h)).clients === 0 ? true : null), WAIT, "an empty room").then(() => true, () => false);
    r.report(empty, `node${i}: after the last page closed, nobody is in the room`, JSON.stringify(await restClients(h)));
  }
}

/** A page on the node that is then killed disappears from a page on another node. */
async function killNode(context) {
  const pid = Number(args["kill-pid"]);
  const killBase = (args["kill-url"] ?? "").replace(/\/$/, "");
  const ttl = Number(args["ttl-ms"] ?? 25000);
  const otherBase = bases.find((b) => b !== killBase) ?? bases[0];
  const stay = await openChat(context, { base: otherBase, transport: "websocket", nick: "stayer" });
  const doomed = await openChat(context, { base: killBase, transport: "sse", nick: "doomed" });
  const both = await waitShown(stay, ["stayer", "doomed"], "the doomed page on the other node");
  r.report(both, "kill a node: a page on another node sees the doomed node's page");
  const t = Date.now();
  process.kill(pid, "SIGKILL");
  const gone = await until(async () => (JSON.stringify(await shownNicks(stay)) === JSON.stringify(["stayer"]) ? true : null), ttl + 10000, "the dead node's page to disappear")
    .then(() => true, () => false);
  const took = Date.now() - t;
  r.report(gone && took <= ttl + 2000, `kill a node: its page disappears from the other node's page within the TTL (${ttl} ms)`, `${took} ms`);
  await doomed.close().catch(() => {});
  await stay.close();
}

const frame = { chromium, executablePath: args.chromium, profilePrefix: "switchboard-hub-presence-", reporter: r, consoleLines };
await runInChromium(frame, async () => {
  for (const [i, h] of hubs.entries()) {
    const health = await h.request("GET", "/healthz");
    r.report(health.json?.status === "ok", `node${i} is up (/healthz)`, health.text);
  }
}, async (context) => {
  await run(context);
  if (args["kill-pid"]) await killNode(context);
});
