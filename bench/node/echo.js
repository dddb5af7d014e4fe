// Node `ws` echo server for the benchmark harness, written the way ws's README shows:
// a WebSocketServer and `ws.send(data)` in the 'message' handler. Compression off, Nagle off,
// like every other server in the harness. Usage: node echo.js --listen 127.0.0.1:9104
'use strict';
const { WebSocketServer } = require('ws');

const i = process.argv.indexOf('--listen');
const listen = i >= 0 ? process.argv[i + 1] : '127.0.0.1:9001';
const cut = listen.lastIndexOf(':');
const host = listen.slice(0, cut).replace(/^\[|\]$/g, '');
const port = Number(listen.slice(cut + 1));

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws, req) => {
  req.socket.setNoDelay(true);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`listening on ${host}:${port}`));
