"""The pipeline's final report as plain data, Markdown and rich tables: no Ray, no MLflow."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rt_ray.pipeline.cost import CostCase
from rt_ray.results import Baselines, Champion, SweepResult
from rt_ray.tables import TableSpec

TEACHER_KEYS = ("questions", "rationales", "rationales_kept", "teacher_accuracy", "requests_sent", "cache_hits",
                "retries", "cost_usd", "wall_s")  # fmt: skip


def accuracy_entries(teacher_stats: dict, champion: Champion, baselines: Baselines | None) -> list[tuple[str, dict]]:
    """Teacher, baselines and the champion on one scale, each as (its MLflow metric's stem, its report
    row): test accuracy (the teacher's on the train split, the only questions it answered)."""
    entries = [("teacher", {"method": "teacher (train split)", "accuracy": teacher_stats.get("teacher_accuracy"), "n": teacher_stats.get("questions")})]
    for method in ("zero_shot", "vanilla"):
        score = getattr(baselines, method) if baselines else None
        if score is not None:
            entries.append((method, {"method": method, "accuracy": score.accuracy, "n": score.n}))
    entries.append(("champion", {"method": f"champion ({champion.label})", "accuracy": champion.score.accuracy, "n": champion.score.n}))
    return entries


def accuracy_rows(teacher_stats: dict, champion: Champion, baselines: Baselines | None) -> list[dict]:
    return [row for _, row in accuracy_entries(teacher_stats, champion, baselines)]


def accuracy_metrics(teacher_stats: dict, champion: Champion, baselines: Baselines | None) -> dict[str, float]:
    """``teacher_accuracy``, ``zero_shot_accuracy``, ``vanilla_accuracy``, ``champion_accuracy``: the same rows, for MLflow."""
    return {f"{key}_accuracy": row["accuracy"] for key, row in accuracy_entries(teacher_stats, champion, baselines)}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "—" if value is None else str(value)


def teacher_table(stats: dict, keys: tuple[str, ...] = TEACHER_KEYS) -> TableSpec:
    return TableSpec(f"teacher: {stats.get('teacher_model')} on {stats.get('task')}, D={stats.get('degree')}", ["key", "value"],
                     [[key, _fmt(stats.get(key))] for key in keys], show_header=False)  # fmt: skip


def accuracy_table(rows: list[dict], task: str) -> TableSpec:
    return TableSpec(f"test accuracy on {task}", ["method", "accuracy", "n"], [[r["method"], _fmt(r["accuracy"]), _fmt(r["n"])] for r in rows])


def cost_table(rows: list) -> TableSpec:
    return TableSpec("what the student saves against the teacher", ["", "teacher", "student"], [list(row) for row in rows], fold=True)


def samples_table(samples: list[dict]) -> TableSpec:
    return TableSpec("sample queries to the deployed student (/v1/solve)", ["question", "rationale", "answer", "gold"],
                     [[s["question"], s["rationale"], str(s["answer"]), str(s["gold"])] for s in samples], fold=True)  # fmt: skip


SIMULATED = "The teacher's rationales were simulated (rt-ray teacher-sim), not a language model's."


@dataclass(frozen=True)
class PipelineReport:
    """What ``rt-ray pipeline`` found, read by both renderers (report.md and the console) and written
    as report.json."""

    run_name: str
    task: str
    wall_s: float
    teacher: dict  # the teacher stage's stats.json
    champion: Champion
    baselines: Baselines | None = None
    sweep: SweepResult | None = None
    sweep_markdown: str | None = None  # the sweep's results.md, stopped trials included
    sweep_metric: str = "validation_accuracy"
    endpoint: str | None = None
    samples: tuple[dict, ...] = ()  # {"question", "rationale", "answer", "gold"}
    cost: CostCase | None = None
    report_dir: str = ""

    @property
    def accuracy(self) -> list[dict]:
        return accuracy_rows(self.teacher, self.champion, self.baselines)

    def accuracy_metrics(self) -> dict[str, float]:
        return accuracy_metrics(self.teacher, self.champion, self.baselines)

    def as_json(self) -> dict:
        """report.json."""
        return {"run_name": self.run_name, "task": self.task, "wall_s": self.wall_s, "teacher": self.teacher,
                "sweep": [asdict(t) for t in self.sweep.trials] if self.sweep else [],
                "sweep_knobs": list(self.sweep.knobs) if self.sweep else [], "sweep_markdown": self.sweep_markdown,
                "sweep_metric": self.sweep_metric, "accuracy": self.accuracy, "champion": self.champion.as_report(),
                "endpoint": self.endpoint, "samples": list(self.samples), "cost_case": self.cost.as_dict() if self.cost else None,
                "cost_rows": self.cost.rows() if self.cost else [], "report_dir": self.report_dir}  # fmt: skip


def report_markdown(report: PipelineReport) -> str:
    lines = [f"# rt-ray pipeline: {report.run_name}", "", f"Task `{report.task}`, wall time {report.wall_s:.0f} s.", ""]
    lines += ["## Teacher", "", *([SIMULATED, ""] if report.teacher.get("teacher_simulated") else []), teacher_table(report.teacher).markdown().rstrip()]
    if report.sweep_markdown:
        lines += ["", "## Sweep", "", report.sweep_markdown.rstrip()]
    lines += ["", "## Test accuracy", "", accuracy_table(report.accuracy, report.task).markdown().rstrip()]
    if report.cost:
        lines += ["", "## What the student saves", "", cost_table(report.cost.rows()).markdown().rstrip()]
        lines += ["", *report.cost.sentences()]
    if report.endpoint:
        lines += ["", "## Deployment", "", f"OpenAI-compatible endpoint: `{report.endpoint}/v1`; task endpoint `{report.endpoint}/v1/solve`."]
    if report.samples:
        lines += ["", samples_table(list(report.samples)).markdown().rstrip()]
    return "\n".join(lines) + "\n"
