"""Paired comparisons over test questions, against values worked out by hand."""

from __future__ import annotations

import pytest

from rt_ray.experiment.stats import compare, discordant_counts, mcnemar_exact_p, paired_bootstrap_interval, paired_differences


def test_paired_differences_mark_which_method_alone_was_right():
    assert paired_differences([True, True, False, False], [True, False, True, False]) == [0, 1, -1, 0]
    with pytest.raises(ValueError, match="same questions: 2 against 1"):
        paired_differences([True, False], [True])


def test_mcnemar_exact_p_is_the_doubled_binomial_tail():
    # 8 against 2 discordant pairs: 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * 56 / 1024
    assert mcnemar_exact_p(8, 2) == pytest.approx(112 / 1024)
    assert mcnemar_exact_p(2, 8) == mcnemar_exact_p(8, 2)
    # 5 against 0: 2 / 32
    assert mcnemar_exact_p(5, 0) == pytest.approx(1 / 16)
    assert mcnemar_exact_p(3, 3) == 1.0 and mcnemar_exact_p(0, 0) == 1.0


def test_bootstrap_interval_is_degenerate_without_variation_and_near_the_normal_one_with_it():
    assert paired_bootstrap_interval([1] * 30) == (1.0, 1.0)
    # 60 of 100 pairs differ by +1, the rest by 0: mean 0.6, standard error sqrt(0.24 / 100) = 0.049
    low, high = paired_bootstrap_interval([1] * 60 + [0] * 40)
    assert low == pytest.approx(0.6 - 1.96 * 0.049, abs=0.015) and high == pytest.approx(0.6 + 1.96 * 0.049, abs=0.015)
    assert paired_bootstrap_interval([1, 0, -1, 1], seed=3) == paired_bootstrap_interval([1, 0, -1, 1], seed=3)


def test_compare_pools_seeds_by_position():
    a = [[True, True, True, False], [True, True, False, False]]
    b = [[False, True, False, False], [True, False, False, True]]
    result = compare(a, b)
    assert result["pairs"] == 8 and discordant_counts([1, 0, 1, 0, 0, 1, 0, -1]) == (3, 1)
    assert (result["only_better_right"], result["only_other_right"]) == (3, 1)
    assert result["mean_difference"] == 0.25 and result["mcnemar_p"] == pytest.approx(2 * 5 / 16)
    with pytest.raises(ValueError, match="same seeds"):
        compare(a, b[:1])
