"""Python `websockets` client against an echo server (`switchboard echo`).

usage: client_check.py --url ws://127.0.0.1:PORT --compression on|off --expect-deflate 0|1

One connection; checks text, binary and large message echo, then a close with
code 4000 and a reason that must come back in the server's close frame. Whether
permessage-deflate was negotiated must match --expect-deflate.
Prints one PASS/FAIL line per check; exits 1 if any failed.
"""

import argparse
import asyncio
import os
import sys

from websockets.asyncio.client import connect

failed = 0
label = ""


def report(ok, what, detail=""):
    global failed
    print("%s %s: %s%s" % ("PASS" if ok else "FAIL", label, what, " (%s)" % detail if detail else ""), flush=True)
    if not ok:
        failed += 1


async def echo(ws, payload, what):
    try:
        await ws.send(payload)
        got = await asyncio.wait_for(ws.recv(), 15)
        same = type(got) is type(payload) and got == payload
        report(same, "%s echoed" % what,
               "%d %s" % (len(payload), "bytes" if isinstance(payload, bytes) else "chars") if same
               else "got %s of length %d" % (type(got).__name__, len(got)))
    except Exception as e:  # report any failure as a FAIL line, never a traceback
        report(False, "%s echoed" % what, repr(e))


async def run(args):
    try:
        ws = await asyncio.wait_for(
            connect(args.url, compression="deflate" if args.compression == "on" else None,
                    max_size=2**24, proxy=None, ping_interval=None),
            10)
    except Exception as e:
        report(False, "handshake", repr(e))
        return
    report(True, "handshake")
    extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
    negotiated = "permessage-deflate" in extensions
    expect = args.expect_deflate == "1"
    report(negotiated == expect, "permessage-deflate %s" % ("negotiated" if expect else "not negotiated"),
           "Sec-WebSocket-Extensions: '%s'" % extensions)

    await echo(ws, "hello, switchboard", "short text")
    await echo(ws, "h\u00e9llo \u2713 \U0001F680 \u4e16\u754c", "multi-byte UTF-8 text")
    await echo(ws, os.urandom(65536), "64 KiB random binary")
    await echo(ws, "chat " * 200000, "1 MB compressible text")
    await echo(ws, b"", "empty binary")

    try:
        await asyncio.wait_for(ws.close(4000, "bye"), 10)
        rcvd = ws.protocol.close_rcvd
        ok = rcvd is not None and rcvd.code == 4000 and rcvd.reason == "bye"
        report(ok, "close 4000 'bye' echoed by the server",
               "got %s '%s'" % (rcvd.code, rcvd.reason) if rcvd else "no close frame received")
    except Exception as e:
        report(False, "close 4000 'bye' echoed by the server", repr(e))


def main():
    global label
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--compression", choices=("on", "off"), default="on")
    ap.add_argument("--expect-deflate", choices=("0", "1"), required=True)
    args = ap.parse_args()
    label = "python websockets client (compression %s)" % args.compression
    asyncio.run(run(args))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
