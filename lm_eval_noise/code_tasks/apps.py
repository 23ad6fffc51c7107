"""APPS problems and the sandbox job that checks one program against one problem's tests."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lm_eval_noise.code_tasks.data import DataUnavailable, load_rows
from lm_eval_noise.sandbox import Limits, call_job, stdio_job

APPS_HUB_FILE = "hf://datasets/codeparrot/apps/test.jsonl"
ENV_APPS_PATH = "LM_EVAL_NOISE_APPS_PATH"
APPS_DIFFICULTIES = ("introductory", "interview", "competition")
APPS_LIMITS = Limits(timeout_s=4.0)  # the APPS metric's per-test timeout


class AppsUnavailable(DataUnavailable):
    """The APPS data could not be read (the message names the option for a local copy)."""


def fixture_path() -> Path:
    from lm_eval_noise import tasks_dir

    return tasks_dir() / "apps" / "fixture" / "apps_fixture.jsonl"


def resolve_apps_path(path: str | None = None, default: str | None = None) -> str:
    """Where the APPS test split is read from: `path`, else $LM_EVAL_NOISE_APPS_PATH, else `default`, else
    the hub file."""
    return path or os.environ.get(ENV_APPS_PATH) or default or APPS_HUB_FILE


def load_apps_dataset(path: str | None = None, difficulty: str | None = None):
    """The APPS test split (a `datasets.Dataset`) from `resolve_apps_path(path)`, optionally one difficulty.

    Read with the `json` builder, since codeparrot/apps' loading script no longer runs under datasets 5.
    """
    if difficulty is not None and difficulty not in APPS_DIFFICULTIES:
        raise ValueError(f"difficulty {difficulty!r}: must be one of {', '.join(APPS_DIFFICULTIES)}")
    data = load_rows([resolve_apps_path(path)], "APPS test split",
                     f"--apps-path FILE or ${ENV_APPS_PATH}=FILE, codeparrot/apps' test.jsonl", error=AppsUnavailable)
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
