"""Offline prompts for the demo task and its per-prompt diversity metrics."""

from pathlib import Path

import datasets

from lm_eval_noise.metrics import distinct_n, unique_ratio


def load(**kwargs) -> datasets.DatasetDict:
    """The prompts shipped beside this file."""
    return datasets.DatasetDict(
        {"test": datasets.load_dataset("json", data_files=str(Path(__file__).with_name("prompts.jsonl")), split="train")}
    )


def process_results(doc: dict, results: list) -> dict:
    """Diversity of the K samples of one prompt (results holds the K kept responses)."""
    samples = results[0] if results and isinstance(results[0], list) else results
    return {"unique": unique_ratio(samples), "distinct_2": distinct_n(samples, 2)}
