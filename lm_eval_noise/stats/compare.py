"""`python -m lm_eval_noise compare BASELINE OTHER [...]`: paired tests between runs on the same problems.

Each input is a run folder (searched recursively) or a results JSON; its logged samples
(`samples_<task>_<date>.jsonl`, from `--log_samples`) must sit next to the results JSON. For every
task the runs share, problems are paired by `doc_hash` (lm-eval's hash of the document; doc_id
when a run lacks hashes) and runs on different problems are refused. For each metric logged per
problem, each run is compared with the first (the baseline):

- mean difference (other − baseline) and a percentile bootstrap 95% CI of it
  (numpy default_rng(seed), 10,000 resamples by default);
- the Wilcoxon signed-rank p-value (scipy.stats.wilcoxon, two-sided, zero differences dropped;
  defined as 1.0 when all differences are zero);
- that p-value Bonferroni-corrected for the number of comparisons made per metric (runs − 1,
  or --bonferroni-m);
- Cliff's delta of the other run's scores against the baseline's (positive: other tends higher).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lm_eval_noise.leaderboard.directions import arrow, results_direction
from lm_eval_noise.leaderboard.method import describe_method
from lm_eval_noise.results.samples import CLEAN_PPL_KEY, doc_clean_ppl
from lm_eval_noise.results.files import ResultsError, ResultsFile, Unreadable, atomic_write_text, iter_jsonl, read_results_tree
from lm_eval_noise.results.schema import model_info, as_number, display_metric, resolve_metric, run_seed, split_metric_list
from lm_eval_noise.metrics.measured import measured_of
from lm_eval_noise.stats.paired import (
    BOOTSTRAP_ITERATIONS,
    BOOTSTRAP_SEED,
    CONFIDENCE,
    bonferroni,
    bootstrap_ci,
    cliffs_delta,
    wilcoxon_p,
)

MAX_LISTED = 5  # mismatched problem ids shown in an error


@dataclass
class Run:
    """One input: its newest results JSON per task."""

    source: Path
    files: dict[str, ResultsFile]
    label: str
    model: str
    unreadable: list[Unreadable] = field(default_factory=list)

    def why_no(self, task: str) -> str:
        """Why this run has no `task`: a results file that could not be read, or no such run."""
        bad = [b for b in self.unreadable if task in b.tasks] or [b for b in self.unreadable if not b.tasks]
        if bad:
            return f"{self.source}: its results file could not be read ({', '.join(str(b.path) for b in bad)})"
        return f"{self.source} has no {task} run"


@dataclass
class TaskScores:
    """Per-problem scores of one run on one task: {metric key: {problem key: value}}."""

    scores: dict[str, dict[Any, float]]
    problems: dict[Any, tuple[tuple, str]]  # problem key -> (sort key by doc_id, its name in messages)
    non_scalar: set[str]


def load_run(path: str | Path, notes: list[str], strict: bool = False) -> Run:
    """The newest results JSON per task at `path`; refuses a folder mixing several seeds of a task.

    Files that cannot be read are named on stderr (an error with `strict`) and kept on the run,
    so that a task they held is reported as unreadable, not as missing.
    """
    path = Path(path)
    files, unreadable = read_results_tree(path, strict)
    if not files:
        also = f"; could not read {', '.join(str(b.path) for b in unreadable)}" if unreadable else ""
        raise ResultsError(f"no lm-eval results JSON found at {path}{also}")
    by_task: dict[str, list[ResultsFile]] = {}
    for f in files:
        for task in f.tasks:
            by_task.setdefault(task, []).append(f)
    newest: dict[str, ResultsFile] = {}
    for task, candidates in sorted(by_task.items()):
        seeds = {str(run_seed(f.data)) for f in candidates}
        if len(seeds) > 1:
            raise ResultsError(
                f"{path} holds {task} runs with several seeds ({', '.join(sorted(seeds))}); "
                "pass one seed's folder or results JSON per run"
            )
        candidates.sort(key=lambda f: f.date)
        newest[task] = candidates[-1]
        for old in candidates[:-1]:
            notes.append(f"{path}: {task}: using the newest run {candidates[-1].path.name}, not {old.path.name}")
    task = min(newest)
    data = newest[task].data
    return Run(path, newest, describe_method(data, task).label, str(model_info(data)["name"]), unreadable)


def _disambiguate(runs: list[Run]) -> None:
    """Make run labels unique: the model name, else the input path, else a number tells them apart."""
    counts = Counter(r.label for r in runs)
    for r in runs:
        if counts[r.label] > 1:
            models = {x.model for x in runs if x.label == r.label}
            r.label = f"{r.model}: {r.label}" if len(models) > 1 else f"{r.label} [{r.source}]"
    counts = Counter(r.label for r in runs)
    seen: Counter = Counter()
    for r in runs:
        if counts[r.label] > 1:
            seen[r.label] += 1
            r.label = f"{r.label} #{seen[r.label]}"


def read_samples(run: Run, task: str) -> list[dict[str, Any]]:
    """The logged samples of `task` written with the run's results JSON."""
    results = run.files[task]
    path = results.samples_path(task)
    if path is None:
        raise ResultsError(
            f"{run.source}: no samples_{task}_*.jsonl next to {results.path} "
            "(run lm-eval with --log_samples to get per-problem scores)"
        )
    return list(iter_jsonl(path))


