"""The student stage: fine-tune a student on the teacher's filtered rationales, then evaluate it.

    rt-ray train -c configs/quickstart.yaml      # Fine-tune-CoT, then test accuracy, MLflow, registry
    rt-ray evaluate -c configs/quickstart.yaml   # the trained student against its baselines
    result = train_student(cfg)                  # TrainResult(model_dir, metrics, ...)

Training runs on Ray Train (``TorchTrainer``) with DeepSpeed; the samples reach the workers as a
Ray Data dataset (``get_dataset_shard``); the test split is never trained on. With an object-store
output (``train.output_dir: s3://...``), Ray Train keeps its checkpoints there and the exported model
folder is uploaded beside them (rt_ray/storage.py).
"""

from __future__ import annotations

import math
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from rt_ray.config import RtRayConfig, TrainConfig
from rt_ray.devices import torch_backend
from rt_ray.errors import MissingInput, UserError
from rt_ray.student.data import target_lengths, tokenized_table, training_pairs, typical_output_tokens
from rt_ray.student.deepspeed_config import build_deepspeed_config
from rt_ray.student.models import load_tokenizer, require_peft, student_spec
from rt_ray.student.train_loop import LoopConfig, ValidationPlan
from rt_ray.tasks import answer_type_of, load_task_data
from rt_ray.artifacts import file_sha256, read_finished_generation, read_jsonl
from rt_ray.storage import is_remote, join, local_dir, publish, ray_storage_path, remote_files


ROWS_PER_BLOCK = 10_000  # training samples per Ray Data block (~8 MB of token ids at 200 tokens)


class TrainingDataError(UserError, ValueError):
    """There is nothing (or nothing usable) to train on."""


@dataclass
class TrainResult:
    model_dir: str | Path  # the exported model folder: a local path, or its URI under an object-store output
    metrics: dict
    spec: dict
    lineage: dict = field(default_factory=dict)
    mlflow_run_id: str | None = None


def read_filtered(cfg: RtRayConfig) -> tuple[list[dict], dict]:
    stats = read_finished_generation(cfg.generation.output_dir)
    if stats.get("split", "train") != "train":
        raise TrainingDataError(f"generation.output_dir {cfg.generation.output_dir} holds the teacher's answers to the "
                                f"{stats['split']} split, which a student never trains on; make one with generation.split: train")  # fmt: skip
    path = Path(cfg.generation.output_dir) / "filtered.jsonl"
    records = read_jsonl(path)
    lineage = {
        "generation_run_id": stats.get("mlflow_run_id", ""),
        "filtered_sha256": file_sha256(path),
        "teacher_model": stats.get("teacher_model", ""),
    }
    return records, lineage


def training_run_config(cfg: RtRayConfig, spec: dict, meta: dict, resume_from: str | None, run_id: str | None,
                        progress: dict | None = None, num_samples: int = 0, validation: list | None = None,
                        validate_every: int | None = None) -> LoopConfig:  # fmt: skip
    """The workers' LoopConfig for this run, built once here on the driver."""
    from rt_ray.tracking import resolve_tracking_uri

    train, student = cfg.train, cfg.student
    plan = ValidationPlan(rows=[s.to_row() for s in validation], every_steps=validate_every, mode=meta["format"],
                          patience=train.early_stopping_patience, batch_size=student.eval_batch_size,
                          max_new_tokens=student.max_new_tokens) if validation else None  # fmt: skip
    return LoopConfig(
        spec=spec, meta=meta, seed=train.seed, use_gpu=train.use_gpu, zero_stage=train.zero_stage,
        deepspeed=build_deepspeed_config(train), lr=train.lr, batch_size=train.batch_size, max_steps=train.max_steps,
        warmup_ratio=train.warmup_ratio, checkpoint_every_steps=train.checkpoint_every_steps,
        gradient_checkpointing=train.gradient_checkpointing, stream=num_samples > train.stream_above_samples,
        shuffle_buffer=train.shuffle_buffer, bucket_batches=train.bucket_batches,
        lora=student.lora.model_dump() if student.lora else None,
        torch_threads=None if train.use_gpu else max(1, int(train.cpus_per_worker)),
        resume_from=resume_from if not resume_from or is_remote(resume_from) else str(Path(resume_from).resolve()),
        mlflow_run_id=run_id, tracking_uri=resolve_tracking_uri(cfg.tracking), progress=progress, validation=plan,
    )  # fmt: skip


