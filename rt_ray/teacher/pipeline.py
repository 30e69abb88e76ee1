"""The teacher stage: Zero-shot-CoT rationales for every training question, on Ray Data.

    rt-ray generate -c configs/quickstart.yaml
    result = generate(load_config("configs/quickstart.yaml"))

Questions -> D rationales each (one request with n=D where the endpoint allows) -> a greedy
step-2 call per rationale for its answer -> parse -> judge against gold -> keep the correct ones.
Writes to ``generation.output_dir``: rationales.jsonl (all), filtered.jsonl and filtered.parquet
(kept), failures.jsonl, and stats.json, whose ``status`` says whether the set is finished.

Finished questions leave the driver as they arrive: every ``generation.part_every_s`` they go to a part
file under ``parts/`` (``rt_ray.teacher.parts``), and the outputs are assembled from the parts in one
streaming pass at the end. The driver's memory stays flat with the run's size, and a run that is
killed leaves its parts: the rerun skips the questions they hold and asks the cache for the rest.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import openai
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import ray
from pydantic import SecretStr

from rt_ray.errors import UserError
from rt_ray.artifacts import TERMINAL_STATUSES, file_sha256, record_schema, replacing, write_json
from rt_ray.cluster import configure_ray_data, dataset_from_table, ensure_ray
from rt_ray.config import SIMULATOR_MODEL, TEACHER_INPUTS, ConfigError, RtRayConfig, TaskConfig, TeacherConfig
from rt_ray.console import note_kept
from rt_ray.locks import output_lock
from rt_ray.progress import bar, say
from rt_ray.tasks import TaskData, load_task_data
from rt_ray.teacher.accounting import CALL_STATS_FIELDS, CallStats
from rt_ray.teacher.batch_mode import describe as describe_batch_mode
from rt_ray.teacher.batch_mode import fill_cache_by_batches
from rt_ray.teacher.callers import TeacherCaller
from rt_ray.teacher.filtering import Tally
from rt_ray.teacher.governor import TeacherGovernor
from rt_ray.teacher.parts import Parts
from rt_ray.simulator import SimulatorProcess, is_listening
from rt_ray.teacher.teach import SamplingPlan

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class TeacherUnavailable(UserError, RuntimeError):
    """The teacher endpoint cannot be reached or refuses the run."""


@dataclass(frozen=True)
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


def answer_key_of(task: TaskConfig) -> tuple[list[str], str, dict[str, str]] | None:
    """What the simulator reads as a custom task's answer key: the task's own files."""
    if task.name != "custom" or not task.path:
        return None
    return [str(p) for p in (task.path, task.test_path) if p], task.answer_type, dict(task.fields)


@contextmanager
def teacher_endpoint(cfg: TeacherConfig, task: TaskConfig) -> Iterator[None]:
    """Start the teacher simulator when the config asks for it, the teacher is the simulator, and
    nothing listens there yet (with a custom task's files as its answer key). Any other model's
    endpoint that is down stays down: a student must never learn from simulated rationales in place
    of a real teacher's without the config saying so."""
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
        wrong_rate=sim.wrong_rate, fault_rate=sim.fault_rate, seed=sim.seed, answer_key=answer_key_of(task),
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


DRIVER_CUT_BLOCKS = 256  # ~0.3 s of puts; a run this small needs no repartition task at all


def build_dataset(questions: list[tuple[int, object]], cfg: RtRayConfig, api_key: SecretStr | None, governor,
                  cache_only: str | None = None):  # fmt: skip
    blocks, in_flight = plan_blocks(len(questions), cfg)
    plan = asdict(SamplingPlan.from_config(cfg.generation, cfg.task))  # plain values travel to any node
    # One Arrow table, split into blocks: from_items (or a put per question) cost the driver
    # ~0.06-0.1 ms a question, 6-10 s at 100k.
    table = pa.Table.from_pylist([{**question.to_row(), "index": index} for index, question in questions])
    ds = dataset_from_table(table, blocks, first_blocks=max(DRIVER_CUT_BLOCKS, cfg.teacher.num_callers * in_flight))
    del table  # it is in the object store now
    return ds.map_batches(
        TeacherCaller,
        batch_size=None,
        batch_format="pyarrow",
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


@dataclass
class TeacherPass:
    """What one pass over the questions sent and saw; its questions went to the parts as they finished."""

    totals: CallStats = field(default_factory=CallStats)
    statuses: Counter = field(default_factory=Counter)
    records: int = 0
    kept: int = 0


QUESTIONS_PER_PART = 5000  # a part is flushed at this size too, whatever part_every_s says: memory stays bounded


def run_teacher(questions: list[tuple[int, object]], cfg: RtRayConfig, api_key: SecretStr | None,
                cache_only: str | None = None, parts: Parts | None = None, resumed: int = 0) -> TeacherPass:  # fmt: skip
    """Run the teacher step over ``(index, question)`` pairs with a live progress bar, handing finished
    questions to ``parts`` every ``generation.part_every_s`` (and on Ctrl-C) instead of keeping them."""
    ensure_ray(cfg.ray)
    configure_ray_data()  # the rich bar below says more; a map's error as it is
    governor = None if cache_only else start_governor(cfg.teacher)
    result, pending = TeacherPass(), []
    flushed_at = time.monotonic()
    try:
        with bar("teacher", total=len(questions) + resumed) as progress:
            progress.update(completed=resumed)
            dataset = build_dataset(questions, cfg, api_key, governor, cache_only)
            for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                result.totals.add({name: pc.sum(batch[name]).as_py() for name in CALL_STATS_FIELDS})
                result.statuses.update(batch["status"].to_pylist())
                result.records += pc.sum(batch["records"]).as_py()
                result.kept += pc.sum(batch["kept"]).as_py()
                if parts is not None:
                    pending.extend(zip(batch["index"].to_pylist(), batch["entry"].to_pylist()))
                now = time.monotonic()
                if parts is not None and (now - flushed_at >= cfg.generation.part_every_s or len(pending) >= QUESTIONS_PER_PART):
                    parts.write(pending)
                    pending, flushed_at = [], now
                totals = result.totals
                detail = (
                    f"kept {result.kept}/{result.records} sent {totals.requests} cached {totals.cache_hits} "
                    f"retried {totals.retries} ${totals.cost_usd:.3f}"
                )
                progress.update(completed=resumed + sum(result.statuses.values()), detail=detail)
    finally:
        if parts is not None:
            parts.write(pending)  # what finished is kept, also on Ctrl-C or an error
        if governor is not None:
            ray.kill(governor)
    return result


def assemble_outputs(parts: Parts, out: Path) -> Tally:
    """rationales.jsonl, filtered.jsonl/.parquet and failures.jsonl from the parts, in question order,
    in one streaming pass (the callers serialized every line; nothing is held); each file appears
    whole or not at all."""
    tally = Tally()
    with (replacing(out / "rationales.jsonl", "wb") as rationales, replacing(out / "filtered.jsonl", "wb") as filtered,
          replacing(out / "failures.jsonl", "wb") as failures, ParquetFromJsonLines(out / "filtered.parquet") as parquet):  # fmt: skip
        for entry in parts.merged():
            lines, kept = entry["lines"], entry["kept"]
            tally.add_question(entry["status"], len(lines), sum(kept), entry.get("failure", ""))
            if len(lines) > 1 and tally.wants_rationales():
                tally.add_rationales([orjson.loads(line)["rationale"] for line in lines])
            if entry["status"] != "ok":
                row = orjson.loads(entry["question"])
                failures.write(orjson.dumps({"question_id": row["question_id"], "question": row["question"],
                                             "status": entry["status"], "failure": entry.get("failure", ""),
                                             "error": entry["error"]}) + b"\n")  # fmt: skip
            if lines:  # a write a question, not a line: a million-line file is a million calls less
                rationales.write(b"".join(lines))
            if any(kept):
                text = b"".join(line for line, keep in zip(lines, kept) if keep)
                filtered.write(text)
                parquet.write(text)
    return tally


class ParquetFromJsonLines:
    """filtered.parquet from the same lines as filtered.jsonl, converted as they are written: Arrow's JSON
    reader (C++, without the GIL) parses each 16 MB of lines in a thread while the merge goes on, with
    the record schema fixed in rt_ray.artifacts; the file appears whole or not at all."""

    CHUNK_BYTES = 16 << 20

    def __init__(self, target: Path):
        self.target = target
        self.schema = record_schema()
        self.buffer: list[bytes] = []
        self.buffered = 0
        self.converting: Future | None = None
        self.wrote = False

    def __enter__(self) -> "ParquetFromJsonLines":
        self._replacing = replacing(self.target, "wb")
        self._writer = pq.ParquetWriter(self._replacing.__enter__(), self.schema)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="filtered-parquet")
        return self

    def write(self, lines: bytes) -> None:
        self.buffer.append(lines)
        self.buffered += len(lines)
        if self.buffered >= self.CHUNK_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self.converting is not None:
            self.converting.result()  # one chunk in flight: order kept, memory bounded
        data, self.buffer, self.buffered = b"".join(self.buffer), [], 0
        if data:
            self.converting = self._thread.submit(self._convert, data)

    def _convert(self, data: bytes) -> None:
        options = pa_json.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore")
        self._writer.write_table(pa_json.read_json(pa.BufferReader(data), parse_options=options))
        self.wrote = True

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                self._flush()
                if self.converting is not None:
                    self.converting.result()
        finally:
            self._thread.shutdown(wait=True)
            if not self.wrote:
                self._writer.write_table(self.schema.empty_table())  # an empty set still has the schema
            self._writer.close()
            self._replacing.__exit__(kind, error, trace)


def teacher_fingerprint(cfg: RtRayConfig, data: TaskData) -> str:
    """The teacher's inputs: its settings and the task's questions themselves (not where they were read)."""
    return cfg.fingerprint_of(*TEACHER_INPUTS, upstream=data.fingerprint())


def task_data_for_teacher(cfg: RtRayConfig) -> tuple[RtRayConfig, TaskData]:
    """The task's questions, every row checked before anything is sent; a chat file's system message
    becomes the task's instructions when the config gives none."""
    data = load_task_data(cfg.task)
    if data.instructions and not cfg.task.instructions:
        cfg = cfg.with_values(task={"instructions": data.instructions})
    return cfg, data


def reusable_generation(cfg: RtRayConfig, degree: int) -> dict | None:
    """The stats of a finished teacher run in generation.output_dir made with this config's teacher
    inputs at a degree of at least ``degree`` (its first D rationales per question are D's), else None."""
    stats_path = Path(cfg.generation.output_dir) / "stats.json"
    if not stats_path.is_file():
        return None
    stats = json.loads(stats_path.read_text())
    finished = stats.get("status") in TERMINAL_STATUSES and stats.get("degree", 0) >= degree
    finished = finished and stats.get("split", "train") == cfg.generation.split
    if not finished:
        return None
    cfg, data = task_data_for_teacher(cfg)
    return stats if stats.get("teacher_fingerprint") == teacher_fingerprint(cfg, data) else None


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
    """The teacher stage, as the one run writing generation.output_dir."""
    with output_lock(cfg.generation.output_dir, "generation.output_dir"):
        return _generate(cfg, parent_run_id)


def _generate(cfg: RtRayConfig, parent_run_id: str | None = None) -> GenerationResult:
    from rt_ray import tracking

    cfg, data = task_data_for_teacher(cfg)
    for note in data.notes:
        say(note)
    questions = data.train if cfg.generation.split == "train" else data.test
    api_key = read_api_key(cfg.teacher)
    out = Path(cfg.generation.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = teacher_fingerprint(cfg, data)
    parts = Parts(out / "parts", {"teacher_fingerprint": fingerprint, "degree": cfg.generation.degree,
                                  "questions": len(questions), "split": cfg.generation.split})  # fmt: skip
    # Until the last line of this function, the folder says it is not a finished run.
    write_json(out / "stats.json", {"status": "running", "task": cfg.task.name})
    started = time.monotonic()
    try:
        with teacher_endpoint(cfg.teacher, cfg.task):
            check_teacher(cfg.teacher, api_key)
            done = parts.open()
            todo = [(index, sample) for index, sample in enumerate(questions) if index not in done]
            mode = f", {describe_batch_mode(cfg.teacher)}" if cfg.teacher.mode == "batch" else ""
            resumed = f" ({len(done)} finished by the interrupted run, kept in {parts.directory})" if done else ""
            split = "" if cfg.generation.split == "train" else f" {cfg.generation.split}"
            say(f"teacher stage: {len(questions)} {cfg.task.name}{split} questions, D={cfg.generation.degree}, {cfg.teacher.model}{mode}{resumed}")
            batches = fill_cache_by_batches(cfg, [s for _, s in todo], api_key) if cfg.teacher.mode == "batch" else None
            cache_only = None if batches is None else ("budget" if batches.stopped_for_budget else "failed")
            teacher_pass = run_teacher(todo, cfg, api_key, cache_only, parts=parts, resumed=len(done))
            if batches is not None:  # the final pass only read the cache; the batches did the sending
                teacher_pass.totals.add(batches.stats)
    except BaseException as error:
        state = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        write_json(out / "stats.json", {"status": state, "task": cfg.task.name, "error": f"{type(error).__name__}: {error}"})
        if state == "interrupted":
            note_kept(f"the finished questions ({parts.directory}) and every teacher sample received (cache {cfg.teacher.cache_dir})")
            if cfg.teacher.mode == "batch" and (out / "batches.json").is_file():
                note_kept(f"the batches in flight ({out / 'batches.json'}), still running at the provider: the rerun polls them")
        raise
    tally = assemble_outputs(parts, out)
    parts.clear()
    stats = tally.stats(teacher_pass.totals, cfg.generation.degree, time.monotonic() - started)
    stats.update(task=cfg.task.name, split=cfg.generation.split, teacher_model=cfg.teacher.model, config_fingerprint=cfg.fingerprint(),
                 teacher_fingerprint=fingerprint, teacher_simulated=cfg.teacher.model == SIMULATOR_MODEL,
                 teacher_mode=cfg.teacher.mode, questions_resumed=len(done))  # fmt: skip
    if batches is not None:
        stats["batch_ids"] = batches.batch_ids
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
