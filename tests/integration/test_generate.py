"""The teacher stage end to end: Ray Data on a local cluster, the simulator over HTTP, MLflow."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml

from rt_ray.config import parse_config
from rt_ray.teacher.cache import ResponseCache
from rt_ray.teacher.parts import Parts
from rt_ray.cluster import dataset_from_table
from rt_ray.teacher.pipeline import generate
from rt_ray.simulator import SimulatorProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def simulator():
    started = []

    def start(**kwargs) -> SimulatorProcess:
        sim = SimulatorProcess(**{"latency_s": 0.02, **kwargs}).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def config_tree(tmp_path: Path, sim: SimulatorProcess, questions: int = 20, degree: int = 1, **teacher) -> dict:
    return {
        "run_name": "it",
        "task": {"name": "coin_flip", "num_examples": questions * 2, "max_train": questions},
        "teacher": {
            "base_url": sim.base_url, "cache_dir": str(tmp_path / "cache"), "request_timeout_s": 1.0,
            "backoff_base_s": 0.05, "backoff_max_s": 0.2, "max_concurrency": 16, **teacher,
        },
        "generation": {"degree": degree, "output_dir": str(tmp_path / "out"), "questions_per_block": 4},
        "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "it"},
    }  # fmt: skip


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cli(args: list[str], env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rt_ray.cli", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


def write_config(tmp_path: Path, tree: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("# test config\n" + yaml.safe_dump(tree))
    return path


def sigkill_generate_when(tmp_path: Path, tree: dict, sim: SimulatorProcess, ready) -> int:
    """Start `rt-ray generate`, SIGKILL it (and its process group) once ``ready()``, wait until its
    actors stop sending, check it left a running status; the simulator's request count then."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rt_ray.cli", "generate", "-c", str(write_config(tmp_path, tree))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, "the run ended before it could be killed midway"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = -1
    while before != len(sim.requests()):  # wait until the dead run's actors are gone
        before = len(sim.requests())
        time.sleep(1.5)
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["status"] == "running"
    return before


def is_rationale_request(entry: dict) -> bool:
    return entry["prompt"].rstrip().endswith("Let's think step by step.")


def test_every_question_gets_its_d_rationales_under_20_percent_faults(ray_cluster, simulator, tmp_path):
    sim = simulator(fault_rate=0.2, hang_s=3.0, seed=7)
    cfg = parse_config(config_tree(tmp_path, sim, questions=30, degree=4, max_retries=10))
    result = generate(cfg)

    records = read_jsonl(tmp_path / "out" / "rationales.jsonl")
    keys = Counter((r["question_id"], r["sample_index"]) for r in records)
    assert len(keys) == 30 * 4, "every question has its 4 rationales, none lost"
    assert max(keys.values()) == 1, "none duplicated"
    assert {r["sample_index"] for r in records} == {0, 1, 2, 3}
    faults = [e["fault"] for e in sim.requests() if e["fault"]]
    assert len(faults) >= 10 and len(set(faults)) >= 4, f"faults were injected: {Counter(faults)}"
    assert result.stats["status"] == "complete"
    assert result.stats["retries"] >= len(faults)
    kept = read_jsonl(tmp_path / "out" / "filtered.jsonl")
    assert kept and all(r["correct"] for r in kept) and len(kept) == result.stats["rationales_kept"]


