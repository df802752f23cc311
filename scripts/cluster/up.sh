#!/usr/bin/env bash
# Starts the real-cluster stack on 127.0.0.1, building and installing what is missing first:
# etcd, kube-apiserver, kube-controller-manager (no scheduler: pods set nodeName), containerd and
# runc, a kubelet for the node "localhost", gofakes3 (S3), Velero's CRDs and
# BackupStorageLocation, and `velero server` with the aws plugin and quiesce. Idempotent: what runs
# is left running. Ends by printing, on stdout and each alone on its line:
#   export KUBECONFIG=…
#   export PATH=…        (kubectl, velero and velero-plugin-quiesce first)
#
#   scripts/cluster/up.sh            everything (make cluster-up)
#   scripts/cluster/up.sh velero     (re)start only velero server; VELERO_PLUGIN_DIR and
#                                    VELERO_SERVER_ARGS change how (the e2e suite uses them)
# Needs root on Debian (apt), Go, and cargo unless QUIESCE_BIN names a plugin binary.
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(etcd-server containerd runc containernetworking-plugins busybox-static iproute2 openssl curl python3)
CTR=(ctr --address "$RUN/containerd.sock" --namespace k8s.io)

preflight() {
    [ "$(id -u)" -eq 0 ] ||
        die "the cluster needs root (containerd, runc and the kubelet mount, create cgroups and network namespaces)" \
            "run it as root, e.g. sudo make cluster-up"
    { [ -f /etc/debian_version ] && command -v apt-get >/dev/null; } ||
        die "this is not a Debian machine with apt: the stack installs etcd, containerd, runc and the CNI plugins from Debian's packages" \
            "use Debian 12 (bookworm) or newer, or install those yourself and comment out install_packages"
    command -v go >/dev/null ||
        die "go is not installed (kube-apiserver, the kubelet and velero are built from their Go modules)" \
            "install Go 1.24 or newer"
    if [ -z "${QUIESCE_BIN:-}" ] && ! command -v cargo >/dev/null; then
        die "cargo is not installed (the quiesce plugin is built with make release)" \
            "install Rust (rustup), or set QUIESCE_BIN to a built velero-plugin-quiesce"
    fi
}

install_packages() {
    local missing=()
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    long_step "apt-get install ${missing[*]}" "$LOGS/apt.log" bash -c \
        'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"' _ "${missing[@]}"
}

# A port must be free unless the stack's own component holds it.
check_ports() {
    local name port holder
    command -v ss >/dev/null || return 0 # iproute2 comes with install_packages
    for name in "$@"; do
        running "$name" && continue
        for port in ${PORTS[$name]}; do
            holder=$(ss -Htlnp "sport = :$port" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n 1 || true)
            if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
                local hint="stop that process, or run make cluster-down if it is a stack left running by another checkout"
                [ "$name" = etcd ] && hint="$hint (Debian's own etcd service: systemctl disable --now etcd)"
                die "port $port (needed by $name) is in use${holder:+ by $holder}" "$hint"
            fi
        done
    done
}

