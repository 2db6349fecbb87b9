#!/usr/bin/env python3
"""A CI job of the example policy repository as a shell script, to run it here.

    ci-job.py github WORKFLOW JOB --event pull_request|push [--base-ref B] [--label L]...
    ci-job.py gitlab FILE JOB

github: the job's `run` steps in order, each in a subshell with bash's `-e -o
pipefail` (as GitHub runs them), with the workflow's and the step's `env`; a
step's `if` and the `${{ }}` expressions the example uses are evaluated for the
given event: `github.event_name`, `github.base_ref`, `contains(
github.event.pull_request.labels.*.name, 'L')`. Any other expression is an
error (so the test cannot silently run something else). `uses` steps are left
to the caller (the test checks the repository out itself).

gitlab: the job's `script` lines, joined as the runner runs them (one shell,
stopping at the first failing line).
"""
import argparse
import re
import shlex
import sys

import yaml


def fail(msg):
    print(f"ci-job: {msg}", file=sys.stderr)
    sys.exit(2)


def github(a):
    wf = yaml.safe_load(open(a.file))
    job = (wf.get("jobs") or {}).get(a.job) or fail(f"no job {a.job}")
    ctx = {"github.event_name": a.event, "github.base_ref": a.base_ref or ""}

    def expr(e):
        e = e.strip()
        if e in ctx:
            return ctx[e]
        m = re.fullmatch(r"contains\(github\.event\.pull_request\.labels\.\*\.name, '([^']+)'\)", e)
        if m:
            return "true" if m.group(1) in a.label else "false"
        m = re.fullmatch(r"(github\.[a-z_]+) == '([^']*)'", e)
        if m and m.group(1) in ctx:
            return "true" if ctx[m.group(1)] == m.group(2) else "false"
        fail(f"expression not understood here: {e}")

    def subst(s):
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: expr(m.group(1)), str(s))

    out = ["set -e"]
    for k, v in (wf.get("env") or {}).items():
        out.append(f"export {k}=${{{k}:-{shlex.quote(subst(v))}}}")
    for i, step in enumerate(job.get("steps") or []):
        name = step.get("name") or step.get("uses") or f"step {i + 1}"
        if "uses" in step:
            out.append(f"# {name}: done by the caller")
            continue
        cond = step.get("if")
        if cond is not None and expr(cond) != "true":
            out.append(f"# {name}: skipped ({cond})")
            continue
        out.append(f"echo '--- step: {name}' >&2")
        env = " ".join(f"{k}={shlex.quote(subst(v))}" for k, v in (step.get("env") or {}).items())
        body = subst(step["run"])
        out.append(f"env {env} bash --noprofile --norc -eo pipefail -c {shlex.quote(body)}")
    print("\n".join(out))


def gitlab(a):
    doc = yaml.safe_load(open(a.file))
    job = doc.get(a.job) or fail(f"no job {a.job}")
    lines = job.get("script") or fail(f"job {a.job} has no script")
    print("set -e\n" + "\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["github", "gitlab"])
    ap.add_argument("file")
    ap.add_argument("job")
    ap.add_argument("--event", default="push")
    ap.add_argument("--base-ref")
    ap.add_argument("--label", action="append", default=[])
    a = ap.parse_args()
    github(a) if a.kind == "github" else gitlab(a)


if __name__ == "__main__":
    main()
