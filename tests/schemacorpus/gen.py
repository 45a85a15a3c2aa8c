"""Generate the parameter-schema corpus for plugin/flowrun's differential test.

Run from the repository root, with the project's two venvs (tests/rig/venv.sh):

    .venv/bin/python tests/schemacorpus/gen.py

It writes plugin/flowrun/testdata/paramschema-corpus/*.json, one file per
Prefect flavour:

  prefect-3.9.1.json              Prefect 3.9.1, pydantic 2 models
  prefect-2.20.27-pydantic1.json  Prefect 2.20.27 with pydantic 1 schemas, as a
                                  Prefect 2 client on pydantic 1 registers them
                                  (.venv-prefect2 has pydantic 2, whose pydantic.v1
                                  is pydantic 1.10; the flows use pydantic.v1 models
                                  and Prefect's HAS_PYDANTIC_V2 is set False, the
                                  path a pydantic 1 install takes)
  prefect-2.20.27-pydantic2.json  Prefect 2.20.27 on pydantic 2, as pip installs it
                                  today (pydantic 2 models; a signature with a
                                  Block still takes Prefect 2's pydantic 1 path)

Every schema is Prefect's own: the `parameters` of a real @flow (what
prefect.utilities.callables.parameter_schema returns), dumped as the client
sends it as the deployment's parameter_openapi_schema. Every verdict is
Prefect's own server-side logic, as create_flow_run_from_deployment
(prefect/server/api/deployments.py) applies it to an enforcing deployment:

    dehydrated = deployment.parameters; dehydrated.update(run parameters)
    ctx = HydrationContext(workspace variables, raise_on_error, render_jinja,
                           render_workspace_variables)
    parameters = hydrate(dehydrated, ctx)           # HydrationError -> 400
    validate(parameters, schema, raise_on_error=True)  # ValidationError -> 409

A Prefect 2 schema is judged by both servers (2.20.27 and 3.9.1): a Prefect 2
deployment keeps its schema when its server is upgraded. The Go test
(plugin/flowrun/paramschema_corpus_test.go) asserts that the plugin rejects no
case that any recorded server accepts.

Worker modes, run by the driver in each venv: `gen.py schemas FLAVOUR` prints
the flows, schemas and cases; `gen.py judge` reads cases on stdin and prints
the verdicts of the Prefect it runs under.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "plugin", "flowrun", "testdata", "paramschema-corpus")
COMMAND = ".venv/bin/python tests/schemacorpus/gen.py"


def _versions():
    import importlib.metadata as md

    return {p: md.version(p) for p in ("prefect", "pydantic", "jsonschema")}


def emit_schemas(flavour):
    """Print the corpus (without verdicts) for flavour under this Prefect."""
    import prefect

    if flavour == "pydantic1":
        # What a Prefect 2 install on pydantic 1 does: every signature goes
        # through the pydantic 1 schema path (pydantic.v1 is pydantic 1.10).
        import prefect.utilities.callables as callables

        callables.HAS_PYDANTIC_V2 = False
        import pydantic.v1 as pyd
    else:
        import pydantic as pyd
    sys.path.insert(0, HERE)
    import flows as corpus_flows

    built = corpus_flows.build(pyd)
    out = []
    for fl, cases in built:
        ps = fl.parameters
        if prefect.__version__.startswith("2."):
            schema = ps.dict()  # RunnerDeployment: self._parameter_openapi_schema.dict()
        else:
            schema = ps.model_dump(exclude_unset=True)  # RunnerDeployment.apply
        import inspect

        schema = json.loads(json.dumps(schema, default=str))
        # Each schema against its own defaults, as a deployment whose
        # parameters are what the flow's signature says: the check must
        # never refuse what Prefect accepts there.
        own = {k: p["default"] for k, p in schema.get("properties", {}).items() if "default" in p}
        cases = list(cases) + [("the schema's own defaults", own, {})]
        out.append(
            {
                "flow": fl.name,
                "signature": "def %s%s" % (fl.fn.__name__, inspect.signature(fl.fn)),
                "schema": schema,
                "cases": [{"name": n, "defaults": d, "parameters": p} for n, d, p in cases],
            }
        )
    v = _versions()
    pydantic = v["pydantic"]
    if flavour == "pydantic1":
        pydantic = "%s (pydantic.v1 of pydantic %s)" % (pyd.VERSION, v["pydantic"])
    json.dump({"prefect": v["prefect"], "pydantic": pydantic, "flavour": flavour, "flows": out}, sys.stdout)


def judge_one(schema, defaults, parameters, variables):
    """Prefect's verdict on creating a run, as the server reaches it."""
    from prefect.utilities.schema_tools import (
        CircularSchemaRefError,
        HydrationContext,
        HydrationError,
        ValidationError,
        hydrate,
        validate,
    )

    dehydrated = json.loads(json.dumps(defaults))
    dehydrated.update(json.loads(json.dumps(parameters)) or {})
    try:
        ctx = HydrationContext(
            workspace_variables=variables,
            raise_on_error=True,
            render_jinja=True,
            render_workspace_variables=True,
        )
        hydrated = hydrate(dehydrated, ctx)
    except HydrationError as exc:
        return {"accepted": False, "status": 400, "detail": "Error hydrating flow run parameters: %s" % exc}
    import jsonschema

    try:
        validate(hydrated, schema, raise_on_error=True)
    except jsonschema.SchemaError as exc:
        # Not caught by create_flow_run: the server answers 500.
        return {"accepted": False, "status": 500, "detail": "Internal Server Error (SchemaError: %s)" % exc.message}
    except ValidationError as exc:
        return {"accepted": False, "status": 409, "detail": "Error creating flow run: %s" % exc}
    except CircularSchemaRefError:
        return {"accepted": False, "status": 422, "detail": "Invalid schema: Unable to validate schema with circular references."}
    return {"accepted": True, "status": 201}


