"""The teacher stage at scale: what the pipeline itself costs at 10k and 100k questions (1M by an option).

    python bench/teacher_scale.py                          # 10k and 100k coin flip questions, D=8
    python bench/teacher_scale.py --degree 4               # D=4: half the samples, the same questions
    python bench/teacher_scale.py --sizes 10000 1000000    # a million questions (about 2 hours here)

The simulator answers at zero latency, so what shows is rt-ray's own cost: Ray Data, the callers, the
cache, the part files and the final assembly. Each size runs in a process of its own (its own local Ray
cluster), so the driver's peak RSS is that size's alone: a run from an empty cache, then a full rerun
that the cache answers (0 requests, checked on the simulator's counter).

D=8 by default: the degree of the sets this bench stands for (hundreds of thousands of questions at
D=8), and it keeps the whole bench under 15 minutes on 2 cores (about 8). So do ``answer_from:
rationale`` (one request a question, n=8: the first run is bound by the openai SDK's ~5 ms of CPU a
request in the callers, which a real teacher's rate limit hides), ``questions_per_block: 512`` (Ray Data's cost per block
weighs on a run from the cache) and 64 requests in flight (httpx's pool scans its connections on
every request, so a larger pool costs CPU here for nothing at zero latency).

RESULT line: ``driver_rss_growth_mb_per_100k`` (the driver's peak RSS at the largest size minus at the
smallest, per 100k questions), ``rerun_samples_per_s`` (cached samples a rerun reads per second at the
largest size, the whole ``generate`` included), ``cache_files_per_100k`` (files per 100k cached samples).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from smoke import parse_args


def tree(questions: int, degree: int, base_url: str, root: Path) -> dict:
    return {
        "run_name": "teacher-scale",
        "task": {"name": "coin_flip", "num_examples": questions * 100 // 98 + 10, "train_ratio": 0.98,
                 "max_train": questions},
        "teacher": {"base_url": base_url, "cache_dir": str(root / "cache"), "max_concurrency": 64,
                    "num_callers": 2, "request_timeout_s": 30},
        "generation": {"degree": degree, "output_dir": str(root / "out"), "questions_per_block": 512,
                       "answer_from": "rationale"},
        "tracking": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "teacher-scale"},
    }  # fmt: skip


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def one_size(questions: int, degree: int, base_url: str, root: Path) -> dict:
    """Runs in its own process: a first run, then a full rerun from the cache."""
    import ray

    from rt_ray.config import parse_config
    from rt_ray.teacher.cache import ResponseCache
    from rt_ray.teacher.pipeline import generate
    from rt_ray.simulator import SimulatorProcess

    host, port = base_url.split("//")[1].split("/")[0].split(":")
    sim = SimulatorProcess(host=host, port=int(port))  # a handle on the running one, for its counter
    cfg = parse_config(tree(questions, degree, base_url, root))
    sent_before = sim.stats()["requests"]
    started = time.perf_counter()
    first = generate(cfg).stats
    first_wall = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sent = sim.stats()["requests"] - sent_before
    cache = ResponseCache(root / "cache")
    entries, files, cache_bytes = len(cache), cache.files(), directory_bytes(root / "cache")
    cache.close()

    started = time.perf_counter()
    again = generate(cfg).stats
    rerun_wall = time.perf_counter() - started
    rerun_sent = sim.stats()["requests"] - sent_before - sent
    assert again["filtered_sha256"] == first["filtered_sha256"], "the rerun wrote a different set"
    ray.shutdown()
    return {
        "questions": questions, "samples": first["rationales"], "wall_s": first_wall, "requests": sent,
        "requests_per_s": sent / first_wall, "driver_peak_rss_mb": peak_rss_mb, "cache_entries": entries,
        "cache_files": files, "cache_mb": cache_bytes / 2**20, "rerun_wall_s": rerun_wall, "rerun_requests": rerun_sent,
        "rerun_samples_per_s": entries / rerun_wall, "rationales_kept": first["rationales_kept"],
    }  # fmt: skip


def run_size(questions: int, degree: int, base_url: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="teacher-scale-") as root:
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(questions), "--degree", str(degree), "--base-url", base_url,
             "--root", root],
            capture_output=True, text=True, check=False, env={**os.environ, "RAY_DEDUP_LOGS": "0"},
        )  # fmt: skip
    lines = [line for line in output.stdout.splitlines() if line.startswith("SIZE ")]
    if output.returncode != 0 or not lines:
        raise SystemExit(f"the run at {questions} questions failed:\n{output.stderr[-4000:]}")
    return json.loads(lines[-1][5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="training questions per run")
    parser.add_argument("--degree", type=int, default=8)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parse_args(parser, smoke={"sizes": [40, 80], "degree": 2})
    if args.child:
        print("SIZE " + json.dumps(one_size(args.child, args.degree, args.base_url, Path(args.root))), flush=True)
        return

    from rt_ray.simulator import SimulatorProcess

    console = Console(width=160)
    with SimulatorProcess(latency_s=0.0, wrong_rate=0.2, fault_rate=0.0) as sim:
        results = []
        for questions in args.sizes:
            console.print(f"{questions} questions, D={args.degree} ...")
            results.append(run_size(questions, args.degree, sim.base_url))

    table = Table(title=f"teacher stage at scale: coin flip, D={args.degree}, simulator at zero latency")
    for name in ("questions", "samples", "wall s", "requests/s", "driver peak RSS MB", "cache entries", "cache files",
                 "cache MB", "rerun s", "rerun requests", "rerun samples/s"):  # fmt: skip
        table.add_column(name, justify="right")
    for r in results:
        table.add_row(str(r["questions"]), str(r["samples"]), f"{r['wall_s']:.1f}", f"{r['requests_per_s']:.0f}",
                      f"{r['driver_peak_rss_mb']:.0f}", str(r["cache_entries"]), str(r["cache_files"]),
                      f"{r['cache_mb']:.0f}", f"{r['rerun_wall_s']:.1f}", str(r["rerun_requests"]),
                      f"{r['rerun_samples_per_s']:.0f}")  # fmt: skip
    console.print(table)
    small, large = results[0], results[-1]
    span = max(1, large["questions"] - small["questions"])
    growth = (large["driver_peak_rss_mb"] - small["driver_peak_rss_mb"]) * 100_000 / span
    files_per_100k = large["cache_files"] * 100_000 / max(1, large["cache_entries"])
    print(f"RESULT driver_rss_growth_mb_per_100k={growth:.1f} rerun_samples_per_s={large['rerun_samples_per_s']:.0f} "
          f"cache_files_per_100k={files_per_100k:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
