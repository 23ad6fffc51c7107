"""The `mechanics` subcommand's files: attention.csv, propagation.csv, trajectories.csv, clusters.csv and
mechanics.json (the plots are in `plots.py`)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

ATTENTION_FIELDS = ("noise", "scale", "sample", "layer", "kl", "entropy_clean", "entropy_noisy")
PROPAGATION_FIELDS = ("noise", "scale", "sample", "layer", "site", "rel_norm", "rel_std", "effective")
TRAJECTORY_FIELDS = ("prompt", "view", "run", "method", "noise", "scale", "sample", "layer", "position", "pc1", "pc2")
CLUSTER_FIELDS = ("noise", "scale", "prompt", "k", "cluster", "size", "silhouette", "outcome", "outcome_classes",
                  "cluster_outcome_classes", "ami")
FILES = {"attention.csv": ATTENTION_FIELDS, "propagation.csv": PROPAGATION_FIELDS,
         "trajectories.csv": TRAJECTORY_FIELDS, "clusters.csv": CLUSTER_FIELDS}


def write_csv(path: Path, fields: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """One CSV with exactly `fields` as its header (NaN written as `nan`)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _strict(value: Any) -> Any:
    """NaN and infinities as null, recursively, for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """mechanics.json: settings, per-setting means, bases, clusters and the generated texts."""
    path.write_text(json.dumps(_strict(payload), indent=2, allow_nan=False, ensure_ascii=False) + "\n",
                    encoding="utf-8")
