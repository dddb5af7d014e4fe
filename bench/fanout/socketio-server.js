// The Socket.IO side of the fan-out benchmark: every "pub" event a client emits is
// broadcast as "msg" to every other connected client — the same job as a message published
// on one switchboard channel that every subscriber is on.
//
// usage: node socketio-server.js --port PORT
//
// Listens on 127.0.0.1 only. WebSocket transport only (the load client never long-polls),
// no compression (switchboard does not compress hub frames either), everything else at
// Socket.IO's defaults. `socket.broadcast.emit` encodes the packet once and hands the same
// frame to every socket (engine.io's pre-encoded WebSocket frames).
"use strict";
const http = require("node:http");
const { Server } = require("socket.io");

const argv = process.argv.slice(2);
const port = Number(argv[argv.indexOf("--port") + 1]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node socketio-server.js --port PORT");
  process.exit(2);
}

const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const io = new Server(httpServer, {
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  cors: undefined,
});
io.on("connection", (socket) => {
  socket.on("pub", (data) => socket.broadcast.emit("msg", data));
});
httpServer.listen(port, "127.0.0.1", 4096, () => {
  console.log(`socket.io ${require("socket.io/package.json").version} listening on 127.0.0.1:${port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}
