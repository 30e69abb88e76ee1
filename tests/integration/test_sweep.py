"""The sweep stage on a local Ray cluster: Ray Tune trials that each run Ray Train + DeepSpeed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rt_ray.config import parse_config
from rt_ray.records import RECORD_FILE
from rt_ray.sweep.tuner import run_sweep
from rt_ray.simulator import SimulatorProcess
from tests.processes import interrupt_when, leftover_processes, pids, resume_args, start_cli

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


def test_sweep_to_s3_makes_nested_runs_a_plot_and_a_champion_and_keeps_tune_state_and_models_in_the_bucket(sweep_tree, s3_bucket, tmp_path):
    from rt_ray.storage import remote_files

    output = sweep_tree["sweep"]["output_dir"] = f"{s3_bucket}/sweep-{tmp_path.name}"
    outcome = run_sweep(parse_config(sweep_tree).with_absolute_paths())
    stored = remote_files(output)
    assert {"results.md", "results.json", "accuracy_vs_degree.png", RECORD_FILE} <= set(stored), sorted(stored)
    assert any(name.startswith("tune/") for name in stored), "Tune's experiment state is in the bucket"
    models = [name for name in stored if name.startswith("trials/") and name.endswith("/model/model.safetensors")]
    checkpoints = {name.split("/")[1] for name in stored if "/ray_train/" in name and "/checkpoint_" in name}
    assert len(models) == 2 and len(checkpoints) == 2, sorted(stored)
    assert all(outcome_trial.model_dir.startswith(output) for outcome_trial in outcome.trials)
    assert sorted(t.params["degree"] for t in outcome.trials) == [1, 2]
    children = child_runs(sweep_tree, outcome.parent_run_id)
    assert sorted(int(r.data.metrics["degree"]) for r in children) == [1, 2]
    for run in children:
        assert "validation_accuracy" in run.data.metrics and run.data.params["task.name"] == "coin_flip"
    assert Path(outcome.plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=sweep_tree["tracking"]["tracking_uri"])
    champion = client.get_model_version_by_alias("sweep-it", "champion")
    best = outcome.trials[0]
    assert champion.run_id == best.mlflow_run_id
    assert best.validation_accuracy == max(t.validation_accuracy for t in outcome.trials)


def test_ctrl_c_after_the_first_trial_stops_cleanly_and_the_printed_command_trains_only_the_rest(sweep_tree, tmp_path):
    """`rt-ray sweep` on a Ray cluster of its own: Ctrl-C once a trial has finished; exit 130, one
    line, no process or RUNNING MLflow run left; the printed command reuses the finished trial."""
    sweep_tree["sweep"]["degrees"] = [1, 2]
    sweep_tree["log_dir"] = str(tmp_path / "logs")
    path = tmp_path / "sweep.yaml"
    path.write_text("# test\n" + yaml.safe_dump(sweep_tree))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    console_log = tmp_path / "console.txt"
    before = pids()
    process = start_cli(["sweep", "-c", str(path)], console_log, env)
    code = interrupt_when(process, lambda: any((tmp_path / "sweep" / "trials").glob(f"*/{RECORD_FILE}")))
    console = console_log.read_text()
    assert code == 130, console[-3000:]
    assert "Traceback" not in console and "Tuner.restore" not in console
    assert "resume with: rt-ray sweep -c" in " ".join(console.split())
    assert leftover_processes(before) == []
    parent = json.loads((tmp_path / "sweep" / "sweep_state.json").read_text())["parent_run_id"]
    runs = child_runs(sweep_tree, parent)
    assert all(r.info.status != "RUNNING" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    done_before = [int(r.data.metrics["degree"]) for r in runs if "validation_accuracy" in r.data.metrics]
    assert len(done_before) >= 1

    run = subprocess.run([sys.executable, "-m", "rt_ray.cli", *resume_args(console)],
                         capture_output=True, text=True, timeout=900, env=env)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    trained = [r for r in child_runs(sweep_tree, parent) if r.data.tags.get("rt_ray.stage") == "train"]
    finished = [r for r in trained if "validation_accuracy" in r.data.metrics]
    assert sorted(int(r.data.metrics["degree"]) for r in finished) == [1, 2]
    degrees_trained = [int(r.data.metrics["degree"]) for r in trained]
    for degree in done_before:
        assert degrees_trained.count(degree) == 1, f"finished trial D={degree} was trained again: {degrees_trained}"
        assert f"trial D{degree}:" in run.stderr and "(reused)" in run.stderr
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert len(results) == 2


def test_asha_stops_the_trial_that_trails_at_a_rung_ends_its_run_and_frees_its_workers(sweep_tree):
    import ray
    from mlflow.tracking import MlflowClient

    # The last letter of one name: by the first rung a student that learns has the rationale's form and
    # the commonest letters, while one that learns nothing (lr 1e-6) answers none (an answer is one
    # letter, which untrained text does not end on by chance; a yes/no task's guesses would be right
    # half the time). Trials run one at a time in grid order, so the second meets the first's record.
    sweep_tree["task"].update(name="last_letter_concatenation", num_items=1, num_examples=120)
    sweep_tree["student"]["max_new_tokens"] = 64
    # 300 steps: a stopped trial's remaining ones take ~15 s here, longer than a stop takes to arrive
    sweep_tree["train"].update(max_steps=300, lr=0.01, batch_size=8)
    sweep_tree["sweep"].update(degrees=[2], lrs=[0.01, 1e-6], scheduler="asha", report_every_steps=60, validation_size=30)
    outcome = run_sweep(parse_config(sweep_tree).with_absolute_paths())

    assert [t.params["lr"] for t in outcome.trials] == [0.01]
    (stopped,) = outcome.stopped_early
    assert stopped.params["lr"] == 1e-6 and stopped.step < 300 and stopped.steps_saved == 300 - stopped.step
    assert outcome.steps_saved == stopped.steps_saved
    assert "Stopped early by ASHA: 1 trials" in (Path(sweep_tree["sweep"]["output_dir"]) / "results.md").read_text()
    runs = {float(r.data.params["train.lr"]): r for r in child_runs(sweep_tree, outcome.parent_run_id)}
    assert runs[1e-6].info.status == "KILLED" and runs[0.01].info.status == "FINISHED"
    client = MlflowClient(tracking_uri=sweep_tree["tracking"]["tracking_uri"])
    curve = client.get_metric_history(runs[0.01].info.run_id, "validation_accuracy")
    assert len(curve) >= 5, "the finished trial reported validation accuracy every 60 steps"
    last_step = max(m.step for m in client.get_metric_history(runs[1e-6].info.run_id, "loss"))
    assert last_step < 300, "the stopped trial's workers were stopped, not left to train to the end"
    left = reserved_placement_groups()
    for group in left:  # so that a failure here does not starve the session's cluster for the tests after it
        ray.util.remove_placement_group(ray.util.placement_group.PlacementGroup(ray.PlacementGroupID.from_hex(group["placement_group_id"])))
    assert not left, f"placement groups left reserved: {left}"


def reserved_placement_groups() -> list[dict]:
    import ray

    return [g for g in ray.util.placement_group_table().values() if g["state"] != "REMOVED"]


def test_a_stopped_runs_worker_groups_are_freed_once_their_rank_0_is_gone_and_not_before(ray_cluster):
    """Each registered group's placement group is removed only after its rank 0 has died: removed
    under a living controller, the group would be started again in a new one that nothing frees."""
    import threading
    import time

    import ray
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from rt_ray.progress import new_board
    from rt_ray.sweep.tuner import free_worker_groups

    @ray.remote(num_cpus=0.1)
    class Worker:
        def ping(self) -> bool:
            return True

    board, workers = new_board(), []
    for _ in range(2):  # a group and the one a restart put in its place
        group = ray.util.placement_group([{"CPU": 0.1}])
        ray.get(group.ready(), timeout=60)
        worker = Worker.options(scheduling_strategy=PlacementGroupSchedulingStrategy(group)).remote()
        ray.get(worker.ping.remote(), timeout=60)
        ray.get(board.register_group.remote("D1", group.id.hex(), worker), timeout=60)
        workers.append((group, worker))
    freeing = threading.Thread(target=free_worker_groups, args=(board, "D1"), daemon=True)
    freeing.start()
    time.sleep(3)
    states = [ray.util.placement_group_table(group)["state"] for group, _ in workers]
    assert states == ["CREATED", "CREATED"], "freed while its rank 0 still lived"
    ray.kill(workers[0][1])
    deadline = time.monotonic() + 30
    while ray.util.placement_group_table(workers[0][0])["state"] != "REMOVED" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [ray.util.placement_group_table(group)["state"] for group, _ in workers] == ["REMOVED", "CREATED"]
    ray.kill(workers[1][1])
    freeing.join(30)
    assert not freeing.is_alive() and ray.util.placement_group_table(workers[1][0])["state"] == "REMOVED"
