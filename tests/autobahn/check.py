#!/usr/bin/env python3
"""Judge one Autobahn|Testsuite run of switchboard: conformance and expected results.

usage: check.py --side server|client --report DIR --expected FILE [--selected CASES.json]
                [--agent NAME] [--conformance CONFORMANCE.md] [--update-expected]

Prints PASS/FAIL lines (one per check) and exits non-zero if any check failed.

Check 1, conformance: every selected case has a result, and for each of them
  - behavior is OK, or INFORMATIONAL (Autobahn's own informational cases such as
    7.1.6 and 7.13.x report that and nothing else), and
  - behaviorClose is OK or INFORMATIONAL,
  unless CONFORMANCE.md lists the case for this side with the observed value and a
  justification that quotes the RFC (see that file for the table format).
  UNIMPLEMENTED, FAILED, NON-STRICT (unlisted), WRONG CODE, UNCLEAN, ... all fail.

Check 2, expected results: the run's {case id: {behavior, behaviorClose}} (no
durations) equals the checked-in expected file exactly: same case ids, same values.
With --update-expected the file is rewritten from this run instead (check 2 then
passes; check 1 still applies, so a non-conformant run is never silently accepted).
"""

import argparse
import fnmatch
import json
import os
import re
import sys

PASSING = ("OK", "INFORMATIONAL")
NEVER_ALLOWED = {"FAILED", "UNIMPLEMENTED", "MISSING"}
ROW = re.compile(r"^\|\s*([0-9][0-9.*]*)\s*\|\s*(server|client|both)\s*\|\s*([^|]+?)\s*\|\s*(.*?)\s*\|\s*$")


def case_key(case_id):
    try:
        return tuple(int(x) for x in case_id.split("."))
    except ValueError:
        return (1 << 30, case_id)


def load_allowances(path, side, problems):
    """Rows of CONFORMANCE.md's table: | case | side | allowed values | justification |."""
    allowed = []
    if not path or not os.path.exists(path):
        return allowed
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = ROW.match(line.rstrip())  # rows start at column 0; indented examples do not count
            if not m:
                continue
            pattern, row_side, values, why = m.groups()
            if row_side not in (side, "both"):
                continue
            if len(why) < 20 or "RFC" not in why:
                problems.append("%s:%d: allowance for %s has no justification quoting the RFC"
                                % (path, lineno, pattern))
                continue
            vals = {v.strip().upper() for v in values.split(",") if v.strip()}
            never = vals & NEVER_ALLOWED
            if never:
                problems.append("%s:%d: %s can never be allowed (case %s)"
                                % (path, lineno, ", ".join(sorted(never)), pattern))
                vals -= NEVER_ALLOWED
            allowed.append((pattern, vals, "%s:%d" % (path, lineno)))
    return allowed


