#!/usr/bin/env bash
# The hook walkthrough of Velero's documentation (shared/seed/velero-backup-hooks.md) with
# quiesce's keys, on the running stack of scripts/cluster/up.sh (`make demo` starts it first):
# deploy the nginx example with its log volume and the `fsfreeze` sidecar, annotate the pod,
# back it up, read the hook lines of the backup's log, and read the marker file the hooks wrote
# in the sidecar — pre before post. Every command is printed before its output, as typed.
# Idempotent: a backup left by an earlier run is deleted first.
#   DEMO_TYPING_DELAY=0.03   seconds per typed character (default 0.02 on a terminal, else 0)
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

export KUBECONFIG=$KUBECONFIG_ADMIN PATH=$TOOLS_DIR:$PATH
if [ -t 1 ]; then delay=${DEMO_TYPING_DELAY:-0.02}; else delay=${DEMO_TYPING_DELAY:-0}; fi

# typed COMMAND: prints "$ COMMAND" (one character at a time when a delay is set), then runs it.
typed() {
    printf '\n$ '
    if [ "$delay" != 0 ]; then
        local i
        for ((i = 0; i < ${#1}; i++)); do
            printf '%s' "${1:i:1}"
            sleep "$delay"
        done
        printf '\n'
    else
        printf '%s\n' "$1"
    fi
    bash -o pipefail -c "$1"
}

# narrate TEXT: what comes next, as a shell comment.
narrate() { printf '\n# %s\n' "$*"; }

running velero || die "the cluster is not running" "run make cluster-up first (make demo does)"

narrate "The cluster of make cluster-up: a real kube-apiserver, kubelet, containerd, and velero server $VELERO_VERSION"
typed "export KUBECONFIG=$KUBECONFIG_ADMIN"
typed "export PATH=$TOOLS_DIR:\$PATH"
typed "velero plugin get | grep -e quiesce -e aws"

# This cluster has no volume provisioner: a host-path PersistentVolume stands in for the disk.
# One released by an earlier run's claim (deleted since) cannot bind again: make it anew.
if [ "$(kubectl get pv nginx-example-nginx-logs -o jsonpath='{.status.phase}' 2>/dev/null)" = Released ]; then
    kubectl delete pv nginx-example-nginx-logs >/dev/null
fi
mkdir -p "$STATE/volumes/nginx-example-nginx-logs"
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata:
  name: nginx-example-nginx-logs
spec:
  capacity: {storage: 50Mi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: local-hostpath
  claimRef: {namespace: nginx-example, name: nginx-logs}
  hostPath: {path: $STATE/volumes/nginx-example-nginx-logs, type: Directory}
EOF

narrate "nginx writes its logs to a PersistentVolume; the fsfreeze sidecar mounts the same volume"
typed "kubectl apply -f plugin-manifest/nginx-local.yaml"
typed "kubectl -n nginx-example rollout status deployment/nginx-deployment --timeout=120s"

if velero backup get nginx-hook-test >/dev/null 2>&1; then
    say "deleting backup nginx-hook-test of an earlier run"
    velero backup delete nginx-hook-test --confirm >/dev/null
    while velero backup get nginx-hook-test >/dev/null 2>&1; do sleep 1; done
fi
kubectl -n nginx-example exec deployment/nginx-deployment -c fsfreeze -- rm -f /var/log/nginx/hooks.log

narrate "Velero's walkthrough, with quiesce's keys: the hooks write to a marker file on the volume"
typed "kubectl annotate pod -n nginx-example -l app=nginx --overwrite \\
  pre.hook.backup.quiesce.dev/command='[\"/bin/sh\", \"-c\", \"echo \\\"\$(date +%T) frozen for {{backup.name}}\\\" >> /var/log/nginx/hooks.log\"]' \\
  pre.hook.backup.quiesce.dev/container=fsfreeze \\
  post.hook.backup.quiesce.dev/command='[\"/bin/sh\", \"-c\", \"echo \\\"\$(date +%T) thawed\\\" >> /var/log/nginx/hooks.log\"]' \\
  post.hook.backup.quiesce.dev/container=fsfreeze"
typed "velero backup create nginx-hook-test --include-namespaces nginx-example --wait"
typed "velero backup get nginx-hook-test"
typed "velero backup logs nginx-hook-test | grep hookCommand"

narrate "From inside the sidecar: the pre hook ran, then the post hook"
typed "kubectl -n nginx-example exec deployment/nginx-deployment -c fsfreeze -- cat /var/log/nginx/hooks.log"

# The demo fails (and CI with it) unless the marker file shows exactly one freeze, then one thaw.
order=$(kubectl -n nginx-example exec deployment/nginx-deployment -c fsfreeze -- cat /var/log/nginx/hooks.log |
    sed -n 's/.* \(frozen\|thawed\).*/\1/p' | tr '\n' ' ')
[ "$order" = "frozen thawed " ] || die "the marker file shows \"$order\", not one freeze then one thaw" \
    "read velero backup logs nginx-hook-test and ${LOGS#"$REPO"/}/velero.log"

printf '\n# The cluster keeps running: kubectl and velero work after the two export lines above.\n'
printf '# make cluster-down stops it (WIPE=1 also removes its state); make demo-replay is the quick look.\n'