@pytest.mark.parametrize("first_blocks", [3, 256])
def test_the_blocks_hold_every_question_once_whether_cut_here_or_by_ray_data(ray_cluster, first_blocks):
    table = pa.table({"index": list(range(103)), "question": [f"q{i}" for i in range(103)]})
    dataset = dataset_from_table(table, blocks=11, first_blocks=first_blocks)  # 3: 3 cut here, 8 by repartition
    blocks = list(dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
    assert len(blocks) == 11 and max(len(block) for block in blocks) <= 10
    assert sorted(i for block in blocks for i in block["index"].to_pylist()) == list(range(103))


def test_a_rerun_sends_nothing_and_writes_the_same_outputs(ray_cluster, simulator, tmp_path):
    sim = simulator()
    cfg = parse_config(config_tree(tmp_path, sim, questions=12, degree=2))
    first = generate(cfg)
    sent = len(sim.requests())
    second = generate(cfg)
    assert len(sim.requests()) == sent
    assert second.stats["requests_sent"] == 0 and second.stats["cache_hits"] == 12 * 2 * 2
    assert second.stats["filtered_sha256"] == first.stats["filtered_sha256"]


def test_a_sigkilled_run_resumes_without_repeating_cached_requests(ray_cluster, simulator, tmp_path):
    sim = simulator(latency_s=0.3)
    tree = config_tree(tmp_path, sim, questions=60, max_concurrency=8)
    before = sigkill_generate_when(tmp_path, tree, sim, lambda: len(sim.requests()) >= 40)

    cached = {sample["prompt_sha256"] for _, sample in ResponseCache(tmp_path / "cache").items()}
    assert 0 < len(ResponseCache(tmp_path / "cache")) < 120
    result = generate(parse_config(tree))
    resumed = sim.requests()[before:]
    repeated = [e for e in resumed if hashlib.sha256(e["prompt"].encode()).hexdigest() in cached]
    assert repeated == [], "no cached sample is requested again"
    assert len(resumed) + len(cached) >= 120 and result.stats["status"] == "complete"
    # What finished before the kill comes from its parts; the rest of what was cached, from the cache.
    assert result.stats["cache_hits"] <= len(cached)
    assert len(read_jsonl(tmp_path / "out" / "rationales.jsonl")) == 60


def test_a_killed_run_leaves_parts_and_the_rerun_finishes_from_them_with_the_same_set(ray_cluster, simulator, tmp_path):
    sim = simulator(latency_s=0.3)
    tree = config_tree(tmp_path, sim, questions=60, degree=2, max_concurrency=8)
    tree["generation"]["part_every_s"] = 0.5
    parts_dir = tmp_path / "out" / "parts"
    before = sigkill_generate_when(tmp_path, tree, sim, lambda: len(list(parts_dir.glob("part-*.jsonl"))) >= 2)
    in_parts = list(Parts(parts_dir, manifest={}).merged())  # reading only: the manifest is not checked
    finished = {json.loads(e["lines"][0])["question"] for e in in_parts if e["status"] == "ok"}
    assert 0 < len(finished) < 60
    cached = {sample["prompt_sha256"] for _, sample in ResponseCache(tmp_path / "cache").items()}

    cfg = parse_config(tree).with_absolute_paths()  # as the CLI resolves it: the same run, resumed
    resumed = generate(cfg)
    sent_after = sim.requests()[before:]
    assert not [e for e in sent_after if any(q in e["prompt"] for q in finished)], "no finished question is asked again"
    assert not [e for e in sent_after if hashlib.sha256(e["prompt"].encode()).hexdigest() in cached]
    assert resumed.stats["status"] == "complete" and resumed.stats["questions_resumed"] == len(finished)
    assert resumed.stats["questions"] == 60 and resumed.stats["rationales"] == 120
    assert not parts_dir.exists(), "the parts are removed once the outputs are assembled"
    resumed_lines = sorted((tmp_path / "out" / "filtered.jsonl").read_text().splitlines())

    # The same teacher samples assembled by one uninterrupted run (all from the cache) give the same set.
    sent = len(sim.requests())
    again = generate(cfg)
    assert len(sim.requests()) == sent and again.stats["questions_resumed"] == 0
    assert sorted((tmp_path / "out" / "filtered.jsonl").read_text().splitlines()) == resumed_lines
    assert again.stats["filtered_sha256"] == resumed.stats["filtered_sha256"], "and in the same order"
    parquet = pd.read_parquet(tmp_path / "out" / "filtered.parquet")
    assert len(parquet) == len(resumed_lines) and parquet["correct"].all()


def test_the_request_rate_never_exceeds_the_rpm_shared_by_two_callers(ray_cluster, simulator, tmp_path):
    sim = simulator(latency_s=0.05)
    rpm = 300  # one request per 0.2 s
    cfg = parse_config(config_tree(tmp_path, sim, questions=16, rpm=rpm, num_callers=2))
    generate(cfg)
    arrivals = sorted(e["t"] for e in sim.requests())
    assert len(arrivals) == 32
    spacing = 60 / rpm
    for i in range(len(arrivals)):
        for j in range(i + 1, len(arrivals)):
            # Request starts are spaced by the pacer; a start the OS wakes late can land next to the
            # following one, so a window of j - i requests spans at least j - i - 1 spacings.
            # Without the pacer all 32 arrive within a few milliseconds and this fails.
            assert arrivals[j] - arrivals[i] >= (j - i - 1) * spacing - 0.05, (i, j)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert sorted(gaps)[len(gaps) // 2] >= spacing - 0.05, "the typical gap is one spacing"
    assert arrivals[-1] - arrivals[0] <= 31 * spacing + 3.0, "and the pacer does not starve the run"


def test_the_api_key_appears_nowhere_the_run_writes(ray_cluster, simulator, tmp_path):
    secret = "sk-rt-ray-test-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:24]
    os.environ["RT_RAY_TEST_SECRET"] = secret
    try:
        sim = simulator(api_key_env="RT_RAY_TEST_SECRET")
        tree = config_tree(tmp_path, sim, questions=8, api_key_env="RT_RAY_TEST_SECRET")
        path = write_config(tmp_path, tree)
        run = cli(["generate", "-c", str(path)])
    finally:
        os.environ.pop("RT_RAY_TEST_SECRET")
    assert run.returncode == 0, run.stderr[-3000:]
    assert len(sim.requests()) == 16, "the key reached the teacher, which requires it"
    assert secret not in run.stdout + run.stderr
    for file in tmp_path.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), f"key found in {file}"
    ray_logs = Path(ray_cluster.address_info["session_dir"]) / "logs"
    for file in ray_logs.rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), f"key found in {file}"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tree["tracking"]["tracking_uri"])
    experiment = client.get_experiment_by_name("it")
    (mlflow_run,) = client.search_runs([experiment.experiment_id])
    assert mlflow_run.data.params["teacher.api_key_env"] == "RT_RAY_TEST_SECRET"
    assert all(secret not in str(v) for v in [*mlflow_run.data.params.values(), *mlflow_run.data.tags.values()])


