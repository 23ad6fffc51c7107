"""Unique-sample ratio and Python compile rate."""

from __future__ import annotations

import math
import warnings

from lm_eval_noise.metrics._common import check_texts


def unique_ratio(texts: list[str]) -> float:
    """Distinct strings / K (exact string equality). 1.0: all samples differ; 1/K: all equal
    (K empty strings included: they are K equal answers); NaN for K = 0."""
    texts = check_texts(texts)
    return len(set(texts)) / len(texts) if texts else math.nan


def compiles(code: str) -> bool:
    """Whether Python's `compile()` accepts `code` (never run): the one definition of "compiles".

    The sandbox's verdict `syntax_error` (the code tasks' compile rate) applies the same test to
    the same exceptions inside the sandbox. A SyntaxError (IndentationError included, and
    compile-time errors such as `return` outside a function), a ValueError (a NUL byte), an
    OverflowError, a RecursionError or a MemoryError (absurd nesting) means it does not compile.
    Warnings raised while compiling (invalid escape sequences) are silenced.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            compile(code, "<sample>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
            return False
    return True


def compile_rate(codes: list[str]) -> float:
    """Share of samples that compile (`compiles`); NaN for K = 0."""
    codes = check_texts(codes, "codes")
    if not codes:
        return math.nan
    return sum(compiles(code) for code in codes) / len(codes)
