"""The experiment's plan and summary: configs per task, statistics over seeds, the report table."""

from __future__ import annotations

import pytest

from rt_ray.config import ConfigError, parse_config
from rt_ray.experiment.plan import (findings, findings_markdown, methods, outcome_runs, results_markdown, summarize, task_configs,
                                    training_markdown, wall_time_markdown)


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
    assert found["ft_cot_over_vanilla"] == {"better": "ft_cot_d4", "than": "vanilla", "points": 25.0, "min_points": 10.0,
                                            "beyond_spread": True, "holds": False}  # fmt: skip
    assert found["diverse_over_d1"]["points"] == 5.0 and found["diverse_over_d1"]["beyond_spread"] is False
    assert "student_over_teacher" not in found  # no teacher run


def outcome_records(task: str, method: str, runs: list[str], seeds: list | None = None) -> list[dict]:
    seeds = seeds if seeds is not None else list(range(len(runs)))
    return [{"task": task, "method": method, "seed": seed, "accuracy": r.count("1") / len(r), "outcomes": r} for seed, r in zip(seeds, runs)]


def test_a_claim_holds_with_enough_points_beyond_the_spread_and_a_paired_interval_above_zero():
    data = outcome_records("t", "vanilla", ["1100000000" * 3, "1010000000" * 3, "0110000000" * 3])
    data += outcome_records("t", "ft_cot_d1", ["1111111000" * 3, "1111110100" * 3, "1111101100" * 3])
    data += outcome_records("t", "ft_cot_d2", ["1111111000" * 3, "1111110100" * 3, "1111101100" * 3])
    data += outcome_records("t", "teacher", ["1111100000" * 3], seeds=[None])
    found = findings(summarize(data), [1, 2], outcome_runs(data))["t"]
    over_vanilla = found["ft_cot_over_vanilla"]
    assert over_vanilla["points"] == 50.0 and over_vanilla["beyond_spread"] and over_vanilla["holds"]
    # Per seed 15 of 30 questions only D=1 gets right, none only vanilla: 45 against 0 over 90 pairs
    assert over_vanilla["paired"]["pairs"] == 90 and over_vanilla["paired"]["only_better_right"] == 45
    assert over_vanilla["paired"]["only_other_right"] == 0 and over_vanilla["paired"]["bootstrap_95"][0] > 0.3
    # D=2 answers exactly as D=1: no gap, no discordant pair, the claim does not hold
    assert found["diverse_over_d1"]["paired"]["mcnemar_p"] == 1.0 and not found["diverse_over_d1"]["holds"]
    # The one teacher run pairs with every seed: 90 pairs; the student's 20 points clear the teacher's 0 spread
    teacher = found["student_over_teacher"]
    assert teacher["paired"]["pairs"] == 90 and teacher["points"] == 20.0 and teacher["holds"]
    text = findings_markdown({"t": found})
    assert "t: ft_cot_d1 against vanilla: +50.0 points, beyond the seed spread; paired 95 % interval" in text
    assert "the finding does not hold" in text and text.count("the finding holds") == 2


def test_a_gap_under_the_minimum_does_not_hold_even_when_significant():
    data = outcome_records("t", "vanilla", ["0" * 100] * 2) + outcome_records("t", "ft_cot_d1", ["1" * 8 + "0" * 92] * 2)
    claim = findings(summarize(data), [1], outcome_runs(data))["t"]["ft_cot_over_vanilla"]
    assert claim["points"] == 8.0 and claim["beyond_spread"] and claim["paired"]["bootstrap_95"][0] > 0
    assert not claim["holds"]


def test_the_table_has_a_row_per_method_a_column_per_task_and_marks_missing_cells():
    summary = summarize(records("a", "vanilla", [0.5, 0.7]) + records("a", "teacher", [0.9]))
    table = results_markdown(summary, ["a", "b"], methods([1, 2]))
    lines = table.strip().splitlines()
    assert lines[0] == "| method | a | b |" and len(lines) == 2 + 5
    assert "| teacher | 90.0 (1 run) | — |" in lines and "| vanilla | 60.0 ± 14.1 | — |" in lines


def test_the_training_table_shows_mean_steps_and_how_many_runs_stopped_early():
    runs = [{"task": "t", "method": "vanilla", "seed": 0, "steps": 300, "train_wall_s": 60},
            {"task": "t", "method": "vanilla", "seed": 1, "steps": 100, "train_wall_s": 20, "stopped_early_at_step": 100},
            {"task": "t", "method": "teacher", "seed": None}]  # fmt: skip
    assert "| t | vanilla | 200 | 1 of 2 | 40 |" in training_markdown(runs) and "teacher" not in training_markdown(runs)


def test_the_wall_time_counts_every_command_that_built_the_result():
    assert wall_time_markdown(4612.4, 4612.4, 1, 36, 0) == "Wall time: 76 min 52 s for the whole experiment (one `rt-ray experiment` command, 36 runs)."
    resumed = wall_time_markdown(30.0, 4642.4, 2, 0, 36)
    assert resumed.startswith("Wall time: 77 min 22 s for the whole experiment, over 2") and "last took 0 min 30 s" in resumed
