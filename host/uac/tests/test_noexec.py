"""The binary's place on a hardened Linux agent: /tmp mounted noexec (a CIS Level 1
benchmark item). Each case runs the extension in a private mount namespace (`unshare -m`,
as root, which CI is) where the chosen folders are tmpfs mounts with noexec."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import HERE, need

CHILD = os.path.join(HERE, "noexec_child.py")

SCRIPT = r"""
set -e
for d in $NOEXEC; do mount -t tmpfs -o noexec,mode=0755 tmpfs "$d"; done
cp "$SRC_ARCHIVE" "$ARCH/extension_archive.zip"
# The plugin's compile cache the Go test warmed (the binary finds it under XDG_CACHE_HOME).
if [ -n "$ORIG_CACHE" ] && [ -e "$ORIG_CACHE/ue-prefect" ]; then ln -sfn "$ORIG_CACHE/ue-prefect" "$CACHE/ue-prefect"; fi
exec "$PY" "$CHILD"
"""


def unshare_or_skip(tmp_path):
    """Skip where the kernel refuses a private mount namespace, never under CI=true."""
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            'mount -t tmpfs -o noexec tmpfs "$1" && cp /bin/true "$1/t" && ! "$1/t"', "-", str(probe)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        ok, why = p.returncode == 0, p.stdout.decode().strip() or "exit %d" % p.returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, why = False, str(e)
    if not ok:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("a noexec tmpfs in a private mount namespace is needed (CI=true): %s" % why)
        pytest.skip("the kernel refuses a noexec tmpfs in a private mount namespace here: %s" % why)


CASES = [
    # name, noexec folders, override set, where the binary must run from (None: nowhere)
    ("/tmp and the cache noexec: beside the extension archive", ["tmp", "cache"], False, "agent"),
    ("the agent's folder noexec too: the user cache", ["tmp", "agent"], False, "cache"),
    ("an admin's folder comes first", [], True, "override"),
    ("an admin's folder on a noexec mount: the next place", ["override", "tmp"], True, "agent"),
    ("no place can execute: a clear failure", ["tmp", "cache", "agent"], False, None),
]


@pytest.mark.parametrize("name,noexec,override,want", CASES, ids=[c[0] for c in CASES])
def test_binary_place_on_noexec_mounts(package, tmp_path, name, noexec, override, want):
    unshare_or_skip(tmp_path)
    dirs = dict((k, tmp_path / k) for k in ("tmp", "cache", "agent", "override", "home"))
    for d in dirs.values():
        d.mkdir()
    env = dict(os.environ)
    env.pop("UE_PREFECT_EXTENSION_BIN_DIR", None)
    env.update({
        "TMPDIR": str(dirs["tmp"]), "XDG_CACHE_HOME": str(dirs["cache"]), "HOME": str(dirs["home"]),
        "NOEXEC": " ".join(str(dirs[k]) for k in noexec), "SRC_ARCHIVE": package["archive"],
        "ARCH": str(dirs["agent"]), "NOEXEC_ARCHIVE": str(dirs["agent"] / "extension_archive.zip"),
        "CACHE": str(dirs["cache"]), "ORIG_CACHE": os.environ.get("XDG_CACHE_HOME", ""),
        "PY": sys.executable, "CHILD": CHILD, "UE_PREFECT_TEST_API_URL": need("UE_PREFECT_TEST_API_URL"),
    })
    if override:
        env["UE_PREFECT_EXTENSION_BIN_DIR"] = str(dirs["override"] / "bin")
        if "override" in noexec:
            env["UE_PREFECT_EXTENSION_BIN_DIR"] = str(dirs["override"])
    p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert "error" not in out, out["error"]  # no uncaught exception (PermissionError) anywhere
    doc = out["document"]
    assert (doc["exit_code"], doc["status_description"]) == (out["rc"], out["message"]), doc
    if want is None:
        assert out["rc"] == 1, out
        assert out["message"].startswith("Execution Failed: cannot start ue-prefect from any of: "), out["message"]
        assert "UE_PREFECT_EXTENSION_BIN_DIR" in out["message"] and str(dirs["tmp"]) in out["message"]
        assert doc["error"]["code"] == "unavailable"
        assert out["choice"]["rc"] == 1 and out["choice"]["values"] == [], out["choice"]
        assert out["choice"]["message"].startswith("Execution Failed: cannot start ue-prefect"), out["choice"]
        return
    assert (out["rc"], out["message"]) == (0, "Task executed successfully."), out
    assert out["choice"]["rc"] == 0 and "ok/ok" in out["choice"]["values"], out["choice"]
    ran = [b for b in out["binaries"] if b.startswith(str(dirs[want]) + os.sep)]
    assert ran, "no binary under %s: %s" % (dirs[want], out["binaries"])
    print("%s: ran from %s" % (name, os.path.dirname(ran[0])))
