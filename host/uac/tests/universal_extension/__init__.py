"""A TEST-ONLY STAND-IN for Stonebranch's `universal_extension` package.

The real package ships only with the Universal Agent (universal_extension.zip under
/opt/universal/uagsrv/uext, per "Universal Extension API", UC 7.4/7.5/7.7:
https://stonebranchdocs.atlassian.net/wiki/spaces/UC75/pages/206403277/Universal+Extension+API).
This stand-in has exactly the surface extension.py uses, no more, and records what the
extension does so tests can check it. Each part names the public source it follows.
It is never packaged: build.sh copies only host/uac/extension/src.
"""

import logging
import threading
import time

__all__ = ["UniversalExtension", "ExtensionResult", "logger", "Agent"]

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
class Agent(object):
    """Runs an Extension the way the agent's worker would, as far as the documents say:
    extension_start in one thread, extension_cancel from another (inferred: the tutorial
    shows Cancel arriving while extension_start is still running)."""

    def __init__(self, extension_class):
        self.extension = extension_class()
        self.result = None
        self.error = None
        self._thread = None
        self.started = None
        self.ended = None

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
        self.extension.extension_cancel()

    def updates(self):
        return [u for _, u in self.extension._status_updates]

    def choice(self, field_name, fields):
        """Run the dynamic choice command registered for field_name."""
        for attr in dir(type(self.extension)):
            fn = getattr(type(self.extension), attr)
            if getattr(fn, "_dynamic_choice_field", None) == field_name:
                return getattr(self.extension, attr)(fields)
        raise AssertionError("no dynamic choice command for %r" % field_name)


def log_lines():
    return list(_capture.lines)


def clear_log():
    del _capture.lines[:]


