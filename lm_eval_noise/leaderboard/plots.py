"""`python -m lm_eval_noise plot DIR`: the Pareto "killer plot" and σ-sweep plots from result files.

- `--kind pareto` (default): one point per method (e.g. x = distinct_2, y = pass@5); methods on the
  Pareto frontier (not dominated on both axes, each axis counted in its own better direction) are
  ringed and joined; every point is labelled by its method.
- `--kind sigma`: the metric against the noise scale σ, one line per noise type (and decoding
  setting), runs without noise (greedy, temperature, nucleus) and methods without a σ (a random
  prefix, table-drawn dummy tokens) as horizontal baselines.

Metric names match lm-eval's result keys with or without the ",filter" suffix. Drawn with
matplotlib's Agg canvas (no display needed) and written atomically.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_noise.leaderboard.directions import HIGHER, LOWER, direction_word
from lm_eval_noise.leaderboard.method import fmt_num, format_label
from lm_eval_noise.results.files import ResultsError
from lm_eval_noise.results.schema import display_metric, resolve_metric, short_model_name
from lm_eval_noise.leaderboard.table import collect, method_sort_key
from lm_eval_noise.metrics.measured import measured_name

KIND_COLORS = {"greedy": "#222222", "sampling": "#1f77b4", "noise": "#ff7f0e", "noise+sampling": "#9467bd"}
FRONTIER_COLOR = "#d62728"
SIGMA_AXIS_NAMES = ("noise_scale", "sigma", "σ")


@dataclass
class Point:
    label: str
    method: dict[str, Any]
    x: float
    y: float
    xerr: float | None = None
    yerr: float | None = None


@dataclass
class Selection:
    model: str
    task: str
    records: list[dict]


def select(
    records: list[dict], metrics: Sequence[str | None], task: str | None, model: str | None
) -> tuple[Selection, list[str]]:
    """Pick the model and task holding all `metrics`; returns the selection and the resolved keys.

    A metric of None stands for the task's primary metric (`primary_metric` in records.py: the
    first metric its YAML declares). `model` is a full model name or its short name.
    """
    models = sorted({r["model"]["name"] for r in records})
    if model is None:
        if len(models) > 1:
            raise ResultsError(f"results hold several models; pick one with --model: {', '.join(models)}")
        model = models[0]
    elif model not in models:
        by_short = sorted({r["model"]["name"] for r in records if short_model_name(r["model"]["name"]) == model})
        if len(by_short) != 1:
            raise ResultsError(f"--model {model!r} not found; available: {', '.join(models)}")
        model = by_short[0]
    records = [r for r in records if r["model"]["name"] == model]
    primary = {r["task"]["name"]: r["task"].get("primary_metric") for r in records}

    keys_by_task: dict[str, set[str]] = {}
    for r in records:
        keys_by_task.setdefault(r["task"]["name"], set()).update(r["metrics"])
    if task is not None:
        if task not in keys_by_task:
            raise ResultsError(f"--task {task!r} not found for {model}; available: {', '.join(sorted(keys_by_task))}")
        candidates = [task]
    else:
        candidates = sorted(keys_by_task)

    fits: dict[str, list[str]] = {}
    errors = []
    for t in candidates:
        try:
            fits[t] = [resolve_metric(m if m is not None else _primary(t, primary), keys_by_task[t], where=f"task {t!r}")
                       for m in metrics]
        except ResultsError as e:
            errors.append(str(e))
    if not fits:
        if task is not None:
            raise ResultsError(errors[0])
        listed = "; ".join(f"{t}: {', '.join(sorted(display_metric(k, ks) for k in ks))}" for t, ks in sorted(keys_by_task.items()))
        raise ResultsError(f"no task has all of {', '.join(_names(metrics))}; available metrics per task: {listed}")
    if len(fits) > 1:
        raise ResultsError(f"several tasks have {', '.join(_names(metrics))}; pick one with --task: {', '.join(sorted(fits))}")
    (t, keys), = fits.items()
    return Selection(model, t, [r for r in records if r["task"]["name"] == t]), keys


def _primary(task: str, primary: dict[str, str | None]) -> str:
    name = primary.get(task)
    if not name:
        raise ResultsError(f"task {task!r} declares no metric to use by default; pass --y")
    return name


def _names(metrics: Sequence[str | None]) -> list[str]:
    return [m if m is not None else "its primary metric" for m in metrics]


def pareto_front(xs: Sequence[float], ys: Sequence[float], x_dir: int = HIGHER, y_dir: int = HIGHER) -> list[int]:
    """Indices of the points no other point dominates (at least as good on both axes, better on one).

    A direction of LOWER flips that axis; NEUTRAL counts as HIGHER.
    """
    sx = -1.0 if x_dir == LOWER else 1.0
    sy = -1.0 if y_dir == LOWER else 1.0
    pts = [(sx * x, sy * y) for x, y in zip(xs, ys)]
    front = []
    for i, (xi, yi) in enumerate(pts):
        dominated = any(
            xj >= xi and yj >= yi and (xj > xi or yj > yi) for j, (xj, yj) in enumerate(pts) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def _points(sel: Selection, xkey: str, ykey: str) -> list[Point]:
    """One point per method: its value, or the mean over its seeds (error bar: standard error across
    seeds), labelled with the seed count and "(n=a/b)" where a metric was measurable on a of b prompts."""
    groups: dict[str, list[dict]] = {}
    for r in sel.records:
        if xkey in r["metrics"] and ykey in r["metrics"]:
            groups.setdefault(r["method"]["label"], []).append(r)
    pts = []
    for label, runs in groups.items():
        x, xerr = _mean_and_error([(r["metrics"][xkey]["value"], r["metrics"][xkey]["stderr"]) for r in runs])
        y, yerr = _mean_and_error([(r["metrics"][ykey]["value"], r["metrics"][ykey]["stderr"]) for r in runs])
        if math.isnan(x) or math.isnan(y):
            continue
        seeds = f" ({len(runs)} seeds)" if len(runs) > 1 else ""
        pts.append(Point(label + seeds + counts_note(runs, [xkey, ykey]), runs[0]["method"], x, y, xerr, yerr))
    return pts


def counts_note(runs: list[dict], keys: Sequence[str]) -> str:
    """" (n=a/b)" when a metric of `keys` was measurable on only a of the b prompts of `runs` (the
    lowest a over the keys; both summed over seeds), else ""."""
    worst = None
    for key in keys:
        counts = [r["metrics"].get(measured_name(key)) for r in runs]
        sizes = [r["n_samples"].get("effective") for r in runs]
        if None in counts or None in sizes:
            continue
        a, b = int(sum(c["value"] for c in counts)), int(sum(sizes))
        if a < b and (worst is None or a < worst[0]):
            worst = (a, b)
    return f" (n={worst[0]}/{worst[1]})" if worst else ""


def _new_figure(width: float = 9.0, height: float = 6.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, output: str | Path) -> Path:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=output.suffix or ".png", dir=output.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=150, format=(output.suffix.lstrip(".") or "png"))
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return output


def _axis_label(sel: Selection, key: str) -> str:
    entry = next(r["metrics"][key] for r in sel.records if key in r["metrics"])
    name = display_metric(key, {k for r in sel.records for k in r["metrics"]})
    return f"{name} ({direction_word(entry['direction'])})"


def _direction(sel: Selection, key: str) -> int:
    return next(r["metrics"][key]["direction"] for r in sel.records if key in r["metrics"])


def _place_labels(fig, ax, annotations, points: list[tuple[float, float]]) -> None:
    """Move a label that overlaps a point or an earlier label: left of its point, then lower or higher."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    radius = 5 * fig.dpi / 72
    placed = [Bbox.from_bounds(px - radius, py - radius, 2 * radius, 2 * radius)
              for px, py in ax.transData.transform(points)]
    for ann in annotations:
        box = ann.get_window_extent(renderer)
        step = box.height * 72 / fig.dpi / max(1, ann.get_text().count("\n") + 1)  # one line, in points
        dx, dy = ann.xyann
        for cand in [(dx, dy), (-dx, dy), (dx, dy - 1.2 * step), (-dx, dy - 1.2 * step), (dx, dy + 1.2 * step),
                     (-dx, dy + 1.2 * step), (dx, dy - 2.4 * step), (-dx, dy - 2.4 * step)]:
            ann.xyann = cand
            ann.set_horizontalalignment("left" if cand[0] > 0 else "right")
            box = ann.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
        else:
            ann.xyann = (dx, dy)
            ann.set_horizontalalignment("left")
        placed.append(ann.get_window_extent(renderer))


