"""Offline prompts for the demo tasks and their per-prompt metrics."""

import re
from pathlib import Path

import datasets

from lm_eval_noise.metrics import distinct_n, unique_ratio
from lm_eval_noise.metrics.measured import count, with_measured  # noqa: F401 (count: the YAML's aggregation)
from lm_eval_noise.task_utils import jsonl_splits, keep_all, responses  # noqa: F401 (keep_all: the YAML's filter)

HERE = Path(__file__).parent
_ANSWER = re.compile(r"####\s*(-?\d+)")


def load(**kwargs) -> datasets.DatasetDict:
    """The story prompts shipped beside this file."""
    return jsonl_splits(test=HERE / "prompts.jsonl")


def load_math(**kwargs) -> datasets.DatasetDict:
    """One-digit additions in the format the tiny demo model was trained on."""
    return jsonl_splits(test=HERE / "math_prompts.jsonl")


def process_results(doc: dict, results: list) -> dict:
    """Diversity of the K samples of one prompt (distinct_2 is NaN with fewer than two non-empty samples)."""
    samples = responses(results)
    return with_measured({"unique": unique_ratio(samples), "distinct_2": distinct_n(samples, 2)}, ["distinct_2"])


def process_math(doc: dict, results: list) -> dict:
    """Accuracy (share of the K samples whose '#### N' is the sum) next to their diversity."""
    samples = responses(results)
    correct = [m is not None and int(m.group(1)) == doc["answer"] for m in map(_ANSWER.search, samples)]
    return {"accuracy": sum(correct) / len(samples), **process_results(doc, results)}


_INT = re.compile(r"-?\d+")


def process_math_chat(doc: dict, results: list) -> dict:
    """As process_math, for a chat model asked for the number only: the answer's last integer counts
    (small models often restate the sum, "1 + 2 = 3")."""
    samples = responses(results)
    last = [_INT.findall(s) for s in samples]
    correct = [bool(ints) and int(ints[-1]) == doc["answer"] for ints in last]
    return {"accuracy": sum(correct) / len(samples), **process_results(doc, results)}
