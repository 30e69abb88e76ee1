"""The student stage on a local Ray cluster: Ray Train + DeepSpeed on 2 CPU workers, Ray Data
evaluation, MLflow tracking and registry. Teacher data comes from a real run against the simulator."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from transformers import AutoModelForCausalLM

from rt_ray.config import parse_config
from rt_ray.student.evaluate import evaluate_student
from rt_ray.student.stage import run_evaluate_stage, run_train_stage
from rt_ray.student.train_loop import PROBE_TEXT
from rt_ray.student.trainer import TrainResult, train_student
from rt_ray.teacher.pipeline import generate
from rt_ray.simulator import SimulatorProcess, free_port
from tests.conftest import S3_SECRET
from tests.processes import own_processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def base_tree(ray_cluster, tmp_path_factory) -> dict:
    """A finished teacher run (coin flip, 40 questions, D=2) that the students train on."""
    root = tmp_path_factory.mktemp("student")
    with SimulatorProcess(latency_s=0.01, wrong_rate=0.1) as sim:
        tree = {
            "run_name": "student-it",
            "task": {"name": "coin_flip", "num_examples": 60, "num_items": 3},
            "teacher": {"base_url": sim.base_url, "cache_dir": str(root / "cache")},
            "generation": {"degree": 2, "output_dir": str(root / "teacher")},
            "student": {"tiny_hidden": 32, "tiny_layers": 2, "tiny_heads": 2, "tiny_vocab": 300, "max_length": 160,
                        "max_new_tokens": 64, "eval_replicas": 1, "eval_batch_size": 16},
            "train": {"num_workers": 2, "batch_size": 4, "max_steps": 30, "checkpoint_every_steps": 10, "lr": 0.003,
                      "output_dir": str(root / "student")},
            "tracking": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "student-it"},
        }  # fmt: skip
        generate(parse_config(tree))
    return tree


def with_changes(tree: dict, tmp_path: Path, **sections) -> dict:
    changed = json.loads(json.dumps(tree))
    for section, values in sections.items():
        changed[section].update(values)
    changed["train"]["output_dir"] = str(tmp_path / "student")
    return changed


def mlflow_run(tree: dict, run_id: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tree["tracking"]["tracking_uri"]).get_run(run_id)


def loss_history(tree: dict, run_id: str) -> list[float]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tree["tracking"]["tracking_uri"])
    return [m.value for m in sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)]


@pytest.fixture(scope="module")
def train_stage(base_tree, tmp_path_factory) -> tuple[dict, dict]:
    """`rt-ray train`'s stage (train, test, register) on the base settings, once per module: its
    student is also the ZeRO-2 run (the default stage) that the export test reloads."""
    tree = with_changes(base_tree, tmp_path_factory.mktemp("stage"), student={"registered_name": "student-it"})
    return tree, run_train_stage(parse_config(tree))


@pytest.fixture(scope="module")
def plain_run(base_tree, train_stage, tmp_path_factory):
    """A student trained with the base settings at a ZeRO stage, once per module: the gradient
    checkpointing test compares its curve with ZeRO-3's instead of training it again, and ZeRO-2's
    is the train stage's."""
    tree, summary = train_stage
    assert parse_config(tree).train.zero_stage == 2
    stage_result = TrainResult(summary["model_dir"], summary["train"], {}, mlflow_run_id=summary["mlflow_run_id"])
    runs: dict = {2: (stage_result, loss_history(tree, summary["mlflow_run_id"]))}

    def trained(zero_stage: int) -> tuple:
        if zero_stage not in runs:
            tree = with_changes(base_tree, tmp_path_factory.mktemp(f"zero{zero_stage}"), train={"zero_stage": zero_stage})
            result = train_student(parse_config(tree))
            runs[zero_stage] = result, loss_history(tree, result.mlflow_run_id)
        return runs[zero_stage]

    return trained


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_zero_stage_trains_and_exports_weights_that_from_pretrained_reloads(plain_run, zero_stage):
    result, losses = plain_run(zero_stage)
    assert len(losses) == 3 and losses[-1] < losses[0], f"loss goes down: {losses}"

    model = AutoModelForCausalLM.from_pretrained(result.model_dir).eval()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    ids = torch.tensor([tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        reloaded = model(input_ids=ids).logits.sum().item()
    assert reloaded == pytest.approx(result.metrics["export_check"], rel=1e-4, abs=1e-3)


def test_gradient_checkpointing_trains_to_the_same_loss_curve_at_the_same_seed(base_tree, plain_run, tmp_path):
    _, plain = plain_run(3)
    tree = with_changes(base_tree, tmp_path, train={"zero_stage": 3, "gradient_checkpointing": True})
    checkpointed = loss_history(tree, train_student(parse_config(tree)).mlflow_run_id)
    assert len(plain) == 3 and plain[-1] < plain[0]
    assert checkpointed == pytest.approx(plain, rel=1e-3), (plain, checkpointed)


def probe_logit_sum(model, tokenizer) -> float:
    ids = torch.tensor([tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits.sum().item()


@pytest.fixture(scope="module")
def serve_port(ray_cluster):
    """One Ray Serve instance for the module's served students (a shutdown takes ~13 s here)."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield port
    serve.shutdown()


def solve_over_http(model_dir: str | Path, port: int) -> httpx.Response:
    """``model_dir`` served the way `rt-ray serve` serves it, asked one /v1/solve question."""
    from ray import serve

    from rt_ray.serve.app import app_from_config

    cfg = parse_config({"serve": {"model": str(model_dir), "port": port, "num_replicas": 1, "num_cpus": 0.5}})
    try:
        serve.run(app_from_config(cfg), name="lora-student", route_prefix="/")
        question = {"task": "coin_flip", "question": "A coin is heads up. Ann flips the coin. Is the coin still heads up?"}
        return httpx.post(f"http://127.0.0.1:{port}/v1/solve", json=question, timeout=120)
    finally:
        serve.delete("lora-student")


@pytest.mark.parametrize("zero_stage, export", [(2, "adapter"), (3, "merged")])
def test_a_lora_student_trains_only_adapters_under_zero_and_its_export_reloads_and_serves(base_tree, serve_port, tmp_path, zero_stage, export):
    from rt_ray.artifacts import load_student
    from rt_ray.student.models import build_student

    tree = with_changes(base_tree, tmp_path, train={"zero_stage": zero_stage, "lr": 0.01},
                        student={"lora": {"r": 8, "alpha": 16, "export": export}})  # fmt: skip
    result = train_student(parse_config(tree))
    losses = loss_history(tree, result.mlflow_run_id)
    assert losses[-1] < losses[0], f"loss goes down: {losses}"
    assert 0 < result.metrics["trainable_params"] < 0.1 * result.metrics["total_params"]
    assert (result.model_dir / "adapter_config.json").is_file() == (export == "adapter")

    model, tokenizer, meta = load_student(result.model_dir)  # the adapter folded in, either way
    assert probe_logit_sum(model, tokenizer) == pytest.approx(result.metrics["export_check"], rel=1e-4, abs=1e-3)
    if export == "merged":  # plain Hugging Face weights: any from_pretrained reader takes them
        plain = AutoModelForCausalLM.from_pretrained(result.model_dir)
        assert probe_logit_sum(plain, tokenizer) == pytest.approx(result.metrics["export_check"], rel=1e-4, abs=1e-3)
    base = build_student(meta["spec"], seed=0)[0].state_dict()
    trained = model.state_dict()
    adapted = {k for k in base if k.endswith("c_attn.weight")}  # peft's default target for GPT-2
    assert all(torch.equal(trained[k], base[k]) for k in base if k not in adapted and k in trained)
    assert not any(torch.equal(trained[k], base[k]) for k in adapted)

    response = solve_over_http(result.model_dir, serve_port)
    assert response.status_code == 200, response.text
    assert response.json()["raw"]


def test_encoder_decoder_student_trains_and_evaluates(base_tree, tmp_path):
    # Streamed from the Ray Data shard (a set above stream_above_samples), not held in memory.
    tree = with_changes(base_tree, tmp_path, student={"arch": "encoder-decoder"}, train={"max_steps": 20, "stream_above_samples": 0})
    cfg = parse_config(tree)
    result = train_student(cfg)
    losses = loss_history(tree, result.mlflow_run_id)
    assert losses[-1] < losses[0]
    report, predictions = evaluate_student(cfg, {"path": str(result.model_dir)}, "ft_cot", tmp_path / "p.jsonl")
    assert report["n"] == len(predictions) == 18  # the 30 % test split of 60 questions
    assert all(p["generated"] is not None for p in predictions)
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 18


def s3_text(uri: str) -> str:
    import pyarrow.fs as pafs

    filesystem, path = pafs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode()


def test_on_s3_a_killed_worker_resumes_from_the_checkpoint_there_and_serve_reads_the_model_from_s3(base_tree, serve_port, tmp_path, s3_bucket):
    from rt_ray.storage import remote_files

    output = f"{s3_bucket}/killed-{tmp_path.name}"
    tree = with_changes(base_tree, tmp_path, train={"max_steps": 150, "checkpoint_every_steps": 10, "max_failures": 2})
    tree["train"]["output_dir"] = output
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(result=train_student(parse_config(tree))), daemon=True)
    thread.start()
    deadline = time.monotonic() + 300

    def registered_checkpoints() -> int:
        # The controller writes this snapshot (to the bucket) once a reported checkpoint is registered.
        for name in remote_files(f"{output}/ray_train"):
            if name.endswith("checkpoint_manager_snapshot.json"):
                try:
                    return len(json.loads(s3_text(f"{output}/ray_train/{name}"))["checkpoint_results"])
                except (OSError, json.JSONDecodeError, KeyError):
                    return 0
        return 0

    while registered_checkpoints() == 0:
        assert thread.is_alive() and time.monotonic() < deadline, "no checkpoint was registered"
        time.sleep(0.5)
    workers = own_processes("ray::RayTrainWorker")
    assert workers, "found the training workers"
    workers[-1].kill()
    thread.join(timeout=600)
    result = outcome["result"]
    assert result.model_dir == f"{output}/model"
    state = json.loads(s3_text(f"{result.model_dir}/trainer_state.json"))
    assert state["step"] == 150
    assert len(state["starts"]) == 2 and state["starts"][0] == 0
    assert state["starts"][1] >= 10, f"resumed from a checkpoint, not from step 0: {state['starts']}"
    assert any("/checkpoint_" in name for name in remote_files(f"{output}/ray_train")), "checkpoints live in the bucket"

    response = solve_over_http(result.model_dir, serve_port)  # serve.model: s3://...; the replica downloads it
    assert response.status_code == 200, response.text
    assert response.json()["raw"]
    run = mlflow_run(tree, result.mlflow_run_id)
    assert S3_SECRET not in json.dumps([run.data.params, run.data.tags]), "the store's secret reached MLflow"


def test_train_stage_evaluates_registers_and_records_lineage_and_evaluate_adds_baselines(train_stage):
    tree, summary = train_stage
    cfg = parse_config(tree)
    student_dir = Path(tree["train"]["output_dir"])
    assert summary["test"]["n"] == 18 and summary["registered_version"] is not None

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tree["tracking"]["tracking_uri"])
    run = client.get_run(summary["mlflow_run_id"])
    teacher_stats = json.loads((Path(tree["generation"]["output_dir"]) / "stats.json").read_text())
    assert run.data.tags["rt_ray.generation_run_id"] == teacher_stats["mlflow_run_id"]
    assert run.data.tags["rt_ray.filtered_sha256"] == teacher_stats["filtered_sha256"]
    assert "test_accuracy" in run.data.metrics and "tokens_per_s" in run.data.metrics
    version = client.get_model_version("student-it", summary["registered_version"])
    assert version.run_id == summary["mlflow_run_id"]

    outcome = run_evaluate_stage(cfg)
    assert set(outcome["results"]) == {"ft_cot", "zero_shot", "vanilla"}
    assert all(r["n"] == 18 for r in outcome["results"].values())
    for name in ("predictions_ft_cot.jsonl", "predictions_zero_shot.jsonl", "predictions_vanilla.jsonl"):
        assert len((student_dir / name).read_text().splitlines()) == 18


def test_a_missing_internal_file_is_a_fault_with_a_traceback_while_a_missing_file_the_user_named_is_one_line(tmp_path):
    """A finished teacher set whose filtered.jsonl is gone is rt-ray's (or its disk's) fault, not a
    typo: exit 1, the traceback in the log. A config file or task file the user named and that is
    not there stays one line and exit 2."""
    import subprocess
    import sys

    import yaml

    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "stats.json").write_text(json.dumps({"status": "complete", "split": "train"}))
    tree = {"run_name": "it", "log_dir": str(tmp_path / "logs"), "task": {"name": "coin_flip", "num_examples": 40},
            "generation": {"output_dir": str(teacher)}, "train": {"output_dir": str(tmp_path / "student")},
            "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}}  # fmt: skip
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tree))

    def rt_ray(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rt_ray.cli", *args], capture_output=True, text=True, timeout=240)

    internal = rt_ray("train", "-c", str(tmp_path / "config.yaml"))
    assert internal.returncode == 1, internal.stderr[-2000:]
    assert "FileNotFoundError" in internal.stderr and "filtered.jsonl" in internal.stderr
    log = next((tmp_path / "logs").glob("train-*.log")).read_text()
    assert "Traceback" in log and "filtered.jsonl" in log

    named = rt_ray("train", "-c", str(tmp_path / "no-such-config.yaml"))
    assert named.returncode == 2 and "config file not found" in named.stderr and "Traceback" not in named.stderr
    task_file = rt_ray("generate", "-c", str(tmp_path / "config.yaml"), "--set", "task.name=custom",
                       "--set", f"task.path={tmp_path / 'no-such-questions.jsonl'}", "--set", "task.answer_type=number")  # fmt: skip
    assert task_file.returncode == 2 and "task file not found" in task_file.stderr, task_file.stderr[-2000:]
    assert "Traceback" not in task_file.stderr
