"""The "Prefect" Universal Extension, through the real ue-prefect binary, against the
rig's real Prefect server (see conftest.py), driven through the universal_extension
stand-in the way an agent drives it."""

import ast
import base64
import json
import os
import re
import sys
import time
import zipfile

import pytest

import universal_extension as ue
from conftest import UAC, need

SRC = os.path.join(UAC, "extension", "src")
TEMPLATE = os.path.join(SRC, "templates", "template.json")

# ue-prefect 1.0's input fields: label and type, in order (../shared/seeds/ue-prefect-1.0.0.txt).
FIELDS_1_0 = [
    ("Action", "Choice"), ("Credentials", "Credential"), ("Workspace ID or Name", "Dynamic Choice"),
    ("Deployment ID or Name", "Dynamic Choice"), ("Flow Run Name", "Text"),
    ("Additional Optional Parameters", "Checkbox"), ("Parameters (JSON)", "Large Text"),
    ("Wait for Success or Failure", "Checkbox"), ("Polling Interval (sec)", "Integer"),
    ("Max Number of Polls", "Integer"), ("Extension Output Options", "Choice"),
]
OUTPUTS_1_0 = ["Flow Run ID", "Flow Run Name", "Flow Run State"]

USER, PASSWORD = "uac-admin", r'uac-S3"cret\Passw0rd!'  # `"` and `\`: escaped in JSON


def template():
    with open(TEMPLATE) as f:
        return json.load(f)


def secrets():
    key = need("UE_PREFECT_TEST_CLOUD_KEY")
    basic = USER + ":" + PASSWORD
    raw = [key, PASSWORD, basic]
    # As is, base64 (a basic-auth header), and JSON-escaped (inside a document).
    return raw + [base64.b64encode(s.encode()).decode() for s in raw] + [json.dumps(s)[1:-1] for s in raw]


def server_fields(**kw):
    """A self-hosted task: basic-auth credentials (the rig's server ignores them, the
    binary must still never print them)."""
    f = {
        "action": ue.choice("launch_flow_run"),
        "credentials": ue.credential(USER, PASSWORD),
        "workspace": ue.choice(None),
        "deployment": ue.choice("ok/ok"),
        "flow_run_name": None,
        "additional_params": False,
        "parameters": None,
        "wait": False,
        "polling_interval": 60,
        "max_polls": None,
        "output_options": ue.choice("Include Flow Run Metadata"),
        "api_url": need("UE_PREFECT_TEST_API_URL"),
        "cancel_on_cancel": False,
        "cancel_grace": None,
        "stream_logs": False,
        "idempotency_key": None,
        "outage_budget": None,
        "allow_insecure_http": False,
        "cloud_api_url": None,
        "start_at": None,
        "start_deadline": None,
        "cancel_on_deadline": False,
    }
    f.update(kw)
    return f


def cloud_fields(**kw):
    f = server_fields(api_url=None, credentials=ue.credential(token=need("UE_PREFECT_TEST_CLOUD_KEY")),
                      cloud_api_url=need("UE_PREFECT_TEST_CLOUD_API_URL"))
    f.update(kw)
    return f


def run(extension, fields, timeout=180):
    ue.clear_log()
    agent = ue.Agent(extension.Extension).start(fields)
    result = agent.wait(timeout)
    check_no_secrets(agent, result)
    return agent, result


def check_no_secrets(agent, result):
    texts = ue.log_lines() + [json.dumps(u) for u in agent.updates()] + [
        str(result.message), str(result.unv_output), json.dumps(result.output_fields)]
    for s in secrets():
        for t in texts:
            assert s not in t, "a secret appears in %r" % t[:200]


def document(result):
    doc = json.loads(result.unv_output)
    assert doc["exit_code"] == result.rc
    assert doc["status_description"] == result.message
    return doc


# -- template.json and extension.py agree; the template is what 1.0 and UAC expect -------


