"""Learning curves as plain data: what each point of an experiment cost, how accuracy moves along each
axis, and what the same teacher spend buys at D=1 against a higher D. No Ray, no MLflow.

    per_rationale = teacher_usd_per_rationale(teacher_record)
    cells = point_cells(records, per_rationale)        # a point: method x student x training questions
    trends = axis_trends(records)                      # axis -> rank correlation with a bootstrap interval
    matches = equal_spend(records)                     # D=1 on q questions against D on q / D questions
    cheapest_near_best(cells)                          # the cheapest point within 1 point of the best

A point's teacher cost is what its own training data would have cost: its training questions x D
rationales at the dollars per rationale the teacher run measured (vanilla and zero-shot students use
no rationale: $0). Trends use Spearman's rank correlation (with average ranks for ties) within groups
that hold the other axes fixed, averaged with the groups' sizes as weights; the interval resamples
runs within each group. numpy only, as rt_ray.experiment.stats: scipy is not a dependency.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

import numpy as np

from rt_ray.experiment.plan import Point
from rt_ray.experiment.stats import compare
from rt_ray.tables import markdown_table

TRAINED = ("vanilla", "ft_cot")
# axis -> (the record field that is its value, the fields that hold the other axes fixed)
AXES = {
    "degree": ("degree", ("student", "train_questions")),
    "train_size": ("train_questions", ("degree", "student")),
    "student": ("student_parameters", ("degree", "train_questions")),
}
NEAR_BEST_POINTS = 1.0


def teacher_usd_per_rationale(teacher: dict) -> float | None:
    """Dollars a training rationale cost, from the teacher run's measured spend. Each rationale is two
    samples (the rationale, then its answer extraction); samples served from the cache were not paid
    for in this run, so the spend is scaled to every sample. None when no sample was paid for."""
    rationales = teacher.get("rationales") or 0
    fresh = 2 * rationales - (teacher.get("cache_hits") or 0)
    if rationales <= 0 or fresh <= 0 or teacher.get("cost_usd") is None:
        return None
    return teacher["cost_usd"] * (2 * rationales) / fresh / rationales


def point_teacher_usd(record: dict, per_rationale: float | None) -> float | None:
    """The teacher spend this point's training data costs on its own: questions x D rationales."""
    if not record["method"].startswith("ft_cot"):
        return 0.0
    if per_rationale is None or record.get("train_questions") is None:
        return None
    return record["train_questions"] * record["degree"] * per_rationale


@dataclass(frozen=True)
class Cell:
    """A point over its seeds."""

    name: str
    method: str
    degree: int | None
    student: str | None
    train_questions: int | None
    student_parameters: int | None
    mean: float
    std: float
    runs: int
    teacher_usd: float | None
    train_s: float | None


def point_cells(records: list[dict], per_rationale: float | None) -> list[Cell]:
    """Every student point (teacher left out), mean and sample std over its seeds, in the order first run."""
    grouped: dict[str, list[dict]] = {}
    for record in records:
        if record["method"] != "teacher":
            grouped.setdefault(Point.of(record).name, []).append(record)
    cells = []
    for name, runs in grouped.items():
        first, accuracies = runs[0], [r["accuracy"] for r in runs]
        times = [r["train_wall_s"] for r in runs if r.get("train_wall_s") is not None]
        cells.append(Cell(name, first["method"], first.get("degree"), first.get("student"), first.get("train_questions"),
                          first.get("student_parameters"), statistics.fmean(accuracies),
                          statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0, len(runs),
                          point_teacher_usd(first, per_rationale), statistics.fmean(times) if times else None))  # fmt: skip
    return cells


def cheapest_near_best(cells: list[Cell], within_points: float = NEAR_BEST_POINTS) -> Cell | None:
    """The cheapest trained point (teacher dollars, then training time) whose mean accuracy is within
    ``within_points`` of the best trained point's."""
    trained = [c for c in cells if c.method.startswith(TRAINED) and c.teacher_usd is not None]
    if not trained:
        return None
    best = max(c.mean for c in trained)
    near = [c for c in trained if 100 * (best - c.mean) <= within_points + 1e-9]
    return min(near, key=lambda c: (c.teacher_usd, c.train_s or 0.0))


