"""argparse types shared by the analysis subcommands (`alpha`, `mechanics`): noise types, scales, numbers."""

from __future__ import annotations

import argparse
import math

from lm_eval_noise.noise import NOISE_TYPES


def noise_list(text: str) -> list[str]:
    """Comma-separated noise types; each item may join types with '+'."""
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


def scale_list(text: str) -> list[float]:
    """Comma-separated noise scales (finite floats >= 0)."""
    scales = []
    for part in (p.strip() for p in text.split(",")):
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not a number; expected finite floats >= 0") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{part!r} is out of range; expected finite floats >= 0")
        scales.append(value)
    return scales


def int_at_least(minimum: int):
    """An argparse type: an integer >= minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected an integer >= {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; expected an integer >= {minimum}")
        return value

    return parse


def positive_float(text: str) -> float:
    """A finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a finite float > 0") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; expected a finite float > 0")
    return value
