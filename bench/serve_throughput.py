"""Serve throughput: the batched deployment against the same student served one request at a time,
and against the limit: the same student's bare batched ``generate`` on the same one core.

    python bench/serve_throughput.py                 # 32 concurrent clients, tiny student, CPU replica

Both deployments are the real Ray Serve app (one replica, same CPUs), differing only in
serve.max_batch_size (16 vs 1); the clients send the same completion requests over HTTP. The bare
row runs ``generate_texts`` (what the replica's model process calls) in this process with one torch
thread, in batches of 16 of the same prompts and token budget: no HTTP, no Serve, no batching wait.
It runs first, before Ray starts, on a quiet machine: the limit, best of three passes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from smoke import parse_args

from rt_ray.config import StudentConfig, parse_config
from rt_ray.student.models import build_student, save_student, student_spec
from rt_ray.tasks import load_task_data
from rt_ray.simulator import free_port


async def drive(base: str, clients: int, per_client: int, max_tokens: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=clients)) as client:

        async def one_client(c: int) -> None:
            for i in range(per_client):
                started = time.perf_counter()
                response = await client.post(base + "/v1/completions", json={"prompt": client_prompt(c, i), "max_tokens": max_tokens})
                response.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in range(clients)))
        return clients * per_client / (time.perf_counter() - started), latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def bare_generate(model_dir: Path, prompts: list[str], batch_size: int, max_tokens: int, device: str = "cpu") -> float:
    """Requests/s of the replica's own generate call, batch after batch, on one thread (and ``device``:
    each call ends in host lists, so the clock waits for the GPU too)."""
    import torch

    from rt_ray.student.generation import generate_texts
    from rt_ray.artifacts import load_student

    torch.set_num_threads(1)
    model, tokenizer, meta = load_student(model_dir)
    model.to(device).eval()
    generate_texts(model, tokenizer, meta["arch"], prompts[:4], max_tokens)  # warm-up
    started = time.perf_counter()
    for start in range(0, len(prompts), batch_size):
        generate_texts(model, tokenizer, meta["arch"], prompts[start : start + batch_size], max_tokens)
    return len(prompts) / (time.perf_counter() - started)


def client_prompt(client: int, index: int) -> str:
    return f"A coin is heads up. Client {client} asks {index}. ###"


def client_prompts(clients: int, per_client: int) -> list[str]:
    return [client_prompt(c, i) for c in range(clients) for i in range(per_client)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests-per-client", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parse_args(parser, smoke={"clients": 4, "requests_per_client": 2, "max_tokens": 4})

    import ray
    from ray import serve

    from rt_ray.serve.app import app_from_config

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        texts = [s.question for s in load_task_data(parse_config({}).task).train]
        model, tokenizer = build_student(student_spec(StudentConfig(), texts))
        save_student(model, tokenizer, Path(tmp) / "model", {"arch": "decoder", "format": "ft_cot"})
        prompts = client_prompts(args.clients, args.requests_per_client)
        bare_rps = max(bare_generate(Path(tmp) / "model", prompts, 16, args.max_tokens) for _ in range(3))
        ray.init(include_dashboard=False)
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for label, batch in (("batched", 16), ("one at a time", 1)):
            cfg = parse_config({"serve": {"model": f"{tmp}/model", "port": port, "max_batch_size": batch, "num_cpus": 1,
                                          "max_tokens_cap": args.max_tokens}})  # fmt: skip
            serve.run(app_from_config(cfg), name="student", route_prefix="/")
            asyncio.run(drive(f"http://127.0.0.1:{port}", 4, 1, args.max_tokens))  # warm-up
            results[label] = asyncio.run(drive(f"http://127.0.0.1:{port}", args.clients, args.requests_per_client, args.max_tokens))
            serve.delete("student")
        serve.shutdown()
        ray.shutdown()

    table = Table(title=f"serve: {args.clients} concurrent clients, {args.max_tokens} new tokens, 1 CPU replica")
    for column in ("deployment", "requests/s", "p50 ms", "p99 ms"):
        table.add_column(column)
    for label, (rps, latencies) in results.items():
        table.add_row(label, f"{rps:.1f}", f"{percentile(latencies, 50) * 1000:.0f}", f"{percentile(latencies, 99) * 1000:.0f}")
    table.add_row("bare generate, batches of 16 (the limit)", f"{bare_rps:.1f}", "", "")
    Console().print(table)
    batched_rps, batched_latencies = results["batched"]
    ratio = batched_rps / results["one at a time"][0]
    print(f"RESULT batched_over_unbatched={ratio:.2f} served_over_bare={batched_rps / bare_rps:.2f} "
          f"p99_ms={percentile(batched_latencies, 99) * 1000:.0f}")


if __name__ == "__main__":
    main()
