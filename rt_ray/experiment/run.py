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
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rt_ray import tracking
from rt_ray.artifacts import append_jsonl, read_jsonl
from rt_ray.axes import check_axes, questions_beyond, student_config
from rt_ray.config import RtRayConfig
from rt_ray.console import note_kept
from rt_ray.experiment.curves import (NEAR_BEST_POINTS, axis_trends, curves, points_markdown, spend_markdown, trends_markdown,
                                     unpriced_markdown)
from rt_ray.experiment.plots import COST_PLOT, CURVE_PLOTS, plot_accuracy_vs_cost, plot_cot_vs_degree, plot_curve
from rt_ray.experiment.plan import (
    TEACHER,
    Point,
    at_reference,
    findings,
    findings_markdown,
    methods,
    outcome_runs,
    outcome_string,
    plan,
    reference,
    results_markdown,
    summarize,
    task_configs,
    teacher_markdown,
    training_markdown,
    wall_time_markdown,
)
from rt_ray.progress import bar, say
from rt_ray.storage import join, local_dir, publish

RUNS_FILE = "runs.jsonl"
PREDICTIONS_FILE = "predictions.jsonl"
CURVES_FILE = "curves.json"
REPORT_FILES = ("summary.json", "findings.json", CURVES_FILE, "results.md")
STATE_FILE = "experiment_state.json"
# What early stopping on validation (train.early_stopping_patience) leaves in a trained run's record.
STOPPING = ("best_validation_accuracy", "best_validation_step", "stopped_early_at_step")
# The teacher's figures on its training set that the report shows beside its test accuracy.
TEACHER_STATS = ("degree", "teacher_accuracy", "yield_per_question", "distinct_rationales_per_question", "rationale_lexical_diversity")
# ... and what it spent on them: each curve point's teacher cost is priced from these (curves.py).
TEACHER_SPEND = ("questions", "rationales", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd")


def teacher_run(cfg: RtRayConfig, parent_run_id: str) -> dict:
    """The teacher twice: on the training questions at the largest D (the students' set: its yield and
    diversity), and greedy (D=1) on the test questions, the paper's teacher row, per question, so
    that the students pair with it."""
    from rt_ray.tasks import load_task_data
    from rt_ray.teacher.pipeline import generate

    stats = generate(cfg, parent_run_id=parent_run_id).stats
    test_dir = Path(cfg.generation.output_dir).parent / "teacher_test"
    on_test = generate(cfg.with_values(generation={"split": "test", "degree": 1, "output_dir": str(test_dir)}), parent_run_id=parent_run_id)
    right = {record["question_id"]: bool(record["correct"]) for record in read_jsonl(test_dir / "rationales.jsonl")}
    test = load_task_data(cfg.task).test
    outcomes = outcome_string([{"correct": right.get(s.id, False)} for s in test])  # a failed question counts as wrong
    diversity = {k: stats[k] for k in (*TEACHER_STATS, *TEACHER_SPEND) if k in stats}
    return {"accuracy": outcomes.count("1") / max(1, len(outcomes)), "n": len(outcomes), "outcomes": outcomes,
            "mlflow_run_id": stats["mlflow_run_id"], "test_mlflow_run_id": on_test.stats["mlflow_run_id"],
            "requests_sent": stats["requests_sent"] + on_test.stats["requests_sent"], **diversity}  # fmt: skip


def run_name(label: str, point: Point) -> str:
    """The MLflow run's name: ``coin-ft_cot_d4-s0``, with the point's axes before the method when it has them."""
    return "-".join([label, *point.axes, point.method, f"s{point.seed}"])


def zero_shot_run(cfg: RtRayConfig, label: str, point: Point, parent_run_id: str) -> dict:
    """The untrained student (same architecture and tokenizer recipe as its Fine-tune-CoT self)."""
    from rt_ray.student.evaluate import evaluate_student
    from rt_ray.student.trainer import prepare_training

    seed = point.seed
    _, spec, _ = prepare_training(cfg, "ft_cot", max(cfg.experiment.degrees))
    out = join(cfg.train.output_dir, point.folder())
    with tracking.tracked_run(cfg, stage="evaluate", run_name=run_name(label, point), parent_run_id=parent_run_id,
                              tags={"rt_ray.method": "zero_shot", "rt_ray.seed": seed}) as run_id:  # fmt: skip
        report, predictions = evaluate_student(cfg, {"spec": spec, "seed": seed}, "zero_shot", local_dir(out) / PREDICTIONS_FILE)
        tracking.log_metrics({f"test_{k}": v for k, v in report.items()})
    publish(out, PREDICTIONS_FILE)
    return {"accuracy": report["accuracy"], "n": report["n"], "mlflow_run_id": run_id, "outcomes": outcome_string(predictions)}


def trained_run(cfg: RtRayConfig, label: str, point: Point, parent_run_id: str) -> dict:
    """Fine-tune (vanilla, or Fine-tune-CoT on the first D rationales) on the point's training questions,
    then test accuracy into the same run."""
    from rt_ray.student.evaluate import evaluate_student
    from rt_ray.student.trainer import train_student
    from rt_ray.tasks import load_task_data

    fmt = "vanilla" if point.method == "vanilla" else "ft_cot"
    out = join(cfg.train.output_dir, point.folder())
    train = load_task_data(cfg.task).train
    beyond = questions_beyond(train, cfg.train.validation_size, point.train_size)
    result = train_student(cfg, fmt=fmt, degree=point.degree, output_dir=out, parent_run_id=parent_run_id,
                           held_out=beyond, run_name=run_name(label, point))  # fmt: skip
    report, predictions = evaluate_student(cfg, {"path": str(result.model_dir)}, fmt, local_dir(out) / PREDICTIONS_FILE)
    publish(out, PREDICTIONS_FILE)
    tags = {"rt_ray.method": point.method, "rt_ray.seed": point.seed} | {f"rt_ray.{k}": v for k, v in point.fields().items() if k in ("student", "train_size")}
    with tracking.resumed_run(cfg.tracking, result.mlflow_run_id):
        tracking.set_tags(tags)
        tracking.log_metrics({f"test_{k}": v for k, v in report.items()})
    return {"accuracy": report["accuracy"], "n": report["n"], "mlflow_run_id": result.mlflow_run_id, "outcomes": outcome_string(predictions),
            "degree": point.degree, "train_questions": len(train) - cfg.train.validation_size - len(beyond),
            "student_parameters": result.metrics.get("total_params"),
            "train_samples": result.metrics["train_samples"], "train_wall_s": result.metrics["wall_s"],
            "steps": result.metrics.get("step"), **{k: result.metrics[k] for k in STOPPING if k in result.metrics}}  # fmt: skip


def run_experiment(cfg: RtRayConfig) -> dict:
    """``_run_experiment``, as the one run writing experiment.output_dir."""
    from rt_ray.locks import output_lock

    with output_lock(cfg.experiment.output_dir, "experiment.output_dir"):
        return _run_experiment(cfg)


def _run_experiment(cfg: RtRayConfig) -> dict:
    """The experiment (``cfg``'s paths resolved, as ``load_config`` does)."""
    from rt_ray.cluster import ensure_ray

    exp = cfg.experiment
    configs = task_configs(cfg)  # every task's config is checked before any work starts
    for task_cfg in configs.values():
        check_axes(task_cfg, exp, task_cfg.train.validation_size, origin="experiment")
    out = local_dir(exp.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()  # the whole command's time, the cluster's start-up included
    ensure_ray(cfg.ray)
    parent_run_id = tracking.recorded_parent_run(cfg, out / STATE_FILE, "experiment")
    runs_path = out / RUNS_FILE
    points = plan(exp)
    upstream = {label: task_fingerprint(task_cfg) for label, task_cfg in configs.items()}
    expected = {point.key(label): point_fingerprint(task_cfg, point, upstream[label]) for label, task_cfg in configs.items() for point in points}
    records = current_records(read_jsonl(runs_path, missing_ok=True), expected)
    done = {Point.of(r).key(r["task"]) for r in records}
    reused = len(done)
    names = methods(exp.degrees)

    todo = [(label, point) for label in configs for point in points if point.key(label) not in done]
    budget = RunBudget(started, exp.max_minutes)
    try:
        restore_teacher_sets(configs, todo, done, parent_run_id)
        run_points(todo, configs, expected, budget, parent_run_id, records, runs_path)
    finally:  # an interrupted command's time counts too: the report states what the whole result cost
        timing = add_wall_time(out, time.monotonic() - started, made=len(records) - reused, reused=reused)
    timing["left"] = len(todo) - budget.runs
    return write_report(cfg, records, list(configs), names, parent_run_id, timing)


def restore_teacher_sets(configs: dict[str, RtRayConfig], todo: list, done: set[str], parent_run_id: str | None) -> None:
    """Makes again each teacher set that runs.jsonl says is finished but that is no longer on disk (its
    folder deleted, or runs.jsonl copied without it) before a Fine-tune-CoT student reads it. The teacher
    cache answers every sample it holds, so where the cache is kept this sends nothing; the teacher's
    record, and so the spend the report prices, stays the one measured first."""
    from rt_ray.teacher.pipeline import generate, reusable_generation

    for label in dict.fromkeys(label for label, point in todo if point.degree is not None):
        task_cfg = configs[label]
        if Point(TEACHER, None).key(label) in done and reusable_generation(task_cfg, task_cfg.generation.degree) is None:
            say(f"experiment: {label}'s teacher set is not in {task_cfg.generation.output_dir} (or no longer matches its inputs); "
                f"making it again from the teacher cache {task_cfg.teacher.cache_dir}")  # fmt: skip
            generate(task_cfg, parent_run_id=parent_run_id)


def run_points(todo: list, configs: dict, expected: dict[str, str], budget: "RunBudget", parent_run_id: str, records: list[dict],
               runs_path: Path) -> None:  # fmt: skip
    """Each point not yet in runs.jsonl (with its fingerprint), appended to it (and to ``records``) as it finishes."""
    with bar("experiment", total=len(records) + len(todo)) as progress:
        progress.update(completed=len(records))
        for label, point in todo:
            if not budget.allows_another():
                say(f"experiment: experiment.max_minutes={configs[label].experiment.max_minutes:g} reached; "
                    f"{len(todo) - budget.runs} runs left, kept in runs.jsonl: run the same command again to go on")  # fmt: skip
                return
            progress.update(description=f"{label}: {point.describe()}")
            with budget.timing():
                record = {"task": label, **point.fields(), **run_point(configs[label], label, point, parent_run_id),
                          "fingerprint": expected[point.key(label)]}  # fmt: skip
            append_jsonl(runs_path, record)
            records.append(record)
            note_kept(f"{label} {point.describe()}")
            progress.advance()


class RunBudget:
    """experiment.max_minutes: another run starts only if the longest run so far would still end in time."""

    def __init__(self, started: float, max_minutes: float | None) -> None:
        self.started, self.limit_s = started, None if max_minutes is None else 60 * max_minutes
        self.runs, self.longest_s = 0, 0.0

    def allows_another(self) -> bool:
        return self.limit_s is None or time.monotonic() - self.started + self.longest_s <= self.limit_s

    @contextmanager
    def timing(self) -> Iterator[None]:
        begun = time.monotonic()
        yield
        self.runs += 1
        self.longest_s = max(self.longest_s, time.monotonic() - begun)


def run_point(task_cfg: RtRayConfig, label: str, point: Point, parent_run_id: str) -> dict:
    """The point's run, on its student's config with its seed."""
    if point.method == TEACHER:
        return teacher_run(task_cfg, parent_run_id)
    run = zero_shot_run if point.method == "zero_shot" else trained_run
    return run(point_config(task_cfg, point), label, point, parent_run_id)


def point_config(task_cfg: RtRayConfig, point: Point) -> RtRayConfig:
    """The task's config with the point's student and seed."""
    return student_config(task_cfg, task_cfg.experiment.students, point.student, "experiment").with_values(train={"seed": point.seed})


def task_fingerprint(task_cfg: RtRayConfig) -> str:
    """The teacher's inputs for this task, its data included: where every run's fingerprint starts."""
    from rt_ray.tasks import load_task_data
    from rt_ray.teacher.pipeline import teacher_fingerprint

    return teacher_fingerprint(task_cfg, load_task_data(task_cfg.task))


def point_fingerprint(task_cfg: RtRayConfig, point: Point, upstream: str) -> str:
    """What a run's result depends on: the teacher's inputs (``upstream``), then for a student its
    task, student and training sections (the method and size are the run's key). A run recorded with
    another fingerprint was made under another config and is done again."""
    if point.method == TEACHER:
        return upstream
    return point_config(task_cfg, point).fingerprint_of("task", "student", "train", upstream=upstream)


def current_records(records: list[dict], expected: dict[str, str]) -> list[dict]:
    """The runs of this config's plan that its inputs still match, the latest of each; a run recorded
    before runs carried fingerprints counts as matching."""
    latest = {}
    for record in records:
        key = Point.of(record).key(record["task"])
        if key in expected and record.get("fingerprint", expected[key]) == expected[key]:
            latest[key] = record
    return list(latest.values())


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
    exp = cfg.experiment
    out = local_dir(exp.output_dir)
    at_ref = at_reference(records, exp)
    summary = summarize(at_ref)
    found = findings(summary, exp.degrees, outcome_runs(at_ref))
    by_task = {task: [r for r in records if r["task"] == task] for task in tasks}
    for task, task_records in by_task.items():
        found.setdefault(task, {}).update(axis_trends(task_records))
    task_curves = {task: curves(task_records) for task, task_records in by_task.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "findings.json").write_text(json.dumps(found, indent=2))
    (out / CURVES_FILE).write_text(json.dumps(task_curves, indent=2))
    plots = [plot_cot_vs_degree(summary, exp.degrees, out / "accuracy_vs_degree.png"), plot_accuracy_vs_cost(task_curves, out / COST_PLOT)]
    plots += curve_plots(exp, task_curves, out)
    table = results_markdown(summary, tasks, names)
    (out / "results.md").write_text(report_text(cfg, records, found, task_curves, table, timing, plots))
    with tracking.resumed_run(cfg.tracking, parent_run_id):
        tracking.log_metrics({f"{task}.{method}.mean": cell["mean"] for task, cells in summary.items() for method, cell in cells.items()})
        tracking.log_metrics({"last_run_wall_s": timing["wall_s"], "wall_s_total": timing["wall_s_total"]})
        tracking.log_metrics({f"{task}.{claim}.holds": float(entry["holds"]) for task, claims in found.items() for claim, entry in claims.items()})
        for path in (out / "summary.json", out / "findings.json", out / CURVES_FILE, out / "results.md", *plots, out / RUNS_FILE):
            tracking.log_artifact(path, artifact_path="report")
    publish(exp.output_dir, *REPORT_FILES, *(p.name for p in plots), RUNS_FILE, STATE_FILE)
    return {"summary": summary, "findings": found, "table": table, "report_dir": str(cfg.experiment.output_dir), "parent_run_id": parent_run_id, "wall_s": timing["wall_s"]}


def curve_plots(exp, task_curves: dict, out: Path) -> list[Path]:
    """Accuracy against training questions and against student size, for the axes the config lists,
    at the reference point's values of the other axis."""
    student, size = reference(exp)
    # Each plot holds the other axis at the reference point: sizes for the last student, students at the largest size.
    fixed = {"accuracy_vs_train_size.png": {"student": student}, "accuracy_vs_student_size.png": {"train_questions": size} if size else {}}
    wanted = {"accuracy_vs_train_size.png": len(exp.train_sizes) > 1, "accuracy_vs_student_size.png": len(exp.students) > 1}
    return [plot_curve(task_curves, x_field, line_field, xlabel, out / name, fixed[name])
            for name, (x_field, line_field, xlabel) in CURVE_PLOTS.items() if wanted[name]]  # fmt: skip


def report_text(cfg: RtRayConfig, records: list[dict], found: dict, task_curves: dict, table: str, timing: dict, plots: list[Path]) -> str:
    """results.md: the paper's table and claims at the reference point, the teacher's set, training,
    then every point of the curves with what it cost."""
    exp = cfg.experiment
    seeds = ", ".join(str(s) for s in exp.seeds)
    student, size = reference(exp)
    at = ", ".join([*([f"student {student}"] if student else []), *([f"{size} training questions"] if size else [])])
    trends = "".join(trends_markdown(task, {k: v for k, v in claims.items() if "axis" in v}) for task, claims in found.items())
    spend = "".join(spend_markdown(task, task_curve) for task, task_curve in task_curves.items())
    points = "".join((f"### {task}\n\n" if len(task_curves) > 1 else "") + points_markdown(c) + "\n" for task, c in task_curves.items())
    images = "".join(f"![{p.stem.replace('_', ' ')}]({p.name})\n" for p in plots[1:])
    return (f"# {cfg.run_name}: Fine-tune-CoT against its baselines\n\n"
            f"Test accuracy (%), mean ± std over seeds {seeds}{f', at {at}' if at else ''}; `teacher` is the teacher's greedy "
            f"Zero-shot-CoT accuracy on the same test questions (one run).\n\n{wall_time_markdown(**timing)}\n\n{table}\n"
            f"## Findings\n\n{findings_markdown(found)}\n"
            f"## The teacher's training set\n\n{teacher_markdown(records)}\n"
            f"## Training\n\n{training_markdown(records)}\n"
            f"![accuracy against D](accuracy_vs_degree.png)\n\n"
            f"## Learning curves and teacher spend\n\n"
            f"Each point's teacher $ is what its own training data (questions x D rationales) costs at the dollars per rationale "
            f"the teacher run measured; vanilla uses gold answers only. ★: the cheapest point within "
            f"{NEAR_BEST_POINTS:.0f} point of the best.\n\n{unpriced_markdown(task_curves)}{points}"
            + (f"### Trends\n\n{trends}\n" if trends else "")
            + (f"### What the teacher's money buys\n\n{spend}\n" if spend else "")
            + images)  # fmt: skip