def fit(cfg: RtRayConfig, samples, loop_config: LoopConfig, name: str, output_dir: str | Path, report_to_tune: bool = False):
    """Ray Train + DeepSpeed over the tokenized samples (``tokenized_table``), its checkpoints under
    ``output_dir``/ray_train (a URI works: every node writes there); returns Ray Train's Result.
    ``report_to_tune``: the caller is a Tune trial (a sweep's), whose scheduler reads the reports."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from rt_ray.cluster import dataset_from_table
    from rt_ray.student.train_loop import train_func

    train = cfg.train
    # A sweep trial whose workers score validation questions forwards each report to Tune, so that
    # its scheduler (ASHA) can stop the trial.
    callbacks = [TuneReportCallback()] if loop_config.validation and report_to_tune else []
    trainer = TorchTrainer(
        train_func,
        train_loop_config={"loop": loop_config},
        torch_config=TorchConfig(backend=torch_backend(train.use_gpu)),
        scaling_config=ScalingConfig(**worker_resources(train)),
        run_config=RunConfig(
            name=name,
            storage_path=ray_storage_path(output_dir, "ray_train"),
            failure_config=FailureConfig(max_failures=train.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
        ),
        datasets={"train": dataset_from_table(samples, blocks=math.ceil(len(samples) / ROWS_PER_BLOCK))},
    )
    return fit_off_the_main_thread(trainer)


def worker_resources(train: TrainConfig) -> dict:
    """Ray Train's ScalingConfig for the training workers: one GPU each under train.use_gpu."""
    resources = {"CPU": train.cpus_per_worker, **({"GPU": 1} if train.use_gpu else {})}
    return {"num_workers": train.num_workers, "use_gpu": train.use_gpu, "resources_per_worker": resources}


def fit_off_the_main_thread(trainer):
    """``trainer.fit()`` in a helper thread. Called on the main thread, Ray Train installs a SIGINT
    handler of its own that aborts the run and then lets the command carry on; from a helper thread
    it does not (as under Tune), so Ctrl-C stays rt-ray's: it interrupts the wait below and unwinds
    the command, and the trainer's actors go with the driver's Ray session."""
    import threading

    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="rt-ray-train-fit", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(timeout=0.5)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def held_out_validation(cfg: RtRayConfig) -> list:
    """The first train.validation_size training questions: the same ones for every method and seed
    (and the same prefix a sweep holds out), so students are stopped on the same evidence."""
    data = load_task_data(cfg.task)
    if cfg.train.validation_size >= len(data.train):
        raise TrainingDataError(f"train.validation_size {cfg.train.validation_size} leaves none of the {len(data.train)} "
                                "training questions to train on")  # fmt: skip
    return data.train[: cfg.train.validation_size]


def prepare_training(cfg: RtRayConfig, fmt: str, degree: int | None, held_out: set[str] | None = None) -> tuple[list, dict, dict]:
    """(source/target pairs, the student's spec with its tokenizer trained on them, data lineage)."""
    data = load_task_data(cfg.task)
    filtered, lineage = read_filtered(cfg) if fmt == "ft_cot" else ([], {})
    held_out = held_out or set()
    filtered = [r for r in filtered if r["question_id"] not in held_out]
    train = [s for s in data.train if s.id not in held_out]
    pairs = training_pairs(filtered, train, fmt, degree, cfg.student.arch)
    if not pairs:
        raise TrainingDataError(f"no {fmt} training samples in {cfg.generation.output_dir} (degree {degree})")
    return pairs, student_spec(cfg.student, texts=[source + target for source, target in pairs]), lineage


def require_checkpoint(resume_from: str | None) -> None:
    """The checkpoint the user named (--resume-from) is there, checked here on the driver: a worker
    that found it missing would be a fault of the run, not the one-line mistake it is."""
    if not resume_from:
        return
    present = bool(remote_files(resume_from)) if is_remote(resume_from) else Path(resume_from).is_dir()
    if not present:
        raise MissingInput(f"--resume-from: no checkpoint folder at {resume_from}")


def train_student(cfg: RtRayConfig, *args, output_dir: str | Path | None = None, **kwargs) -> TrainResult:
    """``_train_student``, as the one run writing its output folder."""
    from rt_ray.locks import output_lock

    output_dir = output_dir or cfg.train.output_dir
    with output_lock(output_dir, "train.output_dir"):
        return _train_student(cfg, *args, output_dir=output_dir, **kwargs)


