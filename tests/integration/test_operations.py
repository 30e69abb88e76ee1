"""Operations as users run them: a Ray head started with `ray start`, stage jobs through the real
`ray job submit` CLI, `serve deploy` of the shipped Serve config, and a real `mlflow server`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from rt_ray.config import parse_config
from rt_ray.tasks import load_task_data
from rt_ray.simulator import SimulatorProcess, free_port
from tests.processes import BIN, HEAD_TOKEN, outside_env, own_processes, start_cli, stop_group, wait_for
from tests.tiny import save_untrained_student

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head` with its dashboard (job and Serve REST APIs), on ports of its own so it
    lives beside the session's cluster; stopped by process group, never by `ray stop`."""
    dashboard, gcs = free_port(), free_port()
    args = [str(BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats", "--num-cpus", "2",
            "--port", str(gcs), "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(dashboard), "--dashboard-agent-listen-port", str(free_port()),
            "--ray-client-server-port", str(free_port()), "--metrics-export-port", str(free_port())]  # fmt: skip
    process = subprocess.Popen(args, env=outside_env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        wait_for(f"{address}/api/version", 120, "the Ray dashboard", headers={"Authorization": f"Bearer {HEAD_TOKEN}"})
        yield address
    finally:
        stop_group(process)
        # `ray start` records its address for later `ray.init()` calls; a killed head leaves it behind.
        recorded = Path("/tmp/ray/ray_current_cluster")
        if recorded.is_file() and recorded.read_text().strip().endswith(f":{gcs}"):
            recorded.unlink()


def run_cli(args: list[str], timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env or outside_env())


def write_yaml(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree))
    return path


def teacher_tree(root: Path, sim: SimulatorProcess, **tracking) -> dict:
    return {
        "run_name": "ops",
        "task": {"name": "coin_flip", "num_examples": 40, "num_items": 3},
        "teacher": {"base_url": sim.base_url, "cache_dir": str(root / "cache")},
        "generation": {"degree": 2, "output_dir": str(root / "teacher")},
        "tracking": {"experiment": "ops", **tracking},
    }


def test_a_stage_job_submitted_with_ray_job_submit_succeeds_and_writes_its_outputs(ray_head, tmp_path):
    with SimulatorProcess(latency_s=0.01, wrong_rate=0.1) as sim:
        config = write_yaml(tmp_path / "job.yaml", teacher_tree(tmp_path, sim, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}"))
        job_id = f"rt-ray-test-{os.getpid()}-{int(time.time())}"
        submitted = run_cli([str(BIN / "ray"), "job", "submit", "--address", ray_head, "--submission-id", job_id,
                             "--working-dir", ".", "--runtime-env", "jobs/runtime_env.yaml", "--",
                             sys.executable, "jobs/generate.py", "-c", str(config)])  # fmt: skip
        status = run_cli([str(BIN / "ray"), "job", "status", "--address", ray_head, job_id], timeout=60)
        served = len(sim.requests())
    plain = re.sub(r"\x1b\[[0-9;]*m", "", status.stdout + status.stderr)
    assert f"Job '{job_id}' succeeded" in plain or "SUCCEEDED" in plain, plain[-2000:] + submitted.stderr[-3000:]
    assert served == 28 * 2, "the job called the teacher: per question one n=2 rationale request, one request with both answer prompts"
    stats = json.loads((tmp_path / "teacher" / "stats.json").read_text())
    assert stats["status"] == "complete" and stats["questions"] == 28 and stats["rationales"] == 56
    kept = (tmp_path / "teacher" / "filtered.jsonl").read_text().splitlines()
    assert len(kept) == stats["rationales_kept"] > 0


def test_serve_deploy_of_the_shipped_config_serves_the_student_over_http(ray_head, tmp_path):
    save_untrained_student(tmp_path / "model")
    port = free_port()
    app_config = write_yaml(tmp_path / "app.yaml", {"serve": {"model": str(tmp_path / "model"), "port": port, "max_tokens_cap": 24}})
    shipped = yaml.safe_load((REPO / "serve_configs" / "student.yaml").read_text())
    shipped["http_options"]["port"] = port
    (application,) = shipped["applications"]
    application["args"] = {"config": str(app_config)}
    deploy_file = write_yaml(tmp_path / "serve.yaml", shipped)

    deployed = run_cli([str(BIN / "serve"), "deploy", str(deploy_file), "--address", ray_head], timeout=120)
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz", 180, "the deployed student")
        question = load_task_data(parse_config({}).task).test[0].question
        solved = httpx.post(f"http://127.0.0.1:{port}/v1/solve", json={"task": "coin_flip", "question": question}, timeout=60)
        assert solved.status_code == 200, solved.text
        assert set(solved.json()) >= {"rationale", "answer", "raw"}
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        completion = client.completions.create(model="rt-ray-student", prompt=question, max_tokens=8)
        assert completion.usage.completion_tokens <= 8 and completion.choices[0].finish_reason in ("stop", "length")
    finally:
        run_cli([str(BIN / "serve"), "shutdown", "--address", ray_head, "--yes"], timeout=120)


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    args = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "artifacts")]  # fmt: skip
    process = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/health", 90, "mlflow server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_group(process)


