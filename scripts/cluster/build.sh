#!/usr/bin/env bash
# Builds what the real-cluster stack runs and is missing from .cluster/bin (keyed by version, so
# a second run builds nothing), then puts the fresh quiesce release binary into Velero's plugin
# folder and kubectl, velero and velero-plugin-quiesce into .cluster/path.
#
#   scripts/cluster/build.sh            everything cluster-up needs
#   scripts/cluster/build.sh images     also the Velero and aws-plugin images (e2e scenario 8)
#
# Built from source through the Go module proxy: kube-apiserver, kube-controller-manager, kubelet
# and kubectl (wrapper module scripts/cluster/k8s), velero (module tests/velero-host, the
# conformance harness's), velero-plugin-for-aws and gofakes3 (`go install …@version`), the pause
# program (scripts/cluster/pause). quiesce: `make release` (static) unless QUIESCE_BIN names a
# binary to use. Go builds are static (CGO_ENABLED=0), so the same velero runs in an image.
# GOCACHE/GOMODCACHE are the caller's (CI points them at folders it removes afterwards).
set -euo pipefail
# shellcheck source=scripts/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

export CGO_ENABLED=0
GO_BUILD=(nice go build -v -trimpath)

# go_binary LABEL OUT BUILD_DIR GO_BUILD_ARGS... PACKAGE: builds OUT unless it exists; -v output
# (one compiled package a line) against the package's dependency count is the progress.
go_binary() {
    local label=$1 out=$2 dir=$3
    shift 3
    if [ -x "$out" ]; then
        return 0
    fi
    mkdir -p "$(dirname "$out")"
    local total
    say "listing what $label needs (a first run downloads its modules here)"
    total=$(cd "$dir" && go list -deps "${@: -1}" 2>/dev/null | wc -l) || total=
    # shellcheck disable=SC2016 # $1 and $@ belong to the inner bash
    PROGRESS_TOTAL=$total PROGRESS_UNIT="packages compiled" \
        long_step "building $label" "$LOGS/build/$(basename "$out").log" \
        bash -c 'cd "$1" && shift && "$@"' _ "$dir" "${GO_BUILD[@]}" -o "$out.partial" "$@"
    mv "$out.partial" "$out"
}

# go_install LABEL DIR MODULE@VERSION: `go install` of a released module into DIR.
go_install() {
    local label=$1 dir=$2 package=$3 name
    name=$(basename "${package%@*}")
    if [ -x "$dir/$name" ]; then
        return 0
    fi
    mkdir -p "$dir"
    PROGRESS_UNIT="packages compiled (and modules downloaded)" long_step "building $label" "$LOGS/build/$name.log" \
        env GOBIN="$dir" nice go install -v -trimpath -ldflags '-s -w' "$package"
}

build_kubernetes() {
    local dir=$BIN_CACHE/k8s-$K8S_VERSION minor ldflags
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    # What `make` in kubernetes/kubernetes stamps, so that `kubectl version` and the node report it.
    ldflags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean"
    done
    for cmd in kube-apiserver kubelet kube-controller-manager kubectl; do
        go_binary "$cmd $K8S_VERSION" "$dir/$cmd" "$CLUSTER_SCRIPTS/k8s" \
            -ldflags "$ldflags" "k8s.io/kubernetes/cmd/$cmd"
    done
}

build_velero() {
    local ldflags="-s -w"
    for var in Version="$VELERO_VERSION" GitSHA=quiesce-cluster GitTreeState=clean; do
        ldflags+=" -X github.com/vmware-tanzu/velero/pkg/buildinfo.$var"
    done
    go_binary "velero $VELERO_VERSION" "$BIN_CACHE/velero-$VELERO_VERSION/velero" \
        "$REPO/tests/velero-host" -ldflags "$ldflags" github.com/vmware-tanzu/velero/cmd/velero
    go_install "velero-plugin-for-aws $AWS_PLUGIN_VERSION" "$BIN_CACHE/velero-plugin-for-aws-$AWS_PLUGIN_VERSION" \
        "github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws@$AWS_PLUGIN_VERSION"
    go_install "gofakes3 $GOFAKES3_VERSION" "$BIN_CACHE/gofakes3-$GOFAKES3_VERSION" \
        "github.com/johannesboyne/gofakes3/cmd/gofakes3@$GOFAKES3_VERSION"
}

# The quiesce plugin, fresh from this checkout every time (cargo rebuilds only what changed).
build_quiesce() {
    local bin=${QUIESCE_BIN:-}
    if [ -z "$bin" ]; then
        long_step "building velero-plugin-quiesce (make release)" "$LOGS/build/quiesce.log" \
            nice make -C "$REPO" -s release
        bin=$REPO/dist/velero-plugin-quiesce
    fi
    [ -x "$bin" ] || die "QUIESCE_BIN=$bin is not an executable file" "unset it to build with make release"
    mkdir -p "$PLUGIN_DIR"
    # A copy, as Velero's init container installs it; written beside and renamed, so a running
    # Velero never starts a half-written plugin.
    cp "$bin" "$PLUGIN_DIR/.velero-plugin-quiesce.new"
    mv -f "$PLUGIN_DIR/.velero-plugin-quiesce.new" "$PLUGIN_DIR/velero-plugin-quiesce"
    ln -sfn "$BIN_CACHE/velero-plugin-for-aws-$AWS_PLUGIN_VERSION/velero-plugin-for-aws" \
        "$PLUGIN_DIR/velero-plugin-for-aws"
}

