"""`rt-ray pipeline` end to end on the session's Ray cluster: teacher, training, baselines, Serve,
sample queries and one report; a second run sends the teacher nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from rt_ray.teacher.simulator import SimulatorProcess, free_port
from tests.tiny import coin_flip_run

pytestmark = pytest.mark.integration


def pipeline_cli(config: Path, *overrides: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "rt_ray.cli", "pipeline", "-c", str(config)]
    for override in overrides:
        args += ["--set", override]
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=dict(os.environ))


def test_pipeline_runs_every_stage_reports_and_reuses_the_teacher_cache(ray_cluster, tmp_path):
    from mlflow.tracking import MlflowClient

    port = free_port()
    with SimulatorProcess(latency_s=0.01, wrong_rate=0.1) as sim:
        tree = coin_flip_run(
            tmp_path, sim.base_url, "pipe",
            train={"max_steps": 12, "checkpoint_every_steps": 6},
            serve={"port": port, "max_tokens_cap": 48},
            pipeline={"sweep": False, "sample_queries": 2, "output_dir": str(tmp_path / "pipeline")},
        )  # fmt: skip
        config = tmp_path / "pipe.yaml"
        config.write_text(yaml.safe_dump(tree))
        first = pipeline_cli(config)
        assert first.returncode == 0, first.stderr[-4000:]
        sent_first = len(sim.requests())
        second = pipeline_cli(config, "pipeline.baselines=false", "pipeline.deploy=false",
                              f"pipeline.output_dir={tmp_path / 'again'}")  # fmt: skip
        assert second.returncode == 0, second.stderr[-4000:]
        assert len(sim.requests()) == sent_first, "the rerun sent the teacher nothing"

    report = json.loads((tmp_path / "pipeline" / "report.json").read_text())
    assert report["teacher"]["requests_sent"] > 0 and report["teacher"]["rationales"] == 84
    methods = [row["method"] for row in report["accuracy"]]
    assert methods == ["teacher (train split)", "zero_shot", "vanilla", "champion (Fine-tune-CoT, D=2)"]
    assert all(isinstance(row["accuracy"], float) and row["n"] > 0 for row in report["accuracy"])
    assert report["endpoint"] == f"http://127.0.0.1:{port}" and len(report["samples"]) == 2
    assert all(set(s) == {"question", "rationale", "answer", "gold"} for s in report["samples"])
    assert "test accuracy on coin_flip" in first.stdout and "sample queries" in first.stdout
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # it took its deployment down

    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["teacher"]["requests_sent"] == 0 and again["teacher"]["cache_hits"] > 0
    client = MlflowClient(tracking_uri=tree["tracking"]["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("pipe").experiment_id], "tags.`rt_ray.stage` = 'pipeline'")
    assert len(runs) == 2 and {"champion_accuracy", "teacher_accuracy"} <= set(runs[-1].data.metrics)
