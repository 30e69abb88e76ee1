"""Joining or starting the Ray cluster a stage runs on."""

from __future__ import annotations

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
