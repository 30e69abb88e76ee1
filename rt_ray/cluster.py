"""Joining or starting the Ray cluster a stage runs on."""

from __future__ import annotations

import math
import os

import ray

from rt_ray.config import RayConfig


def ensure_ray(cfg: RayConfig) -> None:
    """A local cluster by default (or the one RAY_ADDRESS names); ``ray.address: auto`` joins a running one."""
    if ray.is_initialized():
        return
    starts_local = cfg.address is None and not os.environ.get("RAY_ADDRESS")
    if starts_local:
        # "local": a new cluster as documented, never a `ray start` head that happens to run (or to
        # have run: its address file outlives a killed head) on this machine; that is `ray.address: auto`.
        # A local cluster on a small machine does not need the dashboard's processes.
        ray.init(address="local", include_dashboard=False)
    else:
        ray.init(address=cfg.address)


def configure_ray_data() -> None:
    """Ray Data as rt-ray's stages run it: no progress bars of its own (rt-ray draws its own), and a
    map's error raised as it is rather than as Ray Data's UserCodeException, whose cause does not
    cross to the driver: the command's one line then names the real error, and a user's mistake
    raised in a map (rt_ray.errors.UserError) is still known by its type."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.raise_original_map_exception = True


def dataset_from_table(table, blocks: int, first_blocks: int | None = None):
    """An Arrow table as a Ray Data dataset of ``blocks`` blocks, the first ``first_blocks`` (default: all)
    cut here in the driver and the rest split by Ray Data's repartition.

    from_blocks, not from_arrow: from_arrow reads the table's metadata in a Ray task of 1 CPU, which
    on a new cluster waits ~1.3 s for a worker process and inside a sweep trial (a placement group
    of 0 CPUs that captures its child tasks) never runs; so does a repartition, hence all blocks cut
    here there. A put costs 1-2 ms a block (10 s for 6,250 blocks), so a large teacher run cuts only
    what fills its callers and lets the repartition, in a task, split the rest while they work."""
    per_block = max(1, math.ceil(table.num_rows / max(1, blocks)))
    head_rows = table.num_rows if first_blocks is None else min(table.num_rows, first_blocks * per_block)
    head = [table.slice(start, per_block) for start in range(0, head_rows, per_block)]
    if head_rows == table.num_rows:
        return ray.data.from_blocks(head or [table])
    rest = ray.data.from_blocks([table.slice(head_rows)]).repartition(blocks - len(head))
    return ray.data.from_blocks(head).union(rest)
