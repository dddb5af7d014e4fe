#!/usr/bin/env python3
"""A WebSocket subscriber that stops reading: the hub's slow consumer, on purpose.

usage: slow_subscriber.py --port PORT --channel NAME [--host 127.0.0.1] [--rcvbuf BYTES]
                          [--until-id N] [--drain-timeout SECS] [--max-wait SECS]

Standard library only. Opens a socket with a tiny receive buffer (SO_RCVBUF set before
connecting, so the advertised TCP window stays small), upgrades to the hub's `GET /ws`,
subscribes to the channel, reads the `subscribed` answer, prints

    READY {"local_port": P}

and then reads nothing at all, so the hub's queue for it fills up. It waits for a line
`drain` on stdin (at most --max-wait seconds), then reads whatever the connection still
delivers until the server closes it, message id --until-id has arrived, or --drain-timeout
passes, and prints one line

    DRAINED {"end": "eof"|"reset"|"close"|"until"|"timeout", "bytes": N, "ids": [first, last],
             "count": K, "in_order": bool, "resets": R}

The caller decides what is expected (dropped under the `disconnect` policy, every message
in order under `resume`). Loopback only: the host must be 127.0.0.1 or ::1.
"""

import argparse
import base64
import json
import os
import select
import socket
import struct
import sys
import time


def frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (RFC 6455 section 5.2)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def parse(buf: bytearray):
    """Splits complete unmasked server frames off the front of buf: [(opcode, payload)]."""
    out = []
    while len(buf) >= 2:
        b0, b1 = buf[0], buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                break
            n = struct.unpack_from("!H", buf, 2)[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                break
            n = struct.unpack_from("!Q", buf, 2)[0]
            pos = 10
        if len(buf) < pos + n:
            break
        out.append((b0 & 0x0F, bytes(buf[pos:pos + n])))
        del buf[:pos + n]
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--channel", required=True)
    ap.add_argument("--rcvbuf", type=int, default=4096)
    ap.add_argument("--until-id", type=int, default=0)
    ap.add_argument("--drain-timeout", type=float, default=15.0)
    ap.add_argument("--max-wait", type=float, default=120.0)
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "::1"):
        print("slow_subscriber: loopback only", file=sys.stderr)
        return 2

    family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    s.settimeout(10)
    s.connect((a.host, a.port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: {a.host}:{a.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            print("slow_subscriber: connection closed during the handshake", file=sys.stderr)
            return 1
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        print(f"slow_subscriber: handshake refused: {head[:200]!r}", file=sys.stderr)
        return 1
    buf = bytearray(rest)
    s.sendall(frame(0x1, json.dumps({"op": "subscribe", "channel": a.channel}).encode()))
    subscribed = False
    while not subscribed:
        for op, payload in parse(buf):
            if op == 0x1 and json.loads(payload).get("op") == "subscribed":
                subscribed = True
        if not subscribed:
            chunk = s.recv(4096)
            if not chunk:
                print("slow_subscriber: closed before `subscribed`", file=sys.stderr)
                return 1
            buf += chunk
    print("READY " + json.dumps({"local_port": s.getsockname()[1]}), flush=True)

    # Read nothing until told to (bounded by --max-wait).
    ready, _, _ = select.select([sys.stdin], [], [], a.max_wait)
    if ready:
        sys.stdin.readline()

    ids, total, resets, end = [], 0, 0, "timeout"
    deadline = time.monotonic() + a.drain_timeout
    s.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            end = "reset"
            break
        if not chunk:
            end = "eof"
            break
        total += len(chunk)
        buf += chunk
        done = False
        for op, payload in parse(buf):
            if op == 0x8:
                end, done = "close", True
                break
            if op != 0x1:
                continue
            msg = json.loads(payload)
            if msg.get("op") == "message":
                ids.append(msg["id"])
                if a.until_id and msg["id"] >= a.until_id:
                    end, done = "until", True
            elif msg.get("op") == "reset":
                resets += 1
        if done:
            break
    in_order = all(b == a_ + 1 for a_, b in zip(ids, ids[1:]))
    print(
        "DRAINED "
        + json.dumps(
            {
                "end": end,
                "bytes": total,
                "ids": [ids[0], ids[-1]] if ids else [],
                "count": len(ids),
                "in_order": in_order,
                "resets": resets,
            }
        ),
        flush=True,
    )
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
