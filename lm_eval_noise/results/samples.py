"""The per-sample record hf-noisy logs with each generation: its one writer and its one reader.

lm-eval's samples JSONL has no column for a model's own per-sample data. hf-noisy's record rides in the
request's generation args, which lm-eval logs per doc: `arguments` is
{"gen_args_0": {"arg_0": context, "arg_1": {..., "noise_samples": [record, ...]}}} in files and
[(context, kwargs), ...] in memory. The evaluator passes one request object K times for `repeats`, so
the K records of a doc share that list, in the order the repeats were generated.

A record is a `SampleRecord` written as JSON with a version key "v". Readers accept version 1 and
the unversioned records of earlier runs (the same fields).

The leaderboard and `compare` read clean perplexity from here: per doc, the mean over its non-null
records; the leaderboard's task value is the mean over every non-null sample, and its stderr the
sample standard deviation of the per-doc means over sqrt(number of docs) (the repeats of one doc
are not independent; None with fewer than two docs).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lm_eval_noise.results.files import ResultsError, iter_jsonl

RECORDS_KEY = "noise_samples"
VERSION = 1
CLEAN_PPL = "clean_ppl"  # a metric hf-noisy adds beside the task's own (lower is better)
CLEAN_PPL_KEY = f"{CLEAN_PPL},none"


@dataclasses.dataclass(frozen=True)
class SampleRecord:
    """What hf-noisy knows of one generated sample; a field is None when the run did not measure it."""

    repeat: int | None = None  # which of the doc's K samples (the evaluator's repeat index)
    seed: str | None = None  # the sample's 63-bit seed (seeding.sample_seed) as 16 hex digits
    random_prefix: str | None = None  # the random string put before the prompt (random_prefix=k)
    alpha: float | None = None  # logit-noise ratio on the prompt (temperature_compensation=auto)
    t_star: float | None = None  # the compensated temperature T* used for the sample
    clean_ppl: float | None = None  # perplexity of the sample under the model with noise off (clean_ppl=true)
    weight_draw: str | None = None  # the seed of the weight draw the sample ran under (weight_draw=repeat)

    # None: not measured (left out of the JSON). NaN: measured but undefined, e.g. the perplexity of an
    # empty sample (JSON null).

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION}
        for key, value in dataclasses.asdict(self).items():
            if value is not None:
                out[key] = None if isinstance(value, float) and math.isnan(value) else value
        return out

    @classmethod
    def from_json(cls, data: Any) -> SampleRecord:
        if not isinstance(data, dict):
            raise ResultsError(f"a {RECORDS_KEY} record must be a JSON object, got {type(data).__name__}")
        version = data.get("v", VERSION)
        if version != VERSION:
            raise ResultsError(f"{RECORDS_KEY} record version {version!r} is not readable here (this version reads {VERSION})")
        fields = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: (math.nan if v is None and k in _MEASURES else v) for k, v in data.items() if k in fields}
        return cls(**values)

    def merged(self, **values: Any) -> SampleRecord:
        return dataclasses.replace(self, **values)


_MEASURES = {"alpha", "t_star", "clean_ppl"}


def attach(generation_kwargs: dict[str, Any], record: SampleRecord) -> None:
    """Log `record` with its request: lm-eval writes the request's generation args into the samples file."""
    generation_kwargs.setdefault(RECORDS_KEY, []).append(record.to_json())


def detach(requests: Any) -> None:
    """Drop the records an earlier call left on these requests, before they are generated again: the
    records then describe the latest generation (K of them, not K per call), and no generation
    argument reaches the model that it does not know."""
    for request in requests:
        request.args[1].pop(RECORDS_KEY, None)


def _generation_kwargs(arguments: Any) -> Iterator[dict[str, Any]]:
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


def doc_records(sample: dict[str, Any]) -> list[SampleRecord]:
    """The records of one logged doc (a line of a samples file, or lm-eval's in-memory sample), in repeat order."""
    return [SampleRecord.from_json(r) for kwargs in _generation_kwargs(sample.get("arguments"))
            for r in kwargs.get(RECORDS_KEY) or []]


def doc_clean_ppls(sample: dict[str, Any]) -> list[float] | None:
    """The finite clean perplexities of one doc's samples; None when the run did not measure them."""
    records = [r.clean_ppl for r in doc_records(sample)]
    if all(v is None for v in records):
        return None
    return [float(v) for v in records if v is not None and math.isfinite(v)]


def doc_clean_ppl(sample: dict[str, Any]) -> float | None:
    """The mean clean perplexity of one doc's samples (`compare`'s per-problem score), or None."""
    values = doc_clean_ppls(sample)
    return statistics.fmean(values) if values else None


def clean_ppl_metric(samples_path: str | Path) -> tuple[float, float | None] | None:
    """(mean, stderr) of clean_ppl over a samples JSONL, or None when its run did not log clean_ppl."""
    per_doc: dict[Any, list[float]] = {}
    for sample in iter_jsonl(Path(samples_path)):
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
