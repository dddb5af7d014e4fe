// The chat page through a server restart, over each transport, in headless Chromium.
//
// usage: node restart.mjs --bin SWITCHBOARD --config FILE --port PORT --shots DIR
//                         [--transports websocket,sse,poll] [--chromium PATH] [--label TEXT]
//
// Starts `SWITCHBOARD serve` itself (it must kill it and start it again on the same port),
// on 127.0.0.1:PORT with that config. For each transport, on a phone-sized page
// (390×844): the page is open and says so (badge "open", no banner, Send enabled); the
// serve process is killed by PID (SIGKILL) and a message is sent at once; then, while the
// server is down, the page must say so within a few seconds and keep saying so (badge
// never "open" again until the server is back: an SSE stream whose EventSource is
// CONNECTING is not open), show the "connection lost, reconnecting" banner, keep Send
// usable and show a message sent meanwhile as queued; no "Failed to fetch" anywhere.
// The server is started again on the same port: the page is open again, the banner goes,
// and the two messages sent while down are published exactly once each, in order (the
// restarted server's history, read over REST, and the page's own list; checked again a
// little later), and a message sent afterwards arrives as usual.
// Screenshots: DIR/restart-TRANSPORT-{down,back}.png. PASS/FAIL lines; exit 1 on failure.
import { spawn } from "node:child_process";
import { mkdirSync, openSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { CHROMIUM_ARGS, Hub, Reporter, parseArgs, requireInterop, sleep, until } from "./lib.mjs";

const { chromium } = requireInterop("playwright-core");
const args = parseArgs();
const port = Number(args.port);
const base = `http://127.0.0.1:${port}`;
const hub = new Hub(base);
const shots = args.shots;
const WAIT = 15000;
const r = new Reporter(args.label ?? "chat page restart");
const transports = (args.transports ?? "websocket,sse,poll").split(",");

if (!args.bin || !args.config || !port || !shots) {
  r.report(false, "arguments", "need --bin, --config, --port and --shots");
  process.exit(1);
}
mkdirSync(shots, { recursive: true });

// ---------------------------------------------------------------------------------
// The serve process, started and killed by PID.

let server = null;
const serverLog = path.join(shots, "restart-serve.log");
writeFileSync(serverLog, "");

const portOpen = () => new Promise((resolve) => {
  const s = net.connect(port, "127.0.0.1");
  s.once("connect", () => { s.destroy(); resolve(true); });
  s.once("error", () => resolve(false));
});

async function startServer() {
  const out = openSync(serverLog, "a");
  const child = spawn(args.bin, ["serve", "--listen", `127.0.0.1:${port}`, "--config", args.config], {
    stdio: ["ignore", out, out],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info" },
  });
  child.exited = new Promise((resolve) => child.once("exit", resolve));
  server = child;
  // The port may be in TIME_WAIT-free reuse only after the old process is gone: the
  // caller waited for that. Give it up to 20 s to listen.
  await until(async () => (child.exitCode === null ? portOpen() : Promise.reject(new Error(`serve exited with ${child.exitCode} (log ${serverLog})`))), 20000, `serve listening on ${port}`);
  return child;
}

async function killServer() {
  const child = server;
  server = null;
  process.kill(child.pid, "SIGKILL");
  await child.exited;
}

// ---------------------------------------------------------------------------------
// What the page shows.

const view = (page) => page.evaluate(() => {
  const b = document.getElementById("transport");
  const banner = document.getElementById("banner");
  const note = document.getElementById("outbox-note");
  const c = window.__switchboard.client;
  const sources = c.conn && c.conn.sources ? Object.values(c.conn.sources).map((s) => s.readyState) : [];
  // Whether an element is drawn entirely inside the 390×844 viewport asked for.
  const onScreen = (el) => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.left >= 0 && r.top >= 0 && r.right <= 390 && r.bottom <= 844;
  };
  return {
    bannerOnScreen: !banner.hidden && onScreen(banner),
    sendOnScreen: onScreen(document.getElementById("send")),
    wide: document.documentElement.scrollWidth > 390,
    badge: b.dataset.state,
    label: b.textContent.trim(),
    banner: banner.hidden ? null : document.getElementById("banner-text").textContent,
    sendDisabled: document.getElementById("send").disabled,
    inputDisabled: document.getElementById("message").disabled,
    note: note.hidden ? null : note.textContent,
    outbox: [...document.querySelectorAll("#outbox li")].map((li) => ({ text: li.querySelector(".text").textContent, status: li.querySelector(".status")?.textContent })),
    log: [...document.querySelectorAll("#log .msg .text")].map((e) => e.textContent),
    state: c.state,
    sources,
    bodyText: document.body.innerText,
  };
});

async function say(page, text) {
  await page.fill("#message", text);
  await page.click("#send");
}

