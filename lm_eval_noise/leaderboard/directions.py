"""Which way is better, per metric: the one place the leaderboard and the plots ask.

Lower is better for Self-BLEU (more similar samples = less diverse) and for perplexity-like and
loss-like metrics (clean_ppl included); a few descriptive metrics (lengths) have no better side; everything else
(accuracy, pass@k, Distinct-N, edit distance, unique ratio, compile rate...) is higher-is-better.
A metric this table does not name falls back to the task's own `higher_is_better` declaration
from the results JSON, then to higher-is-better.
"""

from __future__ import annotations

import re

HIGHER, LOWER, NEUTRAL = 1, -1, 0

_LOWER = re.compile(
    r"^((.*_)?self[_-]?bleu.*|.*perplexity.*|(.*_)?ppl(_.*)?|bits_per_byte|(.*_)?loss|(.*_)?nll|ter|wer|cer)$",
    re.IGNORECASE,
)
_NEUTRAL = re.compile(r"^((mean|avg|average)_)?(len|length|num_tokens|gen_len)(_.*)?$", re.IGNORECASE)


def direction(metric: str, declared: bool | None = None) -> int:
    """+1 if higher is better, -1 if lower is better, 0 if neither; `metric` may carry ",filter".

    `declared` is the task's higher_is_better entry from the results JSON, used only for metrics
    this module does not know.
    """
    name = metric.split(",", 1)[0]
    if _LOWER.match(name):
        return LOWER
    if _NEUTRAL.match(name):
        return NEUTRAL
    if declared is False:
        return LOWER
    return HIGHER


def direction_word(d: int) -> str:
    return {HIGHER: "higher is better", LOWER: "lower is better", NEUTRAL: "no better side"}[d]


def arrow(d: int) -> str:
    return {HIGHER: "↑", LOWER: "↓", NEUTRAL: ""}[d]
