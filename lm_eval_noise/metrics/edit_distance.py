"""Mean pairwise normalised Levenshtein distance between the K samples."""

from __future__ import annotations

import math

import numpy as np

from lm_eval_noise.metrics._common import Tokenizer, check_choice, check_texts, non_empty, tokenize_all

UNITS = ("char", "token")


def edit_distance(texts: list[str], unit: str = "char", tokenizer: Tokenizer | None = None) -> float:
    """Mean over the K(K-1)/2 pairs of non-empty samples of Levenshtein(a, b) / max(len(a), len(b)).

    `unit="char"` compares characters (Unicode code points); `unit="token"`
    compares token sequences (`str.split()`, or `tokenizer` when given; `tokenizer`
    is ignored for characters). Range [0, 1]; higher is more diverse. Only non-empty
    samples are compared; with fewer than two there is no pair and the value is NaN
    (not measurable).
    """
    texts = check_texts(texts)
    unit = check_choice(unit, "unit", UNITS)
    texts = [texts[i] for i in non_empty(texts)]
    if len(texts) < 2:
        return math.nan
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    seqs: list = texts if unit == "char" else tokenize_all(texts, tokenizer)
    lengths = np.array([len(s) for s in seqs], dtype=np.float64)
    # Integer distances, normalised here in float64 (rapidfuzz's normalized scorer returns float32).
    dist = process.cdist(seqs, seqs, scorer=Levenshtein.distance, dtype=np.int64, workers=1)
    iu = np.triu_indices(len(seqs), k=1)
    longer = np.maximum(lengths[:, None], lengths[None, :])[iu]
    d = dist[iu].astype(np.float64)
    norm = np.divide(d, longer, out=np.zeros_like(d), where=longer > 0)
    return float(norm.mean())
