"""Paired statistics over per-problem scores (README, The study: paired tests on the same problems): the same problems, two methods.

All functions take the baseline's scores `a` and the other method's scores `b` (or the paired
differences d = b - a), so positive numbers mean "b is higher".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BOOTSTRAP_ITERATIONS = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
_CHUNK = 1_000  # resamples drawn at a time, to bound memory on large problem sets


def bootstrap_ci(
    diffs: Sequence[float],
    iterations: int = BOOTSTRAP_ITERATIONS,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean paired difference.

    Resamples problems with replacement `iterations` times from numpy's default_rng(seed), so the
    interval is reproducible; returns (nan, nan) for no data.
    """
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return float("nan"), float("nan")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    means = np.empty(iterations)
    for start in range(0, iterations, _CHUNK):
        stop = min(start + _CHUNK, iterations)
        idx = rng.integers(0, d.size, size=(stop - start, d.size))
        means[start:stop] = d[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def wilcoxon_p(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the paired differences (scipy.stats.wilcoxon defaults).

    scipy drops zero differences ("wilcox" zero method) and picks the method itself ("auto"): the
    exact null distribution for n <= 50 without ties or zeros, an exact permutation test for n <= 13
    with them (seconds per call for n of 10-13), the normal approximation otherwise. When every
    difference is zero (identical runs) there is nothing to rank and the p-value is defined as 1.0.
    No data gives nan.
    """
    from scipy.stats import wilcoxon

    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return float("nan")
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d).pvalue)


def bonferroni(pvalues: Sequence[float], m: int | None = None) -> list[float]:
    """Bonferroni correction: each p times the number of comparisons `m` (default len(pvalues)), capped at 1."""
    m = len(pvalues) if m is None else m
    if m < 1:
        raise ValueError(f"the number of comparisons must be >= 1, got {m}")
    return [min(1.0, p * m) if p == p else p for p in pvalues]


def cliffs_delta(a: Sequence[float], b: Sequence[float]) -> float:
    """Cliff's delta of b against a: (#{b_j > a_i} - #{b_j < a_i}) / (|a| |b|), in [-1, 1].

    Over all pairs of the two samples (the usual, unpaired definition); 0 means neither tends to be
    larger, +1 that every b exceeds every a. Counted with sorting, O(n log n).
    """
    a_sorted = np.sort(np.asarray(a, dtype=float))
    b_arr = np.asarray(b, dtype=float)
    if a_sorted.size == 0 or b_arr.size == 0:
        return float("nan")
    below = np.searchsorted(a_sorted, b_arr, side="left")  # a_i < b_j
    above = a_sorted.size - np.searchsorted(a_sorted, b_arr, side="right")  # a_i > b_j
    return float((below.sum() - above.sum()) / (a_sorted.size * b_arr.size))
