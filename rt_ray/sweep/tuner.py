"""The sweep stage: Ray Tune over the diversity degree D (and other knobs), one student per trial.

    rt-ray sweep -c configs/quickstart.yaml            # table, plot, champion in the MLflow registry
    rt-ray sweep -c configs/quickstart.yaml --resume   # after Ctrl-C: only the unfinished trials run

Rationales are generated once at the largest D (the teacher cache makes a rerun free); each trial
trains on the first D per question, as the paper does, inside a Tune function trainable that runs a
Ray Train ``TorchTrainer`` (Ray Train V2's documented Tune pattern). Trials ask Tune for almost no
resources themselves: their training workers reserve the CPUs/GPUs, so trials queue where the cluster
is full and run side by side where it is not (up to ``sweep.max_concurrent_trials``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rt_ray import tracking
from rt_ray.config import RtRayConfig, apply_override, parse_config
from rt_ray.sweep.space import other_knobs, plot_accuracy_vs_degree, results_rows, search_space, trial_overrides

SWEEP_STATE = "sweep_state.json"


def sweep_trial(knobs: dict, base_config: dict, parent_run_id: str) -> None:
    """One Tune trial: train the student on the first D rationales, evaluate it, report to Tune."""
    import ray.tune

    from rt_ray.student.evaluate import evaluate_student
    from rt_ray.student.trainer import train_student
    from rt_ray.tasks import load_task_data

    tree = json.loads(json.dumps(base_config))
    for assignment in trial_overrides(knobs):
        apply_override(tree, assignment)
    cfg = parse_config(tree)

    data = load_task_data(cfg.task)
    validation = data.train[: cfg.sweep.validation_size]
    rest = data.train[cfg.sweep.validation_size :]
    size = knobs.get("train_size")
    held_out = {s.id for s in validation} | ({s.id for s in rest[size:]} if size else set())
    trial_id = ray.tune.get_context().get_trial_id()
    out = Path(cfg.sweep.output_dir) / "trials" / trial_id
    started = time.monotonic()
    name = f"{cfg.run_name}-D{knobs['degree']}-" + "-".join(f"{k}{v}" for k, v in knobs.items() if k != "degree")
    result = train_student(cfg, fmt="ft_cot", degree=knobs["degree"], output_dir=out, held_out=held_out,
                           parent_run_id=parent_run_id, run_name=name.rstrip("-"))  # fmt: skip
    source = {"path": str(result.model_dir)}
    validation_report, _ = evaluate_student(cfg, source, "ft_cot", out / "predictions_validation.jsonl", samples=validation)
    test_report, _ = evaluate_student(cfg, source, "ft_cot", out / "predictions_test.jsonl")
    metrics = {
        "validation_accuracy": validation_report["accuracy"],
        "test_accuracy": test_report["accuracy"],
        "train_samples": result.metrics["train_samples"],
        "trial_time_s": time.monotonic() - started,
    }
    with tracking.resumed_run(cfg.tracking, result.mlflow_run_id):
        tracking.log_metrics(metrics)
        tracking.log_artifact(out / "predictions_test.jsonl", artifact_path="eval")
    ray.tune.report({**metrics, "model_dir": str(result.model_dir), "mlflow_run_id": result.mlflow_run_id})


def ensure_rationales(cfg: RtRayConfig, max_degree: int, console: Console) -> dict:
    """Generate at the largest D once; an existing finished run at that D is reused as is."""
    from rt_ray.teacher.pipeline import generate

    stats_path = Path(cfg.generation.output_dir) / "stats.json"
    if stats_path.is_file():
        stats = json.loads(stats_path.read_text())
        if stats.get("status") in ("complete", "complete_with_failures") and stats.get("degree", 0) >= max_degree:
            return stats
    return generate(cfg.with_values(generation={"degree": max_degree}), console=console).stats


def run_sweep(cfg: RtRayConfig, resume: bool = False, console: Console | None = None) -> dict:
    import ray.tune

    from rt_ray.cluster import ensure_ray

    console = console or Console(stderr=True)
    cfg = cfg.with_absolute_paths()
    out = Path(cfg.sweep.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    space = search_space(cfg.sweep)
    ensure_rationales(cfg, max(space["degree"]), console)
    tree = cfg.with_values(generation={"degree": max(space["degree"])}).model_dump(mode="json")
    ensure_ray(cfg.ray)

    state_path = out / SWEEP_STATE
    storage, name = str(out / "tune"), "sweep"
    if resume:
        if not state_path.is_file() or not ray.tune.Tuner.can_restore(f"{storage}/{name}"):
            raise FileNotFoundError(f"no sweep to resume in {out}; run without --resume first")
        parent_run_id = json.loads(state_path.read_text())["parent_run_id"]
        tuner = ray.tune.Tuner.restore(f"{storage}/{name}", trainable=_trainable(tree, parent_run_id), resume_errored=True)
        with tracking.resumed_run(cfg.tracking, parent_run_id):
            grid = tuner.fit()
            return _finish(cfg, grid, space, parent_run_id, out, console)
    with tracking.tracked_run(cfg, stage="sweep", run_name=f"{cfg.run_name}-sweep") as parent_run_id:
        state_path.write_text(json.dumps({"parent_run_id": parent_run_id}))
        param_space = {k: ray.tune.grid_search(v) if cfg.sweep.search == "grid" else ray.tune.choice(v) for k, v in space.items()}
        tuner = ray.tune.Tuner(
            _trainable(tree, parent_run_id),
            param_space=param_space,
            tune_config=ray.tune.TuneConfig(
                metric=cfg.sweep.metric, mode="max", num_samples=cfg.sweep.num_samples,
                max_concurrent_trials=cfg.sweep.max_concurrent_trials,
            ),  # fmt: skip
            run_config=ray.tune.RunConfig(name=name, storage_path=storage),
        )
        grid = tuner.fit()
        return _finish(cfg, grid, space, parent_run_id, out, console)


def _trainable(base_config: dict, parent_run_id: str):
    import ray.tune

    # The base config travels beside the search space (tune.with_parameters), so Tune's tables and
    # trial names show only the knobs. The trial function only drives its TorchTrainer, whose workers
    # reserve the CPUs/GPUs; so the trial asks for no CPU (Tune needs some resource: a little memory).
    trainable = ray.tune.with_parameters(sweep_trial, base_config=base_config, parent_run_id=parent_run_id)
    return ray.tune.with_resources(trainable, {"CPU": 0, "memory": 256 * 2**20})


def _finish(cfg: RtRayConfig, grid, space: dict, parent_run_id: str, out: Path, console: Console) -> dict:
    metric = cfg.sweep.metric
    trials = []
    for result in grid:
        if result.error is not None or not result.metrics or metric not in result.metrics:
            continue
        params = dict(result.config)
        trials.append({"params": params, **{k: result.metrics[k] for k in
                       ("validation_accuracy", "test_accuracy", "train_samples", "trial_time_s", "model_dir", "mlflow_run_id")}})  # fmt: skip
    if not trials:
        raise RuntimeError(f"no sweep trial finished; see the Tune logs in {out / 'tune'}")
    ranked = results_rows(trials, metric)
    knobs = other_knobs(space)
    plot = plot_accuracy_vs_degree(ranked, knobs, metric, out / "accuracy_vs_degree.png")
    table = results_table(ranked, knobs, metric)
    Console(width=120).print(table)
    (out / "results.json").write_text(json.dumps(ranked, indent=2))
    (out / "results.md").write_text(results_markdown(ranked, knobs))
    best = ranked[0]
    version = None
    with tracking.resumed_run(cfg.tracking, best["mlflow_run_id"]):
        version = tracking.log_student_model(best["model_dir"], cfg.student.registered_name)
    tracking.set_alias(cfg.tracking, cfg.student.registered_name, "champion", version)
    with tracking.resumed_run(cfg.tracking, parent_run_id):
        tracking.log_metrics({f"best_{metric}": best[metric], "trials": len(ranked)})
        for path in (plot, out / "results.json", out / "results.md"):
            tracking.log_artifact(path, artifact_path="sweep")
    return {"trials": ranked, "knobs": knobs, "plot": str(plot), "champion_version": version, "parent_run_id": parent_run_id}


def results_table(ranked: list[dict], knobs: list[str], metric: str) -> Table:
    table = Table(title=f"sweep results, ranked by {metric}")
    for column in ("rank", "D", *knobs, "train samples", "validation acc", "test acc", "time s"):
        table.add_column(column)
    for rank, trial in enumerate(ranked, 1):
        table.add_row(str(rank), str(trial["params"]["degree"]), *(str(trial["params"].get(k)) for k in knobs),
                      str(trial["train_samples"]), f"{trial['validation_accuracy']:.3f}", f"{trial['test_accuracy']:.3f}",
                      f"{trial['trial_time_s']:.0f}")  # fmt: skip
    return table


def results_markdown(ranked: list[dict], knobs: list[str]) -> str:
    header = ["rank", "D", *knobs, "train samples", "validation acc", "test acc", "time s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, t in enumerate(ranked, 1):
        cells = [rank, t["params"]["degree"], *(t["params"].get(k) for k in knobs), t["train_samples"],
                 f"{t['validation_accuracy']:.3f}", f"{t['test_accuracy']:.3f}", f"{t['trial_time_s']:.0f}"]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
