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

USER, PASSWORD = "uac-admin", "uac-S3cret-Passw0rd!"


def template():
    with open(TEMPLATE) as f:
        return json.load(f)


def secrets():
    key = need("UE_PREFECT_TEST_CLOUD_KEY")
    basic = USER + ":" + PASSWORD
    return [key, PASSWORD, basic, base64.b64encode(basic.encode()).decode()]


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
    updates = agent.extension._status_updates
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
    if name != "unsupported action":  # found by extension.py itself, before the binary starts
        doc = document(result)
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


@pytest.mark.parametrize("cancel_run,by_stdin", [(False, False), (True, False), (True, True)],
                         ids=["leave the run", "cancel the run", "cancel the run, Windows' way (stdin closes)"])
def test_cancel(extension, server, monkeypatch, cancel_run, by_stdin):
    monkeypatch.setattr(extension, "GRACEFUL_BY_STDIN", by_stdin)
    ue.clear_log()
    agent = ue.Agent(extension.Extension).start(server_fields(
        deployment=["sleepy/sleepy"], wait=True, polling_interval=1, cancel_on_cancel=cancel_run, cancel_grace=20))
    run_id = wait_for_state(agent, "RUNNING")
    sent = time.monotonic()
    agent.cancel()
    result = agent.wait(60)
    took = agent.ended - sent
    check_no_secrets(agent, result)
    assert result.rc == 143, result.message
    assert result.message.startswith("Interrupted: SIGTERM received"), result.message
    state = server.flow_run(run_id)["state_type"]
    if cancel_run:
        assert state in ("CANCELLED", "CANCELLING"), state
        assert "cancelling flow run" in result.message
        assert took < 25, took
    else:
        assert took < 5, "cancel took %.1fs" % took
        assert state == "RUNNING", state
        server.cancel(run_id)
    if by_stdin:
        assert "Standard input closed" in "\n".join(ue.log_lines())
    print("cancel (run cancelled: %s, by stdin: %s): task ended %.2fs after extension_cancel" % (
        cancel_run, by_stdin, took))


def test_missing_platform_binary(extension, monkeypatch):
    monkeypatch.setattr(extension, "agent_platform", lambda: ("aix", "ppc64"))
    _, result = run(extension, server_fields())
    assert result.rc == 1
    assert result.message.startswith("Execution Failed: no ue-prefect binary is bundled for this agent's "
                                     "platform aix/ppc64"), result.message
    assert "linux/amd64, linux/arm64, windows/amd64" in result.message
    # A supported platform whose binary is not in this archive.
    monkeypatch.setattr(extension, "agent_platform", lambda: ("linux", "arm64") if sys.platform != "linux"
                        or os.uname().machine != "aarch64" else ("linux", "amd64"))
    _, result = run(extension, server_fields())
    assert result.rc == 1 and "the extension archive has no bin/ue-prefect-linux-" in result.message, result.message
    # The dynamic choices say the same.
    r = ue.Agent(extension.Extension).choice("deployment", server_fields())
    assert r.rc == 1 and r.values == [] and "has no bin/ue-prefect-linux-" in r.message


# -- dynamic choices ------------------------------------------------------------------


def test_dynamic_choice_deployments(extension):
    r = ue.Agent(extension.Extension).choice("deployment", server_fields())
    assert r.rc == 0, r.message
    assert "ok/ok" in r.values and "sleepy/sleepy" in r.values
    assert r.values == sorted(r.values)


def test_dynamic_choice_workspaces_and_their_deployments(extension):
    agent = ue.Agent(extension.Extension)
    r = agent.choice("workspace", cloud_fields())
    assert r.rc == 0, r.message
    assert r.values == sorted(need("UE_PREFECT_TEST_WORKSPACES").split(","))
    r = agent.choice("deployment", cloud_fields(workspace=ue.choice(r.values[0])))
    assert r.rc == 0 and "ok/ok" in r.values, r.message


def test_dynamic_choice_failure_is_a_failed_command_with_the_binary_message(extension):
    agent = ue.Agent(extension.Extension)
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
