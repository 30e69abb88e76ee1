"""``rt-ray experiment``: the paper's comparison, run with rt-ray's own stages.

    rt-ray experiment -c configs/paper-mini.yaml

For each task: the teacher stage once (at the largest D; the teacher's accuracy), then per seed the
student's zero-shot baseline, vanilla fine-tuning and Fine-tune-CoT at each D. Every number is an
MLflow run under one parent run. Finished runs are recorded in runs.jsonl as they complete, so a
rerun (after Ctrl-C or a failure) does only what is missing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rt_ray import tracking
from rt_ray.config import RtRayConfig
from rt_ray.console import note_kept
from rt_ray.progress import bar
from rt_ray.storage import join, local_dir, publish
from rt_ray.experiment.plan import (
    TEACHER,
    findings,
    findings_markdown,
    methods,
    outcome_runs,
    outcome_string,
    plot_accuracy_vs_degree,
    results_markdown,
    run_key,
    summarize,
    task_configs,
    teacher_markdown,
    training_markdown,
    wall_time_markdown,
)

RUNS_FILE = "runs.jsonl"
PREDICTIONS_FILE = "predictions.jsonl"
REPORT_FILES = ("summary.json", "findings.json", "results.md", "accuracy_vs_degree.png")
STATE_FILE = "experiment_state.json"
# What early stopping on validation (train.early_stopping_patience) leaves in a trained run's record.
STOPPING = ("best_validation_accuracy", "best_validation_step", "stopped_early_at_step")
# The teacher's figures on its training set that the report shows beside its test accuracy.
TEACHER_STATS = ("degree", "teacher_accuracy", "yield_per_question", "distinct_rationales_per_question", "rationale_lexical_diversity")


def teacher_run(cfg: RtRayConfig, parent_run_id: str) -> dict:
    """The teacher twice: on the training questions at the largest D (the students' set: its yield and
    diversity), and greedy (D=1) on the test questions, the paper's teacher row, per question, so
    that the students pair with it."""
    from rt_ray.tasks import load_task_data
    from rt_ray.teacher.pipeline import generate

    stats = generate(cfg, parent_run_id=parent_run_id).stats
    test_dir = Path(cfg.generation.output_dir).parent / "teacher_test"
    on_test = generate(cfg.with_values(generation={"split": "test", "degree": 1, "output_dir": str(test_dir)}), parent_run_id=parent_run_id)
    right = {}
    for line in (test_dir / "rationales.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        right[record["question_id"]] = bool(record["correct"])
    test = load_task_data(cfg.task).test
    outcomes = outcome_string([{"correct": right.get(s.id, False)} for s in test])  # a failed question counts as wrong
    diversity = {k: stats[k] for k in TEACHER_STATS if k in stats}
    return {"accuracy": outcomes.count("1") / max(1, len(outcomes)), "n": len(outcomes), "outcomes": outcomes,
            "mlflow_run_id": stats["mlflow_run_id"], "test_mlflow_run_id": on_test.stats["mlflow_run_id"],
            "requests_sent": stats["requests_sent"] + on_test.stats["requests_sent"], **diversity}  # fmt: skip


def zero_shot_run(cfg: RtRayConfig, label: str, seed: int, parent_run_id: str) -> dict:
    """The untrained student (same architecture and tokenizer recipe as its Fine-tune-CoT self)."""
    from rt_ray.student.evaluate import evaluate_student
    from rt_ray.student.trainer import prepare_training

    _, spec, _ = prepare_training(cfg, "ft_cot", max(cfg.experiment.degrees))
    out = join(cfg.train.output_dir, f"zero_shot_s{seed}")
    with tracking.tracked_run(cfg, stage="evaluate", run_name=f"{label}-zero_shot-s{seed}", parent_run_id=parent_run_id,
                              tags={"rt_ray.method": "zero_shot", "rt_ray.seed": seed}) as run_id:  # fmt: skip
        report, predictions = evaluate_student(cfg, {"spec": spec, "seed": seed}, "zero_shot", local_dir(out) / PREDICTIONS_FILE)
        tracking.log_metrics({f"test_{k}": v for k, v in report.items()})
    publish(out, PREDICTIONS_FILE)
    return {"accuracy": report["accuracy"], "n": report["n"], "mlflow_run_id": run_id, "outcomes": outcome_string(predictions)}


def trained_run(cfg: RtRayConfig, label: str, method: str, seed: int, parent_run_id: str) -> dict:
    """Fine-tune (vanilla, or Fine-tune-CoT on the first D rationales), then test accuracy into the same run."""
    from rt_ray.student.evaluate import evaluate_student
    from rt_ray.student.trainer import train_student

    fmt, degree = ("vanilla", None) if method == "vanilla" else ("ft_cot", int(method.removeprefix("ft_cot_d")))
    out = join(cfg.train.output_dir, f"{method}_s{seed}")
    result = train_student(cfg, fmt=fmt, degree=degree, output_dir=out, parent_run_id=parent_run_id,
                           run_name=f"{label}-{method}-s{seed}")  # fmt: skip
    report, predictions = evaluate_student(cfg, {"path": str(result.model_dir)}, fmt, local_dir(out) / PREDICTIONS_FILE)
    publish(out, PREDICTIONS_FILE)
    with tracking.resumed_run(cfg.tracking, result.mlflow_run_id):
        tracking.set_tags({"rt_ray.method": method, "rt_ray.seed": seed})
        tracking.log_metrics({f"test_{k}": v for k, v in report.items()})
    return {"accuracy": report["accuracy"], "n": report["n"], "mlflow_run_id": result.mlflow_run_id, "outcomes": outcome_string(predictions),
            "train_samples": result.metrics["train_samples"], "train_wall_s": result.metrics["wall_s"],
            "steps": result.metrics.get("step"), **{k: result.metrics[k] for k in STOPPING if k in result.metrics}}  # fmt: skip


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def append_record(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def parent_run(cfg: RtRayConfig, out: Path) -> str:
    """The experiment's MLflow parent run: reused on a rerun, so children stay together."""
    state = out / STATE_FILE
    if state.is_file():
        return json.loads(state.read_text())["parent_run_id"]
    with tracking.tracked_run(cfg, stage="experiment", run_name=f"{cfg.run_name}-experiment") as run_id:
        pass
    state.write_text(json.dumps({"parent_run_id": run_id}))
    return run_id


