"""Pure metric functions over the K samples generated for one prompt.

Each takes the list of K generations for one prompt and returns a float; lm-eval
averages the per-prompt values (`aggregation: mean`). See docs/metrics.md.
"""

from __future__ import annotations

from typing import Any

from lm_eval_noise.metrics.basic import compile_rate, unique_ratio
from lm_eval_noise.metrics.distinct import distinct_n
from lm_eval_noise.metrics.edit_distance import edit_distance
from lm_eval_noise.metrics.pass_at_k import pass_at_k
from lm_eval_noise.metrics.self_bleu import self_bleu

__all__ = [
    "compile_rate",
    "distinct_n",
    "edit_distance",
    "pass_at_k",
    "self_bleu",
    "unique_ratio",
    "aggregation",
]


def __getattr__(name: str) -> Any:
    # `aggregation` imports lm_eval (~0.3 s); load it only when asked for.
    if name == "aggregation":
        import importlib

        return importlib.import_module("lm_eval_noise.metrics.aggregation")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
