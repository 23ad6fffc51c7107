"""The resolved noise configuration and library versions, as recorded in result files."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from lm_eval_noise.noise.config import NoiseConfig


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of the libraries that decide what a run computes."""
    return {name: _version(dist) for name, dist in (
        ("lm_eval", "lm_eval"), ("transformers", "transformers"), ("torch", "torch"), ("lm_eval_noise", "lm-eval-noise"),
    )}


def provenance(config: NoiseConfig, reference_norm: float | None, seeded_sampling: bool) -> dict[str, Any]:
    """The `noise` block of results["config"]: enough to rebuild a leaderboard from result files alone."""
    return {
        **config.as_dict(),
        "active": config.active,
        "embed_norm_value": reference_norm,
        "seeded_sampling": seeded_sampling,
        "versions": versions(),
    }
