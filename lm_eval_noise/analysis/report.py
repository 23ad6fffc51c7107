"""Summaries of alpha measurements: a rich table, JSON, CSV and an alpha-vs-position plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lm_eval_noise.analysis.measure import Measurement
from lm_eval_noise.noise.sampling import t_star

CSV_FIELDS = (
    "noise", "scale", "noise_layer", "n", "alpha_mean", "alpha_std", "t_base", "t_star", "alpha_last_position"
)


def _sample_std(values: np.ndarray) -> np.ndarray:
    """Sample standard deviation (ddof=1) over the first axis; 0 when there is a single row."""
    return values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1:])


def _t_star(t_base: float, alphas: np.ndarray) -> np.ndarray:
    return t_star(t_base, torch.as_tensor(alphas, dtype=torch.float64)).numpy()


def summarize(measurement: Measurement, t_base: float) -> dict[str, Any]:
    """Means and sample stds over prompts and draws, T* of the mean alpha, and the per-position curve."""
    last = measurement.last
    alpha_mean = float(last.mean())
    by_position = measurement.alphas.mean(axis=(0, 1))
    setting = measurement.setting
    return {
        "noise": setting.noise,
        "scale": setting.scale,
        "noise_layer": setting.noise_layer,
        "n": int(last.size),
        "alpha_mean": alpha_mean,
        "alpha_std": float(_sample_std(last.reshape(-1))),
        "t_base": t_base,
        "t_star": float(_t_star(t_base, np.array(alpha_mean))),
        "alpha_last_position": float(by_position[-1]),
        "alpha_per_prompt": last.mean(axis=1).tolist(),
        "positions": {
            "alpha_mean": by_position.tolist(),
            "alpha_std": _sample_std(measurement.alphas.reshape(-1, len(by_position))).tolist(),
            "t_star": _t_star(t_base, by_position).tolist(),
        },
    }


def _label(row: dict[str, Any]) -> str:
    layer = f" (layer {row['noise_layer']})" if row["noise_layer"] is not None else ""
    return f"{row['noise']}{layer} σ={row['scale']:g}"


def print_table(rows: list[dict[str, Any]], positions: int) -> None:
    """The summary as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"α at the last prompt position; T* = T_base·√(1+α); {positions} teacher-forced positions")
    for name in ("noise", "scale", "α mean", "α std", "T*", f"α at t={positions - 1}", "n"):
        table.add_column(name, justify="left" if name == "noise" else "right")
    for row in rows:
        layer = f" @{row['noise_layer']}" if row["noise_layer"] is not None else ""
        table.add_row(
            row["noise"] + layer,
            f"{row['scale']:g}",
            f"{row['alpha_mean']:.4g}",
            f"{row['alpha_std']:.3g}",
            f"{row['t_star']:.4f}",
            f"{row['alpha_last_position']:.4g}",
            str(row["n"]),
        )
    Console().print(table)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """The full results, per-position curves included."""
    path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One line per noise type and scale."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_plot(path: Path, rows: list[dict[str, Any]]) -> None:
    """alpha vs teacher-forced position, one line per noise type and scale (log y when any alpha > 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Colour names the noise type and line style the scale, so many lines stay readable.
    kinds = list(dict.fromkeys(row["noise"] for row in rows))
    scales = list(dict.fromkeys(row["scale"] for row in rows))
    colours = plt.get_cmap("tab10")
    styles = ("-", "--", ":", "-.")
    fig, ax = plt.subplots(figsize=(10, 5))
    try:
        for row in rows:
            curve = row["positions"]["alpha_mean"]
            ax.plot(
                range(len(curve)),
                curve,
                color=colours(kinds.index(row["noise"]) % 10),
                linestyle=styles[scales.index(row["scale"]) % len(styles)],
                marker="." if len(curve) < 40 else None,
                label=_label(row),
            )
        if any(value > 0 for row in rows for value in row["positions"]["alpha_mean"]):
            ax.set_yscale("log", nonpositive="mask")  # a scale-0 line (alpha = 0) has nothing to draw on a log axis
        ax.set_xlabel("position t (0 = last prompt token; logits choosing continuation token t)")
        ax.set_ylabel("α = Var(noisy − clean) / Var(clean)")
        ax.set_title("α per token position under teacher forcing (mean over prompts and draws)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
