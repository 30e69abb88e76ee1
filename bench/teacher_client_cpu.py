"""The teacher client's CPU per request: one HTTP connection pool against pools of 16, side by side.

    python bench/teacher_client_cpu.py                  # 4000 requests at 64 and at 256 in flight

A caller's event loop spends CPU on every request (the openai SDK, httpx, our cache and keys); when
it is busy, a response waits for its turn and a slot idles. httpcore scans every connection of its
pool on each request's assignment and release, so with one pool that cost grows with the requests in
flight. This runs the teacher step (``teach_question``, two calls a question) in one asyncio loop in
this process against the simulator at zero latency, once with one pool (as the SDK's client has it)
and once with ``TeacherClient``'s pools of ``CONNECTIONS_PER_POOL``, and reads the process's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from rich.console import Console
from rich.table import Table
from smoke import parse_args

from rt_ray.config import parse_config
from rt_ray.tasks import load_task_data
from rt_ray.teacher.client import CONNECTIONS_PER_POOL, TeacherClient
from rt_ray.simulator import SimulatorProcess
from rt_ray.teacher.teach import SamplingPlan, teach_question

ONE_POOL = 1 << 30


def cpu_ms_per_request(base_url: str, cache_dir: str, questions: list, concurrency: int, per_pool: int) -> tuple[float, float]:
    """(CPU ms a request, wall s) of the teacher step for ``questions``, two requests each."""
    cfg = parse_config({"teacher": {"base_url": base_url, "max_concurrency": concurrency, "cache_dir": cache_dir},
                        "generation": {"degree": 1}})  # fmt: skip
    client = TeacherClient(cfg.teacher, None, connections_per_pool=per_pool)
    plan = SamplingPlan.from_config(cfg.generation, cfg.task)

    async def all_questions() -> list[dict]:
        return await asyncio.gather(*(teach_question(client, sample, plan) for sample in questions))

    cpu, wall = time.process_time(), time.perf_counter()
    outcomes = asyncio.run(all_questions())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert all(o["status"] == "ok" for o in outcomes)
    return 1000 * cpu / (2 * len(questions)), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    args = parse_args(parser, smoke={"requests": 40, "concurrency": [8, 16]})

    questions_needed = args.requests // 2
    cfg = parse_config({"task": {"name": "coin_flip", "num_examples": 2 * questions_needed, "max_train": questions_needed}})
    questions = load_task_data(cfg.task).train
    import openai  # noqa: F401  loaded before any timing: the first row must not pay the SDK's import
    table = Table(title=f"teacher client: {args.requests} requests at zero latency, one asyncio loop")
    for column in ("in flight", "pools", "CPU ms / request", "wall s"):
        table.add_column(column)
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess(latency_s=0.0, wrong_rate=0.0) as sim:
        for concurrency in args.concurrency:
            measured = {}
            for label, per_pool in (("one", ONE_POOL), (f"of {CONNECTIONS_PER_POOL}", CONNECTIONS_PER_POOL)):
                measured[label] = cpu_ms_per_request(sim.base_url, f"{tmp}/cache-{concurrency}-{per_pool}", questions, concurrency, per_pool)
                table.add_row(str(concurrency), label, f"{measured[label][0]:.2f}", f"{measured[label][1]:.1f}")
            ratios[concurrency] = measured["one"][0] / measured[f"of {CONNECTIONS_PER_POOL}"][0]
    Console(width=120).print(table)
    print("RESULT " + " ".join(f"one_pool_over_pools_cpu_c{c}={r:.2f}" for c, r in ratios.items()))


if __name__ == "__main__":
    main()
