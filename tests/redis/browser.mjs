// tests/redis/browser.mjs - a chat page in headless Chromium moves from node A to node B.
//
// usage: node browser.mjs --bin SWITCHBOARD_BIN --logs DIR [--nginx /usr/sbin/nginx]
//
// Two `switchboard serve --redis` nodes on one redis-server, behind a real nginx whose
// upstream is A with B as backup. The chat page (web/index.html + switchboard.js, over
// WebSocket) is opened through nginx, so it lands on A; a publisher sends to B over REST the
// whole time. A is SIGKILLed; the page reconnects through nginx, now to B, with its last id.
// It must end up with every published message exactly once, in id order, and no reset.
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { CHROMIUM_ARGS, Reporter, parseArgs, requireInterop, sleep, until } from "../hub/lib.mjs";

const { chromium } = requireInterop("playwright-core");
const args = parseArgs();
const BIN = args.bin;
const NGINX = args.nginx ?? "/usr/sbin/nginx";
const LOGS = args.logs ?? fs.mkdtempSync("/tmp/switchboard-redis-browser-");
fs.mkdirSync(LOGS, { recursive: true });
const r = new Reporter("redis browser");
const WAIT = 15000;

const children = new Set();
function launch(name, cmd, argv, env = {}) {
  const out = fs.openSync(path.join(LOGS, `${name}.log`), "a");
  const child = spawn(cmd, argv, { stdio: ["ignore", out, out], env: { ...process.env, ...env } });
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const portOpen = (port) =>
  new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("connect", () => (c.destroy(), resolve(true)));
    c.once("error", () => resolve(false));
  });

async function main() {
  const redisPort = await freePort();
  launch("redis", "redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
  await until(() => portOpen(redisPort), 10000, "redis-server");
  const nodes = {};
  for (const name of ["A", "B"]) {
    const port = await freePort();
    const toml = path.join(LOGS, `browser-${name}.toml`);
    fs.writeFileSync(toml, '[rate_limit]\nmessages_per_second = 0.0\n[broker]\ncheck_interval_ms = 500\n');
    nodes[name] = { port, child: launch(`browser-${name}`, BIN, ["serve", "--listen", `127.0.0.1:${port}`, "--config", toml, "--redis", `redis://127.0.0.1:${redisPort}`]) };
    await until(() => portOpen(port), 20000, `node ${name}`);
  }
  const prefix = fs.mkdtempSync("/tmp/switchboard-redis-nginx-");
  fs.chmodSync(prefix, 0o755);
  for (const d of ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]) {
    fs.mkdirSync(path.join(prefix, d));
    fs.chmodSync(path.join(prefix, d), 0o777);
  }
  const front = await freePort();
  fs.writeFileSync(
    path.join(prefix, "nginx.conf"),
    `daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log info;
events { worker_connections 256; }
http {
  access_log ${prefix}/access.log;
  client_body_temp_path ${prefix}/client_body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  upstream hubs {
    server 127.0.0.1:${nodes.A.port} max_fails=1 fail_timeout=30s;
    server 127.0.0.1:${nodes.B.port} backup;
  }
  server {
    listen 127.0.0.1:${front};
    location / {
      proxy_pass http://hubs;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "Upgrade";
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_read_timeout 60s;
      proxy_connect_timeout 2s;
    }
  }
}
`,
  );
  const nginx = launch("nginx", NGINX, ["-p", prefix, "-c", path.join(prefix, "nginx.conf"), "-e", path.join(prefix, "error.log")]);
  await until(() => portOpen(front), 10000, "nginx");
  void nginx;

  const channel = `move-${Date.now()}`;
  const browser = await chromium.launch({ executablePath: args.chromium ?? "/usr/bin/chromium", args: CHROMIUM_ARGS });
  let published = 0,
    stop = false;
  const acked = [];
  let go;
  const started = new Promise((res) => (go = res));
  const publisher = (async () => {
    await started;
    while (!stop) {
      const res = await fetch(`http://127.0.0.1:${nodes.B.port}/api/channels/${channel}/messages`, {
        method: "POST",
        body: `m${published}`,
        headers: { "content-type": "text/plain" },
        signal: AbortSignal.timeout(5000),
      }).catch(() => null);
      if (res?.ok) acked.push((await res.json()).id);
      published += 1;
      await sleep(40);
    }
  })();
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${front}/?channel=${channel}&transport=websocket&nick=mover`, { timeout: WAIT });
    await page.waitForFunction(() => window.__switchboard?.client.state === "open", null, { timeout: WAIT });
    go();
    await until(async () => (await page.evaluate(() => window.__switchboard.received.length)) >= 10, WAIT, "the page to receive messages on A");
    const beforeKill = await page.evaluate(() => window.__switchboard.received.length);
    nodes.A.child.kill("SIGKILL");
    r.report(true, `node A SIGKILLed after the page received ${beforeKill} messages through nginx`);
    await page.waitForFunction(() => window.__switchboard.client.state === "open" && window.__switchboard.received.length > 0, null, { timeout: WAIT });
    await sleep(2000);
    stop = true;
    await publisher;
    const last = acked[acked.length - 1];
    await until(async () => (await page.evaluate(() => window.__switchboard.received.map((m) => m.id))).includes(last), WAIT, `message ${last} on the page`).catch(() => {});
    await sleep(500);
    const got = await page.evaluate(() => window.__switchboard.received.map((m) => m.id));
    const resets = await page.evaluate(() => window.__switchboard.resets.length);
    const wantIds = Array.from({ length: last }, (_, i) => i + 1);
    const exact = got.length === wantIds.length && got.every((id, i) => id === wantIds[i]);
    r.report(exact && resets === 0, `after the move to B the page holds messages 1..${last} exactly once, in order, no reset`, exact ? `${acked.length} acknowledged` : `got ${got.length} ids, first difference at ${got.findIndex((id, i) => id !== wantIds[i])}; resets ${resets}`);
    const access = fs.readFileSync(path.join(prefix, "access.log"), "utf8");
    const upgrades = access.split("\n").filter((l) => /"GET \/ws[ ?]/.test(l) && /" 101 /.test(l)).length;
    const metricsB = await (await fetch(`http://127.0.0.1:${nodes.B.port}/metrics`)).text();
    const wsOnB = Number((metricsB.match(/^switchboard_connections_total\{transport="websocket"\} (\d+)/m) ?? [])[1]);
    r.report(upgrades >= 1 && wsOnB >= 1, "the page's WebSocket went through nginx to A, then to B", `${upgrades} finished upgrade(s) through nginx (the one to A), ${wsOnB} WebSocket connections on B`);
  } catch (e) {
    r.report(false, "the move from A to B", e.message);
  } finally {
    stop = true;
    go();
    await browser.close();
    fs.rmSync(prefix, { recursive: true, force: true });
  }
  process.exit(r.failed ? 1 : 0);
}

main();
