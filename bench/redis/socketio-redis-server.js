// One Socket.IO node of the multi-node benchmark: every "pub" event is broadcast as "msg" to
// every other socket on every node, through @socket.io/redis-adapter (Redis pub/sub), the
// documented way to run Socket.IO on several nodes.
//
// usage: node socketio-redis-server.js --port PORT --redis redis://127.0.0.1:6379
//
// Listens on 127.0.0.1 only; WebSocket transport only, no compression (as in bench/fanout).
"use strict";
const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const argv = process.argv.slice(2);
const arg = (name) => argv[argv.indexOf(name) + 1];
const port = Number(arg("--port"));
const url = arg("--redis");
if (!Number.isInteger(port) || port <= 0 || !url) {
  console.error("usage: node socketio-redis-server.js --port PORT --redis URL");
  process.exit(2);
}

async function main() {
  const pub = createClient({ url });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = http.createServer((req, res) => {
    res.writeHead(404);
    res.end();
  });
  const io = new Server(httpServer, {
    transports: ["websocket"],
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
    adapter: createAdapter(pub, sub),
  });
  io.on("connection", (socket) => {
    socket.on("pub", (data) => socket.broadcast.emit("msg", data));
  });
  httpServer.listen(port, "127.0.0.1", 4096, () => {
    console.log(`socket.io ${require("socket.io/package.json").version} + redis-adapter on 127.0.0.1:${port}`);
  });
  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
      io.close();
      process.exit(0);
    });
  }
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
