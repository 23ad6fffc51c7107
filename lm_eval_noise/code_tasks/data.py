"""What every code benchmark shares: reading its rows, the error a missing data file gives, and taking the
code out of a chat-style answer."""

from __future__ import annotations

import os
import re


class DataUnavailable(RuntimeError):
    """A code benchmark's data could not be read (the message names the option for a local copy)."""


def load_rows(sources: list[str], what: str, hint: str, error: type[DataUnavailable] = DataUnavailable):
    """One `datasets.Dataset` from JSONL (or .parquet) files, local or `hf://` ones; `what` names the
    data and `hint` the local-copy option in the one-line `error` a missing file or an unreachable hub
    gives."""
    import datasets

    paths = [os.path.expanduser(s) for s in sources]
    for source in paths:
        if "://" not in source and not os.path.isfile(source):
            raise error(f"{what} {source!r}: no such file ({hint})")
    builder = "parquet" if all(p.endswith(".parquet") for p in paths) else "json"
    try:
        return datasets.load_dataset(builder, data_files={"test": paths}, split="test")
    except Exception as exc:  # network, offline mode, hub errors: many types, one answer
        if not any("://" in p for p in paths):
            raise
        raise error(f"could not fetch {what} from {paths[0]} ({type(exc).__name__}); offline, download it once "
                    f"and give a local copy: {hint}") from None


_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str:
    """The first fenced code block of a chat-style answer, else the text itself."""
    match = _FENCE.search(text)
    return match.group(1) if match else text
