"""Process supervisor used by the Go test rig (tests/rig/proc.go).

    python -S supervise.py MARKER RMDIR CMD [ARGS...]

Runs CMD as a child and makes sure nothing it spawned outlives the rig:

* Every process the rig starts carries the environment entry MARKER
  (UE_PREFECT_RIG=<token>), which is inherited by all descendants, including
  the flow-run processes Prefect's runner starts in their own sessions, which
  a process-group kill would miss.
* stdin is a pipe whose write end only the Go test binary holds. EOF means the
  test binary died (e.g. `go test -timeout` panic or SIGKILL): terminate
  everything carrying MARKER and remove RMDIR (the launch's temp PREFECT_HOME;
  "" for none), since the test binary cannot clean up any more.
* SIGTERM/SIGINT (the Go side signals the whole process group): give the child
  up to 8 s to exit, then SIGKILL every process still carrying MARKER.
"""
import os
import signal
import subprocess
import sys
import threading
import time

marker = sys.argv[1].encode()
rmdir = sys.argv[2]
child = subprocess.Popen(sys.argv[3:], stdin=subprocess.DEVNULL)
stopping = threading.Event()


def sweep(sig):
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if marker in env:
            try:
                os.kill(int(name), sig)
            except OSError:
                pass


def shutdown(grace, remove=False):
    stopping.set()
    sweep(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sweep(signal.SIGKILL)
    try:
        child.wait(2)
    except subprocess.TimeoutExpired:
        pass
    if remove and rmdir:
        import shutil

        shutil.rmtree(rmdir, ignore_errors=True)
    os._exit(child.returncode if child.returncode is not None else 137)


def on_signal(signum, frame):
    threading.Thread(target=shutdown, args=(8.0,), daemon=True).start()


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def watch_stdin():
    try:
        while os.read(0, 1024):
            pass
    except OSError:
        pass
    if not stopping.is_set():
        shutdown(5.0, remove=True)


threading.Thread(target=watch_stdin, daemon=True).start()

while True:
    rc = child.poll()
    if rc is not None and not stopping.is_set():
        stopping.set()
        sweep(signal.SIGKILL)  # stragglers, e.g. orphaned flow-run processes
        os._exit(rc if rc >= 0 else 128 - rc)
    time.sleep(0.1)
