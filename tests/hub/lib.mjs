// Helpers shared by the hub's end-to-end checks (tests/hub/*.mjs).
//
// The npm packages (`ws`, `playwright-core`) are the ones tests/interop/setup.sh installs
// into tests/interop/node_modules: one install serves both suites, so they are loaded
// through a require rooted there rather than from a node_modules of our own.
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** `require` resolving from tests/interop (where setup.sh put the packages). */
export const requireInterop = createRequire(path.join(HERE, "..", "interop", "package.json"));

/** Parses `--name value` pairs. */
export function parseArgs(argv = process.argv.slice(2)) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) out[argv[i].slice(2)] = argv[i + 1];
  }
  return out;
}

/** PASS/FAIL lines with a shared label; `failed` counts the failures. */
export class Reporter {
  constructor(label) {
    this.label = label;
    this.failed = 0;
    this.passed = 0;
  }
  report(ok, what, detail = "") {
    console.log(`${ok ? "PASS" : "FAIL"} ${this.label}: ${what}${detail !== "" ? ` (${detail})` : ""}`);
    if (ok) this.passed += 1;
    else this.failed += 1;
    return ok;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects after `ms` with a message naming `what`. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Polls `fn` (sync or async) until it returns a truthy value; that value, or throws. */
export async function until(fn, ms, what, every = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** A tiny REST client for one hub. Every call has a timeout; non-2xx answers throw. */
export class Hub {
  constructor(base) {
    this.base = base.replace(/\/$/, "");
  }
  async request(method, p, { body, type, timeout = 10000, allowError = false } = {}) {
    const headers = {};
    if (type) headers["content-type"] = type;
    const res = await fetch(this.base + p, { method, headers, body, signal: AbortSignal.timeout(timeout) });
    const text = await res.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON (metrics) */
    }
    if (!res.ok && !allowError) throw new Error(`${method} ${p}: HTTP ${res.status} ${text.slice(0, 200)}`);
    return { status: res.status, json, text };
  }
  /** Publishes a JSON value; the answer ({channel,id,epoch,cursor}). */
  async publish(channel, data) {
    return (await this.request("POST", `/api/channels/${channel}/messages`, { body: JSON.stringify(data), type: "application/json" })).json;
  }
  /** Publishes a text body (becomes a JSON string). */
  async publishText(channel, text) {
    return (await this.request("POST", `/api/channels/${channel}/messages`, { body: text, type: "text/plain; charset=utf-8" })).json;
  }
  async history(channel, query = "") {
    return (await this.request("GET", `/api/channels/${channel}/messages${query}`)).json;
  }
  async poll(channel, query = "", timeout = 30000) {
    return (await this.request("GET", `/poll/${channel}${query}`, { timeout })).json;
  }
  async connections() {
    return (await this.request("GET", "/api/admin/connections")).json.connections;
  }
  async disconnect(query) {
    return (await this.request("POST", `/api/admin/disconnect?${query}`)).json.disconnected;
  }
  /** /metrics as {"name{labels}": value}. */
  async metrics() {
    const { text } = await this.request("GET", "/metrics");
    const out = {};
    for (const line of text.split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const i = line.lastIndexOf(" ");
      out[line.slice(0, i)] = Number(line.slice(i + 1));
    }
    return out;
  }
}

/** Checks that `ids` are strictly increasing (so: in order, no duplicate). */
export function strictlyIncreasing(ids) {
  for (let i = 1; i < ids.length; i++) if (!(ids[i] > ids[i - 1])) return false;
  return true;
}

/** The flags the brief asks Chromium to run with (plus no proxy: loopback only). */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-proxy-server",
];

/**
 * Opens the chat page (web/index.html) of the hub at `base` on `channel` over `transport`
 * as `nick`, and waits until its client is open on that transport. Console lines and page
 * errors go to `consoleLines`.
 */
export async function openChatPage(context, base, { channel, transport, nick }, consoleLines, timeout = 15000) {
  const page = await context.newPage();
  page.on("console", (m) => consoleLines.push(`[${nick}] console.${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => consoleLines.push(`[${nick}] pageerror: ${e.message}`));
  const q = new URLSearchParams({ channel, transport, nick });
  await page.goto(`${base}/?${q}`, { timeout });
  await page.waitForFunction(
    (t) => window.__switchboard && window.__switchboard.client.state === "open" && window.__switchboard.client.transport === t,
    transport,
    { timeout },
  );
  page.nick = nick;
  page.transport = transport;
  return page;
}

/**
 * The frame of a browser check program: runs `before()`, starts headless Chromium with a
 * fresh profile, runs `body(context)`; an exception becomes a FAIL line; then closes the
 * browser, removes the profile, prints the last console lines if anything failed and exits
 * (1 on any failure).
 */
export async function runInChromium({ chromium, executablePath, profilePrefix, reporter, consoleLines }, before, body) {
  const profile = mkdtempSync(path.join(tmpdir(), profilePrefix));
  let context;
  try {
    await before();
    context = await chromium.launchPersistentContext(profile, {
      executablePath: executablePath ?? "/usr/bin/chromium",
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60000,
    });
    await body(context);
  } catch (e) {
    reporter.report(false, "browser run", String(e.message ?? e).split("\n")[0]);
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  if (reporter.failed) for (const l of consoleLines.slice(-40)) console.log(`    | ${l}`);
  process.exit(reporter.failed ? 1 : 0);
}
