"""The pipeline's report: rows in a fixed order, numbers kept, Markdown that lists every part."""

from __future__ import annotations

from rt_ray.pipeline.report import accuracy_rows, report_markdown

STATS = {"teacher_accuracy": 0.8, "questions": 10, "requests_sent": 0, "cache_hits": 40, "teacher_model": "t", "task": "coin_flip"}
CHAMPION = {"label": "Fine-tune-CoT, D=4", "accuracy": 0.9, "n": 30}


def test_rows_run_teacher_baselines_champion_and_skip_missing_baselines():
    rows = accuracy_rows(STATS, CHAMPION, {"zero_shot": {"accuracy": 0.0, "n": 30}})
    assert [r["method"] for r in rows] == ["teacher (train split)", "zero_shot", "champion (Fine-tune-CoT, D=4)"]
    assert rows[-1]["accuracy"] == 0.9 and rows[0]["n"] == 10


def test_markdown_has_teacher_accuracy_endpoint_and_samples():
    report = {
        "run_name": "q", "task": "coin_flip", "wall_s": 61.0, "teacher": STATS, "sweep_markdown": "| rank |\n|---|\n| 1 |\n",
        "accuracy": accuracy_rows(STATS, CHAMPION, {"vanilla": {"accuracy": 0.5, "n": 30}}),
        "endpoint": "http://h:8000", "samples": [{"question": "Q?", "rationale": "R.", "answer": "yes", "gold": "no"}],
    }  # fmt: skip
    text = report_markdown(report)
    assert "| cache_hits | 40 |" in text and "| vanilla | 0.500 | 30 |" in text
    assert "## Sweep" in text and "`http://h:8000/v1`" in text and "| Q? | R. | yes | no |" in text
    assert "wall time 61 s" in text
