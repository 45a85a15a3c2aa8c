"""Run host/plugin.wasm over every golden scenario under the Python Extism SDK.

The scenarios and golden transcripts of plugin/flowrun/testdata are the data;
this driver is a second, independent implementation of the scripted host that
package flowruntest is in Go: it reads a scenario, answers the plugin's five
host functions (prefect_http, sleep, get_credential, log, progress) from it
through the stock Extism runtime (extism-sys, wasmtime), records every call in
the canonical trace form, and requires the trace to equal the golden the
native Go machine wrote, byte for byte.

    python tests/pyextism/run_goldens.py [--wasm host/plugin.wasm] [--dir plugin/flowrun/testdata] [-k NAME]

It prints one line per failure with a diff and ends with a count line,
"pyextism: N scenarios, P passed, F failed"; the exit status is 0 only when
every scenario passed. The formats are documented in
plugin/flowrun/flowruntest/flowruntest.go.
"""

import argparse
import difflib
import glob
import json
import os
import re
import sys

import extism
from extism.extism import CompiledPlugin  # not re-exported by extism 1.1.1

HOST_MODULE = "extism:host/user"  # abi.HostModule

# The fixed ids of the scenario macros (flowruntest.DeploymentID, …).
DEPLOYMENT_ID = "1f3e5a77-0d2c-4b8e-9a61-5c7d8e9f0a1b"
FLOW_ID = "2a4b6c8d-1e3f-4a5b-8c7d-9e0f1a2b3c4d"
RUN_ID = "3b5d7f91-2c4e-4d6f-8a0b-1c2d3e4f5a6b"
ACCOUNT_ID = "4c6e8a02-3d5f-4e70-9b1c-2d3e4f5a6b7c"
WORKSPACE_ID = "5d7f9b13-4e60-4f81-8c2d-3e4f5a6b7c8d"

_IDS = {"DEP": DEPLOYMENT_ID, "FLOW": FLOW_ID, "RUN": RUN_ID, "ACCT": ACCOUNT_ID, "WS": WORKSPACE_ID}
_IDS_RE = re.compile("DEP|FLOW|RUN|ACCT|WS")


# --- JSON as Go's encoding/json writes it -----------------------------------

_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _quote(s, escape):
    """s in double quotes: the escapes both Go quoters share, then escape(ch)."""
    return '"' + "".join(_SHORT.get(ch) or escape(ch) or ch for ch in s) + '"'


def go_string(s, escape_html=False):
    """A JSON string as Go's encoder writes it (SetEscapeHTML as given)."""

    def escape(ch):
        if ch in "\b\f":
            return {"\b": "\\b", "\f": "\\f"}[ch]
        if ord(ch) < 0x20 or ch in "\u2028\u2029" or (escape_html and ch in "<>&"):
            return "\\u%04x" % ord(ch)
        return None

    return _quote(s, escape)


def go_quote(s):
    """strconv.Quote, for the printable text the scenarios hold."""

    def escape(ch):
        if ch in "\a\b\f\v":
            return {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}[ch]
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return "\\x%02x" % ord(ch)
        return None

    return _quote(s, escape)


class RawJSON(str):
    """JSON text kept as written (a number, a json.RawMessage)."""