# Images made without a registry: docker-archives that `ctr images import` loads.
build_node_images() {
    local pause_src pause_key busybox_version
    pause_key=$(cat "$CLUSTER_SCRIPTS/pause/"* | sha256sum | cut -c1-12)
    pause_src=$BIN_CACHE/pause-$pause_key/pause
    go_binary "pause (the pod sandbox's process)" "$pause_src" "$CLUSTER_SCRIPTS/pause" -ldflags '-s -w' .
    if [ ! -f "$IMAGE_CACHE/pause-$pause_key.tar" ]; then
        python3 "$CLUSTER_SCRIPTS/mkimage.py" --out "$IMAGE_CACHE/pause-$pause_key.tar" \
            --ref "$PAUSE_IMAGE" --entrypoint '["/pause"]' --file "$pause_src:/pause" >&2
    fi
    ln -sfn "pause-$pause_key.tar" "$IMAGE_CACHE/pause.tar"

    # Debian's static busybox with a link for every applet it has (sh, ps, kill, sleep, setsid…).
    busybox_version=$(dpkg-query -W -f '${Version}' busybox-static | tr ':~+' '___')
    if [ ! -f "$IMAGE_CACHE/busybox-$busybox_version.tar" ]; then
        local links=()
        for applet in $(/bin/busybox --list); do
            [ "$applet" = busybox ] || links+=(--link "/bin/$applet:busybox")
        done
        python3 "$CLUSTER_SCRIPTS/mkimage.py" --out "$IMAGE_CACHE/busybox-$busybox_version.tar" \
            --ref "$BUSYBOX_IMAGE" --entrypoint '["/bin/sh"]' --file /bin/busybox:/bin/busybox "${links[@]}" >&2
    fi
    ln -sfn "busybox-$busybox_version.tar" "$IMAGE_CACHE/busybox.tar"
}

# For Velero as an in-cluster Deployment (e2e scenario 8): velero in a FROM-scratch-like image,
# and the aws plugin in an image whose entrypoint copies it into /target, as its upstream image does.
build_velero_images() {
    local velero=$BIN_CACHE/velero-$VELERO_VERSION/velero
    local aws=$BIN_CACHE/velero-plugin-for-aws-$AWS_PLUGIN_VERSION/velero-plugin-for-aws
    if [ ! -f "$IMAGE_CACHE/velero-$VELERO_VERSION.tar" ]; then
        say "making image $VELERO_IMAGE"
        python3 "$CLUSTER_SCRIPTS/mkimage.py" --out "$IMAGE_CACHE/velero-$VELERO_VERSION.tar" \
            --ref "$VELERO_IMAGE" --entrypoint '["/velero"]' --file "$velero:/velero" \
            --dir /plugins --dir /scratch --dir /credentials >&2
    fi
    if [ ! -f "$IMAGE_CACHE/velero-plugin-for-aws-$AWS_PLUGIN_VERSION.tar" ]; then
        say "making image $AWS_PLUGIN_IMAGE"
        python3 "$CLUSTER_SCRIPTS/mkimage.py" --out "$IMAGE_CACHE/velero-plugin-for-aws-$AWS_PLUGIN_VERSION.tar" \
            --ref "$AWS_PLUGIN_IMAGE" --entrypoint '["/bin/cp", "/plugins/velero-plugin-for-aws", "/target/."]' \
            --file "$aws:/plugins/velero-plugin-for-aws" --file /bin/busybox:/bin/busybox \
            --link /bin/cp:busybox --user 65532:65532 >&2
    fi
}

link_tools() {
    mkdir -p "$TOOLS_DIR"
    ln -sfn "$BIN_CACHE/k8s-$K8S_VERSION/kubectl" "$TOOLS_DIR/kubectl"
    ln -sfn "$BIN_CACHE/velero-$VELERO_VERSION/velero" "$TOOLS_DIR/velero"
    ln -sfn "$PLUGIN_DIR/velero-plugin-quiesce" "$TOOLS_DIR/velero-plugin-quiesce"
}

command -v go >/dev/null || die "go is not installed" "install Go 1.24 or newer (the one CI uses is in .ci/run)"
mkdir -p "$BIN_CACHE" "$IMAGE_CACHE" "$LOGS/build"
build_kubernetes
build_velero
build_node_images
build_quiesce
link_tools
if [ "${1:-}" = images ]; then
    build_velero_images
fi
