"""Shared fixtures: one local Ray cluster per test session, a local S3 server, paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"

# Ray Train's own knobs, for a suite of some forty tiny training runs (set before any cluster starts,
# so that the in-process runs, the CLI's subprocesses and the clusters they start all get them): the
# controller polls its workers every 0.25 s instead of every 2 s, so a run is seen to end sooner, and
# no preemption watcher is started (one process less a run; nothing preempts a local cluster).
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25")
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")


# The longest files first, so that the two test processes finish together: pytest-xdist hands out
# files (--dist loadfile) in this order. The rest keep their collection order.
# Measured 2026-12-06 with two processes: student ~630 s, pipeline ~570, sweep ~410, benches ~330,
# operations ~230, experiment ~190, generate ~150, serve chat ~90, serve ~80, generate batch ~40.
LONGEST_FIRST = ("test_student.py", "test_pipeline.py", "test_sweep.py", "test_benches.py", "test_operations.py",
                 "test_experiment.py", "test_generate.py", "test_serve_chat.py", "test_serve.py", "test_generate_batch.py")  # fmt: skip


def pytest_collection_modifyitems(items: list) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def bigbench_dir() -> Path:
    """The BIG-bench files the package ships (task.bigbench_dir's default)."""
    from rt_ray.config import SHIPPED_BIGBENCH

    return SHIPPED_BIGBENCH


S3_BUCKET = "rt-ray-it"
S3_SECRET = "rt-ray-test-secret-key"  # what must never show up in a log, MLflow or a checkpoint


@pytest.fixture(scope="session")
def s3_bucket(tmp_path_factory) -> str:
    """``s3://rt-ray-it`` on a local S3-compatible server (moto's standalone server: real HTTP, no patched
    client). Its endpoint and credentials go into this session's environment before the Ray cluster
    starts, so every Ray worker finds them where a cluster node's environment would hold them."""
    import pyarrow.fs as pafs

    from rt_ray.simulator import free_port
    from tests.processes import wait_for

    port, root = free_port(), tmp_path_factory.mktemp("s3")
    endpoint = f"http://127.0.0.1:{port}"
    with open(root / "moto.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="rt-ray-test", AWS_SECRET_ACCESS_KEY=S3_SECRET,
                      AWS_DEFAULT_REGION="us-east-1", RT_RAY_STAGING_DIR=str(root / "staging"))  # fmt: skip
    try:
        wait_for(f"{endpoint}/moto-api/", 60, "the local S3 server")
        pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True).create_dir(S3_BUCKET)
        yield f"s3://{S3_BUCKET}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="session")
def ray_cluster(s3_bucket):
    """One local Ray cluster for the whole session; subprocess drivers join it through RAY_ADDRESS.
    It starts after the S3 server, whose endpoint and credentials its workers inherit."""
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # "local": a cluster of its own, even while a `ray start` head (test_operations) runs beside it.
    context = ray.init(address="local", num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    os.environ["RAY_ADDRESS"] = context.address_info["gcs_address"]
    yield context
    os.environ.pop("RAY_ADDRESS", None)
    ray.shutdown()
