"""Checks and row normalisation shared by the metrics over sample embeddings (a (K, d) array)."""

from __future__ import annotations

import numpy as np


def unit_rows(embeddings: object, name: str = "embeddings") -> np.ndarray:
    """`embeddings` as a float64 (K, d) array with L2-normalised rows.

    Cosine similarity needs a direction, so a zero row is an error rather than a silent NaN;
    so are non-finite entries and anything that is not 2-D.
    """
    try:
        x = np.asarray(embeddings, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a (K, d) array of numbers (one row per sample): {exc}") from None
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a 2-D (K, d) array with d >= 1 (one row per sample), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must hold finite numbers; found NaN or inf")
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if len(zero):
        raise ValueError(f"{name} row {int(zero[0])} is all zeros: cosine similarity needs a non-zero vector")
    return x / norms[:, None]
