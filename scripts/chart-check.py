"""Checks of the Helm chart and the example SBC manifests (scripts/test-chart.sh).

    python chart-check.py ROOT NODE_DIR

The chart is linted and rendered by the real Helm engine (helm-python-sdk);
every rendered object and every example manifest is validated offline:
built-in kinds against the Kubernetes JSON schemas of kubernetes-validate
(strict: unknown fields refused) for the oldest and newest Kubernetes the
chart targets, ServiceMonitor/PrometheusRule against the Prometheus
Operator's schemas (scripts/prom-validate.mjs), SbcFleet against
crds/sbcfleets.yaml's openAPIV3Schema (made strict) plus its CEL rule.
Prints ok/FAIL lines and "N passed, M failed"; exit 1 on any failure.
"""

import copy
import json
import os
import subprocess
import sys

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

from checks import bad, check, finish, ok

ROOT, NODE_DIR = sys.argv[1], sys.argv[2]
CHART = os.path.join(ROOT, "charts", "tollgate")
KUBE_VERSIONS = ["1.29", "1.37"]  # Chart.yaml kubeVersion >=1.29; newest schemas carried
NS = "tollgate-system"

def say(msg):
    print(f"\n==> {msg}", file=sys.stderr, flush=True)


def docs_of(text):
    return [d for d in yaml.safe_load_all(text) if d]


def kn(o):
    return f"{o.get('kind')}/{o.get('metadata', {}).get('name')}"


# ---------------------------------------------------------------- schemas

def prom_validate(objs):
    """[(obj, error or None)] through the Prometheus Operator schemas."""
    if not objs:
        return []
    out = subprocess.run(
        ["node", os.path.join(ROOT, "scripts", "prom-validate.mjs"), NODE_DIR],
        input=json.dumps(objs), capture_output=True, text=True, timeout=120, check=False)
    if out.returncode != 0:
        return [(o, f"validator failed: {out.stderr.strip()[:300]}") for o in objs]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    if len(lines) != len(objs):
        return [(o, "validator answered for a different number of objects") for o in objs]
    return [(o, None if r["ok"] else r["error"]) for o, r in zip(objs, lines)]


def strict_schema(schema):
    """OpenAPI v3 structural schema -> JSON schema refusing unknown fields
    (what the API server would silently prune) and honouring nullable."""
    s = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("nullable") and "type" in node:
                node["type"] = [node["type"], "null"]
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(s)
    s.setdefault("properties", {}).update(
        {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})
    return s


def crd_validators():
    """{(group/version, kind): (validator, crd)} for the project's CRDs."""
    out = {}
    for f in sorted(os.listdir(os.path.join(ROOT, "crds"))):
        if not f.endswith(".yaml"):
            continue
        crd = yaml.safe_load(open(os.path.join(ROOT, "crds", f)))
        for v in crd["spec"]["versions"]:
            schema = strict_schema(v["schema"]["openAPIV3Schema"])
            key = (f"{crd['spec']['group']}/{v['name']}", crd["spec"]["names"]["kind"])
            out[key] = jsonschema.Draft202012Validator(schema)
    return out


CRDS = crd_validators()


def cel_rules(o):
    """The CEL rules of the CRDs, evaluated by hand (jsonschema has no CEL)."""
    if o.get("kind") == "SbcFleet":
        spec = o.get("spec", {})
        if ("selector" in spec) == ("endpoints" in spec):
            return "exactly one of selector or endpoints must be set"
    return None


