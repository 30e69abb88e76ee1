"""Teacher-stage throughput: the Ray Data pipeline against a sequential loop, side by side.

    python bench/teacher_throughput.py                 # N=1000 requests, 1.0 s latency, concurrency 64

Both talk to the teacher simulator over HTTP with the openai client. The pipeline answers N/2
questions (two Zero-shot-CoT calls each, D=1) through `run_teacher`, the code `rt-ray generate` runs;
the baseline is the official code's way, one blocking call after another, timed on a small subset.
Efficiency E = (N x latency / concurrency) / wall time: 1.0 means every slot was busy all the time.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import openai
from rich.console import Console
from rich.table import Table

from rt_ray.config import parse_config
from rt_ray.tasks import load_task_data
from rt_ray.teacher.pipeline import run_teacher
from rt_ray.teacher.prompts import answer_prompt, rationale_prompt
from rt_ray.teacher.simulator import SimulatorProcess


def sequential_requests(base_url: str, questions: list) -> float:
    """Seconds per request of the plain sequential loop."""
    client = openai.OpenAI(base_url=base_url, api_key="no-key", max_retries=0)
    started = time.perf_counter()
    for sample in questions:
        first = client.completions.create(model="teacher-sim", prompt=rationale_prompt(sample.question), max_tokens=128, temperature=0)
        client.completions.create(
            model="teacher-sim", prompt=answer_prompt(sample.question, first.choices[0].text), max_tokens=32, temperature=0
        )
    return (time.perf_counter() - started) / (2 * len(questions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency-s", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sequential-questions", type=int, default=5)
    args = parser.parse_args()

    questions_needed = args.requests // 2
    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess(latency_s=args.latency_s, wrong_rate=0.0) as sim:
        cfg = parse_config(
            {
                "task": {"name": "coin_flip", "num_examples": 2 * questions_needed, "max_train": questions_needed},
                "teacher": {"base_url": sim.base_url, "max_concurrency": args.concurrency, "cache_dir": f"{tmp}/cache"},
                "generation": {"degree": 1, "output_dir": f"{tmp}/out"},
            }
        )
        data = load_task_data(cfg.task)
        import ray

        ray.init(include_dashboard=False)
        started = time.perf_counter()
        _, outcomes, _, totals = run_teacher(data.train, cfg, None, Console(stderr=True))
        wall = time.perf_counter() - started
        ray.shutdown()
        assert totals.requests == args.requests, f"pipeline sent {totals.requests} requests, expected {args.requests}"
        assert all(o["status"] == "ok" for o in outcomes)
        per_request = sequential_requests(sim.base_url, data.test[: args.sequential_questions])

    ideal = args.requests * args.latency_s / args.concurrency
    efficiency = ideal / wall
    speedup = per_request * args.requests / wall
    table = Table(title=f"teacher stage: {args.requests} requests, {args.latency_s}s latency, concurrency {args.concurrency}")
    for column in ("way", "requests", "wall s", "requests/s"):
        table.add_column(column)
    table.add_row("Ray Data pipeline", str(args.requests), f"{wall:.2f}", f"{args.requests / wall:.1f}")
    table.add_row("sequential loop", str(2 * args.sequential_questions), f"{per_request * 2 * args.sequential_questions:.2f}", f"{1 / per_request:.2f}")
    table.add_row("ideal at this concurrency", str(args.requests), f"{ideal:.2f}", f"{args.requests / ideal:.1f}")
    Console().print(table)
    print(f"RESULT efficiency={efficiency:.3f} speedup_vs_sequential={speedup:.1f}")


if __name__ == "__main__":
    main()
