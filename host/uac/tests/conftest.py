"""Fixtures for the Universal Extension's tests.

tests/uac_extension_test.go runs this suite with the project venv's pytest, against
the real Prefect server of the test rig, and passes in:
  UE_PREFECT_TEST_BIN_DIR        a directory with the ue-prefect binary for this platform,
                                 named as in the extension archive (ue-prefect-linux-amd64, ...)
  UE_PREFECT_TEST_API_URL        the rig's Prefect server API (http://127.0.0.1:PORT/api)
  UE_PREFECT_TEST_CLOUD_API_URL  the rig's Prefect-Cloud-shaped front (its API root)
  UE_PREFECT_TEST_CLOUD_KEY      the front's API key
  UE_PREFECT_TEST_WORKSPACES     the front's workspaces, comma-separated account/workspace handles

The extension is imported from the package that host/uac/build.sh builds with uip-cli
(the same script `make uac` runs), i.e. from inside its extension_archive.zip.
"""

import json
import os
import subprocess
import sys
import urllib.request
import zipfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
UAC = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(UAC))


def need(var):
    value = os.environ.get(var, "")
    if not value:
        pytest.fail("%s is not set: run this suite through `go test ./tests -run TestE2E_UACExtension`" % var)
    return value


@pytest.fixture(scope="session")
def package(tmp_path_factory):
    """The built dist zip, and the extension_archive.zip inside it, extracted."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(["bash", os.path.join(UAC, "build.sh"), str(out), need("UE_PREFECT_TEST_BIN_DIR")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, UIP=os.path.join(
                              os.path.dirname(sys.executable), "uip")))
    assert proc.returncode == 0, proc.stderr.decode()
    dist = proc.stdout.decode().strip().splitlines()[-1]
    unpacked = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(dist) as z:
        z.extractall(str(unpacked))
    return {"dist": dist, "archive": os.path.join(str(unpacked), "extension_archive.zip")}


@pytest.fixture(scope="session")
def extension(package, tmp_path_factory):
    """The extension module, imported from extension_archive.zip as the agent runs a
    zip_safe extension; its binaries extract into a private cache under tmp."""
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("agent-tmp"))
    import tempfile
    tempfile.tempdir = None  # re-read TMPDIR
    sys.path.insert(0, package["archive"])
    import extension as module
    assert module.__file__.startswith(package["archive"]), module.__file__
    return module


@pytest.fixture(scope="session")
def server():
    return Server(need("UE_PREFECT_TEST_API_URL"))


class Server(object):
    """The rig's real Prefect server, read through its REST API."""

    def __init__(self, url):
        self.url = url.rstrip("/")

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def flow_run(self, run_id):
        return self.call("GET", "/flow_runs/" + run_id)

    def cancel(self, run_id):
        try:
            self.call("POST", "/flow_runs/%s/set_state" % run_id,
                      {"state": {"type": "CANCELLED", "name": "Cancelled"}, "force": True})
        except Exception:
            pass
