// Smoke check of the Socket.IO server with the official client (socket.io-client): two
// clients connect over WebSocket, one emits "pub", the other must receive it as "msg" and
// the sender must not. Run by bench/fanout/run.sh before measuring, so that a broken
// server (or a protocol mismatch with the Rust load client) fails loudly.
//
// usage: node socketio-smoke.js --port PORT     (exit 0 on success)
"use strict";
const { io } = require("socket.io-client");

const argv = process.argv.slice(2);
const port = Number(argv[argv.indexOf("--port") + 1]);
const url = `http://127.0.0.1:${port}`;
const opts = { transports: ["websocket"], reconnection: false, timeout: 5000 };
const timer = setTimeout(() => {
  console.error("socketio-smoke: timed out");
  process.exit(1);
}, 10000);

const a = io(url, opts);
const b = io(url, opts);
let connected = 0;
let echoedToSender = false;
a.on("msg", () => (echoedToSender = true));
b.on("msg", (data) => {
  setTimeout(() => {
    clearTimeout(timer);
    a.close();
    b.close();
    if (data !== "smoke" || echoedToSender) {
      console.error(`socketio-smoke: got ${JSON.stringify(data)}, sender echoed: ${echoedToSender}`);
      process.exit(1);
    }
    console.log("socketio-smoke: ok (socket.io-client " + require("socket.io-client/package.json").version + ")");
    process.exit(0);
  }, 100);
});
for (const s of [a, b]) {
  s.on("connect_error", (e) => {
    console.error(`socketio-smoke: connect_error ${e.message}`);
    process.exit(1);
  });
  s.on("connect", () => {
    if (++connected === 2) a.emit("pub", "smoke");
  });
}
