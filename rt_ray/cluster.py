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
    # A local cluster on a small machine does not need the dashboard's processes.
    ray.init(address=cfg.address, **({"include_dashboard": False} if starts_local else {}))
