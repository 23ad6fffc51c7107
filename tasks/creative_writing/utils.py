"""Story continuation (seed 000, Experiments 3-4): how diverse are the K continuations of one opening?

Each opening is asked `repeats` times; the custom filter keeps all K responses (lm-eval's default
filter keeps only the first), and `process_results` scores the K texts of one opening together.
lm-eval then averages the per-opening values (aggregation `mean`, which also gives a stderr).
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets

from lm_eval_noise.metrics import distinct_n, edit_distance, self_bleu, unique_ratio

OPENINGS_FILE = Path(__file__).with_name("openings.jsonl")


def load_openings(openings_file: str | None = None, **metadata) -> datasets.DatasetDict:
    """The embedded story openings as a one-split ("test") DatasetDict.

    lm-eval calls this with the task's metadata (and `--metadata` / model_args) as keywords;
    `--metadata '{"openings_file": "my.jsonl"}'` swaps in another JSONL with an `opening` field.
    """
    path = Path(openings_file).expanduser() if openings_file else OPENINGS_FILE
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def keep_all(resps, docs):
    """Filter that keeps every one of the K repeats (used with lm-eval's `custom` filter)."""
    return [list(r) for r in resps]


def responses(results) -> list[str]:
    """The K generations of one doc, whitespace-trimmed, from process_results' `results` argument."""
    resps = results[0]
    resps = [resps] if isinstance(resps, str) else resps
    return [str(r).strip() for r in resps]


def process_results(doc: dict, results: list) -> dict[str, float]:
    """Diversity of the K continuations of one opening (all metrics over the same K texts)."""
    texts = responses(results)
    return {
        "unique_ratio": unique_ratio(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "self_bleu": self_bleu(texts, method="max"),
        "self_bleu_multi_ref": self_bleu(texts, method="multi_ref"),
        "edit_distance": edit_distance(texts, unit="char"),
        "mean_length": sum(len(t.split()) for t in texts) / len(texts) if texts else 0.0,
    }