def test_raising_d_from_4_to_8_requests_only_the_4_new_samples(ray_cluster, simulator, tmp_path):
    sim = simulator()
    tree = config_tree(tmp_path, sim, questions=10, degree=4)
    first = generate(parse_config(tree))
    boundary = len(sim.requests())
    tree["generation"]["degree"] = 8
    second = generate(parse_config(tree))
    later = sim.requests()[boundary:]
    rationale_calls = [e for e in later if is_rationale_request(e)]
    assert len(rationale_calls) == 10 and all(e["n"] == 4 for e in rationale_calls)
    answer_calls = [e for e in later if not is_rationale_request(e)]
    answer_prompts = [prompt for e in answer_calls for prompt in e["prompts"]]
    earlier_prompts = {prompt for e in sim.requests()[:boundary] for prompt in e["prompts"]}
    assert not any(prompt in earlier_prompts for prompt in answer_prompts), "a stored answer was requested again"
    assert len(answer_calls) <= 10, "a question's new answer prompts travel in one request"

    records = read_jsonl(tmp_path / "out" / "rationales.jsonl")
    assert len(records) == 80 and first.stats["rationales"] == 40
    # The simulator's wording is varied, not unique: a new rationale can repeat one of the first
    # four word for word, and then its step-2 prompt is already in the cache and costs nothing.
    known = {(r["question_id"], r["rationale"]) for r in records if r["sample_index"] < 4}
    unseen = {(r["question_id"], r["rationale"]) for r in records if r["sample_index"] >= 4} - known
    assert len(answer_prompts) == len(unseen), "one answer prompt per new rationale"
    assert second.stats["cache_hits"] == 10 * 4 * 2 + (10 * 4 - len(unseen))
    assert len(unseen) >= 35
    by_key = {(r["question_id"], r["sample_index"]): r["rationale"] for r in records}
    assert len({by_key[(q, i)] for q in {r["question_id"] for r in records} for i in range(8)}) >= 70


def test_answer_extraction_sends_a_questions_prompts_together_with_the_same_kept_rationales(ray_cluster, simulator, tmp_path):
    sim = simulator()
    one_each = config_tree(tmp_path, sim, questions=10, degree=8, prompts_per_request=1)
    first = generate(parse_config(one_each))
    kept_one_each = read_jsonl(tmp_path / "out" / "filtered.jsonl")
    assert first.stats["requests_per_question"] == 9 and first.stats["prompts_sent"] == 90

    # The same rationales (cached), their answers asked again (a new max_tokens_answer), 3 to a request.
    boundary = len(sim.requests())
    batched = {**one_each, "teacher": {**one_each["teacher"], "prompts_per_request": 3},
               "generation": {**one_each["generation"], "max_tokens_answer": 31}}  # fmt: skip
    second = generate(parse_config(batched))
    later = sim.requests()[boundary:]
    assert not any(is_rationale_request(e) for e in later)
    per_question = Counter(e["prompt"].split("Let's think step by step.")[0] for e in later)
    assert len(per_question) == 10 and set(per_question.values()) == {3}, "ceil(8 / 3) requests per question"
    assert sorted(len(e["prompts"]) for e in later) == sorted([3, 3, 2] * 10)
    assert read_jsonl(tmp_path / "out" / "filtered.jsonl") == kept_one_each  # greedy answers: the same kept set
    assert second.stats["requests_sent"] == 30 and second.stats["prompts_sent"] == 80

    third = generate(parse_config(batched))  # a rerun sends nothing
    assert len(sim.requests()) == boundary + 30 and third.stats["requests_sent"] == 0