def run_experiment(cfg: RtRayConfig) -> dict:
    """``_run_experiment``, as the one run writing experiment.output_dir."""
    from rt_ray.locks import output_lock

    cfg = cfg.with_absolute_paths()
    with output_lock(cfg.experiment.output_dir, "experiment.output_dir"):
        return _run_experiment(cfg)


def _run_experiment(cfg: RtRayConfig) -> dict:
    """The experiment, its relative paths already resolved by ``run_experiment``."""
    from rt_ray.cluster import ensure_ray

    exp = cfg.experiment
    configs = task_configs(cfg)  # every task's config is checked before any work starts
    out = local_dir(exp.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()  # the whole command's time, the cluster's start-up included
    ensure_ray(cfg.ray)
    parent_run_id = parent_run(cfg, out)
    runs_path = out / RUNS_FILE
    records = read_records(runs_path)
    done = {run_key(r["task"], r["method"], r["seed"]) for r in records}
    reused = len(done)
    names = methods(exp.degrees)
    total = len(configs) * (1 + len(exp.seeds) * len(names))

    with bar("experiment", total=total) as progress:
        progress.update(completed=len(done))
        for label, task_cfg in configs.items():
            plan = [(TEACHER, None)] + [(m, s) for s in exp.seeds for m in names]
            for method, seed in plan:
                if run_key(label, method, seed) in done:
                    continue
                progress.update(description=f"{label}: {method}" + (f" seed {seed}" if seed is not None else ""))
                if method == TEACHER:
                    outcome = teacher_run(task_cfg, parent_run_id)
                elif method == "zero_shot":
                    outcome = zero_shot_run(task_cfg.with_values(train={"seed": seed}), label, seed, parent_run_id)
                else:
                    outcome = trained_run(task_cfg.with_values(train={"seed": seed}), label, method, seed, parent_run_id)
                record = {"task": label, "method": method, "seed": seed, **outcome}
                append_record(runs_path, record)
                records.append(record)
                note_kept(f"{label} {method}" + (f" seed {seed}" if seed is not None else ""))
                progress.advance()
    timing = add_wall_time(out, time.monotonic() - started, made=len(records) - reused, reused=reused)
    return write_report(cfg, records, list(configs), names, parent_run_id, timing)


def add_wall_time(out: Path, wall_s: float, made: int, reused: int) -> dict:
    """The experiment's wall time summed over its invocations (a rerun after Ctrl-C adds its own), kept
    in the state file beside the parent run id, so the report states what the whole result cost."""
    state_path = out / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    state["wall_s_total"] = state.get("wall_s_total", 0.0) + wall_s
    state["invocations"] = state.get("invocations", 0) + 1
    state_path.write_text(json.dumps(state))
    return {"wall_s": wall_s, "wall_s_total": state["wall_s_total"], "invocations": state["invocations"], "made": made, "reused": reused}


def write_report(cfg: RtRayConfig, records: list[dict], tasks: list[str], names: list[str], parent_run_id: str, timing: dict) -> dict:
    out = local_dir(cfg.experiment.output_dir)
    summary = summarize(records)
    found = findings(summary, cfg.experiment.degrees, outcome_runs(records))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "findings.json").write_text(json.dumps(found, indent=2))
    plot = plot_accuracy_vs_degree(summary, cfg.experiment.degrees, out / "accuracy_vs_degree.png")
    table = results_markdown(summary, tasks, names)
    seeds = ", ".join(str(s) for s in cfg.experiment.seeds)
    text = (f"# {cfg.run_name}: Fine-tune-CoT against its baselines\n\n"
            f"Test accuracy (%), mean ± std over seeds {seeds}; `teacher` is the teacher's greedy Zero-shot-CoT "
            f"accuracy on the same test questions (one run).\n\n{wall_time_markdown(**timing)}\n\n{table}\n## Findings\n\n{findings_markdown(found)}\n"
            f"## The teacher's training set\n\n{teacher_markdown(records)}\n"
            f"## Training\n\n{training_markdown(records)}\n"
            f"![accuracy against D](accuracy_vs_degree.png)\n")  # fmt: skip
    (out / "results.md").write_text(text)
    with tracking.resumed_run(cfg.tracking, parent_run_id):
        tracking.log_metrics({f"{task}.{method}.mean": cell["mean"] for task, cells in summary.items() for method, cell in cells.items()})
        tracking.log_metrics({"last_run_wall_s": timing["wall_s"], "wall_s_total": timing["wall_s_total"]})
        tracking.log_metrics({f"{task}.{claim}.holds": float(entry["holds"]) for task, claims in found.items() for claim, entry in claims.items()})
        for path in (out / "summary.json", out / "findings.json", out / "results.md", plot, out / RUNS_FILE):
            tracking.log_artifact(path, artifact_path="report")
    publish(cfg.experiment.output_dir, *REPORT_FILES, RUNS_FILE, STATE_FILE)
    return {"summary": summary, "findings": found, "table": table, "report_dir": str(cfg.experiment.output_dir), "parent_run_id": parent_run_id, "wall_s": timing["wall_s"]}