def task_scores(samples: list[dict[str, Any]], use_hash: bool) -> TaskScores:
    """Per-problem metric values, keyed by doc_hash (with its occurrence number) or by doc_id."""
    seen: Counter = Counter()
    scores: dict[str, dict[Any, float]] = {}
    problems: dict[Any, tuple[tuple, str]] = {}
    non_scalar: set[str] = set()
    for s in sorted(samples, key=lambda s: (str(s.get("filter", "none")), _sortable(s.get("doc_id")))):
        filt = s.get("filter", "none")
        key: tuple[Any, Any]
        if use_hash:
            base = s["doc_hash"]
            seen[(filt, base)] += 1
            key = (base, seen[(filt, base)])  # a document repeated in the dataset pairs by occurrence
            name = f"doc_id {s.get('doc_id')} (doc_hash {base[:12]})"
        else:
            key = ("doc_id", s.get("doc_id"))
            name = f"doc_id {s.get('doc_id')}"
        problems[key] = (_sortable(s.get("doc_id")), name)
        for metric in s.get("metrics", []):
            value = as_number(s.get(metric))
            if value is None:
                non_scalar.add(f"{metric},{filt}")
                continue
            scores.setdefault(f"{metric},{filt}", {})[key] = value
        ppl = doc_clean_ppl(s)  # hf-noisy's clean_ppl=true: per doc, as the leaderboard averages it
        if ppl is not None:
            scores.setdefault(CLEAN_PPL_KEY, {})[key] = ppl
    return TaskScores(scores, problems, non_scalar)


def _sortable(doc_id: Any) -> tuple:
    return (0, doc_id, "") if isinstance(doc_id, (int, float)) else (1, 0, str(doc_id))


def check_same_problems(task: str, base: Run, base_scores: TaskScores, other: Run, other_scores: TaskScores) -> None:
    a, b = set(base_scores.problems), set(other_scores.problems)
    if a == b:
        return
    only_a = sorted(a - b, key=lambda k: base_scores.problems[k][0])
    only_b = sorted(b - a, key=lambda k: other_scores.problems[k][0])

    def listed(keys, scores):
        shown = ", ".join(scores.problems[k][1] for k in keys[:MAX_LISTED])
        return shown + (f", ... ({len(keys) - MAX_LISTED} more)" if len(keys) > MAX_LISTED else "")

    def who(run):
        return run.label if str(run.source) in run.label else f"{run.label} ({run.source})"

    parts = [f"runs are not on the same problems for task {task!r}: {who(base)} has {len(a)}, {who(other)} has {len(b)}"]
    if only_a:
        parts.append(f"only in {base.label}: {listed(only_a, base_scores)}")
    if only_b:
        parts.append(f"only in {other.label}: {listed(only_b, other_scores)}")
    raise ResultsError("; ".join(parts))


