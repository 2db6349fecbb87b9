#!/usr/bin/env python3
"""The Grafana dashboard against a real Prometheus: every panel's every query
returns series.

    dashboard-check.py DASHBOARD.json PROM_URL --since UNIX --tenant T

Grafana's variables are put in as Grafana would: `$tenant` (a regex
matcher, `=~`) by T, `$__rate_interval` by 15s (Prometheus scrapes every
second here), `$__range` by the seconds since --since. Each query runs as a
range query from --since to now (5 s steps): a panel passes when it returns at
least one series. Also checks the dashboard's shape: unique panel ids, every
panel on the `${datasource}` variable, every panel inside the 24-column grid.
Prints one line per query; exit 1 when any fails.
"""
import json
import sys
import time
import urllib.parse
import urllib.request


def main():
    args = sys.argv[1:]
    path, prom = args[0], args[1].rstrip("/")
    since = int(args[args.index("--since") + 1])
    tenant = args[args.index("--tenant") + 1]
    dash = json.load(open(path))
    now = int(time.time())
    fails = 0
    ids = [p["id"] for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        print("  FAIL panel ids are not unique")
        fails += 1
    queries = 0
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        g = p["gridPos"]
        if g["x"] + g["w"] > 24 or p.get("datasource", {}).get("uid") != "${datasource}":
            print(f"  FAIL {p['title']}: outside the grid or not on ${{datasource}}")
            fails += 1
        for t in p["targets"]:
            expr = (t["expr"].replace("$tenant", tenant)
                    .replace("$__rate_interval", "15s")
                    .replace("$__range", f"{now - since}s"))
            q = urllib.parse.urlencode({"query": expr, "start": since, "end": now, "step": 5})
            try:
                with urllib.request.urlopen(f"{prom}/api/v1/query_range?{q}", timeout=10) as r:
                    ans = json.load(r)
                n = len(ans["data"]["result"]) if ans.get("status") == "success" else -1
            except Exception as e:  # an error answer is a failure, with its reason
                n, ans = -1, {"error": str(e)}
            queries += 1
            if n > 0:
                print(f"  ok   {p['title']}: {n} series  {expr}")
            else:
                print(f"  FAIL {p['title']}: {'no series' if n == 0 else ans.get('error')}  {expr}")
                fails += 1
    print(f"dashboard: {queries} queries, {fails} failed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
