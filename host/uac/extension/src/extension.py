"""ue-prefect Universal Extension: a thin wrapper around the bundled ue-prefect binary.

The binary does the work (launch, wait, retries, cancel, secrets redaction). This
module only:
  - maps the task's fields onto the binary's environment (secrets only there, never argv);
  - starts the bundled binary for the agent's platform (linux/amd64, linux/arm64,
    windows/amd64), extracted from the extension archive into the first place it can
    run from (see binary_dirs: an admin's folder, beside the extension archive, the
    user's cache, the temp folder; a noexec mount is passed over);
  - relays its stderr as it comes: "ue-prefect::output {...}" lines become output-field
    updates (ui.update_output_fields, else update_extension_status), every other line
    goes to the extension log (STDERR);
  - returns its JSON document as the EXTENSION output, and its exit code and status
    description as the task's result; STDOUT stays empty, as in ue-prefect 1.0;
  - on Cancel, sends SIGTERM, or on Windows closes the binary's stdin (which it takes as
    SIGTERM; with "Cancel Flow Run on Task Cancel" it sets the flow run CANCELLING at
    once), then waits at most CANCEL_LIMIT (8 s: the agent ends a cancelled task after
    10 s) and stops it, reporting what it knows of the cancellation;
  - a failure found here (an unsupported action, no binary that can run) is still an
    EXTENSION output document in the binary's shape;
  - fills the Workspace and Deployment dynamic choices from the binary's list commands.

Standard library only.
"""

from __future__ import print_function

import errno
import hashlib
import json
import os
import platform
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import zipfile

from universal_extension import ExtensionResult, UniversalExtension, logger
from universal_extension.deco import dynamic_choice_command

try:  # the agent's module for live output fields; older agents have only update_extension_status
    from universal_extension import ui
except ImportError:  # pragma: no cover - depends on the agent
    ui = None

# This extension's version (extension.yml), for the documents it writes itself.
EXTENSION_VERSION = "1.1.0"

OUTPUT_PREFIX = "ue-prefect::output "
# The binary's own log line when it sends the CANCELLING request (not a flow run's line,
# which has " │ " after its time).
CANCELLING_LINE = re.compile(r"^\d\d:\d\d:\d\d Cancelling flow run ")

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
# The agent ends a cancelled task EXTENSION_CANCEL_TIMEOUT (10 s by default; the agent's
# extension_cancel_timeout) after it called extension_cancel. So extension_cancel waits at
# most this long for the binary, then stops it and reports what it knows. An admin who
# raises extension_cancel_timeout raises this with the agent's environment variable
# CANCEL_LIMIT_ENV (a little below the new timeout) to let the task wait for CANCELLED.
CANCEL_LIMIT = 8
CANCEL_LIMIT_ENV = "UE_PREFECT_EXTENSION_CANCEL_LIMIT"
# A folder the admin chose for the binary (the agent's environment); tried first.
BIN_DIR_ENV = "UE_PREFECT_EXTENSION_BIN_DIR"
# Errors that mean "this place cannot run programs" (a noexec mount, AppLocker): try the next.
NOT_EXECUTABLE = (errno.EACCES, errno.EPERM, errno.ENOEXEC)
NOT_EXECUTABLE_WINERROR = (5, 193, 1260)  # access denied, bad image, blocked by policy
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


def _dict(value):
    """value when it is a JSON object, else an empty one (a payload from outside)."""
    return value if isinstance(value, dict) else {}


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


def _archive():
    """The extension archive this module runs from (a zip-safe extension), or the folder
    it was extracted to."""
    here = os.path.dirname(os.path.abspath(__file__))
    archive = getattr(globals().get("__loader__"), "archive", None)
    if archive:
        return archive
    # Walk up from this file to the zip archive it lives in.
    p = here
    while p and not os.path.isfile(p):
        parent = os.path.dirname(p)
        p = None if parent == p else parent
    return p or here


