#!/usr/bin/env python3
"""The root file system of one Tollgate image, as a reproducible tar, and its SBOM.

    image-rootfs.py --staging DIR --manifest FILE --name NAME --epoch N \
        --out ROOTFS.tar --sbom SBOM.json [--elf PATH]... [--file PATH]... \
        [--add SRC:DEST[:MODE]]... [--busybox] [--crates FILE]

The staging dir is Debian's packages extracted by mmdebstrap (scripts/images.sh);
the manifest lists each package's control fields and files. The image gets only
what it needs: the ELF programs and modules named by --elf (paths in the staging
dir) or --add (Tollgate's own binaries), every shared library they load,
resolved as the dynamic loader does (DT_NEEDED through RUNPATH/RPATH, then the
multiarch dirs), the files named by --file, and for each Debian package a file
came from: its copyright file and its status entry under /var/lib/dpkg/status.d
(so image scanners see the package versions). Plus /etc/passwd and /etc/group
with user nonroot (65532), /etc/nsswitch.conf, /tmp, and the empty dirs named
by --dir (the mount points of the manifests). Every entry has mtime EPOCH and
owner root, in sorted order: same inputs, same bytes.

The SBOM (SPDX 2.3, JSON) lists the Debian packages (name, version, source,
purl) and, with --crates, the Rust crates of Cargo.lock compiled into the binaries.
"""
import argparse
import hashlib
import io
import json
import os
import stat
import subprocess
import struct
import sys
import tarfile
import time

MULTIARCH = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"]
MOUNT_POINTS = ["/tmp", "/home/nonroot"]


def fail(msg):
    print(f"image-rootfs: {msg}", file=sys.stderr)
    sys.exit(1)


