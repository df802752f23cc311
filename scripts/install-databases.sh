#!/usr/bin/env bash
# Installs the MariaDB and PostgreSQL servers and clients that the held-session tests
# (tests/integration/sessions.rs) start on their own — in temp dirs, on Unix sockets — and use
# as hook commands. The packages' own system services are kept from starting while they are
# installed: the tests need only the binaries. Debian/Ubuntu (apt); root or sudo.
# Usage: scripts/install-databases.sh
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(mariadb-server mariadb-client postgresql postgresql-client)
if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
    if command -v psql >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        echo "install-databases: already installed"
        exit 0
    fi
fi

# invoke-rc.d asks policy-rc.d whether a package may start its service; 101 means no.
policy=/usr/sbin/policy-rc.d
added_policy=false
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 0755 "$policy"
    added_policy=true
fi
remove_policy() { if $added_policy; then as_root rm -f "$policy"; fi; }
trap remove_policy EXIT

as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
mariadbd --version
ls -d /usr/lib/postgresql/*/bin/postgres
