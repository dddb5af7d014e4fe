// Node `ws` echo server: the peer for `switchboard connect` interop checks.
//
// usage: node echo_server.mjs --port PORT [--no-compression]
//
// Listens on 127.0.0.1:PORT. Behaviour shared with python/echo_server.py:
//   - every text/binary message is echoed back unchanged;
//   - the text "close-me" makes the server close with 4001 "server bye";
//   - the text "whoami" is answered with "subprotocol=P x-interop=V extensions=E" (the
//     negotiated subprotocol, the X-Interop request header and the names of the
//     negotiated extensions; "-" when absent);
//   - a request for the path /reject is refused with HTTP 403 before the upgrade;
//   - the subprotocols "chat" and "superchat" are supported (first one the client offers).
// permessage-deflate is accepted (ws's server default is off; turned on here).
import http from "node:http";
import { WebSocketServer } from "ws";

const argv = process.argv.slice(2);
const port = Number(argv[argv.indexOf("--port") + 1]);
const compression = !argv.includes("--no-compression");
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node echo_server.mjs --port PORT [--no-compression]");
  process.exit(2);
}
const SUPPORTED = ["chat", "superchat"];

const wss = new WebSocketServer({
  noServer: true,
  maxPayload: 1 << 25,
  perMessageDeflate: compression ? { threshold: 0 } : false,
  handleProtocols: (offered) => [...offered].find((p) => SUPPORTED.includes(p)) ?? false,
});

wss.on("connection", (ws, req) => {
  ws.on("message", (data, isBinary) => {
    const text = isBinary ? null : data.toString("utf8");
    if (text === "close-me") {
      ws.close(4001, "server bye");
    } else if (text === "whoami") {
      const ext = ws.extensions || "-";
      ws.send(`subprotocol=${ws.protocol || "-"} x-interop=${req.headers["x-interop"] ?? "-"} extensions=${ext}`);
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on("error", () => {});
});

const server = http.createServer((req, res) => {
  res.writeHead(426, { "Content-Type": "text/plain" });
  res.end("WebSocket only\n");
});
server.on("upgrade", (req, socket, head) => {
  if (req.url === "/reject") {
    socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 31\r\nConnection: close\r\n\r\nrejected by the interop server\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit("connection", ws, req));
});
server.listen(port, "127.0.0.1", () => console.log(`node ws echo server on 127.0.0.1:${port}`));
