"""``train_func``: the Ray Train worker loop, DeepSpeed ZeRO 0-3, on CPU (gloo) or GPU (NCCL).

Everything arrives through ``config`` (built by ``rt_ray.student.trainer``), so the same function runs
on 2 CPU workers here and on many GPUs across nodes. Checkpoints are consolidated Hugging Face
weights (gathered on rank 0 under ZeRO-3) plus the tokenizer and ``trainer_state.json``; a restarted
worker group resumes from the latest one.
"""

from __future__ import annotations

import json
import logging
import os
import random
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TRAINER_STATE = "trainer_state.json"
logger = logging.getLogger(__name__)


def _load_checkpoint(model, directory: str) -> dict:
    from safetensors.torch import load_file

    adapter = Path(directory) / "adapter_model.safetensors"
    if adapter.is_file():  # a LoRA run's checkpoint: the adapter; the base was rebuilt from spec and seed
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(adapter)))
        return json.loads((Path(directory) / TRAINER_STATE).read_text())
    weights = load_file(str(Path(directory) / "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # Tied weights (lm_head = embeddings) are stored once; anything else missing is a real mismatch.
    real_missing = [k for k in missing if "lm_head" not in k and "embed_tokens" not in k and "decoder.embed" not in k]
    if real_missing or unexpected:
        raise RuntimeError(f"checkpoint {directory} does not fit the student: missing {real_missing}, unexpected {unexpected}")
    return json.loads((Path(directory) / TRAINER_STATE).read_text())


def _state_dict_for_export(engine, zero_stage: int):
    if zero_stage == 3:
        return engine._zero3_consolidated_16bit_state_dict()  # every rank joins; rank 0 gets it
    return engine.module.state_dict()


@dataclass(frozen=True)
class ValidationPlan:
    """Held-out questions the workers score every ``every_steps`` steps (early stopping, ASHA)."""

    rows: list[dict]
    every_steps: int
    mode: str
    patience: int | None
    batch_size: int
    max_new_tokens: int


@dataclass(frozen=True)
class LoopConfig:
    """All a training worker needs, built once on the driver (rt_ray.student.trainer.training_run_config) and
    shipped to every worker: a misspelled field fails there, before any worker starts."""

    spec: dict
    meta: dict
    seed: int
    use_gpu: bool
    zero_stage: int
    deepspeed: dict
    lr: float
    batch_size: int
    max_steps: int
    warmup_ratio: float
    checkpoint_every_steps: int
    gradient_checkpointing: bool = False
    stream: bool = False
    shuffle_buffer: int = 0
    bucket_batches: int = 0
    lora: dict | None = None
    torch_threads: int | None = None
    resume_from: str | None = None
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    progress: dict | None = None  # rank 0 posts to this progress board ({"board", "key"})
    validation: ValidationPlan | None = None


def train_func(config: dict) -> None:
    """The worker loop: ``config["loop"]`` is the run's LoopConfig."""
    loop: LoopConfig = config["loop"]
    if not loop.use_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import ray.train
    import torch

    from rt_ray.progress import post_progress, register_worker_group

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    if loop.torch_threads:
        torch.set_num_threads(loop.torch_threads)
    model, tokenizer, parameters = student_to_train(loop, rank)
    state = restored_state(model, loop)
    engine, scheduler = start_engine(model, loop, state["step"])
    progress = loop.progress if rank == 0 else None  # rank 0 posts to the driver's bar (fire and forget)
    reporter = Reporter(loop, engine, scheduler, tokenizer, state, rank, progress, parameters)
    post_progress(progress, phase="training", step=reporter.step, max_steps=loop.max_steps)
    register_worker_group(progress)
    train_steps(loop, engine, tokenizer.pad_token_id, reporter, rank, world)
    reporter.report(final=True)


def student_to_train(loop: LoopConfig, rank: int):
    """(model, tokenizer, its parameter counts): the same weights on every worker, with LoRA adapters
    when asked for; counted here, before DeepSpeed (ZeRO-3 partitions them to empty tensors)."""
    from rt_ray.student.models import add_lora, build_student, enable_gradient_checkpointing, parameter_counts

    model, tokenizer = build_student(loop.spec, seed=loop.seed)
    if loop.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if loop.lora:
        model = add_lora(model, loop.lora, loop.spec["arch"])
    parameters = parameter_counts(model)
    if rank == 0:
        logger.info("student: %(trainable_params)d of %(total_params)d parameters train", parameters)
    return model, tokenizer, parameters


def restored_state(model, loop: LoopConfig) -> dict:
    """The trainer state to go on from (step, starts), loading its weights into ``model``: Ray Train's
    latest checkpoint after a worker group restart, else the --resume-from folder, else a new run."""
    import ray.train

    state = {"step": 0, "starts": []}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # the worker group was restarted after a failure
        with checkpoint.as_directory() as directory:
            state = _load_checkpoint(model, directory)
    elif loop.resume_from:
        from rt_ray.storage import fetched

        state = _load_checkpoint(model, str(fetched(loop.resume_from)))
    return {**state, "starts": state.get("starts", []) + [state["step"]]}


def start_engine(model, loop: LoopConfig, start_step: int):
    """(DeepSpeed engine, LR scheduler): torch's AdamW on the trainable parameters (no compiled op on
    any device), the schedule taken up at ``start_step``."""
    import deepspeed
    import torch

    from rt_ray.student.deepspeed_config import warmup_then_linear_decay

    warmup = int(loop.warmup_ratio * loop.max_steps)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=loop.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_then_linear_decay(s + start_step, warmup, loop.max_steps)
    )
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler, config=loop.deepspeed)
    return engine, scheduler


