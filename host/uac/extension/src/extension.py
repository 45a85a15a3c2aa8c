"""ue-prefect Universal Extension: a thin wrapper around the bundled ue-prefect binary.

The binary does the work (launch, wait, retries, cancel, secrets redaction). This
module only:
  - maps the task's fields onto the binary's environment (secrets only there, never argv);
  - starts the bundled binary for the agent's platform (linux/amd64, linux/arm64,
    windows/amd64), extracted from the extension archive into a private cache;
  - relays its stderr as it comes: "ue-prefect::output {...}" lines become output-field
    updates, every other line goes to the extension log (STDERR);
  - returns its JSON document as the EXTENSION output, and its exit code and status
    description as the task's result; STDOUT stays empty, as in ue-prefect 1.0;
  - on Cancel, sends SIGTERM, or on Windows closes the binary's stdin (which it takes as
    SIGTERM), then waits a bounded time and kills it if it is still there;
  - fills the Workspace and Deployment dynamic choices from the binary's list commands.

Standard library only.
"""

from __future__ import print_function

import hashlib
import json
import os
import platform
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import zipfile

from universal_extension import ExtensionResult, UniversalExtension, logger
from universal_extension.deco import dynamic_choice_command

OUTPUT_PREFIX = "ue-prefect::output "

# Bundled binaries, by (os, arch), as laid out in the extension archive by `make uac`.
BINARIES = {
    ("linux", "amd64"): "ue-prefect-linux-amd64",
    ("linux", "arm64"): "ue-prefect-linux-arm64",
    ("windows", "amd64"): "ue-prefect-windows-amd64.exe",
}

# The binary's output-field keys -> this template's output-only fields.
OUTPUT_FIELDS = {
    "flow_run_id": "out_flow_run_id",
    "flow_run_name": "out_flow_run_name",
    "flow_run_state": "out_flow_run_state",
    "flow_run_url": "out_flow_run_url",
}

# Every field this module reads (tests check it against template.json).
INPUT_FIELDS = (
    "action", "credentials", "workspace", "deployment", "flow_run_name", "additional_params",
    "parameters", "wait", "polling_interval", "max_polls", "output_options", "api_url",
    "cancel_on_cancel", "cancel_grace", "stream_logs", "idempotency_key", "outage_budget",
    "allow_insecure_http", "cloud_api_url", "start_at", "start_deadline", "cancel_on_deadline",
)

ACTION_LAUNCH = "launch_flow_run"

# Windows has no SIGTERM for a child (terminate() is TerminateProcess, a hard kill): there
# a cancel closes the binary's stdin instead, which it takes as SIGTERM.
GRACEFUL_BY_STDIN = os.name == "nt"

# How long a cancelled task waits for the binary beyond its own cancel grace.
CANCEL_SLACK = 10
DEFAULT_CANCEL_GRACE = 30
# A dynamic choice command that takes longer than this is given up.
CHOICE_TIMEOUT = 120


class ValidationError(Exception):
    """Bad input found before the binary starts: exit 20, as in 1.0."""


class BinaryUnavailable(Exception):
    """No usable bundled binary for this agent: exit 1, as in 1.0."""


# ---------------------------------------------------------------------------
# Field values. Choice fields arrive as a list of selected values, Boolean as bool,
# Integer as int, Text as str, Credential as a dict (or as dotted "name.user" keys);
# an unset field may be missing, None or empty.


