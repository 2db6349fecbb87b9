"""Helpers of scripts/test-operator.sh (run with the project's venv Python).

  policy TEMPLATE COMPILED OUT --namespace NS --fleet F [--deny PREFIX]... [--canary N] [--bake S] [--batch N]
      A TollPolicy manifest: TEMPLATE is `tollgate compile` output for the tenant
      (apiVersion, kind, metadata, spec), COMPILED the loopback CompiledPolicy
      (the agreement helper's `prepare` copy) that replaces spec.policy; each
      --deny adds a destination rule `deny PREFIX` named dst:prefix:PREFIX.
  state URL TOKENFILE TENANT
      One agent's view of TENANT: "<revision number or -> <appliedAt or -> <consistent>".
  sample NS POLICY TOKENFILE TENANT INTERVAL TIMEOUT UNTIL_REV OUT URL...
      Every INTERVAL s: the TollPolicy's status (phase, applied, currentRevision)
      and each agent's revision number of TENANT, one tab-separated line per
      sample to OUT, until phase Applied with currentRevision UNTIL_REV and every
      agent on it (exit 0) or TIMEOUT s (exit 1).
  steps OUT OLD NEW BAKE
      Checks a sample file of a canary 1 / batch 1 rollout over 3 agents from
      revision OLD to NEW: prints the observed steps and exits 1 if they are not
      canary (agent 1 new, 2 and 3 old) -> batch (1, 2 new, 3 old) -> all new,
      in that order, each partial step lasting at least BAKE - 0.5 s.
"""

import json
import subprocess
import sys
import time
import urllib.request

import yaml


def rev_number(label):
    """'7@sha256:...' -> 7; anything else -> None."""
    if not isinstance(label, str) or "@sha256:" not in label:
        return None
    n = label.split("@", 1)[0]
    return int(n) if n.isdigit() else None


def agent_state(url, token, timeout=2.0):
    req = urllib.request.Request(url + "/v1/state", headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def tenant_view(url, token, tenant):
    """(revision number, appliedAt, consistent) of tenant on the agent; (None, None, None) if absent."""
    try:
        t = agent_state(url, token).get("tenants", {}).get(tenant)
    except OSError:
        return ("down", None, None)
    if not t:
        return (None, None, None)
    return (rev_number(t.get("revision")), t.get("appliedAt"), t.get("consistent"))


def cmd_policy(args):
    import argparse

    ap = argparse.ArgumentParser(prog="policy")
    ap.add_argument("template")
    ap.add_argument("compiled")
    ap.add_argument("out")
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--fleet", required=True)
    ap.add_argument("--deny", action="append", default=[])
    ap.add_argument("--canary", type=int)
    ap.add_argument("--bake", type=int, default=0)
    ap.add_argument("--batch", type=int)
    a = ap.parse_args(args)
    tp = yaml.safe_load(open(a.template))
    pol = yaml.safe_load(open(a.compiled))
    if tp.get("kind") != "TollPolicy" or tp["spec"]["tenant"] != pol["tenant"]:
        sys.exit(f"{a.template} is not the TollPolicy of tenant {pol['tenant']}")
    for p in a.deny:
        pol["destinations"].append({"prefix": p, "action": "deny", "rule": "dst:prefix:" + p})
    tp["metadata"] = {"name": tp["metadata"]["name"], "namespace": a.namespace}
    tp["spec"]["policy"] = pol
    tp["spec"]["fleet"] = {"name": a.fleet}
    rollout = {"bakeSeconds": a.bake}
    if a.canary:
        rollout["canary"] = {"count": a.canary}
    if a.batch:
        rollout["batch"] = {"count": a.batch}
    tp["spec"]["rollout"] = rollout
    with open(a.out, "w") as f:
        yaml.safe_dump(tp, f, sort_keys=False)


def cmd_state(args):
    url, tokfile, tenant = args
    token = open(tokfile).read().strip()
    n, at, cons = tenant_view(url, token, tenant)
    print("-" if n is None else n, "-" if at is None else at, "-" if cons is None else str(cons).lower())


def policy_status(ns, name):
    out = subprocess.run(
        ["kubectl", "get", "tollpolicy", name, "-n", ns, "-o", "json"],
        capture_output=True, text=True, timeout=20,
    )
    if out.returncode != 0:
        return {}
    return json.loads(out.stdout).get("status") or {}


def cmd_sample(args):
    ns, name, tokfile, tenant, interval, timeout, until, out = args[:8]
    urls = args[8:]
    token = open(tokfile).read().strip()
    interval, timeout, until = float(interval), float(timeout), int(until)
    t0 = time.monotonic()
    with open(out, "w") as f:
        while True:
            t = time.monotonic() - t0
            s = policy_status(ns, name)
            revs = [tenant_view(u, token, tenant)[0] for u in urls]
            phase, applied, cur = s.get("phase", "-"), s.get("applied", "-"), s.get("currentRevision", "-")
            f.write("\t".join([f"{t:.2f}", str(phase), str(applied), str(cur)]
                              + ["-" if r is None else str(r) for r in revs]) + "\n")
            f.flush()
            if phase == "Applied" and cur == until and all(r == until for r in revs):
                return 0
            if t > timeout:
                return 1
            time.sleep(max(0.0, interval - (time.monotonic() - t0 - t)))


def cmd_steps(args):
    out, old, new, bake = args[0], int(args[1]), int(args[2]), float(args[3])
    rows = []
    for line in open(out):
        p = line.rstrip("\n").split("\t")
        rows.append((float(p[0]), p[1], p[2], p[3], [int(x) if x.isdigit() else x for x in p[4:]]))
    # reduce to steps: k = number of leading agents on NEW, the rest must be on OLD
    steps = []  # [k, first t, last t, phases]
    bad = []
    for t, phase, applied, cur, revs in rows:
        k = 0
        while k < len(revs) and revs[k] == new:
            k += 1
        if any(r != old for r in revs[k:]):
            bad.append(f"t={t:.2f}: agents {revs} are not NEW on a prefix and OLD on the rest")
            continue
        if steps and steps[-1][0] == k:
            steps[-1][2] = t
            if phase not in steps[-1][3]:
                steps[-1][3].append(phase)
        else:
            steps.append([k, t, t, [phase]])
    names = {0: "before", 1: "canary", 2: "batch", 3: "all"}
    for k, a, b, phases in steps:
        print(f"  step {names.get(k, k)}: agents on {new}: {k}/3, t={a:.2f}..{b:.2f} s "
              f"({b - a:.2f} s sampled), phases {','.join(phases)}")
    ks = [s[0] for s in steps]
    if ks and ks[0] == 0:
        ks = ks[1:]
        steps = steps[1:]
    if ks != [1, 2, 3]:
        bad.append(f"step sequence {ks}, want [1, 2, 3]")
    else:
        # a step lasts from its first sample to the next step's first sample
        for i in (0, 1):
            lasted = steps[i + 1][1] - steps[i][1]
            if lasted < bake - 0.5:
                bad.append(f"{names[ks[i]]} lasted {lasted:.2f} s, less than the bake {bake} s")
        if "Canary" not in steps[0][3]:
            bad.append(f"phase during the canary step: {steps[0][3]}, want Canary among them")
    for b in bad:
        print("  " + b)
    return 1 if bad else 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "policy":
        return cmd_policy(args)
    if cmd == "state":
        return cmd_state(args)
    if cmd == "sample":
        return cmd_sample(args)
    if cmd == "steps":
        return cmd_steps(args)
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main() or 0)