def go_json(v, escape_html=False, sort_keys=False):
    """Compact JSON as Go writes it: struct order as given (a dict keeps the
    order it was built in), or sorted keys for a Go map."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, RawJSON):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e21:
            return str(int(v))
        return repr(v)
    if isinstance(v, str):
        return go_string(v, escape_html)
    if isinstance(v, list):
        return "[" + ",".join(go_json(x, escape_html, sort_keys) for x in v) + "]"
    if isinstance(v, dict):
        keys = sorted(v) if sort_keys else list(v)
        return "{" + ",".join(go_string(k, escape_html) + ":" + go_json(v[k], escape_html, sort_keys) for k in keys) + "}"
    raise TypeError("cannot encode %r" % (v,))


def go_compact(text, escape_html):
    """json.Compact (escape_html=False) or the compaction json.Marshal does
    to a json.RawMessage (escape_html=True): insignificant white space
    removed, the text otherwise kept as written."""
    out = []
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in " \t\r\n":
            continue
        if escape_html and (ch in "<>&" or ch in "\u2028\u2029"):
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def raw_member(text, key):
    """The raw text of a top-level member of a JSON object, or None."""
    dec = json.JSONDecoder()
    ws = re.compile(r"[ \t\r\n]*")
    i = ws.match(text, 0).end()
    if text[i : i + 1] != "{":
        return None
    i = ws.match(text, i + 1).end()
    while i < len(text) and text[i] != "}":
        k, i = dec.raw_decode(text, i)
        i = ws.match(text, i).end() + 1  # the colon
        i = ws.match(text, i).end()
        _, end = dec.raw_decode(text, i)
        if k == key:
            return text[i:end]
        i = ws.match(text, end).end()
        if text[i : i + 1] == ",":
            i = ws.match(text, i + 1).end()
    return None


# --- scenarios (flowruntest.Parse) -------------------------------------------

def expand(p):
    return _IDS_RE.sub(lambda m: _IDS[m.group(0)], p)


def deployment_object():
    return (
        '{"id":"' + DEPLOYMENT_ID + '","name":"nightly","flow_id":"' + FLOW_ID + '","status":"READY","paused":false,'
        '"enforce_parameter_schema":true,"parameter_openapi_schema":{"title":"Parameters","type":"object",'
        '"properties":{"day":{"type":"string"},"limit":{"type":"integer"}}},"tags":["etl"]}'
    )


def run_object(state_type, name, message):
    m = go_string(message, escape_html=True)
    return (
        '{"id":"' + RUN_ID + '","name":"tidy-fox","flow_id":"' + FLOW_ID + '","deployment_id":"' + DEPLOYMENT_ID + '",'
        '"state_type":"' + state_type + '","state_name":"' + name + '","state":{"type":"' + state_type + '","name":"' + name
        + '","message":' + m + '},"parameters":{},"tags":["etl"]}'
    )


def macro(s):
    if s == "@deployment":
        return deployment_object()
    if s == "@flow":
        return '{"id":"' + FLOW_ID + '","name":"etl"}'
    if s.startswith("@run(") and s.endswith(")"):
        args = s[5:-1].split(",", 2)
        if len(args) < 2:
            raise ValueError("@run(TYPE,Name[,message])")
        return run_object(args[0], args[1], args[2] if len(args) == 3 else "")
    if s.startswith("@"):
        raise ValueError("unknown macro " + s)
    return expand(s.replace("@deployment", deployment_object()))


def is_json(s):
    try:
        json.loads(s)
        return True
    except ValueError:
        return False


def parse_interrupt(fields):
    return {"reason": fields[0], "exit_code": int(fields[1])}


def parse_exchange(method, rest):
    if " -> " not in rest:
        raise ValueError("want METHOD PATH -> ANSWER")
    path, ans = rest.split(" -> ", 1)
    ex = {"method": method, "path": expand(path.strip()), "response": {}, "interrupt": None}
    ans = ans.strip()
    i = ans.find(" interrupt ")
    if i >= 0:
        f = ans[i + len(" interrupt ") :].split()
        if len(f) != 2:
            raise ValueError("interrupt REASON CODE")
        ex["interrupt"] = parse_interrupt(f)
        ans = ans[:i].strip()
    word, _, tail = ans.partition(" ")
    if word == "error":
        kind, _, msg = tail.strip().partition(" ")
        ex["response"]["error"] = {"kind": kind, "message": msg}
        return ex
    ex["response"]["status"] = int(word)
    tail = tail.strip()
    if tail.startswith("retry-after="):
        ra, _, tail = tail.partition(" ")
        ex["response"]["retry_after_ms"] = int(ra[len("retry-after=") :])
        tail = tail.strip()
    if tail:
        body = macro(tail)
        if is_json(body):
            # As the Go harness sends it: compacted, then HTML-escaped by json.Marshal.
            ex["response"]["body"] = go_compact(body, escape_html=True)
        else:
            ex["response"]["body_text"] = body
    return ex


def parse_scenario(text):
    sc = {"input": None, "credential": {"scheme": "none"}, "exchanges": [], "sleep_interrupt": 0, "interrupt": None, "sleep_wake": {}}
    for n, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            if word == "input":
                sc["input"] = expand(rest)
                json.loads(sc["input"])
            elif word == "credential":
                sc["credential"] = json.loads(rest)
            elif word == "interrupt-on-sleep":
                f = rest.split()
                if len(f) != 3:
                    raise ValueError("interrupt-on-sleep N REASON CODE")
                sc["sleep_interrupt"] = int(f[0])
                sc["interrupt"] = parse_interrupt(f[1:])
            elif word == "wake-on-sleep":
                f = rest.split()
                if len(f) != 2 or int(f[0]) < 1 or int(f[1]) < 0:
                    raise ValueError("wake-on-sleep N MS")
                sc["sleep_wake"][int(f[0])] = int(f[1])
            elif word in ("GET", "POST"):
                ex = parse_exchange(word, rest)
                ex["line"] = n
                sc["exchanges"].append(ex)
            else:
                raise ValueError("unknown directive %r" % word)
        except ValueError as e:
            raise ValueError("line %d: %s" % (n, e)) from e
    if sc["input"] is None:
        raise ValueError("no input line")
    return sc


# --- the scripted host (flowruntest.Script) and its trace ---------------------

class Script:
    def __init__(self, sc):
        self.sc = sc
        self.lines = []
        self.now_ms = 0
        self.next = 0
        self.sleeps = 0
        self.intr = None

    def fail(self, msg):
        self.lines.append("!!! " + msg)

    def take(self, method, path):
        if self.next >= len(self.sc["exchanges"]):
            self.fail("unexpected request %s %s: the scenario has no more exchanges" % (method, path))
            return {"response": {"error": {"kind": "forbidden", "message": "scenario exhausted"}}, "interrupt": None}
        ex = self.sc["exchanges"][self.next]
        self.next += 1
        if ex["method"] != method or ex["path"] != path:
            self.fail("request %s %s, want %s %s (line %d)" % (method, path, ex["method"], ex["path"], ex["line"]))
            return {"response": {"error": {"kind": "forbidden", "message": "unexpected request"}}, "interrupt": None}
        return ex

    def http(self, raw):
        req = json.loads(raw)
        ex = self.take(req.get("method", ""), req.get("path", ""))
        if ex["interrupt"] and self.intr is None:
            self.intr = ex["interrupt"]
        a = dict(ex["response"])
        a["now_ms"] = self.now_ms
        if self.intr:
            a["interrupt"] = self.intr
        shown = {"method": req.get("method", ""), "path": req.get("path", "")}
        body = raw_member(raw, "body")
        if body is not None and body != "null":
            shown["body"] = RawJSON(go_compact(body, escape_html=False))
        if req.get("timeout_ms"):
            shown["timeout_ms"] = req["timeout_ms"]
        self.lines.append("==> prefect_http " + go_json(shown))
        self.lines.append("<== " + summarize(a))
        return response_json(a)

    def sleep(self, raw):
        req = json.loads(raw)
        d = req.get("duration_ms", 0)
        wake = req.get("wake_on")
        shown = {"duration_ms": d}
        if wake is not None:
            shown["wake_on"] = {"flow_run_id": wake.get("flow_run_id", ""), "events_path": wake.get("events_path", "")}
        if req.get("exact"):
            shown["exact"] = True
        self.sleeps += 1
        woken = False
        if self.sc["sleep_interrupt"] == self.sleeps:
            self.intr = self.sc["interrupt"]
        elif self.sleeps in self.sc["sleep_wake"]:
            # As flowruntest.Script.SleepWoken: an event ends the sleep early,
            # if it asked for that and lasts longer.
            ms = self.sc["sleep_wake"][self.sleeps]
            if not wake or not wake.get("flow_run_id") or not wake.get("events_path"):
                self.fail("sleep %d is woken by an event in the scenario, but it does not ask for wake_on" % self.sleeps)
                self.now_ms += d
            elif ms >= d:
                self.fail("sleep %d is woken after %d ms in the scenario, but it lasts only %d ms" % (self.sleeps, ms, d))
                self.now_ms += d
            else:
                self.now_ms += ms
                woken = True
        else:
            self.now_ms += d
        a = {"now_ms": self.now_ms}
        if self.intr:
            a["interrupt"] = self.intr
        if woken:
            a["woken"] = True
        self.lines.append("==> sleep " + go_json(shown))
        self.lines.append("<== " + go_json(a))
        return go_json(a)

    def credential(self, raw):
        c = self.sc["credential"]
        a = {"scheme": c.get("scheme", "")}
        for k in ("source", "error"):
            if c.get(k):
                a[k] = c[k]
        self.lines += ["==> get_credential", "<== " + go_json(a)]
        return go_json(a)

    def log(self, raw):
        r = json.loads(raw)
        if r.get("source"):
            self.lines.append("--- %s %s %s: %s" % (r["source"], r.get("time", ""), r.get("level", ""), r.get("message", "")))
        else:
            self.lines.append("--- %s: %s" % (r.get("level", ""), r.get("message", "")))

    def progress(self, raw):
        f = json.loads(raw).get("fields") or {}
        shown = {k: f[k] for k in ("flow_run_id", "flow_run_name", "flow_run_state", "flow_run_url") if f.get(k)}
        self.lines.append("--- progress " + go_json(shown))

    def finish(self, out):
        self.lines.append("=== exit %d: %s" % (out.get("exit_code", 0), out.get("status_description", "")))
        if "result" in out:
            r = out["result"]
            if isinstance(r, dict) and "flow_run" in r:
                r["flow_run"] = "…"
            self.lines.append("=== result " + go_json(r, sort_keys=True))
        e = out.get("error")
        if e:
            shown = {"code": e.get("code", "")}
            if e.get("field"):
                shown["field"] = e["field"]
            shown["message"] = e.get("message", "")
            self.lines.append("=== error " + go_json(shown))

    def trace(self):
        return "\n".join(self.lines) + "\n"


def response_json(a):
    """An abi.HTTPResponse, as the Go harness sends it."""
    shown = {}
    for k in ("status", "retry_after_ms"):
        if a.get(k):
            shown[k] = a[k]
    if a.get("body"):
        shown["body"] = RawJSON(a["body"])
    if a.get("body_text"):
        shown["body_text"] = a["body_text"]
    if a.get("error"):
        shown["error"] = a["error"]
    shown["now_ms"] = a["now_ms"]
    if a.get("interrupt"):
        shown["interrupt"] = a["interrupt"]
    return go_json(shown, escape_html=True)


def summarize(a):
    """flowruntest's summary of a response: without its body, which the scenario holds."""
    if a.get("error"):
        s = "error %s %s" % (a["error"]["kind"], go_quote(a["error"]["message"]))
    else:
        s = "%d" % a.get("status", 0)
        if a.get("body"):
            s += " body=%dB" % len(a["body"].encode())
        if a.get("body_text"):
            s += " text=" + go_quote(a["body_text"])
        if a.get("retry_after_ms"):
            s += " retry_after_ms=%d" % a["retry_after_ms"]
    s += " now_ms=%d" % a["now_ms"]
    if a.get("interrupt"):
        s += " interrupt=%s/%d" % (a["interrupt"]["reason"], a["interrupt"]["exit_code"])
    return s


