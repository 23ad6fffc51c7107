"""Checks on `pretrained=` that can run before any weights load."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def missing_local_path(pretrained: Any) -> str | None:
    """An error message when `pretrained` names a local folder that does not exist, else None.

    A Hub id has at most one '/' ('org/name'); a value that starts with '/', '.', '~' or has more
    '/' than that can only be a path, and transformers would otherwise report it, after a long
    traceback, as a malformed repo id.
    """
    if not isinstance(pretrained, str) or not pretrained:
        return None  # a model object, or lm-eval's own check of an empty value
    path = Path(pretrained).expanduser()
    if path.exists():
        return None
    if pretrained.startswith(("/", ".", "~")) or pretrained.count("/") > 1 or "\\" in pretrained:
        return (f"pretrained={pretrained!r}: no such local folder ({path.resolve()} does not exist); give an existing "
                "model folder or a Hub id such as 'org/name'")
    return None
