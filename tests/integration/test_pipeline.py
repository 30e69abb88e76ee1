"""`rt-ray pipeline` end to end, as a user runs it: teacher, sweep, baselines, Serve, sample queries
and one report on a quiet console; a rerun reuses every finished stage; `rt-ray serve` then serves
the champion; Ctrl-C stops cleanly and the printed command resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from rt_ray.simulator import SimulatorProcess, free_port
from tests.processes import interrupt_when, leftover_processes, pids, resume_args, start_cli
from tests.tiny import coin_flip_run

pytestmark = pytest.mark.integration
WORKER_LINE = re.compile(r"\((pid=\d+|RayTrainWorker|TrainController|_WrappedExecutable|ServeReplica|ServeController)")


def rt_ray(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rt_ray.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else dict(os.environ))  # fmt: skip


def runs_of(tree: dict, stage: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tree["tracking"]["tracking_uri"])
    experiment = client.get_experiment_by_name(tree["tracking"]["experiment"])
    return client.search_runs([experiment.experiment_id], f"tags.`rt_ray.stage` = '{stage}'")


def running_runs(tree: dict) -> list[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tree["tracking"]["tracking_uri"])
    experiment = client.get_experiment_by_name(tree["tracking"]["experiment"])
    return [r.info.run_name for r in client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")]


def test_pipeline_reports_on_a_quiet_console_reruns_in_seconds_serves_its_champion_and_force_retrains(ray_cluster, tmp_path):
    port = free_port()
    with SimulatorProcess(latency_s=0.01, wrong_rate=0.1) as sim:
        tree = coin_flip_run(
            tmp_path, sim.base_url, "pipe",
            student={"registered_name": "pipe-student"},
            train={"max_steps": 12, "checkpoint_every_steps": 6},
            sweep={"degrees": [2], "validation_size": 10, "output_dir": str(tmp_path / "sweep")},
            serve={"port": port, "max_tokens_cap": 48},
            pipeline={"sample_queries": 2, "cost_probe_requests": 8, "output_dir": str(tmp_path / "pipeline")},
        )  # fmt: skip
        config = tmp_path / "pipe.yaml"
        config.write_text(yaml.safe_dump(tree))
        first = rt_ray("pipeline", "-c", str(config))
        assert first.returncode == 0, first.stderr[-4000:]
        sent_first = len(sim.requests())
        report = json.loads((tmp_path / "pipeline" / "report.json").read_text())

        started = time.monotonic()
        # The rerun's own deployment is the first run's again (asserted there); it is left out here.
        second = rt_ray("pipeline", "-c", str(config), "--set", "pipeline.deploy=false")
        rerun_s = time.monotonic() - started
        assert second.returncode == 0, second.stderr[-4000:]
        assert len(sim.requests()) == sent_first, "the rerun sent the teacher nothing"
        trained_once = len(runs_of(tree, "train"))

        forced = rt_ray("pipeline", "-c", str(config), "--force", "--set", "pipeline.baselines=false", "--set", "pipeline.deploy=false")
        assert forced.returncode == 0, forced.stderr[-4000:]
        assert len(runs_of(tree, "train")) == trained_once + 1, "--force trained the sweep's trial again"

    # The console is rt-ray's own; Ray's, Tune's and the libraries' output is in the log file it names.
    console = first.stdout + first.stderr
    for line in console.splitlines():
        assert not WORKER_LINE.search(line), f"a Ray worker's line reached the console: {line}"
        assert "Warning" not in line and "Trial status" not in line and "Traceback" not in line, line
    log = Path(re.search(r"goes to (\S+\.log)", " ".join(first.stderr.split())).group(1))
    assert log.parent == tmp_path / "logs"
    logged = log.read_text()
    assert WORKER_LINE.search(logged) and "Trial status" in logged and "Warning" in logged
    assert "teacher stage:" in first.stderr and "trial D2:" in first.stderr and "champion deployed at" in first.stderr

    assert report["teacher"]["requests_sent"] > 0 and report["teacher"]["rationales"] == 84
    methods = [row["method"] for row in report["accuracy"]]
    assert methods == ["teacher (train split)", "zero_shot", "vanilla", "champion (Fine-tune-CoT, D=2)"]
    assert all(isinstance(row["accuracy"], float) and row["n"] > 0 for row in report["accuracy"])
    assert report["endpoint"] == f"http://127.0.0.1:{port}" and len(report["samples"]) == 2
    assert all(set(s) == {"question", "rationale", "answer", "gold"} for s in report["samples"])
    assert "test accuracy on coin_flip" in first.stdout and "sample queries" in first.stdout
    cost = report["cost_case"]
    assert cost["teacher"]["questions"] == 18 and cost["student"]["requests"] == 8 and cost["student"]["concurrency"] == 16
    assert cost["distill_usd"] > cost["distillation"]["teacher_usd"] > 0 and cost["sentences"]
    assert "what the student saves against the teacher" in first.stdout and cost["sentences"][0] in " ".join(first.stdout.split())
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # it took its deployment down

    # The rerun reused the teacher set, the sweep's trial and the baselines: no training, seconds.
    assert rerun_s < 60, f"the rerun took {rerun_s:.0f} s"
    assert trained_once == 2, "one sweep trial and one vanilla baseline, each trained once"
    for stage in ("teacher", "sweep", "baselines"):
        assert f"{stage}: reusing" in second.stderr or f"{stage} stage: reusing" in second.stderr, second.stderr
    assert len(runs_of(tree, "pipeline")) == 3 and "champion_accuracy" in runs_of(tree, "pipeline")[0].data.metrics
    assert "student_usd_per_1k_answers" in runs_of(tree, "pipeline")[-1].data.metrics, "the first run logged its cost case"

    # `rt-ray serve` with no serve.model serves what the pipeline produced: the registry's champion.
    serve_log = tmp_path / "serve.txt"
    server = start_cli(["serve", "-c", str(config)], serve_log)
    try:
        deadline = time.monotonic() + 180
        while "serving until Ctrl-C" not in serve_log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, serve_log.read_text()[-3000:]
            time.sleep(1)
        question = report["samples"][0]["question"]
        solved = httpx.post(f"http://127.0.0.1:{port}/v1/solve", json={"task": "coin_flip", "question": question}, timeout=60)
        assert solved.status_code == 200 and "rationale" in solved.json(), solved.text
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=120) == 0
    assert "serving models:/pipe-student@champion" in " ".join(serve_log.read_text().split())


def test_ctrl_c_during_training_stops_every_process_and_the_printed_command_finishes_the_work(tmp_path):
    """A pipeline on a Ray cluster of its own, with the simulator it starts itself: after Ctrl-C
    nothing of the run is left, and no MLflow run says RUNNING."""
    tree = coin_flip_run(
        tmp_path, f"http://127.0.0.1:{free_port()}/v1", "pipe-int",
        teacher={"simulator": {"autostart": True, "latency_s": 0.01}},
        # 80 steps: the interrupt comes at the first checkpoint (step 10), ~7 s before training would end
        train={"max_steps": 80, "checkpoint_every_steps": 10},
        pipeline={"sweep": False, "baselines": False, "deploy": False, "output_dir": str(tmp_path / "pipeline")},
    )  # fmt: skip
    config = tmp_path / "pipe.yaml"
    config.write_text(yaml.safe_dump(tree))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local cluster of its own
    console_log = tmp_path / "console.txt"
    before = pids()
    process = start_cli(["pipeline", "-c", str(config)], console_log, env)
    training = lambda: any((tmp_path / "student" / "ray_train").glob("*/checkpoint_*"))  # noqa: E731
    code = interrupt_when(process, training)
    console = console_log.read_text()
    assert code == 130, console[-3000:]
    assert "Traceback" not in console and "interrupted: kept teacher set" in " ".join(console.split())
    assert leftover_processes(before) == [], "Ray, the simulator or the command itself outlived Ctrl-C"
    assert running_runs(tree) == []
    assert runs_of(tree, "train")[0].info.status == "KILLED"

    resumed = rt_ray(*resume_args(console), env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "teacher stage: reusing the finished teacher set" in resumed.stderr
    assert json.loads((tmp_path / "pipeline" / "report.json").read_text())["champion"]["n"] > 0
