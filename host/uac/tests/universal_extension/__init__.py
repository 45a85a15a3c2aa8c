"""A TEST-ONLY STAND-IN for Stonebranch's `universal_extension` package.

The real package ships only with the Universal Agent (universal_extension.zip under
/opt/universal/uagsrv/uext, per "Universal Extension API", UC 7.4/7.5/7.7:
https://stonebranchdocs.atlassian.net/wiki/spaces/UC75/pages/206403277/Universal+Extension+API).
This stand-in has exactly the surface extension.py uses, no more, and records what the
extension does so tests can check it. Each part names the public source it follows.
It is never packaged: build.sh copies only host/uac/extension/src.
"""

import logging
import os
import signal
import threading
import time

from . import ui

__all__ = ["UniversalExtension", "ExtensionResult", "logger", "ui", "Agent"]

# -- logger -----------------------------------------------------------------
# `from universal_extension import logger`; logger.info(...) goes to the task's STDERR.
# Source: uip-cli 2.1.1 (PyPI) uip/uiptemplates/tasktemplates/ue-task/src/extension.py
# ("# Log to standard error... logger.info('Hello STDERR!')"), and the ExtensionLogger
# class in the "Universal Extension 1.0.0 API" page (levels CRITICAL..DEBUG):
# https://stonebranchdocs.atlassian.net/wiki/pages/diffpagesbyversion.action?pageId=5851893&selectedPageVersions=4&selectedPageVersions=5
logger = logging.getLogger("universal_extension.stand_in")
logger.setLevel(logging.DEBUG)
logger.propagate = False


class _Capture(logging.Handler):
    """Keeps every record (the agent would write them to STDERR)."""

    def __init__(self):
        super(_Capture, self).__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


_capture = _Capture()
logger.addHandler(_capture)


# -- ExtensionResult ----------------------------------------------------------
# Extension Start form: ExtensionResult(rc=0, message='', output_fields=None, unv_output=None, **kwargs).
# Source: "Universal Extension 1.0.0 API", ExtensionResult class:
# https://stonebranchdocs.atlassian.net/wiki/spaces/UC75/pages/206412753/Universal+Extension+1.0.0+API
# Dynamic choice form: ExtensionResult(rc=..., message=..., values=[...]).
# Source: nholuongut/aws-mainframe-modernization-stonebranch-integration src/extension.py
# (a Stonebranch + AWS extension; get_applications returns ExtensionResult(rc=0, message=..., values=apps)).
class ExtensionResult(object):
    def __init__(self, rc=0, message="", output_fields=None, unv_output=None, values=None, **kwargs):
        self.rc = rc
        self.message = message
        self.output_fields = output_fields
        self.unv_output = unv_output
        self.values = values
        self.extra = kwargs


# -- UniversalExtension -----------------------------------------------------------
class UniversalExtension(object):
    """Base class. Sources for each method below."""

    def __init__(self):
        # "Provide a constructor method that, in turn, calls the initializer for the base class."
        # Source: "Universal Extension API" (UC 7.5), Extension Class, minimum requirements:
        # https://stonebranchdocs.atlassian.net/wiki/spaces/UC75/pages/206403277/Universal+Extension+API
        self._status_updates = []  # (monotonic time, dict) per update_extension_status call

    def extension_start(self, fields):
        # Must be overridden; called with the task's fields dict; returns ExtensionResult.
        # Source: "Universal Extension 1.0.0 API", UniversalExtension.extension_start(fields).
        raise NotImplementedError

    def update_extension_status(self, fields):
        # "used to propagate state changes back to the associated extension instance in the
        # Controller. Essentially, any/all output fields defined in the associated Extension
        # Template can be updated using this method." Input: a dict of output fields.
        # Source: "Universal Extension 1.0.0 API" (UC 7.4):
        # https://stonebranchdocs.atlassian.net/wiki/spaces/UC74/pages/128090259/Universal+Extension+1.0.0+API
        if not isinstance(fields, dict):
            raise TypeError("update_extension_status expects a dict")
        self._status_updates.append((time.monotonic(), dict(fields)))

    def extension_cancel(self):
        # Since 7.1.0.0, "a new method called extension_cancel() which allows for any cleanup
        # work before the process is terminated". Source (Stonebranch tutorial, cancel command):
        # https://stonebranchdocs.atlassian.net/wiki/pages/diffpagesbyversion.action?originalVersion=1&pageId=5408805&revisedVersion=2
        pass


# -- How field values arrive ----------------------------------------------------------
# Text -> str, Integer -> int, Float -> float, Boolean -> bool. Source: "Special Field Types" (UC 7.5):
# https://stonebranchdocs.atlassian.net/wiki/spaces/UC75/pages/206413209/Special+Field+Types
# Choice -> a list of the selected values (fields.get('action', []) and len(...) != 1).
# Source: uip-cli 2.1.1 ue-task src/extension.py.
# Credential -> either a dict with 'user'/'password' (public extensions read
# fields.get("credential")["user"]) or dotted keys "<name>.user", "<name>.password"
# (aws-mainframe-modernization-stonebranch-integration setup_aws); 'token' for the
# Token slot is inferred from Stonebranch's jobs-as-code serializer ("uc_credentials.token").
def choice(value):
    """A Choice value as the agent passes it."""
    return [] if value in (None, "") else [value]


