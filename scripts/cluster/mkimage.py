#!/usr/bin/env python3
"""Make a one-layer container image from local files, without a registry or a container engine.

Writes a docker-archive (the `docker save` layout: manifest.json, the config, one layer.tar) that
`ctr -n k8s.io images import` loads into containerd. Reproducible: every timestamp is 0 and the
entries are sorted, so the same inputs give the same image ID.

    mkimage.py --out busybox.tar --ref localhost/busybox:latest --entrypoint '["/bin/sh"]' \\
        --file /bin/busybox:/bin/busybox --link /bin/sh:busybox [--dir /data] [--user 65532:65532]

--file SRC:DST[:MODE] copies a host file (mode 0755 unless given in octal), --link DST:TARGET
makes a symbolic link, --dir DST an empty directory. /tmp (mode 1777), /etc, /proc, /sys, /dev
and /var/run always exist: runc mounts onto some of them and programs expect the others.
"""
import argparse
import hashlib
import io
import json
import os
import sys
import tarfile

BASE_DIRS = {"tmp": 0o1777, "etc": 0o755, "proc": 0o755, "sys": 0o755, "dev": 0o755, "var": 0o755,
             "var/run": 0o755}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="docker-archive to write")
    parser.add_argument("--ref", required=True, help="image name:tag recorded in the archive")
    parser.add_argument("--entrypoint", required=True, help="JSON array")
    parser.add_argument("--file", action="append", default=[], metavar="SRC:DST[:MODE]")
    parser.add_argument("--link", action="append", default=[], metavar="DST:TARGET")
    parser.add_argument("--dir", action="append", default=[], metavar="DST")
    parser.add_argument("--user", default="", help="UID:GID the image runs as (default root)")
    return parser.parse_args()


def layer_tar(files, links, dirs):
    """The layer's bytes: directories first (parents before children), then files and links."""
    entries = {}  # path without leading slash -> TarInfo (+ data)

    def add_dir(path, mode=0o755):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            name = "/".join(parts[:i])
            if name and name not in entries:
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, BASE_DIRS.get(name, mode)
                entries[name] = (info, None)

    for name, mode in BASE_DIRS.items():
        add_dir(name, mode)
    for path in dirs:
        add_dir(path)
    for spec in files:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            sys.exit(f"mkimage: --file {spec!r}: want SRC:DST[:MODE]")
        src, dst = parts[0], parts[1].strip("/")
        mode = int(parts[2], 8) if len(parts) == 3 else 0o755
        with open(src, "rb") as handle:
            data = handle.read()
        add_dir(dst.rsplit("/", 1)[0] if "/" in dst else "")
        info = tarfile.TarInfo(dst)
        info.size, info.mode = len(data), mode
        entries[dst] = (info, data)
    for spec in links:
        dst, _, target = spec.partition(":")
        if not target:
            sys.exit(f"mkimage: --link {spec!r}: want DST:TARGET")
        dst = dst.strip("/")
        add_dir(dst.rsplit("/", 1)[0] if "/" in dst else "")
        info = tarfile.TarInfo(dst)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        entries[dst] = (info, None)

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries, key=lambda n: (entries[n][0].type != tarfile.DIRTYPE, n)):
            info, data = entries[name]
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def main():
    args = parse_args()
    layer = layer_tar(args.file, args.link, args.dir)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": json.loads(args.entrypoint),
            "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin"],
            "WorkingDir": "/",
            **({"User": args.user} if args.user else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "scripts/cluster/mkimage.py"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_name = diff_id[len("sha256:"):] + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [args.ref], "Layers": [layer_name]}]).encode()
    with tarfile.open(args.out + ".partial", "w") as archive:
        for name, data in ((config_name, config_bytes), (layer_name, layer), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            archive.addfile(info, io.BytesIO(data))
    os.replace(args.out + ".partial", args.out)
    print(f"mkimage: {args.out}: {args.ref}, {len(layer) // 1024} KiB, image ID sha256:{config_name[:12]}")


if __name__ == "__main__":
    main()
