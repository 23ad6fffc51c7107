"""Mean clean perplexity of a task's generations, read from the samples file logged beside its results.

hf-noisy with `clean_ppl=true` records each generated sample's perplexity under the same model with
noise off (seed 001 §3.2's coherence metric) in the logged doc's generation args: lm-eval writes
`arguments` as {"gen_args_0": {"arg_0": context, "arg_1": {..., "noise_samples": [...]}}}, one
record per repeat, each with "clean_ppl" (a float, or null for an empty sample). The leaderboard
adds it to the task's metrics as "clean_ppl,none" (lower is better):

- value: the mean over every non-null sample of the task;
- stderr: the sample standard deviation of the per-doc means over sqrt(number of docs), since the
  repeats of one doc are not independent (None with fewer than two docs).

A doc is counted once even though lm-eval logs one line per doc and filter.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lm_eval_noise.leaderboard.results_io import as_number, iter_samples

METRIC = "clean_ppl"
METRIC_KEY = f"{METRIC},none"


def _generation_kwargs(arguments: Any) -> Iterator[dict[str, Any]]:
    # Files hold {"gen_args_i": {"arg_0", "arg_1"}}; in-memory samples hold [(context, kwargs), ...].
    items = arguments.values() if isinstance(arguments, dict) else arguments or []
    for item in items:
        if isinstance(item, dict):
            kwargs = item.get("arg_1")
        elif isinstance(item, (list, tuple)) and len(item) > 1:
            kwargs = item[1]
        else:
            kwargs = None
        if isinstance(kwargs, dict):
            yield kwargs


def doc_clean_ppls(sample: dict[str, Any]) -> list[float] | None:
    """The non-null clean perplexities of one logged doc; None when it has no clean_ppl records at all."""
    records = [
        r
        for kwargs in _generation_kwargs(sample.get("arguments"))
        for r in kwargs.get("noise_samples") or []
        if isinstance(r, dict) and METRIC in r
    ]
    if not records:
        return None
    return [v for v in (as_number(r[METRIC]) for r in records) if v is not None]


def clean_ppl_metric(samples_path: str | Path) -> tuple[float, float | None] | None:
    """(mean, stderr) of clean_ppl over a samples JSONL, or None when its run did not log clean_ppl."""
    per_doc: dict[Any, list[float]] = {}
    for sample in iter_samples(Path(samples_path)):
        doc_id = sample.get("doc_id")
        if doc_id in per_doc:
            continue  # the same doc under another filter
        values = doc_clean_ppls(sample)
        if values is None:
            return None  # clean_ppl is a run-wide model argument: the first doc tells for all
        per_doc[doc_id] = values
    values = [v for vs in per_doc.values() for v in vs]
    if not values:
        return None
    doc_means = [statistics.fmean(vs) for vs in per_doc.values() if vs]
    stderr = statistics.stdev(doc_means) / math.sqrt(len(doc_means)) if len(doc_means) > 1 else None
    return statistics.fmean(values), stderr
