"""Unique-sample ratio and Python compile rate."""

from __future__ import annotations

import ast
import warnings

from lm_eval_noise.metrics._common import check_texts


def unique_ratio(texts: list[str]) -> float:
    """Distinct strings / K (exact string equality). 1.0: all samples differ; 1/K: all equal; 0.0 for K = 0."""
    texts = check_texts(texts)
    return len(set(texts)) / len(texts) if texts else 0.0


def compile_rate(codes: list[str]) -> float:
    """Share of samples that `ast.parse` accepts as Python source (0.0 for K = 0).

    A SyntaxError (IndentationError included), a ValueError (e.g. a NUL byte in the
    source) or a RecursionError (absurdly deep nesting) counts as a failure. This is
    a parse check only: names, imports and compile-time checks such as `return`
    outside a function are not looked at. Warnings raised while parsing (invalid
    escape sequences) are silenced.
    """
    codes = check_texts(codes, "codes")
    if not codes:
        return 0.0
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