def allowance_for(allowed, case_id, value):
    for pattern, vals, where in allowed:
        if fnmatch.fnmatchcase(case_id, pattern) and value in vals:
            return where
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--side", required=True, choices=("server", "client"))
    ap.add_argument("--report", required=True, help="report directory holding index.json")
    ap.add_argument("--expected", required=True, help="expected results JSON file")
    ap.add_argument("--selected", help="JSON list of the case ids the run selected")
    ap.add_argument("--agent", default="switchboard")
    ap.add_argument("--conformance", help="CONFORMANCE.md with the allowed deviations")
    ap.add_argument("--update-expected", action="store_true")
    ap.add_argument("--update-command", default="./scripts/test.sh --update-expected",
                    help="the command that rewrites the expected file, named in failure messages")
    args = ap.parse_args(argv)

    label = "autobahn %s" % args.side
    failures = 0

    def result(ok, what, details=()):
        nonlocal failures
        print("%s %s: %s" % ("PASS" if ok else "FAIL", label, what))
        for d in details:
            print("    " + d)
        if not ok:
            failures += 1

    index_path = os.path.join(args.report, "index.json")
    try:
        with open(index_path) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        result(False, "no usable report (%s)" % e)
        result(False, "expected results not compared (no report)")
        return 1
    if args.agent not in index:
        result(False, "agent %r has no results in %s (agents: %s)"
               % (args.agent, index_path, ", ".join(sorted(index)) or "none"))
        result(False, "expected results not compared (no results for the agent)")
        return 1
    cases = index[args.agent]
    actual = {cid: {"behavior": r.get("behavior", "?"), "behaviorClose": r.get("behaviorClose", "?")}
              for cid, r in cases.items()}

    # --- check 1: conformance -------------------------------------------------
    problems = []
    allowed = load_allowances(args.conformance, args.side, problems)
    bad, excused = [], []
    selected = None
    if args.selected:
        with open(args.selected) as f:
            selected = json.load(f)
        for cid in selected:
            if cid not in actual:
                bad.append("%-8s no result (MISSING: did the peer crash or hang?)" % cid)
    counts = {}
    for cid in sorted(actual, key=case_key):
        r = actual[cid]
        counts[r["behavior"]] = counts.get(r["behavior"], 0) + 1
        for field in ("behavior", "behaviorClose"):
            value = r[field]
            if value in PASSING:
                continue
            where = allowance_for(allowed, cid, value)
            if where:
                excused.append("%-8s %s=%s allowed by %s" % (cid, field, value, where))
            else:
                report = cases[cid].get("reportfile", "")
                bad.append("%-8s %s=%s (remoteCloseCode=%s) %s"
                           % (cid, field, value, cases[cid].get("remoteCloseCode"),
                              os.path.join(args.report, report) if report else ""))
    summary = ", ".join("%s %d" % kv for kv in sorted(counts.items()))
    details = problems + bad[:80] + (["... %d more" % (len(bad) - 80)] if len(bad) > 80 else [])
    details += ["(allowed) " + e for e in excused]
    result(not bad and not problems,
           "%d cases, %s%s" % (len(actual), summary,
                               "" if not bad else "; %d not conformant" % len(bad)),
           details)

    # --- check 2: expected results -------------------------------------------
    name = os.path.basename(args.expected)
    if args.update_expected:
        ordered = {cid: actual[cid] for cid in sorted(actual, key=case_key)}
        with open(args.expected, "w") as f:
            # One case per line, in case order: diffs of this file read as result changes.
            f.write("{\n")
            f.write(",\n".join("  %s: %s" % (json.dumps(cid), json.dumps(r)) for cid, r in ordered.items()))
            f.write("\n}\n")
        result(True, "rewrote %s with %d cases (--update-expected)" % (args.expected, len(actual)))
        return 1 if failures else 0
    if not os.path.exists(args.expected):
        result(False, "%s does not exist; run %s once the run is right"
               % (args.expected, args.update_command))
        return 1
    with open(args.expected) as f:
        expected = json.load(f)
    diffs = []
    for cid in sorted(set(expected) | set(actual), key=case_key):
        e, a = expected.get(cid), actual.get(cid)
        if e is None:
            diffs.append("%-8s not in %s, this run: %s/%s" % (cid, name, a["behavior"], a["behaviorClose"]))
        elif a is None:
            diffs.append("%-8s expected %s/%s, this run: no result" % (cid, e["behavior"], e["behaviorClose"]))
        elif (e["behavior"], e["behaviorClose"]) != (a["behavior"], a["behaviorClose"]):
            diffs.append("%-8s expected %s/%s, this run: %s/%s"
                         % (cid, e["behavior"], e["behaviorClose"], a["behavior"], a["behaviorClose"]))
    if diffs:
        diffs = diffs[:80] + (["... %d more" % (len(diffs) - 80)] if len(diffs) > 80 else [])
        diffs.append("if the change is intended: %s" % args.update_command)
    result(not diffs, "%d cases %s %s" % (len(actual), "match" if not diffs else "differ from", name), diffs)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