def test_template_matches_1_0_and_uac_conventions():
    t = template()
    assert (t["name"], t["extension"], t["templateType"]) == ("Prefect", "ue-prefect", "Extension")
    assert t["minReleaseLevel"] == "7.6.0.0"
    assert t["alwaysCancelOnFinish"] is True
    assert (t["exitCodeProcessing"], t["exitCodes"]) == ("Success Exitcode Range", "0")
    # An Extension runs no script: Agent Type Any, no common script, no script bodies.
    assert t["agentType"] == "Any" and t["useCommonScript"] is False
    assert all(t[k] is None for k in ("script", "scriptUnix", "scriptWindows"))

    kinds = {"Choice": "Choice", "Credential": "Credential", "Boolean": "Checkbox", "Integer": "Integer"}

    def kind(f):
        if f["fieldType"] == "Choice" and f["choiceDynamic"]:
            return "Dynamic Choice"
        if f["fieldType"] == "Text":
            return "Large Text" if f["fieldMapping"].startswith("Large Text") else "Text"
        return kinds[f["fieldType"]]

    fields = sorted(t["fields"], key=lambda f: f["sequence"])
    assert [f["sequence"] for f in fields] == list(range(len(fields)))
    inputs = [f for f in fields if f["fieldRestriction"] != "Output Only"]
    outputs = [f for f in fields if f["fieldRestriction"] == "Output Only"]
    assert [(f["label"], kind(f)) for f in inputs[:len(FIELDS_1_0)]] == FIELDS_1_0
    assert [f["label"] for f in outputs[:3]] == OUTPUTS_1_0
    # 1.0's fields come first; ours after.
    last_1_0 = max(f["sequence"] for f in inputs[:len(FIELDS_1_0)] + outputs[:3])
    assert all(f["sequence"] > last_1_0 for f in inputs[len(FIELDS_1_0):] + outputs[3:])
    assert {f["fieldType"] for f in outputs} == {"Text"}

    mappings = [f["fieldMapping"] for f in fields]
    assert len(set(mappings)) == len(mappings), "a field mapping is used twice"
    names = [f["name"] for f in fields]
    assert len(set(n.lower() for n in names)) == len(names)
    for n in names:  # Stonebranch: at most 28 characters, a letter then letters, digits, _.
        assert re.match(r"^[A-Za-z][A-Za-z0-9_]{0,27}$", n), n
    by_mapping = dict((f["fieldMapping"], f) for f in fields)
    for f in fields:
        for ref in [f["showIfField"], f["requireIfField"]] + f["choiceFields"]:
            assert ref is None or ref in by_mapping, "%s refers to a missing %s" % (f["name"], ref)
        for c in f["choices"]:
            assert c["fieldValue"] and re.match(r"^[0-9a-f]{32}$", c["sysId"])


def test_template_choices_and_conditions():
    t = template()
    for f in t["fields"]:
        # Each choice of a static Choice has a label (uip-cli's ue-task template.json gives
        # every choice a fieldValueLabel).
        for c in f["choices"]:
            assert c.get("fieldValueLabel"), (f["name"], c)
            assert c["useFieldValueForLabel"] is False, (f["name"], c)
        # Shown and required under the same condition: requireIfVisible, not a second copy
        # of the condition.
        if f["requireIfField"] is not None:
            assert (f["requireIfField"], f["requireIfFieldValue"]) != (f["showIfField"], f["showIfFieldValue"]), f["name"]
    by_name = dict((f["name"], f) for f in t["fields"])
    assert by_name["polling_interval"]["requireIfVisible"] is True
    assert by_name["polling_interval"]["showIfField"] == by_name["wait"]["fieldMapping"]
    # The Controller resets "required" on Choice fields: the binary checks Deployment (exit 20,
    # test_exit_codes_and_descriptions), and the hint says so.
    assert "exit 20" in by_name["deployment"]["hint"]
    # The Windows floor (Go 1.26): Windows 10 / Windows Server 2016.
    assert "Windows 10 / Windows Server 2016" in t["description"]


def test_template_has_every_top_level_key_of_stonebranch_exports():
    import uip
    ue_task = os.path.join(os.path.dirname(uip.__file__), "uiptemplates", "tasktemplates", "ue-task", "src",
                           "templates", "template.json")
    with open(ue_task) as f:
        keys = set(json.load(f))  # its {{ }} placeholders sit inside strings
    # The top-level keys of a Controller export beyond uip's starter: Stonebranch/AWS's
    # "AWS Mainframe Modernization" extension, assets/template.json in
    # nholuongut/aws-mainframe-modernization-stonebranch-integration.
    keys |= {"events", "iconDateCreated", "iconFilename", "iconFilesize", "sendVariables"}
    assert keys - set(template()) == set()
    assert set(template()) - keys == set(), "keys no public export carries"