# A CA, serving certificates for the API server and the kubelet, client certificates for admin
# (system:masters), the API server toward the kubelet, and the kubelet; a service-account key.
make_pki() {
    [ -f "$PKI/admin.kubeconfig" ] && return 0
    say "making certificates in ${PKI#"$REPO"/}"
    mkdir -p "$PKI"
    (
        cd "$PKI"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
            -subj "/CN=quiesce-cluster-ca" 2>/dev/null
        cert() { # NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
            openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
            {
                echo "basicConstraints=CA:FALSE"
                echo "keyUsage=critical,digitalSignature,keyEncipherment"
                echo "extendedKeyUsage=$3"
                [ -n "${4:-}" ] && echo "subjectAltName=$4"
            } >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" \
                -days 3650 -extfile "$1.ext" 2>/dev/null
            rm -f "$1.csr" "$1.ext"
        }
        cert apiserver "/CN=kube-apiserver" serverAuth \
            "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
        cert admin "/CN=admin/O=system:masters" clientAuth
        cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client/O=system:masters" clientAuth
        cert kubelet-server "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,IP:127.0.0.1"
        cert kubelet-client "/CN=system:node:$NODE_NAME/O=system:nodes" clientAuth
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        chmod 600 ./*.key
    )
    write_kubeconfig "$PKI/kubelet.kubeconfig" kubelet "$PKI/kubelet-client"
    write_kubeconfig "$KUBECONFIG_ADMIN" admin "$PKI/admin"
}

# write_kubeconfig FILE USER CERT_PREFIX
write_kubeconfig() {
    local k=("$TOOLS_DIR/kubectl" --kubeconfig "$1" config)
    "${k[@]}" set-cluster quiesce --server=https://127.0.0.1:6443 --certificate-authority="$PKI/ca.crt" --embed-certs >/dev/null
    "${k[@]}" set-credentials "$2" --client-certificate="$3.crt" --client-key="$3.key" --embed-certs >/dev/null
    "${k[@]}" set-context quiesce --cluster=quiesce --user="$2" >/dev/null
    "${k[@]}" use-context quiesce >/dev/null
}

render_configs() {
    mkdir -p "$ETC/cni" "$STATE" "$RUN"
    local render=(sed -e "s|@STATE@|$STATE|g" -e "s|@RUN@|$RUN|g" -e "s|@ETC@|$ETC|g" -e "s|@PKI@|$PKI|g"
        -e "s|@PAUSE_IMAGE@|$PAUSE_IMAGE|g")
    "${render[@]}" "$CLUSTER_SCRIPTS/config/containerd.toml" >"$ETC/containerd.toml"
    "${render[@]}" "$CLUSTER_SCRIPTS/config/kubelet.yaml" >"$ETC/kubelet.yaml"
    "${render[@]}" "$CLUSTER_SCRIPTS/config/cni.conflist" >"$ETC/cni/10-quiesce.conflist"
    printf '[default]\naws_access_key_id = quiesce\naws_secret_access_key = quiesce-secret\n' >"$ETC/s3-credentials"
}

start_etcd() {
    start etcd etcd --name quiesce --data-dir "$STATE/etcd" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster quiesce=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
    WAIT_LOG=$LOGS/etcd.log wait_for etcd 60 curl -sf http://127.0.0.1:2379/health
}

start_apiserver() {
    start apiserver "$BIN_CACHE/k8s-$K8S_VERSION/kube-apiserver" \
        --etcd-servers=http://127.0.0.1:2379 --bind-address=127.0.0.1 --secure-port=6443 \
        --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
        --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
        --client-ca-file="$PKI/ca.crt" --authorization-mode=Node,RBAC \
        --enable-admission-plugins=NodeRestriction --allow-privileged=true \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
        --service-cluster-ip-range=10.96.0.0/16 \
        --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority="$PKI/ca.crt" \
        --kubelet-preferred-address-types=Hostname,InternalIP \
        --profiling=false --v=1
    # (Hostname first: the API server must dial localhost:10250, never the machine's own address.)
    WAIT_LOG=$LOGS/apiserver.log wait_for kube-apiserver 120 kubectl_admin get --raw /readyz
}

start_controller_manager() {
    start kcm "$BIN_CACHE/k8s-$K8S_VERSION/kube-controller-manager" \
        --kubeconfig="$KUBECONFIG_ADMIN" --authentication-kubeconfig="$KUBECONFIG_ADMIN" \
        --authorization-kubeconfig="$KUBECONFIG_ADMIN" --bind-address=127.0.0.1 --secure-port=10257 \
        --leader-elect=false --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
        --use-service-account-credentials=false \
        --controllers='*,-nodeipam,-service-lb-controller,-cloud-node-lifecycle' --v=1
    # The default ServiceAccount and kube-root-ca.crt come from it; pods need both.
    WAIT_LOG=$LOGS/kcm.log wait_for "kube-controller-manager (default ServiceAccount)" 120 \
        kubectl_admin -n default get serviceaccount default
}

start_containerd() {
    start containerd containerd --config "$ETC/containerd.toml"
    WAIT_LOG=$LOGS/containerd.log wait_for containerd 60 "${CTR[@]}" version
    for image in pause busybox; do
        "${CTR[@]}" images import "$IMAGE_CACHE/$image.tar" >/dev/null
    done
    say "images $PAUSE_IMAGE and $BUSYBOX_IMAGE in containerd"
}

start_kubelet() {
    mkdir -p "$STATE/kubelet" "$STATE/pod-logs"
    start kubelet "$BIN_CACHE/k8s-$K8S_VERSION/kubelet" --config="$ETC/kubelet.yaml" \
        --kubeconfig="$PKI/kubelet.kubeconfig" --hostname-override="$NODE_NAME" \
        --root-dir="$STATE/kubelet" --cert-dir="$STATE/kubelet/pki" --v=1
    WAIT_LOG=$LOGS/kubelet.log wait_for "node $NODE_NAME" 120 node_ready
}

node_ready() {
    kubectl_admin get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

# Velero's namespace, CRDs and the default BackupStorageLocation (what `velero install` would
# create, without its Deployment: velero server runs on the host).
bootstrap_velero() {
    kubectl_admin create namespace velero --dry-run=client -o yaml | kubectl_admin apply -f - >/dev/null
    "$TOOLS_DIR/velero" install --crds-only --dry-run -o yaml | kubectl_admin apply -f - >/dev/null
    kubectl_admin wait --for condition=established --timeout=60s crd/backupstoragelocations.velero.io >/dev/null
    kubectl_admin apply -f "$CLUSTER_SCRIPTS/config/bsl.yaml" >/dev/null
    say "Velero CRDs and BackupStorageLocation default applied"
}

start_s3() {
    mkdir -p "$STATE/s3"
    start s3 "$BIN_CACHE/gofakes3-$GOFAKES3_VERSION/gofakes3" -host 127.0.0.1:9000 -backend bolt \
        -bolt.db "$STATE/s3/s3.db" -initialbucket velero
    WAIT_LOG=$LOGS/s3.log wait_for "S3 (gofakes3)" 60 curl -s -o /dev/null http://127.0.0.1:9000/
}

# velero server on the host with only --kubeconfig (no KUBECONFIG in its environment): Velero
# forwards its arguments to every plugin, and the plugins must find the cluster from them.
start_velero() {
    # shellcheck disable=SC2086 # VELERO_SERVER_ARGS is a list of flags
    start velero env -u KUBECONFIG VELERO_NAMESPACE=velero AWS_SHARED_CREDENTIALS_FILE="$ETC/s3-credentials" \
        "$TOOLS_DIR/velero" server --kubeconfig="$KUBECONFIG_ADMIN" --namespace=velero \
        --plugin-dir="${VELERO_PLUGIN_DIR:-$PLUGIN_DIR}" --log-level=info \
        --metrics-address=127.0.0.1:8085 --profiler-address=127.0.0.1:6060 ${VELERO_SERVER_ARGS:-}
    WAIT_LOG=$LOGS/velero.log wait_for "velero server (BackupStorageLocation Available)" 120 bsl_available
}

bsl_available() {
    kubectl_admin -n velero get backupstoragelocation default -o jsonpath='{.status.phase}' | grep -qx Available
}

print_exports() {
    echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
    echo "export PATH=$TOOLS_DIR:\$PATH"
}

main() {
    case "${1:-all}" in
    all)
        preflight
        mkdir -p "$LOGS"
        check_ports etcd apiserver kcm kubelet s3 velero
        install_packages
        "$CLUSTER_SCRIPTS/build.sh"
        make_pki
        render_configs
        start_etcd
        start_apiserver
        start_controller_manager
        start_containerd
        start_kubelet
        bootstrap_velero
        start_s3
        start_velero
        say "cluster up in $(elapsed $((SECONDS - CLUSTER_T0))): $("$TOOLS_DIR/kubectl" version --kubeconfig "$KUBECONFIG_ADMIN" 2>/dev/null | tail -n 1), velero $VELERO_VERSION, logs in ${LOGS#"$REPO"/}"
        say "to use it, paste (or: eval \"\$(make -s cluster-up | grep '^export ')\"):"
        print_exports
        ;;
    velero)
        preflight
        stop velero
        check_ports velero
        start_velero
        ;;
    env)
        print_exports
        ;;
    *)
        die "unknown argument $1" "use: up.sh [all|velero|env]"
        ;;
    esac
}

# Sourced (to try one step by hand), it only defines the steps.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
