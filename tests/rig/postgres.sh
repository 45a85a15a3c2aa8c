#!/usr/bin/env bash
# postgres.sh - make sure PostgreSQL's server binaries (initdb, postgres,
# pg_isready, createdb) are installed, for the rig's PostgreSQL option
# (tests/rig/postgres.go; `make test.scale`). They are found on PATH or under
# /usr/lib/postgresql/*/bin, where Debian and Ubuntu put them. When missing,
# installs the distribution's package with apt-get (as root, or through sudo).
# Prints the folder holding the binaries. Idempotent.
set -euo pipefail

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

find_bin() {
    local d
    if command -v pg_ctl >/dev/null 2>&1; then
        d="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
        [[ -x "$d/initdb" && -x "$d/postgres" ]] && { echo "$d"; return 0; }
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4nr); do
        [[ -x "$d/initdb" && -x "$d/postgres" ]] && { echo "$d"; return 0; }
    done
    return 1
}

if dir="$(find_bin)"; then
    echo "$dir"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "PostgreSQL's server binaries are missing and there is no apt-get: install PostgreSQL (initdb, postgres) yourself"
    exit 1
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null 2>&1 || { log "installing PostgreSQL needs root (or sudo)"; exit 1; }
    sudo=(sudo)
fi
log "installing PostgreSQL with apt-get"
"${sudo[@]}" apt-get update -q >&2
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends postgresql >&2
# The package starts a system cluster; the rig never uses it.
dir="$(find_bin)" || { log "apt-get installed postgresql, but initdb and postgres are still not found"; exit 1; }
echo "$dir"
