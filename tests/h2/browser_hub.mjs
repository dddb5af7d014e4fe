// Headless Chromium against `switchboard serve --tls-cert --tls-key` (HTTP/2 on):
//   - the page loads over h2 (Navigation Timing's nextHopProtocol);
//   - `new WebSocket("wss://…/ws/chat")` on it runs as an RFC 8441 stream: the hub's
//     /metrics count it under version="2";
//   - ten EventSources on one page all receive a message published to each, and the page
//     still uses one connection (the h2 connection count does not grow);
//   - a chat between this h2 page and a page in a second Chromium started with
//     --disable-http2 (so HTTP/1.1 and a classic upgrade), both ways.
//
// usage: node browser_hub.mjs --base https://localhost:PORT --spki BASE64
// Prints PASS/FAIL lines; exits 1 if any failed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs, Reporter, requireInterop } from "../hub/lib.mjs";

const { chromium } = requireInterop("playwright-core");
const args = parseArgs();
const base = args.base;
const r = new Reporter("h2: chromium");
const WAIT = 15000;

async function launch(extra) {
  const profile = mkdtempSync(path.join(tmpdir(), "switchboard-chromium-h2-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--no-proxy-server", `--ignore-certificate-errors-spki-list=${args.spki}`, ...extra,
    ],
    timeout: 60000,
  });
  return { context, profile };
}

/** One metric's value, read by the page itself (over its own connection). */
async function metric(page, name, version) {
  return page.evaluate(async ([name, version]) => {
    const text = await (await fetch("/metrics")).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name}{version="${version}"}`));
    return line ? Number(line.split(" ").pop()) : NaN;
  }, [name, version]);
}

/** A page of the hub's origin with a chat WebSocket that logs what it gets. */
async function chatPage(context, room) {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${base}/healthz`, { timeout: WAIT });
  const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  await page.evaluate(async ([room, wait]) => {
    window.got = [];
    window.ws = new WebSocket(`wss://${location.host}/ws/${room}`);
    ws.onmessage = (e) => got.push(e.data);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("WebSocket error"));
      setTimeout(() => reject(new Error("WebSocket did not open")), wait);
    });
  }, [room, WAIT]);
  return { page, protocol };
}

const waitFor = (page, text) =>
  page.waitForFunction((t) => window.got.includes(t), text, { timeout: WAIT }).then(() => true, () => false);

const launched = [];
try {
  const a = await launch([]);
  launched.push(a);
  const b = await launch(["--disable-http2"]);
  launched.push(b);

  const ws2Before = await chatPage(a.context, "h2-chat").then(async (p) => {
    r.report(p.protocol === "h2", "the page loads over HTTP/2", `nextHopProtocol ${p.protocol}`);
    return p;
  });
  const pageA = ws2Before.page;
  const ws2 = await metric(pageA, "switchboard_websockets_total", "2");
  r.report(ws2 >= 1, "new WebSocket(\"wss://…/ws/h2-chat\") ran over HTTP/2 (the hub counts it under version=\"2\")", `websockets_total{version="2"} ${ws2}`);

  // Ten EventSources on one page.
  const connsBefore = await metric(pageA, "switchboard_http_connections_total", "2");
  const sse = await pageA.evaluate(async (wait) => {
    const sources = [];
    const got = [];
    for (let i = 0; i < 10; i++) {
      const es = new EventSource(`/sse/h2-many-${i}`);
      got.push(null);
      es.onmessage = (e) => { got[i] = e.data; };
      sources.push(es);
    }
    const deadline = Date.now() + wait;
    while (sources.some((s) => s.readyState !== 1) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (let i = 0; i < 10; i++) {
      await fetch(`/api/channels/h2-many-${i}/messages`, { method: "POST", headers: { "content-type": "text/plain" }, body: `sse ${i}` });
    }
    while (got.some((g) => g === null) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    sources.forEach((s) => s.close());
    return got;
  }, WAIT);
  const all = sse.every((g, i) => g !== null && g.includes(`sse ${i}`));
  r.report(all, "ten EventSources on one page all receive", JSON.stringify(sse));
  const connsAfter = await metric(pageA, "switchboard_http_connections_total", "2");
  r.report(connsAfter - connsBefore <= 1, "…over the page's h2 connection (no new connection per EventSource)", `h2 connections ${connsBefore} -> ${connsAfter}`);

  // A chat between the h2 page and an HTTP/1.1 page.
  const { page: pageB, protocol: protoB } = await chatPage(b.context, "h2-chat");
  r.report(protoB === "http/1.1", "the second browser (--disable-http2) loads over HTTP/1.1", `nextHopProtocol ${protoB}`);
  const ws1 = await metric(pageB, "switchboard_websockets_total", "1.1");
  r.report(ws1 >= 1, "its WebSocket is an HTTP/1.1 upgrade", `websockets_total{version="1.1"} ${ws1}`);
  await pageA.evaluate(() => ws.send("hello from the h2 page"));
  r.report(await waitFor(pageB, "hello from the h2 page"), "h2 page -> HTTP/1.1 page: the message arrives");
  await pageB.evaluate(() => ws.send("hello from the HTTP/1.1 page"));
  r.report(await waitFor(pageA, "hello from the HTTP/1.1 page"), "HTTP/1.1 page -> h2 page: the message arrives");
} catch (error) {
  r.report(false, "browser run", error.message);
} finally {
  for (const { context, profile } of launched) {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}
process.exit(r.failed ? 1 : 0);
