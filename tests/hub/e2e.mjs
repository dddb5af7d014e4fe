// End-to-end checks of `switchboard serve` in real headless Chromium (playwright-core).
//
// usage: node e2e.mjs --url http://127.0.0.1:PORT [--chromium /usr/bin/chromium]
//                     [--sections chat,resume,rest,plain]   (default: all) [--label TEXT]
//
// The hub must run with `admin_api = true` for the resume section (it kills connections
// through the admin API). Sections, each on channels of its own:
//   chat      two chat pages (web/index.html + switchboard.js) talk over each transport
//   resume    a page's connection is killed server-side while the other page keeps sending;
//             it reconnects by itself and gets what it missed, once each, in order
//   rest      REST publishes reach WebSocket, SSE and long-poll pages alike; history,
//             `since` and paging over REST; nothing is lost between two long polls
//   plain     a page with only the seeds' bare `new WebSocket()` / `new EventSource()`
//             chats with the hub's page
// Prints one PASS/FAIL line per check; exits 1 if any failed.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Hub, Reporter, openChatPage, runInChromium, parseArgs, requireInterop, sleep, strictlyIncreasing, until } from "./lib.mjs";

const { chromium } = requireInterop("playwright-core");
const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = parseArgs();
const base = (args.url ?? "").replace(/\/$/, "");
const hub = new Hub(base);
const TRANSPORTS = ["websocket", "sse", "poll"];
const WAIT = 15000;
const r = new Reporter(args.label ?? "hub e2e");

if (!base.startsWith("http://127.0.0.1:") && !base.startsWith("http://[::1]:")) {
  r.report(false, "arguments", `--url must be a loopback http:// URL, got '${base}'`);
  process.exit(1);
}

// ---------------------------------------------------------------------------------
// Page helpers (the chat page's stable ids and its window.__switchboard hook)

const consoleLines = [];

const openChat = (context, opts) => openChatPage(context, base, opts, consoleLines, WAIT);

/** Types `text` into #message and clicks #send, as a user would. */
async function say(page, text) {
  await page.fill("#message", text);
  await page.click("#send");
}

const received = (page) => page.evaluate(() => window.__switchboard.received);
const textOf = (data) => (data && typeof data === "object" && "text" in data ? data.text : data);

/** Waits until `page` has received every text in `texts` (compared by textOf). */
async function waitForTexts(page, texts, ms = WAIT) {
  await page.waitForFunction(
    (want) => {
      const got = window.__switchboard.received.map((m) => (m.data && typeof m.data === "object" && "text" in m.data ? m.data.text : m.data));
      return want.every((t) => got.includes(t));
    },
    texts,
    { timeout: ms },
  );
  return received(page);
}

/** Runs one section; an exception becomes a FAIL line instead of ending the run. */
async function section(name, fn) {
  try {
    await fn();
  } catch (e) {
    r.report(false, `${name}: aborted`, String(e.message ?? e).split("\n")[0]);
  }
}

// ---------------------------------------------------------------------------------
// (a) two chat pages over each transport

async function chatOver(context, transport) {
  const channel = `chat-${transport}`;
  const alice = await openChat(context, { channel, transport, nick: "alice" });
  const bob = await openChat(context, { channel, transport, nick: "bob" });
  const badges = await Promise.all(
    [alice, bob].map((p) => p.$eval("#transport", (el) => `${el.dataset.transport}/${el.dataset.state}`)),
  );
  r.report(badges.every((b) => b === `${transport}/open`), `chat over ${transport}: both pages show the transport open`, badges.join(", "));

  const lines = [`alice 1 over ${transport}`, `bob 1 over ${transport}`, `alice 2 over ${transport}`, `bob 2 over ${transport}`];
  for (const [i, line] of lines.entries()) await say(i % 2 === 0 ? alice : bob, line);
  const [ga, gb] = await Promise.all([waitForTexts(alice, lines), waitForTexts(bob, lines)]);
  const view = (got) => got.map((m) => `${m.id}:${textOf(m.data)}`).join("|");
  r.report(
    view(ga) === view(gb) && ga.length === lines.length,
    `chat over ${transport}: both pages received the same ${lines.length} messages (both directions, the sender's own too)`,
    `alice ${view(ga)}; bob ${view(gb)}`,
  );
  const okOrder = strictlyIncreasing(ga.map((m) => m.id)) && ga.every((m) => m.transport === transport);
  r.report(okOrder, `chat over ${transport}: ids strictly increasing, every message delivered over ${transport}`);
  // What a user sees: the rendered log.
  const shown = await bob.$$eval("#log li.msg", (els) => els.map((e) => (e.querySelector(".nick")?.textContent ?? "") + e.querySelector(".text").textContent));
  const wantShown = lines.map((l, i) => `${i % 2 === 0 ? "alice" : "bob"}${l}`);
  r.report(
    JSON.stringify(shown) === JSON.stringify(wantShown),
    `chat over ${transport}: #log shows nick and text of each message, in order`,
    JSON.stringify(shown),
  );
  await alice.close();
  await bob.close();
}

