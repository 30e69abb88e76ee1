"""Shared fixtures: one local Ray cluster per test session, the teacher simulator, paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_BIGBENCH = (REPO.parent / "shared" / "data" / "bigbench").resolve()
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def bigbench_dir() -> Path:
    if not SHARED_BIGBENCH.is_dir():
        pytest.skip(f"BIG-bench files not found at {SHARED_BIGBENCH}")
    return SHARED_BIGBENCH


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole session; subprocess drivers join it through RAY_ADDRESS."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # "local": a cluster of its own, even while a `ray start` head (test_operations) runs beside it.
    context = ray.init(address="local", num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    os.environ["RAY_ADDRESS"] = context.address_info["gcs_address"]
    yield context
    os.environ.pop("RAY_ADDRESS", None)
    ray.shutdown()
