"""Drive `switchboard connect` against an interop echo server (node/ or python/echo_server).

usage: connect_check.py --bin PATH/switchboard --url ws://127.0.0.1:PORT --peer NAME --expect-deflate 0|1

The peer servers echo every message, answer "whoami" with the negotiated
subprotocol, X-Interop header and extensions, close with 4001 "server bye" on
"close-me", and refuse the path /reject with HTTP 403. Checks:
  1. stdin lines are sent as text and every echo is printed as a line, in order;
     stdin EOF closes with 1000, the peer's close (1000) is printed, exit status 0;
  2. --subprotocol and --header reach the server; permessage-deflate is offered
     and negotiated when --expect-deflate 1;
  3. a close started by the peer (4001 "server bye") is printed with its code and
     reason and the command ends by itself although stdin is still open;
  4. a refused handshake (HTTP 403) exits non-zero and shows the status.
Prints one PASS/FAIL line per check; exits 1 if any failed.
"""

import argparse
import re
import subprocess
import sys
import threading
import time

failed = 0
label = ""


def report(ok, what, detail="", output=None):
    global failed
    print("%s %s: %s%s" % ("PASS" if ok else "FAIL", label, what, " (%s)" % detail if detail else ""), flush=True)
    if not ok:
        failed += 1
        if output is not None:
            for line in output.splitlines()[-15:]:
                print("    | " + line)


class Session:
    """A running `switchboard connect`: lines go to its stdin, its output is collected by threads."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out, self.err = [], []
        self.threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
                        threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True)]
        for t in self.threads:
            t.start()

    @staticmethod
    def _pump(stream, lines):
        for raw in iter(stream.readline, b""):
            lines.append(raw.decode(errors="replace").rstrip("\r\n"))

    def send(self, line):
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def eof(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def wait_stdout(self, predicate, timeout=10):
        """Waits until predicate(stdout lines) holds or the process ended; returns whether it held."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.out)):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader threads drain the pipe
                return predicate(list(self.out))
            time.sleep(0.02)
        return predicate(list(self.out))

    def wait_exit(self, timeout=10):
        """Exit status, or None if it did not end in time (it is then killed)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        for t in self.threads:
            t.join(2)
        return rc

    def transcript(self):
        return "stdout:\n%s\nstderr:\n%s" % ("\n".join(self.out), "\n".join(self.err))

    def all_output(self):
        return "\n".join(self.out + self.err)


def close_line(text, code):
    """A printed line that reports a close with this code (e.g. 'closed: 1000 bye')."""
    pattern = re.compile(r"clos.*\b%d\b" % code, re.IGNORECASE)
    return next((l for l in text.splitlines() if pattern.search(l)), None)


def check_echo(args):
    lines = ["hello from switchboard connect", "h\u00e9llo \u2713 \U0001F680", "third line"]
    sess = Session([args.bin, "connect", args.url + "/echo"])
    for line in lines:
        sess.send(line)
    # Wait for the echoes before closing stdin: a peer may drop messages it has not
    # handled yet once our close arrives (Python websockets does), which is not ours to test.
    sess.wait_stdout(lambda out: all(l in out for l in lines))
    sess.eof()
    rc = sess.wait_exit()
    got = [l for l in sess.out if l in lines]
    report(got == lines, "stdin lines sent and echoes printed in order", "printed %r" % got, sess.transcript())
    line = close_line(sess.all_output(), 1000)
    report(line is not None, "stdin EOF closes with 1000 and the peer's close is printed",
           "line %r" % line if line else "no close line with 1000", sess.transcript())
    report(rc == 0, "exit status 0 after a clean close", "exit %s" % ("timeout" if rc is None else rc),
           sess.transcript())


WHOAMI = re.compile(r"subprotocol=(\S+) x-interop=(\S+) extensions=(\S+)")


def check_options(args):
    sess = Session([args.bin, "connect", args.url + "/who", "--subprotocol", "chat", "--header", "X-Interop: yes-42"])
    sess.send("whoami")
    sess.wait_stdout(lambda out: any(WHOAMI.search(l) for l in out))
    sess.eof()
    sess.wait_exit()
    m = next((WHOAMI.search(l) for l in sess.out if WHOAMI.search(l)), None)
    want = args.expect_deflate == "1"
    deflate_what = "permessage-deflate %s" % ("negotiated" if want else "not negotiated")
    if not m:
        report(False, "--subprotocol and --header reach the server", "no whoami answer printed", sess.transcript())
        report(False, deflate_what, "no whoami answer printed")
        return
    proto, header, ext = m.groups()
    report(proto == "chat" and header == "yes-42", "--subprotocol and --header reach the server",
           "server saw subprotocol=%s x-interop=%s" % (proto, header), sess.transcript())
    report(("permessage-deflate" in ext) == want, deflate_what, "extensions=%s" % ext, sess.transcript())


def check_peer_close(args):
    sess = Session([args.bin, "connect", args.url + "/close"])
    sess.send("close-me")  # stdin stays open: the peer's close alone must end the command
    rc = sess.wait_exit(10)
    sess.eof()
    line = close_line(sess.all_output(), 4001)
    report(line is not None and "server bye" in line, "peer's close 4001 'server bye' is printed",
           "line %r" % line if line else "no close line with 4001", sess.transcript())
    report(rc is not None, "command ends after the peer's close while stdin is still open",
           "exit %s" % rc if rc is not None else "still running after 10 s", sess.transcript())


def check_rejected(args):
    sess = Session([args.bin, "connect", args.url + "/reject"])
    sess.send("never sent")
    sess.eof()
    rc = sess.wait_exit()
    report(rc not in (None, 0) and "403" in sess.all_output(), "refused handshake exits non-zero showing HTTP 403",
           "exit %s" % ("timeout" if rc is None else rc), sess.transcript())


def main():
    global label
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--url", required=True, help="ws://127.0.0.1:PORT of the peer server (no path)")
    ap.add_argument("--peer", required=True, help="name of the peer, for the report")
    ap.add_argument("--expect-deflate", choices=("0", "1"), required=True)
    args = ap.parse_args()
    args.url = args.url.rstrip("/")
    label = "switchboard connect -> %s" % args.peer
    check_echo(args)
    check_options(args)
    check_peer_close(args)
    check_rejected(args)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