def test_answer_from_the_rationale_sends_one_request_per_question(ray_cluster, simulator, tmp_path):
    sim = simulator(wrong_rate=0.2)
    tree = config_tree(tmp_path, sim, questions=10, degree=4)
    tree["generation"]["answer_from"] = "rationale"
    result = generate(parse_config(tree))
    assert len(sim.requests()) == 10 and all(is_rationale_request(e) for e in sim.requests())
    records = read_jsonl(tmp_path / "out" / "rationales.jsonl")
    assert result.stats["requests_per_question"] == 1 and len(records) == 40
    # The simulator's wrong rationales state a wrong answer: read from the rationale, they are filtered out.
    assert 0 < sum(not r["correct"] for r in records) < 40
    assert all(r["predicted"] in ("yes", "no") for r in records)


def test_a_budget_cap_stops_the_run_and_a_higher_cap_finishes_it_without_repeats(ray_cluster, simulator, tmp_path):
    sim = simulator()
    tree = config_tree(tmp_path, sim, questions=20, degree=2, max_cost_usd=0.05)
    tree["teacher"]["prices"] = {"teacher-sim": {"input_per_1m": 10.0, "output_per_1m": 30.0}}
    stopped = generate(parse_config(tree))
    assert stopped.stats["status"] == "stopped_budget"
    assert 0 < stopped.stats["cost_usd"] <= 0.05
    assert stopped.stats["questions_not_sent_budget"] > 0
    boundary = len(sim.requests())

    tree["teacher"]["max_cost_usd"] = 1.0
    finished = generate(parse_config(tree))
    assert finished.stats["status"] == "complete"
    prompts = [e["prompt"] for e in sim.requests()]
    assert len(prompts) == len(set(prompts)), "no request was sent twice across the two runs"
    assert len(prompts) > boundary
    assert len(read_jsonl(tmp_path / "out" / "rationales.jsonl")) == 40


def test_bad_configs_exit_non_zero_with_one_clear_message(tmp_path):
    (tmp_path / "unknown.yaml").write_text("teacher:\n  max_concurency: 4\n")
    run = cli(["generate", "-c", str(tmp_path / "unknown.yaml")])
    assert run.returncode == 2 and "teacher.max_concurency: unknown key" in run.stderr

    run = cli(["generate", "--set", "generation.degree=many"])
    assert run.returncode == 2 and "generation.degree" in run.stderr and "many" in run.stderr

    run = cli(["generate", "--set", "task.name=gsm8k", "--set", f"task.data_dir={tmp_path}",
               "--set", f"generation.output_dir={tmp_path / 'out1'}"])  # fmt: skip
    assert run.returncode == 2 and "dataset file not found" in run.stderr and "task.data_dir" in run.stderr
    assert not (tmp_path / "out1" / "filtered.jsonl").exists()

    from rt_ray.simulator import free_port

    out = tmp_path / "out2"
    run = cli(["generate", "--set", f"teacher.base_url=http://127.0.0.1:{free_port()}/v1",
               "--set", f"generation.output_dir={out}", "--set", "task.num_examples=10"])  # fmt: skip
    assert run.returncode == 2 and "unreachable" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert json.loads((out / "stats.json").read_text())["status"] == "failed"
    assert not (out / "filtered.jsonl").exists()


def test_help_explains_each_command():
    for args in (["--help"], ["generate", "--help"], ["teacher-sim", "--help"]):
        run = cli(args, timeout=60)
        assert run.returncode == 0 and "Usage" in run.stdout
    assert "rationale" in cli(["generate", "--help"], timeout=60).stdout


