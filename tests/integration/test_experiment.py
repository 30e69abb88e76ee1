"""`rt-ray experiment`, reduced (one task, one seed, tiny sizes), end to end: every row and column of
the report is filled from real runs, each number is an MLflow child run, and a rerun redoes nothing;
its outputs go to a local S3 server. A teacher set deleted after its run is made again from the cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import yaml

from rt_ray.simulator import SimulatorProcess
from tests.tiny import coin_flip_run

pytestmark = pytest.mark.integration
METHODS = ["teacher", "zero_shot", "vanilla", "ft_cot_d1", "ft_cot_d2"]


def test_reduced_experiment_to_s3_fills_the_report_from_real_runs(ray_cluster, s3_bucket, tmp_path):
    from mlflow.tracking import MlflowClient

    from rt_ray.storage import remote_files

    out = f"{s3_bucket}/experiment-{tmp_path.name}"

    def stored(name: str) -> str:
        filesystem, path = pafs.FileSystem.from_uri(f"{out}/{name}")
        with filesystem.open_input_stream(path) as stream:
            return stream.read().decode()

    with SimulatorProcess(latency_s=0.01, wrong_rate=0.2) as sim:
        tree = coin_flip_run(
            tmp_path, sim.base_url, "mini",
            # the workers score 8 held-out training questions every 4 steps and stop on the first non-improvement
            train={"max_steps": 10, "checkpoint_every_steps": 10, "validation_size": 8, "validate_every_steps": 4,
                   "early_stopping_patience": 1},
            # one axis with two points: 12 and 24 of the 27 training questions left after validation
            experiment={"seeds": [3], "degrees": [1, 2], "train_sizes": [12, 24], "output_dir": out,
                        "tasks": {"coin": {"task.name": "coin_flip", "task.num_examples": 50, "task.num_items": 3}}},
        )  # fmt: skip
        config = tmp_path / "mini.yaml"
        config.write_text(yaml.safe_dump(tree))
        args = [sys.executable, "-m", "rt_ray.cli", "experiment", "-c", str(config)]
        first = subprocess.run(args, capture_output=True, text=True, timeout=900, env=dict(os.environ))
        assert first.returncode == 0, first.stderr[-4000:]
        requests = len(sim.requests())
        second = subprocess.run(args, capture_output=True, text=True, timeout=300, env=dict(os.environ))
        assert second.returncode == 0, second.stderr[-4000:]
        assert len(sim.requests()) == requests

    summary = json.loads(stored("summary.json"))
    assert list(summary) == ["coin"] and sorted(summary["coin"]) == sorted(METHODS)
    for method in METHODS:
        cell = summary["coin"][method]
        assert cell["runs"] == 1 and 0.0 <= cell["mean"] <= 1.0 and cell["std"] == 0.0
    records = [json.loads(line) for line in stored("runs.jsonl").splitlines()]
    assert len(records) == 8, "the rerun added no run"
    trained = [r for r in records if r["method"] in ("vanilla", "ft_cot_d1", "ft_cot_d2")]
    assert sorted((r["method"], r["train_size"], r["train_questions"]) for r in trained) == sorted(
        (m, n, n) for m in ("vanilla", "ft_cot_d1", "ft_cot_d2") for n in (12, 24))
    for method in ("ft_cot_d1", "ft_cot_d2"):  # the smaller point trains on fewer rationales
        small, large = (r for r in sorted(trained, key=lambda r: r["train_size"]) if r["method"] == method)
        assert small["train_samples"] < large["train_samples"]
    assert {r["seed"] for r in records if r["method"] != "teacher"} == {3}
    table = stored("results.md")
    assert "over 2 `rt-ray experiment` commands" in table and "made 0 runs and reused 8" in table, "the rerun's time adds up"
    for method in METHODS:
        (row,) = [line for line in table.splitlines() if line.startswith(f"| {method} |")]
        assert "—" not in row and "(1 run)" in row
    files = remote_files(out)
    assert files["accuracy_vs_degree.png"] > 10_000
    assert files["accuracy_vs_teacher_usd.png"] > 10_000 and files["accuracy_vs_train_size.png"] > 10_000
    found = json.loads(stored("findings.json"))["coin"]
    assert set(found) == {"ft_cot_over_vanilla", "diverse_over_d1", "student_over_teacher", "trend_degree", "trend_train_size"}
    for name, claim in found.items():  # every claim paired over the test questions (one seed: n pairs)
        if name.startswith("trend_"):
            assert claim["runs"] == 4 and claim["groups"] == 2 and isinstance(claim["holds"], bool)
        else:
            assert claim["paired"]["pairs"] == records[0]["n"] and isinstance(claim["holds"], bool)
    curves = json.loads(stored("curves.json"))["coin"]
    (teacher_record,) = [r for r in records if r["method"] == "teacher"]
    per_rationale = teacher_record["cost_usd"] / teacher_record["rationales"]  # an empty cache: every sample paid
    assert curves["teacher_usd_per_rationale"] == pytest.approx(per_rationale)
    costs = {p["name"]: p["teacher_usd"] for p in curves["points"]}
    assert costs["vanilla/n24"] == 0 and costs["ft_cot_d2/n12"] == pytest.approx(12 * 2 * per_rationale)
    (match,) = curves["equal_spend"]  # 24 questions at D=1 against 12 at D=2: 24 rationales each
    assert (match["d1_questions"], match["questions"], match["degree"]) == (24, 12, 2) and match["paired"]["pairs"] == records[0]["n"]
    assert curves["cheapest_near_best"] in costs and "## Learning curves and teacher spend" in table
    assert all(len(r["outcomes"]) == r["n"] for r in records)
    for trained in [r for r in records if r["method"] in ("vanilla", "ft_cot_d1", "ft_cot_d2")]:
        assert trained["best_validation_step"] in (4, 8, 10) and 0.0 <= trained["best_validation_accuracy"] <= 1.0
        assert trained["steps"] == trained.get("stopped_early_at_step", 10) and trained["steps"] in (8, 10)
    assert "## Training" in table
    (teacher,) = [r for r in records if r["method"] == "teacher"]
    assert teacher["degree"] == 2 and 1.0 <= teacher["distinct_rationales_per_question"] <= 2.0
    assert "| coin | 2 |" in table and "McNemar p" in table
    assert {"coin/student/n24/ft_cot_d2_s3/model/model.safetensors", "coin/student/n12/ft_cot_d2_s3/predictions.jsonl"} <= set(files)

    client = MlflowClient(tracking_uri=tree["tracking"]["tracking_uri"])
    experiment = client.get_experiment_by_name("mini")
    parent_id = json.loads(stored("experiment_state.json"))["parent_run_id"]
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert len(children) == 9, "the teacher on the training questions and on the test questions, and 7 students"
    by_id = {run.info.run_id: run for run in children}
    for record in records:
        run = by_id[record["mlflow_run_id"]]
        if record["method"] == "teacher":
            assert run.data.metrics["teacher_accuracy"] == pytest.approx(record["teacher_accuracy"])
            assert by_id[record["test_mlflow_run_id"]].data.metrics["teacher_accuracy"] == pytest.approx(record["accuracy"])
        else:
            assert run.data.metrics["test_accuracy"] == pytest.approx(record["accuracy"])
    artifacts = {a.path for a in client.list_artifacts(parent_id, "report")}
    assert {"report/summary.json", "report/results.md", "report/accuracy_vs_degree.png"} <= artifacts


def test_a_finished_teacher_set_no_longer_on_disk_is_made_again_from_the_cache(ray_cluster, tmp_path):
    """runs.jsonl says the teacher finished, but its set is gone: before a Fine-tune-CoT student reads
    it, the set is made again, every sample from the teacher cache (nothing sent)."""
    from rt_ray.config import parse_config
    from rt_ray.experiment.plan import TEACHER, Point, task_configs
    from rt_ray.experiment.run import restore_teacher_sets
    from rt_ray.teacher.pipeline import generate

    with SimulatorProcess(latency_s=0.01, wrong_rate=0.2) as sim:
        tree = coin_flip_run(tmp_path, sim.base_url, "restore", experiment={
            "seeds": [0], "degrees": [1, 2], "output_dir": str(tmp_path / "experiment"),
            "tasks": {"coin": {"task.name": "coin_flip", "task.num_examples": 40, "task.num_items": 3}}})  # fmt: skip
        configs = task_configs(parse_config(tree))
        generate(configs["coin"])
        sent = len(sim.requests())
        teacher_dir = Path(configs["coin"].generation.output_dir)
        shutil.rmtree(teacher_dir)
        done = {Point(TEACHER, None).key("coin")}
        restore_teacher_sets(configs, [("coin", Point("vanilla", 0))], done, parent_run_id=None)
        assert not teacher_dir.exists(), "no Fine-tune-CoT run is left to make: nothing needs the set"
        restore_teacher_sets(configs, [("coin", Point("ft_cot_d2", 0))], done, parent_run_id=None)
        assert sent > 0 and len(sim.requests()) == sent, "every sample came from the cache"
    stats = json.loads((teacher_dir / "stats.json").read_text())
    assert stats["status"] in ("complete", "complete_with_failures") and stats["degree"] == 2
    assert (teacher_dir / "filtered.jsonl").stat().st_size > 0
