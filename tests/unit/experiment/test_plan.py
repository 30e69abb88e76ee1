"""The experiment's plan and summary: configs per task, statistics over seeds, the report table."""

from __future__ import annotations

import pytest

from rt_ray.config import ConfigError, parse_config
from rt_ray.experiment.plan import findings, methods, results_markdown, summarize, task_configs


def records(task: str, method: str, accuracies: list[float]) -> list[dict]:
    return [{"task": task, "method": method, "seed": seed, "accuracy": a} for seed, a in enumerate(accuracies)]


def test_methods_are_named_as_the_report_promises():
    assert methods([4, 1, 4]) == ["zero_shot", "vanilla", "ft_cot_d1", "ft_cot_d4"]


def test_each_task_gets_its_overrides_and_its_own_folders(tmp_path):
    base = parse_config({"run_name": "mini", "experiment": {"output_dir": str(tmp_path), "degrees": [1, 8], "tasks": {
        "coin": {"task.name": "coin_flip", "train.max_steps": 7},
        "objects": {"task.name": "tracking_shuffled_objects", "student.tiny_vocab": 900},
    }}})  # fmt: skip
    configs = task_configs(base)
    assert configs["coin"].train.max_steps == 7 and configs["objects"].student.tiny_vocab == 900
    assert configs["objects"].task.name == "tracking_shuffled_objects" and configs["coin"].generation.degree == 8
    assert configs["coin"].generation.output_dir == tmp_path / "coin" / "teacher" != configs["objects"].generation.output_dir
    assert configs["coin"].run_name == "mini-coin"


def test_a_bad_override_names_the_task_and_the_key():
    base = parse_config({"experiment": {"tasks": {"coin": {"train.max_stepz": 7}}}})
    with pytest.raises(ConfigError, match=r"experiment.tasks.coin[\s\S]*train.max_stepz: unknown key"):
        task_configs(base)
    with pytest.raises(ConfigError, match="experiment.tasks is empty"):
        task_configs(parse_config({}))


def test_summary_has_mean_sample_std_and_run_count():
    summary = summarize(records("t", "vanilla", [0.5, 0.7, 0.6]) + records("t", "teacher", [0.8]))
    assert summary["t"]["vanilla"]["mean"] == pytest.approx(0.6)
    assert summary["t"]["vanilla"]["std"] == pytest.approx(0.1)
    assert summary["t"]["vanilla"]["runs"] == 3 and summary["t"]["teacher"] == {"mean": 0.8, "std": 0.0, "runs": 1}


def test_findings_compare_best_cot_with_vanilla_and_best_diverse_with_d1_against_the_spread():
    data = records("t", "vanilla", [0.50, 0.52, 0.48]) + records("t", "ft_cot_d1", [0.70, 0.60, 0.80])
    data += records("t", "ft_cot_d4", [0.74, 0.76, 0.75])
    found = findings(summarize(data), [1, 4])["t"]
    assert found["ft_cot_over_vanilla"] == {"better": "ft_cot_d4", "than": "vanilla", "points": 25.0, "beyond_spread": True}
    assert found["diverse_over_d1"]["points"] == 5.0 and found["diverse_over_d1"]["beyond_spread"] is False


def test_the_table_has_a_row_per_method_a_column_per_task_and_marks_missing_cells():
    summary = summarize(records("a", "vanilla", [0.5, 0.7]) + records("a", "teacher", [0.9]))
    table = results_markdown(summary, ["a", "b"], methods([1, 2]))
    lines = table.strip().splitlines()
    assert lines[0] == "| method | a | b |" and len(lines) == 2 + 5
    assert "| teacher | 90.0 (1 run) | — |" in lines and "| vanilla | 60.0 ± 14.1 | — |" in lines
