"""Semantic diversity: how different the K samples are in meaning, from sentence embeddings.

A reworded story and a different story move n-gram metrics (Distinct-N, Self-BLEU) alike; a
sentence embedder maps paraphrases close together, so these metrics separate "same content,
new words" from "new content". Reference: Shaib et al. 2024, *Standardizing the Measurement of
Text Diversity*; Friedman & Dieng 2023 (Vendi score); Jiang et al. 2025, *Artificial Hivemind*.
The embedder (default all-MiniLM-L6-v2, offline) is described in `lm_eval_noise.metrics.embedder`.
"""

from __future__ import annotations

import math
from typing import Any

from lm_eval_noise.metrics._common import check_texts, non_empty
from lm_eval_noise.metrics.embedder import embed
from lm_eval_noise.metrics.embedding_diversity import embedding_diversity
from lm_eval_noise.metrics.vendi import vendi_score


def semantic_diversity(texts: list[str], model: Any = None) -> float:
    """`embedding_diversity` of the non-empty samples' sentence embeddings: mean pairwise 1 - cos.

    Range [0, 2] (about [0, 1] in practice); higher is more diverse. Fewer than two non-empty
    samples: NaN (not measurable; the embedder is not loaded). `model`: see `embedder.embed`.
    """
    return semantic_metrics(texts, model)["semantic_diversity"]


def semantic_vendi(texts: list[str], model: Any = None) -> float:
    """`vendi_score` of the non-empty samples' sentence embeddings: the effective number of
    distinct meanings. Range [1, K]; higher is more diverse; NaN with fewer than two non-empty
    samples."""
    return semantic_metrics(texts, model)["semantic_vendi"]


def semantic_metrics(texts: list[str], model: Any = None) -> dict[str, float]:
    """{"semantic_diversity": ..., "semantic_vendi": ...} from one encoding of the samples."""
    texts = check_texts(texts)
    kept = [texts[i] for i in non_empty(texts)]
    if len(kept) < 2:
        return {"semantic_diversity": math.nan, "semantic_vendi": math.nan}
    x = embed(kept, model)
    return {"semantic_diversity": embedding_diversity(x), "semantic_vendi": vendi_score(x)}