def compare_runs(
    paths: list[str | Path],
    metrics: list[str] | str | None = None,
    tasks: list[str] | None = None,
    iterations: int = BOOTSTRAP_ITERATIONS,
    seed: int = BOOTSTRAP_SEED,
    bonferroni_m: int | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Compare every run with the first; returns {"baseline", "rows", "notes", ...} (see module doc).

    `metrics` is a list of names, or the raw comma-separated --metrics text ("metric,filter" pairs
    are kept together).
    """
    if len(paths) < 2:
        raise ResultsError("compare needs at least two runs: a baseline and one to compare with it")
    notes: list[str] = []
    runs = [load_run(p, notes, strict) for p in paths]
    _disambiguate(runs)
    shared = sorted(set.intersection(*(set(r.files) for r in runs)))

    def why_missing(task: str) -> str:
        return "; ".join(r.why_no(task) for r in runs if task not in r.files)

    if tasks:
        missing = [t for t in tasks if t not in shared]
        if missing:
            reasons = "; ".join(f"{t}: {why_missing(t)}" for t in missing)
            raise ResultsError(f"--tasks {', '.join(missing)} not in every run ({reasons}); "
                               f"tasks all runs share: {', '.join(shared) or '(none)'}")
        shared = list(tasks)
    if not shared:
        listed = "; ".join(f"{r.source}: {', '.join(sorted(r.files))}" for r in runs)
        unread = [str(b.path) for r in runs for b in r.unreadable]
        also = f"; could not read {', '.join(unread)}" if unread else ""
        raise ResultsError(f"the runs share no task: {listed}{also}")
    for t in sorted(set().union(*(r.files for r in runs)) - set(shared)):
        notes.append(f"task {t} skipped: {why_missing(t)}")

    m = bonferroni_m if bonferroni_m is not None else len(runs) - 1
    rows = []
    for task in shared:
        samples = [read_samples(r, task) for r in runs]
        use_hash = all("doc_hash" in x for run_samples in samples for x in run_samples)
        scores = [task_scores(run_samples, use_hash) for run_samples in samples]
        for r, s in zip(runs[1:], scores[1:]):
            check_same_problems(task, runs[0], scores[0], r, s)
        # <metric>_measured marks the problems a metric was measurable on; `n` reports that here.
        available = {k for k in set.intersection(*(set(s.scores) for s in scores)) if measured_of(k) is None}
        for s in scores:
            for key in sorted(k for k in set(s.scores) - available if measured_of(k) is None):
                notes.append(f"{task}: metric {key} skipped (not logged per problem by every run)")
        non_scalar = set.union(*(s.non_scalar for s in scores)) - available
        for key in sorted(non_scalar):
            notes.append(f"{task}: metric {key} skipped (its per-problem values are not numbers)")
        if metrics:
            names = split_metric_list(metrics, available) if isinstance(metrics, str) else metrics
            keys = []
            for name in names:
                try:
                    keys.append(resolve_metric(name, available, where=f"the per-problem scores of {task!r}"))
                except ResultsError as e:
                    if len(shared) == 1 or "ambiguous" in str(e):
                        raise
                    notes.append(f"{task}: {e}")
            keys = list(dict.fromkeys(keys))
        else:
            keys = sorted(available)
        order = sorted(scores[0].problems, key=str)
        for key in keys:
            base = np.array([scores[0].scores[key].get(p, math.nan) for p in order])
            block: list[dict[str, Any]] = []
            for r, s in zip(runs[1:], scores[1:]):
                other = np.array([s.scores[key].get(p, math.nan) for p in order])
                ok = np.isfinite(base) & np.isfinite(other)
                a, b = base[ok], other[ok]
                d = b - a
                lo, hi = bootstrap_ci(d, iterations=iterations, seed=seed)
                block.append(
                    {
                        "task": task,
                        "metric": key,
                        "metric_name": display_metric(key, available),
                        "direction": results_direction(runs[0].files[task].data, task, key),
                        "baseline": runs[0].label,
                        "method": r.label,
                        "n": int(ok.sum()),
                        "n_dropped": int((~ok).sum()),
                        "baseline_mean": float(a.mean()) if a.size else math.nan,
                        "method_mean": float(b.mean()) if b.size else math.nan,
                        "mean_diff": float(d.mean()) if d.size else math.nan,
                        "ci_low": lo,
                        "ci_high": hi,
                        "wilcoxon_p": wilcoxon_p(d),
                        "cliffs_delta": cliffs_delta(a, b),
                    }
                )
            for row, p_adj in zip(block, bonferroni([row["wilcoxon_p"] for row in block], m=m)):
                row["p_bonferroni"] = p_adj
            rows.extend(block)
    return {
        "baseline": runs[0].label,
        "runs": [{"label": r.label, "model": r.model, "source": str(r.source),
                  "results_files": {t: str(f.path) for t, f in sorted(r.files.items())}} for r in runs],
        "bootstrap": {"iterations": iterations, "seed": seed, "confidence": CONFIDENCE, "method": "percentile"},
        "wilcoxon": {"alternative": "two-sided", "zero_method": "wilcox", "all_zero_differences": "p = 1.0"},
        "bonferroni_m": m,
        "rows": rows,
        "notes": notes,
    }


def _f(x: float, digits: int = 3) -> str:
    return "nan" if x != x else f"{x:.{digits}f}"


def _p(x: float) -> str:
    if x != x:
        return "nan"
    return f"{x:.2e}" if 0 < x < 1e-3 else f"{x:.4f}"


def render_markdown(report: dict[str, Any]) -> str:
    m = report["bonferroni_m"]
    header = ["task", "metric", "method vs baseline", "n", "baseline", "method", "Δ mean", "95% CI",
              "Wilcoxon p", f"p × {m} (Bonferroni)", "Cliff's δ"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|"]
    for r in report["rows"]:
        star = " *" if r["p_bonferroni"] < 0.05 else ""
        cells = [r["task"], f"{r['metric_name']} {arrow(r['direction'])}".rstrip(), f"{r['method']} vs {r['baseline']}",
                 str(r["n"]), _f(r["baseline_mean"]), _f(r["method_mean"]), _f(r["mean_diff"]),
                 f"[{_f(r['ci_low'])}, {_f(r['ci_high'])}]", _p(r["wilcoxon_p"]), _p(r["p_bonferroni"]) + star,
                 _f(r["cliffs_delta"])]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    b = report["bootstrap"]
    lines.append("")
    lines.append(
        f"Δ = method − baseline over the same problems; CI: percentile bootstrap, {b['iterations']} resamples, "
        f"seed {b['seed']}; Wilcoxon signed-rank (two-sided; p = 1 when all differences are 0); "
        f"* = Bonferroni-corrected p < 0.05 ({m} comparison{'' if m == 1 else 's'}); Cliff's δ > 0: method tends higher."
    )
    return "\n".join(lines) + "\n"


def _split(text: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when absent)."""
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lm_eval_noise compare",
        description="Paired significance tests of runs against the first (baseline) run, on the same problems.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folders or results JSONs (with their samples_*.jsonl); the first is the baseline")
    parser.add_argument("--metrics", metavar="A,B", help="only these per-problem metrics (with or without ',filter')")
    parser.add_argument("--tasks", metavar="T1,T2", help="only these tasks (default: every task all runs have)")
    parser.add_argument("--json", metavar="OUT.json", help="also write the report as JSON")
    parser.add_argument("--iterations", type=int, default=BOOTSTRAP_ITERATIONS,
                        help=f"bootstrap resamples (default {BOOTSTRAP_ITERATIONS})")
    parser.add_argument("--seed", type=int, default=BOOTSTRAP_SEED, help=f"bootstrap seed (default {BOOTSTRAP_SEED})")
    parser.add_argument("--bonferroni-m", type=int, metavar="M",
                        help="number of comparisons to correct for (default: runs − 1)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with an error when a results JSON in a run folder cannot be read "
                        "(default: name it in a warning and go on without it)")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error(f"--iterations must be >= 1, got {args.iterations}")
    if args.bonferroni_m is not None and args.bonferroni_m < 1:
        parser.error(f"--bonferroni-m must be >= 1, got {args.bonferroni_m}")
    try:
        report = compare_runs(args.runs, args.metrics, _split(args.tasks), args.iterations, args.seed, args.bonferroni_m,
                              args.strict)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in report["notes"]:
        print(f"note: {note}", file=sys.stderr)
    sys.stdout.write(render_markdown(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n")
    return 0