def test_template_and_extension_agree(extension):
    t = template()
    inputs = set(f["name"] for f in t["fields"] if f["fieldRestriction"] != "Output Only")
    outputs = set(f["name"] for f in t["fields"] if f["fieldRestriction"] == "Output Only")
    assert set(extension.INPUT_FIELDS) == inputs
    assert set(extension.OUTPUT_FIELDS.values()) == outputs
    # Every field name the code reads is declared (so INPUT_FIELDS is the truth).
    with open(os.path.join(SRC, "extension.py")) as f:
        tree = ast.parse(f.read())
    read = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get" \
                and getattr(node.func.value, "id", "") == "fields" and isinstance(node.args[0], ast.Constant):
            read.add(node.args[0].value)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "_credential":
            read.add(node.args[1].value)
    assert read == inputs, read ^ inputs
    dynamic = set(f["name"] for f in t["fields"] if f["choiceDynamic"])
    commands = set(getattr(getattr(extension.Extension, a), "_dynamic_choice_field", None)
                   for a in dir(extension.Extension)) - {None}
    assert commands == dynamic == {"workspace", "deployment"}
    # Outputs the binary publishes all have a field.
    assert set(extension.OUTPUT_FIELDS) == {"flow_run_id", "flow_run_name", "flow_run_state", "flow_run_url"}


def test_built_package_structure(package):
    with zipfile.ZipFile(package["dist"]) as z:
        assert sorted(z.namelist()) == ["extension_archive.zip", "template.json", "template_icon.png"]
        with open(TEMPLATE, "rb") as f:
            assert z.read("template.json") == f.read()
        assert z.read("template_icon.png").startswith(b"\x89PNG\r\n\x1a\n")
    assert re.search(r"unv_tmplt_Prefect-\d+\.\d+\.\d+\.zip$", package["dist"])
    with zipfile.ZipFile(package["archive"]) as a:
        names = a.namelist()
        assert "extension.py" in names and "extension.yml" in names
        bins = sorted(n for n in names if n.startswith("bin/"))
        assert bins and all(re.match(r"^bin/ue-prefect-(linux-amd64|linux-arm64|windows-amd64\.exe)$", n) for n in bins)
        assert not [n for n in names if "universal_extension" in n or n.startswith("tests/")], "the stand-in is shipped"
        yml = a.read("extension.yml").decode()
    assert re.search(r"^  name: ue-prefect$", yml, re.M)
    version = re.search(r'^  version: "(\d+)\.(\d+)\.(\d+)"$', yml, re.M).groups()
    assert tuple(map(int, version)) > (1, 0, 0)
    assert re.search(r'^  api_level: "\d+\.\d+\.\d+"$', yml, re.M)
    assert re.search(r'^  requires_python: ">=3\.\d+"$', yml, re.M)
    assert package["dist"].endswith("-%s.zip" % ".".join(version))


# -- field mapping ------------------------------------------------------------------