// ---------------------------------------------------------------------------------
// (b) server-side kill, automatic reconnect, exactly the missed messages

async function resumeOver(context, transport) {
  const channel = `resume-${transport}`;
  const senderTransport = transport === "websocket" ? "sse" : "websocket";
  const victim = await openChat(context, { channel, transport, nick: "victim" });
  const sender = await openChat(context, { channel, transport: senderTransport, nick: "sender" });
  await victim.evaluate(() => {
    window.__states = [];
    window.__switchboard.client.on("state", (s) => window.__states.push(s));
    // A first reconnect after 1-2 s instead of 0.25-0.5 s: a wider window in which the
    // other page's messages are certainly missed, even on a slow machine. (SSE reconnects
    // by itself after the hub's `retry: 1000`.)
    window.__switchboard.client.minDelay = 2000;
  });
  await say(sender, "before the cut");
  await waitForTexts(victim, ["before the cut"]);
  const before = (await received(victim)).length;

  const mine = (c) => c.transport === transport && c.channels.includes(channel);
  const oldIds = new Set((await until(async () => (await hub.connections()).filter(mine).map((c) => c.id).join(","), WAIT, `the ${transport} connection in the admin list`)).split(",").map(Number));
  // A long-poll client is briefly between requests now and then: retry the kill until it
  // lands. Chromium silently retries a GET whose reused keep-alive connection died before
  // any answer, so one kill of a long poll goes unnoticed (and loses nothing: the retry
  // carries the same cursor); keep killing until the page itself sees the failure.
  const cutAt = Date.now();
  let killed = 0;
  for (let round = 0; round < 20; round++) {
    killed += await until(async () => hub.disconnect(`transport=${transport}&channel=${channel}`), 5000, "a connection to kill");
    if (transport !== "poll") break;
    const noticed = await until(async () => victim.evaluate(() => window.__states.includes("connecting")), 300, "").catch(() => false);
    if (noticed) break;
  }
  r.report(killed >= 1, `reconnect over ${transport}: admin disconnect killed the page's connection`, `disconnected ${killed}`);

  // The other page keeps talking; note how many went out before the victim was back.
  const sent = [];
  let missedWhileDown = 0;
  for (let i = 1; i <= 10; i++) {
    const text = `while cut ${i} (${transport})`;
    await say(sender, text);
    sent.push(text);
    // Down: the page's client is not open, or (WebSocket, and SSE whose EventSource
    // reconnects inside the browser) no new connection of it is registered yet. A long
    // poll opens a new connection per request, so only the client's state counts there.
    const open = await victim.evaluate(() => window.__switchboard.client.state === "open");
    const back = transport === "poll" || (await hub.connections()).some((c) => mine(c) && !oldIds.has(c.id));
    if (!open || !back) missedWhileDown += 1;
    await sleep(40);
  }
  const got = await waitForTexts(victim, sent, 20000);
  const after = got.slice(before);
  const texts = after.map((m) => textOf(m.data));
  r.report(
    JSON.stringify(texts) === JSON.stringify(sent),
    `reconnect over ${transport}: the page received the ${sent.length} messages sent meanwhile, once each, in order`,
    `${missedWhileDown} of them sent before it was back, ${Date.now() - cutAt} ms; states ${await victim.evaluate(() => window.__states.join(">"))}; got ${JSON.stringify(texts)}`,
  );
  r.report(missedWhileDown >= 1, `reconnect over ${transport}: messages really were sent while the page was disconnected`, `${missedWhileDown} of ${sent.length}`);
  const ids = got.map((m) => m.id);
  r.report(strictlyIncreasing(ids) && new Set(ids).size === ids.length, `reconnect over ${transport}: no duplicate and no reordering over the whole session`, ids.join(","));
  const state = await victim.evaluate(() => `${window.__switchboard.client.transport}/${window.__switchboard.client.state}`);
  const reconnected = (await until(async () => (await hub.connections()).some((c) => mine(c) && !oldIds.has(c.id)), WAIT, "the new connection")) === true;
  r.report(state === `${transport}/open` && reconnected, `reconnect over ${transport}: the page is back on ${transport} over a new connection`, state);
  // And it can talk again.
  await say(victim, `victim back over ${transport}`);
  await waitForTexts(sender, [`victim back over ${transport}`]);
  r.report(true, `reconnect over ${transport}: the reconnected page's message reaches the other page`);
  await victim.close();
  await sender.close();
}

// ---------------------------------------------------------------------------------
// (c) REST publish to every transport; history and since; the gap between long polls

