"""attention.png, propagation.png and trajectories.png of the `mechanics` subcommand."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from lm_eval_noise.mechanics.propagation import site_names

_STYLES = ("-", "--", ":", "-.")
MAX_PROMPTS_DRAWN = 3


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _mean_by(rows: list[dict], key: str, value: str) -> dict[tuple, dict[int, float]]:
    """{(noise, scale): {key: mean of value over samples}}."""
    groups: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[(row["noise"], row["scale"])][row[key]].append(row[value])
    return {g: {k: float(np.mean(v)) for k, v in sorted(d.items())} for g, d in groups.items()}


def _style(settings: list[tuple], setting: tuple, plt) -> dict:
    kinds = list(dict.fromkeys(s[0] for s in settings))
    scales = sorted({s[1] for s in settings})
    return {"color": plt.get_cmap("tab10")(kinds.index(setting[0]) % 10),
            "linestyle": _STYLES[scales.index(setting[1]) % len(_STYLES)], "marker": "."}


def _finish(fig, ax, path: Path, title: str, xlabel: str, ylabel: str, plt) -> None:
    try:
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)


def plot_attention(path: Path, rows: list[dict]) -> None:
    """KL(clean ‖ noisy attention) per layer, one line per noise type and scale (log y when any KL > 0)."""
    plt = _pyplot()
    curves = _mean_by(rows, "layer", "kl")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for setting, curve in curves.items():
        ax.plot(list(curve), list(curve.values()), label=f"{setting[0]} σ={setting[1]:g}",
                **_style(list(curves), setting, plt))
    if any(v > 0 for c in curves.values() for v in c.values()):
        ax.set_yscale("log", nonpositive="mask")  # scale 0 (KL = 0) has nothing to draw on a log axis
    _finish(fig, ax, path, "Attention shift per layer (mean over heads, query positions, prompts, samples)",
            "decoder layer", "KL(clean ‖ noisy) [nats]", plt)


def plot_propagation(path: Path, rows: list[dict]) -> None:
    """‖h_noisy − h_clean‖ / ‖h_clean‖ per site, one line per noise type and scale > 0 (log y)."""
    plt = _pyplot()
    curves = {s: c for s, c in _mean_by(rows, "layer", "rel_norm").items() if s[1] > 0}
    fig, ax = plt.subplots(figsize=(9, 4.5))
    sites = max((len(c) for c in curves.values()), default=0)
    for setting, curve in curves.items():
        ax.plot(list(curve), list(curve.values()), label=f"{setting[0]} σ={setting[1]:g}",
                **_style(list(curves), setting, plt))
    if sites:
        names = site_names(sites - 2)
        ticks = sorted({0, sites - 1, *range(0, sites, max(1, sites // 8))})
        ax.set_xticks(ticks, [names[t].replace("layer ", "") if 0 < t < sites - 1 else names[t] for t in ticks])
    if any(v > 0 for c in curves.values() for v in c.values()):
        ax.set_yscale("log", nonpositive="mask")
    _finish(fig, ax, path, "Perturbation of the residual stream from the embeddings to the head input",
            "site (embeddings, decoder layer, head input)", "‖h_noisy − h_clean‖ / ‖h_clean‖", plt)


def plot_trajectories(path: Path, rows: list[dict], explained: dict[str, list[float]]) -> None:
    """Per prompt (at most three): last-token paths over layers (teacher-forced and free-running) and
    free-running paths over generated positions, on the bases fitted on the clean runs."""
    plt = _pyplot()
    prompts = sorted({r["prompt"] for r in rows})[:MAX_PROMPTS_DRAWN]
    panels = (("layers", "teacher_forced", "last token over layers, teacher-forced"),
              ("layers", "generated", "last token over layers, free-running"),
              ("positions", "generated", "over generated positions, free-running"))
    fig, axes = plt.subplots(len(prompts), 3, figsize=(15, 4.2 * len(prompts)), squeeze=False)
    methods = sorted({(r["method"], r["noise"], r["scale"]) for r in rows if r["method"] == "noise" and r["scale"] > 0},
                     key=lambda m: (m[1], m[2]))
    colours = plt.get_cmap("viridis")
    try:
        for row_index, prompt in enumerate(prompts):
            for col, (view, run, title) in enumerate(panels):
                ax = axes[row_index][col]
                paths: dict[tuple, list[dict]] = defaultdict(list)
                for r in rows:
                    # scale-0 noisy paths are the clean path itself (tested), so they are not drawn again
                    zero = r["method"] == "noise" and r["scale"] == 0
                    if r["prompt"] == prompt and r["view"] == view and r["run"] == run and not zero:
                        paths[(r["method"], r["noise"], r["scale"], r["sample"])].append(r)
                labelled = set()
                for (method, noise, scale, sample), points in paths.items():
                    xs = [p["pc1"] for p in points]
                    ys = [p["pc2"] for p in points]
                    if method == "clean":
                        style = {"color": "black", "linewidth": 2.2, "zorder": 3}
                        name = "clean (greedy)"
                    elif method == "temperature":
                        style = {"color": "tab:red", "linewidth": 0.9, "alpha": 0.7}
                        name = f"temperature T={scale:g}"
                    else:
                        index = methods.index((method, noise, scale))
                        style = {"color": colours(index / max(1, len(methods) - 1) * 0.9), "linewidth": 0.9,
                                 "alpha": 0.7}
                        name = f"{noise} σ={scale:g}"
                    ax.plot(xs, ys, marker=".", markersize=3, label=name if name not in labelled else None, **style)
                    ax.plot(xs[-1:], ys[-1:], marker="o", markersize=4, color=style["color"])
                    labelled.add(name)
                variance = sum(explained.get(view, []))
                ax.set_title(f"prompt {prompt}: {title}", fontsize="medium")
                ax.set_xlabel(f"PC1 (clean basis; PC1+PC2 explain {variance:.0%})")
                ax.set_ylabel("PC2")
                ax.grid(True, alpha=0.3)
                if row_index == 0 and col == 2:
                    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.suptitle("Hidden-state trajectories (dot: end of the path)")
        fig.tight_layout(rect=(0, 0, 1, 0.98))  # panel titles clear of the axis labels above them
        fig.savefig(path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
