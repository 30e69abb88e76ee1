"""Learning curves: the plan's product and nesting, each point's cost, the rank-correlation interval
against hand-computed values, and the equal-spend pairing."""

from __future__ import annotations

import math

import pytest

from rt_ray.axes import check_axes, questions_beyond, student_config
from rt_ray.config import ConfigError, parse_config
from rt_ray.experiment.curves import (
    average_ranks,
    axis_groups,
    cheapest_near_best,
    curves,
    equal_spend,
    point_cells,
    point_teacher_usd,
    rank_correlation,
    spearman,
    teacher_usd_per_rationale,
)
from rt_ray.experiment.plan import Point, at_reference, plan, reference
from rt_ray.tasks.base import Sample

STUDENTS = {"small": {"student.tiny_hidden": 32}, "large": {"student.tiny_hidden": 64}}


def experiment(**values):
    return parse_config({"experiment": {"seeds": [0, 1], "degrees": [1, 4], "tasks": {"coin": {}}, **values}}).experiment


def test_the_plan_is_the_product_of_seeds_students_sizes_and_methods_with_the_teacher_once():
    points = plan(experiment(train_sizes=[40, 10], students=STUDENTS))
    assert points[0] == Point("teacher", None)
    trained = [p for p in points if p.method in ("vanilla", "ft_cot_d1", "ft_cot_d4")]
    assert len(trained) == 2 * 2 * 2 * 3 and len(set(trained)) == len(trained)
    assert sum(p.method == "zero_shot" for p in points) == 2 * 2, "zero-shot depends on the student, not the size"
    assert [p.seed for p in points[1:]] == sorted(p.seed for p in points[1:]), "whole seeds first"
    assert [p.train_size for p in trained[:3]] == [10, 10, 10], "sizes in increasing order"


def test_without_axes_the_plan_and_keys_are_the_papers_comparison_as_before():
    points = plan(experiment())
    assert [p.method for p in points] == ["teacher", "zero_shot", "vanilla", "ft_cot_d1", "ft_cot_d4"] * 1 + \
        ["zero_shot", "vanilla", "ft_cot_d1", "ft_cot_d4"]  # fmt: skip
    assert points[3].key("coin") == "coin/ft_cot_d1/0" and points[3].folder() == "ft_cot_d1_s0"
    assert Point.of({"method": "vanilla", "seed": 2}) == Point("vanilla", 2)  # records from before the axes


def test_a_point_names_its_axes_in_its_key_folder_and_record():
    point = Point("ft_cot_d4", 1, "small", 40)
    assert point.key("coin") == "coin/ft_cot_d4/1/small/n40" and point.folder() == "small/n40/ft_cot_d4_s1"
    assert point.degree == 4 and point.fields() == {"method": "ft_cot_d4", "seed": 1, "student": "small", "train_size": 40}
    assert Point.of({"task": "coin", **point.fields()}) == point
    from rt_ray.experiment.run import run_name

    assert run_name("coin", point) == "coin-small-n40-ft_cot_d4-s1"
    assert run_name("coin", Point("ft_cot_d4", 1)) == "coin-ft_cot_d4-s1", "MLflow names as before the axes"


def test_the_papers_table_reads_the_last_student_at_the_largest_size():
    exp = experiment(train_sizes=[10, 40], students=STUDENTS)
    assert reference(exp) == ("large", 40)
    runs = [{"method": "teacher", "seed": None}, {"method": "zero_shot", "seed": 0, "student": "large"},
            {"method": "zero_shot", "seed": 0, "student": "small"}, {"method": "vanilla", "seed": 0, "student": "large", "train_size": 40},
            {"method": "vanilla", "seed": 0, "student": "large", "train_size": 10}]  # fmt: skip
    assert at_reference(runs, exp) == runs[:2] + runs[3:4]


def samples(count: int) -> list[Sample]:
    return [Sample(id=f"q{i}", question="?", answer="yes", answer_type="yes_no") for i in range(count)]


def test_sizes_are_nested_prefixes_after_the_validation_hold_out():
    train = samples(20)
    small, large = questions_beyond(train, 5, 4), questions_beyond(train, 5, 10)
    assert small == {f"q{i}" for i in range(9, 20)} and large == {f"q{i}" for i in range(15, 20)}
    assert large < small, "the smaller point's questions are a subset of the larger one's"
    assert questions_beyond(train, 5, None) == set() and questions_beyond(train, 5, 15) == set()
    with pytest.raises(ConfigError, match="16 training questions asked for, but the task has 15 after the 5 held out"):
        questions_beyond(train, 5, 16)


