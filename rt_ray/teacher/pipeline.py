"""The teacher stage: Zero-shot-CoT rationales for every training question, on Ray Data.

    rt-ray generate -c configs/quickstart.yaml
    result = generate(load_config("configs/quickstart.yaml"))

Questions -> D rationales each (one request with n=D where the endpoint allows) -> a greedy
step-2 call per rationale for its answer -> parse -> judge against gold -> keep the correct ones.
Writes to ``generation.output_dir``: rationales.jsonl (all), filtered.jsonl and filtered.parquet
(kept), failures.jsonl, and stats.json, whose ``status`` says whether the set is finished.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import openai
import pandas as pd
import ray
from pydantic import SecretStr
from ray.data import DataContext
from rt_ray.artifacts import TERMINAL_STATUSES, file_sha256, write_json, write_jsonl
from rt_ray.cluster import ensure_ray
from rt_ray.config import SIMULATOR_MODEL, TEACHER_INPUTS, ConfigError, RtRayConfig, TeacherConfig
from rt_ray.console import note_kept
from rt_ray.progress import bar, say
from rt_ray.tasks import load_task_data
from rt_ray.teacher.accounting import CallStats
from rt_ray.teacher.batch_mode import describe as describe_batch_mode
from rt_ray.teacher.batch_mode import fill_cache_by_batches
from rt_ray.teacher.callers import TeacherCaller
from rt_ray.teacher.filtering import keep_correct, sample_records, summarize
from rt_ray.teacher.governor import TeacherGovernor
from rt_ray.teacher.simulator import SimulatorProcess, is_listening
from rt_ray.teacher.teach import SamplingPlan

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class TeacherUnavailable(RuntimeError):
    """The teacher endpoint cannot be reached or refuses the run."""


@dataclass
class GenerationResult:
    output_dir: Path
    stats: dict

    @property
    def filtered_path(self) -> Path:
        return self.output_dir / "filtered.jsonl"


def read_api_key(cfg: TeacherConfig) -> SecretStr | None:
    value = os.environ.get(cfg.api_key_env)
    if value:
        return SecretStr(value)
    if urlparse(cfg.base_url).hostname in LOCAL_HOSTS:
        return None  # a local endpoint (the simulator, a local vLLM) needs no key
    raise ConfigError(
        f"the environment variable {cfg.api_key_env} (teacher.api_key_env) is not set; "
        f"it must hold the API key for {cfg.base_url}"
    )


@contextmanager
def teacher_endpoint(cfg: TeacherConfig) -> Iterator[None]:
    """Start the teacher simulator when the config asks for it, the teacher is the simulator, and
    nothing listens there yet. Any other model's endpoint that is down stays down: a student must
    never learn from simulated rationales in place of a real teacher's without the config saying so."""
    url = urlparse(cfg.base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    sim = cfg.simulator
    if not sim.autostart or cfg.model != SIMULATOR_MODEL or is_listening(host, port):
        yield
        return
    say(f"teacher: starting the offline teacher simulator at {cfg.base_url} (teacher.model {SIMULATOR_MODEL}); "
        "its rationales are simulated, not a language model's")  # fmt: skip
    process = SimulatorProcess(
        port=port, host=host, latency_s=sim.latency_s, latency_jitter_s=sim.latency_jitter_s,
        wrong_rate=sim.wrong_rate, fault_rate=sim.fault_rate, seed=sim.seed,
    )  # fmt: skip
    with process:
        yield


def check_teacher(cfg: TeacherConfig, api_key: SecretStr | None) -> None:
    """Fail fast, with one clear message, when the endpoint is down or refuses the key."""
    client = openai.OpenAI(
        base_url=cfg.base_url,
        api_key=api_key.get_secret_value() if api_key else "no-key",
        max_retries=2,
        timeout=min(10.0, cfg.request_timeout_s),
    )
    try:
        client.models.list()
    except openai.AuthenticationError:
        raise TeacherUnavailable(f"teacher at {cfg.base_url} rejected the API key in ${cfg.api_key_env}") from None
    except openai.NotFoundError:
        pass  # some compatible servers lack /models; the first real call will tell
    except openai.APIConnectionError as error:
        hint = ""
        if cfg.simulator.autostart and cfg.model != SIMULATOR_MODEL:
            hint = f" (teacher.simulator.autostart starts the offline simulator only for teacher.model {SIMULATOR_MODEL})"
        raise TeacherUnavailable(f"teacher.base_url {cfg.base_url} is unreachable: {error}{hint}") from None


def plan_blocks(num_questions: int, cfg: RtRayConfig) -> tuple[int, int]:
    """(blocks, tasks in flight per caller): enough questions in flight to keep every slot busy."""
    per_block = cfg.generation.questions_per_block
    blocks = max(1, math.ceil(num_questions / per_block))
    slots_per_caller = math.ceil(cfg.teacher.max_concurrency / cfg.teacher.num_callers)
    in_flight = max(2, math.ceil(2 * slots_per_caller / per_block) + 1)
    return blocks, in_flight


def build_dataset(questions: list, cfg: RtRayConfig, api_key: SecretStr | None, governor, cache_only: str | None = None):
    blocks, in_flight = plan_blocks(len(questions), cfg)
    plan = asdict(SamplingPlan.from_config(cfg.generation))  # plain values travel to any node
    ds = ray.data.from_items([q.to_row() for q in questions], override_num_blocks=blocks)
    return ds.map_batches(
        TeacherCaller,
        batch_size=None,
        batch_format="pandas",
        fn_constructor_kwargs={
            "teacher": cfg.teacher.model_dump(mode="json"),
            "plan": plan,
            "api_key": api_key,
            "governor": governor,
            "cache_only": cache_only,
        },
        compute=ray.data.ActorPoolStrategy(
            size=cfg.teacher.num_callers,
            max_tasks_in_flight_per_actor=in_flight,
            max_concurrent_calls_per_actor=in_flight,
        ),
        num_cpus=cfg.teacher.caller_cpus,
    )


def start_governor(cfg: TeacherConfig):
    if cfg.rpm is None and cfg.tpm is None and cfg.max_cost_usd is None:
        return None  # nothing to share between callers
    return TeacherGovernor.remote(cfg.rpm, cfg.tpm, cfg.max_cost_usd)


def run_teacher(questions: list, cfg: RtRayConfig, api_key: SecretStr | None, cache_only: str | None = None):
    """Stream every question's outcome back to the driver, with a live progress bar."""
    ensure_ray(cfg.ray)
    DataContext.get_current().enable_progress_bars = False  # the rich bar below says more
    governor = None if cache_only else start_governor(cfg.teacher)
    totals = CallStats()
    rows, outcomes, records = [], [], []
    try:
        with bar("teacher", total=len(questions)) as progress:
            dataset = build_dataset(questions, cfg, api_key, governor, cache_only)
            for batch in dataset.iter_batches(batch_format="pandas", batch_size=None):
                for row in batch.to_dict("records"):
                    outcome = {"status": row["status"], "error": row["error"], "samples": json.loads(row["samples_json"])}
                    totals.add(json.loads(row["stats_json"]))
                    rows.append(row)
                    outcomes.append(outcome)
                    records.extend(sample_records(row, outcome))
                kept = sum(r["correct"] for r in records)
                detail = (
                    f"kept {kept}/{len(records)} sent {totals.requests} cached {totals.cache_hits} "
                    f"retried {totals.retries} ${totals.cost_usd:.3f}"
                )
                progress.update(completed=len(outcomes), detail=detail)
    finally:
        if governor is not None:
            ray.kill(governor)
    return rows, outcomes, records, totals


def teacher_fingerprint(cfg: RtRayConfig) -> str:
    return cfg.fingerprint_of(*TEACHER_INPUTS)


def reusable_generation(cfg: RtRayConfig, degree: int) -> dict | None:
    """The stats of a finished teacher run in generation.output_dir made with this config's teacher
    inputs at a degree of at least ``degree`` (its first D rationales per question are D's), else None."""
    stats_path = Path(cfg.generation.output_dir) / "stats.json"
    if not stats_path.is_file():
        return None
    stats = json.loads(stats_path.read_text())
    finished = stats.get("status") in TERMINAL_STATUSES and stats.get("degree", 0) >= degree
    return stats if finished and stats.get("teacher_fingerprint") == teacher_fingerprint(cfg) else None


def finished_or_generate(cfg: RtRayConfig, degree: int, rerun: bool = False) -> dict:
    """The stats of the finished teacher set for ``degree`` (reused when its inputs match), generating
    it at that degree otherwise; ``rerun`` generates again (the cache still answers what it holds)."""
    stats = None if rerun else reusable_generation(cfg, degree)
    if stats is None:
        return generate(cfg.with_values(generation={"degree": degree})).stats
    say(f"teacher stage: reusing the finished teacher set in {cfg.generation.output_dir} (D={stats['degree']})")
    note_kept(f"teacher set ({cfg.generation.output_dir})")
    return stats


def generate(cfg: RtRayConfig, parent_run_id: str | None = None) -> GenerationResult:
    from rt_ray import tracking

    data = load_task_data(cfg.task)
    api_key = read_api_key(cfg.teacher)
    out = Path(cfg.generation.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Until the last line of this function, the folder says it is not a finished run.
    write_json(out / "stats.json", {"status": "running", "task": cfg.task.name})
    started = time.monotonic()
    try:
        with teacher_endpoint(cfg.teacher):
            check_teacher(cfg.teacher, api_key)
            mode = f", {describe_batch_mode(cfg.teacher)}" if cfg.teacher.mode == "batch" else ""
            say(f"teacher stage: {len(data.train)} {cfg.task.name} questions, D={cfg.generation.degree}, {cfg.teacher.model}{mode}")
            batches = fill_cache_by_batches(cfg, data.train, api_key) if cfg.teacher.mode == "batch" else None
            cache_only = None if batches is None else ("budget" if batches.stopped_for_budget else "failed")
            rows, outcomes, records, totals = run_teacher(data.train, cfg, api_key, cache_only)
            if batches is not None:  # the final pass only read the cache; the batches did the sending
                totals.add(batches.stats)
    except BaseException as error:
        state = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        write_json(out / "stats.json", {"status": state, "task": cfg.task.name, "error": f"{type(error).__name__}: {error}"})
        if state == "interrupted":
            note_kept(f"every teacher sample received (cache {cfg.teacher.cache_dir})")
            if cfg.teacher.mode == "batch" and (out / "batches.json").is_file():
                note_kept(f"the batches in flight ({out / 'batches.json'}), still running at the provider: the rerun polls them")
        raise
    order = {sample.id: index for index, sample in enumerate(data.train)}
    records.sort(key=lambda r: (order[r["question_id"]], r["sample_index"]))
    kept = keep_correct(records)
    failures = [
        {"question_id": row["id"], "question": row["question"], "status": row["status"], "error": row["error"]}
        for row in rows
        if row["status"] != "ok"
    ]
    stats = summarize(records, outcomes, totals, cfg.generation.degree, time.monotonic() - started)
    stats.update(task=cfg.task.name, teacher_model=cfg.teacher.model, config_fingerprint=cfg.fingerprint(),
                 teacher_fingerprint=teacher_fingerprint(cfg), teacher_simulated=cfg.teacher.model == SIMULATOR_MODEL,
                 teacher_mode=cfg.teacher.mode)  # fmt: skip
    if batches is not None:
        stats["batch_ids"] = batches.batch_ids
    write_jsonl(out / "rationales.jsonl", records)
    write_jsonl(out / "filtered.jsonl", kept)
    write_jsonl(out / "failures.jsonl", failures)
    pd.DataFrame(kept, columns=list(records[0]) if records else None).to_parquet(out / "filtered.parquet")
    stats["filtered_sha256"] = file_sha256(out / "filtered.jsonl")
    with tracking.tracked_run(cfg, stage="generate", parent_run_id=parent_run_id) as run_id:
        stats["mlflow_run_id"] = run_id
        tracking.log_metrics(stats)
        tracking.set_tags({"rt_ray.filtered_sha256": stats["filtered_sha256"], "rt_ray.status": stats["status"],
                           "rt_ray.teacher_simulated": stats["teacher_simulated"]})  # fmt: skip
        write_json(out / "stats.json", stats)
        for name in ("stats.json", "failures.jsonl"):
            tracking.log_artifact(out / name, artifact_path="teacher")
    note_kept(f"teacher set ({out})")
    return GenerationResult(out, stats)