def train_steps(loop: LoopConfig, engine, pad_id: int, reporter: "Reporter", rank: int, world: int) -> None:
    """Steps until max_steps or an early stop, each ``grad_accum`` micro-batches; reports at
    checkpoints and validations (the final report is the caller's)."""
    import ray.train

    from rt_ray.progress import post_progress

    shard = ray.train.get_dataset_shard("train")
    batches = (streamed_batches if loop.stream else in_memory_batches)(shard, loop, pad_id, rank)
    accumulation, micro = loop.deepspeed["gradient_accumulation_steps"], 0
    posted_at, tokens_since_post, recent_loss = time.perf_counter(), 0, None
    for padded in batches:
        batch = {key: value.to(engine.device) for key, value in padded.items()}
        loss = engine(**batch).loss
        engine.backward(loss)
        engine.step()
        micro += 1
        batch_tokens = int(batch["attention_mask"].sum())
        reporter.add(loss.item(), batch_tokens)
        recent_loss = reporter.losses[-1] if recent_loss is None else 0.9 * recent_loss + 0.1 * reporter.losses[-1]
        tokens_since_post += batch_tokens
        if micro % accumulation:
            continue
        step = reporter.next_step()
        now = time.perf_counter()
        if reporter.progress and (now - posted_at >= 1.0 or step >= loop.max_steps):
            # rank 0's own rate times the workers: the all-reduced figure comes with each checkpoint
            post_progress(reporter.progress, step=step, loss=recent_loss, tokens_per_s=tokens_since_post * world / max(now - posted_at, 1e-9))
            posted_at, tokens_since_post = now, 0
        checkpoint_due = step % loop.checkpoint_every_steps == 0
        validation_due = loop.validation is not None and step % loop.validation.every_steps == 0
        if step < loop.max_steps and (checkpoint_due or validation_due):
            reporter.report(final=False, checkpoint_due=checkpoint_due)
        # Every rank scored the same questions with the same weights, so every rank stops at the same step.
        if step >= loop.max_steps or reporter.watch.stopped:
            break


