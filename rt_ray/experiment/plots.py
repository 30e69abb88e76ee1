"""The experiment's plots: accuracy against D at the reference point, and the learning curves, from curves.json's points (see curves.py): accuracy against
training questions, against student parameters and against teacher dollars, a panel per task."""

from __future__ import annotations

from pathlib import Path

from rt_ray.experiment.plan import ft_cot_method
from rt_ray.plots import Line, degree_plot, pyplot, save_figure

# plot file -> (the point field on the x axis, the field whose values are the lines, x-axis label)
CURVE_PLOTS = {
    "accuracy_vs_train_size.png": ("train_questions", "degree", "training questions"),
    "accuracy_vs_student_size.png": ("student_parameters", "degree", "student parameters"),
}
COST_PLOT = "accuracy_vs_teacher_usd.png"


def plot_cot_vs_degree(summary: dict, degrees: list[int], path: Path) -> Path:
    """Per task: Fine-tune-CoT accuracy against D (mean, seed std as error bars), vanilla as a dashed line."""
    lines = []
    for index, (task, cells) in enumerate(sorted(summary.items())):
        color = f"C{index}"
        points = [(d, cells[ft_cot_method(d)]) for d in sorted(set(degrees)) if ft_cot_method(d) in cells]
        if points:
            lines.append(Line(f"{task}: Fine-tune-CoT", [d for d, _ in points], [c["mean"] for _, c in points],
                              spread=[c["std"] for _, c in points], color=color))  # fmt: skip
        if "vanilla" in cells:
            lines.append(Line(f"{task}: vanilla", [], [], color=color, level=cells["vanilla"]["mean"]))
    return degree_plot(lines, "test accuracy", "Fine-tune-CoT against D (mean ± std over seeds)", path, degrees=degrees, legend_size=8)


def _panels(count: int, width: float = 6.5):
    figure, axes = pyplot().subplots(1, count, figsize=(width * count, 4.2), squeeze=False)
    return figure, list(axes[0])


def plot_curve(curves_by_task: dict[str, dict], x_field: str, line_field: str, xlabel: str, path: Path,
               fixed: dict[str, object]) -> Path:  # fmt: skip
    """Fine-tune-CoT accuracy (mean ± seed std) against ``x_field``, a line per ``line_field`` value, at
    the ``fixed`` values of the other axes (the reference point's); log x axis, ticked at the values."""
    figure, axes = _panels(len(curves_by_task))
    for axis, (task, task_curves) in zip(axes, sorted(curves_by_task.items())):
        lines = curve_lines(task_curves["points"], x_field, line_field, fixed)
        ticks = sorted({c[x_field] for cells in lines.values() for c in cells})
        for index, (value, cells) in enumerate(sorted(lines.items())):
            cells.sort(key=lambda c: c[x_field])
            axis.errorbar([c[x_field] for c in cells], [c["mean"] for c in cells], yerr=[c["std"] for c in cells],
                          marker="o", capsize=3, color=f"C{index}", label=f"D={value}")  # fmt: skip
        axis.set_xscale("log")
        axis.set_xticks(ticks, [f"{t:,}" for t in ticks])
        axis.minorticks_off()
        axis.set_xlabel(xlabel)
        axis.set_ylabel("test accuracy")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
        axis.set_title(f"{task}: Fine-tune-CoT (mean ± std over seeds)")
    return save_figure(figure, path)


def curve_lines(points: list[dict], x_field: str, line_field: str, fixed: dict) -> dict:
    """Fine-tune-CoT points at the ``fixed`` values, grouped by ``line_field`` (curves.json's points)."""
    lines: dict = {}
    for c in points:
        if c["method"].startswith("ft_cot") and c[x_field] and all(c[k] == v for k, v in fixed.items()):
            lines.setdefault(c[line_field], []).append(c)
    return lines


def plot_accuracy_vs_cost(curves_by_task: dict[str, dict], path: Path) -> Path:
    """Every trained point: accuracy against what its teacher data cost (vanilla needs none: $0, drawn on
    a linear stretch of the axis near 0), colour by D, the cheapest point near the best starred."""
    figure, axes = _panels(len(curves_by_task), width=9.0)
    for axis, (task, task_curves) in zip(axes, sorted(curves_by_task.items())):
        trained = [c for c in task_curves["points"] if c["method"] != "zero_shot" and c["teacher_usd"] is not None]
        paid = [c["teacher_usd"] for c in trained if c["teacher_usd"] > 0]
        degrees = sorted({c["degree"] for c in trained if c["degree"]})
        for c in trained:
            color = f"C{degrees.index(c['degree'])}" if c["degree"] else "grey"
            axis.errorbar(c["teacher_usd"], c["mean"], yerr=c["std"], marker="o" if c["degree"] else "s", color=color, capsize=2)
        for index, degree in enumerate(degrees):
            axis.plot([], [], "o", color=f"C{index}", label=f"Fine-tune-CoT D={degree}")
        axis.plot([], [], "s", color="grey", label="vanilla ($0: gold answers only)")
        star = next((c for c in trained if c["name"] == task_curves["cheapest_near_best"]), None)
        if star:
            axis.plot(star["teacher_usd"], star["mean"], "*", markersize=18, color="gold", markeredgecolor="black",
                      label=f"cheapest within {task_curves['near_best_points']:.0f} point of the best")  # fmt: skip
        if paid:
            axis.set_xscale("symlog", linthresh=min(paid) / 2)
            axis.set_xlim(left=-min(paid) / 10)
        axis.set_xlabel("teacher spend on the point's training data (USD)")
        axis.set_ylabel("test accuracy")
        axis.set_ylim(0, 1)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the points, not over them
        axis.set_title(f"{task}: accuracy against teacher dollars")
    return save_figure(figure, path)