def model_meta(cfg: RtRayConfig, fmt: str, degree: int | None, spec: dict, samples, lineage: dict) -> dict:
    """What the model folder says of itself. The spec travels with the model so that its untrained
    self (the zero-shot baseline) can be rebuilt."""
    meta = {"arch": cfg.student.arch, "format": fmt, "task": cfg.task.name, "degree": degree, "spec": spec,
            "answer_type": answer_type_of(cfg.task), "default_max_tokens": typical_output_tokens(target_lengths(samples)),
            **lineage}  # fmt: skip
    if cfg.student.lora:
        require_peft()
        meta["lora"] = cfg.student.lora.model_dump()
    return meta


def export_model(result, output_dir: str | Path) -> None:
    """The last checkpoint as output_dir/model, uploaded beside the checkpoints under an object-store output."""
    model_dir = local_dir(output_dir) / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    with result.checkpoint.as_directory() as directory:
        shutil.copytree(directory, model_dir)
    publish(output_dir, "model")


def _train_student(
    cfg: RtRayConfig,
    fmt: str | None = None,
    degree: int | None = None,
    output_dir: str | Path | None = None,
    resume_from: str | None = None,
    parent_run_id: str | None = None,
    held_out: set[str] | None = None,
    run_name: str | None = None,
    progress: dict | None = None,
    validation: list | None = None,
    validate_every: int | None = None,
    report_to_tune: bool = False,
) -> TrainResult:
    """Fine-tune one student (ft_cot on the first D rationales per question, or vanilla) and export it.
    Questions in ``held_out`` (a validation set) are left out of training. Rank 0 posts its progress
    to ``progress`` (``{"board", "key"}``, a sweep's); without it, the driver shows a bar of its own.
    With ``validation`` samples (a sweep's, for ASHA; else train.validation_size training questions),
    the workers score them every ``validate_every`` steps and stop early on train.early_stopping_patience;
    ``report_to_tune`` (a sweep trial) forwards those reports to Tune's scheduler."""
    from rt_ray import tracking
    from rt_ray.cluster import ensure_ray
    from rt_ray.progress import new_board, say, watch_board

    fmt = fmt or cfg.student.format
    output_dir = output_dir or cfg.train.output_dir
    require_checkpoint(resume_from)
    if validation is None and cfg.train.validation_size:
        validation, validate_every = held_out_validation(cfg), cfg.train.validate_every_steps
        held_out = (held_out or set()) | {s.id for s in validation}
    pairs, spec, lineage = prepare_training(cfg, fmt, degree, held_out)
    samples = tokenized_table(load_tokenizer(spec), pairs, cfg.student.arch, cfg.student.max_length)
    meta = model_meta(cfg, fmt, degree, spec, samples, lineage)
    ensure_ray(cfg.ray)
    tags = {f"rt_ray.{k}": v for k, v in lineage.items()} | {"rt_ray.format": fmt}
    started = time.monotonic()
    run_name = run_name or f"{cfg.run_name}-{fmt}"
    own_bar = progress is None
    if own_bar:
        say(f"training {fmt} student: {len(samples)} samples, {cfg.train.max_steps} steps on {cfg.train.num_workers} workers "
            f"(DeepSpeed ZeRO-{cfg.train.zero_stage}{f', LoRA r={cfg.student.lora.r}' if cfg.student.lora else ''})")  # fmt: skip
        progress = {"board": new_board(), "key": f"train {fmt}"}
    with tracking.tracked_run(cfg, stage="train", run_name=run_name, parent_run_id=parent_run_id, tags=tags) as run_id:
        tracking.log_metrics({"train_samples": len(samples), "degree": degree or 0})
        loop_config = training_run_config(cfg, spec, meta, resume_from, run_id, progress, num_samples=len(samples),
                                          validation=validation, validate_every=validate_every)  # fmt: skip
        with watch_board(progress["board"]) if own_bar else nullcontext():
            result = fit(cfg, samples, loop_config, name=f"{cfg.run_name}-{fmt}-{run_id[:8]}", output_dir=output_dir,
                         report_to_tune=report_to_tune)  # fmt: skip
        if result.error is not None:
            raise result.error
        export_model(result, output_dir)
        numbers = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}  # not Tune's ids
        metrics = {**numbers, "train_samples": len(samples), "wall_s": time.monotonic() - started}
        tracking.log_metrics({f"final_{k}": v for k, v in metrics.items()})
    return TrainResult(join(output_dir, "model"), metrics, spec, lineage, run_id)
