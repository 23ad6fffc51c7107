"""Offline prompts for the demo tasks and their per-prompt metrics."""

import re
from pathlib import Path

import datasets

from lm_eval_noise.metrics import distinct_n, unique_ratio

_ANSWER = re.compile(r"####\s*(-?\d+)")


def _load(name: str) -> datasets.DatasetDict:
    path = Path(__file__).with_name(name)
    return datasets.DatasetDict({"test": datasets.load_dataset("json", data_files=str(path), split="train")})


def load(**kwargs) -> datasets.DatasetDict:
    """The story prompts shipped beside this file."""
    return _load("prompts.jsonl")


def load_math(**kwargs) -> datasets.DatasetDict:
    """One-digit additions in the format the tiny demo model was trained on."""
    return _load("math_prompts.jsonl")


def _samples(results: list) -> list[str]:
    return results[0] if results and isinstance(results[0], list) else results


def process_results(doc: dict, results: list) -> dict:
    """Diversity of the K samples of one prompt (results holds the K kept responses)."""
    samples = _samples(results)
    return {"unique": unique_ratio(samples), "distinct_2": distinct_n(samples, 2)}


def process_math(doc: dict, results: list) -> dict:
    """Accuracy (share of the K samples whose '#### N' is the sum) next to their diversity."""
    samples = _samples(results)
    correct = [m is not None and int(m.group(1)) == doc["answer"] for m in map(_ANSWER.search, samples)]
    return {"accuracy": sum(correct) / len(samples), **process_results(doc, results)}