class Reporter:
    """A worker's reports: the window's metrics (all-reduced over the workers), validation and early
    stopping, the values Tune needs, checkpoints and MLflow. Its state is the current step and the
    window since the last report."""

    def __init__(self, loop: LoopConfig, engine, scheduler, tokenizer, state: dict, rank: int, progress: dict | None,
                 parameters: dict):  # fmt: skip
        self.loop, self.engine, self.scheduler, self.tokenizer, self.state = loop, engine, scheduler, tokenizer, state
        self.rank, self.progress, self.step, self.parameters = rank, progress, state["step"], parameters
        self.watch = Plateau(loop.validation.patience if loop.validation else None)
        self.losses: list[float] = []
        self.tokens = 0
        self.window_start = self.run_start = time.perf_counter()

    def add(self, loss: float, tokens: int) -> None:
        self.losses.append(loss)
        self.tokens += tokens

    def next_step(self) -> int:
        self.step += 1
        return self.step

    def report(self, final: bool, checkpoint_due: bool = True) -> None:
        import ray.train

        metrics = {**self.window_metrics(), **self.validated(final)}
        self.losses, self.tokens, self.window_start = [], 0, time.perf_counter()
        if final:
            metrics["export_check"] = _probe_logit_sum(self.engine, self.tokenizer, self.loop.spec["arch"], self.engine.device)
        if not (checkpoint_due or final):
            self.log_to_mlflow(metrics)
            ray.train.report({**metrics, **self.for_tune(final)})
            return
        self.checkpoint(metrics, final)

    def window_metrics(self) -> dict:
        """Loss and tokens/s of every worker since the last report, and the largest worker's peak RSS."""
        import torch.distributed as dist

        counts, peak_rss = window_tensors(self.tokens, self.losses, self.engine.device)
        dist.all_reduce(counts)  # every worker's tokens and loss, not just rank 0's
        elapsed = time.perf_counter() - self.window_start
        dist.all_reduce(peak_rss, op=dist.ReduceOp.MAX)  # the largest worker's
        return {"step": self.step, "loss": counts[1].item() / max(1.0, counts[2].item()),
                "tokens_per_s": counts[0].item() / max(elapsed, 1e-9), "lr": self.scheduler.get_last_lr()[0],
                "train_time_s": time.perf_counter() - self.run_start, "worker_peak_rss_mb": peak_rss.item(),
                **self.parameters}  # fmt: skip

    def validated(self, final: bool) -> dict:
        """Validation accuracy at this step (scored once a step: the last report may follow a
        validation at the very same step), the best so far, and where an early stop happened."""
        from rt_ray.progress import post_progress

        validation = self.loop.validation
        if validation is None:
            return {}
        if self.watch.last_step != self.step:
            post_progress(self.progress, phase="validating")
            self.watch.add(self.step, validation_accuracy(self.engine, self.tokenizer, self.loop.spec["arch"], validation))
            post_progress(self.progress, phase="training", validation_accuracy=self.watch.last)
        metrics = {"validation_accuracy": self.watch.last, "best_validation_accuracy": self.watch.best,
                   "best_validation_step": self.watch.best_step}  # fmt: skip
        if final and self.watch.stopped_before(self.step, self.loop.max_steps):
            metrics["stopped_early_at_step"] = self.step
        return metrics

    def for_tune(self, final: bool) -> dict:
        """What Tune needs beside the numbers (forwarded by TuneReportCallback): the step on the
        scheduler's clock (absent at the end: the trial's own result comes after evaluation), and the
        MLflow run to end if the scheduler stops the trial (its worker group is on the progress board)."""
        if self.loop.validation is None:
            return {}
        return {"mlflow_run_id": self.loop.mlflow_run_id, **({} if final else {"validated_step": self.step})}

    def log_to_mlflow(self, metrics: dict) -> None:
        from rt_ray import tracking

        if self.rank == 0 and self.loop.mlflow_run_id:
            tracking.log_metrics_to_run(self.loop.tracking_uri, self.loop.mlflow_run_id, metrics, self.step)

    def checkpoint(self, metrics: dict, final: bool) -> None:
        """Every rank joins the export (ZeRO-3 gathers on rank 0); rank 0 writes the folder: the
        adapter at checkpoints of a LoRA run (a resume rebuilds the same base), at the end the export
        asked for; plain Hugging Face weights otherwise."""
        import ray.train

        from rt_ray.student.models import save_lora_student, save_student

        loop, exported = self.loop, _state_dict_for_export(self.engine, self.loop.zero_stage)
        with tempfile.TemporaryDirectory() as directory:
            saved = None
            if self.rank == 0:
                if loop.lora:
                    save_lora_student(self.engine.module, self.tokenizer, directory, loop.meta, exported, loop.spec, loop.seed,
                                      loop.lora, merged=final and loop.lora["export"] == "merged")  # fmt: skip
                else:
                    save_student(self.engine.module, self.tokenizer, directory, loop.meta, state_dict=exported)
                Path(directory, TRAINER_STATE).write_text(json.dumps({**self.state, "step": self.step, "final": final}))
                saved = ray.train.Checkpoint.from_directory(directory)
                self.log_to_mlflow(metrics)
            ray.train.report({**metrics, **self.for_tune(final)}, checkpoint=saved)


