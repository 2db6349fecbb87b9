#!/usr/bin/env python3
"""SBC data dirs for the test scripts, in the layout tollgate.cfg reads.

  sbc-data.py empty DEST        every table as its header line, plus `version`
  sbc-data.py convert SRC DEST  SRC's tables (sbc/testdata: hand-written, with
                                the trees in ONE logical `mtree` table, tree
                                names d:<tenant>, c:<tenant>, tollgate-country,
                                tollgate-dial) into DEST: the fleet-wide trees
                                in tg_country and tg_dial, each tenant's trees
                                in the shard of its id (ids from 10000000 in
                                tenant name order), its tg_tenant rows
                                <t>::key and <t>::tree added
  sbc-data.py retree DEST       DEST/mtree (logical, edited by a test) into
                                DEST's shard tables again; rewrites the tables
                                that changed (mtime moved forward) and prints
                                the trees to reload, one per line

The layout mirrors tollgate_kamailio::kamailio (tables(), Placement;
docs/sbc.md "Shards"). An SBC's own empty set comes from `tollgate-agent
--init-data DIR`, which also fills the fleet-wide trees.
"""
import os
import sys

SHARDS = 1024
FIRST_ID = 10_000_000
HT = "id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int)"
MT = "id(int,auto) tname(string) tprefix(string) tvalue(string)"
TABLES = [
    ("address", "id(int,auto) grp(int) ip_addr(string) mask(int) port(int) tag(string)", 6),
    ("tg_country", MT, 1),
    ("tg_dial", MT, 1),
    ("tg_tenant", HT, 2),
    ("tg_geo", HT, 2),
    ("tg_emerg", HT, 2),
    ("tg_limit", HT, 2),
    ("tg_window", HT, 2),
    ("tg_block", HT, 2),
    ("pl_pipes", "id(int,auto) pipeid(string) algorithm(string) plimit(int)", 1),
] + [("tg_shard_%04d" % i, MT, 1) for i in range(SHARDS)]


def split_row(row):
    """A db_text row's fields, unescaped (`\\:` is a colon in a field)."""
    out, cur, i = [], "", 0
    while i < len(row):
        c = row[i]
        if c == "\\" and i + 1 < len(row):
            n = row[i + 1]
            cur += {"n": "\n", "r": "\r", "t": "\t"}.get(n, n)
            i += 2
            continue
        if c == ":":
            out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur)
    return out


def esc(s):
    return s.replace("\\", "\\\\").replace(":", "\\:").replace("\n", "\\n")


def write(path, text):
    """Writes text if it differs; mtime max(now, old + 1) (db_text reloads by
    whole-second mtime). Returns whether it wrote."""
    try:
        with open(path) as f:
            if f.read() == text:
                return False
        old = int(os.stat(path).st_mtime)
    except FileNotFoundError:
        old = None
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    import time
    t = int(time.time())
    if old is not None:
        t = max(t, old + 1)
    os.utime(path, (t, t))
    return True


def empty(dest):
    os.makedirs(dest, exist_ok=True)
    for name, header, _ in TABLES:
        write(os.path.join(dest, name), header + "\n")
    write(os.path.join(dest, "version"),
          "table_name(string) table_version(int)\n" + "".join("%s:%d\n" % (n, v) for n, _, v in TABLES))


def tenants_of(dest):
    """Tenant -> id: the <t>::key rows of tg_tenant, else (before convert
    added them) the tenants of tg_tenant's keys in name order. A logical
    tree of no such tenant (a test's misspelled tree) is no one's."""
    keys, names = {}, set()
    for line in open(os.path.join(dest, "tg_tenant")).read().splitlines()[1:]:
        f = split_row(line)
        if len(f) >= 4 and "::" in f[1]:
            t, k = f[1].split("::", 1)
            names.add(t)
            if k == "key":
                keys[t] = int(f[4])
    if keys:
        return keys
    return {t: FIRST_ID + i for i, t in enumerate(sorted(names))}


def retree(dest, quiet=False):
    ids = tenants_of(dest)
    shards = {i: [] for i in range(SHARDS)}
    fleet = {"tollgate-country": [], "tollgate-dial": []}
    for line in open(os.path.join(dest, "mtree")).read().splitlines()[1:]:
        f = split_row(line)
        if len(f) != 4:
            continue
        tree, prefix, value = f[1], f[2], f[3]
        if tree in fleet:
            fleet[tree].append((prefix, value))
        elif tree[:2] in ("d:", "c:") and tree[2:] in ids:
            i = ids[tree[2:]]
            kind = "1" if tree[0] == "d" else "2"
            shards[i % SHARDS].append(("%d%s%s" % (i, kind, prefix), value))
    reload = []
    for tree, table in (("tollgate-country", "tg_country"), ("tollgate-dial", "tg_dial")):
        text = MT + "\n" + "".join("%d:%s:%s:%s\n" % (n + 1, tree, p, esc(v)) for n, (p, v) in enumerate(fleet[tree]))
        if write(os.path.join(dest, table), text):
            reload.append(tree)
    for s, rows in shards.items():
        tree = "tollgate-shard-%04d" % s
        text = MT + "\n" + "".join("%d:%s:%s:%s\n" % (n + 1, tree, k, esc(v)) for n, (k, v) in enumerate(rows))
        if write(os.path.join(dest, "tg_shard_%04d" % s), text):
            reload.append(tree)
    if not quiet:
        print("\n".join(reload))
    return ids


def convert(src, dest):
    given = {}
    for n in os.listdir(src):
        if n.endswith(".py") or n == "version" or os.path.isdir(os.path.join(src, n)):
            continue
        with open(os.path.join(src, n)) as f:
            given[n] = f.read()
    os.makedirs(dest, exist_ok=True)
    for name, header, _ in TABLES:
        if name not in given:
            write(os.path.join(dest, name), header + "\n")
    write(os.path.join(dest, "version"),
          "table_name(string) table_version(int)\n" + "".join("%s:%d\n" % (n, v) for n, _, v in TABLES))
    for n, text in given.items():
        write(os.path.join(dest, n), text)
    ids = retree(dest, quiet=True)
    # the placement rows, after the tenants' own
    path = os.path.join(dest, "tg_tenant")
    lines = open(path).read().splitlines()
    nid = max([int(split_row(l)[0]) for l in lines[1:] if split_row(l)[0].isdigit()] + [0])
    have = {split_row(l)[1] for l in lines[1:] if len(split_row(l)) > 1}
    for t, i in sorted(ids.items()):
        if "%s::key" % t in have:
            continue
        for key, value in (("key", str(i)), ("tree", "tollgate-shard-%04d" % (i % SHARDS))):
            nid += 1
            lines.append("%d:%s:0:0:%s:0" % (nid, esc("%s::%s" % (t, key)), esc(value)))
    write(path, "\n".join(lines) + "\n")


def main():
    a = sys.argv[1:]
    if a[:1] == ["empty"] and len(a) == 2:
        empty(a[1])
    elif a[:1] == ["convert"] and len(a) == 3:
        convert(a[1], a[2])
    elif a[:1] == ["retree"] and len(a) == 2:
        retree(a[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
