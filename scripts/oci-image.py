#!/usr/bin/env python3
"""Assembles the operator's OCI image without a container daemon.

The root file system is the release binary, the shared libraries it links (from the Debian
packages libc6 and libgcc-s1, never from the build host), the Mozilla CA bundle (from Debian's
ca-certificates), the packages' copyright files, and a passwd/group naming user 65532. No shell,
no package manager. One layer, written byte-for-byte reproducibly (sorted entries, fixed times and
owners), then an OCI image layout archived as one tar (what `skopeo copy oci-archive:…` and
`podman load` read).

usage: oci-image.py --binary BIN --debs DIR --image NAME:TAG --out FILE
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

UID = 65532
# Fixed time for every file: the image's digest depends only on its content.
EPOCH = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
LIBDIR = "lib/x86_64-linux-gnu"


def needed_libraries(binary):
    """Library file names the binary loads, by `ldd` (the loader included)."""
    out = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
    names = []
    for line in out.splitlines():
        m = re.search(r"(\S+\.so[.\d]*)", line.strip())
        if m and "linux-vdso" not in m.group(1):
            names.append(os.path.basename(m.group(1)))
    return names


def find(staging, name):
    for dirpath, _, files in os.walk(staging):
        if name in files:
            path = os.path.join(dirpath, name)
            return os.path.realpath(path) if os.path.islink(path) else path
    sys.exit(f"error: {name} is not in the Debian packages in {staging}")


def build_rootfs(binary, debs, root):
    staging = tempfile.mkdtemp(prefix="lz-debs-")
    packages = sorted(f for f in os.listdir(debs) if f.endswith(".deb"))
    for deb in packages:
        subprocess.run(["dpkg-deb", "-x", os.path.join(debs, deb), staging], check=True)
    os.makedirs(os.path.join(root, LIBDIR))
    for name in needed_libraries(binary):
        shutil.copyfile(find(staging, name), os.path.join(root, LIBDIR, name))
        os.chmod(os.path.join(root, LIBDIR, name), 0o755)
    # The loader path compiled into the binary (PT_INTERP).
    os.makedirs(os.path.join(root, "lib64"))
    os.symlink("/" + LIBDIR + "/ld-linux-x86-64.so.2", os.path.join(root, "lib64/ld-linux-x86-64.so.2"))
    certs = os.path.join(staging, "usr/share/ca-certificates/mozilla")
    os.makedirs(os.path.join(root, "etc/ssl/certs"))
    with open(os.path.join(root, "etc/ssl/certs/ca-certificates.crt"), "w") as bundle:
        for crt in sorted(os.listdir(certs)):
            with open(os.path.join(certs, crt)) as f:
                bundle.write(f.read().rstrip("\n") + "\n")
    for pkg in ("libc6", "libgcc-s1", "ca-certificates"):
        src = os.path.join(staging, "usr/share/doc", pkg, "copyright")
        if os.path.exists(src):
            os.makedirs(os.path.join(root, "usr/share/doc", pkg))
            shutil.copyfile(src, os.path.join(root, "usr/share/doc", pkg, "copyright"))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/sbin/nologin\n")
        f.write(f"nonroot:x:{UID}:{UID}:nonroot:/home/nonroot:/sbin/nologin\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write(f"root:x:0:\nnonroot:x:{UID}:\n")
    os.makedirs(os.path.join(root, "home/nonroot"))
    os.makedirs(os.path.join(root, "tmp"))
    shutil.copyfile(binary, os.path.join(root, "landing-zone-operator"))
    os.chmod(os.path.join(root, "landing-zone-operator"), 0o755)
    shutil.rmtree(staging)
    return [d.split("_")[0] + " " + d.split("_")[1] for d in packages]


def layer_tar(root):
    """The root file system as an uncompressed tar: sorted, fixed times and owners."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                entries.append(os.path.join(dirpath, n))
        for path in sorted(entries):
            rel = os.path.relpath(path, root)
            info = tar.gettarinfo(path, arcname=rel)
            info.mtime = EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if rel in ("home/nonroot",):
                info.uid = info.gid = UID
                info.mode = 0o700
            elif rel == "tmp":
                info.mode = 0o1777
            elif info.isdir():
                info.mode = 0o755
            if info.isfile():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    return buf.getvalue()


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs/sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--debs", required=True)
    p.add_argument("--image", required=True, help="repository:tag")
    p.add_argument("--out", required=True)
    # The test image (make test) is unpacked once and thrown away: compressing it hard buys nothing.
    p.add_argument("--fast", action="store_true", help="gzip level 1 instead of 9")
    a = p.parse_args()
    repository, tag = a.image.rsplit(":", 1)

    work = tempfile.mkdtemp(prefix="lz-image-")
    root = os.path.join(work, "rootfs")
    packages = build_rootfs(a.binary, a.debs, root)
    layer = layer_tar(root)
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0, compresslevel=1 if a.fast else 9) as g:
        g.write(layer)

    layout = os.path.join(work, "layout")
    os.makedirs(os.path.join(layout, "blobs/sha256"))
    layer_desc = blob(layout, gz.getvalue())
    layer_desc["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    created = "1970-01-01T00:00:00Z" if EPOCH == 0 else __import__("datetime").datetime.fromtimestamp(EPOCH, __import__("datetime").timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "User": f"{UID}:{UID}",
            "Entrypoint": ["/landing-zone-operator"],
            "Cmd": ["run"],
            "ExposedPorts": {"8080/tcp": {}},
            "Env": ["SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
            "WorkingDir": "/home/nonroot",
            "Labels": {
                "org.opencontainers.image.title": "landing-zone-operator",
                "org.opencontainers.image.version": tag,
                "org.opencontainers.image.licenses": "Apache-2.0",
                "dev.landingzone.image.debian-packages": ", ".join(packages),
            },
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created": created, "created_by": "scripts/oci-image.py: binary, " + ", ".join(packages)}],
    }
    config_desc = blob(layout, canonical(config))
    config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
        "annotations": {"org.opencontainers.image.version": tag},
    }
    manifest_desc = blob(layout, canonical(manifest))
    manifest_desc["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    manifest_desc["annotations"] = {
        "org.opencontainers.image.ref.name": tag,
        "io.containerd.image.name": a.image,
    }
    manifest_desc["platform"] = {"architecture": "amd64", "os": "linux"}
    with open(os.path.join(layout, "index.json"), "wb") as f:
        f.write(canonical({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [manifest_desc]}))
    with open(os.path.join(layout, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with tarfile.open(a.out, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in sorted(os.walk(layout)):
            for n in sorted(dirnames + filenames):
                path = os.path.join(dirpath, n)
                info = tar.gettarinfo(path, arcname=os.path.relpath(path, layout))
                info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "", ""
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    shutil.rmtree(work)
    print(f"image    {a.image}")
    print(f"archive  {a.out}  {os.path.getsize(a.out) / 1e6:.1f} MB")
    print(f"layer    {layer_desc['size'] / 1e6:.1f} MB compressed, {len(layer) / 1e6:.1f} MB unpacked")
    print(f"digest   {manifest_desc['digest']}")
    print(f"contains /landing-zone-operator, {', '.join(packages)} (libraries and CA bundle only), user {UID}, no shell")


if __name__ == "__main__":
    main()
