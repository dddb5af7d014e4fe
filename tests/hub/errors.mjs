// Refusals show at connect time on the chat page, over each transport (headless Chromium).
//
// usage: node errors.mjs --url http://127.0.0.1:PORT --secret JWT_SECRET [--chromium PATH] [--label TEXT]
//
// The hub must run with `[auth] jwt_secret = JWT_SECRET`. For WebSocket, SSE and long
// polling, with nothing sent by the user:
//   - no token: the page shows the refusal (badge "error", an error banner that talks
//     about the token, Send disabled) within a few seconds, and stops reconnecting;
//   - a token whose rights do not cover the channel: the same, naming the channel
//     (`forbidden`), while a channel the token covers works on the same page setup;
//   - switchboard.js itself, subscribing to a name the hub refuses ("bad name"): an
//     "error" event with fatal: true and code invalid_channel, and channelError() says so;
//   - an invalid ?channel= in the address: the page explains the name rule, connects
//     to nothing and disables Send.
// PASS/FAIL lines; exit 1 on any failure.
import { createHmac } from "node:crypto";
import { CHROMIUM_ARGS, Hub, Reporter, parseArgs, requireInterop, sleep } from "./lib.mjs";

const { chromium } = requireInterop("playwright-core");
const args = parseArgs();
const base = (args.url ?? "").replace(/\/$/, "");
const WAIT = 15000;
const r = new Reporter(args.label ?? "chat page refusals");
if (!base.startsWith("http://127.0.0.1:") || !args.secret) {
  r.report(false, "arguments", "need --url http://127.0.0.1:PORT and --secret");
  process.exit(1);
}