MAPPING_CASES = [
    ("unset fields", {}, {"UE_PREFECT_WAIT": "false", "UE_PREFECT_CANCEL_ON_INTERRUPT": "false",
                          "UE_PREFECT_STREAM_LOGS": "false", "UE_PREFECT_STOP_ON_STDIN_CLOSE": "true"}),
    ("empty values", {"action": [], "credentials": None, "workspace": [], "deployment": [""], "flow_run_name": "",
                      "additional_params": None, "parameters": "", "wait": None, "polling_interval": None,
                      "max_polls": None, "output_options": [], "api_url": "  ", "idempotency_key": "",
                      "cloud_api_url": None},
     {"UE_PREFECT_WAIT": "false", "UE_PREFECT_CANCEL_ON_INTERRUPT": "false",
      "UE_PREFECT_STREAM_LOGS": "false", "UE_PREFECT_STOP_ON_STDIN_CLOSE": "true"}),
    ("cloud: every field", {
        "credentials": {"user": "ignored", "password": "pw", "token": "pnu_tok"},
        "workspace": ["acme/prod"], "deployment": ["etl/nightly"], "flow_run_name": "nightly-1",
        "additional_params": True, "parameters": '{"parameters": {"x": 1}}', "wait": True,
        "polling_interval": 5, "max_polls": 7, "output_options": ["No Metadata"], "cancel_on_cancel": True,
        "cancel_grace": 12, "stream_logs": True, "idempotency_key": "k-1", "outage_budget": 60,
        "allow_insecure_http": True, "cloud_api_url": "https://cloud.example/api",
        "start_at": "10m", "start_deadline": 300, "cancel_on_deadline": True},
     {"PREFECT_API_KEY": "pnu_tok", "PREFECT_CLOUD_API_URL": "https://cloud.example/api",
      "UE_PREFECT_WORKSPACE": "acme/prod", "UE_PREFECT_DEPLOYMENT": "etl/nightly",
      "UE_PREFECT_FLOW_RUN_NAME": "nightly-1", "UE_PREFECT_PARAMETERS": '{"parameters": {"x": 1}}',
      "UE_PREFECT_WAIT": "true", "UE_PREFECT_POLL_INTERVAL": "5", "UE_PREFECT_MAX_POLLS": "7",
      "UE_PREFECT_INCLUDE_METADATA": "No Metadata", "UE_PREFECT_CANCEL_ON_INTERRUPT": "true",
      "UE_PREFECT_CANCEL_GRACE": "12", "UE_PREFECT_STREAM_LOGS": "true", "UE_PREFECT_IDEMPOTENCY_KEY": "k-1",
      "UE_PREFECT_OUTAGE_BUDGET": "60", "UE_PREFECT_ALLOW_INSECURE_HTTP": "true",
      "UE_PREFECT_START_AT": "10m", "UE_PREFECT_START_DEADLINE": "300", "UE_PREFECT_CANCEL_ON_DEADLINE": "true",
      "UE_PREFECT_STOP_ON_STDIN_CLOSE": "true"}),
    ("cloud: key in Password when no Token; parameters hidden unless Additional is on", {
        "credentials": {"user": None, "password": "pnu_pw", "token": None},
        "additional_params": False, "parameters": '{"tags": ["x"]}'},
     {"PREFECT_API_KEY": "pnu_pw", "UE_PREFECT_WAIT": "false", "UE_PREFECT_CANCEL_ON_INTERRUPT": "false",
      "UE_PREFECT_STREAM_LOGS": "false", "UE_PREFECT_STOP_ON_STDIN_CLOSE": "true"}),
    ("self-hosted: user and password as basic auth, credential as dotted keys", dict(
        ue.credential("admin", "pw", dotted_as="credentials"), api_url="https://prefect.example/api"),
     {"PREFECT_API_URL": "https://prefect.example/api", "PREFECT_API_AUTH_STRING": "admin:pw",
      "UE_PREFECT_WAIT": "false", "UE_PREFECT_CANCEL_ON_INTERRUPT": "false",
      "UE_PREFECT_STREAM_LOGS": "false", "UE_PREFECT_STOP_ON_STDIN_CLOSE": "true"}),
    ("self-hosted: a key alone is a bearer key", {
        "credentials": {"password": "k"}, "api_url": "https://prefect.example/api"},
     {"PREFECT_API_URL": "https://prefect.example/api", "PREFECT_API_KEY": "k",
      "UE_PREFECT_WAIT": "false", "UE_PREFECT_CANCEL_ON_INTERRUPT": "false",
      "UE_PREFECT_STREAM_LOGS": "false", "UE_PREFECT_STOP_ON_STDIN_CLOSE": "true"}),
    ("booleans and choices as text", {"wait": "true", "stream_logs": "false", "workspace": "acme/prod"},
     {"UE_PREFECT_WORKSPACE": "acme/prod", "UE_PREFECT_WAIT": "true", "UE_PREFECT_CANCEL_ON_INTERRUPT": "false",
      "UE_PREFECT_STREAM_LOGS": "false", "UE_PREFECT_STOP_ON_STDIN_CLOSE": "true"}),
]


@pytest.mark.parametrize("name,fields,want", MAPPING_CASES, ids=[c[0] for c in MAPPING_CASES])
def test_field_mapping(extension, name, fields, want):
    assert extension.build_env(fields) == want


def test_binary_environment_drops_inherited_prefect_variables(extension, monkeypatch):
    monkeypatch.setenv("PREFECT_API_KEY_FILE", "/etc/agent-wide-key")
    monkeypatch.setenv("UE_PREFECT_FLOW_RUN_ID", "0b8a1d55-0000-0000-0000-000000000000")
    monkeypatch.setenv("prefect_api_url", "http://lower.case/api")
    monkeypatch.setenv("KEEP_ME", "1")
    env = extension.child_environ({"deployment": ["a/b"]})
    assert not [k for k in env if k.upper().startswith(("PREFECT_", "UE_PREFECT_"))
                and k not in extension.build_env({"deployment": ["a/b"]})]
    assert env["KEEP_ME"] == "1" and env["UE_PREFECT_DEPLOYMENT"] == "a/b"


