"""Behaviour classes for code: the K samples of one problem grouped by what they do when run.

Each sample comes as its behaviour signature, any hashable plain value (the sandbox's judge records
one per sample from the runs that score Pass@K: the outputs on the problem's test inputs, an exception
counting as an output by its type name; see lm_eval_noise/sandbox/behaviour.py). None marks a sample
that could not be run (a failure of the sandbox itself): it is left out, as an unparsable sample is
left out of the structure classes.

`functional_diversity` is the study's (classes - 1) / (K - 1): 0 when every sample behaves alike, 1 when
no two do. Beside it, *effective* diversity (Shypula et al. 2025, "Evaluating the diversity and quality
of LLM generated content") counts only the samples that pass, so that a method cannot look diverse by
being wrong in many ways: `effective_class_diversity(keys, passed)` applies to behaviour signatures
and to structure keys alike.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence


def _check_keys(keys: object, name: str) -> list:
    if not isinstance(keys, (list, tuple)):
        raise ValueError(f"{name} must be a list of hashable signatures (one per sample), "
                         f"got {type(keys).__name__}")
    for i, key in enumerate(keys):
        if not isinstance(key, Hashable):
            raise ValueError(f"{name}[{i}] must be hashable (a str, int or tuple), got {type(key).__name__}")
    return list(keys)


def behaviour_classes(signatures: Sequence[Hashable | None]) -> int:
    """Number of distinct behaviours among the samples that ran (None left out). Range [0, K]."""
    return len({s for s in _check_keys(signatures, "signatures") if s is not None})


def class_diversity(keys: Sequence[Hashable | None]) -> float:
    """(classes - 1) / (N - 1) over the N samples whose key is not None; NaN when N < 2.

    Range [0, 1], higher is more diverse."""
    known = [k for k in _check_keys(keys, "keys") if k is not None]
    if len(known) < 2:
        return math.nan
    return (len(set(known)) - 1) / (len(known) - 1)


def functional_diversity(signatures: Sequence[Hashable | None]) -> float:
    """(behaviour_classes - 1) / (N - 1), N = samples that ran; NaN with fewer than two."""
    return class_diversity(_check_keys(signatures, "signatures"))


def passing_keys(keys: Sequence[Hashable | None], passed: Sequence[bool]) -> list:
    """The keys of the passing samples only."""
    keys = _check_keys(keys, "keys")
    if not isinstance(passed, (list, tuple)) or len(passed) != len(keys):
        raise ValueError(f"passed must be a list of bools of the same length as keys ({len(keys)}), "
                         f"got {passed!r:.80}")
    return [k for k, ok in zip(keys, passed) if ok]


def effective_class_diversity(keys: Sequence[Hashable | None], passed: Sequence[bool]) -> float:
    """`class_diversity` over the passing samples only; NaN with fewer than two passing."""
    return class_diversity(passing_keys(keys, passed))
