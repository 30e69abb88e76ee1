"""The pipeline's report: rows in a fixed order, numbers kept, Markdown that lists every part."""

from __future__ import annotations

from rt_ray.pipeline.report import PipelineReport, accuracy_metrics, accuracy_rows, report_markdown
from rt_ray.results import Baselines, Champion, Score

STATS = {"teacher_accuracy": 0.8, "questions": 10, "requests_sent": 0, "cache_hits": 40, "teacher_model": "t", "task": "coin_flip"}
CHAMPION = Champion("m", "Fine-tune-CoT, D=4", "ft_cot", Score(0.9, 30))


def test_rows_run_teacher_baselines_champion_and_skip_missing_baselines():
    rows = accuracy_rows(STATS, CHAMPION, Baselines(Score(0.9, 30), zero_shot=Score(0.0, 30)))
    assert [r["method"] for r in rows] == ["teacher (train split)", "zero_shot", "champion (Fine-tune-CoT, D=4)"]
    assert rows[-1]["accuracy"] == 0.9 and rows[0]["n"] == 10


def test_markdown_has_teacher_accuracy_endpoint_and_samples():
    report = PipelineReport(
        "q", "coin_flip", 61.0, STATS, CHAMPION, Baselines(Score(0.9, 30), vanilla=Score(0.5, 30)), sweep_markdown="| rank |\n|---|\n| 1 |\n",
        endpoint="http://h:8000", samples=({"question": "Q?", "rationale": "R.", "answer": "yes", "gold": "no"},),
    )  # fmt: skip
    text = report_markdown(report)
    assert "| cache_hits | 40 |" in text and "| vanilla | 0.500 | 30 |" in text
    assert "## Sweep" in text and "`http://h:8000/v1`" in text and "| Q? | R. | yes | no |" in text
    assert "wall time 61 s" in text


def test_mlflow_metric_names_come_from_the_rows_keys_not_their_display_text():
    baselines = Baselines.from_results({"ft_cot": {"accuracy": 0.9, "n": 30}, "zero_shot": {"accuracy": 0.0, "n": 30},
                                        "vanilla": {"accuracy": 0.5, "n": 30}}, champion_format="ft_cot")  # fmt: skip
    assert accuracy_metrics(STATS, CHAMPION, baselines) == {"teacher_accuracy": 0.8, "zero_shot_accuracy": 0.0,
                                                            "vanilla_accuracy": 0.5, "champion_accuracy": 0.9}  # fmt: skip
    # a vanilla champion is its own vanilla row, whatever order the evaluation listed its results in
    own = Baselines.from_results({"zero_shot": {"accuracy": 0.0, "n": 30}, "vanilla": {"accuracy": 0.6, "n": 30}}, "vanilla")
    assert own == Baselines(Score(0.6, 30), zero_shot=Score(0.0, 30), vanilla=None)
