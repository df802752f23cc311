#!/usr/bin/env bash
# Short fuzzing run for CI: installs nightly and cargo-fuzz if missing, builds every target of
# fuzz/, runs each for ${FUZZ_SECONDS:-20} seconds and fails on any crash, leak or timeout.
# Long runs: see fuzz/README.md.
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"
# A dated nightly, so a new nightly cannot break CI overnight; move it on purpose.
toolchain="${FUZZ_TOOLCHAIN:-nightly-2026-10-30}"

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$toolchain" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

cargo "+$toolchain" fuzz build
targets=$(cargo "+$toolchain" fuzz list)

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
for target in $targets; do
    # Seeds are committed under seeds/<target>; the growing corpus stays in corpus/ (ignored).
    mkdir -p "corpus/$target"
    seed_dirs=()
    [ -d "seeds/$target" ] && seed_dirs=("seeds/$target")
    if cargo "+$toolchain" fuzz run "$target" "corpus/$target" "${seed_dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 >"$logs/$target.log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$target")
    fi
    # libFuzzer's last status line ("#<execs> DONE ..." or the crash line) carries the count.
    execs=$(grep -Eo '^#[0-9]+' "$logs/$target.log" | tail -n 1 | tr -d '#')
    printf '%-14s %-6s %10s execs in %ss\n' "$target" "$status" "${execs:-0}" "$seconds"
    if [ "$status" = FAILED ]; then
        tail -n 40 "$logs/$target.log"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (inputs under fuzz/artifacts/; add them to tests/integration/fuzz_regressions.rs)" >&2
    exit 1
fi
