"""The one place that turns user text into values: booleans and the command-line argument types.

Errors name the value and the valid values. `as_bool` raises the caller's error class (NoiseConfigError
for model args, SweepConfigError for sweep files); the argparse types raise ArgumentTypeError, which
argparse reports with the option's name.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from lm_eval_noise.noise.config import NOISE_TYPES

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def as_bool(name: str, value: Any, error: type[Exception] = ValueError) -> bool:
    """True/False from a bool or the text "true"/"false" (also 1/0, yes/no, any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise error(f"{name}={value!r} is not a boolean; valid values: true, false")


def _number(text: str, kind: Callable[[str], Any], expected: str):
    try:
        return kind(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected {expected}") from None


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum."""
    expected = f"an integer >= {minimum}"

    def parse(text: str) -> int:
        value = _number(text, int, expected)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; expected {expected}")
        return value

    return parse


positive_int = int_at_least(1)


def positive_float(text: str) -> float:
    """An argparse type: a finite float > 0."""
    value = _number(text, float, "a finite float > 0")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; expected a finite float > 0")
    return value


def non_negative_floats(text: str) -> list[float]:
    """An argparse type: comma-separated finite floats >= 0 (noise scales)."""
    values = []
    for part in text.split(","):
        value = _number(part, float, "comma-separated finite floats >= 0")
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{part.strip()!r} is out of range; expected finite floats >= 0")
        values.append(value)
    return values


def positive_ints(text: str) -> list[int]:
    """An argparse type: comma-separated integers >= 1 (the k of pass@k)."""
    values = [_number(part, int, "comma-separated integers >= 1, e.g. 1,5,10") for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers >= 1, e.g. 1,5,10")
    return values


def noise_list(text: str) -> list[str]:
    """An argparse type: comma-separated noise types, each item possibly joining types with '+'."""
    items = [item.strip().lower() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"no noise type given; valid values: {', '.join(NOISE_TYPES)}")
    for item in items:
        for kind in item.split("+"):
            if kind not in NOISE_TYPES:
                raise argparse.ArgumentTypeError(
                    f"{kind!r} is not a noise type; valid values: {', '.join(NOISE_TYPES)} "
                    "(comma-separated; join types with '+' to inject them together)"
                )
    if len(set(items)) != len(items):
        raise argparse.ArgumentTypeError(f"{text!r} names a noise type twice")
    return items
