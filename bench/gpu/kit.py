"""The GPU check's parts, each a process of its own that bench/gpu/run.sh runs under its own time
limit, then ``summary``, which writes summary.json and summary.md and prints the RESULT line.

    python bench/gpu/kit.py train --mode gpu --work runs/gpu-kit/parts    # one part
    python bench/gpu/kit.py summary --mode gpu --work runs/gpu-kit/parts --out "$OUT"

Parts: ``train`` (Ray Train + DeepSpeed ZeRO-2 on one worker against a bare PyTorch loop with the
same model, batch and samples: tokens/s, MFU), ``zero3`` (loss falls, the consolidated export
reloads to the same logits), ``lora``, ``evaluate`` (a Ray Data replica on the GPU: questions/s),
``serve`` (Ray Serve batched against one request at a time at 32 clients, and against bare batched
generate on the same device), ``pipeline`` (a tiny ``rt-ray pipeline`` with bench/gpu/pipeline.yaml).
``--mode gpu``: a GPT-2-small-sized student (124M parameters) in bf16; ``--mode cpu``: the rehearsal,
tiny sizes, the same code. Each part writes ``<work>/<part>.json``: its figures, or its error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import traceback
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))  # the CPU benches' pieces: the same samples, clients and percentiles

# GPT-2 small (124M parameters with its 50,257-token vocabulary); the tokenizer is trained on the
# task's text and uses the first few thousand rows, the rest keep the model's size and FLOPs.
SIZES = {
    "gpu": {"hidden": 768, "layers": 12, "heads": 12, "vocab": 50257, "max_length": 512, "batch": 64, "warm_steps": 30,
            "steps": 59, "questions": 2000, "short_steps": 30, "eval_questions": 512, "eval_batch": 64,
            "clients": 32, "per_client": 8, "max_tokens": 64, "bare_passes": 2, "cpus": 8, "precision": "bf16"},
    "cpu": {"hidden": 64, "layers": 2, "heads": 2, "vocab": 0, "max_length": 192, "batch": 4, "warm_steps": 3,
            "steps": 5, "questions": 60, "short_steps": 4, "eval_questions": 12, "eval_batch": 6,
            "clients": 4, "per_client": 2, "max_tokens": 8, "bare_passes": 1, "cpus": 1, "precision": "fp32"},
}  # fmt: skip
# Dense bf16 peak of each card, FLOP/s (NVIDIA's data sheets, SXM parts): MFU's denominator.
BF16_PEAK = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


def device_name(mode: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if mode == "gpu" else "cpu"


def peak_flops(name: str) -> float | None:
    return next((peak for card, peak in BF16_PEAK.items() if card in name), None)


def start_ray() -> None:
    """A new local cluster, as rt-ray's commands start one: never a running `ray start` head (CI runs
    the rehearsal beside the test suite, whose clusters are not the kit's to use or stop)."""
    from rt_ray.cluster import ensure_ray
    from rt_ray.config import RayConfig

    ensure_ray(RayConfig())


def base_config(mode: str, work: Path, part: str, **sections):
    from rt_ray.config import parse_config

    size, gpu = SIZES[mode], mode == "gpu"
    tree = {
        "student": {"tiny_hidden": size["hidden"], "tiny_layers": size["layers"], "tiny_heads": size["heads"], "tiny_vocab": 400,
                    "max_length": size["max_length"], "max_new_tokens": size["max_tokens"], "eval_replicas": 1,
                    "eval_cpus": size["cpus"], "eval_gpus": 1 if gpu else 0, "eval_batch_size": size["eval_batch"]},
        "train": {"num_workers": 1, "use_gpu": gpu, "cpus_per_worker": size["cpus"], "zero_stage": 2, "precision": size["precision"],
                  "batch_size": size["batch"], "max_steps": size["steps"], "checkpoint_every_steps": size["warm_steps"],
                  "lr": 5e-4, "output_dir": str(work / part)},
        "tracking": {"tracking_uri": f"sqlite:///{work / 'mlflow.db'}"},
    }  # fmt: skip
    for section, values in sections.items():
        tree[section] = {**tree.get(section, {}), **values}
    return parse_config(tree)


