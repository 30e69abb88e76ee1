"""Teacher-stage throughput: the Ray Data pipeline against a sequential loop, side by side.

    python bench/teacher_throughput.py                 # N=4000 requests, 1.0 s latency, concurrency 64

Both talk to the teacher simulator over HTTP with the openai client. The pipeline answers N/2
questions (two Zero-shot-CoT calls each, D=1) through `run_teacher`, the code `rt-ray generate` runs;
the baseline is the official code's way, one blocking call after another, timed on a small subset.
Efficiency E = (N x latency / concurrency) / wall time: 1.0 means every slot was busy all the time.

The simulator's arrival log splits each run's wall time into start-up (until the first request
arrives: Ray Data's executor, the caller actor's worker importing ``ray.data`` and ``openai``) and
the rest, whose efficiency shows whether the stage keeps every slot busy once it runs. Run 1 meets
a cluster started the moment before (the RESULT line); later runs meet the same cluster running,
with fresh actors and an empty cache. A reference row runs the same teacher step (``TeacherClient``,
``teach_question``) for the same N requests in one asyncio loop in this process, without Ray and
with nothing to start, so the rows show what Ray Data costs and where.

    python bench/teacher_throughput.py --ray-address auto   # join a running cluster, as a job does
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass

import openai
import ray
from rich.console import Console
from rich.table import Table
from smoke import parse_args

from rt_ray.cluster import ensure_ray
from rt_ray.config import parse_config
from rt_ray.tasks import load_task_data
from rt_ray.teacher.client import TeacherClient
from rt_ray.teacher.pipeline import run_teacher
from rt_ray.prompts import answer_prompt, rationale_prompt
from rt_ray.simulator import SimulatorProcess
from rt_ray.teacher.teach import SamplingPlan, teach_question


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


@dataclass
class TimedRun:
    wall_s: float
    startup_s: float  # until the simulator saw the first request

    def efficiency(self, ideal_s: float) -> float:
        return ideal_s / self.wall_s

    def steady_efficiency(self, ideal_s: float) -> float:
        return ideal_s / (self.wall_s - self.startup_s)


def timed(sim: SimulatorProcess, expected_requests: int, work) -> tuple[TimedRun, object]:
    """Run ``work()``; its wall time, and its start-up as the simulator saw it (the first arrival)."""
    seen_before = len(sim.requests())
    started_at, started = time.time(), time.perf_counter()
    result = work()
    wall = time.perf_counter() - started
    arrivals = [r["t"] for r in sim.requests()[seen_before:]]
    assert len(arrivals) == expected_requests, f"the simulator saw {len(arrivals)} requests, expected {expected_requests}"
    return TimedRun(wall_s=wall, startup_s=min(arrivals) - started_at), result


def timed_pipeline_run(questions: list, cfg, sim: SimulatorProcess, expected_requests: int) -> TimedRun:
    run, result = timed(sim, expected_requests, lambda: run_teacher(list(enumerate(questions)), cfg, None))
    sent = result.totals.requests
    assert sent == expected_requests, f"pipeline sent {sent} requests, expected {expected_requests}"
    assert set(result.statuses) == {"ok"}, result.statuses
    return run


def timed_plain_loop(questions: list, cfg, sim: SimulatorProcess, expected_requests: int) -> TimedRun:
    """The same teacher step in one asyncio loop in this process: no Ray, no worker, nothing to start."""
    client = TeacherClient(cfg.teacher, None)
    plan = SamplingPlan.from_config(cfg.generation, cfg.task)

    async def all_questions() -> list[dict]:
        return await asyncio.gather(*(teach_question(client, sample, plan) for sample in questions))

    run, outcomes = timed(sim, expected_requests, lambda: asyncio.run(all_questions()))
    assert all(o["status"] == "ok" for o in outcomes)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--latency-s", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sequential-questions", type=int, default=5)
    parser.add_argument("--runs", type=int, default=2, help="pipeline runs on one cluster; the first meets it fresh")
    parser.add_argument("--ray-address", default=None, help="join this cluster (auto: the running one) instead of starting one")
    args = parse_args(parser, smoke={"requests": 40, "latency_s": 0.05, "concurrency": 8, "sequential_questions": 1, "runs": 1})

    questions_needed = args.requests // 2
    runs: list[TimedRun] = []
    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess(latency_s=args.latency_s, wrong_rate=0.0) as sim:
        cfg = parse_config(
            {
                "task": {"name": "coin_flip", "num_examples": 2 * questions_needed, "max_train": questions_needed},
                "teacher": {"base_url": sim.base_url, "max_concurrency": args.concurrency},
                "generation": {"degree": 1, "output_dir": f"{tmp}/out"},
                "ray": {"address": args.ray_address},
            }
        )
        data = load_task_data(cfg.task)
        ensure_ray(cfg.ray)  # a new local cluster, as `rt-ray generate` starts it
        for index in range(args.runs):
            # An empty cache per run: every run sends all N requests.
            run_cfg = cfg.with_values(teacher={"cache_dir": f"{tmp}/cache-{index}"})
            runs.append(timed_pipeline_run(data.train, run_cfg, sim, args.requests))
        ray.shutdown()
        plain = timed_plain_loop(data.train, cfg.with_values(teacher={"cache_dir": f"{tmp}/cache-plain"}), sim, args.requests)
        per_request = sequential_requests(sim.base_url, data.test[: args.sequential_questions])

    ideal = args.requests * args.latency_s / args.concurrency
    table = Table(title=f"teacher stage: {args.requests} requests, {args.latency_s}s latency, concurrency {args.concurrency}")
    for column in ("way", "requests", "wall s", "req/s", "start-up s", "E", "E after start-up"):
        table.add_column(column)
    first_label = "Ray Data, new cluster" if args.ray_address is None else "Ray Data, new driver on a running cluster"
    labels = [first_label] + [f"Ray Data, same driver again ({index + 1})" for index in range(1, len(runs))]
    for label, run in zip(labels + ["asyncio loop, no Ray (reference)"], runs + [plain]):
        table.add_row(
            label, str(args.requests), f"{run.wall_s:.2f}", f"{args.requests / run.wall_s:.1f}", f"{run.startup_s:.2f}",
            f"{run.efficiency(ideal):.3f}", f"{run.steady_efficiency(ideal):.3f}",
        )  # fmt: skip
    sequential_wall = per_request * 2 * args.sequential_questions
    table.add_row("sequential loop", str(2 * args.sequential_questions), f"{sequential_wall:.2f}", f"{1 / per_request:.2f}", "", "", "")
    table.add_row("ideal", str(args.requests), f"{ideal:.2f}", f"{args.requests / ideal:.1f}", "0", "1.000", "1.000")
    Console(width=120).print(table)
    first = runs[0]
    print(f"RESULT efficiency={first.efficiency(ideal):.3f} speedup_vs_sequential={per_request * args.requests / first.wall_s:.1f}")


if __name__ == "__main__":
    main()
