#!/usr/bin/env bash
# The end-to-end suite (tests/e2e) on the real cluster: starts the stack when it is not running
# (then stops it afterwards — wiped, unless a scenario failed and its logs are wanted — so that
# nothing is left running), builds and imports the images of scenario 8 (Velero, the aws plugin,
# and quiesce's own from `make image`), and runs the scenarios with `go test`. A stack that was
# already running is left running.
#
#   scripts/cluster/e2e.sh                         every scenario
#   E2E_RUN=TestWalkthrough scripts/cluster/e2e.sh one (go test -run)
#   QUIESCE_IMAGE_ARCHIVE=…oci.tar                 an image archive instead of make image's
# The whole output is kept in .cluster/e2e-last.log.
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version=$(sed -n 's/^version = "\([^"]*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)
archive=${QUIESCE_IMAGE_ARCHIVE:-$REPO/dist/velero-plugin-quiesce-$version.oci.tar}
quiesce_image=localhost/velero-plugin-quiesce:$version

started_here=false
if ! running apiserver || ! running velero; then
    say "the cluster is not running: starting it (it is stopped and wiped again at the end)"
    "$CLUSTER_SCRIPTS/up.sh" >/dev/null
    started_here=true
fi
# shellcheck disable=SC2317 # run by the EXIT trap
finish() {
    local status=$?
    if $started_here && [ "$status" -eq 0 ]; then
        "$CLUSTER_SCRIPTS/down.sh" --wipe || status=1
    elif $started_here; then
        # Stopped, not wiped: the logs under .cluster/logs say what went wrong.
        "$CLUSTER_SCRIPTS/down.sh" || status=1
    fi
    exit "$status"
}
trap finish EXIT

# Scenario 8's images. quiesce's is the OCI archive of `make image` (built here when missing).
"$CLUSTER_SCRIPTS/build.sh" images
if [ ! -f "$archive" ]; then
    long_step "make image (quiesce's OCI archive)" "$LOGS/build/image.log" make -C "$REPO" image
fi
CTR=(ctr --address "$RUN/containerd.sock" --namespace k8s.io)
"${CTR[@]}" images import "$IMAGE_CACHE/velero-$VELERO_VERSION.tar" >/dev/null
"${CTR[@]}" images import "$IMAGE_CACHE/velero-plugin-for-aws-$AWS_PLUGIN_VERSION.tar" >/dev/null
# The archive names its image velero-plugin-quiesce:<version>, which containerd's CRI would read
# as docker.io/library/…: import a copy whose index names it localhost/velero-plugin-quiesce:….
oci=$(mktemp -d)
tar -xf "$archive" -C "$oci"
sed -i "s|\"velero-plugin-quiesce:$version\"|\"$quiesce_image\"|" "$oci/index.json"
tar -cf "$oci.tar" -C "$oci" .
"${CTR[@]}" images import "$oci.tar" >/dev/null
rm -rf "$oci" "$oci.tar"
"${CTR[@]}" images ls -q | grep -x "$quiesce_image" >/dev/null ||
    die "$archive did not import as $quiesce_image" "check it with: tar -xOf $archive index.json"
say "images $VELERO_IMAGE, $AWS_PLUGIN_IMAGE and $quiesce_image in containerd"

say "running tests/e2e (go test; output also in ${CLUSTER_DIR#"$REPO"/}/e2e-last.log)"
cd "$REPO/tests/e2e"
set +e
env E2E_REPO="$REPO" E2E_CLUSTER_DIR="$CLUSTER_DIR" KUBECONFIG="$KUBECONFIG_ADMIN" PATH="$TOOLS_DIR:$PATH" \
    E2E_QUIESCE_IMAGE="$quiesce_image" E2E_VELERO_IMAGE="$VELERO_IMAGE" E2E_AWS_PLUGIN_IMAGE="$AWS_PLUGIN_IMAGE" \
    go test -count=1 -v -timeout 40m ${E2E_RUN:+-run "$E2E_RUN"} . 2>&1 | tee "$CLUSTER_DIR/e2e-last.log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    say "e2e failed; the stack's logs (velero.log, kubelet.log, …) are in ${LOGS#"$REPO"/}"
    tail -n 15 "$LOGS/velero.log" >&2 || true
fi
exit "$status"