def in_memory_batches(shard, loop: LoopConfig, pad_id: int, rank: int):
    """Padded batches, epoch after epoch, from the shard held in memory. One Ray Data pass fills it
    (token ids: small next to the model for a set of up to train.stream_above_samples); every epoch
    after it is a seeded reshuffle in memory. Re-reading the shard each epoch cost a Ray Data
    execution (3-4 s) per epoch, and one fixed order put a question's D rationales in the same batch
    every epoch."""
    from rt_ray.student.data import epoch_batches, pad_batch

    rows = [{"input_ids": list(r["input_ids"]), "labels": list(r["labels"])} for r in shard.iter_rows()]
    if not rows:
        raise RuntimeError(f"worker {rank} got no training samples: fewer samples than workers?")
    shuffler = random.Random(loop.seed * 1009 + rank)
    while True:
        for batch in epoch_batches(rows, loop.batch_size, shuffler, loop.bucket_batches):
            yield pad_batch(batch, pad_id)


def streamed_batches(shard, loop: LoopConfig, pad_id: int, rank: int):
    """Padded batches, epoch after epoch, streamed from the shard: token ids stay Arrow/numpy arrays
    and a local shuffle buffer mixes them, so the worker's memory does not grow with the set."""
    from functools import partial

    from rt_ray.student.data import pad_arrays

    epoch = 0
    while True:
        seen = 0
        for batch in shard.iter_torch_batches(
            batch_size=loop.batch_size,
            local_shuffle_buffer_size=loop.shuffle_buffer,
            local_shuffle_seed=loop.seed * 1009 + rank * 101 + epoch,
            collate_fn=partial(pad_arrays, pad_id=pad_id),
        ):
            seen += 1
            yield batch
        if not seen:
            raise RuntimeError(f"worker {rank} got no training samples: fewer samples than workers?")
        epoch += 1


class Plateau:
    """Validation accuracies as they come, and whether ``patience`` of them in a row brought no better
    one (None: never stop). The model exported is the one at the stop, ``patience`` validations after
    the best: restoring the best weights under ZeRO-3 would mean a checkpoint reload on every rank, and
    on a plateau the two differ by less than the validation set can tell. A worker group restarted
    after a failure starts counting again."""

    def __init__(self, patience: int | None):
        self.patience = patience
        self.best, self.best_step, self.last, self.last_step, self.since_best = float("-inf"), None, None, None, 0

    def add(self, step: int, accuracy: float) -> None:
        self.last, self.last_step = accuracy, step
        if accuracy > self.best:
            self.best, self.best_step, self.since_best = accuracy, step, 0
        else:
            self.since_best += 1

    @property
    def stopped(self) -> bool:
        return self.patience is not None and self.since_best >= self.patience

    def stopped_before(self, step: int, max_steps: int) -> bool:
        """Whether the plateau ended training early: one found at the step cap saved no step."""
        return self.stopped and step < max_steps


def validation_accuracy(engine, tokenizer, arch: str, validation: ValidationPlan) -> float:
    """Greedy answers to the held-out questions, scored as evaluation scores them. Every rank
    generates the same batches (identical greedy outputs, so the same number of forward passes):
    under ZeRO-3 each forward pass gathers parameters from all ranks, so no rank may sit it out."""
    from rt_ray.student.evaluate import answer_and_judge
    from rt_ray.tasks.base import Sample

    samples = [Sample.from_row(row) for row in validation.rows]
    size, correct, mode = validation.batch_size, 0, validation.mode
    engine.eval()
    for start in range(0, len(samples), size):
        judged = answer_and_judge(engine.module, tokenizer, arch, mode, samples[start : start + size], validation.max_new_tokens)
        correct += sum(j["correct"] for _, j in judged)
    engine.train()
    return correct / max(1, len(samples))


PROBE_TEXT = "A coin is heads up."


def probe_inputs(tokenizer, arch: str, device) -> dict:
    """The fixed probe text as model inputs on ``device``."""
    import torch

    ids = torch.tensor([tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]], device=device)
    return {"input_ids": ids} if arch == "decoder" else {"input_ids": ids, "labels": ids}


def window_tensors(tokens: int, losses: list[float], device):
    """(tokens, loss sum, loss count) and this process's peak RSS in MB, as tensors to all-reduce: on
    the worker's own device, since NCCL reduces GPU tensors only."""
    import torch

    counts = torch.tensor([float(tokens), float(sum(losses)), float(len(losses))], device=device)
    peak_rss = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0], device=device)  # KB on Linux
    return counts, peak_rss


def _probe_logit_sum(engine, tokenizer, arch: str, device) -> float:
    """Sum of the trained model's logits on a fixed text: a reloaded export must give the same."""
    import torch

    inputs = probe_inputs(tokenizer, arch, device)
    engine.eval()
    with torch.no_grad():
        value = engine(**inputs).logits.float().sum().item()  # every rank joins (ZeRO-3 gathers)
    engine.train()
    return value