def elf_dynamic(data):
    """(interpreter, [DT_NEEDED], [RUNPATH/RPATH dirs]) of an ELF64 little-endian file."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    interp, dyn, loads = None, None, []
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from(
            "<IIQQQQQQ", data, phoff + i * phentsize)
        if p_type == 3:
            interp = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
        elif p_type == 2:
            dyn = (p_offset, p_filesz)
        elif p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
    if dyn is None:
        return interp, [], []

    def vaddr_to_off(addr):
        for vaddr, off, size in loads:
            if vaddr <= addr < vaddr + size:
                return addr - vaddr + off
        fail("a dynamic string table outside every loaded segment")

    entries, strtab = [], None
    for i in range(dyn[1] // 16):
        tag, val = struct.unpack_from("<qQ", data, dyn[0] + i * 16)
        if tag == 0:
            break
        if tag == 5:
            strtab = vaddr_to_off(val)
        entries.append((tag, val))

    def string(off):
        end = data.index(b"\0", strtab + off)
        return data[strtab + off:end].decode()

    needed = [string(v) for t, v in entries if t == 1]
    paths = [p for t, v in entries if t in (15, 29) for p in string(v).split(":") if p]
    return interp, needed, paths


class Rootfs:
    def __init__(self, staging, owners, dirs):
        self.staging = staging
        self.dirs = MOUNT_POINTS + dirs
        self.owners = owners          # path in the image -> package
        self.files = {}               # path in the image -> (kind, payload, mode)
        self.packages = set()

    def host(self, path):
        return os.path.join(self.staging, path.lstrip("/"))

    def resolve(self, path):
        """The real path of PATH inside the staging dir; the symlinks on the way
        are added to the image as they are."""
        parts = [p for p in path.split("/") if p]
        cur, hops = "", 0
        while parts:
            p = parts.pop(0)
            if p == ".":
                continue
            if p == "..":
                cur = cur.rsplit("/", 1)[0]
                continue
            nxt = f"{cur}/{p}"
            h = self.host(nxt)
            if os.path.islink(h):
                hops += 1
                if hops > 40:
                    fail(f"symlink loop at {path}")
                target = os.readlink(h)
                self.add_link(nxt, target)
                parts = [x for x in target.split("/") if x] + parts
                if target.startswith("/"):
                    cur = ""
            else:
                cur = nxt
        return cur or "/"

    def owner(self, path):
        pkg = self.owners.get(path)
        if pkg:
            self.packages.add(pkg)

    def add_link(self, path, target, staged=True):
        """A symlink; STAGED: it is the staging dir's own (its package is used)."""
        self.files[path] = ("link", target, 0o777)
        if staged:
            self.owner(path)

    def add_staged(self, path):
        """A file of the staging dir at PATH (links kept), returns its real path."""
        real = self.resolve(path)
        h = self.host(real)
        if not os.path.isfile(h):
            fail(f"{path}: not a file in the staging dir")
        mode = stat.S_IMODE(os.stat(h).st_mode)
        self.files[real] = ("file", h, mode)
        self.owner(real)
        return real

    def add_tree(self, path):
        real = self.resolve(path)
        h = self.host(real)
        if os.path.isfile(h):
            self.add_staged(real)
            return
        for dirpath, _, names in os.walk(h):
            for n in names:
                full = os.path.join(dirpath, n)
                inside = "/" + os.path.relpath(full, self.staging)
                if os.path.islink(full):
                    self.add_link(inside, os.readlink(full))
                else:
                    self.add_staged(inside)

    def add_bytes(self, path, data, mode=0o644):
        self.files[path] = ("bytes", data, mode)

    def add_elf(self, real, data):
        """The libraries ELF file REAL (already added) loads, recursively."""
        info = elf_dynamic(data)
        if info is None:
            fail(f"{real}: not a 64-bit little-endian ELF file")
        interp, needed, runpaths = info
        if interp:
            self.add_elf_file(interp)
        origin = os.path.dirname(real)
        for lib in needed:
            dirs = [d.replace("$ORIGIN", origin) for d in runpaths] + MULTIARCH
            for d in dirs:
                cand = os.path.join(d, lib)
                if os.path.exists(self.host(cand)):
                    self.add_elf_file(cand)
                    break
            else:
                fail(f"{real} needs {lib}, found in none of {dirs}")

    def add_elf_file(self, path):
        real = self.resolve(path)
        if real in self.files and self.files[real][0] == "file":
            return real
        real = self.add_staged(real)
        with open(self.host(real), "rb") as f:
            self.add_elf(real, f.read())
        return real

    def tar(self, out, epoch):
        dirs = set()
        for p in list(self.files):
            d = os.path.dirname(p)
            while d not in ("/", ""):
                dirs.add(d)
                d = os.path.dirname(d)
        for d in self.dirs:
            dirs.add(d)
            while d not in ("/", ""):
                dirs.add(d)
                d = os.path.dirname(d)
        entries = {d: ("dir", None, 0o1777 if d == "/tmp" else 0o755) for d in dirs if d not in self.files}
        entries.update(self.files)
        with open(out, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
                for path in sorted(entries):
                    kind, payload, mode = entries[path]
                    ti = tarfile.TarInfo("." + path)
                    ti.mtime = epoch
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = ""
                    ti.mode = mode
                    if kind == "dir":
                        ti.type = tarfile.DIRTYPE
                        t.addfile(ti)
                    elif kind == "link":
                        ti.type = tarfile.SYMTYPE
                        ti.linkname = payload
                        t.addfile(ti)
                    else:
                        data = payload if kind == "bytes" else open(payload, "rb").read()
                        ti.size = len(data)
                        t.addfile(ti, io.BytesIO(data))


def read_manifest(path):
    """package -> control fields; path -> package"""
    pkgs, owners, cur = {}, {}, None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("P\t"):
                cur = {"files": []}
                pkgs[line[2:]] = cur
            elif line.startswith("C\t"):
                k, _, v = line[2:].partition(": ")
                cur[k] = v
            elif line.startswith("F\t"):
                p = os.path.normpath("/" + line[2:].removeprefix("./"))
                owners[p] = cur["Package"]
    return {c["Package"]: c for c in pkgs.values()}, owners


def spdx_id(s):
    return "SPDXRef-" + "".join(c if c.isalnum() or c in ".-" else "-" for c in s)


def sbom(name, version, epoch, pkgs, used, crates):
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    packages, rels = [], []
    root = spdx_id(f"image-{name}")
    packages.append({"SPDXID": root, "name": f"tollgate/{name}", "versionInfo": version,
                     "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
                     "primaryPackagePurpose": "CONTAINER"})
    rels.append({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                 "relatedSpdxElement": root})
    for p in sorted(used):
        c = pkgs[p]
        ver, arch = c.get("Version", ""), c.get("Architecture", "")
        src = c.get("Source", p).split(" ")[0]
        sid = spdx_id(f"deb-{p}-{ver}")
        packages.append({
            "SPDXID": sid, "name": p, "versionInfo": ver, "supplier": "Organization: Debian",
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
            "sourceInfo": f"built from Debian source package {src}",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": f"pkg:deb/debian/{p}@{ver}?arch={arch}&distro=debian-12"}]})
        rels.append({"spdxElementId": root, "relationshipType": "CONTAINS", "relatedSpdxElement": sid})
    for cname, cver in crates:
        sid = spdx_id(f"crate-{cname}-{cver}")
        packages.append({
            "SPDXID": sid, "name": cname, "versionInfo": cver, "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": f"pkg:cargo/{cname}@{cver}"}]})
        rels.append({"spdxElementId": root, "relationshipType": "CONTAINS", "relatedSpdxElement": sid})
    ns = hashlib.sha256(json.dumps([name, version, packages], sort_keys=True).encode()).hexdigest()
    return {"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
            "name": f"tollgate-{name}-{version}",
            "documentNamespace": f"https://example.invalid/tollgate/sbom/{name}-{version}-{ns[:16]}",
            "creationInfo": {"created": created, "creators": ["Tool: tollgate scripts/image-rootfs.py"]},
            "packages": packages, "relationships": rels}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--staging", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--epoch", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sbom", required=True)
    ap.add_argument("--elf", action="append", default=[])
    ap.add_argument("--file", action="append", default=[])
    ap.add_argument("--add", action="append", default=[], help="SRC:DEST[:MODE]; an ELF SRC gets its libraries")
    ap.add_argument("--dir", action="append", default=[], help="an empty directory the image must hold")
    ap.add_argument("--busybox", action="store_true", help="busybox (staged) with a link per applet in /bin")
    ap.add_argument("--crates", help="a file of 'name version' lines: the crates in the binaries")
    a = ap.parse_args()

    pkgs, owners = read_manifest(a.manifest)
    fs = Rootfs(a.staging, owners, a.dir)
    for e in a.elf:
        fs.add_elf_file(e)
    for f in a.file:
        fs.add_tree(f)
    for spec in a.add:
        parts = spec.split(":")
        src, dest = parts[0], parts[1]
        with open(src, "rb") as f:
            data = f.read()
        mode = int(parts[2], 8) if len(parts) > 2 else stat.S_IMODE(os.stat(src).st_mode)
        fs.add_bytes(dest, data, mode)
        if data[:4] == b"\x7fELF":
            fs.add_elf(dest, data)
    if a.busybox:
        real = fs.add_elf_file("/bin/busybox")
        listed = subprocess.run([fs.host(real), "--list"], capture_output=True, text=True, check=True)
        for applet in sorted(listed.stdout.split()):
            p = f"/bin/{applet}"
            if applet != "busybox" and p not in fs.files:
                fs.add_link(p, "busybox", staged=False)

    for p in sorted(fs.packages):
        c = pkgs[p]
        cp = f"/usr/share/doc/{p}/copyright"
        if os.path.isfile(fs.host(cp)) and not os.path.islink(fs.host(cp)):
            fs.add_staged(cp)
        status = "".join(f"{k}: {c[k]}\n" for k in
                         ("Package", "Version", "Architecture", "Source", "Maintainer", "Homepage")
                         if k in c)
        fs.add_bytes(f"/var/lib/dpkg/status.d/{p}", ("Status: install ok installed\n" + status).encode())
    fs.add_bytes("/etc/passwd", b"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                 b"nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin\n")
    fs.add_bytes("/etc/group", b"root:x:0:\nnonroot:x:65532:\n")
    fs.add_bytes("/etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n")
    fs.add_bytes("/etc/os-release", (
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n').encode())
    crates = []
    if a.crates:
        with open(a.crates) as f:
            crates = [tuple(line.split()) for line in f if line.strip()]
    doc = sbom(a.name, a.version, a.epoch, pkgs, fs.packages, crates)
    body = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()
    fs.add_bytes("/usr/share/tollgate/sbom.spdx.json", body)
    with open(a.sbom, "wb") as f:
        f.write(body)
    fs.tar(a.out, a.epoch)
    print(f"{a.name}: {len(fs.files)} files from {len(fs.packages)} Debian packages, {len(crates)} crates")


if __name__ == "__main__":
    main()