def _scalar(value):
    """The text of a field value: the single selection of a Choice, '' when unset."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else ""
        if value is None:
            return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _bool(value):
    if isinstance(value, bool):
        return value
    return _scalar(value).lower() in ("true", "yes", "y", "1", "on")


def _credential(fields, name):
    """(user, password, token) of a Credential field, '' for what is unset."""
    cred = fields.get(name)
    parts = {}
    if isinstance(cred, dict):
        parts = cred
    for key in ("user", "password", "token"):
        dotted = fields.get(name + "." + key)
        if dotted is not None and not parts.get(key):
            parts = dict(parts)
            parts[key] = dotted
    return (_scalar(parts.get("user")), _scalar(parts.get("password")), _scalar(parts.get("token")))


def action_of(fields):
    action = _scalar(fields.get("action"))
    if action.lower() in ("", ACTION_LAUNCH, "launch flow run", "prefect cloud - launch flow run", "launch"):
        return "launch"
    raise ValidationError("Action: %r is not supported; supported: Launch Flow Run" % action)


def build_env(fields):
    """The ue-prefect environment variables for these fields (only those that are set)."""
    env = {}

    def put(var, value):
        value = _scalar(value)
        if value != "":
            env[var] = value

    api_url = _scalar(fields.get("api_url"))
    put("PREFECT_API_URL", api_url)
    put("PREFECT_CLOUD_API_URL", fields.get("cloud_api_url"))
    user, password, token = _credential(fields, "credentials")
    if api_url and user and password:
        # A self-hosted server with basic auth (PREFECT_API_AUTH_STRING, as Prefect's client).
        env["PREFECT_API_AUTH_STRING"] = user + ":" + password
    else:
        # Prefect Cloud (or a self-hosted server behind a bearer key): the API key,
        # from the credential's Token if it has one, else its Password.
        put("PREFECT_API_KEY", token or password)
    put("UE_PREFECT_WORKSPACE", fields.get("workspace"))
    put("UE_PREFECT_DEPLOYMENT", fields.get("deployment"))
    put("UE_PREFECT_FLOW_RUN_NAME", fields.get("flow_run_name"))
    if _bool(fields.get("additional_params")):
        put("UE_PREFECT_PARAMETERS", fields.get("parameters"))
    env["UE_PREFECT_WAIT"] = "true" if _bool(fields.get("wait")) else "false"
    put("UE_PREFECT_POLL_INTERVAL", fields.get("polling_interval"))
    put("UE_PREFECT_MAX_POLLS", fields.get("max_polls"))
    put("UE_PREFECT_INCLUDE_METADATA", fields.get("output_options"))
    env["UE_PREFECT_CANCEL_ON_INTERRUPT"] = "true" if _bool(fields.get("cancel_on_cancel")) else "false"
    put("UE_PREFECT_CANCEL_GRACE", fields.get("cancel_grace"))
    env["UE_PREFECT_STREAM_LOGS"] = "true" if _bool(fields.get("stream_logs")) else "false"
    put("UE_PREFECT_IDEMPOTENCY_KEY", fields.get("idempotency_key"))
    put("UE_PREFECT_OUTAGE_BUDGET", fields.get("outage_budget"))
    if _bool(fields.get("allow_insecure_http")):
        env["UE_PREFECT_ALLOW_INSECURE_HTTP"] = "true"
    put("UE_PREFECT_START_AT", fields.get("start_at"))
    put("UE_PREFECT_START_DEADLINE", fields.get("start_deadline"))
    if _bool(fields.get("cancel_on_deadline")):
        env["UE_PREFECT_CANCEL_ON_DEADLINE"] = "true"
    # Cancel closes stdin: the binary's graceful stop on every platform.
    env["UE_PREFECT_STOP_ON_STDIN_CLOSE"] = "true"
    return env


def child_environ(fields, stop_on_stdin_close=True):
    """The agent's environment without any inherited PREFECT_* or UE_PREFECT_* variable
    (an agent-wide PREFECT_API_KEY_FILE must not beat the task's credential, nor an
    inherited UE_PREFECT_FLOW_RUN_ID turn a launch into an attach), plus the task's."""
    environ = dict((k, v) for k, v in os.environ.items()
                   if not k.upper().startswith(("PREFECT_", "UE_PREFECT_")))
    environ.update(build_env(fields))
    if not stop_on_stdin_close:
        del environ["UE_PREFECT_STOP_ON_STDIN_CLOSE"]
    return environ


def _secrets(fields):
    user, password, token = _credential(fields, "credentials")
    out = [s for s in (password, token) if s]
    if user and password:
        out.append(user + ":" + password)
    return out