def test_autostart_starts_the_simulator_only_when_the_teacher_is_the_simulator(ray_cluster, tmp_path):
    from rt_ray.simulator import free_port, is_listening

    port = free_port()
    tree = {"run_name": "auto", "log_dir": str(tmp_path / "logs"), "task": {"name": "coin_flip", "num_examples": 10},
            "teacher": {"base_url": f"http://127.0.0.1:{port}/v1", "model": "my-local-vllm-model",
                        "cache_dir": str(tmp_path / "cache"), "simulator": {"autostart": True, "latency_s": 0.01}},
            "generation": {"output_dir": str(tmp_path / "real")},
            "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "auto"}}  # fmt: skip
    down = cli(["generate", "-c", str(write_config(tmp_path, tree))])
    assert down.returncode == 2, down.stderr[-2000:]
    assert "unreachable" in down.stderr and "only for teacher.model teacher-sim" in " ".join(down.stderr.split())
    assert "starting the offline teacher simulator" not in down.stderr and not is_listening("127.0.0.1", port)

    tree["teacher"]["model"] = "teacher-sim"
    tree["generation"]["output_dir"] = str(tmp_path / "simulated")
    simulated = cli(["generate", "-c", str(write_config(tmp_path, tree))])
    assert simulated.returncode == 0, simulated.stderr[-2000:]
    assert f"starting the offline teacher simulator at http://127.0.0.1:{port}/v1" in " ".join(simulated.stderr.split())
    assert json.loads((tmp_path / "simulated" / "stats.json").read_text())["teacher_simulated"] is True
    assert not is_listening("127.0.0.1", port), "it stopped the simulator it started"


def test_a_second_run_on_a_folder_a_live_run_writes_exits_2_and_a_sigkilled_runs_folder_is_taken_over(ray_cluster, simulator, tmp_path):
    sim = simulator(latency_s=1.0)
    tree = config_tree(tmp_path, sim, questions=10, max_concurrency=1)
    second: dict = {}

    def second_run_refused() -> bool:
        if len(sim.requests()) < 2:
            return False
        second["run"] = cli(["generate", "-c", str(write_config(tmp_path, tree))])
        return True

    sigkill_generate_when(tmp_path, tree, sim, second_run_refused)
    refused = second["run"]
    assert refused.returncode == 2, refused.stderr[-2000:]
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"generation.output_dir {tmp_path / 'out'} is being written by another run (pid" in " ".join(refused.stderr.split())
    assert "Traceback" not in refused.stderr
    assert (tmp_path / "out" / ".rt_ray.lock").exists(), "the killed run left its lock"
    result = generate(parse_config(tree))
    assert result.stats["status"] == "complete" and len(read_jsonl(tmp_path / "out" / "rationales.jsonl")) == 10
    assert not (tmp_path / "out" / ".rt_ray.lock").exists()


FAULTS = Path(__file__).resolve().parents[1] / "faults"


def test_a_bug_in_rt_rays_response_handling_fails_the_run_with_its_traceback_and_leaves_no_finished_set(simulator, tmp_path):
    """A TypeError planted in the teacher client's response handling (tests/faults/sitecustomize.py,
    loaded by every process of the command, Ray's workers too) is a fault in rt-ray, not the
    teacher's: exit 1, its traceback at the end of the log, no request sent twice, no finished set."""
    from rt_ray.artifacts import GenerationNotFinished, read_finished_generation

    sim = simulator()
    tree = {**config_tree(tmp_path, sim, questions=6, degree=2), "log_dir": str(tmp_path / "logs")}
    # A local cluster of its own (not the session's, through RAY_ADDRESS), whose workers load the planted bug.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"PYTHONPATH": os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")])),
            "RT_RAY_TEST_FAULT": "teacher_response_type_error"}  # fmt: skip
    run = subprocess.run([sys.executable, "-m", "rt_ray.cli", "generate", "-c", str(write_config(tmp_path, tree))],
                         capture_output=True, text=True, timeout=240, env=env)  # fmt: skip
    assert run.returncode == 1, run.stderr[-2000:]
    assert "TypeError: planted" in run.stderr and "Traceback" not in run.stderr
    log = next((tmp_path / "logs").glob("generate-*.log")).read_text()
    assert "Traceback" in log and "planted: a bug in the response handling" in log
    prompts = [e["prompt"] for e in sim.requests()]
    assert prompts and len(prompts) == len(set(prompts)), "no request was retried"
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["status"] == "failed"
    with pytest.raises(GenerationNotFinished):
        read_finished_generation(tmp_path / "out")
