"""`python -m lm_eval_noise leaderboard DIR`: every lm-eval result under DIR in one table.

Rows are model × method, columns task/metric; the best value of each column is marked (bold in
Markdown), lower-is-better metrics (Self-BLEU, perplexity...) counted the right way round (see
directions.py). The model column shows a local model path as its folder name.

Runs of one method with different seeds (a sweep's `seeds`, hf-noisy's noise_seed) are not
repeats: by default a row shows their mean ± the standard deviation across seeds and the number of
seeds; a single seed shows "value ± lm-eval's stderr". `--per-seed` gives each seed its own row,
labelled "<method> seed=N". When several runs share model × method × task × seed, the newest (by
the run's date) is kept and the others are reported on stderr and in the JSON under "superseded".
A metric reported with a `<metric>_measured` count (see lm_eval_noise.metrics.measured) shows
"(n=a/b)" where it was measurable on a of the b prompts only; the count is not a column.
Runs logged with hf-noisy's clean_ppl=true and --log_samples also get a task/clean_ppl column (the
mean perplexity of the samples under the noise-free model; see results/samples.py).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lm_eval_noise.leaderboard.directions import HIGHER, LOWER, NEUTRAL, arrow, direction_word
from lm_eval_noise.leaderboard.records import (
    keep_newest,
    row_labels,
    to_leaderboard_record,
    write_leaderboard_records,
)
from lm_eval_noise.results.files import ResultsError, atomic_write_text, read_results_tree
from lm_eval_noise.results.schema import display_metric, resolve_metric, short_model_name, split_metric_list
from lm_eval_noise.metrics.measured import measured_name, measured_of

_KIND_ORDER = {"greedy": 0, "sampling": 1, "noise": 2, "noise+sampling": 3}


@dataclass
class Column:
    task: str
    key: str  # lm-eval's "metric,filter"
    name: str  # metric as shown: without the filter when the task has one filter for it
    direction: int

    @property
    def id(self) -> str:
        return f"{self.task}/{self.name}"


@dataclass
class Row:
    model: str  # the full model name (identity)
    label: str  # the method label, plus " seed=N" for --per-seed rows of a method with several seeds
    method: dict[str, Any]  # Method.to_dict()
    display_model: str = ""  # the short model name shown (the full one where two short names collide)
    seeds: int = 1  # the most seeds any of its cells averages


@dataclass
class Table:
    rows: list[Row]
    columns: list[Column]
    cells: dict[tuple[int, int], dict[str, Any]]  # (row, column) -> metric entry, averaged over seeds
    superseded: list[dict] = field(default_factory=list)
    per_seed: bool = False

    def best_rows(self, col: int) -> list[int]:
        """Rows holding the best value of column `col` (ties all count); none for neutral metrics."""
        d = self.columns[col].direction
        vals = {r: self.cells[(r, col)]["value"] for r in range(len(self.rows)) if (r, col) in self.cells}
        vals = {r: v for r, v in vals.items() if not math.isnan(v)}
        if d == NEUTRAL or not vals:
            return []
        target = max(vals.values()) if d == HIGHER else min(vals.values())
        return [r for r, v in vals.items() if v == target]


def collect(root: str | Path, strict: bool = False) -> tuple[list[dict], list[dict]]:
    """Leaderboard records for every results JSON under `root`, newest per model×method×task.

    Files that cannot be read are named on stderr, and are an error with `strict`.
    """
    files, unreadable = read_results_tree(root, strict)
    if not files:
        also = f" ({len(unreadable)} could not be read)" if unreadable else ""
        raise ResultsError(f"no lm-eval results JSON found under {root}{also}")
    records = [rec for f in files for rec in to_leaderboard_record(f)]
    return keep_newest(records)


def method_sort_key(method: dict[str, Any]) -> tuple:
    """Greedy, then sampling, then noise, then noise with sampling; by type, σ, temperature within."""
    noise = method.get("noise") or {}
    gen = method.get("generation") or {}
    return (
        _KIND_ORDER.get(str(method.get("kind")), 9),
        noise.get("type") or "",
        noise.get("scale") if noise.get("scale") is not None else math.inf,
        gen.get("temperature", 0.0),
        -gen.get("top_p", 1.0),
        method.get("label", ""),
    )


def build_table(
    records: Sequence[dict],
    metrics: Sequence[str] | None = None,
    superseded: list[dict] | None = None,
    per_seed: bool = False,
) -> Table:
    """Arrange records (already one per model×method×task×seed) as rows × columns.

    `metrics` restricts and orders the columns: each entry is a metric name with or without its
    ",filter" suffix, optionally prefixed "task/"; an entry matching no task is an error. Rows are
    model × method with the seeds averaged, or model × method × seed with `per_seed`.
    """
    keys_by_task: dict[str, list[str]] = {}
    directions: dict[tuple[str, str], int] = {}
    for rec in records:
        keys = keys_by_task.setdefault(rec["task"]["name"], [])
        for key, entry in rec["metrics"].items():
            if measured_of(key) is not None and measured_of(key) in rec["metrics"]:
                continue  # a count shown inside its metric's cell
            if key not in keys:
                keys.append(key)
            directions.setdefault((rec["task"]["name"], key), entry["direction"])

    wanted: list[tuple[str, str]] = []
    if metrics:
        for item in metrics:
            wanted.extend(_match_metric(item, keys_by_task))
        wanted = list(dict.fromkeys(wanted))
    else:
        wanted = [(t, k) for t in sorted(keys_by_task) for k in keys_by_task[t]]
    columns = [Column(t, k, display_metric(k, keys_by_task[t]), directions[(t, k)]) for t, k in wanted]

    labels = row_labels(records) if per_seed else [rec["method"]["label"] for rec in records]
    rows_by_key: dict[tuple[str, str], Row] = {}
    for rec, label in zip(records, labels):
        rows_by_key.setdefault((rec["model"]["name"], label), Row(rec["model"]["name"], label, rec["method"]))
    rows = sorted(rows_by_key.values(), key=lambda r: (r.model, *method_sort_key(r.method), r.label))
    shorts: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        shorts[short_model_name(r.model)].add(r.model)
    for r in rows:
        short = short_model_name(r.model)
        r.display_model = short if len(shorts[short]) == 1 else r.model
    row_index = {(r.model, r.label): i for i, r in enumerate(rows)}
    col_index = {(c.task, c.key): j for j, c in enumerate(columns)}

    runs: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for rec, label in zip(records, labels):
        i = row_index[(rec["model"]["name"], label)]
        for key, entry in rec["metrics"].items():
            j = col_index.get((rec["task"]["name"], key))
            if j is not None:
                count = rec["metrics"].get(measured_name(key))
                runs[(i, j)].append({
                    **entry,
                    "measured": None if count is None else count["value"],
                    "n_samples": rec["n_samples"].get("effective"),
                    "seed": rec["seed"]["run"],
                    "date": rec["date_iso"],
                    "source": rec["source"]["results_file"],
                })
    cells = {ij: seed_mean(entries) for ij, entries in runs.items()}
    for (i, _), cell in cells.items():
        rows[i].seeds = max(rows[i].seeds, cell["seeds"])
    return Table(rows, columns, cells, list(superseded or []), per_seed)


def seed_mean(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell from the runs (one per seed) of a model × method × task × metric.

    One run: its value and lm-eval's stderr. Several: the mean of their values (seeds whose value
    is NaN, i.e. not measurable anywhere, are left out) and the sample standard deviation across
    seeds ("sd"; stderr is then None). Measured-prompt counts and sample counts add up over seeds.
    """
    if len(runs) == 1:
        (run,) = runs
        return {**run, "sd": None, "seeds": 1, "seed_list": [run["seed"]], "sources": [run["source"]]}
    values = np.array([r["value"] for r in runs], dtype=np.float64)
    finite = values[~np.isnan(values)]
    counts = [r["measured"] for r in runs]
    sizes = [r["n_samples"] for r in runs]
    return {
        "metric": runs[0]["metric"],
        "filter": runs[0]["filter"],
        "direction": runs[0]["direction"],
        "value": float(finite.mean()) if finite.size else math.nan,
        "stderr": None,
        "sd": float(finite.std(ddof=1)) if finite.size > 1 else None,
        "seeds": len(runs),
        "seed_list": [r["seed"] for r in runs],
        "measured": None if None in counts else sum(counts),
        "n_samples": None if None in sizes else sum(sizes),
        "date": max(r["date"] for r in runs),
        "source": None,
        "sources": [r["source"] for r in runs],
    }


