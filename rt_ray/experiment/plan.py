"""The paper's comparison as plain data: which runs, their configs, and the summary of their results.

    methods([1, 4])                 # ["zero_shot", "vanilla", "ft_cot_d1", "ft_cot_d4"]
    summarize(records)              # task -> method -> {"mean", "std", "runs"}
    results_markdown(summary, ...)  # rows: methods; columns: tasks; cells: mean ± std over seeds
"""

from __future__ import annotations

import statistics
from pathlib import Path

from rt_ray.config import ConfigError, RtRayConfig, parse_config, set_dotted
from rt_ray.storage import join, local_dir
from rt_ray.sweep.space import save_degree_plot

TEACHER = "teacher"


def ft_cot_method(degree: int) -> str:
    return f"ft_cot_d{degree}"


def methods(degrees: list[int]) -> list[str]:
    return ["zero_shot", "vanilla", *(ft_cot_method(d) for d in sorted(set(degrees)))]


def task_configs(base: RtRayConfig) -> dict[str, RtRayConfig]:
    """One config per task column, each with its own output folders; a bad override names its task and key."""
    exp = base.experiment
    if not exp.tasks:
        raise ConfigError("experiment.tasks is empty: name at least one task, e.g. {coin_flip: {task.name: coin_flip}}")
    configs = {}
    for label, overrides in exp.tasks.items():
        tree = base.model_dump(mode="json")
        for dotted, value in (overrides or {}).items():
            set_dotted(tree, dotted, value, origin=f"experiment.tasks.{label}")
        root = join(exp.output_dir, label)
        tree["run_name"] = f"{base.run_name}-{label}"
        tree["generation"]["degree"] = max(exp.degrees)  # every D trains on a prefix of these
        # The teacher's set stays on this node (its parts and cache are appended to); students may go to a URI.
        tree["generation"]["output_dir"] = str(local_dir(root) / "teacher")
        tree["train"]["output_dir"] = str(join(root, "student"))
        configs[label] = parse_config(tree, source=f"experiment.tasks.{label}")
    return configs


def run_key(task: str, method: str, seed: int | None) -> str:
    return f"{task}/{method}/{seed}"


def summarize(records: list[dict]) -> dict[str, dict[str, dict]]:
    """task -> method -> {"mean", "std" (sample std over seeds; 0 for one run), "runs"}."""
    grouped: dict[str, dict[str, list[float]]] = {}
    for record in records:
        grouped.setdefault(record["task"], {}).setdefault(record["method"], []).append(record["accuracy"])
    return {
        task: {
            method: {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0, "runs": len(values)}
            for method, values in by_method.items()
        }
        for task, by_method in grouped.items()
    }


def findings(summary: dict, degrees: list[int]) -> dict[str, dict]:
    """Per task, the two claims the paper makes, with the seed spread they must clear:
    Fine-tune-CoT (best D) over vanilla, and the best D > 1 over D = 1."""
    out = {}
    for task, cells in summary.items():
        larger = [ft_cot_method(d) for d in sorted(set(degrees)) if d > 1 and ft_cot_method(d) in cells]
        cot = [ft_cot_method(d) for d in sorted(set(degrees)) if ft_cot_method(d) in cells]
        entry = {}
        if cot and "vanilla" in cells:
            best = max(cot, key=lambda m: cells[m]["mean"])
            entry["ft_cot_over_vanilla"] = _gap(cells[best], cells["vanilla"], best, "vanilla")
        if larger and ft_cot_method(1) in cells:
            best = max(larger, key=lambda m: cells[m]["mean"])
            entry["diverse_over_d1"] = _gap(cells[best], cells[ft_cot_method(1)], best, ft_cot_method(1))
        out[task] = entry
    return out


def _gap(a: dict, b: dict, name_a: str, name_b: str) -> dict:
    gap = a["mean"] - b["mean"]
    return {"better": name_a, "than": name_b, "points": round(100 * gap, 1), "beyond_spread": gap > a["std"] + b["std"]}


def _cell(cell: dict | None) -> str:
    if cell is None:
        return "—"
    if cell["runs"] == 1:
        return f"{100 * cell['mean']:.1f} (1 run)"
    return f"{100 * cell['mean']:.1f} ± {100 * cell['std']:.1f}"


def results_markdown(summary: dict, tasks: list[str], method_names: list[str]) -> str:
    """Rows: methods (teacher first); columns: tasks; cells: test accuracy %, mean ± std over seeds."""
    lines = ["| method | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
    for method in [TEACHER, *method_names]:
        lines.append(f"| {method} | " + " | ".join(_cell(summary.get(t, {}).get(method)) for t in tasks) + " |")
    return "\n".join(lines) + "\n"


def findings_markdown(found: dict) -> str:
    lines = []
    for task, entry in found.items():
        for claim in entry.values():
            verdict = "beyond the seed spread" if claim["beyond_spread"] else "within the seed spread"
            lines.append(f"- {task}: {claim['better']} {claim['points']:+.1f} points over {claim['than']} ({verdict})")
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_degree(summary: dict, degrees: list[int], path: Path) -> Path:
    """Per task: Fine-tune-CoT accuracy against D (mean, seed std as error bars), vanilla as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for index, (task, cells) in enumerate(sorted(summary.items())):
        color = f"C{index}"
        points = [(d, cells[ft_cot_method(d)]) for d in sorted(set(degrees)) if ft_cot_method(d) in cells]
        if points:
            axis.errorbar([d for d, _ in points], [c["mean"] for _, c in points], yerr=[c["std"] for _, c in points],
                          marker="o", capsize=3, color=color, label=f"{task}: Fine-tune-CoT")  # fmt: skip
        if "vanilla" in cells:
            axis.axhline(cells["vanilla"]["mean"], linestyle="--", color=color, alpha=0.7, label=f"{task}: vanilla")
    axis.set_xscale("log", base=2)
    axis.set_xticks(sorted(set(degrees)), [str(d) for d in sorted(set(degrees))])
    return save_degree_plot(figure, axis, "test accuracy", "Fine-tune-CoT against D (mean ± std over seeds)", path, legend_size=8)