async function overTransport(browser, transport) {
  const tag = `restart over ${transport}`;
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const channel = `restart-${transport}-${Date.now()}`;
  await page.goto(`${base}/?${new URLSearchParams({ channel, transport, nick: "rita" })}`, { timeout: WAIT });
  await page.waitForFunction((t) => window.__switchboard?.client.state === "open" && window.__switchboard.client.transport === t, transport, { timeout: WAIT });
  // Fast first retries, so the page is back soon after the server (the backoff still grows).
  await page.evaluate(() => { window.__switchboard.client.minDelay = 300; window.__switchboard.client.maxDelay = 2000; });

  let v = await view(page);
  r.report(v.badge === "open" && /^Live/.test(v.label) && v.banner === null && !v.sendDisabled && v.note === null,
    `${tag}: open, and the page says so (badge open, no banner, Send enabled)`, `${v.badge} "${v.label}" banner=${v.banner} send disabled=${v.sendDisabled}`);
  await say(page, `before the restart (${transport})`);
  await page.waitForFunction((t) => [...document.querySelectorAll("#log .msg .text")].some((e) => e.textContent === t), `before the restart (${transport})`, { timeout: WAIT });

  // Kill the server; send at once (the page may not know yet).
  const killedAt = Date.now();
  await killServer();
  const atKill = `sent at the kill (${transport})`;
  await say(page, atKill);

  // The page notices and says so.
  let noticedIn = null;
  try {
    await page.waitForFunction(() => document.getElementById("transport").dataset.state === "connecting", null, { timeout: 8000 });
    noticedIn = Date.now() - killedAt;
  } catch { /* reported below */ }
  v = await view(page);
  r.report(noticedIn !== null && v.state === "connecting", `${tag}: the badge leaves "open" once the server is gone`, `${noticedIn} ms; badge ${v.badge} "${v.label}", client ${v.state}, EventSource states ${v.sources.join(",")}`);
  r.report(v.banner !== null && /connection lost/i.test(v.banner) && /reconnecting/i.test(v.banner) && v.bannerOnScreen && v.sendOnScreen && !v.wide,
    `${tag}: a "connection lost, reconnecting" banner is visible (on screen at 390×844, Send too, no sideways scroll)`, `banner: ${v.banner}; on screen ${v.bannerOnScreen}, send ${v.sendOnScreen}, too wide ${v.wide}`);

  const whileDown = `typed while down (${transport})`;
  await say(page, whileDown);
  v = await view(page);
  const queued = v.outbox.find((o) => o.text === whileDown);
  r.report(!v.sendDisabled && queued && queued.status === "queued" && v.note !== null && /queued/.test(v.note) && !v.log.includes(whileDown),
    `${tag}: Send still works while down and the message shows as queued`, `outbox ${JSON.stringify(v.outbox)}; note: ${v.note}`);
  await page.screenshot({ path: path.join(shots, `restart-${transport}-down.png`) });

  // Down for a while: never "open", never the browser's raw error.
  const seen = new Set();
  for (let i = 0; i < 20; i++) {
    const s = await view(page);
    seen.add(`${s.badge}/${s.state}`);
    if (/failed to fetch|networkerror/i.test(s.bodyText)) seen.add("raw error text");
    await sleep(100);
  }
  r.report([...seen].every((s) => s === "connecting/connecting"), `${tag}: while the server is down the page never claims to be open (2 s sampled)`, [...seen].join(" "));

  // Start it again on the same port.
  await startServer();
  const backAt = Date.now();
  let backIn = null;
  try {
    await page.waitForFunction(() => document.getElementById("transport").dataset.state === "open" && document.getElementById("banner").hidden, null, { timeout: 20000 });
    backIn = Date.now() - backAt;
  } catch { /* reported below */ }
  v = await view(page);
  r.report(backIn !== null && v.state === "open" && !v.sendDisabled, `${tag}: the page is open again after the restart, banner gone`, `${backIn} ms; badge ${v.badge} "${v.label}", banner ${v.banner}`);

  const sent = [atKill, whileDown];
  const countIn = (texts, t) => texts.filter((x) => x === t).length;
  const shown = await until(async () => {
    const s = await view(page);
    return sent.every((t) => countIn(s.log, t) === 1) && s.outbox.length === 0 ? s : null;
  }, WAIT, "the queued messages on the page").catch(() => view(page));
  await page.screenshot({ path: path.join(shots, `restart-${transport}-back.png`) });
  const texts = async () => (await hub.history(channel, "?since=0&limit=1000")).messages.map((m) => m.data?.text ?? m.data);
  let stored = await texts();
  r.report(
    JSON.stringify(stored.filter((t) => sent.includes(t))) === JSON.stringify(sent),
    `${tag}: the messages sent while down were published once each, in order, after the restart`,
    `restarted server holds ${JSON.stringify(stored)}`,
  );
  r.report(sent.every((t) => countIn(shown.log, t) === 1) && shown.outbox.length === 0, `${tag}: the page shows each once, nothing left queued`, `log ${JSON.stringify(shown.log)}; outbox ${JSON.stringify(shown.outbox)}`);
  await sleep(1500);
  stored = await texts();
  const late = await view(page);
  r.report(sent.every((t) => countIn(stored, t) === 1 && countIn(late.log, t) === 1), `${tag}: still exactly once a moment later (no late resend)`, JSON.stringify(stored));

  await say(page, `after the restart (${transport})`);
  const after = await page.waitForFunction((t) => [...document.querySelectorAll("#log .msg .text")].some((e) => e.textContent === t), `after the restart (${transport})`, { timeout: WAIT }).then(() => true, () => false);
  r.report(after, `${tag}: a message sent afterwards arrives as usual`);
  const final = await view(page);
  r.report(!/failed to fetch|networkerror/i.test(final.bodyText) && errors.length === 0, `${tag}: no raw network error text and no page errors`, errors.join("; "));
  await context.close();
}

let browser;
try {
  await startServer();
  r.report(true, `serve started (pid ${server.pid}) on ${base}`);
  browser = await chromium.launch({ executablePath: args.chromium ?? "/usr/bin/chromium", args: CHROMIUM_ARGS, timeout: 60000 });
  for (const t of transports) {
    try {
      if (!server) await startServer();
      await overTransport(browser, t);
    } catch (e) {
      r.report(false, `restart over ${t}: aborted`, String(e.message ?? e).split("\n")[0]);
    }
  }
} catch (e) {
  r.report(false, "restart run", String(e.message ?? e).split("\n")[0]);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) await killServer().catch(() => {});
}
console.log(`screenshots: ${shots}`);
process.exit(r.failed ? 1 : 0);
