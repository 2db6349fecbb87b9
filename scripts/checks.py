"""The ok/FAIL lines of the project's Python checks (scripts/chart-check.py,
scripts/rbac-audit.py) and their counts: `ok`, `bad`, `check`, then
`finish()`, which prints "N passed, M failed" and exits 1 on any failure.
Scripts in scripts/ import it from beside themselves (Python puts a
script's own directory first on its path)."""

import sys

COUNTS = {"passed": 0, "failed": 0}


def ok(msg):
    COUNTS["passed"] += 1
    print(f"  ok   {msg}", flush=True)


def bad(msg):
    COUNTS["failed"] += 1
    print(f"  FAIL {msg}", flush=True)


def check(cond, msg):
    (ok if cond else bad)(msg)
    return cond


def finish():
    print(f"{COUNTS['passed']} passed, {COUNTS['failed']} failed")
    sys.exit(1 if COUNTS["failed"] else 0)
