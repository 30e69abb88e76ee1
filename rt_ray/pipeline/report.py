"""The pipeline's final report as plain data, Markdown and rich tables: no Ray, no MLflow."""

from __future__ import annotations

from rich.table import Table

TEACHER_KEYS = ("questions", "rationales", "rationales_kept", "teacher_accuracy", "requests_sent", "cache_hits",
                "retries", "cost_usd", "wall_s")  # fmt: skip


def accuracy_rows(teacher_stats: dict, champion: dict, baselines: dict) -> list[dict]:
    """Teacher, baselines and the champion on one scale: test accuracy (the teacher's on the train split,
    the only questions it answered)."""
    rows = [{"method": "teacher (train split)", "accuracy": teacher_stats.get("teacher_accuracy"), "n": teacher_stats.get("questions")}]
    for method in ("zero_shot", "vanilla"):
        if method in baselines:
            rows.append({"method": method, "accuracy": baselines[method]["accuracy"], "n": baselines[method]["n"]})
    rows.append({"method": f"champion ({champion['label']})", "accuracy": champion["accuracy"], "n": champion["n"]})
    return rows


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "—" if value is None else str(value)


def teacher_table(stats: dict, keys: tuple[str, ...] = TEACHER_KEYS) -> Table:
    table = Table(title=f"teacher: {stats.get('teacher_model')} on {stats.get('task')}, D={stats.get('degree')}", show_header=False)
    for key in keys:
        table.add_row(key, _fmt(stats.get(key)))
    return table


def accuracy_table(rows: list[dict], task: str) -> Table:
    table = Table(title=f"test accuracy on {task}")
    for column in ("method", "accuracy", "n"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["method"], _fmt(row["accuracy"]), _fmt(row["n"]))
    return table


def cost_table(rows: list) -> Table:
    table = Table(title="what the student saves against the teacher")
    for column in ("", "teacher", "student"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def samples_table(samples: list[dict]) -> Table:
    table = Table(title="sample queries to the deployed student (/v1/solve)")
    for column in ("question", "rationale", "answer", "gold"):
        table.add_column(column, overflow="fold")
    for s in samples:
        table.add_row(s["question"], s["rationale"], str(s["answer"]), str(s["gold"]))
    return table


SIMULATED = "The teacher's rationales were simulated (rt-ray teacher-sim), not a language model's."


def report_markdown(report: dict) -> str:
    lines = [f"# rt-ray pipeline: {report['run_name']}", "", f"Task `{report['task']}`, wall time {report['wall_s']:.0f} s.", ""]
    lines += ["## Teacher", "", *([SIMULATED, ""] if report["teacher"].get("teacher_simulated") else []), "| key | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(report['teacher'].get(k))} |" for k in TEACHER_KEYS]
    if report.get("sweep_markdown"):
        lines += ["", "## Sweep", "", report["sweep_markdown"].rstrip()]
    lines += ["", "## Test accuracy", "", "| method | accuracy | n |", "|---|---|---|"]
    lines += [f"| {r['method']} | {_fmt(r['accuracy'])} | {_fmt(r['n'])} |" for r in report["accuracy"]]
    if report.get("cost_case"):
        lines += ["", "## What the student saves", "", "| | teacher | student |", "|---|---|---|"]
        lines += [f"| {what} | {teacher} | {student} |" for what, teacher, student in report["cost_rows"]]
        lines += ["", *report["cost_case"]["sentences"]]
    if report.get("endpoint"):
        lines += ["", "## Deployment", "", f"OpenAI-compatible endpoint: `{report['endpoint']}/v1`; task endpoint `{report['endpoint']}/v1/solve`."]
    if report.get("samples"):
        lines += ["", "| question | rationale | answer | gold |", "|---|---|---|---|"]
        lines += [f"| {s['question']} | {s['rationale']} | {s['answer']} | {s['gold']} |" for s in report["samples"]]
    return "\n".join(lines) + "\n"