def _match_metric(item: str, keys_by_task: dict[str, list[str]]) -> list[tuple[str, str]]:
    task, sep, name = item.partition("/")
    if sep and task in keys_by_task:
        return [(task, resolve_metric(name, keys_by_task[task], where=f"task {task!r}"))]
    found = []
    for t, keys in sorted(keys_by_task.items()):
        try:
            found.append((t, resolve_metric(item, keys, where=f"task {t!r}")))
        except ResultsError as e:
            if "ambiguous" in str(e):
                raise
    if not found:
        listed = "; ".join(f"{t}: {', '.join(display_metric(k, ks) for k in ks)}" for t, ks in sorted(keys_by_task.items()))
        raise ResultsError(f"--metrics: {item!r} matches no metric; available: {listed}")
    return found


# ---- rendering ---------------------------------------------------------------------------------


def fmt_value(value: float | None) -> str:
    if value is None:
        return ""
    if math.isnan(value):
        return "nan"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3f}"


def fmt_cell(cell: dict[str, Any] | None, row_seeds: int = 1) -> str:
    """"value ± stderr" (one seed) or "mean ± sd" (several), "(n=a/b)" when measured on a of b
    prompts only, and "(k seeds)" when the cell averages fewer seeds than its row."""
    if cell is None:
        return "—"
    text = fmt_value(cell["value"])
    spread = cell.get("sd") if cell.get("seeds", 1) > 1 else cell.get("stderr")
    if spread is not None:
        text += f" ± {fmt_value(spread)}"
    measured, total = cell.get("measured"), cell.get("n_samples")
    if measured is not None and total is not None and measured < total:
        text += f" (n={int(measured)}/{int(total)})"
    if cell.get("seeds", 1) != row_seeds:
        text += f" ({cell.get('seeds', 1)} seed{'s' if cell.get('seeds', 1) != 1 else ''})"
    return text


