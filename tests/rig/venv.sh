#!/usr/bin/env bash
# venv.sh [DIR [REQUIREMENTS...]] - create/refresh a project-local Python virtualenv
# used by the end-to-end test rig (tests/rig) and `make demo`. DIR defaults to
# <repo root>/.venv, REQUIREMENTS to tests/rig/requirements.txt (Prefect 3.9 alone,
# what the demo needs). Several files are installed together, in one resolve:
#   venv.sh .venv tests/rig/requirements.txt tests/rig/requirements-tools.txt   (make venv.tools)
#   venv.sh .venv-prefect2 tests/rig/requirements-prefect2.txt                  (make venv2)
#
#   python3 -m venv DIR                      (any Python >= 3.10; 3.11 tested)
#   DIR/bin/pip install uv==$UV_VERSION       (uv is a PyPI wheel, no download step)
#   uv pip install -r REQUIREMENTS... --overrides overrides.txt
#
# uv is used instead of plain pip because prefect 3.9.x pins a certifi newer than
# the index has (see overrides.txt) and pip cannot override a dependency's
# requirement. uv is also ~10x faster.
#
# Idempotent: the sha256 of the requirements files + overrides.txt is stored in
# DIR/.<names>.sha256 (one stamp per set of files) and the install is skipped when it matches and
# `import prefect` works. Progress goes to stderr. Exits non-zero on failure.
set -euo pipefail

UV_VERSION=0.13.8
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/.venv}"
shift || true
reqs=("$@")
[[ ${#reqs[@]} -gt 0 ]] || reqs=("$here/requirements.txt")
ovr="$here/overrides.txt"
names=""
for r in "${reqs[@]}"; do n="$(basename "$r" .txt)"; names="${names:+$names+}$n"; done
stamp="$venv/.$names.sha256"
py="${PYTHON:-python3}"

log() { printf 'venv.sh: %s\n' "$*" >&2; }

want="$(cat "${reqs[@]}" "$ovr" | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
   && "$venv/bin/python" -c 'import importlib.metadata as m; m.version("prefect")' >/dev/null 2>&1; then
    log "up to date: $venv"
    exit 0
fi

start=$SECONDS
if [[ ! -x "$venv/bin/python" ]]; then
    log "creating virtualenv $venv with $("$py" --version 2>&1)"
    "$py" -m venv "$venv"
fi
rm -f "$stamp"
if [[ "$("$venv/bin/uv" --version 2>/dev/null || true)" != "uv $UV_VERSION"* ]]; then
    log "installing uv $UV_VERSION"
    "$venv/bin/python" -m pip install --disable-pip-version-check --quiet "uv==$UV_VERSION" >&2
fi
# uv ignores pip's configuration; reuse pip's CA bundle if one is configured.
if [[ -z "${SSL_CERT_FILE:-}" && -n "${PIP_CERT:-}" ]]; then
    export SSL_CERT_FILE="$PIP_CERT"
fi
log "installing ${reqs[*]}"
uvargs=()
for r in "${reqs[@]}"; do uvargs+=(-r "$r"); done
"$venv/bin/uv" pip install --quiet --python "$venv/bin/python" "${uvargs[@]}" --overrides "$ovr" >&2
"$venv/bin/python" -c 'import prefect; print("venv.sh: prefect", prefect.__version__)' >&2
printf '%s\n' "$want" >"$stamp"
log "done in $((SECONDS - start))s: $venv"
