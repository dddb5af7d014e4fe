#!/usr/bin/env python3
"""An independent RFC 8441 WebSocket client on the PyPI `h2` package.

It opens WebSocket streams with an extended CONNECT on one HTTP/2 connection (TLS, ALPN
h2) and does its own RFC 6455 framing and permessage-deflate (zlib), so nothing of
Switchboard is on this side. Checks (each prints PASS/FAIL):

  settings      the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL = 1
  echo          text, binary, a fragmented text, ping/pong, close 1000 then END_STREAM
                from the server and no RST_STREAM, without and with permessage-deflate
  two-streams   two WebSockets on one connection at once, interleaved
  refusal       a CONNECT with Sec-WebSocket-Version 8 gets 426 on its stream, and the
                connection goes on serving another WebSocket stream

usage: h2_ws_client.py HOST PORT CAFILE [--expect-no-h2]
  --expect-no-h2: only check that the server does not pick h2 over ALPN (--no-http2).
"""

import os
import socket
import ssl
import struct
import sys
import time
import zlib

import h2.config
import h2.connection
import h2.events
import h2.settings

FAILED = 0
DEADLINE_SECS = 10


def report(ok, name, detail=""):
    global FAILED
    if not ok:
        FAILED += 1
    print(f"{'PASS' if ok else 'FAIL'} h2: python {name}{': ' + detail if detail else ''}", flush=True)


class Stream:
    """One WebSocket stream: received bytes, parsed messages, how it ended."""

    def __init__(self, sid, deflate):
        self.sid = sid
        self.deflate = deflate
        self.status = None
        self.headers = {}
        self.buf = b""
        self.frames = []  # (fin, rsv1, opcode, payload)
        self.ended = False  # the server's END_STREAM
        self.reset = None  # an RST_STREAM error code
        self.slow = False  # True: never give the server's DATA window back (a stalled reader)
        self.inflater = zlib.decompressobj(-15)
        self.compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)

    def parse(self):
        while True:
            b = self.buf
            if len(b) < 2:
                return
            fin, rsv1, opcode = b[0] & 0x80, b[0] & 0x40, b[0] & 0x0F
            if b[1] & 0x80:
                raise AssertionError("server frame is masked")
            n, i = b[1] & 0x7F, 2
            if n == 126:
                if len(b) < 4:
                    return
                n, i = struct.unpack("!H", b[2:4])[0], 4
            elif n == 127:
                if len(b) < 10:
                    return
                n, i = struct.unpack("!Q", b[2:10])[0], 10
            if len(b) < i + n:
                return
            self.frames.append((bool(fin), bool(rsv1), opcode, b[i : i + n]))
            self.buf = b[i + n :]