def _redact(text, secrets):
    for s in secrets:
        text = text.replace(s, "****")
    return text


# ---------------------------------------------------------------------------
# The bundled binary.


def agent_platform():
    """(os, arch) of this agent in Go's spelling."""
    system = sys.platform
    if system.startswith("linux"):
        system = "linux"
    elif system in ("win32", "cygwin"):
        system = "windows"
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "x64": "amd64",
            "aarch64": "arm64", "arm64": "arm64", "armv8l": "arm64"}.get(machine, machine or "unknown")
    return system, arch


def _bundled_bytes(name):
    """The bytes of bin/<name> from the extension archive (or the folder it was extracted to)."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "bin", name)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    archive = getattr(globals().get("__loader__"), "archive", None)
    if not archive:
        # Walk up from this file to the zip archive it lives in.
        p = here
        while p and not os.path.isfile(p):
            parent = os.path.dirname(p)
            p = None if parent == p else parent
        archive = p
    if archive and zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            try:
                return z.read("bin/" + name)
            except KeyError:
                return None
    return None


def _cache_dir():
    base = os.environ.get("LOCALAPPDATA") if os.name == "nt" else None
    base = base or tempfile.gettempdir()
    suffix = "" if os.name == "nt" else "-%d" % os.getuid()
    path = os.path.join(base, "ue-prefect-extension" + suffix)
    if not os.path.isdir(path):
        os.makedirs(path, 0o700, exist_ok=True)
    if os.name != "nt":
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise BinaryUnavailable("%s is not a private directory of this user" % path)
    return path


def binary_path():
    """Path of the bundled binary for this agent, extracted once per content."""
    system, arch = agent_platform()
    name = BINARIES.get((system, arch))
    supported = ", ".join("%s/%s" % k for k in sorted(BINARIES))
    if name is None:
        raise BinaryUnavailable("no ue-prefect binary is bundled for this agent's platform %s/%s (bundled: %s)"
                                % (system, arch, supported))
    data = _bundled_bytes(name)
    if not data:
        raise BinaryUnavailable("the extension archive has no bin/%s for this agent's platform %s/%s"
                                % (name, system, arch))
    digest = hashlib.sha256(data).hexdigest()[:16]
    root, ext = os.path.splitext(name)
    target = os.path.join(_cache_dir(), "%s-%s%s" % (root, digest, ext))
    if os.path.isfile(target):
        with open(target, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest()[:16] == digest:
                return target
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".extract-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o700)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def _popen(argv, environ, stdin=subprocess.PIPE):
    kwargs = {}
    if os.name == "nt":
        # Its own process group: a console event meant for the agent does not reach it.
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environ, **kwargs)


def _failed(rc, description, secrets=()):
    description = _redact(description, secrets)
    logger.error(description)
    return ExtensionResult(rc=rc, message=description, unv_output=None)


# ---------------------------------------------------------------------------


class Extension(UniversalExtension):
    """The "Prefect" Universal Extension (ue-prefect)."""

    def __init__(self):
        super(Extension, self).__init__()
        self._proc = None
        self._lock = threading.Lock()
        self._cancelled = False
        self._cancel_wait = DEFAULT_CANCEL_GRACE + CANCEL_SLACK

    def extension_start(self, fields):
        secrets = _secrets(fields)
        try:
            command = action_of(fields)
        except ValidationError as e:
            return _failed(20, "Data Validation Error: %s" % e, secrets)
        try:
            exe = binary_path()
        except (BinaryUnavailable, OSError) as e:
            return _failed(1, "Execution Failed: %s" % e, secrets)
        if _bool(fields.get("cancel_on_cancel")):
            grace = _scalar(fields.get("cancel_grace"))
            self._cancel_wait = (int(grace) if grace.isdigit() else DEFAULT_CANCEL_GRACE) + CANCEL_SLACK
        else:
            self._cancel_wait = CANCEL_SLACK
        with self._lock:
            if self._cancelled:
                return _failed(143, "Interrupted: the task was cancelled before ue-prefect started.")
            try:
                self._proc = _popen([exe, command], child_environ(fields))
            except OSError as e:
                return _failed(1, "Execution Failed: cannot start %s: %s" % (exe, e), secrets)
        proc = self._proc

        stdout = []
        reader = threading.Thread(target=lambda: stdout.append(proc.stdout.read()))
        reader.daemon = True
        reader.start()
        for raw in iter(proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith(OUTPUT_PREFIX):
                try:
                    values = json.loads(line[len(OUTPUT_PREFIX):])
                except ValueError:
                    logger.info(line)
                    continue
                update = dict((OUTPUT_FIELDS[k], v) for k, v in values.items() if k in OUTPUT_FIELDS)
                if update:
                    try:
                        self.update_extension_status(update)
                    except Exception as e:  # the Controller missing one update must not stop the task
                        logger.warning("output fields not updated: %s" % e)
                continue
            logger.info(line)
        rc = proc.wait()
        reader.join()
        out = b"".join(stdout).decode("utf-8", "replace")
        try:
            doc = json.loads(out)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
        except ValueError:
            if rc == 0:
                rc = 1
            return _failed(rc, "Execution Failed: ue-prefect ended with exit code %d and no result document" % rc,
                           secrets)
        fields_out = dict((OUTPUT_FIELDS[k], v) for k, v in (doc.get("result") or {}).items()
                          if k in OUTPUT_FIELDS and isinstance(v, str))
        return ExtensionResult(
            rc=int(doc.get("exit_code", rc)),
            message=_redact(str(doc.get("status_description", "")), secrets),
            output_fields=fields_out or None,
            unv_output=out,
        )

    def extension_cancel(self):
        """Stop the binary gracefully and wait for it a bounded time, then kill it."""
        with self._lock:
            self._cancelled = True
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        logger.info("Cancel: stopping ue-prefect")
        # One graceful request only: the binary takes a second one as "stop now".
        if GRACEFUL_BY_STDIN:
            try:
                proc.stdin.close()
            except (OSError, ValueError):
                pass
        else:
            try:
                proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
        try:
            proc.wait(timeout=self._cancel_wait)
        except subprocess.TimeoutExpired:
            logger.error("Cancel: ue-prefect did not stop within %ds; killing it" % self._cancel_wait)
            proc.kill()

    # -- dynamic choices ----------------------------------------------------

    def _list(self, command, fields):
        secrets = _secrets(fields)
        try:
            exe = binary_path()
        except (BinaryUnavailable, OSError) as e:
            return ExtensionResult(rc=1, message=_redact("Execution Failed: %s" % e, secrets), values=[])
        # A list command is not cancelled: no stdin, no stop on its end.
        proc = _popen([exe, command, "--json"], child_environ(fields, stop_on_stdin_close=False),
                      stdin=subprocess.DEVNULL)
        try:
            out, err = proc.communicate(timeout=CHOICE_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return ExtensionResult(rc=1, message="Execution Failed: ue-prefect %s took longer than %ds"
                                   % (command, CHOICE_TIMEOUT), values=[])
        for line in err.decode("utf-8", "replace").splitlines():
            logger.info(line)
        try:
            doc = json.loads(out.decode("utf-8", "replace"))
        except ValueError:
            return ExtensionResult(rc=proc.returncode or 1, message="Execution Failed: ue-prefect %s ended with exit "
                                   "code %d and no result document" % (command, proc.returncode), values=[])
        rc = int(doc.get("exit_code", proc.returncode))
        message = _redact(str(doc.get("status_description", "")), secrets)
        values = [v for v in ((doc.get("result") or {}).get("values") or []) if isinstance(v, str)]
        if rc != 0:
            return ExtensionResult(rc=rc, message=message, values=[])
        return ExtensionResult(rc=0, message=message, values=values)

    @dynamic_choice_command("workspace")
    def choose_workspace(self, fields):
        return self._list("list-workspaces", fields)

    @dynamic_choice_command("deployment")
    def choose_deployment(self, fields):
        return self._list("list-deployments", fields)
