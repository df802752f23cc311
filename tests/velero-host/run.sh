#!/usr/bin/env bash
# Velero conformance harness (see README.md). Level 1: load velero-plugin-quiesce
# through Velero's own plugin registry and manager. Level 2: real backups through
# Velero's backup engine, hooks executed through fake-kube.
#
# Usage: tests/velero-host/run.sh            # Velero v1.18 (go.mod)
#        VELERO_LINES=all tests/velero-host/run.sh   # also v1.17 and v1.16
#        VELERO_LINES="v1.18 v1.16" tests/velero-host/run.sh
#
# Environment:
#   QUIESCE_PLUGIN_BIN  absolute path of a built plugin binary; if unset the
#                       script runs `cargo build --bin velero-plugin-quiesce`
#                       in the repository root and uses target/debug.
#   QUIESCE_PLUGIN_IMPL=go  test the Go reference plugin instead (harness
#                       self-check; ignored when QUIESCE_PLUGIN_BIN is set;
#                       Level 2 needs the real plugin and is skipped then).
#   QUIESCE_FAKE_KUBE_BIN  absolute path of a built fake-kube binary (Level 2);
#                       if unset the script builds it with cargo.
#   GO_TEST_FLAGS       extra flags for go test (e.g. -v, -run TestDiscovery).
# Needs Go >= 1.26 (or GOTOOLCHAIN=auto) and module-proxy access.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ -z "${QUIESCE_PLUGIN_BIN:-}" && "${QUIESCE_PLUGIN_IMPL:-rust}" != go ]]; then
	echo "run.sh: cargo build --bin velero-plugin-quiesce" >&2
	(cd "$repo" && cargo build --bin velero-plugin-quiesce)
	target="${CARGO_TARGET_DIR:-$repo/target}"
	[[ "$target" = /* ]] || target="$repo/$target"
	export QUIESCE_PLUGIN_BIN="$target/debug/velero-plugin-quiesce"
fi
if [[ -n "${QUIESCE_PLUGIN_BIN:-}" && ! -x "$QUIESCE_PLUGIN_BIN" ]]; then
	echo "run.sh: $QUIESCE_PLUGIN_BIN is not an executable file" >&2
	exit 1
fi
packages=(./...)
if [[ "${QUIESCE_PLUGIN_IMPL:-rust}" == go && -z "${QUIESCE_PLUGIN_BIN:-}" ]]; then
	# The Go reference plugin runs no hooks: Level 2 would fail by design.
	packages=(./cmd/... ./internal/... ./level1/...)
elif [[ -z "${QUIESCE_FAKE_KUBE_BIN:-}" ]]; then
	echo "run.sh: cargo build -p fake-kube --bin fake-kube" >&2
	(cd "$repo" && cargo build -p fake-kube --bin fake-kube)
	target="${CARGO_TARGET_DIR:-$repo/target}"
	[[ "$target" = /* ]] || target="$repo/$target"
	export QUIESCE_FAKE_KUBE_BIN="$target/debug/fake-kube"
fi

lines="${VELERO_LINES:-v1.18}"
[[ "$lines" == all ]] && lines="v1.18 v1.17 v1.16"

cd "$here"
status=0
for line in $lines; do
	case "$line" in
	v1.18) modflag=() ;;
	v1.16 | v1.17) modflag=("-modfile=$here/compat/go.$line.mod") ;;
	*)
		echo "run.sh: unknown Velero line $line (want v1.16, v1.17, v1.18 or all)" >&2
		exit 2
		;;
	esac
	velero="$(go list "${modflag[@]}" -m -f '{{.Version}}' github.com/vmware-tanzu/velero)"
	echo "run.sh: Velero $velero, plugin ${QUIESCE_PLUGIN_BIN:-<Go reference plugin>}" >&2
	if [[ "$line" == v1.16 ]]; then
		echo "run.sh: Velero v1.16 has no volume group snapshots (1.17+): Level 2's TestVolumeGroup is skipped on this line" >&2
	fi
	# shellcheck disable=SC2086 # GO_TEST_FLAGS is a list of flags
	# GOFLAGS (not a go test flag) so that the Go reference plugin, built by
	# the tests, uses the same Velero line.
	if ! GOFLAGS="$(go env GOFLAGS) ${modflag[*]}" go test -count=1 -timeout 15m ${GO_TEST_FLAGS:-} "${packages[@]}"; then
		status=1
	fi
done
exit "$status"
