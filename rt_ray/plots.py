"""Accuracy against D, drawn one way for the sweep and the experiment (matplotlib, headless).

    degree_plot([Line("lr=0.001", x=[1, 2, 4], y=[0.5, 0.6, 0.7])], "validation accuracy", "title", path)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Line:
    label: str
    x: list[float]
    y: list[float]
    spread: list[float] | None = None  # error bars (a std over seeds)
    color: str | None = None
    level: float | None = None  # a dashed horizontal line at this accuracy instead of points (a baseline)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path) -> Path:
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    pyplot().close(figure)
    return path


def degree_plot(lines: list[Line], ylabel: str, title: str, path: Path, degrees: list[int] | None = None,
                legend_size: float | None = None) -> Path:  # fmt: skip
    """Lines against D on a log2 axis (ticks at ``degrees`` when given), accuracy from 0 to 1."""
    figure, axis = pyplot().subplots(figsize=(6.5, 4))
    for line in lines:
        if line.level is not None:
            axis.axhline(line.level, linestyle="--", color=line.color, alpha=0.7, label=line.label)
        elif line.spread is not None:
            axis.errorbar(line.x, line.y, yerr=line.spread, marker="o", capsize=3, color=line.color, label=line.label)
        else:
            axis.plot(line.x, line.y, marker="o", color=line.color, label=line.label)
    axis.set_xscale("log", base=2)
    if degrees:
        axis.set_xticks(sorted(set(degrees)), [str(d) for d in sorted(set(degrees))])
    axis.set_xlabel("diversity degree D (rationales per question)")
    axis.set_ylabel(ylabel)
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=legend_size)
    axis.set_title(title)
    return save_figure(figure, path)
