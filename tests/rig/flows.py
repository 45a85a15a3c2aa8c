"""Test flows for the ue-prefect end-to-end rig (tests/rig).

Run as ``.venv/bin/python tests/rig/flows.py`` with ``PREFECT_API_URL`` pointing
at a Prefect server (``http://127.0.0.1:PORT/api``). One process serves every
deployment below with ``prefect.serve``; once all of them can be read back
through the REST API the script prints ``READY`` on stdout and keeps serving
until SIGTERM/SIGINT.

Deployments (``flow/deployment``):

  ok/ok              sleeps ``seconds`` (default 0) and returns a small dict -> COMPLETED
  fail/fail          raises ValueError("boom"), no retries                  -> FAILED
  crash/crash        os._exit(3)                                             -> CRASHED
  sleepy/sleepy      sleeps ``seconds`` (default 600); for long runs and cancellation
  pause/pause        pause_flow_run(timeout=600), then returns "resumed"     -> PAUSED
  typed/typed        count: int, flag: bool = False, label: str = "x"; schema enforced
  typed/typed-lax    the same flow, schema not enforced (Prefect 2's serve default)
  alpha/shared       } bare name "shared" is ambiguous
  beta/shared        }
  alpha/alpha-only   unique bare name
  demo/demo          logs a few lines over ~3 s and returns a greeting (``make demo``)
  blocky/blocky      not served; ``creds: RigCreds`` whose deployment default is a block
                     reference ``{"$ref": {"block_document_id": ...}}``; schema enforced
  flaky/flaky        fails its first attempt at once, waits ``retry_delay_seconds`` (40) in
                     AwaitingRetry (a SCHEDULED state), then completes  -> COMPLETED, run_count 2

Environment worth setting (the Go rig sets all of these):

  PREFECT_API_URL               required; without it Prefect starts an ephemeral server
  PREFECT_API_AUTH_STRING       "user:pass" when the server uses basic auth
  PREFECT_RUNNER_POLL_FREQUENCY 1 (default 10 s) so runs are picked up within ~1 s
  PREFECT_RUNNER_PROCESS_LIMIT  20 (default 5)

Keep module-level imports minimal: every flow run starts ``python -m
prefect.engine``, which imports this file again to find the flow function.
"""

import os
import time

from prefect import flow, get_run_logger, pause_flow_run
from prefect.blocks.core import Block


@flow(name="ok")
def ok(seconds: float = 0) -> dict:
    if seconds:
        time.sleep(seconds)
    return {"ok": True, "seconds": seconds}


@flow(name="fail", retries=0)
def fail() -> None:
    raise ValueError("boom")


@flow(name="crash")
def crash() -> None:
    os._exit(3)


@flow(name="sleepy")
def sleepy(seconds: float = 600) -> str:
    time.sleep(seconds)
    return "slept"


@flow(name="pause")
def pause() -> str:
    pause_flow_run(timeout=600)
    return "resumed"


@flow(name="typed")
def typed(count: int, flag: bool = False, label: str = "x") -> dict:
    return {"count": count, "flag": flag, "label": label}


@flow(name="alpha")
def alpha() -> str:
    return "alpha"


@flow(name="beta")
def beta() -> str:
    return "beta"


@flow(name="demo")
def demo(name: str = "world") -> str:
    logger = get_run_logger()
    logger.info("demo flow starting for %s", name)
    for i in range(1, 4):
        time.sleep(1)
        logger.info("working... step %d/3", i)
    greeting = f"Hello, {name}!"
    logger.info("done: %s", greeting)
    return greeting


@flow(name="flaky", retries=1, retry_delay_seconds=40)
def flaky() -> str:
    # The first attempt fails at once, so the run spends the retry delay in
    # AwaitingRetry (state type SCHEDULED) having already run.
    from prefect.runtime import flow_run

    if flow_run.run_count < 2:
        raise RuntimeError("first attempt fails; the retry succeeds")
    return "retried"


@flow(name="idle")
def idle(note: str = "x") -> str:
    return "never runs"


class RigCreds(Block):
    """A block type for blocky; main() saves one document of it."""

    user: str


@flow(name="blocky")
def blocky(creds: RigCreds, note: str = "x") -> str:
    return "never runs"


# Registered but not served: nothing ever picks its runs up, so tests that
# only launch (and never wait) cost no flow-run process. Its deployment has
# default parameters and tags, which Prefect merges into each run it creates.
UNSERVED = [(idle, "idle", {"parameters": {"note": "rig-default"}, "tags": ["rig"]})]

# (flow, deployment name, extra to_deployment kwargs)
DEPLOYMENTS = [
    (ok, "ok", {}),
    (fail, "fail", {}),
    (crash, "crash", {}),
    (sleepy, "sleepy", {}),
    (pause, "pause", {}),
    (typed, "typed", {"enforce_parameter_schema": True}),
    (typed, "typed-lax", {"enforce_parameter_schema": False}),
    (alpha, "shared", {}),
    (beta, "shared", {}),
    (alpha, "alpha-only", {}),
    (demo, "demo", {}),
    (flaky, "flaky", {}),
]


def _wait_ready(stop_event, timeout: float = 120.0) -> None:
    """Poll the API until every deployment is readable, then print READY."""
    import base64
    import json
    import sys
    import urllib.error
    import urllib.parse
    import urllib.request

    api = os.environ["PREFECT_API_URL"].rstrip("/")
    headers = {"Accept": "application/json"}
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    pending = {(f.name, d) for f, d, _ in DEPLOYMENTS + UNSERVED}
    deadline = time.monotonic() + timeout
    while pending and not stop_event.is_set():
        for flow_name, dep in sorted(pending):
            url = "{}/deployments/name/{}/{}".format(
                api, urllib.parse.quote(flow_name, safe=""), urllib.parse.quote(dep, safe="")
            )
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
                    if r.status == 200 and json.load(r).get("id"):
                        pending.discard((flow_name, dep))
            except (urllib.error.URLError, OSError, ValueError):
                pass
        if pending:
            if time.monotonic() > deadline:
                print(f"flows.py: deployments not visible after {timeout}s: {sorted(pending)}", file=sys.stderr, flush=True)
                os._exit(2)
            time.sleep(0.25)
    if not pending:
        print("READY", flush=True)


def main() -> None:
    import threading

    from prefect import serve

    if not os.environ.get("PREFECT_API_URL"):
        raise SystemExit("flows.py: PREFECT_API_URL must be set")
    os.environ.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "1")

    # A deployment whose default parameter is a block reference, as the UI
    # and `prefect deploy` write it; Prefect 3 accepts it on create.
    doc_id = RigCreds(user="rig").save("rig-creds", overwrite=True)
    creds_ref = {"creds": {"$ref": {"block_document_id": str(doc_id)}}}
    UNSERVED.append((blocky, "blocky", {"parameters": creds_ref, "enforce_parameter_schema": True}))

    for f, d, kw in UNSERVED:
        f.to_deployment(name=d, **kw).apply()

    stop = threading.Event()
    threading.Thread(target=_wait_ready, args=(stop,), daemon=True).start()
    try:
        serve(
            *[f.to_deployment(name=d, **kw) for f, d, kw in DEPLOYMENTS],
            pause_on_shutdown=False,
            print_starting_message=False,
            limit=50,
        )
    finally:
        stop.set()


if __name__ == "__main__":
    main()
