"""Unique-sample ratio and Python compile rate."""

from __future__ import annotations

import ast
import math
import warnings

from lm_eval_noise.metrics._common import check_texts


def unique_ratio(texts: list[str]) -> float:
    """Distinct strings / K (exact string equality). 1.0: all samples differ; 1/K: all equal
    (K empty strings included: they are K equal answers); NaN for K = 0."""
    texts = check_texts(texts)
    return len(set(texts)) / len(texts) if texts else math.nan


def compile_rate(codes: list[str]) -> float:
    """Share of samples that `ast.parse` accepts as Python source (NaN for K = 0).

    A SyntaxError (IndentationError included), a ValueError (e.g. a NUL byte in the
    source) or a RecursionError (absurdly deep nesting) counts as a failure. This is
    a parse check only: names, imports and compile-time checks such as `return`
    outside a function are not looked at. Warnings raised while parsing (invalid
    escape sequences) are silenced.
    """
    codes = check_texts(codes, "codes")
    if not codes:
        return math.nan
    ok = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for code in codes:
            try:
                ast.parse(code)
            except (SyntaxError, ValueError, RecursionError):
                continue
            ok += 1
    return ok / len(codes)
