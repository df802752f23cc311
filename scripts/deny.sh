#!/usr/bin/env bash
# Supply-chain checks with cargo-deny and deny.toml: licenses (an allow-list of permissive
# licenses), bans (no wildcard requirements; duplicate versions reported), sources (crates.io
# only) — and advisories (RustSec) when the advisory database can be fetched.
#
# The advisory database lives on GitHub. Where it cannot be fetched (this project's machines
# reach crates.io but not GitHub), the advisories check is SKIPPED and the script says so in
# its last line; it never reports advisories as passed without having checked them. Set
# DENY_REQUIRE_ADVISORIES=1 to make a skipped advisories check fail the script instead.
#
# Environment: CARGO_DENY_VERSION (default below; it must build with the installed stable
# Rust), ADVISORY_FETCH_TIMEOUT in seconds (default 60), DENY_REQUIRE_ADVISORIES (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."

# 0.20.2 needs Rust >= 1.88.
CARGO_DENY_VERSION="${CARGO_DENY_VERSION:-0.20.2}"
ADVISORY_FETCH_TIMEOUT="${ADVISORY_FETCH_TIMEOUT:-60}"
DENY_REQUIRE_ADVISORIES="${DENY_REQUIRE_ADVISORIES:-0}"

installed="$(cargo deny --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$installed" != "$CARGO_DENY_VERSION" ]; then
	echo "deny.sh: installing cargo-deny $CARGO_DENY_VERSION (found: ${installed:-none}; $(rustc --version))"
	cargo install --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi
cargo deny --version

echo "== cargo deny: licenses, bans, sources"
cargo deny --locked --workspace check licenses bans sources

echo "== cargo deny: advisories"
fetch_log="$(mktemp)"
trap 'rm -f "$fetch_log"' EXIT
if timeout "$ADVISORY_FETCH_TIMEOUT" cargo deny --locked fetch db >"$fetch_log" 2>&1; then
	# Checked against the database just fetched; no second fetch.
	cargo deny --locked --offline --workspace check advisories
	echo "deny.sh: licenses, bans, sources and advisories checked"
else
	status=$?
	reason="$(grep -v '^[[:space:]]*$' "$fetch_log" | tail -n 3 | tr '\n' ' ')"
	if [ "$status" -eq 124 ]; then
		reason="no answer within ${ADVISORY_FETCH_TIMEOUT}s. $reason"
	fi
	echo "deny.sh: advisories SKIPPED, NOT CHECKED: the RustSec advisory database" \
		"(https://github.com/rustsec/advisory-db) could not be fetched (exit $status): $reason"
	if [ "$DENY_REQUIRE_ADVISORIES" = "1" ]; then
		echo "deny.sh: DENY_REQUIRE_ADVISORIES=1, failing"
		exit 1
	fi
	echo "deny.sh: licenses, bans and sources checked; advisories were not"
fi
