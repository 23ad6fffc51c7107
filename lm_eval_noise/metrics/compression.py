"""Compression ratio (Shaib et al. 2024): how well gzip compresses the K samples joined together."""

from __future__ import annotations

import gzip
import math

from lm_eval_noise.metrics._common import check_texts, non_empty


def compression_ratio(texts: list[str]) -> float:
    """bytes(" ".join(texts)) / bytes(gzip(" ".join(texts))), over the non-empty samples, UTF-8.

    Range (0, ∞), in practice about 1 (short or varied text; gzip's ~20-byte header can push
    very short input below 1) up to K and beyond for K copies of one text; higher is LESS
    diverse (more repetitive). Fewer than two non-empty samples: NaN (nothing to repeat).
    Reference: Shaib et al. 2024, *Standardizing the Measurement of Text Diversity* (their
    `diversity` package compresses the joined text with gzip as here; one compression, level 9,
    header time fixed at 0 so the value is reproducible).
    """
    texts = check_texts(texts)
    kept = [texts[i] for i in non_empty(texts)]
    if len(kept) < 2:
        return math.nan
    raw = " ".join(kept).encode("utf-8")
    return len(raw) / len(gzip.compress(raw, compresslevel=9, mtime=0))