def _bundled_bytes(name):
    """The bytes of bin/<name> from the extension archive (or the folder it was extracted to)."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "bin", name)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    archive = _archive()
    if archive and os.path.isfile(archive) and zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            try:
                return z.read("bin/" + name)
            except KeyError:
                return None
    return None


def binary_dirs():
    """The places the binary may run from, in order: an admin's folder (BIN_DIR_ENV); a
    folder beside the deployed extension archive (the agent's own extension folder, which
    it can write and execute from); the user's cache folder; the temp folder last, since
    hardened servers mount /tmp noexec."""
    suffix = "" if os.name == "nt" else "-%d" % os.getuid()
    dirs = []
    override = os.environ.get(BIN_DIR_ENV, "").strip()
    if override:
        dirs.append(override)
    dirs.append(os.path.join(os.path.dirname(os.path.abspath(_archive())), "ue-prefect-bin" + suffix))
    if os.name == "nt":
        cache = os.environ.get("LOCALAPPDATA", "")
    else:
        cache = os.environ.get("XDG_CACHE_HOME", "") or os.path.join(os.path.expanduser("~"), ".cache")
    if cache and os.path.isabs(cache):
        dirs.append(os.path.join(cache, "ue-prefect-extension" + suffix))
    dirs.append(os.path.join(tempfile.gettempdir(), "ue-prefect-extension" + suffix))
    out = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def _private_dir(path):
    """Create path (mode 0700) if missing; refuse one another user could write to."""
    if not os.path.isdir(path):
        os.makedirs(path, 0o700, exist_ok=True)
    if os.name != "nt":
        st = os.stat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise BinaryUnavailable("not a private folder of this user")
    return path


def _bundled():
    """(file name, bytes) of the bundled binary for this agent."""
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
    return name, data


def _extract(folder, name, data):
    """The binary written once per content (named by its SHA-256) into folder."""
    digest = hashlib.sha256(data).hexdigest()[:16]
    root, ext = os.path.splitext(name)
    target = os.path.join(_private_dir(folder), "%s-%s%s" % (root, digest, ext))
    if os.path.isfile(target):
        with open(target, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest()[:16] == digest:
                return target
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".extract-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o700)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def _why(e):
    return e.strerror or str(e) if isinstance(e, OSError) else str(e)


def binary_path():
    """Path of the bundled binary in the first place it can be written to (it may still
    be unable to run there: start_binary tries the next place then)."""
    name, data = _bundled()
    tried = []
    for folder in binary_dirs():
        try:
            return _extract(folder, name, data)
        except (OSError, BinaryUnavailable) as e:
            tried.append("%s (%s)" % (folder, _why(e)))
    raise BinaryUnavailable("cannot write ue-prefect to any of: %s" % "; ".join(tried))


def _cannot_execute(e):
    return isinstance(e, PermissionError) or e.errno in NOT_EXECUTABLE \
        or getattr(e, "winerror", None) in NOT_EXECUTABLE_WINERROR


def start_binary(args, environ, stdin=subprocess.PIPE):
    """Start the bundled binary with args from the first place it runs from: a place it
    cannot be written to, or whose mount refuses to execute it (EACCES, EPERM, ENOEXEC),
    is passed over. Raises BinaryUnavailable, naming every place and why, when none works."""
    name, data = _bundled()
    tried = []
    for folder in binary_dirs():
        try:
            exe = _extract(folder, name, data)
        except (OSError, BinaryUnavailable) as e:
            tried.append("%s (%s)" % (folder, _why(e)))
            continue
        try:
            return _popen([exe] + list(args), environ, stdin)
        except OSError as e:
            if not _cannot_execute(e):
                raise BinaryUnavailable("cannot start %s: %s" % (exe, _why(e)))
            tried.append("%s (cannot execute: %s)" % (folder, _why(e)))
    raise BinaryUnavailable("cannot start ue-prefect from any of: %s. Set %s in the agent's environment to a "
                            "folder the agent can write and execute from" % ("; ".join(tried), BIN_DIR_ENV))


def _popen(argv, environ, stdin=subprocess.PIPE):
    kwargs = {}
    if os.name == "nt":
        # Its own process group: a console event meant for the agent does not reach it.
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=environ, **kwargs)


def document(rc, description, code, message, field=None, fields=None, result=None):
    """An EXTENSION output document in the binary's shape, for an outcome this module
    found itself."""
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    invocation_fields = {}
    if fields is not None:
        invocation_fields["action"] = _scalar(fields.get("action")) or ACTION_LAUNCH
    return json.dumps({
        "exit_code": rc,
        "status_description": description,
        "status": "SUCCESS" if rc == 0 else "FAILURE",
        "changed": False,
        "invocation": {"extension": "ue-prefect", "version": EXTENSION_VERSION, "fields": invocation_fields},
        "result": result or {},
        "error": error,
    }, indent=2)


def _failed(rc, description, secrets=(), code="internal", message=None, field=None, fields=None, result=None,
            output_fields=None):
    description = _redact(description, secrets)
    message = _redact(message if message is not None else description.split(": ", 1)[-1], secrets)
    logger.error(description)
    return ExtensionResult(rc=rc, message=description, output_fields=output_fields,
                           unv_output=document(rc, description, code, message, field, fields, result))


def cancel_limit():
    """CANCEL_LIMIT, or the agent's CANCEL_LIMIT_ENV when an admin set it."""
    value = os.environ.get(CANCEL_LIMIT_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else CANCEL_LIMIT


def _signal_name(rc):
    try:
        return signal.Signals(-rc).name
    except (ValueError, AttributeError):
        return "signal %d" % -rc


# ---------------------------------------------------------------------------


class Extension(UniversalExtension):
    """The "Prefect" Universal Extension (ue-prefect)."""

    def __init__(self):
        super(Extension, self).__init__()
        self._proc = None
        self._lock = threading.Lock()
        self._cancelled = False
        self._cancel_wait = DEFAULT_CANCEL_GRACE + CANCEL_SLACK
        self._cancel_on_cancel = False
        self._fields = {}     # the output fields last published
        self._cancelling = False  # the binary said it is cancelling the flow run
        self._stopped = None  # what extension_cancel knew when it stopped the binary

    def publish(self, update):
        """Push output-field values to the task instance as they change: the agent's
        ui.update_output_fields where it has it (as Stonebranch's own extensions do),
        else update_extension_status (Universal Extension 1.0.0 API)."""
        fn = getattr(ui, "update_output_fields", None)
        if fn is None:
            fn = self.update_extension_status
        try:
            fn(update)
        except Exception as e:  # the Controller missing one update must not stop the task
            logger.warning("output fields not updated: %s" % e)

    def extension_start(self, fields):
        secrets = _secrets(fields)
        try:
            command = action_of(fields)
        except ValidationError as e:
            return _failed(20, "Data Validation Error: %s" % e, secrets, code="invalid_input", field="action",
                           fields=fields)
        self._cancel_on_cancel = _bool(fields.get("cancel_on_cancel"))
        if self._cancel_on_cancel:
            grace = _scalar(fields.get("cancel_grace"))
            self._cancel_wait = (int(grace) if grace.isdigit() else DEFAULT_CANCEL_GRACE) + CANCEL_SLACK
        else:
            self._cancel_wait = CANCEL_SLACK
        with self._lock:
            if self._cancelled:
                return _failed(143, "Interrupted: the task was cancelled before ue-prefect started.",
                               code="interrupted", fields=fields)
            try:
                self._proc = start_binary([command], child_environ(fields))
            except BinaryUnavailable as e:
                return _failed(1, "Execution Failed: %s" % e, secrets, code="unavailable", fields=fields)
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
                    values = None
                if not isinstance(values, dict):
                    logger.info(line)
                    continue
                update = dict((OUTPUT_FIELDS[k], v) for k, v in values.items() if k in OUTPUT_FIELDS)
                if update:
                    self._fields.update(update)
                    self.publish(update)
                continue
            if CANCELLING_LINE.match(line):
                self._cancelling = True
            logger.info(line)
        rc = proc.wait()
        reader.join()
        out = b"".join(stdout).decode("utf-8", "replace")
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            return self._no_document(rc, fields, secrets)
        result = _dict(doc.get("result"))
        fields_out = dict((OUTPUT_FIELDS[k], v) for k, v in result.items()
                          if k in OUTPUT_FIELDS and isinstance(v, str))
        try:
            rc = int(doc.get("exit_code", rc))
        except (TypeError, ValueError):
            pass
        return ExtensionResult(
            rc=rc,
            message=_redact(str(doc.get("status_description", "")), secrets),
            output_fields=fields_out or None,
            unv_output=out,
        )

    def _no_document(self, rc, fields, secrets):
        """The outcome when the binary ended without its document: stopped by
        extension_cancel, killed by a signal (rc < 0, as subprocess reports it), or broken."""
        result = dict((k, self._fields[v]) for k, v in OUTPUT_FIELDS.items() if self._fields.get(v))
        output_fields = dict(self._fields) or None
        if self._stopped is not None:
            return _failed(143, "Interrupted: the task was cancelled; %s" % self._stopped, secrets,
                           code="interrupted", fields=fields, result=result, output_fields=output_fields)
        if rc < 0:
            return _failed(1, "Execution Failed: ue-prefect was ended by %s before it reported a result"
                           % _signal_name(rc), secrets, code="internal", fields=fields, result=result,
                           output_fields=output_fields)
        return _failed(rc or 1, "Execution Failed: ue-prefect ended with exit code %d and no result document"
                       % rc, secrets, code="internal", fields=fields, result=result, output_fields=output_fields)

    def _cancel_known(self):
        """What this module knows of the flow run's cancellation, from the binary's output."""
        state = self._fields.get("out_flow_run_state", "")
        run = self._fields.get("out_flow_run_id", "")
        if state == "CANCELLED":
            return "flow run %s is CANCELLED (confirmed)" % run
        if state == "CANCELLING":
            return "the cancellation of flow run %s was requested and Prefect accepted it (CANCELLING); " \
                   "CANCELLED was not confirmed yet" % run
        if self._cancelling:
            return "the cancellation of flow run %s was requested; Prefect's answer was not seen yet" % run
        if not self._cancel_on_cancel and run:
            return "flow run %s is left as it is (Cancel Flow Run on Task Cancel is off)" % run
        if run:
            return "the cancellation of flow run %s was not requested yet" % run
        return "no flow run was known yet"

    def extension_cancel(self):
        """Stop the binary gracefully; wait at most CANCEL_LIMIT (the agent ends the task
        soon after); then stop it at once and report what is known."""
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
        wait = min(self._cancel_wait, cancel_limit())
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            pass
        known = self._cancel_known()
        logger.warning("Cancel: stopping ue-prefect after %ds, within the agent's cancel timeout "
                       "(extension_cancel_timeout, 10 s by default): %s" % (wait, known))
        self._stopped = "%s within %ds" % (known, wait)
        if not GRACEFUL_BY_STDIN:
            try:  # the second request: the binary stops at once and writes its document
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=1)
                return
            except (OSError, subprocess.TimeoutExpired):
                pass
        proc.kill()

    # -- dynamic choices ----------------------------------------------------

    def _list(self, command, fields):
        secrets = _secrets(fields)
        # A list command is not cancelled: no stdin, no stop on its end.
        try:
            proc = start_binary([command, "--json"], child_environ(fields, stop_on_stdin_close=False),
                                stdin=subprocess.DEVNULL)
        except BinaryUnavailable as e:
            return ExtensionResult(rc=1, message=_redact("Execution Failed: %s" % e, secrets), values=[])
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
            doc = None
        if not isinstance(doc, dict):
            rc = proc.returncode
            if rc < 0:
                return ExtensionResult(rc=1, message="Execution Failed: ue-prefect %s was ended by %s"
                                       % (command, _signal_name(rc)), values=[])
            return ExtensionResult(rc=rc or 1, message="Execution Failed: ue-prefect %s ended with exit "
                                   "code %d and no result document" % (command, rc), values=[])
        try:
            rc = int(doc.get("exit_code", proc.returncode))
        except (TypeError, ValueError):
            rc = proc.returncode or 1
        message = _redact(str(doc.get("status_description", "")), secrets)
        values = _dict(doc.get("result")).get("values")
        values = [v for v in values if isinstance(v, str)] if isinstance(values, list) else []
        if rc != 0:
            return ExtensionResult(rc=rc, message=message, values=[])
        return ExtensionResult(rc=0, message=message, values=values)

    @dynamic_choice_command("workspace")
    def choose_workspace(self, fields):
        return self._list("list-workspaces", fields)

    @dynamic_choice_command("deployment")
    def choose_deployment(self, fields):
        return self._list("list-deployments", fields)
