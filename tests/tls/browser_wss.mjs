// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core from
// tests/interop/node_modules) opens a wss:// connection to an echo server whose certificate
// comes from a test CA.
//
// usage: node browser_wss.mjs --url wss://localhost:PORT/ --spki BASE64 [--label TEXT]
//                             [--chromium /usr/bin/chromium]
//
// --spki is the base64 SHA-256 of the server certificate's public key: Chromium trusts it
// through --ignore-certificate-errors-spki-list, the flag made for test certificates (it
// has no flag to add a CA; the certificate chain is still built and the name checked).
// Prints PASS/FAIL lines; exits 1 if any failed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const { chromium } = await import(path.join(here, "../interop/node_modules/playwright-core/index.mjs"));

const argv = process.argv.slice(2);
const arg = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const url = arg("--url");
const spki = arg("--spki");
const label = arg("--label", `chromium -> ${url}`);
const executablePath = arg("--chromium", "/usr/bin/chromium");
let failed = 0;
function report(ok, what, detail = "") {
  console.log(`${ok ? "PASS" : "FAIL"} ${label}: ${what}${detail !== "" ? ` (${detail})` : ""}`);
  if (!ok) failed += 1;
}

const profile = mkdtempSync(path.join(tmpdir(), "switchboard-chromium-wss-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-proxy-server",
      `--ignore-certificate-errors-spki-list=${spki}`,
    ],
    timeout: 60000,
  });
  const tab = context.pages()[0] ?? (await context.newPage());
  const results = await tab.evaluate(async (url) => {
    const out = [];
    const check = (ok, what, detail = "") => out.push({ ok: !!ok, what, detail: String(detail) });
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const next = () =>
      new Promise((resolve, reject) => {
        ws.onmessage = (e) => resolve(e.data);
        ws.onerror = () => reject(new Error("error event"));
        ws.onclose = (e) => reject(new Error(`closed ${e.code} ${e.reason}`));
      });
    try {
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error("error event before open (certificate refused?)"));
        setTimeout(() => reject(new Error("no open event in 15 s")), 15000);
      });
      check(ws.readyState === WebSocket.OPEN, "open over TLS, readyState 1", ws.readyState);
      let reply = next();
      ws.send("hello over wss");
      check((await reply) === "hello over wss", "text echo");
      reply = next();
      ws.send(new Uint8Array([1, 2, 3, 250]).buffer);
      const bin = new Uint8Array(await reply);
      check(bin.length === 4 && bin[3] === 250, "binary echo", Array.from(bin).join(","));
      const big = "x".repeat(200000);
      reply = next();
      ws.send(big);
      check((await reply) === big, "200 kB text echo");
      check(ws.bufferedAmount === 0, "bufferedAmount back to 0", ws.bufferedAmount);
      const closed = new Promise((resolve) => (ws.onclose = resolve));
      ws.close(4000, "bye");
      const e = await closed;
      check(e.code === 4000 && e.reason === "bye" && e.wasClean, "close 4000 'bye', clean", `${e.code} ${e.reason} ${e.wasClean}`);
    } catch (err) {
      check(false, "wss session", err.message);
    }
    return out;
  }, url);
  if (!results.length) report(false, "the page ran no checks");
  for (const r of results) report(r.ok, r.what, r.detail);
} catch (e) {
  report(false, "browser run", e.message.split("\n")[0]);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
