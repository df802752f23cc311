#!/usr/bin/env bash
# Runs the image exactly as Velero's init container does (spec velero-plugin-protocol §14.1): a
# writable volume at /target, no command, uid 65532 from the image. Then checks that /target holds
# only a byte-identical 0755 velero-plugin-quiesce; that the copy refuses to run without Velero's
# cookie, and with it prints the go-plugin handshake line and lists its plugins over gRPC; that a
# second run replaces the file; and that a read-only or missing /target fails clearly.
# Installs podman, runc and curl with apt when missing. Usage: scripts/image-smoke.sh [ARCHIVE]
#
# podman here needs `--runtime runc` (crun fails on cgroup v1 hybrid) and lowered ulimits (the
# defaults exceed the hard limits and CAP_SYS_RESOURCE is missing): spec exec-and-tooling §2.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=velero-plugin-quiesce
VERSION=$(sed -n 's/^version = "\([^"]*\)"/\1/p' Cargo.toml | head -n 1)
ARCHIVE=${1:-dist/$BIN-$VERSION.oci.tar}
IMAGE="oci-archive:$ARCHIVE"

fail() { echo "image-smoke: FAIL: $*" >&2; exit 1; }
step() { echo "image-smoke: $*"; }

[ -f "$ARCHIVE" ] || fail "$ARCHIVE is missing; run \`make image\` first"
[ -x "dist/$BIN" ] || fail "dist/$BIN is missing; run \`make release\` first"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 \
    || ! command -v curl >/dev/null 2>&1; then
    step "installing podman, runc and curl (apt)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc curl >/dev/null
fi

PODMAN_RUN=(podman run --quiet --rm --runtime runc --network none
    --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

work=$(mktemp -d)
plugin_pid=
cleanup() {
    if [ -n "$plugin_pid" ]; then kill "$plugin_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Velero's plugins volume is an emptyDir: mode 0777, owned by root.
target="$work/plugins"
mkdir -m 0777 "$target"

step "init container: ${PODMAN_RUN[*]} -v $target:/target $IMAGE"
"${PODMAN_RUN[@]}" -v "$target:/target" "$IMAGE" 2>"$work/init.err" \
    || fail "the init container exited non-zero: $(cat "$work/init.err")"
cat "$work/init.err"
grep -q "installed /target/$BIN" "$work/init.err" || fail "no 'installed' line on stderr"

copied="$target/$BIN"
[ "$(ls -A "$target")" = "$BIN" ] || fail "/target holds more than $BIN: $(ls -A "$target")"
cmp -s "$copied" "dist/$BIN" || fail "$copied differs from dist/$BIN"
[ "$(stat -c %a "$copied")" = 755 ] || fail "$copied has mode $(stat -c %a "$copied"), not 755"
[ "$(stat -c %u:%g "$copied")" = 65532:65532 ] \
    || fail "$copied is owned by $(stat -c %u:%g "$copied"), not the image user 65532:65532"
step "ok: /target holds only $BIN, byte-identical, mode 755, owner 65532:65532"

# Without Velero's cookie the copy explains itself and exits 1, as every go-plugin does.
set +e
env -u VELERO_PLUGIN "$copied" >"$work/nocookie.out" 2>"$work/nocookie.err"
code=$?
set -e
[ "$code" -eq 1 ] || fail "the copy without the cookie exited $code, not 1"
grep -q "This binary is a plugin" "$work/nocookie.err" || fail "no plugin message: $(cat "$work/nocookie.err")"
step "ok: without VELERO_PLUGIN the copy exits 1 with the plugin message"

# Launched the way Velero launches it: cookie, protocol versions, Velero's server flags.
VELERO_PLUGIN=hello PLUGIN_PROTOCOL_VERSIONS=2 PLUGIN_MIN_PORT=10000 PLUGIN_MAX_PORT=25000 \
    "$copied" --log-level info --features=EnableCSI >"$work/serve.out" 2>"$work/serve.err" &
plugin_pid=$!
handshake=
for _ in $(seq 100); do
    if [ -s "$work/serve.out" ] && handshake=$(head -n 1 "$work/serve.out") && [ -n "$handshake" ]; then
        break
    fi
    sleep 0.05
done
[[ "$handshake" =~ ^1\|2\|unix\|/.+\|grpc\|$ ]] \
    || fail "no go-plugin handshake line within 5 s (got '$handshake'; stderr: $(cat "$work/serve.err"))"
socket=$(echo "$handshake" | cut -d '|' -f 4)
[ -S "$socket" ] || fail "the handshake names $socket, which is not a socket"
step "ok: with VELERO_PLUGIN=hello it serves: $handshake"

# ListPlugins over the socket, as Velero's registry asks: an empty request in one gRPC frame
# (5 bytes: uncompressed flag + zero length); the answer must name both kinds of our plugin.
printf '\0\0\0\0\0' | curl --silent --show-error --http2-prior-knowledge --unix-socket "$socket" \
    -H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- \
    --dump-header "$work/list.headers" --output "$work/list.bin" \
    http://unused/generated.PluginLister/ListPlugins || fail "ListPlugins over $socket failed"
grep -qi '^grpc-status: 0' "$work/list.headers" || fail "ListPlugins answered: $(cat "$work/list.headers")"
for expected in quiesce.dev/pod-hooks BackupItemActionV2 ItemBlockAction; do
    grep -aq "$expected" "$work/list.bin" || fail "ListPlugins does not list $expected"
done
step "ok: ListPlugins lists quiesce.dev/pod-hooks as BackupItemActionV2 and ItemBlockAction"

kill -TERM "$plugin_pid"
wait "$plugin_pid" || fail "the plugin did not exit 0 on SIGTERM"
plugin_pid=

# A second init container run (pod restart) replaces the file atomically.
inode=$(stat -c %i "$copied")
"${PODMAN_RUN[@]}" -v "$target:/target" "$IMAGE" 2>/dev/null || fail "the second run exited non-zero"
[ "$(ls -A "$target")" = "$BIN" ] || fail "after a second run /target holds: $(ls -A "$target")"
cmp -s "$copied" "dist/$BIN" || fail "after a second run the copy differs"
[ "$(stat -c %i "$copied")" != "$inode" ] || fail "the second run rewrote the file in place"
step "ok: a second run replaces the file by rename"

# A read-only /target and no /target at all fail with a clear message.
readonly_dir="$work/readonly"
mkdir -m 0777 "$readonly_dir"
if "${PODMAN_RUN[@]}" -v "$readonly_dir:/target:ro" "$IMAGE" 2>"$work/ro.err"; then
    fail "a read-only /target was accepted"
fi
grep -q "not writable" "$work/ro.err" || fail "unclear read-only error: $(cat "$work/ro.err")"
[ -z "$(ls -A "$readonly_dir")" ] || fail "files left in the read-only dir"
step "ok: read-only /target -> $(cat "$work/ro.err")"
if "${PODMAN_RUN[@]}" "$IMAGE" 2>"$work/missing.err"; then
    fail "a missing /target was accepted"
fi
grep -q "does not exist" "$work/missing.err" || fail "unclear missing-dir error: $(cat "$work/missing.err")"
step "ok: no /target -> $(cat "$work/missing.err")"

step "passed"
