#!/usr/bin/env python3
"""Run a Deployment's pod template under podman as a kubelet would, for the image tests.

    podrun.py up   --pod NAME (--manifest FILE | --chart DIR [--set-json JSON]) --deployment NAME
                   --namespace NS --pod-ip IP --network host|ns:PATH
                   [--image FROM=TO]... [--volume NAME=HOSTDIR]... [--secret-env SECRET/KEY=VALUE]...
                   [--env CONTAINER:VAR=VALUE]... [--mount-extra HOST:PATH]...
    podrun.py down --pod NAME

No kubelet can run on these machines (docs/testing.md), so this takes the pod
template of a real manifest (an example, or the chart rendered by Helm's own
engine) and starts its init containers (each to completion, in order) and its
containers as podman containers named NAME-<container>, all in one network
namespace, with what a kubelet applies:
  - the pod's and the container's securityContext, merged (the container's wins):
    runAsUser/runAsGroup -> --user, fsGroup -> --group-add, runAsNonRoot
    refused for uid 0, readOnlyRootFilesystem -> --read-only with no tmpfs of
    podman's own (only the mounted volumes are writable),
    allowPrivilegeEscalation: false -> no-new-privileges, capabilities
    drop/add, seccompProfile RuntimeDefault -> podman's default profile;
    privileged: true is refused;
  - command/args (command replaces the image's entrypoint and drops its CMD),
    $(VAR) expanded from the container's env; env values, fieldRefs
    (status.podIP, metadata.name, metadata.namespace) and secretKeyRefs
    (--secret-env);
  - volumeMounts, each from a host dir given for its volume (--volume), readOnly
    kept; resources.limits memory;
  - readinessProbe httpGet: `up` returns when every container with one answers
    200 (60 s at most).
--env overrides one env var (a test's addresses: the relay, the store);
--mount-extra adds a read-only bind to every container (the tests' busybox,
to look from inside).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import yaml

PODMAN_ENV = dict(os.environ, CONTAINERS_CONF=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                           "containers.conf"))


def fail(msg):
    print(f"podrun: {msg}", file=sys.stderr)
    sys.exit(1)


def podman(*args, check=True, capture=False):
    r = subprocess.run(["podman", *args], env=PODMAN_ENV, text=True,
                       capture_output=capture)
    if check and r.returncode != 0:
        fail(f"podman {' '.join(args[:3])} ... exited {r.returncode}" +
             (f": {r.stderr.strip()}" if capture else ""))
    return r


def load_docs(a):
    if a.manifest:
        with open(a.manifest) as f:
            return [d for d in yaml.safe_load_all(f) if d]
    import helm_python as helm
    values = json.loads(a.set_json or "{}")
    with helm.Chart.load(a.chart) as c:
        m = c.render(values, name="tg", namespace=a.namespace)
    docs = []
    for path, text in sorted(m.items()):
        if not path.endswith("NOTES.txt"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def expand(s, env):
    # $(VAR) from the env; $$(VAR) stays literal, as the kubelet does
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), s)


def kv(items, what):
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep:
            fail(f"{what} {it!r}: want NAME=VALUE")
        out[k] = v
    return out


def container_args(a, spec, c, volumes, secret_env, env_over):
    name = f"{a.pod}-{c['name']}"
    sc = dict(spec.get("securityContext") or {})
    sc.update(c.get("securityContext") or {})
    args = ["run", "--name", name, "--network", a.network, "--hostname", a.pod]
    if sc.get("privileged"):
        fail(f"{c['name']}: privileged containers are not run")
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    if sc.get("runAsNonRoot") and uid in (None, 0):
        # the kubelet checks the image's user when runAsUser is absent; this
        # project's manifests always name it
        fail(f"{c['name']}: runAsNonRoot with runAsUser {uid}")
    if uid is not None:
        args += ["--user", f"{uid}:{gid if gid is not None else uid}"]
    if spec.get("securityContext", {}).get("fsGroup") is not None:
        args += ["--group-add", str(spec["securityContext"]["fsGroup"])]
    if sc.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    caps = sc.get("capabilities") or {}
    for cap in caps.get("drop") or []:
        args += ["--cap-drop", cap.lower()]
    for cap in caps.get("add") or []:
        args += ["--cap-add", cap.lower()]
    prof = (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if prof == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    elif prof != "RuntimeDefault":
        fail(f"{c['name']}: seccompProfile {prof} is not supported here")
    mem = ((c.get("resources") or {}).get("limits") or {}).get("memory")
    if mem:
        args += ["--memory", mem.replace("Mi", "m").replace("Gi", "g")]

    env = {}
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
            continue
        vf = e.get("valueFrom") or {}
        if "fieldRef" in vf:
            path = vf["fieldRef"]["fieldPath"]
            env[e["name"]] = {"status.podIP": a.pod_ip, "metadata.name": a.pod,
                              "metadata.namespace": a.namespace}.get(path) or fail(f"fieldRef {path}")
        elif "secretKeyRef" in vf:
            ref = f"{vf['secretKeyRef']['name']}/{vf['secretKeyRef']['key']}"
            if ref not in secret_env:
                fail(f"{c['name']}: env {e['name']} needs --secret-env {ref}=...")
            env[e["name"]] = secret_env[ref]
        else:
            fail(f"{c['name']}: env {e['name']}: unsupported valueFrom {list(vf)}")
    for k, v in env_over.get(c["name"], {}).items():
        env[k] = expand(v, env)
    for k in sorted(env):
        args += ["--env", f"{k}={env[k]}"]

    for m in c.get("volumeMounts") or []:
        vol = m["name"]
        if vol not in volumes:
            fail(f"{c['name']} mounts volume {vol}: give it with --volume {vol}=HOSTDIR")
        if vol not in {v["name"] for v in spec.get("volumes") or []}:
            fail(f"{c['name']} mounts {vol}, which the pod does not declare")
        args += ["--volume", f"{volumes[vol]}:{m['mountPath']}:{'ro' if m.get('readOnly') else 'rw'}"]
    for extra in a.mount_extra:
        args += ["--volume", f"{extra}:ro"]

    image = c["image"]
    image = dict(kv(a.image, "--image")).get(image, image)
    cmd = [expand(x, env) for x in c.get("command") or []]
    cargs = [expand(x, env) for x in c.get("args") or []]
    if cmd:
        args += ["--entrypoint", json.dumps(cmd)]
    return name, args, image, cargs


def ready(pod_ip, c, limit=60):
    probe = (c.get("readinessProbe") or {}).get("httpGet")
    if not probe:
        return True
    port = probe["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in c.get("ports") or [] if p.get("name") == port)
    url = f"http://{pod_ip}:{port}{probe.get('path', '/')}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:  # not up yet
            pass
        time.sleep(0.3)
    return False


def up(a):
    docs = load_docs(a)
    dep = [d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == a.deployment]
    if len(dep) != 1:
        fail(f"no Deployment {a.deployment} in the manifest")
    spec = dep[0]["spec"]["template"]["spec"]
    volumes = kv(a.volume, "--volume")
    secret_env = kv(a.secret_env, "--secret-env")
    env_over = {}
    for it in a.env:
        cname, sep, rest = it.partition(":")
        k, sep2, v = rest.partition("=")
        if not sep or not sep2:
            fail(f"--env {it!r}: want CONTAINER:VAR=VALUE")
        env_over.setdefault(cname, {})[k] = v
    for c in spec.get("initContainers") or []:
        name, args, image, cargs = container_args(a, spec, c, volumes, secret_env, env_over)
        r = podman(*args, "--rm", image, *cargs, check=False)
        if r.returncode != 0:
            fail(f"init container {name} exited {r.returncode}")
        print(f"{name}: init container done")
    for c in spec["containers"]:
        name, args, image, cargs = container_args(a, spec, c, volumes, secret_env, env_over)
        podman(*args, "--detach", image, *cargs, capture=True)
        print(f"{name}: started")
    for c in spec["containers"]:
        if not ready(a.pod_ip, c):
            logs = podman("logs", "--tail", "20", f"{a.pod}-{c['name']}", check=False, capture=True)
            print(logs.stdout + logs.stderr, file=sys.stderr)
            fail(f"{a.pod}-{c['name']}: readiness probe not passed within 60 s")


def down(a):
    r = podman("ps", "-a", "--format", "{{.Names}}", capture=True)
    names = [n for n in r.stdout.split() if n.startswith(f"{a.pod}-")]
    if names:
        podman("rm", "-f", "-t", "5", *names, check=False, capture=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("action", choices=["up", "down"])
    ap.add_argument("--pod", required=True)
    ap.add_argument("--manifest")
    ap.add_argument("--chart")
    ap.add_argument("--set-json")
    ap.add_argument("--deployment")
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--pod-ip")
    ap.add_argument("--network", default="host")
    ap.add_argument("--image", action="append", default=[])
    ap.add_argument("--volume", action="append", default=[])
    ap.add_argument("--secret-env", action="append", default=[])
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--mount-extra", action="append", default=[])
    a = ap.parse_args()
    if a.action == "down":
        down(a)
        return
    if not a.deployment or not a.pod_ip or not (a.manifest or a.chart):
        fail("up needs --deployment, --pod-ip and --manifest or --chart")
    up(a)


if __name__ == "__main__":
    main()
