"""Embedding diversity: mean pairwise cosine distance between the K samples' embeddings."""

from __future__ import annotations

import math

import numpy as np

from lm_eval_noise.metrics.embedding_matrix import unit_rows


def embedding_diversity(embeddings: object) -> float:
    """Mean over the K(K-1)/2 pairs i < j of 1 - cos(x_i, x_j); `embeddings` is a (K, d) array.

    Range [0, 2] ([0, 1] for embeddings with no negative similarities, as sentence encoders
    mostly give); higher is more diverse; 0 when all rows point the same way. Fewer than two
    rows: NaN (no pair; not measurable). Reference: the embedding-based (cosine) diversity of
    Shaib et al. 2024, *Standardizing the Measurement of Text Diversity*; Jiang et al. 2025,
    *Artificial Hivemind*. A zero row, a NaN or a non-2-D input raises ValueError.
    """
    x = unit_rows(embeddings)
    k = len(x)
    if k < 2:
        return math.nan
    # Clip: rounding can push the cosine of two equal rows a hair above 1.
    cos = np.clip(x @ x.T, -1.0, 1.0)
    iu = np.triu_indices(k, k=1)
    return float(np.mean(1.0 - cos[iu]))