const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
/** An HS256 JWT with these claims, valid for an hour. */
function token(claims) {
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${head}.${createHmac("sha256", args.secret).update(head).digest("base64url")}`;
}
const teamToken = token({ sub: "tess", subscribe: ["team-*"], publish: ["team-*"] });

const view = (page) => page.evaluate(() => {
  const c = window.__switchboard.client;
  const banner = document.getElementById("banner");
  return {
    badge: document.getElementById("transport").dataset.state,
    label: document.getElementById("transport").textContent.trim(),
    kind: banner.hidden ? null : banner.dataset.kind,
    banner: banner.hidden ? null : document.getElementById("banner-text").textContent,
    channelError: document.getElementById("channel-error").hidden ? null : document.getElementById("channel-error").textContent,
    sendDisabled: document.getElementById("send").disabled,
    state: c.state,
    error: c.error && c.error.code,
    chError: window.__switchboard.channel ? (c.channelError(window.__switchboard.channel) || {}).code : null,
    transport: c.transport,
    channels: Object.keys(c.channels),
    retries: window.__retries,
  };
});

async function open(context, query) {
  const page = await context.newPage();
  await page.goto(`${base}/?${new URLSearchParams(query)}`, { timeout: WAIT });
  // Count the client's reconnect attempts from here on.
  await page.evaluate(() => {
    window.__retries = 0;
    window.__switchboard.client.on("retry", () => { window.__retries += 1; });
  });
  return page;
}

async function overTransport(browser, transport) {
  const tag = `refusals over ${transport}`;
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });

  // No token at all.
  let page = await open(context, { channel: "team-a", transport, nick: "nobody" });
  let t0 = Date.now();
  let ok = await page.waitForFunction(() => document.getElementById("transport").dataset.state === "error", null, { timeout: 8000 }).then(() => true, () => false);
  let v = await view(page);
  r.report(ok && v.kind === "error" && /token/i.test(v.banner ?? "") && v.sendDisabled && v.error === "unauthorized" && v.state === "closed",
    `${tag}: without a token the page shows the refusal at connect, Send disabled`, `${Date.now() - t0} ms; ${JSON.stringify(v)}`);
  const retries = v.retries;
  await sleep(2500);
  v = await view(page);
  r.report(v.retries === retries && v.badge === "error", `${tag}: and stops reconnecting (no retry in 2.5 s)`, `retries ${retries} -> ${v.retries}`);
  await page.close();

  // A token without rights on this channel.
  page = await open(context, { channel: "secret-room", transport, nick: "tess", token: teamToken });
  t0 = Date.now();
  ok = await page.waitForFunction(() => document.getElementById("transport").dataset.state === "error", null, { timeout: 8000 }).then(() => true, () => false);
  v = await view(page);
  r.report(ok && v.kind === "error" && /#secret-room/.test(v.banner ?? "") && v.sendDisabled && v.chError === "forbidden",
    `${tag}: a token without rights on the channel is refused at connect, naming the channel`, `${Date.now() - t0} ms; ${JSON.stringify(v)}`);
  await page.close();

  // The same token on a channel it covers: works.
  page = await open(context, { channel: "team-a", transport, nick: "tess", token: teamToken });
  ok = await page.waitForFunction(() => window.__switchboard.client.state === "open", null, { timeout: WAIT }).then(() => true, () => false);
  await page.fill("#message", `tess over ${transport}`);
  await page.click("#send");
  const got = await page.waitForFunction((t) => [...document.querySelectorAll("#log .msg .text")].some((e) => e.textContent === t), `tess over ${transport}`, { timeout: WAIT }).then(() => true, () => false);
  v = await view(page);
  r.report(ok && got && v.badge === "open" && v.banner === null, `${tag}: with a token that covers the channel the page is open and chats`, JSON.stringify({ badge: v.badge, banner: v.banner }));

  // The library itself, on a name the hub refuses.
  const lib = await page.evaluate(([tr, tok]) => new Promise((resolve) => {
    const c = new Switchboard({ transport: tr, token: tok });
    const timer = setTimeout(() => resolve({ timeout: true }), 8000);
    c.on("error", (e) => {
      if (e.channel !== "bad name") return;
      clearTimeout(timer);
      const out = { code: e.code, fatal: e.fatal, channelError: (c.channelError("bad name") || {}).code };
      c.close();
      resolve(out);
    });
    c.subscribe("bad name", () => {});
  }), [transport, teamToken]);
  r.report(lib.code === "invalid_channel" && lib.fatal === true && lib.channelError === "invalid_channel",
    `${tag}: switchboard.js reports a refused channel name as a fatal channel error at subscribe`, JSON.stringify(lib));
  await page.close();
  await context.close();
}

const hub = new Hub(base);
let browser;
try {
  const health = await hub.request("GET", "/healthz");
  r.report(health.json?.status === "ok", "hub is up (/healthz)");
  const refused = await hub.request("GET", "/api/channels/team-a/messages", { allowError: true });
  r.report(refused.status === 401, "the hub runs with auth (a request without a token is 401)", `${refused.status}`);
  browser = await chromium.launch({ executablePath: args.chromium ?? "/usr/bin/chromium", args: CHROMIUM_ARGS, timeout: 60000 });
  for (const t of ["websocket", "sse", "poll"]) {
    try {
      await overTransport(browser, t);
    } catch (e) {
      r.report(false, `refusals over ${t}: aborted`, String(e.message ?? e).split("\n")[0]);
    }
  }
  // An invalid channel in the address: explained, nothing connected.
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
  const page = await open(context, { channel: "has space", nick: "x", token: teamToken });
  await sleep(1000);
  const v = await view(page);
  r.report(/not a valid channel name/.test(v.channelError ?? "") && v.badge === "error" && v.sendDisabled && v.channels.length === 0 && v.transport === null,
    "an invalid ?channel= is explained, nothing is connected, Send is disabled", JSON.stringify(v));
  await context.close();
} catch (e) {
  r.report(false, "browser run", String(e.message ?? e).split("\n")[0]);
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.exit(r.failed ? 1 : 0);
