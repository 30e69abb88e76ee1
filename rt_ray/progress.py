"""Progress the user sees: rich bars in the driver.

    with bar("evaluating ft_cot", total=150) as task:
        task.advance(32)

The driver's own loops (teacher, evaluation, the sweep's trials) update bars directly. Training runs
in Ray Train workers, on other processes and nodes: rank 0 posts its step, loss and tokens/s to a
``ProgressBoard`` actor (fire and forget), and a driver thread copies the board onto the bars.
All bars share one rich ``Progress``, since rich allows one live display at a time; on a terminal
they redraw in place, elsewhere (a job's log, a pipe) each bar prints its final state once, and
``say`` lines mark the milestones.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column

from rt_ray.console import current, status

logger = logging.getLogger(__name__)


class Bar:
    def __init__(self, progress: Progress, task_id):
        self._progress, self._id = progress, task_id

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._id, amount)

    def update(self, completed: float | None = None, total: float | None = None, detail: str | None = None,
               description: str | None = None) -> None:  # fmt: skip
        fields = {"detail": detail} if detail is not None else {}
        self._progress.update(self._id, completed=completed, total=total, description=description, **fields)


def _columns() -> tuple:
    # Where the line is too narrow, the detail folds onto a second line; the counts never shrink to "350/…".
    return (TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)), BarColumn(bar_width=10),
            MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=13)), TextColumn("eta"),
            TimeRemainingColumn(compact=True), TextColumn("{task.fields[detail]}", table_column=Column(overflow="fold")))  # fmt: skip


@contextmanager
def bar(description: str, total: float | None, detail: str = "") -> Iterator[Bar]:
    """A bar on the command's shared display, started with the first bar and stopped with the last."""
    session = current()
    with session.lock:
        if session.progress is None:
            # No redirect: on a terminal rich would otherwise route sys.stdout/sys.stderr (Ray's relayed
            # worker lines among them) through the display, past the log file.
            session.progress = Progress(*_columns(), console=status(), transient=False, redirect_stdout=False, redirect_stderr=False)
            session.progress.start()
        session.open_bars += 1
        progress = session.progress
        task_id = progress.add_task(description, total=total, detail=detail)
    try:
        yield Bar(progress, task_id)
    finally:
        with session.lock:
            session.open_bars -= 1
            if session.open_bars == 0:
                progress.stop()
                session.progress = None


def say(line: str) -> None:
    """One line above the bars (or plainly, when none is shown)."""
    session = current()
    with session.lock:
        (session.progress.console if session.progress is not None else status()).print(line, soft_wrap=True)


def training_detail(entry: dict) -> str:
    """``loss 0.412 · 8.1k tok/s`` from what rank 0 posted."""
    parts = []
    if entry.get("loss") is not None:
        parts.append(f"loss {entry['loss']:.3f}")
    if entry.get("tokens_per_s"):
        parts.append(f"{entry['tokens_per_s'] / 1000:.1f}k tok/s")
    if entry.get("phase") and entry["phase"] != "training":
        parts.append(entry["phase"])
    return " · ".join(parts)


class ProgressBoard:
    """Where training workers post progress for the driver's bars: key -> latest fields. Rank 0 of each
    worker group also registers its group here (placement group and its own actor), so the driver
    can free the group of a run it stops (``rt_ray.sweep.tuner.free_worker_groups``)."""

    def __init__(self) -> None:
        self._entries: dict[str, dict] = {}
        self._groups: dict[str, list[tuple[str, object]]] = {}

    def post(self, key: str, fields: dict) -> None:
        self._entries.setdefault(key, {}).update(fields)

    def read(self) -> dict[str, dict]:
        return self._entries

    def register_group(self, key: str, placement_group_id: str, worker) -> None:
        self._groups.setdefault(key, []).append((placement_group_id, worker))

    def groups(self, key: str) -> list[tuple[str, object]]:
        return self._groups.get(key, [])


def new_board():
    """A ``ProgressBoard`` actor owned by this driver; its handle travels in worker configs."""
    import ray

    return ray.remote(num_cpus=0)(ProgressBoard).remote()


def post_progress(target: dict | None, **fields) -> None:
    """From a worker: post to the board named in its config (``{"board", "key"}``), never waiting."""
    if target:
        target["board"].post.remote(target["key"], fields)


def register_worker_group(target: dict | None) -> None:
    """From rank 0: register this worker group's placement group and rank 0's own actor on the board."""
    import ray

    group = ray.util.get_current_placement_group()
    if target and group is not None:
        target["board"].register_group.remote(target["key"], group.id.hex(), ray.get_runtime_context().current_actor)


@contextmanager
def watch_board(board, on_done: Callable[[str, dict], None] | None = None, period_s: float = 0.5) -> Iterator[None]:
    """While the block runs, show one bar per key posted on ``board`` (step of max_steps), and call
    ``on_done(key, entry)`` once for each key whose phase becomes "done"."""
    import ray

    bars: dict[str, tuple] = {}
    done: set[str] = set()
    stop = threading.Event()
    sync_lock = threading.Lock()

    def sync() -> None:
        try:
            entries = ray.get(board.read.remote(), timeout=10)
        except Exception as error:  # noqa: BLE001 - a missed refresh (a busy or restarting board) is not worth failing the run for
            logger.info("progress board not read this time: %s: %s", type(error).__name__, error)
            return
        with sync_lock:
            for key, entry in entries.items():
                if key not in bars:
                    context = bar(key, entry.get("max_steps"))
                    bars[key] = (context, context.__enter__())
                bars[key][1].update(completed=entry.get("step", 0), total=entry.get("max_steps"), detail=training_detail(entry))
                if entry.get("phase") == "done" and key not in done:
                    done.add(key)
                    if on_done is not None:
                        on_done(key, entry)

    def loop() -> None:
        while not stop.wait(period_s):
            sync()

    thread = threading.Thread(target=loop, name="rt-ray-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        sync()
        for context, _ in bars.values():
            context.__exit__(None, None, None)