def test_every_variable_the_extension_sets_is_documented(extension):
    """`ue-prefect --help` and the README's inputs table list every variable."""
    full = extension.build_env(MAPPING_CASES[2][1])
    full.update(extension.build_env(MAPPING_CASES[4][1]))
    import subprocess
    exe = extension.binary_path()
    usage = subprocess.run([exe, "--help"], stdout=subprocess.PIPE).stdout.decode()
    with open(os.path.join(UAC, "..", "..", "README.md")) as f:
        readme = f.read()
    for var in full:
        assert "[%s]" % var in usage, var
        assert "`%s`" % var in readme, var


# -- through the binary, against the real server --------------------------------------


def test_launch_maps_every_field_onto_the_flow_run(extension, server, capfd):
    key = "uac-pytest-%d" % time.time_ns()
    params = {"parameters": {"seconds": 0}, "context": {}, "job_variables": {}, "tags": ["uac", "pytest"]}
    agent, result = run(extension, server_fields(
        flow_run_name="uac-mapped", additional_params=True, parameters=json.dumps(params),
        output_options=ue.choice("No Metadata"), idempotency_key=key))
    out = capfd.readouterr()
    assert out.out == "", "STDOUT must stay empty, as in 1.0"
    assert (result.rc, result.message) == (0, "Task executed successfully.")
    doc = document(result)
    run_id = doc["result"]["flow_run_id"]
    fr = server.flow_run(run_id)
    assert fr["name"] == "uac-mapped"
    assert fr["parameters"] == {"seconds": 0}
    assert set(fr["tags"]) >= {"uac", "pytest"}
    assert fr["idempotency_key"].endswith(":" + key)
    assert "flow_run" not in doc["result"] and "metadata" not in doc["result"], "No Metadata was chosen"
    assert result.output_fields["out_flow_run_id"] == run_id
    assert agent.updates()[0]["out_flow_run_id"] == run_id
    # The same key again re-attaches to the same run (a second launch is not a second run).
    _, again = run(extension, server_fields(flow_run_name="uac-mapped", idempotency_key=key))
    assert document(again)["result"]["flow_run_id"] == run_id


def test_wait_updates_output_fields_live_and_in_order(extension):
    params = json.dumps({"parameters": {"seconds": 3}})
    agent, result = run(extension, server_fields(wait=True, polling_interval=1, additional_params=True,
                                                parameters=params, stream_logs=True))
    assert (result.rc, result.message) == (0, "Task executed successfully.")
    # Through ui.update_output_fields, which the stand-in's agent module has, as
    # Stonebranch's own extensions do; update_extension_status is the fallback.
    assert ue.ui.calls and not agent.extension._status_updates, "update_extension_status was used"
    updates = agent.timed_updates()
    states = [u["out_flow_run_state"] for _, u in updates]
    order = ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    assert states[-1] == "COMPLETED" and "RUNNING" in states, states
    assert [order.index(s) for s in states] == sorted(order.index(s) for s in states), states
    assert len(set(u["out_flow_run_id"] for _, u in updates)) == 1
    # Live: the first update reached the Controller while the task still had seconds to go.
    assert agent.ended - updates[0][0] > 2.0, (agent.ended - updates[0][0])
    assert all(u["out_flow_run_url"].endswith("/runs/flow-run/" + u["out_flow_run_id"]) for _, u in updates)
    # Every other stderr line went to the log (STDERR): ue-prefect's own and the flow's.
    log = "\n".join(ue.log_lines())
    assert "Created flow run" in log and "Beginning flow run" in log
    assert "ue-prefect::output" not in log
    doc = document(result)
    assert doc["result"]["flow_run_state"] == "COMPLETED" and doc["invocation"]["extension"]


