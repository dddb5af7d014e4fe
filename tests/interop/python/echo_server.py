"""Python `websockets` echo server: the peer for `switchboard connect` interop checks.

usage: echo_server.py --port PORT [--no-compression]

Listens on 127.0.0.1:PORT. Behaviour shared with node/echo_server.mjs:
  - every text/binary message is echoed back unchanged;
  - the text "close-me" makes the server close with 4001 "server bye";
  - the text "whoami" is answered with "subprotocol=P x-interop=V extensions=E" (the
    negotiated subprotocol, the X-Interop request header and the negotiated
    Sec-WebSocket-Extensions without spaces; "-" when absent);
  - a request for the path /reject is refused with HTTP 403 before the upgrade;
  - the subprotocols "chat" and "superchat" are supported (first one the client offers).
"""

import argparse
import asyncio
import http

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

SUPPORTED = ("chat", "superchat")


async def handler(ws):
    try:
        async for message in ws:
            if message == "close-me":
                await ws.close(4001, "server bye")
                return
            if message == "whoami":
                header = ws.request.headers.get("X-Interop", "-")
                ext = ws.response.headers.get("Sec-WebSocket-Extensions", "") or "-"
                await ws.send("subprotocol=%s x-interop=%s extensions=%s"
                              % (ws.subprotocol or "-", header, ext.replace(" ", "")))
                continue
            await ws.send(message)
    except ConnectionClosed:
        pass


def process_request(ws, request):
    if request.path == "/reject":
        return ws.respond(http.HTTPStatus.FORBIDDEN, "rejected by the interop server\n")
    return None


def select_subprotocol(ws, offered):
    for p in offered:
        if p in SUPPORTED:
            return p
    return None


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--no-compression", action="store_true")
    args = ap.parse_args()
    async with serve(
        handler,
        "127.0.0.1",
        args.port,
        compression=None if args.no_compression else "deflate",
        process_request=process_request,
        select_subprotocol=select_subprotocol,
        subprotocols=list(SUPPORTED),
        max_size=2**25,
        ping_interval=None,
    ) as server:
        print("python websockets echo server on 127.0.0.1:%d" % args.port, flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
