"""How many prompts a metric could be measured on, reported beside it in lm-eval's results.

A diversity metric that is not measurable on a prompt (fewer than two non-empty samples, no
n-gram of the order asked for, ...) is NaN there. The task aggregates it with lm-eval's
registered `nanmean`, which skips those prompts, and reports `<metric>_measured`: 1 for each
prompt the metric was measured on, summed over prompts by `count`. In a task YAML:

    - metric: self_bleu
      aggregation: nanmean
      higher_is_better: false
    - metric: self_bleu_measured
      aggregation: !function utils.count
      higher_is_better: true

where the task's utils.py imports `count` from here and returns `with_measured(values, [...])`
from `process_results`. The leaderboard and the plots show the count beside its metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

SUFFIX = "_measured"


def measured_name(metric: str) -> str:
    """`self_bleu` -> `self_bleu_measured`; a ",filter" suffix is kept: `self_bleu_measured,all_samples`."""
    name, sep, filt = metric.partition(",")
    return f"{name}{SUFFIX}{sep}{filt}"


def measured_of(key: str) -> str | None:
    """The metric a count belongs to (`self_bleu_measured,f` -> `self_bleu,f`), or None for other keys."""
    name, sep, filt = key.partition(",")
    if not name.endswith(SUFFIX) or name == SUFFIX:
        return None
    return f"{name.removesuffix(SUFFIX)}{sep}{filt}"


def with_measured(values: dict[str, float], metrics: Iterable[str]) -> dict[str, float]:
    """`values` plus `<metric>_measured` (1 if the value is a number, 0 if NaN) for each of `metrics`."""
    out = dict(values)
    for metric in metrics:
        out[measured_name(metric)] = 0 if math.isnan(values[metric]) else 1
    return out


def count(items: Sequence[float]) -> int:
    """Aggregation for `<metric>_measured`: the number of prompts the metric was measured on."""
    return int(sum(items))
