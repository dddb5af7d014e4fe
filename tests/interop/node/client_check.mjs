// Node `ws` client against an echo server (`switchboard echo`).
//
// usage: node client_check.mjs --url ws://127.0.0.1:PORT --offer-deflate 0|1 --expect-deflate 0|1 [--protocols a,b] [--label TEXT]
//
// With --protocols, offers those subprotocols and checks that the first is selected.
//
// One connection; checks text, binary and large message echo, then a close
// with code 4000 and a reason that must come back in the server's close frame.
// Whether permessage-deflate was negotiated must match --expect-deflate.
// Prints one PASS/FAIL line per check; exits 1 if any failed.
import { randomBytes } from "node:crypto";
import WebSocket from "ws";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const url = args.url;
const offerDeflate = args["offer-deflate"] === "1";
const expectDeflate = args["expect-deflate"] === "1";
const protocols = args.protocols ? args.protocols.split(",") : [];
const label = args.label ?? `node ws client (perMessageDeflate ${offerDeflate ? "on" : "off"})`;
let failed = 0;

function report(ok, what, detail = "") {
  console.log(`${ok ? "PASS" : "FAIL"} ${label}: ${what}${detail ? ` (${detail})` : ""}`);
  if (!ok) failed += 1;
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Queue of received messages so that each echo is awaited in order.
function messageQueue(ws) {
  const items = [];
  const waiters = [];
  ws.on("message", (data, isBinary) => {
    const item = { data, isBinary };
    if (waiters.length) waiters.shift()(item);
    else items.push(item);
  });
  return () => (items.length ? Promise.resolve(items.shift()) : new Promise((resolve) => waiters.push(resolve)));
}

async function echo(ws, next, payload, binary, what) {
  try {
    ws.send(payload, { binary });
    const got = await withTimeout(next(), 15000, `the echo of ${what}`);
    const want = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, "utf8");
    const same = got.isBinary === binary && Buffer.compare(Buffer.from(got.data), want) === 0;
    report(same, `${what} echoed`, same ? `${want.length} bytes` : `got ${got.isBinary ? "binary" : "text"} of ${got.data.length} bytes`);
  } catch (e) {
    report(false, `${what} echoed`, e.message);
  }
}

async function main() {
  const options = offerDeflate ? { perMessageDeflate: { threshold: 0 } } : { perMessageDeflate: false };
  const ws = new WebSocket(url, protocols, options);
  const next = messageQueue(ws);
  const closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on("error", (e) => console.log(`    (ws error: ${e.message})`));
  try {
    await withTimeout(new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    }), 10000, "the handshake");
    report(true, "handshake");
  } catch (e) {
    report(false, "handshake", e.message);
    return;
  }
  if (protocols.length) {
    report(ws.protocol === protocols[0], `offered ${protocols.join(",")}: the first is selected`, `protocol '${ws.protocol}'`);
  }
  const negotiated = ws.extensions.includes("permessage-deflate");
  report(negotiated === expectDeflate, `permessage-deflate ${expectDeflate ? "negotiated" : "not negotiated"}`,
    `Sec-WebSocket-Extensions: '${ws.extensions}'`);

  await echo(ws, next, "hello, switchboard", false, "short text");
  await echo(ws, next, "h\u00e9llo \u2713 \u{1F680} \u4e16\u754c", false, "multi-byte UTF-8 text");
  await echo(ws, next, randomBytes(65536), true, "64 KiB random binary");
  await echo(ws, next, "chat ".repeat(200000), false, "1 MB compressible text");
  await echo(ws, next, Buffer.alloc(0), true, "empty binary");

  ws.close(4000, "bye");
  try {
    const { code, reason } = await withTimeout(closed, 10000, "the close handshake");
    report(code === 4000 && reason === "bye", "close 4000 'bye' echoed by the server", `got ${code} '${reason}'`);
  } catch (e) {
    report(false, "close 4000 'bye' echoed by the server", e.message);
  }
}

main()
  .catch((e) => report(false, "unexpected error", e.stack))
  .finally(() => process.exit(failed ? 1 : 0));