def validate_all(objs, where):
    """Validate every object; ok/FAIL per object. Returns True if all passed."""
    good = True
    prom = []
    for o in objs:
        api, kind = o.get("apiVersion", ""), o.get("kind", "")
        if api.startswith("monitoring.coreos.com/"):
            prom.append(o)
            continue
        if (api, kind) in CRDS:
            errs = sorted(CRDS[(api, kind)].iter_errors(o), key=lambda e: list(e.path))
            msg = "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errs[:3])
            msg = msg or cel_rules(o)
            good &= check(not msg, f"{where}: {kn(o)} valid against crds/ schema (strict) + CEL rule"
                          + (f": {msg}" if msg else ""))
            continue
        for ver in KUBE_VERSIONS:
            try:
                got = kubernetes_validate.validate(o, ver, strict=True)
                ok(f"{where}: {kn(o)} valid ({api}, Kubernetes {got} strict schema)")
            except kubernetes_validate.ValidationError as e:
                good = False
                bad(f"{where}: {kn(o)} against Kubernetes {ver}: {'.'.join(map(str, e.path))}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                good = False
                bad(f"{where}: {kn(o)}: {e.message}")
    for o, err in prom_validate(prom):
        good &= check(err is None, f"{where}: {kn(o)} valid against the Prometheus Operator schema"
                      + (f": {err}" if err else ""))
    return good


# ---------------------------------------------------------------- chart

def render(values, ns=NS):
    with helm.Chart.load(CHART) as c:
        m = c.render(values, name="tg", namespace=ns)
    objs = []
    for path, text in sorted(m.items()):
        if path.endswith("NOTES.txt"):
            continue
        objs += docs_of(text)
    return objs, m


def find(objs, kind, name=None):
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def check_security(objs, where):
    for d in find(objs, "Deployment"):
        pod = d["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0,
              f"{where}: {kn(d)} pod runs as non-root (runAsUser {psc.get('runAsUser')})")
        check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
              f"{where}: {kn(d)} pod seccompProfile RuntimeDefault")
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c.get("securityContext", {})
            uid = sc.get("runAsUser", psc.get("runAsUser"))
            nonroot = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
            check(nonroot is True and uid not in (None, 0), f"{where}: {c['name']}: non-root (uid {uid})")
            check(sc.get("readOnlyRootFilesystem") is True, f"{where}: {c['name']}: read-only root filesystem")
            check(sc.get("allowPrivilegeEscalation") is False, f"{where}: {c['name']}: no privilege escalation")
            check(sc.get("privileged", False) is False, f"{where}: {c['name']}: not privileged")
            check(sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc.get("capabilities", {}).get("add"),
                  f"{where}: {c['name']}: capabilities drop ALL, add none")
            r = c.get("resources", {})
            check(all(k in r.get("requests", {}) for k in ("cpu", "memory")) and "memory" in r.get("limits", {}),
                  f"{where}: {c['name']}: resources requests cpu+memory, limit memory: {r}")


def check_rbac(objs, where):
    roles = find(objs, "ClusterRole") + find(objs, "Role")
    check(roles, f"{where}: RBAC roles rendered: {[kn(r) for r in roles]}")
    for r in roles:
        for rule in r["rules"]:
            flat = rule.get("apiGroups", []) + rule.get("resources", []) + rule.get("verbs", []) + \
                rule.get("resourceNames", [])
            check("*" not in flat and not rule.get("nonResourceURLs"),
                  f"{where}: {kn(r)} rule without wildcards: {rule.get('resources')} {rule.get('verbs')}")


# What the operator needs (its RBAC contract); nothing more may be granted.
# That the operator uses each (or needs it on a path the scenarios do not
# reach) and nothing else is proven from the API server's audit log by
# scripts/rbac-audit.py (scripts/test-operator.sh, scenario 11).
WANT = {
    ("tollgate.dev", "tollpolicies"): {"get", "list", "watch", "patch"},
    ("tollgate.dev", "tollpolicies/status"): {"patch"},
    ("tollgate.dev", "tollpolicies/finalizers"): {"update"},
    ("tollgate.dev", "policyrevisions"): {"get", "list", "watch", "create", "delete"},
    ("tollgate.dev", "policychunks"): {"get"},
    ("tollgate.dev", "sbcfleets"): {"get", "list", "watch"},
    ("tollgate.dev", "sbcfleets/status"): {"patch"},
    ("", "pods"): {"list", "watch"},
    ("", "secrets"): {"get"},
    ("events.k8s.io", "events"): {"create", "patch"},
}


def grants(role):
    out = {}
    for rule in role["rules"]:
        for g in rule.get("apiGroups", []):
            for res in rule.get("resources", []):
                out.setdefault((g, res), set()).update(rule.get("verbs", []))
    return out


