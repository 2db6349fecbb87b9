"""Least privilege, proven: the operator's requests against the chart's RBAC.

    python rbac-audit.py ROOT AUDIT_LOG OFFSET USER [--self-test]

Reads the API server's audit log (JSON lines, audit.k8s.io/v1 Events) from
byte OFFSET on, keeps the requests USER made (the operator's own identity in
scripts/test-operator.sh), and checks each against the rules the chart
renders (charts/tollgate, default values: the ClusterRole and the
leader-election Role), matching as Kubernetes' RBAC authorizer does: API
group, resource or resource/subresource, verb, and resourceNames (which
never match create, list, watch or deletecollection: the name is not known
when they are authorized). Non-resource requests (discovery: /api, /apis,
/version, /openapi) are what the cluster's default system:discovery role
grants every authenticated user.

Then every rule (and each verb of it) must have been used, or be listed in
NEEDED_UNUSED with the path the scenarios do not reach.

--self-test: removes each rule the requests used, one at a time, and
requires the check to fail each time (so the check can fail).

The testbed API server has no authorizer (every identity is in
system:masters), so nothing here was refused by the server: this check is
the authorizer. Each scenario's operator runs in its own namespace, which
plays the release namespace (its Lease is there), so the Role's rules apply
in the namespace the Lease request names.

Prints ok/FAIL lines and "N passed, M failed"; exit 1 on any failure.
"""

import json
import os
import sys
from collections import Counter

import helm_python as helm
import yaml

from checks import bad, check, finish, ok

ROOT, AUDIT, OFFSET, USER = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
SELF_TEST = "--self-test" in sys.argv[5:]
CHART = os.path.join(ROOT, "charts", "tollgate")
RELEASE_NS = "tollgate-system"
DISCOVERY = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")
# Verbs authorized without a name: resourceNames never match them.
NAMELESS = {"create", "list", "watch", "deletecollection"}

# (apiGroup, resource, verb) the rules grant that the scenarios do not use,
# and why they are needed anyway. Anything else unused fails the check.
NEEDED_UNUSED = {
    ("tollgate.dev", "tollpolicies/finalizers", "update"):
        "a PolicyRevision is created owned by its TollPolicy with blockOwnerDeletion, which the "
        "OwnerReferencesPermissionEnforcement admission plugin (on in most clusters, not in the "
        "testbed) allows only to who may update the owner's finalizers",
    ("events.k8s.io", "events", "patch"):
        "kube's Recorder patches an Event that repeats within its cache time (its series count); "
        "every Event of the scenarios is a first",
}

def rendered_rules():
    """[(kind, name, index, rule)] of the chart's Roles and ClusterRoles."""
    with helm.Chart.load(CHART) as c:
        m = c.render({}, name="tg", namespace=RELEASE_NS)
    out = []
    for path, text in sorted(m.items()):
        if path.endswith("NOTES.txt"):
            continue
        for o in yaml.safe_load_all(text):
            if o and o.get("kind") in ("Role", "ClusterRole"):
                for i, r in enumerate(o.get("rules", [])):
                    out.append((o["kind"], o["metadata"]["name"], i, r))
    return out


def requests():
    """The USER's requests: one per auditID (a watch appears at
    ResponseStarted and again at ResponseComplete)."""
    seen = {}
    with open(AUDIT, "rb") as f:
        f.seek(OFFSET)
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("user", {}).get("username") != USER:
                continue
            seen.setdefault(e["auditID"], e)
    return list(seen.values())


def key(e):
    """(verb, apiGroup, resource[/subresource], name) of a resource request;
    None for a non-resource one."""
    o = e.get("objectRef")
    if not o or not o.get("resource"):
        return None
    res = o["resource"] + (f"/{o['subresource']}" if o.get("subresource") else "")
    return (e["verb"], o.get("apiGroup", ""), res, o.get("name", ""))


def allows(rule, k):
    verb, group, res, name = k
    if not any(g in ("*", group) for g in rule.get("apiGroups", [])):
        return False
    if not any(r in ("*", res) for r in rule.get("resources", [])):
        return False
    if not any(v in ("*", verb) for v in rule.get("verbs", [])):
        return False
    names = rule.get("resourceNames")
    if names:
        return verb not in NAMELESS and name in names
    return True


def judge(rules, reqs, quiet=False):
    """Every request allowed by some rule: (denied keys, used (rule, verb))."""
    denied = Counter()
    used = set()
    for e in reqs:
        k = key(e)
        if k is None:
            path = e.get("requestURI", "").split("?")[0]
            if not path.startswith(DISCOVERY):
                denied[("nonResource", path)] += 1
            continue
        hit = [(kind, name, i) for (kind, name, i, r) in rules if allows(r, k)]
        if hit:
            for h in hit:
                used.add((h, k[0]))
        else:
            denied[k[:3]] += 1
    return denied, used


def main():
    if not os.path.exists(AUDIT):
        bad(f"no audit log at {AUDIT}: the API server runs without one "
            "(scripts/apiserver.sh stop, then run the tests again)")
        return
    rules = rendered_rules()
    reqs = requests()
    if not check(len(reqs) > 0, f"{len(reqs)} requests of user {USER} in the audit log"):
        return
    denied, used = judge(rules, reqs)
    kinds = Counter(key(e)[:3] if key(e) else ("nonResource",) for e in reqs)
    for k, n in sorted(kinds.items()):
        print(f"       {n:6d}  {' '.join(x or 'core' for x in k)}")
    for k, n in sorted(denied.items()):
        bad(f"{n} request(s) {' '.join(x or 'core' for x in k)} allowed by no rule of the chart")
    check(not denied, "every request of the operator is allowed by the chart's rules")
    for kind, name, i, r in rules:
        for verb in r.get("verbs", []):
            groups = r.get("apiGroups", [])
            for res in r.get("resources", []):
                where = f"{kind}/{name} rule {i}: {verb} {'/'.join(g or 'core' for g in groups)} {res}" + (
                    f" {r['resourceNames']}" if r.get("resourceNames") else "")
                if ((kind, name, i), verb) in used:
                    ok(f"used: {where}")
                    continue
                why = [NEEDED_UNUSED.get((g, res, verb)) for g in groups]
                why = [w for w in why if w]
                if why:
                    ok(f"unused but needed: {where}: {why[0]}")
                else:
                    bad(f"unused and not documented as needed: {where}")
    if SELF_TEST:
        for j, (kind, name, i, r) in enumerate(rules):
            if not any(u[0] == (kind, name, i) for u in used):
                continue
            fewer = rules[:j] + rules[j + 1:]
            d, _ = judge(fewer, reqs)
            check(bool(d), f"self-test: without {kind}/{name} rule {i} "
                  f"({r.get('verbs')} {r.get('resources')}) the check fails: "
                  f"{sum(d.values())} request(s) denied")


main()
finish()
