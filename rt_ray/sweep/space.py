"""The sweep's search space and its results, as plain data: no Ray, no MLflow.

    space = search_space(cfg.sweep)            # {"degree": [1, 2, 4], "lr": [...], ...}
    trial_overrides({"degree": 4, "lr": 1e-3}) # -> ["train.lr=0.001"], degree handled apart
"""

from __future__ import annotations

from pathlib import Path

from rt_ray.config import SweepConfig
from rt_ray.plots import Line, degree_plot

# knob -> the config key a trial overrides
KNOB_KEYS = {"lr": "train.lr", "max_steps": "train.max_steps", "student_model": "student.model", "lora_rank": "student.lora.r"}


def search_space(sweep: SweepConfig) -> dict[str, list]:
    space: dict[str, list] = {"degree": sorted(set(sweep.degrees))}
    for knob, values in (("lr", sweep.lrs), ("max_steps", sweep.max_steps),
                         ("student_model", sweep.student_models), ("student", list(sweep.students)),
                         ("train_size", sweep.train_sizes), ("lora_rank", sweep.lora_ranks)):  # fmt: skip
        if values:
            space[knob] = list(values)
    return space


def trial_overrides(params: dict) -> list[str]:
    return [f"{KNOB_KEYS[k]}={v}" for k, v in params.items() if k in KNOB_KEYS]


def trial_count(space: dict[str, list], search: str, num_samples: int) -> int:
    if search == "random":
        return num_samples
    count = num_samples
    for values in space.values():
        count *= len(values)
    return count


def trial_label(knobs: dict) -> str:
    """``D4-lr0.001``: names a trial the same way in every run of the sweep (folders, bars, MLflow)."""
    rest = "-".join(f"{k}{str(v).replace('/', '_')}" for k, v in sorted(knobs.items()) if k != "degree")
    return f"D{knobs['degree']}" + (f"-{rest}" if rest else "")


def other_knobs(space: dict[str, list]) -> list[str]:
    """The knobs besides D that vary: each combination is one line in the plot."""
    return [k for k, values in space.items() if k != "degree" and len(values) > 1]


def results_rows(trials: list[dict], metric: str) -> list[dict]:
    """Trials ranked by the metric, best first."""
    return sorted(trials, key=lambda t: t.get(metric, float("-inf")), reverse=True)


def plot_accuracy_vs_degree(trials: list[dict], knobs: list[str], metric: str, path: Path) -> Path:
    """A line per combination of the other knobs: the metric against D."""
    lines: dict[str, list[tuple[int, float]]] = {}
    for trial in trials:
        label = ", ".join(f"{k}={trial['params'].get(k)}" for k in knobs) or "student"
        lines.setdefault(label, []).append((trial["params"]["degree"], trial[metric]))
    drawn = [Line(label, [d for d, _ in sorted(points)], [a for _, a in sorted(points)]) for label, points in sorted(lines.items())]
    return degree_plot(drawn, metric.replace("_", " "), "Student accuracy against diverse reasoning", path)
