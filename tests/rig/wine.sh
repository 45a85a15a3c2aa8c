#!/usr/bin/env bash
# tests/rig/wine.sh - make sure Wine is installed, for the Windows binary's
# test (tests/wine_test.go). Debian/Ubuntu: Debian's own `wine` and
# `wine64` packages, with apt-get, as root. Does nothing when `wine` is
# already on PATH; elsewhere it says so and leaves the test to report.
set -euo pipefail
if command -v wine >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "wine.sh: wine is not installed and this is not a Debian-like system: install Wine yourself" >&2
    exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo="sudo -n"
    else
        echo "wine.sh: wine is not installed and installing it needs root: apt-get install wine wine64" >&2
        exit 0
    fi
fi
echo "wine.sh: installing Debian's wine and wine64 (the Windows binary's test runs under Wine)" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends wine wine64 >/dev/null
command -v wine >/dev/null
