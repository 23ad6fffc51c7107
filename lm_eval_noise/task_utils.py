"""Small pieces every repeats-based task folder needs: JSONL loading, a keep-all filter, the K texts."""

from __future__ import annotations

from pathlib import Path

import datasets

from lm_eval_noise.results.files import iter_jsonl


def read_jsonl(path: str | Path) -> datasets.Dataset:
    """A local JSONL file as a Dataset (no cache, no network)."""
    return datasets.Dataset.from_list(list(iter_jsonl(path)))


def jsonl_splits(**splits: str | Path) -> datasets.DatasetDict:
    """DatasetDict from split name -> JSONL path, for a task's `custom_dataset`."""
    return datasets.DatasetDict({name: read_jsonl(path) for name, path in splits.items()})


def keep_all(resps, docs):
    """`custom` filter that keeps all K repeats of each prompt (lm-eval's default keeps only the first)."""
    return [list(r) for r in resps]


def responses(results) -> list[str]:
    """The K generations of one doc, from process_results' `results` argument."""
    resps = results[0]
    return [resps] if isinstance(resps, str) else [str(r) for r in resps]