def test_a_stage_logs_to_a_shared_mlflow_server_named_by_mlflow_tracking_uri(ray_cluster, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    with SimulatorProcess(latency_s=0.01, wrong_rate=0.1) as sim:
        config = write_yaml(tmp_path / "run.yaml", teacher_tree(tmp_path, sim))  # no tracking_uri: the env decides
        run = run_cli([sys.executable, "-m", "rt_ray.cli", "generate", "-c", str(config)],
                      env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server})  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("ops")
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.data.tags["rt_ray.stage"] == "generate"
    assert logged.data.metrics["rationales"] == 56
    assert logged.data.params["tracking.tracking_uri"] == mlflow_server
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id, "teacher")}
    assert "teacher/stats.json" in artifacts
    downloaded = client.download_artifacts(logged.info.run_id, "teacher/stats.json", str(tmp_path / "back"))
    assert json.loads(Path(downloaded).read_text())["rationales"] == 56


def test_a_job_without_a_tracking_uri_fails_at_once_with_one_line_saying_how_to_set_it(ray_head, tmp_path):
    config = write_yaml(tmp_path / "job.yaml", {"run_name": "ops-no-uri", "task": {"name": "coin_flip", "num_examples": 20},
                                                "generation": {"output_dir": str(tmp_path / "teacher")}})  # fmt: skip
    submitted = run_cli([str(BIN / "ray"), "job", "submit", "--address", ray_head, "--working-dir", ".",
                         "--runtime-env", "jobs/runtime_env.yaml", "--", sys.executable, "jobs/generate.py", "-c", str(config)])  # fmt: skip
    logs = re.sub(r"\x1b\[[0-9;]*m", "", submitted.stdout + submitted.stderr)
    assert "this Ray job has no MLflow tracking URI" in " ".join(logs.split()), logs[-6000:]
    assert "Traceback" not in logs
    assert not (tmp_path / "teacher" / "stats.json").exists(), "it stopped before any work"


def start_node(args: list[str]) -> subprocess.Popen:
    """`ray start --block` of one node with ports of its own (two nodes share this machine)."""
    ports = ["--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
             "--runtime-env-agent-port", str(free_port())]  # fmt: skip
    return subprocess.Popen([str(BIN / "ray"), "start", "--block", "--disable-usage-stats", "--num-cpus", "1", *ports, *args],
                            env=outside_env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture
def two_nodes(s3_bucket):
    """A head and a second node joined with `ray start --address`, one CPU each; both get the S3
    store's endpoint and credentials from their environment, as two machines of a cluster would."""
    gcs = free_port()
    head = start_node(["--head", "--port", str(gcs), "--include-dashboard", "false",
                       "--ray-client-server-port", str(free_port())])  # fmt: skip
    nodes = [head]
    try:
        time.sleep(5)
        nodes.append(start_node(["--address", f"127.0.0.1:{gcs}"]))
        deadline = time.monotonic() + 120
        while live_nodes(gcs) < 2:
            assert time.monotonic() < deadline, "the second node did not join"
            time.sleep(2)
        yield f"127.0.0.1:{gcs}"
    finally:
        for node in reversed(nodes):
            stop_group(node, term_wait_s=1)  # a cluster of this test's own: no need to wait out a clean stop
        recorded = Path("/tmp/ray/ray_current_cluster")
        if recorded.is_file() and recorded.read_text().strip().endswith(f":{gcs}"):
            recorded.unlink()


def live_nodes(gcs: int) -> int:
    """The nodes `ray status` lists as active."""
    shown = run_cli([str(BIN / "ray"), "status", "--address", f"127.0.0.1:{gcs}"], timeout=60).stdout
    active = shown.split("Active:", 1)[-1].split("Pending:", 1)[0]
    return sum("node_" in line for line in active.splitlines())


def test_two_nodes_train_one_worker_each_with_checkpoints_and_the_model_on_s3(ray_cluster, two_nodes, s3_bucket, tmp_path):
    from rt_ray.storage import remote_files
    from rt_ray.teacher.pipeline import generate

    output = f"{s3_bucket}/two-nodes-{tmp_path.name}"
    with SimulatorProcess(latency_s=0.01, wrong_rate=0.1) as sim:
        tree = teacher_tree(tmp_path, sim, tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        generate(parse_config(tree))  # on the session's cluster: the two-node one is for training
    tree["student"] = {"tiny_hidden": 32, "tiny_layers": 2, "tiny_heads": 2, "tiny_vocab": 300, "max_length": 160,
                       "max_new_tokens": 48, "eval_replicas": 1}  # fmt: skip
    tree["train"] = {"num_workers": 2, "cpus_per_worker": 1, "batch_size": 4, "max_steps": 20, "checkpoint_every_steps": 10,
                     "lr": 0.003, "output_dir": output}  # fmt: skip
    config = write_yaml(tmp_path / "train.yaml", tree)
    log = tmp_path / "train.log"
    process = start_cli(["train", "-c", str(config)], log, env={**outside_env(), "RAY_ADDRESS": two_nodes})
    raylets: set[int] = set()
    deadline = time.monotonic() + 300
    while len(raylets) < 2 and process.poll() is None and time.monotonic() < deadline:
        workers = own_processes("ray::RayTrainWorker")
        raylets = {worker.ppid() for worker in workers}
        time.sleep(0.5)
    assert len(raylets) == 2, "the two training workers run under two raylets, one per node"
    assert process.wait(600) == 0, log.read_text()[-3000:]

    stored = remote_files(output)
    assert {"model/model.safetensors", "model/trainer_state.json", "summary.json"} <= set(stored), sorted(stored)
    assert any(name.startswith("ray_train/") and "/checkpoint_" in name for name in stored), sorted(stored)