def _legend(table: Table) -> str:
    spread = "lm-eval's stderr" if table.per_seed else "lm-eval's stderr for one seed, the sd across seeds for several"
    return (f"best in its column; {arrow(HIGHER)} {direction_word(HIGHER)}, {arrow(LOWER)} {direction_word(LOWER)}; "
            f"± = {spread}; (n=a/b) = measurable on a of b prompts")


def _grid(table: Table) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    fixed = ["model", "method"] if table.per_seed else ["model", "method", "seeds"]
    header = fixed + [f"{c.id} {arrow(c.direction)}".rstrip() for c in table.columns]
    best = [set(table.best_rows(j)) for j in range(len(table.columns))]
    body = []
    for i, row in enumerate(table.rows):
        line = [(row.display_model or row.model, False), (row.label, False)]
        if not table.per_seed:
            line.append((str(row.seeds), False))
        line += [(fmt_cell(table.cells.get((i, j)), row.seeds), i in best[j]) for j in range(len(table.columns))]
        body.append(line)
    return header, body


def render_markdown(table: Table) -> str:
    header, body = _grid(table)

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    n_fixed = len(header) - len(table.columns)
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join(["---"] * n_fixed + ["---:"] * len(table.columns)) + "|"]
    for line in body:
        lines.append("| " + " | ".join(f"**{esc(t)}**" if best else esc(t) for t, best in line) + " |")
    lines.append("")
    lines.append(f"**bold** = {_legend(table)}.")
    return "\n".join(lines) + "\n"


def render_rich(table: Table, file=None) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    header, body = _grid(table)
    rt = RichTable(caption=f"bold green = {_legend(table)}")
    n_fixed = len(header) - len(table.columns)
    for j, h in enumerate(header):
        rt.add_column(h, justify="left" if j < n_fixed else "right")
    for line in body:
        rt.add_row(*[f"[bold green]{t}[/]" if best else t for t, best in line])
    Console(file=file).print(rt)