@pytest.mark.parametrize("name,fields,rc,prefix", [
    ("flow run FAILED", dict(deployment=["fail/fail"], wait=True, polling_interval=1), 1, "Execution Failed: "),
    ("unknown deployment", dict(deployment=["nope/nope"]), 20, "Data Validation Error: Deployment ID or Name: "),
    ("bad polling interval", dict(wait=True, polling_interval=0), 20,
     "Data Validation Error: Polling Interval (sec): "),
    ("bad parameters JSON", dict(additional_params=True, parameters="{not json"), 20,
     "Data Validation Error: Parameters (JSON): "),
    ("unsupported action", dict(action=["delete_everything"]), 20, "Data Validation Error: Action: "),
    # The Controller resets "required" to false on Choice fields, so the binary checks Deployment.
    ("no deployment", dict(deployment=ue.choice(None)), 20, "Data Validation Error: Deployment ID or Name: "),
    ("polling timeout", dict(deployment=["sleepy/sleepy"], wait=True, polling_interval=1, max_polls=1), 40,
     "Polling Timeout: maximum polling timeout reached."),
    ("start in the past", dict(start_at="2020-01-01T00:00:00Z"), 20, "Data Validation Error: Start At: "),
    ("start deadline", dict(deployment=["idle/idle"], wait=True, polling_interval=1, start_deadline=2), 41,
     "Start Deadline: flow run "),
], ids=lambda v: v if isinstance(v, str) else None)
def test_exit_codes_and_descriptions(extension, server, name, fields, rc, prefix):
    _, result = run(extension, server_fields(**fields))
    assert result.rc == rc, result.message
    assert result.message.startswith(prefix), result.message
    # Every outcome is a document in the binary's shape, also one extension.py found itself.
    doc = document(result)
    assert set(doc) >= {"exit_code", "status_description", "status", "changed", "invocation", "result"}, doc
    assert doc["status"] == "FAILURE" and doc["invocation"]["extension"] == "ue-prefect"
    if name == "unsupported action":
        assert doc["error"] == {"code": "invalid_input", "field": "action",
                                "message": "Action: 'delete_everything' is not supported; supported: Launch Flow Run"}
    if doc["result"].get("flow_run_id"):
        server.cancel(doc["result"]["flow_run_id"])


