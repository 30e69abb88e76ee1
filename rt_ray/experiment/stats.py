"""Paired comparisons of two methods over the same test questions: plain functions, no Ray.

Two methods answer the same test questions (a task's test split does not depend on the seed), so
their outcomes pair question by question; pooled over seeds, seed s of one method pairs with seed s
of the other. Two measures of a difference in accuracy:

    paired_bootstrap_interval(diffs)   # 95 % interval of the mean of per-question differences
    mcnemar_exact_p(a_only, b_only)    # exact two-sided McNemar test on the discordant pairs

numpy's generator for the bootstrap and the exact binomial tail for McNemar, rather than scipy
(not a dependency of the package): both are a few lines.
"""

from __future__ import annotations

import math

import numpy as np


def paired_differences(a: list[bool], b: list[bool]) -> list[int]:
    """Per question: 1 where only ``a`` is right, -1 where only ``b`` is, 0 where they agree."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need the same questions: {len(a)} against {len(b)}")
    return [int(x) - int(y) for x, y in zip(a, b)]


def discordant_counts(diffs: list[int]) -> tuple[int, int]:
    """(pairs only the first method got right, pairs only the second did)."""
    return sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)


def mcnemar_exact_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: under no difference, each discordant pair goes either way
    with probability 1/2, so the smaller count is Binomial(n, 1/2)'s lower tail, doubled."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap_interval(diffs: list[int], level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean paired difference, resampling pairs with replacement."""
    if not diffs:
        return (0.0, 0.0)
    values = np.asarray(diffs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = len(values)
    # Resampled in chunks of about 4M draws (32 MB), so a test split of any size fits in memory.
    chunk = max(1, 4_000_000 // n)
    means = np.concatenate([values[rng.integers(0, n, size=(min(chunk, resamples - start), n))].mean(axis=1)
                            for start in range(0, resamples, chunk)])  # fmt: skip
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return (float(low), float(high))


def compare(a: list[list[bool]], b: list[list[bool]]) -> dict:
    """Method a against method b, each a list of runs (one per seed) of per-question outcomes in the
    same question order; the runs pair by position and are pooled."""
    if len(a) != len(b):
        raise ValueError(f"paired runs need the same seeds: {len(a)} runs against {len(b)}")
    diffs = [d for run_a, run_b in zip(a, b) for d in paired_differences(run_a, run_b)]
    a_only, b_only = discordant_counts(diffs)
    low, high = paired_bootstrap_interval(diffs)
    return {
        "pairs": len(diffs),
        "mean_difference": round(sum(diffs) / len(diffs), 4) if diffs else 0.0,
        "bootstrap_95": [round(low, 4), round(high, 4)],
        "only_better_right": a_only,
        "only_other_right": b_only,
        "mcnemar_p": mcnemar_exact_p(a_only, b_only),
    }