def judge():
    """Read {"flows": [...]} on stdin; print the verdicts, one list per flow."""
    import prefect

    sys.path.insert(0, HERE)
    import flows as corpus_flows

    variables = corpus_flows.VARIABLES
    if prefect.__version__.startswith("2."):
        # Prefect 2 workspace variables hold strings.
        variables = {k: v if isinstance(v, str) else json.dumps(v) for k, v in variables.items()}
    doc = json.load(sys.stdin)
    server = "prefect " + prefect.__version__
    verdicts = []
    for fl in doc["flows"]:
        verdicts.append([dict(judge_one(fl["schema"], c["defaults"], c["parameters"], variables), server=server) for c in fl["cases"]])
    json.dump({"server": server, "variables": variables, "verdicts": verdicts}, sys.stdout)


def run(python, *args, stdin=None):
    env = dict(os.environ, PREFECT_LOGGING_LEVEL="ERROR", PYTHONWARNINGS="ignore")
    env.pop("PREFECT_API_URL", None)
    res = subprocess.run(
        [python, os.path.abspath(__file__), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    if res.returncode != 0:
        sys.exit("%s %s failed:\n%s" % (python, " ".join(args), res.stderr))
    return json.loads(res.stdout)


def main():
    py3 = os.path.join(ROOT, ".venv", "bin", "python")
    py2 = os.path.join(ROOT, ".venv-prefect2", "bin", "python")
    os.makedirs(OUT, exist_ok=True)
    plan = [
        ("prefect-3.9.1.json", py3, "pydantic2", [py3]),
        ("prefect-2.20.27-pydantic1.json", py2, "pydantic1", [py2, py3]),
        ("prefect-2.20.27-pydantic2.json", py2, "pydantic2", [py2, py3]),
    ]
    total = 0
    for fname, py, flavour, judges in plan:
        doc = run(py, "schemas", flavour)
        variables = {}
        for jpy in judges:
            res = run(jpy, "judge", stdin=json.dumps(doc))
            variables[res["server"]] = res["variables"]
            for fl, vs in zip(doc["flows"], res["verdicts"]):
                for c, v in zip(fl["cases"], vs):
                    c.setdefault("verdicts", []).append(v)
        n = sum(len(fl["cases"]) for fl in doc["flows"])
        acc = sum(1 for fl in doc["flows"] for c in fl["cases"] if all(v["accepted"] for v in c["verdicts"]))
        total += n
        header = {
            "generated_by": COMMAND,
            "about": "Schemas from Prefect's parameter_schema() on real flow signatures (tests/schemacorpus/flows.py); "
            "verdicts from prefect.utilities.schema_tools hydrate + validate as create_flow_run_from_deployment "
            "applies them to an enforcing deployment. Do not edit by hand; regenerate.",
            "prefect": doc["prefect"],
            "pydantic": doc["pydantic"],
            "flavour": flavour,
            "workspace_variables": variables,
            "flows": doc["flows"],
        }
        with open(os.path.join(OUT, fname), "w") as f:
            json.dump(header, f, indent=1, sort_keys=False)
            f.write("\n")
        print("%s: %d flows, %d cases, %d accepted by every server" % (fname, len(doc["flows"]), n, acc))
    print("total cases: %d" % total)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "schemas":
        emit_schemas(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "judge":
        judge()
    else:
        main()
