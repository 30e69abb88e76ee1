"""The sweep stage on a local Ray cluster: Ray Tune trials that each run Ray Train + DeepSpeed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rt_ray.config import parse_config
from rt_ray.sweep.tuner import run_sweep
from rt_ray.teacher.simulator import SimulatorProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def sweep_tree(ray_cluster, tmp_path):
    with SimulatorProcess(latency_s=0.01, wrong_rate=0.1) as sim:
        yield {
            "run_name": "sweep-it",
            "task": {"name": "coin_flip", "num_examples": 80, "num_items": 3},
            "teacher": {"base_url": sim.base_url, "cache_dir": str(tmp_path / "cache")},
            "generation": {"output_dir": str(tmp_path / "teacher")},
            "student": {"tiny_hidden": 32, "tiny_layers": 2, "tiny_heads": 2, "tiny_vocab": 300, "max_length": 160,
                        "max_new_tokens": 48, "eval_replicas": 1, "registered_name": "sweep-it"},
            "train": {"num_workers": 2, "batch_size": 4, "max_steps": 12, "checkpoint_every_steps": 100, "lr": 0.003},
            "sweep": {"degrees": [1, 2], "validation_size": 10, "output_dir": str(tmp_path / "sweep")},
            "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "sweep-it"},
        }  # fmt: skip


def child_runs(tree: dict, parent_run_id: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tree["tracking"]["tracking_uri"])
    experiment = client.get_experiment_by_name(tree["tracking"]["experiment"])
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")


def test_sweep_makes_nested_runs_a_plot_and_a_champion(sweep_tree):
    outcome = run_sweep(parse_config(sweep_tree))
    assert sorted(t["params"]["degree"] for t in outcome["trials"]) == [1, 2]
    children = child_runs(sweep_tree, outcome["parent_run_id"])
    assert sorted(int(r.data.metrics["degree"]) for r in children) == [1, 2]
    for run in children:
        assert "validation_accuracy" in run.data.metrics and run.data.params["task.name"] == "coin_flip"
    assert Path(outcome["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=sweep_tree["tracking"]["tracking_uri"])
    champion = client.get_model_version_by_alias("sweep-it", "champion")
    best = outcome["trials"][0]
    assert champion.run_id == best["mlflow_run_id"]
    assert best["validation_accuracy"] == max(t["validation_accuracy"] for t in outcome["trials"])


def test_a_sweep_killed_after_its_first_trial_resumes_only_the_rest(sweep_tree, tmp_path):
    sweep_tree["sweep"]["degrees"] = [1, 2, 4]
    path = tmp_path / "sweep.yaml"
    path.write_text("# test\n" + yaml.safe_dump(sweep_tree))
    process = subprocess.Popen([sys.executable, "-m", "rt_ray.cli", "sweep", "-c", str(path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    state_dir = tmp_path / "sweep" / "tune" / "sweep"
    deadline = time.monotonic() + 600

    def finished_trials() -> int:
        count = 0
        for state in state_dir.glob("experiment_state-*.json"):
            count = max(count, state.read_text().count("TERMINATED"))
        return count

    while finished_trials() < 1:
        assert process.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(3)
    parent = json.loads((tmp_path / "sweep" / "sweep_state.json").read_text())["parent_run_id"]
    done_before = [int(r.data.metrics["degree"]) for r in child_runs(sweep_tree, parent) if "validation_accuracy" in r.data.metrics]
    assert len(done_before) >= 1

    run = subprocess.run([sys.executable, "-m", "rt_ray.cli", "sweep", "-c", str(path), "--resume"],
                         capture_output=True, text=True, timeout=900, env=os.environ.copy())  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    trained = [r for r in child_runs(sweep_tree, parent) if r.data.tags.get("rt_ray.stage") == "train"]
    finished = [r for r in trained if "validation_accuracy" in r.data.metrics]
    assert sorted(int(r.data.metrics["degree"]) for r in finished) == [1, 2, 4]
    degrees_trained = [int(r.data.metrics["degree"]) for r in trained]
    for degree in done_before:
        assert degrees_trained.count(degree) == 1, f"finished trial D={degree} was not rerun: {degrees_trained}"
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert len(results) == 3
