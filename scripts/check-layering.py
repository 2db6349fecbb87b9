#!/usr/bin/env python3
"""The layering rules of docs/architecture.md, checked from the code as it stands.

1. Crate dependencies: the agent's tree has no Kubernetes crate, the language's
   tree has no k8s-openapi (`cargo tree`).
2. No module cycle inside any crate: for every module, its child modules'
   imports of one another (`crate::…`, `super::…`, `self::…`) form no cycle.
   Unit-test modules (`tests.rs`, `mod tests { … }`) are left out: a test of a
   module naturally uses its parent.

Prints what it checked and every violation; exits 1 if there is one.
Usage: scripts/check-layering.py   (from anywhere in the checkout)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# crate → crates that must not be anywhere in its dependency tree
FORBIDDEN = {
    "tollgate-agent": ["kube", "kube-runtime", "kube-client", "k8s-openapi"],
    "tollgate-agent-api": ["kube", "k8s-openapi", "hyper"],
    "tollgate-policy": ["k8s-openapi", "kube"],
    "tollgate-ir": ["k8s-openapi", "kube"],
    "tollgate-kamailio": ["kube", "k8s-openapi"],
    "tollgate-plumbing": ["kube", "k8s-openapi"],
    "tollgate-rollout": ["kube-client", "kube-runtime", "hyper"],
    "tollgate-alerts": ["kube-client", "kube-runtime", "hyper"],
    # a client of the API: reads the status the operator writes, never the
    # operator's or the rollout machine's code
    "kubectl-tollgate": ["tollgate-operator", "tollgate-rollout", "kube-runtime"],
}

REF = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+|::\{[^}]*\})")
COMMENT = re.compile(r"(?<![:\"])//.*$", re.M)  # doc links name modules without importing them
TEST_MOD = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", re.S)


def cargo(*args: str) -> str:
    return subprocess.run(
        ["cargo", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def crate_trees(problems: list[str]) -> None:
    meta = json.loads(cargo("metadata", "--format-version", "1", "--no-deps"))
    members = {p["name"] for p in meta["packages"]}
    for crate, banned in FORBIDDEN.items():
        if crate not in members:
            continue
        tree = cargo("tree", "-p", crate, "--prefix", "none", "-e", "normal,build,dev")
        names = {line.split(" ")[0] for line in tree.splitlines() if line.strip()}
        found = sorted(set(banned) & names)
        if found:
            problems.append(f"{crate}: its dependency tree has {', '.join(found)}")
        print(f"  {crate}: none of {', '.join(banned)} in its dependency tree"
              if not found else f"  {crate}: HAS {', '.join(found)}")


def module_path(src: Path, file: Path) -> list[str]:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def refs(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for m in REF.finditer(text):
        kind, rest = m.group(1), m.group(2)
        if rest.startswith("::{"):
            for item in rest[3:-1].split(","):
                item = item.strip()
                head = re.match(r"[A-Za-z_][A-Za-z0-9_]*", item)
                if head and head.group(0) not in ("self",):
                    out.append((kind, [head.group(0)]))
        else:
            out.append((kind, rest.split("::")[1:]))
    return out


def crate_cycles(src: Path, problems: list[str]) -> tuple[int, int]:
    files = [f for f in src.rglob("*.rs") if f.name != "tests.rs" and "tests" not in f.parts]
    files = [f for f in files if "bin" not in f.relative_to(src).parts]
    modules = {tuple(module_path(src, f)) for f in files}
    edges: dict[tuple[str, ...], dict[str, set[str]]] = {}
    for f in files:
        text = f.read_text(errors="replace")
        cut = TEST_MOD.search(text)
        if cut:
            text = text[: cut.start()]
        text = COMMENT.sub("", text)
        me = module_path(src, f)
        is_dir_module = f.stem in ("mod", "lib", "main")
        for kind, path in refs(text):
            if kind == "crate":
                target = path
            elif kind == "super":
                base = me if not is_dir_module else me
                target = base[:-1] + path
            else:
                target = me + path
            # the lowest common ancestor and the children of it on each side
            i = 0
            while i < len(me) and i < len(target) and me[i] == target[i]:
                i += 1
            if i >= len(me) or i >= len(target):
                continue  # an ancestor or a descendant: not a sibling edge
            a, b = me[i], target[i]
            parent = tuple(me[:i])
            if parent + (b,) not in modules or a == b:
                continue  # an item of the parent, not a module
            edges.setdefault(parent, {}).setdefault(a, set()).add(b)
    for parent, graph in edges.items():
        for cycle in find_cycles(graph):
            where = "::".join(parent) or "crate root"
            problems.append(f"{src.parent.name}: module cycle under {where}: {' -> '.join(cycle)}")
    return len(modules), sum(len(t) for g in edges.values() for t in g.values())


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state, stack = [], {}, []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return cycles


def main() -> int:
    problems: list[str] = []
    print("crate dependency rules (cargo tree):")
    crate_trees(problems)
    meta = json.loads(cargo("metadata", "--format-version", "1", "--no-deps"))
    print("module cycles:")
    for p in sorted(meta["packages"], key=lambda p: p["name"]):
        src = Path(p["manifest_path"]).parent / "src"
        if src.is_dir():
            n, e = crate_cycles(src, problems)
            print(f"  {p['name']}: {n} modules, {e} imports between sibling modules")
    for p in problems:
        print(f"FAIL {p}")
    print(f"layering: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