def wait_for_state(agent, state, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(u.get("out_flow_run_state") == state for u in agent.updates()):
            return agent.updates()[-1]["out_flow_run_id"]
        if agent.ended:
            break
        time.sleep(0.2)
    pytest.fail("no %s update; log:\n%s" % (state, "\n".join(ue.log_lines())))


def watch_state(server, run_id, since, seen):
    """Record, in seen, when the flow run first left RUNNING (seconds after since)."""
    def run():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                st = server.flow_run(run_id)["state_type"]
            except Exception:
                st = None
            if st and st != "RUNNING":
                seen.setdefault("state", st)
                seen.setdefault("after", time.monotonic() - since)
                return
            time.sleep(0.1)
    import threading
    t = threading.Thread(target=run)
    t.daemon = True
    t.start()
    return t


def wait_for_run(agent, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for u in agent.updates():
            if u.get("out_flow_run_id"):
                return u["out_flow_run_id"]
        if agent.ended:
            break
        time.sleep(0.1)
    pytest.fail("no flow run; log:\n%s" % "\n".join(ue.log_lines()))


CANCEL_CASES = [
    # name, deployment, cancel_on_cancel, by stdin, Cancel Grace, who ends the flow run
    ("leave the run", "sleepy/sleepy", False, False, None),
    ("cancel: the runner confirms CANCELLED", "sleepy/sleepy", True, False, None),
    # A RUNNING flow run no worker confirms (an unserved deployment, set RUNNING by the test):
    # CANCELLED never comes, and Cancel Grace (30 s) is longer than the agent waits.
    ("cancel: nobody confirms, default grace", "idle/idle", True, False, None),
    ("cancel: nobody confirms, Windows' way (stdin closes)", "idle/idle", True, True, None),
    ("cancel: nobody confirms, grace 2 s", "idle/idle", True, False, 2),
]


@pytest.mark.parametrize("name,deployment,cancel_run,by_stdin,grace", CANCEL_CASES, ids=[c[0] for c in CANCEL_CASES])
def test_cancel(extension, server, monkeypatch, name, deployment, cancel_run, by_stdin, grace):
    """The agent ends a cancelled task EXTENSION_CANCEL_TIMEOUT (10 s) after extension_cancel
    (the stand-in does too): the task ends inside it by itself, with the CANCELLING request
    sent at once and what is known of the cancellation said, whatever Cancel Grace is."""
    monkeypatch.setattr(extension, "GRACEFUL_BY_STDIN", by_stdin)
    ue.clear_log()
    agent = ue.Agent(extension.Extension).start(server_fields(
        deployment=[deployment], wait=True, polling_interval=1, cancel_on_cancel=cancel_run, cancel_grace=grace))
    if deployment == "idle/idle":
        run_id = wait_for_run(agent)
        server.call("POST", "/flow_runs/%s/set_state" % run_id,
                    {"state": {"type": "RUNNING", "name": "Running"}, "force": True})
    run_id = wait_for_state(agent, "RUNNING")
    sent = time.monotonic()
    seen = {}
    watcher = watch_state(server, run_id, sent, seen) if cancel_run else None
    agent.cancel()
    assert not agent.forced, "the agent had to end the task after %ds; log:\n%s" % (
        ue.EXTENSION_CANCEL_TIMEOUT, "\n".join(ue.log_lines()))
    result = agent.wait(5)
    took = agent.ended - sent
    check_no_secrets(agent, result)
    assert result.rc == 143, result.message
    assert result.message.startswith("Interrupted: "), result.message
    document(result)
    state = server.flow_run(run_id)["state_type"]
    try:
        if cancel_run:
            watcher.join(30)
            assert state in ("CANCELLED", "CANCELLING"), state
            # The CANCELLING request went out at once (a shared 2-core machine: some slack).
            assert seen.get("after", 99) < 3, seen
            assert took < ue.EXTENSION_CANCEL_TIMEOUT, took
            if deployment == "idle/idle":
                assert state == "CANCELLING", state
                assert re.search(r"CANCELLING|could not be confirmed|still CANCELLING", result.message), result.message
        else:
            assert took < 5, "cancel took %.1fs" % took
            assert state == "RUNNING", state
        if by_stdin:
            assert "Standard input closed" in "\n".join(ue.log_lines())
    finally:
        if state not in ("CANCELLED", "COMPLETED", "FAILED", "CRASHED"):
            server.cancel(run_id)
    print("cancel [%s]: task ended %.2fs after extension_cancel; flow run %s %.2fs after it; %s" % (
        name, took, seen.get("state", state), seen.get("after", -1), result.message))


def test_missing_platform_binary(extension, monkeypatch):
    monkeypatch.setattr(extension, "agent_platform", lambda: ("aix", "ppc64"))
    _, result = run(extension, server_fields())
    assert result.rc == 1
    assert result.message.startswith("Execution Failed: no ue-prefect binary is bundled for this agent's "
                                     "platform aix/ppc64"), result.message
    assert "linux/amd64, linux/arm64, windows/amd64" in result.message
    doc = document(result)  # found by extension.py: still the binary's document shape
    assert doc["error"]["code"] == "unavailable" and doc["result"] == {}, doc
    # A supported platform whose binary is not in this archive.
    monkeypatch.setattr(extension, "agent_platform", lambda: ("linux", "arm64") if sys.platform != "linux"
                        or os.uname().machine != "aarch64" else ("linux", "amd64"))
    _, result = run(extension, server_fields())
    assert result.rc == 1 and "the extension archive has no bin/ue-prefect-linux-" in result.message, result.message
    # The dynamic choices say the same.
    r = ue.Agent(extension.Extension, template()).choice("deployment", server_fields())
    assert r.rc == 1 and r.values == [] and "has no bin/ue-prefect-linux-" in r.message


def test_output_fields_fall_back_to_update_extension_status(extension, monkeypatch):
    """An agent module without ui.update_output_fields: update_extension_status carries them."""
    monkeypatch.setattr(extension, "ui", None)
    agent, result = run(extension, server_fields())
    assert result.rc == 0, result.message
    assert not ue.ui.calls
    assert [u["out_flow_run_state"] for _, u in agent.extension._status_updates] == ["SCHEDULED"]


# A stand-in for the binary, for what the real one never does: Python that prints SCRIPT's
# stderr lines and stdout, then exits as told (or is killed).
FAKE = r"""
import json, os, signal, sys
spec = json.loads(os.environ["FAKE_SPEC"])
for line in spec["stderr"]:
    sys.stderr.write(line + "\n"); sys.stderr.flush()
sys.stdout.write(spec["stdout"]); sys.stdout.flush()
if spec.get("signal"):
    os.kill(os.getpid(), spec["signal"])
sys.exit(spec.get("rc", 0))
"""


def fake_binary(monkeypatch, extension, **spec):
    import subprocess

    def start(args, environ, stdin=subprocess.PIPE):
        env = dict(environ, FAKE_SPEC=json.dumps(spec))
        return subprocess.Popen([sys.executable, "-c", FAKE], stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    monkeypatch.setattr(extension, "start_binary", start)


GOOD_DOC = json.dumps({"exit_code": 0, "status_description": "Task executed successfully.", "result": {}})


@pytest.mark.parametrize("name,spec,rc,prefix", [
    ("output line holding a JSON list", dict(stderr=["ue-prefect::output [1, 2]", 'ue-prefect::output "x"',
                                                     "ue-prefect::output null"], stdout=GOOD_DOC),
     0, "Task executed successfully."),
    ("document is a JSON list", dict(stderr=[], stdout="[1, 2]", rc=0), 1, "Execution Failed: ue-prefect ended "),
    ("document's result is a list", dict(stderr=[], stdout=json.dumps({"exit_code": 0, "status_description": "ok",
                                                                       "result": [1]})), 0, "ok"),
    ("document's exit_code is not a number", dict(stderr=[], stdout=json.dumps({"exit_code": "x",
                                                                                "status_description": "s"}), rc=1),
     1, "s"),
    ("killed by SIGKILL", dict(stderr=["ue-prefect::output " + json.dumps({"flow_run_id": "r-1"})], stdout="",
                               signal=9), 1, "Execution Failed: ue-prefect was ended by SIGKILL before it reported"),
    ("killed by SIGSEGV", dict(stderr=[], stdout="", signal=11), 1, "Execution Failed: ue-prefect was ended by SIGSEGV"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_payloads_from_the_binary_that_are_not_what_it_writes(extension, monkeypatch, name, spec, rc, prefix):
    """Valid JSON that is not an object, and a binary ended by a signal (UAC would see
    rc=-9): exit 1 with a message, never an uncaught exception."""
    fake_binary(monkeypatch, extension, **spec)
    agent, result = run(extension, server_fields())
    assert result.rc == rc, result.message
    assert result.message.startswith(prefix), result.message
    assert not agent.updates() or agent.updates() == [{"out_flow_run_id": "r-1"}], agent.updates()
    if name.startswith("killed"):
        doc = document(result)
        assert doc["error"]["code"] == "internal"
        if "r-1" in json.dumps(agent.updates()):
            assert doc["result"] == {"flow_run_id": "r-1"}, doc
    # The dynamic choices too.
    r = ue.Agent(extension.Extension, template()).choice("deployment", server_fields())
    assert isinstance(r.rc, int) and isinstance(r.values, list), (r.rc, r.values)
    if name.startswith("killed"):
        assert r.rc == 1 and "was ended by SIG" in r.message, r.message


def test_extension_version_is_extension_yml(extension):
    with open(os.path.join(SRC, "extension.yml")) as f:
        assert 'version: "%s"' % extension.EXTENSION_VERSION in f.read()


# -- dynamic choices ------------------------------------------------------------------


def test_dynamic_choice_deployments(extension):
    agent = ue.Agent(extension.Extension, template())
    r = agent.choice("deployment", server_fields())
    assert r.rc == 0, r.message
    # Only the fields the template lists in the Deployment field's choiceFields reached it.
    assert set(agent.choice_fields) == {"credentials", "workspace", "api_url", "cloud_api_url",
                                        "allow_insecure_http"}, agent.choice_fields
    assert "ok/ok" in r.values and "sleepy/sleepy" in r.values
    assert r.values == sorted(r.values)


def test_dynamic_choice_workspaces_and_their_deployments(extension):
    agent = ue.Agent(extension.Extension, template())
    dotted = cloud_fields()  # the credential as dotted keys only
    del dotted["credentials"]
    dotted.update(ue.credential(token=need("UE_PREFECT_TEST_CLOUD_KEY"), dotted_as="credentials"))
    r = agent.choice("workspace", dotted)
    assert r.rc == 0, r.message
    assert set(agent.choice_fields) == {"credentials.token", "api_url", "cloud_api_url", "allow_insecure_http"}
    assert r.values == sorted(need("UE_PREFECT_TEST_WORKSPACES").split(","))
    r = agent.choice("deployment", cloud_fields(workspace=ue.choice(r.values[0])))
    assert r.rc == 0 and "ok/ok" in r.values, r.message


def test_dynamic_choice_failure_is_a_failed_command_with_the_binary_message(extension):
    agent = ue.Agent(extension.Extension, template())
    r = agent.choice("workspace", cloud_fields(credentials=ue.credential(token="pnu_wrong_uac_key_0000")))
    assert r.rc == 20 and r.values == []
    assert r.message.startswith("Data Validation Error: Credentials: Prefect refused"), r.message
    unknown = cloud_fields(workspace=ue.choice("acme/nope"))
    r = agent.choice("deployment", unknown)
    assert r.rc == 20 and r.values == [], r.message
    # What the binary itself says, word for word.
    import subprocess
    proc = subprocess.run([extension.binary_path(), "list-deployments", "--json"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          env=extension.child_environ(unknown, stop_on_stdin_close=False))
    assert json.loads(proc.stdout.decode())["status_description"] == r.message
    assert r.message.startswith('Data Validation Error: Workspace ID or Name: no workspace "acme/nope"'), r.message