async function restSection(context) {
  const channel = "rest-fanout";
  const pages = [];
  for (const transport of TRANSPORTS) pages.push(await openChat(context, { channel, transport, nick: `sub-${transport}` }));
  const published = [];
  published.push({ ...(await hub.publish(channel, { nick: "rest", text: "rest json 1" })), data: { nick: "rest", text: "rest json 1" } });
  published.push({ ...(await hub.publishText(channel, "rest text 2")), data: "rest text 2" });
  published.push({ ...(await hub.publish(channel, [3, { deep: true }])), data: [3, { deep: true }] });
  // A quick burst: the long-poll page is between two requests for some of these.
  for (let i = 1; i <= 20; i++) {
    published.push({ ...(await hub.publishText(channel, `burst ${i}`)), data: `burst ${i}` });
  }
  // The hub's time (`ts` in the publish's answer) is what every transport hands the page.
  const want = published.map((p) => `${p.id}@${p.ts}:${JSON.stringify(p.data)}`);
  for (const page of pages) {
    let got = [];
    try {
      await page.waitForFunction((n) => window.__switchboard.received.length >= n, want.length, { timeout: WAIT });
    } catch {
      /* compared below */
    }
    got = (await received(page)).map((m) => `${m.id}@${m.ts}:${JSON.stringify(m.data)}`);
    r.report(
      JSON.stringify(got) === JSON.stringify(want) && published.every((p) => typeof p.ts === "number"),
      `REST publish reaches the ${page.transport} page: all ${want.length} messages, same ids, hub times (ts) and payloads, in order`,
      got.length === want.length ? "" : `got ${got.length}: ${got.slice(0, 5).join(" ")}…`,
    );
  }
  for (const page of pages) await page.close();

  // History and since.
  const epoch = published[0].epoch;
  const all = await hub.history(channel, "?since=0&limit=1000");
  r.report(
    JSON.stringify(all.messages.map((m) => m.id)) === JSON.stringify(published.map((p) => p.id)) &&
      JSON.stringify(all.messages.map((m) => m.data)) === JSON.stringify(published.map((p) => p.data)) &&
      JSON.stringify(all.messages.map((m) => m.ts)) === JSON.stringify(published.map((p) => p.ts)) &&
      all.more === false && all.epoch === epoch,
    "REST history since=0: every message, oldest first, with its payload and the hub's time",
    `${all.messages.length} messages, more=${all.more}`,
  );
  const cut = published[4];
  const after = await hub.history(channel, `?since=${epoch}:${cut.id}`);
  r.report(
    JSON.stringify(after.messages.map((m) => m.id)) === JSON.stringify(published.slice(5).map((p) => p.id)),
    "REST history since=EPOCH:ID: exactly the messages after it",
    `${after.messages.length} messages from id ${after.messages[0]?.id}`,
  );
  const latest = await hub.history(channel, "?limit=2");
  r.report(
    JSON.stringify(latest.messages.map((m) => m.id)) === JSON.stringify(published.slice(-2).map((p) => p.id)),
    "REST history without since: the latest `limit` messages",
    latest.messages.map((m) => m.id).join(","),
  );
  let cursor = "0";
  const paged = [];
  for (let pagesRead = 0; pagesRead < 20; pagesRead++) {
    const page = await hub.history(channel, `?since=${cursor}&limit=7`);
    paged.push(...page.messages.map((m) => m.id));
    cursor = page.next;
    if (!page.more) break;
  }
  r.report(
    JSON.stringify(paged) === JSON.stringify(published.map((p) => p.id)),
    "REST history paging (limit=7, follow next while more): every id once, in order",
    `${paged.length} ids`,
  );
  const stale = await hub.history(channel, `?since=${epoch + 1}:3`);
  const ahead = await hub.history(channel, `?since=${epoch}:${published.at(-1).id + 5}`);
  r.report(
    stale.messages.length === 0 && stale.reset?.reason === "epoch_changed" && ahead.messages.length === 0 && ahead.reset?.reason === "ahead",
    "REST history: a cursor from another epoch or beyond the end is answered with a plain reset",
    `${stale.reset?.reason}, ${ahead.reset?.reason}`,
  );

  // Long polling: a message published while no poll is outstanding is in the next answer.
  const lp = "longpoll-gap";
  const first = await hub.poll(lp, "?timeout=0");
  const between = await hub.publishText(lp, "published between two polls");
  const t0 = Date.now();
  const second = await hub.poll(lp, `?since=${first.next}&timeout=10`);
  const dt = Date.now() - t0;
  r.report(
    second.messages.length === 1 && second.messages[0].id === between.id && second.messages[0].data === "published between two polls" && dt < 2000,
    "long polling: a message sent between two requests is in the next answer, at once",
    `${dt} ms, next ${second.next}`,
  );
  // A waiting poll wakes up when something is published.
  const waiting = hub.poll(lp, `?since=${second.next}&timeout=10`);
  await sleep(300);
  const woke = await hub.publishText(lp, "wakes the waiting poll");
  const third = await waiting;
  r.report(
    third.messages.length === 1 && third.messages[0].id === woke.id && third.next === `${woke.epoch}:${woke.id}`,
    "long polling: a waiting request returns the next message with the next cursor",
    JSON.stringify(third),
  );
  const t1 = Date.now();
  const empty = await hub.poll(lp, `?since=${third.next}&timeout=1`);
  const waited = Date.now() - t1;
  r.report(
    empty.messages.length === 0 && empty.next === third.next && waited >= 900 && waited < 5000,
    "long polling: with nothing new it waits `timeout` and returns the same cursor",
    `${waited} ms`,
  );
}

