# shellcheck shell=bash disable=SC2034 # the variables are for the scripts that source this file
# Shared by the scripts of scripts/cluster/: where things live, the pinned versions, progress
# output, errors that say what to do, and starting/stopping the stack's processes by PID.
# Sourced, never run. Progress goes to stderr so that stdout carries only what a caller may
# eval (`eval "$(make -s cluster-up | grep '^export ')"`).

CLUSTER_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$CLUSTER_SCRIPTS/../.." && pwd)
# One git-ignored folder holds everything: binaries and images keyed by version (kept by
# `make cluster-down WIPE=1`), and the cluster's state (removed by it).
CLUSTER_DIR=${CLUSTER_DIR:-$REPO/.cluster}
BIN_CACHE=$CLUSTER_DIR/bin          # <component>-<version>/<binaries>
IMAGE_CACHE=$CLUSTER_DIR/images     # <image>-<version>.tar (docker-archive)
TOOLS_DIR=$CLUSTER_DIR/path         # what `export PATH=…` adds: kubectl, velero, the plugin
PLUGIN_DIR=$CLUSTER_DIR/plugins     # velero server --plugin-dir
PKI=$CLUSTER_DIR/pki
ETC=$CLUSTER_DIR/etc                # generated configuration, rewritten by every cluster-up
RUN=$CLUSTER_DIR/run                # PID files and sockets
STATE=$CLUSTER_DIR/state            # etcd, containerd, kubelet, S3 data, host-path volumes
LOGS=$CLUSTER_DIR/logs
KUBECONFIG_ADMIN=$PKI/admin.kubeconfig

# Pinned versions. Kubernetes is pinned by the wrapper module scripts/cluster/k8s/go.mod and
# Velero by tests/velero-host/go.mod (the conformance harness tests the same Velero).
K8S_VERSION=$(sed -n 's|^require k8s.io/kubernetes \(v[0-9.]*\)$|\1|p' "$CLUSTER_SCRIPTS/k8s/go.mod")
VELERO_VERSION=$(sed -n 's|^\s*github.com/vmware-tanzu/velero \(v[0-9.]*\)$|\1|p' "$REPO/tests/velero-host/go.mod")
AWS_PLUGIN_VERSION=v1.14.3
GOFAKES3_VERSION=v1.2.0

# Ports on 127.0.0.1, each checked before anything starts.
declare -A PORTS=(
    [etcd]="2379 2380 2381" [apiserver]=6443 [kcm]=10257 [kubelet]="10250 10248"
    [s3]=9000 [velero]="8085 6060"
)
NODE_NAME=localhost
BUSYBOX_IMAGE=localhost/busybox:latest
PAUSE_IMAGE=localhost/pause:1
VELERO_IMAGE=localhost/velero:$VELERO_VERSION
AWS_PLUGIN_IMAGE=localhost/velero-plugin-for-aws:$AWS_PLUGIN_VERSION

CLUSTER_T0=${CLUSTER_T0:-$SECONDS}

# say MESSAGE: one progress line, with the time since the script started.
say() { printf '[cluster %4ds] %s\n' "$((SECONDS - CLUSTER_T0))" "$*" >&2; }

# die WHAT [WHAT TO DO]: the error, and the next step for the user.
die() {
    printf 'cluster: ERROR: %s\n' "$1" >&2
    [ -n "${2:-}" ] && printf 'cluster: what to do: %s\n' "$2" >&2
    exit 1
}

elapsed() { # SECONDS_SINCE → "1m05s"
    local s=$1
    if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

# long_step LABEL LOG COMMAND...: runs a long command with its output in LOG, printing a progress
# line every 20 s: the elapsed time and the count of lines in LOG, as "N of $PROGRESS_TOTAL
# $PROGRESS_UNIT" when the caller knows them (`go build -v` prints one package a line, so that is
# how far a build is). On failure, shows the end of LOG and stops.
long_step() {
    local label=$1 log=$2
    shift 2
    mkdir -p "$(dirname "$log")"
    local start=$SECONDS
    say "$label …"
    "$@" >"$log" 2>&1 &
    local pid=$! last=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if [ $((SECONDS - last)) -ge 20 ]; then
            last=$SECONDS
            say "  $label: $(elapsed $((SECONDS - start))), $(wc -l <"$log")${PROGRESS_TOTAL:+ of $PROGRESS_TOTAL} ${PROGRESS_UNIT:-lines of output} (${log#"$REPO"/})"
        fi
    done
    if ! wait "$pid"; then
        tail -n 30 "$log" >&2
        die "$label failed after $(elapsed $((SECONDS - start))); the whole output is in $log" \
            "read the error above; a network or proxy error means the Go module proxy or apt was unreachable — run again when it is"
    fi
    say "$label: done in $(elapsed $((SECONDS - start)))"
}

# --- processes of the stack: one PID file each under $RUN, started in a session of their own
# (Ctrl-C on `make cluster-up` leaves them running) and stopped by that PID only.

pid_of() { [ -f "$RUN/$1.pid" ] && cat "$RUN/$1.pid"; }
running() { local pid; pid=$(pid_of "$1") && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

# start NAME COMMAND...: no-op when NAME is already running.
start() {
    local name=$1
    shift
    if running "$name"; then
        say "$name already running (pid $(pid_of "$name"))"
        return 0
    fi
    mkdir -p "$RUN" "$LOGS"
    setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
    say "started $name (pid $!, log ${LOGS#"$REPO"/}/$name.log)"
}

# stop NAME [GRACE_SECONDS]: TERM, then KILL after the grace period. velero server gets the
# signal with its process group (it leads one: see start), as Ctrl-C would deliver it: the
# plugins it started stop with it, rather than outlive it.
stop() {
    local name=$1 grace=${2:-15} pid
    pid=$(pid_of "$name") || return 0
    local target=$pid
    [ "$name" = velero ] && target=-$pid
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "$target"
        local i
        for ((i = 0; i < grace * 4; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL -- "$target"
            say "killed $name (pid $pid): it did not stop within ${grace}s of SIGTERM"
        else
            say "stopped $name (pid $pid)"
        fi
    fi
    rm -f "$RUN/$name.pid"
}

# wait_for WHAT TIMEOUT COMMAND...: polls COMMAND until it succeeds; on timeout names the log.
wait_for() {
    local what=$1 timeout=$2 log=${WAIT_LOG:-}
    shift 2
    local start=$SECONDS
    until "$@" >/dev/null 2>&1; do
        if [ $((SECONDS - start)) -ge "$timeout" ]; then
            [ -n "$log" ] && tail -n 20 "$log" >&2
            die "$what not ready after ${timeout}s" "look at ${log:-the logs under $LOGS}"
        fi
        sleep 0.5
    done
    say "$what ready after $(elapsed $((SECONDS - start)))"
}

kubectl_admin() { "$TOOLS_DIR/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
