"""Student training memory: a training worker's peak RSS against the size of the training set.

    python bench/train_memory.py                 # 10k and 1M samples streamed, 10k and 100k in memory
    python bench/train_memory.py --large 200000  # a smaller "large" set

Token ids are generated (random ids of a tiny student's vocabulary, 120-200 tokens a sample, the first
40 masked as the prompt), so no teacher runs. Each row trains the same tiny GPT-2 student for a few
steps on 2 Ray Train workers (DeepSpeed ZeRO-2), the code `rt-ray train` runs, and reads the largest
worker's peak RSS (``worker_peak_rss_mb``, reported by every run). Streaming (``train.stream_above_samples``
below the set's size) reads the shard through Ray Data with a local shuffle buffer; in memory, a
worker first turns its whole shard into lists. RESULT: how much the peak grows per 1M samples in
each way (``worker_rss_growth_mb_per_1m_samples``: streamed, as every set above
``train.stream_above_samples`` trains; target <= 500), and the streamed peak at the large size.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pyarrow as pa
import ray
from rich.console import Console
from rich.table import Table
from smoke import parse_args

from rt_ray.config import parse_config
from rt_ray.student.data import IGNORE_INDEX, TOKEN_SCHEMA
from rt_ray.student.models import student_spec
from rt_ray.student.trainer import fit, training_run_config

PROMPT_TOKENS = 40


def generated_samples(count: int, vocab: int, seed: int = 0) -> pa.Table:
    """``count`` samples of random token ids as the trainer's Arrow table, built from flat arrays."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(120, 201, count)
    offsets = np.zeros(count + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    ids = rng.integers(3, vocab, int(offsets[-1]), dtype=np.int32)  # 0-2: pad, eos, unk
    labels = ids.copy()
    position = np.arange(len(ids)) - np.repeat(offsets[:-1], lengths)
    labels[position < PROMPT_TOKENS] = IGNORE_INDEX
    columns = [pa.ListArray.from_arrays(offsets, values) for values in (ids, labels)]
    return pa.Table.from_arrays(columns, schema=TOKEN_SCHEMA)


def bench_config(stream: bool, steps: int, root: str):
    return parse_config({
        "student": {"max_length": 256, "tiny_vocab": 600},
        "train": {"num_workers": 2, "cpus_per_worker": 1, "zero_stage": 2, "batch_size": 16, "max_steps": steps,
                  "checkpoint_every_steps": 10**6, "output_dir": f"{root}/student",
                  "stream_above_samples": 0 if stream else 10**9},
        "tracking": {"tracking_uri": f"sqlite:///{root}/mlflow.db"},
    })  # fmt: skip


def train_and_measure(samples: pa.Table, spec: dict, stream: bool, steps: int, root: str) -> dict:
    cfg = bench_config(stream, steps, root)
    loop_config = training_run_config(cfg, spec, {"arch": "decoder", "format": "ft_cot"}, None, None,
                                      num_samples=len(samples))  # fmt: skip
    started = time.perf_counter()
    result = fit(cfg, samples, loop_config, name=f"memory-{len(samples)}-{stream}", output_dir=cfg.train.output_dir)
    if result.error is not None:
        raise result.error
    return {"peak_mb": result.metrics["worker_peak_rss_mb"], "wall_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000, help="the streamed large set")
    parser.add_argument("--large-in-memory", type=int, default=100_000, help="the in-memory large set (1M would need ~7 GB a worker)")
    parser.add_argument("--steps", type=int, default=30)
    args = parse_args(parser, smoke={"small": 64, "large": 256, "large_in_memory": 128, "steps": 2})

    ray.init(include_dashboard=False)
    # A tiny student whose tokenizer knows enough text to fill its vocabulary; the ids are drawn from it.
    texts = [" ".join(f"w{i * 7919 % 5003}" for i in range(j, j + 40)) for j in range(2000)]
    spec = student_spec(bench_config(True, args.steps, "").student, texts=texts)
    vocab = spec["model_config"]["vocab_size"]
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for stream, size in ((True, args.small), (True, args.large), (False, args.small), (False, args.large_in_memory)):
            samples = generated_samples(size, vocab=vocab)
            measured = train_and_measure(samples, spec, stream, args.steps, root)
            rows.append({"way": "streamed" if stream else "in memory", "samples": size, **measured})
            del samples
    ray.shutdown()

    table = Table(title=f"student training: a worker's peak RSS, tiny GPT-2, 2 workers, {args.steps} steps")
    for column in ("way", "samples", "worker peak RSS MB", "wall s"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["way"], f"{row['samples']:,}", f"{row['peak_mb']:.0f}", f"{row['wall_s']:.1f}")
    Console(width=120).print(table)

    def growth_per_million(way: str) -> float:
        small, large = [r for r in rows if r["way"] == way]
        return (large["peak_mb"] - small["peak_mb"]) / (large["samples"] - small["samples"]) * 1e6

    streamed_large = rows[1]["peak_mb"]
    print(f"RESULT worker_rss_growth_mb_per_1m_samples={growth_per_million('streamed'):.0f} "
          f"in_memory_rss_growth_mb_per_1m={growth_per_million('in memory'):.0f} stream_peak_mb_at_large={streamed_large:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