def kit_student(cfg, mode: str) -> tuple[dict, list[tuple[str, str]]]:
    """The kit's student spec (GPT-2-small-sized on a GPU) and the Fine-tune-CoT pairs its tokenizer learned from."""
    from train_throughput import samples

    from rt_ray.student.data import training_pairs
    from rt_ray.student.models import student_spec

    pairs = training_pairs(samples(SIZES[mode]["questions"]), [], "ft_cot", None, "decoder")
    spec = student_spec(cfg.student, [s + t for s, t in pairs])
    config = spec["model_config"]
    config["vocab_size"] = max(config["vocab_size"], SIZES[mode]["vocab"])
    config["n_positions"] = max(config["n_positions"], 1024 if mode == "gpu" else 0)
    return spec, pairs


def student_and_rows(cfg, mode: str) -> tuple[dict, list[dict]]:
    """The kit's student spec and its training rows, tokenized."""
    from rt_ray.student.data import tokenize_pair
    from rt_ray.student.models import load_tokenizer

    spec, pairs = kit_student(cfg, mode)
    tokenizer = load_tokenizer(spec)
    return spec, [tokenize_pair(tokenizer, s, t, "decoder", cfg.student.max_length) for s, t in pairs]


def fit_rows(cfg, spec: dict, rows: list[dict], name: str):
    from rt_ray.student.data import token_table
    from rt_ray.student.trainer import fit, training_run_config

    loop_config = training_run_config(cfg, spec, {"arch": "decoder", "format": "ft_cot"}, None, None)
    result = fit(cfg, token_table(rows), loop_config, name=name, output_dir=cfg.train.output_dir)
    if result.error is not None:
        raise result.error
    return result