# --- the Extism host functions -----------------------------------------------

_errors = []  # exceptions raised inside host functions, reported with the scenario


def _host_fn(name, method, answers):
    @extism.host_fn(name=name, namespace=HOST_MODULE, signature=([extism.ValType.I64], [extism.ValType.I64]))
    def fn(cp, inputs, outputs, *user_data):
        try:
            script = cp.host_context()
            resp = getattr(script, method)(cp.input_string(inputs[0]))
            if answers:
                cp.return_string(outputs[0], resp)
            else:
                outputs[0].value = 0
        except Exception as e:  # a bug here must fail the scenario, not vanish in cffi
            _errors.append("%s: %r" % (name, e))
            outputs[0].value = 0

    return fn


FUNCTIONS = [
    _host_fn("prefect_http", "http", True),
    _host_fn("sleep", "sleep", True),
    _host_fn("get_credential", "credential", True),
    _host_fn("log", "log", False),
    _host_fn("progress", "progress", False),
]


def run_scenario(compiled, sc):
    script = Script(sc)
    plugin = extism.Plugin(compiled)
    try:
        v = json.loads(plugin.call("abi_version", b"", host_context=script))
        if v.get("abi_version") != 1:
            raise RuntimeError("abi_version under the Python SDK = %r" % (v,))
        out = json.loads(plugin.call("run", sc["input"], host_context=script))
    finally:
        del plugin
    script.finish(out)
    return script


