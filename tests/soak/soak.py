#!/usr/bin/env python3
"""Soak client for `switchboard serve` (run by tests/soak/run.sh, which starts the hub).

Holds IDLE WebSocket connections to the chat room /ws/soak (plain text frames), publishes
RATE messages per second for DURATION seconds, in turn over REST and from WS_PUBLISHERS
publisher connections on /ws (the JSON protocol; each publish waits for its ack, so the
order is known), samples the hub's RSS, then checks that every connection received every
message, in order. Loopback only; bounded in time and
count. Prints one summary line per check and exits non-zero on any failure.
"""

import asyncio
import os
import sys
import time

HOST = "127.0.0.1"


def env(name, default):
    return type(default)(os.environ.get(name, default))


PORT = env("SOAK_PORT", 0)
IDLE = env("SOAK_CONNECTIONS", 10000)
DURATION = env("SOAK_SECONDS", 180.0)
RATE = env("SOAK_RATE", 2.0)
HUB_PID = env("SOAK_HUB_PID", 0)
WS_PUBLISHERS = env("SOAK_WS_PUBLISHERS", 3)

HANDSHAKE = (
    "GET /ws/soak HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


class Subscriber:
    def __init__(self):
        self.got = []
        self.error = None

    async def run(self, ready):
        try:
            reader, writer = await asyncio.open_connection(HOST, PORT)
            writer.write(HANDSHAKE.format(host=HOST, port=PORT).encode())
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(head[:60])
            ready()
            self.writer = writer
            while True:
                b0, b1 = await reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = int.from_bytes(await reader.readexactly(2), "big")
                elif n == 127:
                    n = int.from_bytes(await reader.readexactly(8), "big")
                payload = await reader.readexactly(n)
                opcode = b0 & 0x0F
                if opcode == 1:
                    self.got.append(payload.decode())
                elif opcode == 9:  # ping: answer with a masked pong
                    writer.write(bytes([0x8A, 0x80 | len(payload), 0, 0, 0, 0]) + payload)
                elif opcode == 8:
                    return
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            self.error = self.error or repr(e)
        except Exception as e:  # noqa: BLE001 - reported in the summary
            self.error = repr(e)


def masked_text(text):
    """One masked client text frame (mask key 0: the bytes stay as they are)."""
    data = text.encode()
    n = len(data)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    else:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + data


class WsPublisher:
    """A /ws connection that publishes to channel `soak` and waits for each ack."""

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(HOST, PORT)
        self.writer.write(HANDSHAKE.replace("/ws/soak", "/ws").format(host=HOST, port=PORT).encode())
        await self.writer.drain()
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"publisher handshake: {head[:60]!r}")

    async def publish(self, i):
        self.writer.write(masked_text(f'{{"op":"publish","channel":"soak","data":"m{i}","ref":{i}}}'))
        await self.writer.drain()
        while True:
            b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), 30)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await self.reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await self.reader.readexactly(8), "big")
            payload = await self.reader.readexactly(n)
            opcode = b0 & 0x0F
            if opcode == 9:
                self.writer.write(bytes([0x8A, 0x80 | len(payload), 0, 0, 0, 0]) + payload)
            elif opcode == 8:
                raise RuntimeError(f"publisher closed: {payload[:60]!r}")
            elif opcode == 1:
                text = payload.decode()
                if '"op":"ack"' in text and f'"ref":{i}' in text:
                    return
                if '"op":"error"' in text:
                    raise RuntimeError(f"publish {i}: {text[:120]}")


async def publish_rest(i):
    body = f"m{i}".encode()
    reader, writer = await asyncio.open_connection(HOST, PORT)
    writer.write(
        b"POST /api/channels/soak/messages HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
        + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"publish {i}: {answer[:80]!r}")


async def main():
    subs = [Subscriber() for _ in range(IDLE)]
    opened = 0

    def ready():
        nonlocal opened
        opened += 1

    started = time.monotonic()
    tasks = []
    for i, s in enumerate(subs):
        tasks.append(asyncio.create_task(s.run(ready)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)
    while opened < IDLE and time.monotonic() - started < 120:
        await asyncio.sleep(0.2)
    print(f"soak: {opened}/{IDLE} connections open in {time.monotonic() - started:.1f}s", flush=True)
    if opened < IDLE:
        errors = [s.error for s in subs if s.error][:3]
        print(f"FAIL soak: not every connection opened {errors}")
        return 1
    publishers = [WsPublisher() for _ in range(WS_PUBLISHERS)]
    for p in publishers:
        await p.open()

    async def publish(i):
        # In turn: REST, then each /ws publisher.
        k = i % (WS_PUBLISHERS + 1)
        if k == 0:
            await publish_rest(i)
        else:
            await publishers[k - 1].publish(i)

    rss = [(0.0, rss_kib(HUB_PID))]
    published = 0
    t0 = time.monotonic()
    next_sample = t0 + 10
    while time.monotonic() - t0 < DURATION:
        await publish(published)
        published += 1
        now = time.monotonic()
        if now >= next_sample:
            rss.append((now - t0, rss_kib(HUB_PID)))
            next_sample += 10
        await asyncio.sleep(max(0.0, t0 + published / RATE - time.monotonic()))
    # Let the last message reach everyone.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(len(s.got) < published for s in subs):
        await asyncio.sleep(0.2)
    rss.append((time.monotonic() - t0, rss_kib(HUB_PID)))
    want = [f"m{i}" for i in range(published)]
    complete = sum(1 for s in subs if s.got == want)
    errors = [s.error for s in subs if s.error][:3]
    # The first samples include warm-up (per-connection write buffers and allocator arenas
    # reach their working size with the first messages): flatness is judged from the middle
    # of the run on.
    first, peak, last = rss[len(rss) // 2][1], max(r for _, r in rss), rss[-1][1]
    print(
        f"soak: {IDLE} connections, {published} messages over {DURATION:.0f}s at {RATE}/s "
        f"(REST and {WS_PUBLISHERS} /ws publishers in turn); "
        f"{complete}/{IDLE} got every message in order",
        flush=True,
    )
    print(
        "soak: hub RSS KiB "
        + " ".join(f"{t:.0f}s={r}" for t, r in rss)
        + f" (mid-run {first}, peak {peak}, last {last})"
    )
    ok = True
    if complete != IDLE:
        print(f"FAIL soak: {IDLE - complete} connections missed messages {errors}")
        ok = False
    # Flat: the last sample within 10% (and 4 MiB) of the mid-run one.
    if last > first * 1.10 + 4096:
        print(f"FAIL soak: RSS grew from {first} to {last} KiB")
        ok = False
    for s in subs:
        if hasattr(s, "writer"):
            s.writer.close()
    for t in tasks:
        t.cancel()
    if ok:
        print("PASS soak")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