def average_ranks(values: list[float]) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="mergesort")
    ranks = np.empty(len(array))
    ranks[order] = np.arange(1, len(array) + 1)
    for value in np.unique(array):
        tied = array == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rho: Pearson's correlation of the average ranks; nan when either side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float((dx * dx).sum() * (dy * dy).sum()))
    return float((dx * dy).sum() / denominator) if denominator > 0 else float("nan")


def pooled_rho(groups: list[tuple[list[float], list[float]]]) -> float:
    """The groups' rho, averaged with their sizes as weights; groups where it is undefined are left out."""
    rhos = [(spearman(x, y), len(x)) for x, y in groups]
    defined = [(rho, n) for rho, n in rhos if not math.isnan(rho)]
    return sum(rho * n for rho, n in defined) / sum(n for _, n in defined) if defined else float("nan")


def rank_correlation(groups: list[tuple[list[float], list[float]]], resamples: int = 2000, seed: int = 0) -> dict:
    """rho over the groups with a 95 % percentile bootstrap interval (runs resampled within each group);
    ``holds`` when the interval lies above 0, ``reversed`` when below."""
    rho = pooled_rho(groups)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        resampled = []
        for x, y in groups:
            picks = rng.integers(0, len(x), size=len(x))
            resampled.append(([x[i] for i in picks], [y[i] for i in picks]))
        draws.append(pooled_rho(resampled))
    defined = np.asarray([d for d in draws if not math.isnan(d)])
    low, high = (float(v) for v in np.quantile(defined, [0.025, 0.975])) if len(defined) else (float("nan"), float("nan"))
    runs = sum(len(x) for x, _ in groups)
    return {"rho": round(rho, 4), "bootstrap_95": [round(low, 4), round(high, 4)], "runs": runs, "groups": len(groups),
            "holds": bool(low > 0), "reversed": bool(high < 0)}  # fmt: skip


def axis_groups(records: list[dict], axis: str) -> list[tuple[list[float], list[float]]]:
    """Fine-tune-CoT runs split by the other axes' values: (this axis's values, accuracies) per group
    with at least two distinct values of the axis."""
    field, fixed = AXES[axis]
    grouped: dict[tuple, tuple[list, list]] = {}
    for record in records:
        if record["method"].startswith("ft_cot") and record.get(field) is not None:
            x, y = grouped.setdefault(tuple(record.get(k) for k in fixed), ([], []))
            x.append(float(record[field]))
            y.append(float(record["accuracy"]))
    return [group for _, group in sorted(grouped.items(), key=lambda item: str(item[0])) if len(set(group[0])) > 1]


def axis_trends(records: list[dict]) -> dict[str, dict]:
    """Per axis with two or more values: does accuracy rise along it (the paper's trend)?"""
    trends = {}
    for axis in AXES:
        groups = axis_groups(records, axis)
        if groups:
            trends[f"trend_{axis}"] = {"axis": axis, **rank_correlation(groups)}
    return trends


def equal_spend(records: list[dict]) -> list[dict]:
    """At the same teacher spend (questions x D rationales), D=1 on more questions against a higher D
    on fewer, per student: paired over the test questions, seed with seed."""
    runs: dict[tuple, dict[int, list[bool]]] = {}
    for record in records:
        if record["method"].startswith("ft_cot") and record.get("train_questions") and record.get("outcomes") is not None:
            key = (record.get("student"), record["degree"], record["train_questions"])
            runs.setdefault(key, {})[record["seed"]] = [c == "1" for c in record["outcomes"]]
    matches = []
    for (student, degree, questions), by_seed in sorted(runs.items(), key=lambda item: str(item[0])):
        wide = runs.get((student, 1, questions * degree))
        if degree == 1 or wide is None:
            continue
        seeds = sorted(set(by_seed) & set(wide))
        if not seeds:
            continue
        paired = compare([wide[s] for s in seeds], [by_seed[s] for s in seeds])
        low, high = paired["bootstrap_95"]
        winner = "more questions at D=1" if low > 0 else f"fewer questions at D={degree}" if high < 0 else "neither (interval spans 0)"
        matches.append({"student": student, "spend_rationales": questions * degree, "d1_questions": questions * degree,
                        "degree": degree, "questions": questions, "seeds": len(seeds), "winner": winner,
                        "d1_minus_higher_d_points": round(100 * paired["mean_difference"], 1), "paired": paired})  # fmt: skip
    return matches