def main():
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wasm", default=os.path.join(root, "host", "plugin.wasm"))
    ap.add_argument("--dir", default=os.path.join(root, "plugin", "flowrun", "testdata"))
    ap.add_argument("-k", default="", help="run only scenarios whose name contains this")
    args = ap.parse_args()

    with open(args.wasm, "rb") as f:
        wasm = f.read()
    compiled = CompiledPlugin(wasm, wasi=True, functions=FUNCTIONS)
    files = sorted(glob.glob(os.path.join(args.dir, "scenarios", "*.txt")))
    files = [f for f in files if args.k in os.path.basename(f)]
    if not files:
        print("pyextism: no scenarios in %s" % args.dir)
        return 1
    failed = []
    for path in files:
        name = os.path.basename(path)[: -len(".txt")]
        try:
            with open(path, encoding="utf-8") as f:
                sc = parse_scenario(f.read())
            with open(os.path.join(args.dir, "golden", name + ".golden"), encoding="utf-8") as f:
                want = f.read()
            del _errors[:]
            script = run_scenario(compiled, sc)
            got = script.trace()
            problems = list(_errors)
            if "\n!!! " in got:
                problems.append("scenario and run disagree")
            if script.next < len(sc["exchanges"]):
                problems.append("%d scripted exchanges were never requested" % (len(sc["exchanges"]) - script.next))
            if got != want:
                diff = difflib.unified_diff(want.splitlines(), got.splitlines(), "golden", "python-extism", lineterm="", n=1)
                problems.append("trace differs from the golden:\n" + "\n".join(diff))
        except Exception as e:
            problems = ["%s: %s" % (type(e).__name__, e)]
        if problems:
            failed.append(name)
            print("FAIL %s: %s" % (name, "\n".join(problems)))
    print(
        "pyextism: %d scenarios, %d passed, %d failed (extism %s, extism-sys runtime %s)"
        % (len(files), len(files) - len(failed), len(failed), _version("extism"), extism.extism_version())
    )
    return 1 if failed else 0


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
