"""Runs inside a private mount namespace for test_noexec.py: imports the extension from
the extension archive in $NOEXEC_ARCHIVE, launches a flow run through the stand-in agent
and fills the Deployment choice, and prints what happened as one JSON object."""

import json
import os
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.environ["NOEXEC_ARCHIVE"])

out = {}
try:
    import universal_extension as ue
    import extension

    with open(os.path.join(HERE, "..", "extension", "src", "templates", "template.json")) as f:
        template = json.load(f)
    fields = {"action": ue.choice("launch_flow_run"), "deployment": ue.choice("ok/ok"),
              "api_url": os.environ["UE_PREFECT_TEST_API_URL"], "wait": False}
    agent = ue.Agent(extension.Extension).start(fields)
    result = agent.wait(120)
    out["rc"], out["message"] = result.rc, result.message
    out["document"] = json.loads(result.unv_output)
    choice = ue.Agent(extension.Extension, template).choice("deployment", fields)
    out["choice"] = {"rc": choice.rc, "message": choice.message, "values": choice.values}
    out["binaries"] = sorted(os.path.join(d, n) for d in extension.binary_dirs() if os.path.isdir(d)
                             for n in os.listdir(d) if n.startswith("ue-prefect-"))
except BaseException:
    out["error"] = traceback.format_exc()
print(json.dumps(out))
