"""What a command leaves running, and interrupting a command the way Ctrl-C does."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx
import psutil

# Process command lines that belong to an rt-ray run: a Ray cluster, its workers, Serve, the simulator.
RUN_MARKERS = ("raylet", "gcs_server", "ray::", "default_worker.py", "teacher-sim", "rt_ray.cli", "log_monitor.py",
               "dashboard", "runtime_env_agent", "monitor.py")  # fmt: skip


def _session_roots() -> set[int]:
    """This test process, and under pytest-xdist the controller whose other workers run beside it."""
    return {os.getpid(), os.getppid()} if os.environ.get("PYTEST_XDIST_WORKER") else {os.getpid()}


def _descends_from(process: psutil.Process, roots: set[int]) -> bool:
    return any(parent.pid in roots for parent in process.parents())


def _ours(process: psutil.Process) -> bool:
    """Started by this test session (its own Ray clusters included), not left behind by a command: a
    command's leftovers outlive their parent and are adopted by init."""
    try:
        return _descends_from(process, _session_roots())
    except psutil.Error:
        return True


def own_processes(marker: str) -> list[psutil.Process]:
    """Processes whose command line holds ``marker`` that this test process started, itself or through a
    cluster it runs: never those of a test running beside it in another pytest-xdist worker."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(process.info["cmdline"] or []) and _descends_from(process, {os.getpid()}):
                found.append(process)
        except psutil.Error:
            continue
    return found


def leftover_processes(before: set[int], wait_s: float = 30.0) -> list[str]:
    """Run processes that appeared after ``before`` and outlive the command by ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if process.pid not in before and any(m in cmdline for m in RUN_MARKERS) and not _ours(process):
                left.append(f"{process.pid}: {cmdline[:200]}")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1)


def pids() -> set[int]:
    return set(psutil.pids())


def start_cli(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """``rt-ray ARGS`` with its console (stdout and stderr) in ``log``, as a user's terminal would show it."""
    handle = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "rt_ray.cli", *args], stdout=handle, stderr=subprocess.STDOUT,
                            env=env if env is not None else dict(os.environ))  # fmt: skip


def interrupt_when(process: subprocess.Popen, ready: Callable[[], bool], timeout_s: float = 600, settle_s: float = 0.0) -> int:
    """SIGINT (Ctrl-C) once ``ready()`` holds (and ``settle_s`` later); returns the exit code."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None, "the command ended before it could be interrupted"
        assert time.monotonic() < deadline, "the command never reached the point to interrupt"
        time.sleep(0.5)
    time.sleep(settle_s)
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=180)


def resume_args(console: str) -> list[str]:
    """The arguments of the ``rt-ray ...`` command that an interrupted command printed."""
    line = " ".join(console.split()).split("resume with: ", 1)[1]
    words = shlex.split(line.split(" (full log:", 1)[0])
    assert words[0] == "rt-ray", words
    return words[1:]


BIN = Path(sys.executable).parent


def wait_for(url: str, timeout_s: float, what: str, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{what} did not come up at {url} within {timeout_s:.0f} s")


# Ray 2.59+ turns token authentication on for local clusters; the head and every client of it
# (`ray job submit`, `serve deploy`) share one token, as on a real cluster.
HEAD_TOKEN = secrets.token_hex(32)


def outside_env() -> dict:
    """The environment of a user's shell: not joined to the test session's own Ray cluster, not
    pointed at a store of the session's (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI), and
    holding the `ray start` head's token."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": HEAD_TOKEN}


def stop_group(process: subprocess.Popen, term_wait_s: float = 20) -> None:
    for sig, wait_s in ((signal.SIGTERM, term_wait_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(wait_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
