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


def train_func(config: dict) -> None:
    if not config["use_gpu"]:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    import ray.train
    import torch
    import torch.distributed as dist

    from rt_ray import tracking
    from rt_ray.progress import post_progress, register_worker_group
    from rt_ray.student.deepspeed_config import warmup_then_linear_decay
    from rt_ray.student.models import (add_lora, build_student, enable_gradient_checkpointing, parameter_counts,
                                       save_lora_student, save_student)  # fmt: skip

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    if config.get("torch_threads"):
        torch.set_num_threads(config["torch_threads"])
    model, tokenizer = build_student(config["spec"], seed=config["seed"])
    if config.get("gradient_checkpointing"):
        enable_gradient_checkpointing(model)
    lora = config.get("lora")
    if lora:
        model = add_lora(model, lora, config["spec"]["arch"])
    parameters = parameter_counts(model)
    if rank == 0:
        logger.info("student: %(trainable_params)d of %(total_params)d parameters train", parameters)

    state = {"step": 0, "starts": []}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # the worker group was restarted after a failure
        with checkpoint.as_directory() as directory:
            state = _load_checkpoint(model, directory)
    elif config.get("resume_from"):
        from rt_ray.storage import fetched

        state = _load_checkpoint(model, str(fetched(config["resume_from"])))
    start_step = state["step"]
    state["starts"] = state.get("starts", []) + [start_step]

    max_steps, accumulation = config["max_steps"], config["deepspeed"]["gradient_accumulation_steps"]
    warmup = int(config["warmup_ratio"] * max_steps)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config["lr"], weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_then_linear_decay(s + start_step, warmup, max_steps)
    )
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config["deepspeed"]
    )
    device = engine.device

    shard = ray.train.get_dataset_shard("train")
    step, micro, losses, tokens = start_step, 0, [], 0
    window_start = run_start = time.perf_counter()

    validation = config.get("validation")  # held-out questions, scored every validation["every_steps"]
    watch = Plateau(validation["patience"] if validation else None)

    def report(final: bool, checkpoint_due: bool = True) -> None:
        nonlocal losses, tokens, window_start
        counts, peak_rss = window_tensors(tokens, losses, device)
        dist.all_reduce(counts)  # every worker's tokens and loss, not just rank 0's
        elapsed = time.perf_counter() - window_start
        dist.all_reduce(peak_rss, op=dist.ReduceOp.MAX)  # the largest worker's
        metrics = {
            "step": step,
            "loss": counts[1].item() / max(1.0, counts[2].item()),
            "tokens_per_s": counts[0].item() / max(elapsed, 1e-9),
            "lr": scheduler.get_last_lr()[0],
            "train_time_s": time.perf_counter() - run_start,
            "worker_peak_rss_mb": peak_rss.item(),
            **parameters,
        }
        if validation:
            if watch.last_step != step:  # the last report may follow a validation at this very step
                post_progress(progress, phase="validating")
                watch.add(step, validation_accuracy(engine, tokenizer, config["spec"]["arch"], validation))
                post_progress(progress, phase="training", validation_accuracy=watch.last)
            metrics.update(validation_accuracy=watch.last, best_validation_accuracy=watch.best,
                           best_validation_step=watch.best_step)  # fmt: skip
            if final and watch.stopped_before(step, max_steps):
                metrics["stopped_early_at_step"] = step
        losses, tokens, window_start = [], 0, time.perf_counter()
        if final:
            metrics["export_check"] = _probe_logit_sum(engine, tokenizer, config["spec"]["arch"], device)
        # What Tune needs beside the numbers (forwarded by TuneReportCallback): the step on the scheduler's
        # clock (absent at the end: the trial's own result comes after evaluation), and the MLflow run to
        # end if the scheduler stops the trial (its worker group is on the progress board).
        for_tune = {} if not validation else {"mlflow_run_id": config.get("mlflow_run_id"),
                                              **({} if final else {"validated_step": step})}  # fmt: skip
        if not (checkpoint_due or final):
            if rank == 0 and config.get("mlflow_run_id"):
                tracking.log_metrics_to_run(config["tracking_uri"], config["mlflow_run_id"], metrics, step)
            ray.train.report({**metrics, **for_tune})
            return
        exported = _state_dict_for_export(engine, config["zero_stage"])
        with tempfile.TemporaryDirectory() as directory:
            saved = None
            if rank == 0 and lora:
                # checkpoints hold the adapter (a resume rebuilds the same base); the end, the export asked for
                save_lora_student(engine.module, tokenizer, directory, config["meta"], exported, config["spec"],
                                  config["seed"], lora, merged=final and lora["export"] == "merged")  # fmt: skip
            elif rank == 0:
                save_student(engine.module, tokenizer, directory, config["meta"], state_dict=exported)
            if rank == 0:
                Path(directory, TRAINER_STATE).write_text(json.dumps({**state, "step": step, "final": final}))
                saved = ray.train.Checkpoint.from_directory(directory)
                if config.get("mlflow_run_id"):
                    tracking.log_metrics_to_run(config["tracking_uri"], config["mlflow_run_id"], metrics, step)
            ray.train.report({**metrics, **for_tune}, checkpoint=saved)

    if config.get("stream"):
        batches = streamed_batches(shard, config, tokenizer.pad_token_id, rank)
    else:
        batches = in_memory_batches(shard, config, tokenizer.pad_token_id, rank)
    # Rank 0 posts to the driver's progress bar about once a second (fire and forget).
    progress = config.get("progress") if rank == 0 else None
    posted_at, tokens_since_post, recent_loss = time.perf_counter(), 0, None
    post_progress(progress, phase="training", step=step, max_steps=max_steps)
    register_worker_group(progress)
    for padded in batches:
        batch = {key: value.to(device) for key, value in padded.items()}
        loss = engine(**batch).loss
        engine.backward(loss)
        engine.step()
        micro += 1
        losses.append(loss.item())
        recent_loss = losses[-1] if recent_loss is None else 0.9 * recent_loss + 0.1 * losses[-1]
        batch_tokens = int(batch["attention_mask"].sum())
        tokens += batch_tokens
        tokens_since_post += batch_tokens
        if micro % accumulation:
            continue
        step += 1
        now = time.perf_counter()
        if progress and (now - posted_at >= 1.0 or step >= max_steps):
            # rank 0's own rate times the workers: the all-reduced figure comes with each checkpoint
            post_progress(progress, step=step, loss=recent_loss, tokens_per_s=tokens_since_post * world / max(now - posted_at, 1e-9))
            posted_at, tokens_since_post = now, 0
        checkpoint_due = step % config["checkpoint_every_steps"] == 0
        if step < max_steps and (checkpoint_due or (validation and step % validation["every_steps"] == 0)):
            report(final=False, checkpoint_due=checkpoint_due)
        # Every rank scored the same questions with the same weights, so every rank stops at the same step.
        if step >= max_steps or watch.stopped:
            break
    report(final=True)


def in_memory_batches(shard, config: dict, pad_id: int, rank: int):
    """Padded batches, epoch after epoch, from the shard held in memory. One Ray Data pass fills it
    (token ids: small next to the model for a set of up to train.stream_above_samples); every epoch
    after it is a seeded reshuffle in memory. Re-reading the shard each epoch cost a Ray Data
    execution (3-4 s) per epoch, and one fixed order put a question's D rationales in the same batch
    every epoch."""
    from rt_ray.student.data import epoch_batches, pad_batch

    rows = [{"input_ids": list(r["input_ids"]), "labels": list(r["labels"])} for r in shard.iter_rows()]
    if not rows:
        raise RuntimeError(f"worker {rank} got no training samples: fewer samples than workers?")
    shuffler = random.Random(config["seed"] * 1009 + rank)
    while True:
        for batch in epoch_batches(rows, config["batch_size"], shuffler, config.get("bucket_batches", 0)):
            yield pad_batch(batch, pad_id)


def streamed_batches(shard, config: dict, pad_id: int, rank: int):
    """Padded batches, epoch after epoch, streamed from the shard: token ids stay Arrow/numpy arrays
    and a local shuffle buffer mixes them, so the worker's memory does not grow with the set."""
    from functools import partial

    from rt_ray.student.data import pad_arrays

    epoch = 0
    while True:
        seen = 0
        for batch in shard.iter_torch_batches(
            batch_size=config["batch_size"],
            local_shuffle_buffer_size=config["shuffle_buffer"],
            local_shuffle_seed=config["seed"] * 1009 + rank * 101 + epoch,
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


def validation_accuracy(engine, tokenizer, arch: str, validation: dict) -> float:
    """Greedy answers to the held-out questions, scored as evaluation scores them. Every rank
    generates the same batches (identical greedy outputs, so the same number of forward passes):
    under ZeRO-3 each forward pass gathers parameters from all ranks, so no rank may sit it out."""
    from rt_ray.student.evaluate import answer_and_judge
    from rt_ray.tasks.base import Sample

    samples = [Sample.from_row(row) for row in validation["rows"]]
    size, correct, mode = validation["batch_size"], 0, validation.get("mode", "ft_cot")
    engine.eval()
    for start in range(0, len(samples), size):
        judged = answer_and_judge(engine.module, tokenizer, arch, mode, samples[start : start + size], validation["max_new_tokens"])
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