def test_axes_are_checked_before_any_work_and_name_the_value():
    cfg = parse_config({"task": {"name": "coin_flip", "num_examples": 50}, "experiment": {"train_sizes": [10, 999], "tasks": {"c": {}}}})
    with pytest.raises(ConfigError, match=r"experiment\.train_sizes: 999 .* \(task coin_flip\)"):
        check_axes(cfg, cfg.experiment, 5, "experiment")
    with pytest.raises(ConfigError, match="students.bad: 'train.lr' is not a student.\\* key"):
        parse_config({"experiment": {"students": {"bad": {"train.lr": 1}}}})
    with pytest.raises(ConfigError, match="train_sizes has a size twice"):
        parse_config({"sweep": {"train_sizes": [10, 10]}})
    bad_value = parse_config({"experiment": {"students": {"odd": {"student.tiny_heads": 0}}}})
    with pytest.raises(ConfigError, match="experiment.students.odd"):
        student_config(bad_value, bad_value.experiment.students, "odd", "experiment")
    assert student_config(cfg, STUDENTS, "small", "experiment").student.tiny_hidden == 32


def test_a_rationale_is_priced_from_the_teachers_spend_scaled_past_its_cache_hits():
    assert teacher_usd_per_rationale({"rationales": 100, "cache_hits": 0, "cost_usd": 0.5}) == pytest.approx(0.005)
    # half the samples (100 of 200: a rationale and its answer extraction each) came from the cache, unpaid
    assert teacher_usd_per_rationale({"rationales": 100, "cache_hits": 100, "cost_usd": 0.25}) == pytest.approx(0.005)
    assert teacher_usd_per_rationale({"rationales": 100, "cache_hits": 200, "cost_usd": 0.0}) is None
    ft_cot = {"method": "ft_cot_d4", "degree": 4, "train_questions": 160}
    assert point_teacher_usd(ft_cot, 0.005) == pytest.approx(160 * 4 * 0.005)
    assert point_teacher_usd({"method": "vanilla", "train_questions": 160}, 0.005) == 0.0
    assert point_teacher_usd(ft_cot, None) is None


def run(method: str, seed: int, accuracy: float, questions: int, student: str | None = None, outcomes: str | None = None, **extra) -> dict:
    degree = int(method.removeprefix("ft_cot_d")) if method.startswith("ft_cot") else None
    return {"task": "t", "method": method, "seed": seed, "accuracy": accuracy, "degree": degree, "train_questions": questions,
            "student": student, "outcomes": outcomes, **extra}  # fmt: skip


def test_cells_average_seeds_and_the_cheapest_point_near_the_best_is_chosen():
    records = [run("ft_cot_d4", 0, 0.90, 100), run("ft_cot_d4", 1, 0.92, 100), run("ft_cot_d1", 0, 0.905, 200),
               run("ft_cot_d1", 1, 0.915, 200), run("vanilla", 0, 0.5, 200), run("ft_cot_d1", 0, 0.7, 50)]  # fmt: skip
    for r in records:
        r["train_size"] = r["train_questions"]
    cells = {c.name: c for c in point_cells(records, per_rationale=0.01)}
    d4 = cells["ft_cot_d4/n100"]
    assert (d4.mean, d4.runs, d4.teacher_usd) == (pytest.approx(0.91), 2, pytest.approx(4.0))
    assert d4.std == pytest.approx(math.sqrt(2 * 0.01**2))
    assert cells["ft_cot_d1/n200"].teacher_usd == pytest.approx(2.0) and cells["vanilla/n200"].teacher_usd == 0
    # best 91.0; d1/n200 at 91.0 is within a point and costs $2 against d4's $4; vanilla is not near
    assert cheapest_near_best(list(cells.values())).name == "ft_cot_d1/n200"


