// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) against an echo server.
//
// usage: node browser_check.mjs --ws-port PORT --expect-deflate 0|1 [--protocols a,b] [--chromium /usr/bin/chromium] [--label TEXT]
//
// Serves echo.html from a throw-away HTTP server on 127.0.0.1 (so the page has a
// real http:// Origin), opens it in a fresh Chromium profile, and reports the
// page's checks (readyState, bufferedAmount, events, text/binary echo, close code
// and reason, permessage-deflate) as PASS/FAIL lines. Exits 1 if any failed.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const argv = process.argv.slice(2);
const arg = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const wsPort = arg("--ws-port");
const expectDeflate = arg("--expect-deflate", "1");
const executablePath = arg("--chromium", "/usr/bin/chromium");
const protocols = arg("--protocols", "");
const label = arg("--label", "chromium -> switchboard echo");
let failed = 0;
function report(ok, what, detail = "") {
  console.log(`${ok ? "PASS" : "FAIL"} ${label}: ${what}${detail !== "" ? ` (${detail})` : ""}`);
  if (!ok) failed += 1;
}

const page = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "echo.html"));
const httpServer = http.createServer((req, res) => {
  if (req.url.startsWith("/echo.html")) {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
    res.end(page);
  } else {
    res.writeHead(404);
    res.end();
  }
});

const profile = mkdtempSync(path.join(tmpdir(), "switchboard-chromium-"));
let context;
try {
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const httpPort = httpServer.address().port;
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
    ],
    timeout: 60000,
  });
  report(true, "chromium started", context.browser()?.version() ?? "persistent context");
  const tab = context.pages()[0] ?? (await context.newPage());
  const consoleLines = [];
  tab.on("console", (m) => consoleLines.push(`console.${m.type()}: ${m.text()}`));
  tab.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  await tab.goto(`http://127.0.0.1:${httpPort}/echo.html?ws=${wsPort}&deflate=${expectDeflate}&protocols=${encodeURIComponent(protocols)}`);
  await tab.waitForFunction(() => window.__done === true, null, { timeout: 60000 });
  const results = await tab.evaluate(() => window.__results);
  if (!results.length) report(false, "the page ran no checks");
  for (const r of results) report(r.ok, r.what, r.detail);
  if (failed) for (const l of consoleLines) console.log(`    | ${l}`);
} catch (e) {
  report(false, "browser run", e.message.split("\n")[0]);
} finally {
  if (context) await context.close().catch(() => {});
  httpServer.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