def chart_checks():
    say("CRDs in the chart are the generated crds/*.yaml")
    mine = sorted(f for f in os.listdir(os.path.join(CHART, "crds")))
    theirs = sorted(f for f in os.listdir(os.path.join(ROOT, "crds")) if f.endswith(".yaml"))
    check(mine == theirs, f"same CRD files: {mine}")
    for f in theirs:
        a = os.path.join(ROOT, "crds", f)
        b = os.path.join(CHART, "crds", f)
        same = os.path.exists(b) and open(a, "rb").read() == open(b, "rb").read()
        check(same, f"charts/tollgate/crds/{f} identical to crds/{f}"
              + ("" if same else " (cp crds/*.yaml charts/tollgate/crds/)"))
    with helm.Chart.load(CHART) as c:
        crd_objs = [o for f in c.crds for o in docs_of(open(os.path.join(CHART, f["name"])).read())] \
            if c.crds and isinstance(c.crds[0], dict) else []
        if not crd_objs:
            crd_objs = [o for f in mine for o in docs_of(open(os.path.join(CHART, "crds", f)).read())]
        check(len(crd_objs) == len(theirs), f"the engine loads {len(crd_objs)} CRD objects, one per file of crds/")
    validate_all(crd_objs, "crds")

    say("helm lint (strict)")
    for name, values in [("defaults", None), ("watchNamespace", {"watchNamespace": "voice"})]:
        rep = helm.lint(CHART, values, strict=True, namespace=NS, kube_version="v1.33.0")
        errs = rep.get("errors") or [m for m in rep.get("messages", []) if m.get("severity", 0) >= 2]
        infos = [m["error"] for m in rep.get("messages", []) if m.get("severity", 0) < 2]
        check(not errs, f"lint {name}: {errs or 'no warnings or errors'}; info: {infos}")

    value_sets = {
        "defaults": {},
        "serviceMonitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        "watchNamespace": {"watchNamespace": "voice"},
        "prometheusRule": {"prometheusRule": {"enabled": True, "groups": [{
            "name": "tollgate", "rules": [{
                "alert": "TollgateOperatorDown", "expr": 'up{job="tg-tollgate"} == 0', "for": "5m",
                "labels": {"severity": "critical"},
                "annotations": {"summary": "no Tollgate operator is scraped"}}]}]}},
        "single+secrets": {"replicaCount": 1, "leaderElection": {"enabled": False, "leaseName": "x"},
                           "agent": {"timeoutSecs": 10, "tokenSecret": {"name": "agent-token", "key": "token"}},
                           "webhook": {"enabled": True, "port": 9443,
                                       "tokenSecret": {"name": "", "key": "token", "create": True}}},
        "grafanaDashboard": {"grafanaDashboard": {"enabled": True, "namespace": "monitoring",
                                                  "label": "grafana_dashboard", "labelValue": "1"}},
        "noWebhook": {"webhook": {"enabled": False, "port": 9443,
                                  "tokenSecret": {"name": "", "key": "token", "create": False}}},
    }
    rendered = {}
    for name, values in value_sets.items():
        say(f"render: {name}")
        try:
            objs, _ = render(values)
        except helm.HelmError as e:
            bad(f"render {name}: {e}")
            continue
        rendered[name] = objs
        ok(f"render {name}: {len(objs)} objects: {', '.join(sorted(kn(o) for o in objs))}")
        validate_all(objs, name)
        check_security(objs, name)
        check_rbac(objs, name)
        for o in objs:
            labels = o["metadata"].get("labels", {})
            if not check(all(k in labels for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                                                   "app.kubernetes.io/version", "app.kubernetes.io/managed-by")),
                         f"{name}: {kn(o)} has the standard labels"):
                pass

    say("what the renders say")
    d = rendered.get("defaults", [])
    if d:
        dep = find(d, "Deployment")[0]
        c = dep["spec"]["template"]["spec"]["containers"][0]
        args = c["args"]
        check(dep["spec"]["replicas"] == 2 and "--leader-election" in args
              and "--lease-name=tollgate-operator" in args,
              "defaults: 2 replicas with leader election on Lease tollgate-operator")
        check(c["image"] == "tollgate/operator:0.1.0", f"defaults: image {c['image']} (appVersion)")
        env = {e["name"]: e for e in c["env"]}
        check(env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
              == "metadata.namespace", "defaults: POD_NAMESPACE from the downward API")
        check(c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["readinessProbe"]["httpGet"]["path"]
              == "/readyz", "defaults: liveness /healthz, readiness /readyz")
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        tok = [a for a in args if a.startswith("--webhook-token-file=")]
        check(vols.get("webhook-token", {}).get("secret", {}).get("secretName") == "tg-tollgate-webhook"
              and tok and tok[0].split("=", 1)[1].startswith(mounts["webhook-token"]["mountPath"] + "/")
              and mounts["webhook-token"].get("readOnly") is True,
              f"defaults: webhook token is a read-only file from Secret tg-tollgate-webhook ({tok})")
        check(not find(d, "Secret"), "defaults: the chart creates no Secret (no token in the manifests)")
        svc = find(d, "Service")[0]
        check({p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"metrics": 8080, "webhook": 9443},
              "defaults: Service ports metrics 8080, webhook 9443")
        cr = find(d, "ClusterRole")
        check(len(cr) == 1 and grants(cr[0]) == WANT,
              "defaults: the ClusterRole grants exactly the operator's list")
        check(len(find(d, "ClusterRoleBinding")) == 1, "defaults: one ClusterRoleBinding")
        lease = [r for r in find(d, "Role") if r["metadata"]["name"].endswith("-leader-election")]
        check(len(lease) == 1 and lease[0]["metadata"]["namespace"] == NS
              and grants(lease[0]) == {("coordination.k8s.io", "leases"): {"get", "create", "patch"}},
              f"defaults: leases get/create/patch in {NS} only")
        check(not find(d, "ServiceMonitor") and not find(d, "PrometheusRule"),
              "defaults: no ServiceMonitor, no PrometheusRule")
        check(len(find(d, "PodDisruptionBudget")) == 1, "defaults: a PodDisruptionBudget (2 replicas)")
    w = rendered.get("watchNamespace", [])
    if w:
        check(not find(w, "ClusterRole") and not find(w, "ClusterRoleBinding"),
              "watchNamespace: no cluster-wide RBAC")
        r = [o for o in find(w, "Role") if o["metadata"]["namespace"] == "voice"]
        check(len(r) == 1 and grants(r[0]) == WANT, "watchNamespace: a Role in voice with exactly the list")
        args = find(w, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        check("--namespace=voice" in args, "watchNamespace: --namespace=voice")
    s = rendered.get("serviceMonitor", [])
    if s:
        sm = find(s, "ServiceMonitor")
        check(len(sm) == 1 and sm[0]["spec"]["endpoints"][0]["port"] == "metrics"
              and sm[0]["metadata"]["labels"].get("release") == "prom",
              "serviceMonitor: scrapes port metrics, extra labels kept")
    p = rendered.get("prometheusRule", [])
    if p:
        pr = find(p, "PrometheusRule")
        check(len(pr) == 1 and pr[0]["spec"]["groups"][0]["rules"][0]["alert"] == "TollgateOperatorDown",
              "prometheusRule: the given groups rendered")
    g = rendered.get("grafanaDashboard", [])
    if g:
        cm = find(g, "ConfigMap")
        want = json.load(open(os.path.join(CHART, "dashboards", "tollgate.json")))
        check(len(cm) == 1 and cm[0]["metadata"]["namespace"] == "monitoring"
              and cm[0]["metadata"]["labels"].get("grafana_dashboard") == "1"
              and json.loads(cm[0]["data"]["tollgate.json"]) == want,
              "grafanaDashboard: a ConfigMap in monitoring, labelled for the sidecar, holding dashboards/tollgate.json")
    if d:
        check(not find(d, "ConfigMap"), "defaults: no dashboard ConfigMap")
    s1 = rendered.get("single+secrets", [])
    if s1:
        args = find(s1, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        check("--no-leader-election" in args and not [r for r in find(s1, "Role")
                                                      if r["metadata"]["name"].endswith("leader-election")],
              "single: --no-leader-election, no lease Role")
        check("--agent-token-file=/var/run/tollgate/agent/token" in args, "single: --agent-token-file mounted")
        sec = find(s1, "Secret")
        check(len(sec) == 1 and len(sec[0]["data"]["token"]) > 40, "single: webhook token Secret generated")
        check(not find(s1, "PodDisruptionBudget"), "single: no PodDisruptionBudget for one replica")
    n = rendered.get("noWebhook", [])
    if n:
        c = find(n, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        check(not [a for a in c["args"] if a.startswith("--webhook")]
              and [p["name"] for p in find(n, "Service")[0]["spec"]["ports"]] == ["metrics"],
              "noWebhook: no webhook flags, no webhook port")

    say("values the schema or the templates refuse")
    refused = {
        "an unknown top-level key": {"replicas": 3},
        "an unknown nested key": {"serviceMonitor": {"enabled": True, "intervall": "30s"}},
        "pullPolicy Sometimes": {"image": {"repository": "x", "pullPolicy": "Sometimes"}},
        "replicaCount as a string": {"replicaCount": "two"},
        "webhook.port 70000": {"webhook": {"port": 70000}},
        "logFormat xml": {"logFormat": "xml"},
        "requests.cpu lots": {"resources": {"requests": {"cpu": "lots"}}},
        "limits null": {"resources": {"limits": None}},
        "watchNamespace Not_A_Name": {"watchNamespace": "Not_A_Name"},
        "a Secret key with a slash": {"agent": {"tokenSecret": {"name": "a", "key": "a/b"}}},
        "2 replicas without leader election": {"leaderElection": {"enabled": False}},
        "prometheusRule without groups": {"prometheusRule": {"enabled": True}},
    }
    for what, values in refused.items():
        try:
            render(values)
            bad(f"{what}: rendered, should be refused")
        except helm.HelmError as e:
            lines = [x.strip() for x in str(e).splitlines() if x.strip()]
            ok(f"{what}: refused ({(lines[-1] if len(lines) > 1 else lines[0])[:160]})")


# ---------------------------------------------------------------- examples

def example_checks():
    say("examples/sbc: schema validation")
    ex = os.path.join(ROOT, "examples", "sbc")
    objs = []
    for f in sorted(os.listdir(ex)):
        if f.endswith(".yaml"):
            for o in docs_of(open(os.path.join(ex, f)).read()):
                objs.append(o)
    # the cfg ConfigMap as examples/README.md makes it (kubectl create configmap --from-file)
    cfg = open(os.path.join(ROOT, "sbc", "kamailio", "tollgate.cfg")).read()
    objs.append({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "tollgate-sbc-cfg", "namespace": "sbc"},
                 "data": {"tollgate.cfg": cfg}})
    check(len(cfg.encode()) < 1 << 20, f"tollgate.cfg fits a ConfigMap ({len(cfg.encode())} bytes)")
    check(all(o["metadata"].get("namespace") == "sbc" for o in objs), "every example object in namespace sbc")
    validate_all(objs, "examples/sbc")
    check_security(objs, "examples/sbc")

    say("examples/sbc: consistency")
    dep = find(objs, "Deployment", "sbc-edge")[0]
    init = dep["spec"]["template"]["spec"]["initContainers"]
    check([c.get("command") for c in init] == [["tollgate-agent", "--init-data", "/run/tollgate/data"]],
          "the init container writes the empty policy set with the agent (tollgate-agent --init-data)")
    dep = find(objs, "Deployment", "sbc-edge")[0]
    tpl = dep["spec"]["template"]
    fleet = find(objs, "SbcFleet", "edge")[0]
    sel = fleet["spec"]["selector"]["matchLabels"]
    check(all(tpl["metadata"]["labels"].get(k) == v for k, v in sel.items()),
          f"SbcFleet edge selects the Deployment's pods ({sel})")
    agent = [c for c in tpl["spec"]["containers"] if c["name"] == "agent"][0]
    port = [p["containerPort"] for p in agent["ports"] if p["name"] == "agent"][0]
    check(port == fleet["spec"]["agentPort"] and f"--listen=$(POD_IP):{port}" in agent["args"],
          f"the agent listens on the fleet's agentPort {port}")
    vols = {v["name"]: v for v in tpl["spec"]["volumes"]}
    check(vols["agent-token"]["secret"]["secretName"] == fleet["spec"]["agentTokenSecret"]["name"],
          "the agents' token Secret is the one the SbcFleet names")
    check("emptyDir" in vols["data"], "Kamailio and the agent share an emptyDir data dir")
    kam = [c for c in tpl["spec"]["containers"] if c["name"] == "kamailio"][0]
    kenv = {e["name"] for e in kam["env"]}
    check({"TG_IP", "TG_PORT", "TG_RPC_PORT", "TG_DB_URL", "TG_RELAY"} <= kenv,
          "Kamailio gets every variable tollgate.cfg needs")
    if "WITH_FLEET" in kam["command"]:
        check({"TG_FLEET_REDIS", "TG_FLEET_KEY", "TG_SBC_ID", "TG_FLEET_SIZE"} <= kenv,
              "with -A WITH_FLEET Kamailio gets the fleet's variables")
        env = {e["name"]: e for e in kam["env"]}
        store = find(objs, "Service", "tollgate-fleet-store")[0]
        spec = env["TG_FLEET_REDIS"]["value"]
        check(f"addr={store['metadata']['name']}.sbc.svc.cluster.local;port={store['spec']['ports'][0]['port']};" in spec,
              f"the SBCs reach the store's Service ({spec})")
        check("pass=$(TG_FLEET_REDIS_PASSWORD)" in spec and
              env["TG_FLEET_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "tollgate-fleet-store",
              "the store's password comes from its Secret, not the manifest")
        check(str(dep["spec"]["replicas"]) == env["TG_FLEET_SIZE"]["value"],
              "TG_FLEET_SIZE is the Deployment's replicas")
        np = find(objs, "NetworkPolicy", "tollgate-fleet-store")[0]
        check(np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {"tollgate.dev/fleet": "edge"},
              "only the fleet's SBC pods reach the store")

    say("examples/sbc: bad SbcFleets are refused")
    base = find(objs, "SbcFleet", "edge")[0]
    both = copy.deepcopy(base)
    both["spec"]["endpoints"] = [{"host": "10.0.0.1"}]
    port0 = copy.deepcopy(base)
    port0["spec"]["agentPort"] = 0
    typo = copy.deepcopy(base)
    typo["spec"]["agentport"] = 9443
    for what, o in [("selector and endpoints", both), ("agentPort 0", port0), ("a misspelt field", typo)]:
        v = CRDS[("tollgate.dev/v1alpha1", "SbcFleet")]
        errs = list(v.iter_errors(o))
        reason = errs[0].message if errs else cel_rules(o)
        check(bool(reason), f"{what}: refused ({reason})")


def validator_checks():
    say("the validators refuse what they should (so an ok above means something)")
    objs, _ = render({})
    dep = find(objs, "Deployment")[0]
    for what, mutate in [
        ("an unknown field in a container securityContext",
         lambda d: d["spec"]["template"]["spec"]["containers"][0]["securityContext"].update(readOnlyRoot=True)),
        ("a string where an integer belongs",
         lambda d: d["spec"].update(replicas="2")),
        ("a container without a name",
         lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name")),
    ]:
        d = copy.deepcopy(dep)
        mutate(d)
        try:
            kubernetes_validate.validate(d, KUBE_VERSIONS[-1], strict=True)
            bad(f"kubernetes-validate accepted {what}")
        except kubernetes_validate.ValidationError as e:
            ok(f"kubernetes-validate refuses {what}: {e.message[:100]}")
    sm = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "x"},
          "spec": {"selector": {}, "endpoints": [{"port": 8080}]}}
    pr = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"},
          "spec": {"groups": [{"name": "g", "rules": [{"alert": "A"}]}]}}
    for o, err in prom_validate([sm, pr]):
        check(err is not None, f"the Prometheus Operator schema refuses a bad {o['kind']}: {err}")


validator_checks()
chart_checks()
example_checks()
print()
finish()
