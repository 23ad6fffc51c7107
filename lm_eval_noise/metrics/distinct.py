"""Distinct-N (Li et al., 2016): share of n-grams that are unique, pooled over the K samples."""

from __future__ import annotations

import math

from lm_eval_noise.metrics._common import Tokenizer, check_positive_int, check_texts, check_tokenizer, non_empty, tokenize_all


def distinct_n(texts: list[str], n: int, tokenizer: Tokenizer | None = None) -> float:
    """|unique n-grams| / |total n-grams|, n-grams pooled over all samples.

    N-grams never cross sample boundaries: each sample contributes its own
    len(tokens) - n + 1 n-grams (none when it has fewer than n tokens). Tokens are
    whitespace-separated words (`str.split()`) unless `tokenizer` (any callable
    str -> list[str], e.g. a Hugging Face tokenizer's `tokenize`) is given.

    Range [0, 1]; higher is more diverse. Not measurable (NaN) with fewer than two
    non-empty samples, or when no sample has n tokens (no n-grams to count).
    """
    texts = check_texts(texts)
    n = check_positive_int(n, "n")
    texts = [texts[i] for i in non_empty(texts)]
    check_tokenizer(tokenizer)
    if len(texts) < 2:
        return math.nan
    unique: set[tuple] = set()
    total = 0
    for tokens in tokenize_all(texts, tokenizer):
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return len(unique) / total if total else math.nan
