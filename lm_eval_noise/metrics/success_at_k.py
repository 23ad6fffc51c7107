"""Empirical success@k: did any of the first k samples pass? (No estimator; compare `pass_at_k`.)"""

from __future__ import annotations

from typing import Sequence


def success_at_k(passed: Sequence[bool], k: int) -> float:
    """1.0 if at least one of the first k samples (in generation order) passed, else 0.0.

    Averaged over problems it is the share of problems solved within k tries, as observed on this one
    draw of samples; `pass_at_k` is the unbiased estimate of the same probability from all n samples
    (Chen et al. 2021), so its mean over problems varies less between runs."""
    if not 1 <= k <= len(passed):
        raise ValueError(f"success_at_k: need 1 <= k <= n, got n={len(passed)}, k={k}")
    return 1.0 if any(bool(p) for p in passed[:k]) else 0.0
