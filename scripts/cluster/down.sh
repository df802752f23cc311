#!/usr/bin/env bash
# Stops what scripts/cluster/up.sh started, each process by the PID it recorded (never by name):
# velero server and S3 first, then the controller manager (so that no controller recreates pods),
# then every pod is deleted while the kubelet still runs — it unmounts volumes and tears down
# the pods' network namespaces — then the kubelet, the API server, containerd and etcd.
#
#   scripts/cluster/down.sh            stop; the cluster's state is kept for the next cluster-up
#   scripts/cluster/down.sh --wipe     also remove the state (etcd, containerd, kubelet, S3,
#                                      certificates, logs); built binaries and images are kept
#   scripts/cluster/down.sh velero     stop only velero server (the e2e suite restarts it)
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "stopping the cluster needs root, as starting it did" "run it as root, e.g. sudo make cluster-down"
wipe=false
case "${1:-}" in
--wipe) wipe=true ;;
velero)
    stop velero
    exit 0
    ;;
"") ;;
*) die "unknown argument $1" "use: down.sh [--wipe|velero]" ;;
esac

CTR=(ctr --address "$RUN/containerd.sock" --namespace k8s.io)

delete_pods() {
    running apiserver && running kubelet || return 0
    kubectl_admin delete pods --all --all-namespaces --grace-period=2 --wait=false >/dev/null 2>&1 || true
    local start=$SECONDS
    while [ $((SECONDS - start)) -lt 60 ]; do
        if [ -z "$(kubectl_admin get pods --all-namespaces -o name 2>/dev/null)" ]; then
            say "pods deleted in $(elapsed $((SECONDS - start)))"
            return 0
        fi
        sleep 1
    done
    say "some pods were still terminating after 60s; their containers are removed through containerd"
}

# What the kubelet could not remove: containerd tasks and containers, by their IDs.
remove_containers() {
    running containerd || return 0
    local task container
    for task in $("${CTR[@]}" tasks ls -q 2>/dev/null); do
        "${CTR[@]}" tasks kill --signal SIGKILL "$task" >/dev/null 2>&1 || true
    done
    sleep 1
    for task in $("${CTR[@]}" tasks ls -q 2>/dev/null); do
        "${CTR[@]}" tasks delete --force "$task" >/dev/null 2>&1 || true
    done
    for container in $("${CTR[@]}" containers ls -q 2>/dev/null); do
        "${CTR[@]}" containers delete "$container" >/dev/null 2>&1 || true
    done
}

# Leftovers of ours: mounts under the stack's folder and the pods' bridge.
remove_leftovers() {
    local mount
    awk '{print $2}' /proc/mounts | grep -F "$CLUSTER_DIR/" | sort -r | while read -r mount; do
        umount -l "$mount" 2>/dev/null && say "unmounted $mount"
    done
    if ip link show quiesce0 >/dev/null 2>&1; then
        ip link delete quiesce0 && say "removed the pods' bridge quiesce0"
    fi
}

stop velero
stop s3
stop kcm
delete_pods
stop kubelet
stop apiserver
remove_containers
stop containerd
stop etcd
remove_leftovers
if $wipe; then
    rm -rf "$STATE" "$RUN" "$ETC" "$PKI" "$LOGS" "$PLUGIN_DIR" "$TOOLS_DIR"
    say "wiped the cluster's state; built binaries and images kept in ${BIN_CACHE#"$REPO"/} and ${IMAGE_CACHE#"$REPO"/}"
fi
say "cluster down"