def curves(records: list[dict]) -> dict:
    """A task's curves for curves.json: every point with its cost, the cheapest near the best, equal spends."""
    teacher = next((r for r in records if r["method"] == "teacher"), {})
    per_rationale = teacher_usd_per_rationale(teacher)
    cells = point_cells(records, per_rationale)
    cheapest = cheapest_near_best(cells)
    return {"teacher_usd_per_rationale": per_rationale, "points": [asdict(c) for c in cells],
            "cheapest_near_best": cheapest.name if cheapest else None, "near_best_points": NEAR_BEST_POINTS,
            "equal_spend": equal_spend(records)}  # fmt: skip


def unpriced_markdown(curves_by_task: dict[str, dict]) -> str:
    """Says which tasks' points have no teacher dollars, and why: no sample was paid for in their teacher run."""
    unpriced = [task for task, c in curves_by_task.items() if c["teacher_usd_per_rationale"] is None]
    if not unpriced:
        return ""
    return (f"No teacher dollars for {', '.join(unpriced)}: every sample of the teacher run came from the cache, so this run "
            "measured no spend to price a rationale by; run the experiment with an empty `teacher.cache_dir` to measure it.\n\n")


def _usd(value: float | None) -> str:
    return "—" if value is None else "$0" if value == 0 else f"${value:.4f}" if value < 1 else f"${value:,.2f}"


def points_markdown(task_curves: dict) -> str:
    """Every point: accuracy over seeds beside what its teacher data and its training cost."""
    rows = []
    for c in task_curves["points"]:
        accuracy = f"{100 * c['mean']:.1f}" + (f" ± {100 * c['std']:.1f}" if c["runs"] > 1 else " (1 run)")
        mark = " ★" if c["name"] == task_curves["cheapest_near_best"] else ""
        rows.append([f"`{c['name']}`" + mark, c["degree"] or "—", c["student"] or "—", f"{c['student_parameters']:,}" if c["student_parameters"] else "—",
                     c["train_questions"] or "—", accuracy, c["runs"], _usd(c["teacher_usd"]),
                     "—" if c["train_s"] is None else f"{c['train_s']:.0f}"])  # fmt: skip
    return markdown_table(["point", "D", "student", "parameters", "training questions", "test accuracy %", "seeds",
                           "teacher $", "training s"], rows)  # fmt: skip


def trends_markdown(task: str, trends: dict) -> str:
    """A sentence an axis: Spearman's rho with its interval, and whether the paper's trend holds."""
    lines = []
    for trend in trends.values():
        low, high = trend["bootstrap_95"]
        verdict = "holds" if trend["holds"] else "is reversed" if trend["reversed"] else "is not shown (the interval spans 0)"
        lines.append(f"- {task}: accuracy against {AXIS_WORDS[trend['axis']]}: Spearman's rho {trend['rho']:+.2f}, 95 % interval "
                     f"[{low:+.2f}, {high:+.2f}] over {trend['runs']} runs in {trend['groups']} groups; the paper's trend {verdict}.")  # fmt: skip
    return "\n".join(lines) + "\n" if lines else ""


AXIS_WORDS = {"degree": "D", "train_size": "training questions", "student": "student parameters"}


def spend_markdown(task: str, task_curves: dict) -> str:
    """The cheapest point near the best, and each equal-spend comparison, in a sentence each."""
    lines = []
    cheapest = next((c for c in task_curves["points"] if c["name"] == task_curves["cheapest_near_best"]), None)
    if cheapest:
        lines.append(f"- {task}: the cheapest point within {task_curves['near_best_points']:.0f} point of the best is "
                     f"{cheapest['name']} ({100 * cheapest['mean']:.1f} %, teacher {_usd(cheapest['teacher_usd'])}).")  # fmt: skip
    for match in task_curves["equal_spend"]:
        paired, student = match["paired"], f" ({match['student']})" if match["student"] else ""
        low, high = (100 * v for v in paired["bootstrap_95"])
        verdict = "neither wins at this spend" if match["winner"].startswith("neither") else f"{match['winner']} wins"
        lines.append(f"- {task}{student}, {match['spend_rationales']} rationales each: D=1 on {match['d1_questions']} questions against "
                     f"D={match['degree']} on {match['questions']}: {match['d1_minus_higher_d_points']:+.1f} points for D=1, paired 95 % "
                     f"interval [{low:+.1f}, {high:+.1f}] over {paired['pairs']} question pairs: {verdict}.")  # fmt: skip
    return "\n".join(lines) + "\n" if lines else ""
