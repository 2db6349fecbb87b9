"""CPU seconds of a process (and of its direct children, Kamailio's workers),
from /proc: the benchmarks' per-call cost (scripts/bench-fleetwide.sh,
scripts/bench-counting.sh)."""
import os
import subprocess

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid, children=True):
    """User + system seconds of `pid` and, with `children`, of its children."""
    pids = [pid]
    if children:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        pids += [int(x) for x in out.split()]
    total = 0
    for p in pids:
        fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK
