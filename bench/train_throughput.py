"""Student training throughput: Ray Train + DeepSpeed against a bare PyTorch loop, side by side, and
Ray Train with length-bucketed batches (train.bucket_batches) against plain shuffled ones.

    python bench/train_throughput.py                  # tiny student, 2 CPU cores for each side

Same model, same Fine-tune-CoT samples (coin flip rationales in the simulator's wording), same CPU
budget (2 Ray Train workers x 1 thread vs. one process x 2 threads), same global batch. Tokens/s count
the non-padding tokens trained on, measured after setup on both sides.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

import torch
from rich.console import Console
from rich.table import Table
from smoke import parse_args

from rt_ray.config import parse_config
from rt_ray.student.data import epoch_batches, pad_batch, padding_share, token_table, tokenize_pair, training_pairs
from rt_ray.student.models import build_student, load_tokenizer, student_spec
from rt_ray.student.trainer import fit, training_run_config
from rt_ray.tasks.generated import load_coin_flip
from rt_ray.simulator.solvers import write_rationale


def samples(count: int) -> list[dict]:
    rng = random.Random(0)
    records = []
    for sample in load_coin_flip(count, 4, seed=0):
        rationale = write_rationale(sample.question, rng, wrong_rate=0.0)
        records.append({"question": sample.question, "rationale": rationale, "answer": sample.answer, "sample_index": 0})
    return records


def bare_loop(spec: dict, rows: list[dict], steps: int, batch: int, lr: float, threads: int) -> float:
    torch.set_num_threads(threads)
    model, tokenizer = build_student(spec, seed=0)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    order, tokens = list(range(len(rows))), 0
    random.Random(0).shuffle(order)
    started = time.perf_counter()
    for step in range(steps):
        picked = [rows[order[(step * batch + i) % len(rows)]] for i in range(batch)]
        data = pad_batch(picked, tokenizer.pad_token_id)
        loss = model(**data).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        tokens += int(data["attention_mask"].sum())
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-per-worker", type=int, default=16)
    parser.add_argument("--zero-stage", type=int, default=2)
    parser.add_argument("--bucket-batches", type=int, default=50)
    args = parse_args(parser, smoke={"steps": 3, "batch_per_worker": 4, "bucket_batches": 2})

    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config({
            "student": {"max_length": 256},
            "train": {"num_workers": 2, "cpus_per_worker": 1, "zero_stage": args.zero_stage, "batch_size": args.batch_per_worker,
                      "max_steps": args.steps, "checkpoint_every_steps": 10**6, "output_dir": f"{tmp}/student"},
            "tracking": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db"},
        })  # fmt: skip
        pairs = training_pairs(samples(350), [], "ft_cot", None, "decoder")
        spec = student_spec(cfg.student, [s + t for s, t in pairs])
        tokenizer = load_tokenizer(spec)
        rows = [tokenize_pair(tokenizer, s, t, "decoder", cfg.student.max_length) for s, t in pairs]

        import ray

        ray.init(include_dashboard=False)
        loop_config = training_run_config(cfg, spec, {"arch": "decoder", "format": "ft_cot"}, None, None)
        result = fit(cfg, token_table(rows), loop_config, name="bench", output_dir=cfg.train.output_dir)
        ray_tokens_per_s = result.metrics["tokens_per_s"]
        bucketed_cfg = cfg.with_values(train={"bucket_batches": args.bucket_batches})
        loop_config = training_run_config(bucketed_cfg, spec, {"arch": "decoder", "format": "ft_cot"}, None, None)
        result = fit(bucketed_cfg, token_table(rows), loop_config, name="bench-bucketed", output_dir=f"{tmp}/bucketed")
        bucketed_tokens_per_s = result.metrics["tokens_per_s"]
        ray.shutdown()
        bare_tokens_per_s = bare_loop(spec, rows, args.steps, 2 * args.batch_per_worker, cfg.train.lr, threads=2)

    ratio = ray_tokens_per_s / bare_tokens_per_s
    pick = random.Random(0)
    pad_plain = padding_share(epoch_batches(rows, args.batch_per_worker, pick))
    pad_bucketed = padding_share(epoch_batches(rows, args.batch_per_worker, pick, args.bucket_batches))
    table = Table(title=f"student training: tiny GPT-2, {args.steps} steps, global batch {2 * args.batch_per_worker}")
    for column in ("way", "CPU budget", "tokens/s"):
        table.add_column(column)
    table.add_row(f"Ray Train + DeepSpeed ZeRO-{args.zero_stage}", "2 workers x 1 thread", f"{ray_tokens_per_s:.0f}")
    table.add_row("bare PyTorch loop", "1 process x 2 threads", f"{bare_tokens_per_s:.0f}")
    table.add_row(f"Ray Train, length buckets of {args.bucket_batches} batches", "2 workers x 1 thread", f"{bucketed_tokens_per_s:.0f}")
    Console().print(table)
    lengths = sorted(len(r["input_ids"]) for r in rows)
    print(f"sequence lengths: min {lengths[0]}, median {lengths[len(lengths) // 2]}, max {lengths[-1]}; padding share "
          f"{pad_plain:.3f} plain, {pad_bucketed:.3f} bucketed")  # fmt: skip
    print(f"RESULT ray_over_bare={ratio:.3f} bucketed_over_plain={bucketed_tokens_per_s / ray_tokens_per_s:.3f} "
          f"padding_share_plain={pad_plain:.3f} padding_share_bucketed={pad_bucketed:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
