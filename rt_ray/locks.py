"""One writer per output folder: a run holds ``.rt_ray.lock`` in the folder it writes.

    with output_lock(cfg.generation.output_dir, "generation.output_dir"):
        ...   # a second run on this folder exits 2 with one line naming this one (host, pid)

A lock names its holder (host, pid, the process's start time, the command) and the holder touches it
every ``HEARTBEAT_S``. A later run takes the lock over when its holder is gone: on the same host, when
that process no longer runs; from another host (a shared filesystem), when the lock has not been
touched for ``STALE_S``. A run that already holds the lock (a pipeline whose stages write into the
same folder) goes on holding it. For an object-store output the lock is in its local staging folder,
so it keeps out a second run on the same node; two nodes writing one URI are not detected.

Not a library's file lock (filelock, fcntl): those locks vanish with their process on one host but
say nothing about who holds them, and are unreliable on the network filesystems a cluster shares.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rt_ray.errors import UserError

LOCK_FILE = ".rt_ray.lock"
HEARTBEAT_S = 15.0
STALE_S = 90.0


class OutputFolderBusy(UserError, RuntimeError):
    """Another live run writes the output folder this run was pointed at."""


def _started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if no such process runs."""
    import psutil  # Ray's own dependency

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return -1.0  # it runs; whose it is we may not ask


def holder_alive(holder: dict, touched_s_ago: float) -> bool:
    """Whether the run that wrote ``holder`` still runs, as far as this host can tell."""
    if holder.get("host") != socket.gethostname():
        return touched_s_ago < STALE_S
    started = _started(int(holder.get("pid", -1)))
    return started is not None and (started < 0 or abs(started - float(holder.get("started", 0))) < 1.0)


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _started(os.getpid()),
            "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(sys.argv[:3])}  # fmt: skip


def _read(path: Path) -> tuple[dict, float] | None:
    try:
        return json.loads(path.read_text() or "{}"), time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:  # written this instant by another run: it is alive
        return {"host": "?", "pid": "?"}, 0.0


def _create(path: Path, me: dict) -> bool:
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(me))
    return True


def acquire(folder: Path, key: str) -> bool:
    """Take the folder's lock; False when this process holds it already. Raises OutputFolderBusy."""
    folder.mkdir(parents=True, exist_ok=True)
    path, me = folder / LOCK_FILE, _me()
    for _ in range(5):
        if _create(path, me):
            return True
        found = _read(path)
        if found is None:
            continue  # released between our two looks
        holder, age = found
        if holder.get("host") == me["host"] and holder.get("pid") == me["pid"]:
            return False
        if holder_alive(holder, age):
            raise OutputFolderBusy(f"{key} {folder} is being written by another run (pid {holder.get('pid')} on "
                                   f"{holder.get('host')}, since {holder.get('since', '?')}: {holder.get('command', '?')}); "
                                   "wait for it to end or stop it (a lock a dead run left is taken over)")  # fmt: skip
        # A dead run's lock: move it aside under a name of our own, so two runs cannot both take it over.
        try:
            os.replace(path, folder / f"{LOCK_FILE}.dead-{me['pid']}")
            (folder / f"{LOCK_FILE}.dead-{me['pid']}").unlink()
        except FileNotFoundError:
            pass
    raise OutputFolderBusy(f"{key} {folder}: could not take its lock ({path}); another run keeps taking it")


@contextmanager
def output_lock(folder: str | Path, key: str) -> Iterator[None]:
    """Hold ``folder``'s lock for the block (``key`` names the config key, for the message)."""
    from rt_ray.storage import local_dir

    folder = local_dir(folder)
    if not acquire(folder, key):
        yield
        return
    path, stop = folder / LOCK_FILE, threading.Event()

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                os.utime(path)
            except FileNotFoundError:
                return

    beating = threading.Thread(target=heartbeat, name=f"rt-ray-lock {folder.name}", daemon=True)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        path.unlink(missing_ok=True)
