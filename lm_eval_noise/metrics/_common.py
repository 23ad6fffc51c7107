"""Argument checks and tokenisation shared by the metric functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Tokenizer = Callable[[str], Sequence[Any]]


def check_texts(texts: object, name: str = "texts") -> list[str]:
    """Return `texts` as a list after checking it is a list (or tuple) of str."""
    if not isinstance(texts, (list, tuple)):
        raise ValueError(f"{name} must be a list of str (the K samples for one prompt), got {type(texts).__name__}")
    for idx, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{name} must be a list of str; {name}[{idx}] is {type(text).__name__}")
    return list(texts)


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {valid}, got {value!r}")
    return value


def non_empty(texts: list[str]) -> list[int]:
    """Indices of the samples that hold more than whitespace.

    The diversity metrics compare these only: an empty sample has no text to be diverse
    with, and counting it would make a method that fails to answer look varied.
    """
    return [i for i, text in enumerate(texts) if text.strip()]


def check_tokenizer(tokenizer: object) -> Tokenizer | None:
    if tokenizer is not None and not callable(tokenizer):
        raise ValueError(f"tokenizer must be None or a callable str -> list[str], got {type(tokenizer).__name__}")
    return tokenizer


def tokenize_all(texts: list[str], tokenizer: Tokenizer | None) -> list[list[Any]]:
    """Split each text with `tokenizer` (default: `str.split()`, i.e. runs of whitespace)."""
    split = check_tokenizer(tokenizer)
    if split is None:
        return [text.split() for text in texts]
    out = []
    for text in texts:
        tokens = split(text)
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
            raise ValueError(f"tokenizer must return a list of tokens, got {type(tokens).__name__}")
        out.append(list(tokens))
    return out