def bare_loop(spec: dict, rows: list[dict], mode: str) -> float:
    """Tokens/s of a plain PyTorch loop on one device: the same model, batch and samples as the Ray
    Train worker, bf16 autocast on a GPU, AdamW, clipping; timed after the same warm-up steps."""
    import random

    import torch

    from rt_ray.student.data import pad_batch
    from rt_ray.student.models import build_student

    size, device = SIZES[mode], "cuda" if mode == "gpu" else "cpu"
    model, tokenizer = build_student(spec, seed=0)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    tokens, started = 0, None
    for step in range(size["steps"]):
        if step == size["warm_steps"]:
            torch.cuda.synchronize() if device == "cuda" else None
            tokens, started = 0, time.perf_counter()
        picked = [rows[order[(step * size["batch"] + i) % len(rows)]] for i in range(size["batch"])]
        batch = {k: v.to(device, non_blocking=True) for k, v in pad_batch(picked, tokenizer.pad_token_id).items()}
        with torch.autocast(device, dtype=torch.bfloat16, enabled=size["precision"] == "bf16"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    torch.cuda.synchronize() if device == "cuda" else None
    return tokens / (time.perf_counter() - started)


def part_train(mode: str, work: Path) -> dict:
    """ZeRO-2 on one worker against the bare loop; the final report's window starts after warm_steps."""
    import ray

    cfg = base_config(mode, work, "zero2")
    spec, rows = student_and_rows(cfg, mode)
    start_ray()
    result = fit_rows(cfg, spec, rows, "gpu-kit-zero2")
    ray.shutdown()
    ray_tps, params = result.metrics["tokens_per_s"], result.metrics["total_params"]
    bare_tps = bare_loop(spec, rows, mode)
    peak = peak_flops(device_name(mode))
    return {"params": params, "ray_tokens_per_s": ray_tps, "bare_tokens_per_s": bare_tps, "ray_over_bare": ray_tps / bare_tps,
            "mfu": 6 * params * ray_tps / peak if peak else None, "bare_mfu": 6 * params * bare_tps / peak if peak else None,
            "batch": cfg.train.batch_size, "measured_steps": cfg.train.max_steps - cfg.train.checkpoint_every_steps}  # fmt: skip


def probe_logit_sum(model_dir: Path, mode: str) -> float:
    import torch

    from rt_ray.artifacts import load_student
    from rt_ray.student.train_loop import probe_inputs

    model, tokenizer, meta = load_student(model_dir)
    device = "cuda" if mode == "gpu" else "cpu"
    model.to(device, dtype=torch.bfloat16 if SIZES[mode]["precision"] == "bf16" else torch.float32).eval()
    with torch.no_grad():
        return model(**probe_inputs(tokenizer, meta["arch"], device)).logits.float().sum().item()


def short_run(mode: str, work: Path, part: str, **sections) -> dict:
    """A few steps (a report half-way, one at the end): the loss at both, and the export's logits reloaded."""
    import ray

    steps = SIZES[mode]["short_steps"]
    cfg = base_config(mode, work, part, **sections)
    cfg = cfg.with_values(train={"max_steps": steps, "checkpoint_every_steps": steps // 2})
    spec, rows = student_and_rows(cfg, mode)
    start_ray()
    result = fit_rows(cfg, spec, rows, f"gpu-kit-{part}")
    ray.shutdown()
    losses = [float(x) for x in result.metrics_dataframe["loss"]]
    with result.checkpoint.as_directory() as directory:
        reloaded = probe_logit_sum(Path(directory), mode)
    trained = result.metrics["export_check"]
    figures = {"first_loss": losses[0], "last_loss": losses[-1], "loss_fell": losses[-1] < losses[0],
               "trainable_params": result.metrics["trainable_params"], "total_params": result.metrics["total_params"],
               "export_logit_sum": trained, "reloaded_logit_sum": reloaded,
               "export_relative_gap": abs(reloaded - trained) / max(abs(trained), 1e-9)}  # fmt: skip
    return figures


def part_zero3(mode: str, work: Path) -> dict:
    figures = short_run(mode, work, "zero3", train={"zero_stage": 3})
    # bf16 logits summed over a few thousand entries: a reload that matches agrees to about 1e-3
    figures["export_matches"] = figures["export_relative_gap"] < (1e-2 if mode == "gpu" else 1e-4)
    return figures


def part_lora(mode: str, work: Path) -> dict:
    figures = short_run(mode, work, "lora", student={"lora": {"r": 8, "export": "merged"}})
    figures["trainable_share"] = figures["trainable_params"] / figures["total_params"]
    return figures


def untrained_student(cfg, mode: str, folder: Path) -> Path:
    from rt_ray.student.models import build_student, save_student

    spec, _ = kit_student(cfg, mode)
    model, tokenizer = build_student(spec, seed=0)
    save_student(model, tokenizer, folder, {"arch": "decoder", "format": "ft_cot", "spec": spec})
    return folder


def part_evaluate(mode: str, work: Path) -> dict:
    """Batched greedy generation on one replica (its GPU under --mode gpu); the clock includes the
    replica's start and model load, as a user's evaluation does."""
    import ray

    from rt_ray.student.evaluate import evaluate_student
    from rt_ray.tasks.generated import load_coin_flip

    cfg = base_config(mode, work, "evaluate")
    model_dir = untrained_student(cfg, mode, work / "evaluate" / "model")
    questions = load_coin_flip(SIZES[mode]["eval_questions"], 4, seed=1)
    start_ray()
    started = time.perf_counter()
    report, predictions = evaluate_student(cfg, {"path": str(model_dir)}, "ft_cot", samples=questions)
    wall = time.perf_counter() - started
    ray.shutdown()
    return {"questions": len(predictions), "questions_per_s": len(predictions) / wall, "wall_s": wall,
            "new_tokens": cfg.student.max_new_tokens, "batch": cfg.student.eval_batch_size}  # fmt: skip


def part_serve(mode: str, work: Path) -> dict:
    import ray
    from ray import serve
    from serve_throughput import bare_generate, client_prompts, drive, percentile

    from rt_ray.serve.app import app_from_config
    from rt_ray.simulator import free_port

    size = SIZES[mode]
    model_dir = untrained_student(base_config(mode, work, "serve"), mode, work / "serve" / "model")
    prompts = client_prompts(size["clients"], size["per_client"])
    device = "cuda" if mode == "gpu" else "cpu"
    bare_rps = max(bare_generate(model_dir, prompts, size["clients"], size["max_tokens"], device) for _ in range(size["bare_passes"]))
    start_ray()
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    results = {}
    for label, batch in (("batched", size["clients"]), ("unbatched", 1)):
        cfg = base_config(mode, work, "serve", serve={"model": str(model_dir), "port": port, "max_batch_size": batch,
                                                       "num_cpus": size["cpus"], "num_gpus": 1 if mode == "gpu" else 0,
                                                       "max_tokens_cap": size["max_tokens"]})  # fmt: skip
        serve.run(app_from_config(cfg), name="student", route_prefix="/")
        asyncio.run(drive(f"http://127.0.0.1:{port}", 4, 1, size["max_tokens"]))  # warm-up
        results[label] = asyncio.run(drive(f"http://127.0.0.1:{port}", size["clients"], size["per_client"], size["max_tokens"]))
        serve.delete("student")
    serve.shutdown()
    ray.shutdown()
    (batched_rps, latencies), (unbatched_rps, _) = results["batched"], results["unbatched"]
    return {"clients": size["clients"], "batched_rps": batched_rps, "unbatched_rps": unbatched_rps, "bare_rps": bare_rps,
            "batched_over_unbatched": batched_rps / unbatched_rps, "served_over_bare": batched_rps / bare_rps,
            "p99_ms": percentile(latencies, 99) * 1000}  # fmt: skip


def part_pipeline(mode: str, work: Path) -> dict:
    """``rt-ray pipeline -c bench/gpu/pipeline.yaml`` in its own folder: teacher, train, evaluate, deploy, report."""
    overrides = [] if mode == "gpu" else ["train.use_gpu=false", "train.precision=fp32", "student.eval_gpus=0", "serve.num_gpus=0",
                                          "train.max_steps=10", "train.checkpoint_every_steps=5", "task.num_examples=40",
                                          "pipeline.cost_probe_requests=4", "pipeline.sample_queries=1"]  # fmt: skip
    root = work / "pipeline"
    root.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "rt_ray.cli", "pipeline", "-c", str(REPO / "bench/gpu/pipeline.yaml")]
    command += [item for o in overrides + [f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}"] for item in ("--set", o)]
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=root, capture_output=True, text=True)
    print(finished.stdout[-4000:], finished.stderr[-4000:], sep="\n")
    if finished.returncode:
        raise RuntimeError(f"rt-ray pipeline exited {finished.returncode}: {(finished.stderr or finished.stdout).strip()[-300:]}")
    report = json.loads((root / "runs/gpu-kit/pipeline/report.json").read_text())
    return {"wall_s": time.perf_counter() - started, "report_keys": sorted(report)[:12]}


PARTS = {"train": part_train, "zero3": part_zero3, "lora": part_lora, "evaluate": part_evaluate, "serve": part_serve,
         "pipeline": part_pipeline}  # fmt: skip


def run_part(name: str, mode: str, work: Path) -> int:
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        figures, status = PARTS[name](mode, work), 0
        figures["ok"] = True
    except Exception as error:  # the part's failure is a figure of the check; its traceback goes to the log
        traceback.print_exc()
        figures, status = {"ok": False, "error": f"{type(error).__name__}: {error}"[:500]}, 1
    figures["part_s"] = time.perf_counter() - started
    (work / f"{name}.json").write_text(json.dumps(figures, indent=2))
    print(f"part {name}: {'ok' if figures['ok'] else figures['error']} ({figures['part_s']:.0f} s)")
    return status


# The targets (reports/gpu/summary.md reads them beside the figures).
TARGETS = {("train", "mfu"): 0.40, ("train", "ray_over_bare"): 0.9, ("serve", "served_over_bare"): 0.8}
HEADLINES = [("train", "params", "student parameters"), ("train", "ray_tokens_per_s", "Ray Train + DeepSpeed ZeRO-2, tokens/s"),
             ("train", "bare_tokens_per_s", "bare PyTorch loop, tokens/s"), ("train", "ray_over_bare", "ray_over_bare"),
             ("train", "mfu", "MFU (6·N·tokens/s over the card's bf16 peak)"), ("zero3", "loss_fell", "ZeRO-3: loss fell"),
             ("zero3", "export_matches", "ZeRO-3: the consolidated export reloads to the same logits"),
             ("lora", "loss_fell", "LoRA: loss fell"), ("lora", "trainable_share", "LoRA: share of parameters trained"),
             ("evaluate", "questions_per_s", "evaluation on a replica, questions/s (replica start included)"),
             ("serve", "batched_over_unbatched", "Serve: batched over one request at a time"),
             ("serve", "p99_ms", "Serve: p99 latency, batched, ms"), ("serve", "served_over_bare", "Serve: served over bare batched generate"),
             ("pipeline", "wall_s", "rt-ray pipeline end to end, s")]  # fmt: skip


def shown(value) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "n/a"}[value]
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def summary(mode: str, work: Path, out: Path, wall_s: float) -> bool:
    """Writes summary.md and summary.json, prints the RESULT line; whether every part ran to its end."""
    parts = {name: json.loads(p.read_text()) if (p := work / f"{name}.json").is_file() else {"ok": False, "error": "not run"}
             for name in PARTS}  # fmt: skip
    card = device_name(mode)
    rows = [f"| {label} | {shown(parts[part].get(key))} | {f'at least {TARGETS[(part, key)]}' if (part, key) in TARGETS else ''} |"
            for part, key, label in HEADLINES if parts[part].get("ok")]  # fmt: skip
    failed = [f"- **{name}**: {p['error']}" for name, p in parts.items() if not p.get("ok")]
    lines = [f"# GPU check: {card}", "", f"`bench/gpu/run.sh{' --cpu' if mode == 'cpu' else ''}`, {wall_s:.0f} s in all; "
             f"{sum(p.get('ok', False) for p in parts.values())} of {len(parts)} parts ran to the end.", "",
             "| figure | value | target |", "| --- | --- | --- |", *rows]  # fmt: skip
    if mode == "cpu":
        lines += ["", "The rehearsal on CPU with tiny sizes: its figures only show that each part runs to the end."]
    if failed:
        lines += ["", "Parts that did not finish:", *failed]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps({"card": card, "mode": mode, "wall_s": wall_s, "parts": parts}, indent=2))
    print("\n".join(lines))
    figures = {f"{part}_{key}": parts[part].get(key) for part, key, _ in HEADLINES if parts[part].get("ok")}
    print("RESULT " + " ".join([f"card={card.replace(' ', '_')}", f"parts_ok={sum(p.get('ok', False) for p in parts.values())}/{len(parts)}"]
                               + [f"{k}={shown(v).replace(',', '')}" for k, v in figures.items()]))  # fmt: skip
    return all(p.get("ok") for p in parts.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=[*PARTS, "summary"])
    parser.add_argument("--mode", choices=["gpu", "cpu"], default="gpu")
    parser.add_argument("--work", type=Path, default=REPO / "runs/gpu-kit/parts")
    parser.add_argument("--out", type=Path, help="summary: where summary.json and summary.md go")
    parser.add_argument("--wall-s", type=float, default=0.0, help="summary: the whole run's wall time")
    args = parser.parse_args()
    if args.part == "summary":
        sys.exit(0 if summary(args.mode, args.work, args.out or args.work, args.wall_s) else 1)
    sys.exit(run_part(args.part, args.mode, args.work.resolve()))


if __name__ == "__main__":
    main()
