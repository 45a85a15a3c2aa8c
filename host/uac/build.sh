#!/usr/bin/env bash
# build.sh OUTDIR BINDIR - package the Universal Extension with Stonebranch's uip-cli.
#
# BINDIR holds the ue-prefect binaries, named as extension.py's BINARIES expects
# (ue-prefect-linux-amd64, ue-prefect-linux-arm64, ue-prefect-windows-amd64.exe;
# `make uac` cross-compiles all three, the tests pass the one they built).
# The result is OUTDIR/unv_tmplt_Prefect-<version>.zip holding template.json,
# template_icon.png and extension_archive.zip (extension.py, extension.yml and
# bin/<binaries>, which uip's setup.py takes from 3pp/bin).
#
# uip comes from the project venv (tests/rig/requirements.txt pins it); UIP
# overrides the path. Nothing is written outside a temporary staging directory
# and OUTDIR.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$1"
bins="$2"
uip="${UIP:-$root/.venv/bin/uip}"
[[ -x "$uip" ]] || { echo "build.sh: $uip not found: run 'make venv' (bash tests/rig/venv.sh)" >&2; exit 1; }
ls "$bins"/ue-prefect-* >/dev/null 2>&1 || { echo "build.sh: no ue-prefect-* binaries in $bins" >&2; exit 1; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
cp -R "$here/extension/src" "$stage/src"
mkdir -p "$stage/3pp/bin"
cp "$bins"/ue-prefect-* "$stage/3pp/bin/"
chmod 0755 "$stage/3pp/bin/"*
(
    cd "$stage"
    "$uip" init . >/dev/null            # the .uip folder and uip's own setup.py/setup.cfg
    "$uip" build --all >&2
)
version="$(sed -n 's/^ *version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$here/extension/src/extension.yml" | head -1)"
built="$stage/dist/package_build/unv_tmplt_prefect-$version.zip"
[[ -f "$built" ]] || { echo "build.sh: uip did not build $built" >&2; ls -R "$stage/dist" >&2; exit 1; }
mkdir -p "$out"
# uip names the file after the template name in lower case; the brief's name keeps "Prefect".
cp "$built" "$out/unv_tmplt_Prefect-$version.zip"
echo "$out/unv_tmplt_Prefect-$version.zip"
