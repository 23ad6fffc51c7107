"""Which way is better, per metric: the one place the leaderboard and the plots ask.

The task's own `higher_is_better` declaration (from the results JSON) decides. Where a task declares
nothing (or `null`, as descriptive metrics such as `mean_length` do: lm-eval has no "neither"), this
table does: lower is better for Self-BLEU (more similar samples = less diverse) and for
perplexity-like and loss-like metrics (the leaderboard's own clean_ppl included); lengths have no
better side; everything else (accuracy, pass@k, Distinct-N, ...) is higher-is-better.
"""

from __future__ import annotations

import re
from typing import Any

HIGHER, LOWER, NEUTRAL = 1, -1, 0

_LOWER = re.compile(
    r"^((.*_)?self[_-]?bleu.*|.*perplexity.*|(.*_)?ppl(_.*)?|bits_per_byte|(.*_)?loss|(.*_)?nll|ter|wer|cer)$",
    re.IGNORECASE,
)
_NEUTRAL = re.compile(r"^((mean|avg|average)_)?(len|length|num_tokens|gen_len)(_.*)?$", re.IGNORECASE)


def direction(metric: str, declared: bool | None = None) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if neither; `metric` may carry ",filter".

    `declared` is the task's higher_is_better entry from the results JSON; when it is a bool it wins.
    """
    if isinstance(declared, bool):
        return HIGHER if declared else LOWER
    name = metric.split(",", 1)[0]
    if _LOWER.match(name):
        return LOWER
    if _NEUTRAL.match(name):
        return NEUTRAL
    return HIGHER


def results_direction(data: dict[str, Any], task: str, metric: str) -> int:
    """`direction` of `metric` (may carry ",filter") of `task` in a results JSON, with the task's declaration:
    the one call path for the leaderboard, the plots and `compare`."""
    declared = ((data.get("higher_is_better") or {}).get(task) or {}).get(metric.split(",", 1)[0])
    return direction(metric, declared)


def direction_word(d: int) -> str:
    return {HIGHER: "higher is better", LOWER: "lower is better", NEUTRAL: "no better side"}[d]


def arrow(d: int) -> str:
    return {HIGHER: "↑", LOWER: "↓", NEUTRAL: ""}[d]
