"""Aggregations for lm-eval task YAMLs that keep lm-eval's stderr.

lm-eval picks the stderr of an aggregation by *identity*
(`lm_eval.api.metrics.stderr_for_metric`): its own `mean` gets the closed-form
sample stderr, a fixed list of its own functions (`nanmean`, `median`, ...) gets a
bootstrap stderr, and any other function, even one that computes the same mean,
gets "N/A". So a wrapper cannot carry a stderr; these names are lm-eval's own
function objects, re-exported.

Per-prompt values need no `!function` at all: `aggregation: mean` (or `nanmean`, a name
lm-eval registers) in the YAML already reports a stderr. Where a task's `utils.py` must
hand over a function (`aggregation: !function utils.mean`), import it from here:

    from lm_eval_noise.metrics.aggregation import mean, nanmean  # noqa: F401

- `mean`: plain mean; stderr = sample std / sqrt(N) (lm-eval's `mean_stderr`).
- `nanmean`: mean that skips NaN values (for prompts where a metric is undefined);
  stderr by bootstrap (`--bootstrap_iters`, default 100000 draws).

Both report "N/A" for a single document or with `--bootstrap_iters 0`.
"""

from __future__ import annotations

from lm_eval.api.metrics import mean, nanmean

__all__ = ["mean", "nanmean"]