def plot_pareto(sel: Selection, xkey: str, ykey: str, output: str | Path, title: str | None = None) -> tuple[Path, list[str]]:
    """Draw and save the Pareto plot; returns the path and the frontier's method labels."""
    pts = _points(sel, xkey, ykey)
    if not pts:
        raise ResultsError(f"no run of {sel.task} has both {xkey} and {ykey}")
    front = set(pareto_front([p.x for p in pts], [p.y for p in pts], _direction(sel, xkey), _direction(sel, ykey)))
    fig, ax = _new_figure()
    seen_kinds = set()
    groups: dict[tuple[float, float], list[int]] = {}  # methods at the same spot share one label
    for i, p in enumerate(pts):
        kind = p.method.get("kind", "greedy")
        on_front = i in front
        groups.setdefault((p.x, p.y), []).append(i)
        ax.errorbar(p.x, p.y, xerr=p.xerr, yerr=p.yerr, fmt="none", ecolor="#cccccc", elinewidth=0.8, zorder=1)
        ax.scatter(
            [p.x], [p.y], s=110 if on_front else 45, color=KIND_COLORS.get(kind, "#7f7f7f"),
            edgecolors=FRONTIER_COLOR if on_front else "none", linewidths=2 if on_front else 0, zorder=3,
        )
        seen_kinds.add(kind)
    annotations = []
    for (x, y), members in sorted(groups.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        members.sort(key=lambda i: method_sort_key(pts[i].method))
        on_front = any(i in front for i in members)
        annotations.append(ax.annotate(
            "\n".join(pts[i].label for i in members), (x, y), xytext=(7, 4), textcoords="offset points", fontsize=7.5,
            va="top", fontweight="bold" if on_front else "normal", color="#000000" if on_front else "#555555",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.7}, zorder=4,
        ))
    ordered = sorted((pts[i] for i in front), key=lambda p: (p.x, p.y))
    ax.plot([p.x for p in ordered], [p.y for p in ordered], color=FRONTIER_COLOR, linestyle="--", linewidth=1.5, zorder=2)
    ax.set_xlabel(_axis_label(sel, xkey))
    ax.set_ylabel(_axis_label(sel, ykey))
    ax.set_title(title or f"{short_model_name(sel.model)} · {sel.task}: Pareto frontier")
    ax.grid(True, alpha=0.3)
    ax.margins(x=0.12, y=0.08)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], linestyle="none", marker="o", color=KIND_COLORS.get(k, "#7f7f7f"), label=k)
               for k in KIND_COLORS if k in seen_kinds]
    handles.append(Line2D([], [], color=FRONTIER_COLOR, linestyle="--", marker="o", markerfacecolor="none",
                          markeredgecolor=FRONTIER_COLOR, markeredgewidth=2, label="Pareto frontier"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    fig.canvas.draw()
    _place_labels(fig, ax, annotations, [(p.x, p.y) for p in pts])
    return _save(fig, output), [p.label for p in ordered]


def _series_name(method: dict[str, Any]) -> str:
    noise = dict(method["noise"], scale=None)
    return format_label(noise, method.get("generation") or {})


def _mean_and_error(runs: list[tuple[float, float | None]]) -> tuple[float, float]:
    """One run: its value and stderr. Several seeds: their mean and the standard error across them
    (seeds whose value is NaN, i.e. not measurable on any prompt, are left out)."""
    if len(runs) == 1:
        return runs[0][0], runs[0][1] or 0.0
    values = [v for v, _ in runs if not math.isnan(v)]
    if len(values) < 2:
        return (values[0], 0.0) if values else (math.nan, 0.0)
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, sd / math.sqrt(len(values))


def plot_sigma(sel: Selection, ykey: str, output: str | Path, title: str | None = None) -> tuple[Path, dict[str, list]]:
    """Draw and save metric vs σ; returns the path and {series: [(σ, value), ...]}.

    Runs of the same method with several seeds are drawn as their mean (error bar: standard error
    across seeds); a single run shows its lm-eval stderr.
    """
    series: dict[str, dict[float, list[tuple[float, float | None]]]] = {}
    baselines: dict[str, tuple[dict[str, Any], list[tuple[float, float | None]]]] = {}
    runs_at: dict[tuple[str, float], list[dict]] = {}
    for r in sel.records:
        if ykey not in r["metrics"]:
            continue
        m = r["metrics"][ykey]
        noise = r["method"].get("noise")
        if not noise or noise.get("scale") is None:  # no σ axis: a random prefix
            baselines.setdefault(r["method"]["label"], (r["method"], []))[1].append((m["value"], m["stderr"]))
        elif noise.get("scale") is not None:
            by_scale = series.setdefault(_series_name(r["method"]), {})
            by_scale.setdefault(noise["scale"], []).append((m["value"], m["stderr"]))
            runs_at.setdefault((_series_name(r["method"]), noise["scale"]), []).append(r)
    if not series:
        raise ResultsError(f"no noise run with a single noise scale has {ykey} in {sel.task}")
    curves = {name: [(scale, *_mean_and_error(runs)) for scale, runs in sorted(by_scale.items())]
              for name, by_scale in sorted(series.items())}
    scales = sorted({scale for by_scale in series.values() for scale in by_scale})
    log_x = scales[0] > 0 and scales[-1] / scales[0] >= 10
    fig, ax = _new_figure()
    for name, pts in curves.items():
        ax.errorbar([s for s, _, _ in pts], [v for _, v, _ in pts], yerr=[e for _, _, e in pts],
                    marker="o", capsize=3, label=name)
        for scale, value, _ in pts:  # where the metric was not measurable on every prompt, say on how many
            note = counts_note(runs_at[(name, scale)], [ykey]).strip()
            if note and not math.isnan(value):
                ax.annotate(note, (scale, value), xytext=(4, -10), textcoords="offset points", fontsize=7, color="#555555")
    styles = ["--", ":", "-.", (0, (1, 1)), (0, (6, 2, 1, 2, 1, 2))]
    greys = ["#000000", "#4d4d4d", "#7a7a7a", "#a6a6a6"]
    for k, (method, runs) in enumerate(sorted(baselines.values(), key=lambda b: method_sort_key(b[0]))):
        ax.axhline(_mean_and_error(runs)[0], color=greys[k % len(greys)], linestyle=styles[k % len(styles)],
                   linewidth=1.3, label=f"{method['label']} (baseline)")
    if log_x:
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(scales, [fmt_num(t) for t in scales])
    ax.set_xlabel("noise scale σ (relative)")
    ax.set_ylabel(_axis_label(sel, ykey))
    ax.set_title(title or f"{short_model_name(sel.model)} · {sel.task}: σ sweep")
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside right center", fontsize=8, frameon=False)
    return _save(fig, output), {k: [(s, v) for s, v, _ in pts] for k, pts in curves.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lm_eval_noise plot",
        description="Pareto frontier of methods (--kind pareto) or metric vs noise scale (--kind sigma) from lm-eval results.",
    )
    parser.add_argument("results_dir", help="folder searched recursively for lm-eval results JSONs")
    parser.add_argument("--kind", choices=["pareto", "sigma"], default="pareto")
    parser.add_argument("--x", help="x-axis metric for --kind pareto (e.g. distinct_2); --kind sigma always uses the noise scale")
    parser.add_argument("--y", help="y-axis metric (e.g. pass@5), with or without ',filter'; default: the task's "
                        "primary metric, the first metric its YAML declares in metric_list (pass@1 for the code tasks)")
    parser.add_argument("--output", "-o", help="image path (.png, .pdf, .svg); default: <kind>.png")
    parser.add_argument("--task", help="the task to plot, when several tasks have the metrics")
    parser.add_argument("--model", help="the model to plot, when the results hold several (full or short name)")
    parser.add_argument("--title")
    parser.add_argument("--strict", action="store_true",
                        help="exit with an error when a results JSON under the folder cannot be read "
                        "(default: name it in a warning and go on without it)")
    args = parser.parse_args(argv)
    output = args.output or f"{args.kind}.png"
    try:
        records, _ = collect(args.results_dir, args.strict)
        if args.kind == "pareto":
            if not args.x:
                raise ResultsError("--kind pareto needs --x (e.g. --x distinct_2)")
            sel, (xkey, ykey) = select(records, [args.x, args.y], args.task, args.model)
            path, front = plot_pareto(sel, xkey, ykey, output, args.title)
            print(f"wrote {path} ({sel.model}, {sel.task}, y = {ykey}); Pareto frontier: {', '.join(front)}")
        else:
            if args.x and args.x not in SIGMA_AXIS_NAMES:
                raise ResultsError(f"--kind sigma plots against the noise scale; --x must be left out or one of {', '.join(SIGMA_AXIS_NAMES)}")
            sel, (ykey,) = select(records, [args.y], args.task, args.model)
            path, series = plot_sigma(sel, ykey, output, args.title)
            print(f"wrote {path} ({sel.model}, {sel.task}, y = {ykey}); series: {', '.join(sorted(series))}")
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