def to_csv(table: Table) -> str:
    """One line per row: model (full name), method, seeds, then per column its value, stderr (one
    seed), sd (across seeds), seeds and measured-prompt count; empty where there is none."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    parts = ("stderr", "sd", "seeds", "measured")
    writer.writerow(["model", "method", "seeds"] + [x for c in table.columns for x in (c.id, *(f"{c.id} {p}" for p in parts))])
    for i, row in enumerate(table.rows):
        out = [row.model, row.label, row.seeds]
        for j in range(len(table.columns)):
            cell = table.cells.get((i, j))
            if cell is None:
                out += [""] * (1 + len(parts))
            else:
                out += [_raw(cell["value"]), _raw(cell.get("stderr")), _raw(cell.get("sd")), cell["seeds"],
                        _raw(cell.get("measured"))]
        writer.writerow(out)
    return buf.getvalue()


def _raw(x: float | None) -> str:
    return "" if x is None else repr(x)


def to_json(table: Table) -> dict[str, Any]:
    best = [set(table.best_rows(j)) for j in range(len(table.columns))]
    return {
        "per_seed": table.per_seed,
        "columns": [
            {
                "id": c.id,
                "task": c.task,
                "metric": c.name,
                "key": c.key,
                "direction": {HIGHER: "higher", LOWER: "lower", NEUTRAL: "none"}[c.direction],
                "best": [f"{table.rows[i].model} | {table.rows[i].label}" for i in sorted(best[j])],
            }
            for j, c in enumerate(table.columns)
        ],
        "rows": [
            {
                "model": row.model,
                "model_short": row.display_model or row.model,
                "method": row.label,
                "seeds": row.seeds,
                "method_detail": row.method,
                "cells": {
                    c.id: {
                        "value": cell["value"],
                        "stderr": cell.get("stderr"),
                        "sd": cell.get("sd"),
                        "seeds": cell["seeds"],
                        "seed_list": cell["seed_list"],
                        "measured": cell.get("measured"),
                        "best": i in best[j],
                        "n_samples": cell.get("n_samples"),
                        "date": cell.get("date"),
                        "source": cell.get("source"),
                        "sources": cell["sources"],
                    }
                    for j, c in enumerate(table.columns)
                    if (cell := table.cells.get((i, j))) is not None
                },
            }
            for i, row in enumerate(table.rows)
        ],
        "superseded": table.superseded,
    }


def superseded_notes(superseded: Iterable[dict]) -> list[str]:
    return [
        f"note: {s['model']} | {s['method']} | {s['task']} | seed {s['seed']}: kept the newest run {s['kept']} ({s['kept_date']}), "
        f"ignored {s['dropped']} ({s['dropped_date']})"
        for s in superseded
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lm_eval_noise leaderboard",
        description="Aggregate every lm-eval results JSON under a folder into one model × method table.",
    )
    parser.add_argument("results_dir", help="folder searched recursively for lm-eval results JSONs (or one such file)")
    parser.add_argument("--csv", metavar="OUT.csv", help="also write the table as CSV (value and stderr columns)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the table as JSON (with best marks and sources)")
    parser.add_argument("--metrics", metavar="A,B", help="only these metrics (with or without ',filter'; 'task/metric' for one task)")
    parser.add_argument("--records", metavar="DIR", help="also write one leaderboard JSON per model/method/task under DIR")
    parser.add_argument("--per-seed", action="store_true",
                        help="one row per seed of a method (default: one row per model × method, mean ± sd over seeds)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with an error when a results JSON under the folder cannot be read "
                        "(default: name it in a warning and go on without it)")
    parser.add_argument("--style", choices=["auto", "markdown", "rich"], default="auto",
                        help="stdout format: Markdown, a rich table, or rich on a terminal and Markdown otherwise (default)")
    args = parser.parse_args(argv)
    try:
        records, superseded = collect(args.results_dir, args.strict)
        known = [k for rec in records for k in rec["metrics"]]
        metrics = split_metric_list(args.metrics, known) if args.metrics else None
        table = build_table(records, metrics, superseded, args.per_seed)
        for note in superseded_notes(superseded):
            print(note, file=sys.stderr)
        style = args.style
        if style == "auto":
            style = "rich" if sys.stdout.isatty() else "markdown"
        if style == "rich":
            render_rich(table)
        else:
            sys.stdout.write(render_markdown(table))
        if args.csv:
            atomic_write_text(args.csv, to_csv(table))
        if args.json:
            atomic_write_text(args.json, json.dumps(to_json(table), indent=2, ensure_ascii=False, default=str) + "\n")
        if args.records:
            paths = write_leaderboard_records(records, args.records)
            print(f"wrote {len(paths)} leaderboard records under {args.records}", file=sys.stderr)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