def test_average_ranks_share_ties_and_spearman_matches_hand_computed_values():
    assert list(average_ranks([10, 20, 20, 30])) == [1.0, 2.5, 2.5, 4.0]
    assert spearman([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [0.4, 0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    # by hand: ranks x (1,2,3,4), y (2,1,4,3): d = (-1,1,-1,1), rho = 1 - 6*4 / (4*15) = 0.6
    assert spearman([1, 2, 3, 4], [0.2, 0.1, 0.4, 0.3]) == pytest.approx(0.6)
    assert math.isnan(spearman([1, 1, 1], [0.1, 0.2, 0.3]))


def test_the_rank_correlation_interval_holds_for_a_clean_trend_and_spans_zero_for_noise():
    clean = rank_correlation([([1, 1, 2, 2, 4, 4, 8, 8], [0.1, 0.12, 0.3, 0.31, 0.5, 0.52, 0.8, 0.79])])
    assert clean["rho"] > 0.9 and clean["bootstrap_95"][0] > 0 and clean["holds"] and not clean["reversed"]
    # every resample of a perfectly monotone group has rho 1 or is undefined (one x value): [1, 1]
    exact = rank_correlation([([1, 2, 4, 8], [0.1, 0.2, 0.3, 0.4])], resamples=200)
    assert exact["rho"] == 1.0 and exact["bootstrap_95"] == [1.0, 1.0]
    noise = rank_correlation([([1, 2, 1, 2, 1, 2], [0.5, 0.5, 0.6, 0.4, 0.4, 0.6])])
    assert noise["bootstrap_95"][0] < 0 < noise["bootstrap_95"][1] and not noise["holds"] and not noise["reversed"]
    falling = rank_correlation([([1, 2, 4, 8] * 2, [0.9, 0.7, 0.5, 0.3, 0.88, 0.72, 0.49, 0.31])])
    assert falling["reversed"] and not falling["holds"]
    # two groups: the pooled rho weights each by its runs; (rho 1 over 4 runs, rho 0.6 over 4) -> 0.8
    pooled = rank_correlation([([1, 2, 3, 4], [1, 2, 3, 4]), ([1, 2, 3, 4], [0.2, 0.1, 0.4, 0.3])], resamples=10)
    assert pooled["rho"] == pytest.approx(0.8) and pooled["groups"] == 2 and pooled["runs"] == 8


def test_axis_groups_hold_the_other_axes_fixed_and_skip_groups_with_one_value():
    records = [run("ft_cot_d1", 0, 0.5, 100, "s"), run("ft_cot_d4", 0, 0.7, 100, "s"), run("ft_cot_d1", 0, 0.6, 100, "l"),
               run("ft_cot_d4", 0, 0.9, 100, "l"), run("ft_cot_d8", 0, 0.4, 50, "l"), run("vanilla", 0, 0.3, 100, "s")]  # fmt: skip
    assert sorted(axis_groups(records, "degree")) == [([1.0, 4.0], [0.5, 0.7]), ([1.0, 4.0], [0.6, 0.9])]
    assert axis_groups(records, "train_size") == [], "no D has two sizes for one student"


def test_equal_spend_pairs_d1_on_more_questions_with_a_higher_d_on_fewer_seed_with_seed():
    records = [run("ft_cot_d1", 0, 0.5, 200, outcomes="1100"), run("ft_cot_d1", 1, 0.5, 200, outcomes="1010"),
               run("ft_cot_d2", 0, 1.0, 100, outcomes="1111"), run("ft_cot_d2", 1, 0.75, 100, outcomes="1110"),
               run("ft_cot_d4", 0, 1.0, 100, outcomes="1111"),  # 400 rationales: no D=1 point on 400 questions
               run("ft_cot_d1", 0, 0.5, 100, outcomes="0000")]  # fmt: skip
    (match,) = equal_spend(records)
    assert (match["degree"], match["questions"], match["d1_questions"], match["spend_rationales"], match["seeds"]) == (2, 100, 200, 200, 2)
    # pairs over 2 seeds x 4 questions: D=1 right alone 0 times, D=2 alone 3 times -> mean difference -3/8
    assert match["paired"]["pairs"] == 8 and match["paired"]["only_better_right"] == 0 and match["paired"]["only_other_right"] == 3
    assert match["d1_minus_higher_d_points"] == pytest.approx(-37.5)


def test_curves_put_every_point_with_its_cost_and_the_spend_comparisons_together():
    teacher = {"task": "t", "method": "teacher", "seed": None, "accuracy": 0.8, "rationales": 10, "cache_hits": 0, "cost_usd": 0.1}
    records = [teacher, run("ft_cot_d2", 0, 0.9, 5, outcomes="1"), run("ft_cot_d1", 0, 0.8, 10, outcomes="1")]
    result = curves(records)
    assert result["teacher_usd_per_rationale"] == pytest.approx(0.01)
    assert [(p["name"], p["teacher_usd"]) for p in result["points"]] == [("ft_cot_d2", pytest.approx(0.1)), ("ft_cot_d1", pytest.approx(0.1))]
    assert result["cheapest_near_best"] == "ft_cot_d2" and len(result["equal_spend"]) == 1


def test_the_run_budget_starts_no_run_that_the_longest_so_far_says_would_end_past_the_limit():
    import time

    from rt_ray.experiment.run import RunBudget

    unlimited = RunBudget(time.monotonic() - 10_000, None)
    assert unlimited.allows_another()
    budget = RunBudget(time.monotonic(), max_minutes=0.01)  # 0.6 s
    assert budget.allows_another()
    with budget.timing():
        time.sleep(0.35)
    assert budget.runs == 1 and budget.longest_s >= 0.35
    assert not budget.allows_another(), "0.35 s gone and a 0.35 s run would end past 0.6 s"


def test_the_shipped_curves_config_has_every_size_and_student_runnable_on_its_task():
    from pathlib import Path

    from rt_ray.config import load_config
    from rt_ray.experiment.plan import task_configs

    cfg = load_config(Path(__file__).resolve().parents[3] / "configs" / "paper-curves.yaml")
    for task_cfg in task_configs(cfg).values():
        check_axes(task_cfg, cfg.experiment, task_cfg.train.validation_size, "experiment")
        assert task_cfg.generation.degree == 8, "one teacher run at the largest D serves every point"
    assert len(plan(cfg.experiment)) == 1 + 3 * 3 * (1 + 3 * 5)


def test_a_run_is_reused_only_while_its_fingerprint_matches_the_configs_and_the_latest_counts():
    from rt_ray.experiment.run import current_records, point_fingerprint, task_fingerprint

    expected = {"t/vanilla/0": "aaa", "t/ft_cot_d1/0": "bbb"}
    records = [{"task": "t", "method": "vanilla", "seed": 0, "accuracy": 0.1, "fingerprint": "old"},  # another config's
               {"task": "t", "method": "ft_cot_d1", "seed": 0, "accuracy": 0.2},  # before fingerprints: kept
               {"task": "t", "method": "ft_cot_d1", "seed": 1, "accuracy": 0.3, "fingerprint": "bbb"},  # not in the plan
               {"task": "t", "method": "ft_cot_d1", "seed": 0, "accuracy": 0.4, "fingerprint": "bbb"}]  # fmt: skip
    assert current_records(records, expected) == [records[3]]
    assert current_records(records[:2], expected) == [records[1]]
    cfg = parse_config({"task": {"name": "coin_flip", "num_examples": 40}, "experiment": {"students": STUDENTS, "tasks": {"c": {}}}})
    upstream = task_fingerprint(cfg)
    small, large = (point_fingerprint(cfg, Point("ft_cot_d1", 0, s), upstream) for s in ("small", "large"))
    assert small != large != upstream == point_fingerprint(cfg, Point("teacher", None), upstream)
    longer = point_fingerprint(cfg.with_values(train={"max_steps": cfg.train.max_steps + 1}), Point("ft_cot_d1", 0, "small"), upstream)
    assert longer != small and point_fingerprint(cfg, Point("ft_cot_d1", 1, "small"), upstream) != small


def test_points_without_a_measured_spend_say_so_rather_than_cost_nothing():
    from rt_ray.experiment.curves import unpriced_markdown

    teacher = {"task": "t", "method": "teacher", "seed": None, "accuracy": 0.8, "rationales": 10, "cache_hits": 20, "cost_usd": 0.0}
    result = curves([teacher, run("ft_cot_d2", 0, 0.9, 5, outcomes="1"), run("vanilla", 0, 0.5, 5, outcomes="0")])
    assert result["teacher_usd_per_rationale"] is None
    assert {p["name"]: p["teacher_usd"] for p in result["points"]} == {"ft_cot_d2": None, "vanilla": 0.0}
    assert result["cheapest_near_best"] == "vanilla", "only priced points compete"
    assert "No teacher dollars for t: every sample of the teacher run came from the cache" in unpriced_markdown({"t": result})
    assert unpriced_markdown({"t": {**result, "teacher_usd_per_rationale": 0.01}}) == ""


def test_each_curve_plot_holds_the_other_axis_at_the_reference_point_and_draws_every_value_of_its_own():
    from dataclasses import asdict

    from rt_ray.experiment.plots import CURVE_PLOTS, curve_lines

    records = [run(f"ft_cot_d{d}", 0, 0.1 * d, n, s, student_parameters=p, train_size=n)
               for d in (1, 2) for n in (10, 20) for s, p in (("small", 100), ("large", 400))]  # fmt: skip
    points = [asdict(c) for c in point_cells(records, 0.01)]
    x, line, _ = CURVE_PLOTS["accuracy_vs_student_size.png"]
    by_degree = curve_lines(points, x, line, {"train_questions": 20})
    assert {d: sorted(c["student_parameters"] for c in cells) for d, cells in by_degree.items()} == {1: [100, 400], 2: [100, 400]}
    x, line, _ = CURVE_PLOTS["accuracy_vs_train_size.png"]
    assert {d: sorted(c["train_questions"] for c in cells) for d, cells in curve_lines(points, x, line, {"student": "large"}).items()} == \
        {1: [10, 20], 2: [10, 20]}  # fmt: skip