class Client:
    def __init__(self, host, port, cafile, alpn=("h2",)):
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.set_alpn_protocols(list(alpn))
        raw = socket.create_connection((host, port), timeout=DEADLINE_SECS)
        self.sock = ctx.wrap_socket(raw, server_hostname=host)
        self.alpn = self.sock.selected_alpn_protocol()
        self.authority = f"{host}:{port}"
        self.streams = {}
        self.remote_settings = {}
        self.conn = None

    def start(self):
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, until, what, secs=DEADLINE_SECS):
        """Reads and handles events until until() is true; fails after secs."""
        end = time.monotonic() + secs
        while not until():
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}")
            self.sock.settimeout(max(0.05, end - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise AssertionError(f"connection closed while waiting for {what}")
            for event in self.conn.receive_data(data):
                self.handle(event)
            self.flush()

    def handle(self, event):
        if isinstance(event, h2.events.RemoteSettingsChanged):
            for code, change in event.changed_settings.items():
                self.remote_settings[int(code)] = change.new_value
        elif isinstance(event, h2.events.ResponseReceived):
            s = self.streams[event.stream_id]
            s.headers = dict(event.headers)
            s.status = s.headers.get(":status")
        elif isinstance(event, h2.events.DataReceived):
            s = self.streams[event.stream_id]
            s.buf += event.data
            # Give the window back at once, unless this stream plays a reader that stalled.
            if not s.slow:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            else:
                # The connection window still has to move, or the stall would spread.
                self.conn.increment_flow_control_window(event.flow_controlled_length)
            s.parse()
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.streams[event.stream_id].reset = event.error_code

    def open(self, path, deflate=False, version="13"):
        sid = self.conn.get_next_available_stream_id()
        headers = [
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "https"),
            (":path", path),
            (":authority", self.authority),
            ("sec-websocket-version", version),
            ("origin", f"https://{self.authority}"),
        ]
        if deflate:
            headers.append(("sec-websocket-extensions", "permessage-deflate"))
        self.streams[sid] = Stream(sid, deflate)
        self.conn.send_headers(sid, headers, end_stream=False)
        self.flush()
        s = self.streams[sid]
        self.pump(lambda: s.status is not None or s.reset is not None, f"the response on stream {sid}")
        return s

    def send_frame(self, s, opcode, payload, fin=True, compress=False):
        rsv1 = 0
        if compress:
            payload = s.compressor.compress(payload) + s.compressor.flush(zlib.Z_SYNC_FLUSH)
            payload = payload[:-4]  # RFC 7692 §7.2.1: drop the 00 00 ff ff tail
            rsv1 = 0x40
        head = bytes([(0x80 if fin else 0) | rsv1 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.send_data(s.sid, head + mask + masked)

    def send_data(self, sid, data, end=False):
        while data:
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window <= 0:
                self.pump(lambda: self.conn.local_flow_control_window(sid) > 0, "send window")
                continue
            chunk, data = data[:window], data[window:]
            self.conn.send_data(sid, chunk, end_stream=end and not data)
        self.flush()

    def end_stream(self, sid):
        self.conn.end_stream(sid)
        self.flush()

    def message(self, s):
        """The next whole message on s: (opcode, payload), control frames included."""

        def whole():
            for i, (fin, _, op, _) in enumerate(s.frames):
                if op >= 8 or fin:
                    return i
            return None

        self.pump(lambda: whole() is not None or s.reset is not None, f"a message on stream {s.sid}")
        if s.reset is not None:
            raise AssertionError(f"stream {s.sid} was reset ({s.reset})")
        i = whole()
        frames, s.frames = s.frames[: i + 1], s.frames[i + 1 :]
        first = frames[0]
        opcode = first[2]
        payload = b"".join(f[3] for f in frames)
        if first[1]:
            if not s.deflate:
                raise AssertionError("RSV1 set without permessage-deflate")
            payload = s.inflater.decompress(payload + b"\x00\x00\xff\xff")
        return opcode, payload


def echo_checks(c, path, deflate):
    label = "with permessage-deflate" if deflate else "without compression"
    s = c.open(path, deflate=deflate)
    ext = s.headers.get("sec-websocket-extensions", "")
    ok = s.status == "200" and "sec-websocket-accept" not in s.headers and ("permessage-deflate" in ext) == deflate
    report(ok, f"extended CONNECT {label}: 200", f"status {s.status}, extensions {ext!r}")
    if not ok:
        return
    c.send_frame(s, 0x1, "héllo over h2".encode(), compress=deflate)
    op, data = c.message(s)
    report(op == 0x1 and data == "héllo over h2".encode(), f"text echo {label}", f"opcode {op}, {data[:40]!r}")
    blob = os.urandom(70000)
    c.send_frame(s, 0x2, blob, compress=deflate)
    op, data = c.message(s)
    report(op == 0x2 and data == blob, f"binary 70000 B echo {label}", f"opcode {op}, {len(data)} bytes")
    if not deflate:
        c.send_frame(s, 0x1, b"frag", fin=False)
        c.send_frame(s, 0x0, b"mented", fin=True)
        op, data = c.message(s)
        report(op == 0x1 and data == b"fragmented", "fragmented text echo", f"{data!r}")
    c.send_frame(s, 0x9, b"are you there")
    op, data = c.message(s)
    report(op == 0xA and data == b"are you there", f"ping answered with pong {label}", f"opcode {op}")
    c.send_frame(s, 0x8, struct.pack("!H", 1000) + b"bye")
    op, data = c.message(s)
    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
    c.pump(lambda: s.ended or s.reset is not None, "END_STREAM after the close")
    report(op == 0x8 and code == 1000 and s.ended and s.reset is None,
           f"close 1000 answered, then END_STREAM, no RST_STREAM {label}",
           f"opcode {op}, code {code}, ended {s.ended}, reset {s.reset}")
    c.end_stream(s.sid)


def two_streams(c, path):
    a, b = c.open(path), c.open(path)
    ok = a.status == "200" and b.status == "200"
    if ok:
        for i in range(20):
            c.send_frame(a, 0x1, f"a{i}".encode())
            c.send_frame(b, 0x1, f"b{i}".encode())
        got_a = [c.message(a)[1] for _ in range(20)]
        got_b = [c.message(b)[1] for _ in range(20)]
        ok = got_a == [f"a{i}".encode() for i in range(20)] and got_b == [f"b{i}".encode() for i in range(20)]
        for s in (a, b):
            c.send_frame(s, 0x8, struct.pack("!H", 1000))
            c.message(s)
        c.pump(lambda: a.ended and b.ended, "both streams ended")
        for s in (a, b):
            c.end_stream(s.sid)
    report(ok, "two WebSocket streams on one connection, interleaved 20 messages each",
           f"streams {a.sid} and {b.sid}, statuses {a.status} {b.status}")


def slow_stream(c, path):
    """A stream whose reader stalls must not stall another stream, and the server must
    push back (stop reading it) instead of buffering without bound."""
    slow, fast = c.open(path), c.open(path)
    slow.slow = True
    chunk = os.urandom(16000)
    sent = 0
    end = time.monotonic() + DEADLINE_SECS
    # Feed the slow stream until its send window stays shut: the server echoes until our
    # (unreleased) window for its replies is full, then stops reading, so ours closes too.
    while time.monotonic() < end and sent < 64 << 20:
        if c.conn.local_flow_control_window(slow.sid) < 16100:
            try:
                c.pump(lambda: c.conn.local_flow_control_window(slow.sid) >= 16100, "window", secs=1.5)
                continue
            except AssertionError:
                break
        c.send_frame(slow, 0x2, chunk)
        sent += len(chunk)
    stalled = c.conn.local_flow_control_window(slow.sid) < 16100
    ok_fast = True
    for i in range(50):
        c.send_frame(fast, 0x1, f"fast {i}".encode())
        if c.message(fast) != (0x1, f"fast {i}".encode()):
            ok_fast = False
            break
    report(stalled and sent < 8 << 20,
           "a stalled reader's stream is pushed back (the server stops reading it)",
           f"{sent} bytes accepted before the window stayed shut")
    report(ok_fast, "another stream on the same connection keeps echoing meanwhile", "50 messages")
    c.conn.reset_stream(slow.sid)
    c.send_frame(fast, 0x8, struct.pack("!H", 1000))
    c.message(fast)


def refusal(c, path):
    bad = c.open(path, version="8")
    c.pump(lambda: bad.ended or bad.reset is not None, "the refused stream's end")
    good = c.open(path)
    ok = bad.status == "426" and good.status == "200"
    if ok:
        c.send_frame(good, 0x1, b"still here")
        ok = c.message(good) == (0x1, b"still here")
        c.send_frame(good, 0x8, struct.pack("!H", 1000))
        c.message(good)
    report(ok, "version 8 refused with 426 on its stream; the connection serves the next one",
           f"refused {bad.status}, next {good.status}")


def main():
    host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if "--expect-no-h2" in sys.argv:
        c = Client(host, port, cafile, alpn=("h2", "http/1.1"))
        report(c.alpn == "http/1.1", "--no-http2: offered h2 and http/1.1, the server picks http/1.1", f"ALPN {c.alpn!r}")
        return
    c = Client(host, port, cafile)
    report(c.alpn == "h2", "ALPN h2 picked", f"ALPN {c.alpn!r}")
    if c.alpn != "h2":
        return
    c.start()
    c.pump(lambda: 8 in c.remote_settings, "the server's SETTINGS")
    report(c.remote_settings.get(8) == 1, "SETTINGS_ENABLE_CONNECT_PROTOCOL = 1", f"settings {c.remote_settings}")
    for deflate in (False, True):
        try:
            echo_checks(c, "/echo", deflate)
        except AssertionError as e:
            report(False, f"echo (deflate {deflate})", str(e))
    try:
        two_streams(c, "/echo")
    except AssertionError as e:
        report(False, "two streams", str(e))
    try:
        slow_stream(c, "/echo")
    except AssertionError as e:
        report(False, "slow stream", str(e))
    try:
        refusal(c, "/echo")
    except AssertionError as e:
        report(False, "refusal", str(e))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failure, with its reason
        report(False, "client crashed", f"{type(e).__name__}: {e}")
    sys.exit(1 if FAILED else 0)
