#!/usr/bin/env bash
# Builds the plugin's OCI image from dist/velero-plugin-quiesce (`make release`) with buildah,
# twice, and fails unless both builds have the same digest (reproducibility). Exports
# dist/velero-plugin-quiesce-<version>.oci.tar and prints its digest. Installs buildah with apt
# when missing. No Docker engine and no registry needed.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=velero-plugin-quiesce
VERSION=$(sed -n 's/^version = "\([^"]*\)"/\1/p' Cargo.toml | head -n 1)
TAG="localhost/$BIN:$VERSION"
ARCHIVE="dist/$BIN-$VERSION.oci.tar"

if [ ! -x "dist/$BIN" ]; then
    echo "image: dist/$BIN is missing; run \`make release\` first" >&2
    exit 1
fi

# The image is FROM scratch: no loader, no libc. Refuse a dynamically linked binary.
if command -v readelf >/dev/null 2>&1 \
    && { readelf -l "dist/$BIN" | grep -q 'INTERP' || readelf -d "dist/$BIN" | grep -q 'NEEDED'; }; then
    echo "image: dist/$BIN is dynamically linked; a FROM-scratch image needs a static binary" >&2
    exit 1
fi

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v buildah >/dev/null 2>&1; then
    echo "image: installing buildah (apt)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The build context holds the binary and nothing else: nothing else can leak into the image.
mkdir "$work/context"
cp "dist/$BIN" "$work/context/$BIN"

build() { # $1: tag; prints the image ID
    buildah build --quiet --timestamp 0 --format oci \
        --build-arg "VERSION=$VERSION" -f Containerfile -t "$1" "$work/context" | tail -n 1
}

first_id=$(build "$TAG")
second_id=$(build "$TAG-rebuild")
buildah rmi "$TAG-rebuild" >/dev/null 2>&1 || true
if [ "$first_id" != "$second_id" ]; then
    echo "image: NOT reproducible: two builds gave image IDs $first_id and $second_id" >&2
    exit 1
fi

# buildah's oci-archive carries the export time in its tar headers; repack the OCI layout with
# fixed metadata so that the archive file itself, not only the image digest, is reproducible.
export_archive() { # $1: archive path, $2: digest file
    local layout="$work/layout"
    rm -rf "$layout"
    buildah push --quiet --digestfile "$2" "$TAG" "oci:$layout:$BIN:$VERSION"
    tar --create --file "$1" --directory "$layout" --format=gnu --sort=name --mtime=@0 \
        --owner=0 --group=0 --numeric-owner --mode='u+rw,go+r,go-w' .
}

rm -f "$ARCHIVE"
export_archive "$ARCHIVE" "$work/digest"
export_archive "$work/again.oci.tar" "$work/digest2"
digest=$(cat "$work/digest")
if [ "$digest" != "$(cat "$work/digest2")" ] || ! cmp -s "$ARCHIVE" "$work/again.oci.tar"; then
    echo "image: NOT reproducible: two exports differ ($digest, $(cat "$work/digest2"))" >&2
    exit 1
fi

echo "image: $TAG (image ID ${first_id:0:12}, the same in two builds)"
echo "image: $ARCHIVE $(du -k "$ARCHIVE" | cut -f1) KiB, binary $(du -k "dist/$BIN" | cut -f1) KiB"
echo "image: manifest digest $digest"
echo "image: archive sha256 $(sha256sum "$ARCHIVE" | cut -d ' ' -f 1)"
