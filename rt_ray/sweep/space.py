"""The sweep's search space and its results, as plain data: no Ray, no MLflow.

    space = search_space(cfg.sweep)            # {"degree": [1, 2, 4], "lr": [...], ...}
    trial_overrides({"degree": 4, "lr": 1e-3}) # -> ["train.lr=0.001"], degree handled apart
"""

from __future__ import annotations

from pathlib import Path

from rt_ray.config import SweepConfig

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[tuple[int, float]]] = {}
    for trial in trials:
        label = ", ".join(f"{k}={trial['params'].get(k)}" for k in knobs) or "student"
        lines.setdefault(label, []).append((trial["params"]["degree"], trial[metric]))
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, points in sorted(lines.items()):
        points.sort()
        axis.plot([d for d, _ in points], [a for _, a in points], marker="o", label=label)
    return save_degree_plot(figure, axis, metric.replace("_", " "), "Student accuracy against diverse reasoning", path)


def save_degree_plot(figure, axis, ylabel: str, title: str, path: Path, legend_size: float | None = None) -> Path:
    """The shared look of accuracy-against-D plots (sweep and experiment): log2 x axis, 0-1 y axis."""
    import matplotlib.pyplot as plt

    axis.set_xscale("log", base=2)
    axis.set_xlabel("diversity degree D (rationales per question)")
    axis.set_ylabel(ylabel)
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=legend_size)
    axis.set_title(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
