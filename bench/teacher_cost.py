"""Teacher cost under a rate limit: the same questions sent four ways, side by side in one run.

    python bench/teacher_cost.py                  # quickstart's coin flip, D=8, 600 RPM, 0.5 s latency
    python bench/teacher_cost.py --questions 100  # quicker

1. online, one answer-extraction prompt a request (``teacher.prompts_per_request: 1``, 1 + D requests a question);
2. online, a question's D answer prompts in one request (the default, 20 a request as the paper's code);
3. online, ``generation.answer_from: rationale`` (no second call; a documented deviation);
4. batch mode (the Batch API: files of requests, at ``prices[model].batch_discount``).

Each run starts from an empty cache against the simulator (``rt-ray teacher-sim``) over HTTP with the
real ``openai`` client, under ``teacher.rpm``. The RPM-bound ideal of an online run is its requests x
60 / RPM (the pacer starts one request every 60/RPM seconds); its efficiency is that ideal over its
wall time. ``batch_cost_ratio`` compares cost per kept rationale, batch over online (2): the
simulator's sampled rationales differ from run to run, so the kept sets are alike, not identical.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table
from smoke import parse_args

from rt_ray.config import parse_config
from rt_ray.teacher.pipeline import generate
from rt_ray.simulator import SimulatorProcess


def run_once(root: Path, sim: SimulatorProcess, args: argparse.Namespace, label: str, teacher: dict, generation: dict) -> dict:
    tree = {
        "run_name": "teacher-cost",
        "task": {"name": "coin_flip", "num_examples": args.questions * 10 // 7, "num_items": 4, "max_train": args.questions},
        "teacher": {"base_url": sim.base_url, "cache_dir": str(root / label / "cache"), "rpm": args.rpm,
                    "max_concurrency": 64, "request_timeout_s": 10, "batch_poll_s": 0.5, **teacher},
        "generation": {"degree": args.degree, "output_dir": str(root / label / "out"), **generation},
        "tracking": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "teacher-cost"},
    }  # fmt: skip
    return generate(parse_config(tree)).stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=350, help="training questions (quickstart: 350)")
    parser.add_argument("--degree", type=int, default=8)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--latency-s", type=float, default=0.5)
    parser.add_argument("--batch-delay-s", type=float, default=5.0, help="the simulator's time from batches.create to output")
    args = parse_args(parser, smoke={"questions": 10, "degree": 2, "rpm": 6000, "latency_s": 0.01, "batch_delay_s": 0.5})

    ways = {
        "online, 1 prompt a request": ({"prompts_per_request": 1}, {}),
        "online, D prompts a request": ({}, {}),
        "online, answer from the rationale": ({}, {"answer_from": "rationale"}),
        "batch mode": ({"mode": "batch"}, {}),
    }
    results = {}
    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess(latency_s=args.latency_s, batch={"batch_delay_s": args.batch_delay_s}) as sim:
        for label, (teacher, generation) in ways.items():
            results[label] = run_once(Path(tmp), sim, args, label.replace(" ", "_").replace(",", ""), teacher, generation)

    table = Table(title=f"teacher cost: {args.questions} coin flip questions, D={args.degree}, {args.rpm} RPM, {args.latency_s} s latency")
    for column in ("way", "requests/question", "wall s", "RPM-bound ideal s", "efficiency", "teacher acc.", "kept", "cost $", "$ per kept"):
        table.add_column(column)
    for label, stats in results.items():
        ideal = stats["requests_sent"] * 60 / args.rpm
        online = label != "batch mode"
        table.add_row(label, f"{stats['requests_per_question']:.2f}", f"{stats['wall_s']:.1f}", f"{ideal:.1f}" if online else "",
                      f"{ideal / stats['wall_s']:.3f}" if online else "", f"{stats['teacher_accuracy']:.3f}",
                      str(stats["rationales_kept"]), f"{stats['cost_usd']:.4f}", f"{stats['cost_per_kept_rationale_usd']:.7f}")  # fmt: skip
    Console(width=200).print(table)
    batched = results["online, D prompts a request"]
    efficiency = batched["requests_sent"] * 60 / args.rpm / batched["wall_s"]
    cost_ratio = results["batch mode"]["cost_per_kept_rationale_usd"] / batched["cost_per_kept_rationale_usd"]
    print(f"RESULT requests_per_question_online={batched['requests_per_question']:.2f} rpm_bound_efficiency={efficiency:.3f} "
          f"batch_cost_ratio={cost_ratio:.3f} requests_per_question_unbatched={results['online, 1 prompt a request']['requests_per_question']:.2f}")


if __name__ == "__main__":
    main()
