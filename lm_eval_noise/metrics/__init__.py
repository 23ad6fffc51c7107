"""Pure metric functions over the K samples generated for one prompt.

Each takes the list of K generations for one prompt (`vendi_score` and
`embedding_diversity`: their (K, d) embeddings) and returns a number; the task averages the
per-prompt values (`mean`, or `nanmean` where a value may be NaN). See docs/metrics.md.
"""

from __future__ import annotations

from typing import Any

from lm_eval_noise.metrics.basic import compile_rate, unique_ratio
from lm_eval_noise.metrics.behaviour import behaviour_classes, effective_class_diversity, functional_diversity
from lm_eval_noise.metrics.compression import compression_ratio
from lm_eval_noise.metrics.distinct import distinct_n
from lm_eval_noise.metrics.edit_distance import edit_distance
from lm_eval_noise.metrics.embedding_diversity import embedding_diversity
from lm_eval_noise.metrics.pass_at_k import pass_at_k
from lm_eval_noise.metrics.self_bleu import self_bleu
from lm_eval_noise.metrics.semantic import semantic_diversity, semantic_metrics, semantic_vendi
from lm_eval_noise.metrics.structure import ast_classes, structural_diversity
from lm_eval_noise.metrics.success_at_k import success_at_k
from lm_eval_noise.metrics.vendi import vendi_score

__all__ = [
    "ast_classes",
    "behaviour_classes",
    "compile_rate",
    "compression_ratio",
    "distinct_n",
    "edit_distance",
    "effective_class_diversity",
    "embedding_diversity",
    "functional_diversity",
    "pass_at_k",
    "self_bleu",
    "semantic_diversity",
    "semantic_metrics",
    "semantic_vendi",
    "structural_diversity",
    "success_at_k",
    "unique_ratio",
    "vendi_score",
    "aggregation",
]


def __getattr__(name: str) -> Any:
    # `aggregation` imports lm_eval (~0.3 s); load it only when asked for.
    if name == "aggregation":
        import importlib

        return importlib.import_module("lm_eval_noise.metrics.aggregation")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
