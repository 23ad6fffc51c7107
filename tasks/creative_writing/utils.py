"""Story continuation (the study's Experiments 3-4; README, The study): how diverse are the K continuations of one opening?

Each opening is asked `repeats` times; the custom filter keeps all K responses (lm-eval's default
filter keeps only the first), and `process_results` scores the K texts of one opening together.
lm-eval then averages the per-opening values (aggregation `mean`, which also gives a stderr). The
pairwise diversity metrics are NaN on an opening with fewer than two non-empty continuations (and
Distinct-N when no continuation is n words long): `nanmean` skips those openings and
`<metric>_measured` counts the openings that entered the mean.

`semantic_diversity` and `semantic_vendi` compare the continuations' meanings through a sentence
embedder (default all-MiniLM-L6-v2, offline; `--metadata '{"embedder": "name or folder"}'` or
$LM_EVAL_NOISE_EMBEDDER for another); `compression_ratio` is gzip's ratio on the joined texts.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from lm_eval_noise.metrics import compression_ratio, distinct_n, edit_distance, self_bleu, semantic_metrics, unique_ratio
from lm_eval_noise.metrics.embedder import with_embedder
from lm_eval_noise.metrics.measured import count, with_measured  # noqa: F401 (count: the YAML's aggregation)
from lm_eval_noise.task_utils import jsonl_splits, keep_all, responses  # noqa: F401 (keep_all: the YAML's filter)

OPENINGS_FILE = Path(__file__).with_name("openings.jsonl")
MAY_BE_UNMEASURABLE = (
    "distinct_1", "distinct_2", "distinct_3", "self_bleu", "self_bleu_multi_ref", "edit_distance",
    "semantic_diversity", "semantic_vendi", "compression_ratio",
)


def load_openings(openings_file: str | None = None, embedder: str | None = None, **metadata) -> datasets.DatasetDict:
    """The embedded story openings as a one-split ("test") DatasetDict.

    lm-eval calls this with the task's metadata (and `--metadata` / model_args) as keywords;
    `--metadata '{"openings_file": "my.jsonl"}'` swaps in another JSONL with an `opening` field,
    and `"embedder"` names the sentence-transformers model of the semantic metrics (carried on
    each doc, where `process_results` reads it).
    """
    return with_embedder(jsonl_splits(test=openings_file or OPENINGS_FILE), embedder)


def process_results(doc: dict, results: list) -> dict[str, float]:
    """Diversity of the K continuations of one opening (all metrics over the same K texts)."""
    texts = [t.strip() for t in responses(results)]
    values = {
        "unique_ratio": unique_ratio(texts),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "distinct_3": distinct_n(texts, 3),
        "self_bleu": self_bleu(texts, method="max"),
        "self_bleu_multi_ref": self_bleu(texts, method="multi_ref"),
        "edit_distance": edit_distance(texts, unit="char"),
        **semantic_metrics(texts, model=doc.get("embedder")),
        "compression_ratio": compression_ratio(texts),
        "mean_length": sum(len(t.split()) for t in texts) / len(texts) if texts else 0.0,
    }
    return with_measured(values, MAY_BE_UNMEASURABLE)