// ---------------------------------------------------------------------------------
// (d) the seeds' bare WebSocket / EventSource page against the hub's page

async function plainSection(context) {
  const room = "seed-room";
  const html = readFileSync(path.join(HERE, "seed-plain.html"), "utf8");
  // The page must live at the hub's own origin (the default origin policy allows only
  // that): open a real hub URL, then replace the document. The origin stays the hub's, and
  // the page's WebSocket and EventSource go to the real hub.
  const plain = await context.newPage();
  plain.on("console", (m) => consoleLines.push(`[plain] console.${m.type()}: ${m.text()}`));
  await plain.goto(`${base}/healthz?room=${room}`, { timeout: WAIT });
  await plain.setContent(html, { timeout: WAIT });
  await plain.waitForFunction(() => ws.readyState === 1 && es.readyState === 1, null, { timeout: WAIT });
  const hubPage = await openChat(context, { channel: room, transport: "websocket", nick: "hubuser" });

  await plain.fill("#message", "hello from a plain WebSocket");
  await plain.click("#send");
  await waitForTexts(hubPage, ["hello from a plain WebSocket"]);
  const g1 = (await received(hubPage)).at(-1);
  r.report(g1.data === "hello from a plain WebSocket", "plain page -> hub page: a bare ws.send(text) arrives as that text", JSON.stringify(g1.data));

  await say(hubPage, "hi plain page");
  // The chat page's payload is {nick, text, ts, mid}: match it by nick and text, as JSON text.
  const isWant = (line) => {
    try {
      const v = JSON.parse(line);
      return line.startsWith("{") && v.nick === "hubuser" && v.text === "hi plain page" && typeof v.ts === "number" && typeof v.mid === "string";
    } catch {
      return false;
    }
  };
  const lists = async () => plain.evaluate(() => ({
    ws: [...document.querySelectorAll("#log li")].map((e) => e.textContent),
    sse: [...document.querySelectorAll("#events li")].map((e) => e.textContent),
  }));
  const got = await until(async () => {
    const l = await lists();
    return l.ws.some(isWant) && l.sse.some(isWant) ? l : null;
  }, WAIT, "the hub page's message on the plain page").catch(async () => lists());
  r.report(got.ws.some(isWant), "hub page -> plain page: its message arrives on the bare WebSocket as its JSON text", JSON.stringify(got.ws));
  r.report(got.sse.some(isWant), "hub page -> plain page: a bare EventSource receives it too", JSON.stringify(got.sse));
  r.report(
    got.ws[0] === "hello from a plain WebSocket" && got.sse[0] === "hello from a plain WebSocket",
    "plain page: its own message comes back on the WebSocket and on the EventSource, as plain text",
  );
  await hubPage.close();
  await plain.close();
}

// ---------------------------------------------------------------------------------

const frame = { chromium, executablePath: args.chromium, profilePrefix: "switchboard-hub-e2e-", reporter: r, consoleLines };
const only = args.sections ? args.sections.split(",") : ["chat", "resume", "rest", "plain"];
await runInChromium(frame, async () => {
  const health = await hub.request("GET", "/healthz");
  r.report(health.json?.status === "ok", "hub is up (/healthz)", health.text);
  if (only.includes("resume")) {
    try {
      await hub.connections();
    } catch (e) {
      r.report(false, "admin API enabled (the hub must run with admin_api = true)", e.message);
      throw e;
    }
  }
}, async (context) => {
  r.report(true, "chromium started", context.browser()?.version() ?? "persistent context");
  if (only.includes("chat")) for (const t of TRANSPORTS) await section(`chat over ${t}`, () => chatOver(context, t));
  if (only.includes("resume")) for (const t of TRANSPORTS) await section(`reconnect over ${t}`, () => resumeOver(context, t));
  if (only.includes("rest")) await section("REST", () => restSection(context));
  if (only.includes("plain")) await section("plain page", () => plainSection(context));
});