def credential(user=None, password=None, token=None, dotted_as=None):
    """A Credential value as the agent passes it: a dict, or (dotted_as="name") dotted keys."""
    parts = {"user": user, "password": password, "token": token}
    if dotted_as:
        return dict(("%s.%s" % (dotted_as, k), v) for k, v in parts.items() if v is not None)
    return parts


# -- What the agent does with an Extension (test driver) ---------------------------------
# The agent ends a cancelled task this long after it called extension_cancel: the agent's
# EXTENSION_CANCEL_TIMEOUT, 10 s by default ("extension_cancel_timeout" in the agent's
# configuration). Source: issue 16 of this project, from Stonebranch's Universal Agent
# configuration reference (not among the stored copies of Stonebranch's pages: inferred).
EXTENSION_CANCEL_TIMEOUT = 10


def _children():
    """Pids of this process's children (Linux /proc)."""
    me, out = os.getpid(), []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me:
            out.append(int(pid))
    return out


class Agent(object):
    """Runs an Extension the way the agent's worker would, as far as the documents say:
    extension_start in one thread, extension_cancel from another (inferred: the tutorial
    shows Cancel arriving while extension_start is still running), and
    EXTENSION_CANCEL_TIMEOUT after extension_cancel began, the task is ended by force:
    here, the extension's child processes are killed (the agent ends the extension's
    process, and with it the pipes of anything it started)."""

    def __init__(self, extension_class, template=None):
        self.extension = extension_class()
        self.template = template
        self.result = None
        self.error = None
        self._thread = None
        self.started = None
        self.ended = None
        self.forced = False  # the agent had to end the task after EXTENSION_CANCEL_TIMEOUT
        self.cancel_returned = None
        self.choice_fields = None  # what the last dynamic choice command received
        del ui.calls[:]

    def start(self, fields):
        def run():
            try:
                self.result = self.extension.extension_start(fields)
            except BaseException as e:  # a crash is a test failure, kept for the report
                self.error = e
            finally:
                self.ended = time.monotonic()

        self.started = time.monotonic()
        self._thread = threading.Thread(target=run)
        self._thread.daemon = True
        self._thread.start()
        return self

    def wait(self, timeout):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("extension_start did not return within %ss" % timeout)
        if self.error is not None:
            raise self.error
        return self.result

    def cancel(self):
        """extension_cancel on its own thread; EXTENSION_CANCEL_TIMEOUT later, the task
        is ended by force if extension_cancel or extension_start has not returned."""
        sent = time.monotonic()

        def run():
            self.extension.extension_cancel()
            self.cancel_returned = time.monotonic()

        t = threading.Thread(target=run)
        t.daemon = True
        t.start()
        t.join(EXTENSION_CANCEL_TIMEOUT)
        left = EXTENSION_CANCEL_TIMEOUT - (time.monotonic() - sent)
        if self._thread is not None and left > 0:
            self._thread.join(left)
        if t.is_alive() or (self._thread is not None and self._thread.is_alive()):
            self.forced = True
            for pid in _children():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def updates(self):
        """Every output-field update, through either API, in order."""
        return [u for _, u in self.timed_updates()]

    def timed_updates(self):
        return sorted(self.extension._status_updates + list(ui.calls), key=lambda x: x[0])

    def choice(self, field_name, fields):
        """Run the dynamic choice command registered for field_name with what the agent
        passes it: only the fields the template lists in that field's choiceFields
        (Source: "Dynamic Choice Fields", Introduction, UC 7.4 above; the template's
        choiceFields names the dependent fields by their field mapping)."""
        if self.template is not None:
            fields = self.dependent_fields(field_name, fields)
        self.choice_fields = dict(fields)
        for attr in dir(type(self.extension)):
            fn = getattr(type(self.extension), attr)
            if getattr(fn, "_dynamic_choice_field", None) == field_name:
                return getattr(self.extension, attr)(fields)
        raise AssertionError("no dynamic choice command for %r" % field_name)

    def dependent_fields(self, field_name, fields):
        by_mapping = dict((f["fieldMapping"], f["name"]) for f in self.template["fields"])
        spec = [f for f in self.template["fields"] if f["name"] == field_name][0]
        names = [by_mapping[m] for m in spec["choiceFields"]]
        out = {}
        for k, v in fields.items():
            if k in names or k.split(".", 1)[0] in names:  # a Credential also as dotted keys
                out[k] = v
        return out


def log_lines():
    return list(_capture.lines)


def clear_log():
    del _capture.lines[:]


