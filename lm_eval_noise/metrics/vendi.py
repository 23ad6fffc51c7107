"""Vendi score (Friedman & Dieng 2023): the effective number of distinct samples among the K."""

from __future__ import annotations

import math

import numpy as np

from lm_eval_noise.metrics.embedding_matrix import unit_rows


def vendi_score(embeddings: object) -> float:
    """exp(-Σ λ_i log λ_i) over the non-zero eigenvalues λ of S / K, S = X̂ X̂ᵀ the cosine kernel.

    `embeddings` X is a (K, d) array, one row per sample; X̂ has L2-normalised rows, so
    S_ii = 1 and the λ sum to 1: the score is the exponential of their Shannon entropy.
    Range [1, K]; higher is more diverse: K identical rows give 1, K orthogonal rows give K.
    Fewer than two rows: NaN (not measurable). Reference: Friedman & Dieng 2023, *The Vendi
    Score: A Diversity Evaluation Metric for Machine Learning* (TMLR).

    S / K = X̂ X̂ᵀ / K and X̂ᵀ X̂ / K share their non-zero eigenvalues, so the smaller of the
    (K, K) and (d, d) matrices is decomposed. A zero row, a NaN or a non-2-D input raises
    ValueError.
    """
    x = unit_rows(embeddings)
    k, d = x.shape
    if k < 2:
        return math.nan
    gram = (x @ x.T) if k <= d else (x.T @ x)
    lam = np.linalg.eigvalsh(gram / k)
    # Exact zeros come out as tiny +/- rounding noise; 0 log 0 = 0, so drop them.
    lam = lam[lam > 1e-12]
    return float(np.exp(-np.sum(lam * np.log(lam))))
