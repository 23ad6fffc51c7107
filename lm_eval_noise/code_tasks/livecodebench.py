"""LiveCodeBench code generation (Jain et al. 2024): problems in the `code_generation_lite` release
format, their test cases, the release / date window that keeps problems after a model's training
cut-off, the benchmark's prompt, and the sandbox job that judges one program.

A row has `question_title`, `question_content`, `platform`, `question_id`, `contest_id`,
`contest_date` (ISO), `starter_code`, `difficulty` (easy | medium | hard), `public_test_cases` (a JSON
list of {input, output, testtype}), `private_test_cases` (the same list as JSON, or encoded as
base64 -> zlib -> pickle of that JSON string) and `metadata` (JSON; `func_name` for LeetCode-style
problems). `testtype` "stdin" problems run as stdin/stdout programs, "functional" ones call
`Solution().<func_name>` with one JSON value per input line; both are judged as APPS is
(`sandbox/judge.py`), call-based answers by plain equality (tuples as lists), as LiveCodeBench compares them.
Standard output is compared by APPS's rules, which accept equal whitespace tokens across lines and
numbers within a relative 1e-5, where LiveCodeBench's grader compares line by line and wants equal
decimals: the one place a verdict can differ from its own (here more lenient).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import io
import json
import os
import pickle
import zlib
from pathlib import Path

from lm_eval_noise.code_tasks.data import DataUnavailable, load_rows
from lm_eval_noise.sandbox import Limits, call_job, stdio_job

HUB_DIR = "hf://datasets/livecodebench/code_generation_lite"
ENV_PATH = "LM_EVAL_NOISE_LIVECODEBENCH_PATH"
PATH_HINT = f"--metadata '{{\"livecodebench_path\": \"DIR_OR_FILE\"}}', --livecodebench-path or ${ENV_PATH}"
DIFFICULTIES = ("easy", "medium", "hard")
LIMITS = Limits(timeout_s=6.0)  # LiveCodeBench's per-test timeout
DEFAULT_RELEASE = "release_latest"

# The release's files: release_vN is cumulative (test.jsonl .. testN.jsonl), vN is the problems added in
# release N alone, vN_vM releases N..M; release_latest is every file.
_FILES = ["test.jsonl"] + [f"test{i}.jsonl" for i in range(2, 7)]
RELEASE_FILES: dict[str, list[str]] = {f"release_v{i}": _FILES[:i] for i in range(1, 7)}
RELEASE_FILES["release_latest"] = list(_FILES)
RELEASE_FILES.update({f"v{i}": [_FILES[i - 1]] for i in range(1, 7)})
RELEASE_FILES.update({f"v{i}_v{j}": _FILES[i - 1:j] for i in range(1, 7) for j in range(i + 1, 7)})


# ----------------------------------------------------------------------------------------- tests
class _StringOnlyUnpickler(pickle.Unpickler):
    """Refuses every global, so no callable can be reached and nothing can be constructed but the
    built-in containers and scalars pickle encodes directly; the caller then accepts only a str."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refused: the data names {module}.{name}; only a string is accepted")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused: persistent id; only a string is accepted")


def decode_private_tests(raw: str) -> list[dict]:
    """The private test cases: plain JSON, or LiveCodeBench's base64 -> zlib -> pickle -> JSON string,
    read without executing anything in the data (a pickle that names any object is refused)."""
    if not raw:
        return []
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        payload = zlib.decompress(base64.b64decode(raw.encode("ascii"), validate=True))
    except (binascii.Error, zlib.error, UnicodeEncodeError) as exc:
        raise ValueError(f"private_test_cases: neither JSON nor base64/zlib data ({exc})") from None
    try:
        text = _StringOnlyUnpickler(io.BytesIO(payload)).load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"private_test_cases: {exc}") from None
    except Exception as exc:  # malformed pickle streams raise many types
        raise ValueError(f"private_test_cases: not a pickled string ({type(exc).__name__}: {exc})") from None
    if type(text) is not str:
        raise ValueError(f"private_test_cases: the pickle holds a {type(text).__name__}, not a string")
    return json.loads(text)


def encode_private_tests(tests: list[dict]) -> str:
    """The inverse of decode_private_tests, as LiveCodeBench stores them (for fixtures)."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode("ascii")


def _json_field(value, default):
    if value is None or value == "":
        return default
    return json.loads(value) if isinstance(value, str) else value


def all_tests(row: dict) -> list[dict]:
    """Public then private test cases of the row, each {input, output, testtype}."""
    public = _json_field(row.get("public_test_cases"), [])
    private = row.get("private_test_cases")
    private = decode_private_tests(private) if isinstance(private, str) else list(private or [])
    return list(public) + list(private)


def func_name(row: dict) -> str | None:
    """The method to call for a LeetCode-style (functional) problem, else None."""
    return _json_field(row.get("metadata"), {}).get("func_name") or None


_FIELDS = ("public_test_cases", "private_test_cases", "metadata")


def _cases(row: dict) -> tuple[str | None, list]:
    """(func_name, [(args, expected)]) for a functional problem, else (None, [(stdin, stdout)])."""
    tests = all_tests(row)
    name = func_name(row)
    if name:
        return name, [([json.loads(line) for line in t["input"].strip().split("\n")], json.loads(t["output"]))
                      for t in tests]
    return None, [(t["input"], t["output"]) for t in tests]


@functools.lru_cache(maxsize=64)
def _cached_cases(*fields: str) -> tuple[str | None, list]:
    return _cases(dict(zip(_FIELDS, fields)))


def job(row: dict, program: str) -> dict:
    """The sandbox job for `program` against every test of the row (stdin/stdout or call-based). The
    decoded tests are cached: the K samples of a problem share them (private tests can be megabytes)."""
    fields = tuple(row.get(f) for f in _FIELDS)
    name, tests = _cached_cases(*fields) if all(isinstance(f, (str, type(None))) for f in fields) else _cases(row)
    if name:
        return call_job(program, name, tests, match="exact")
    return stdio_job(program, tests)


# ----------------------------------------------------------------------------------------- prompt
_WITH_STARTER = ("You will use the following starter code to write the solution to the problem and "
                 "enclose your code within delimiters.")
_WITHOUT_STARTER = ("Read the inputs from stdin solve the problem and write the answer to stdout (do not "
                    "directly test on the sample inputs). Enclose your code within delimiters as follows. "
                    "Ensure that when the python program runs, it reads the inputs, runs the algorithm and "
                    "writes output to STDOUT.")


def prompt(row: dict) -> str:
    """LiveCodeBench's generic code-generation prompt (Jain et al. 2024)."""
    text = f"### Question:\n{row['question_content']}\n\n"
    if row.get("starter_code"):
        text += f"### Format: {_WITH_STARTER}\n```python\n{row['starter_code']}\n```\n\n"
    else:
        text += f"### Format: {_WITHOUT_STARTER}\n```python\n# YOUR CODE HERE\n```\n\n"
    return text + "### Answer: (use the provided format with backticks)\n\n"


# ----------------------------------------------------------------------------------------- data
def fixture_path() -> Path:
    from lm_eval_noise import tasks_dir

    return tasks_dir() / "livecodebench" / "fixture" / "livecodebench_fixture.jsonl"


def parse_date(value, name: str) -> dt.date | None:
    """A YYYY-MM-DD (or ISO date-time) option as a date; a clear error naming the option otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ValueError(f"{name}={value!r}: must be a date YYYY-MM-DD") from None


def check_release(release_version: str) -> None:
    if release_version not in RELEASE_FILES:
        raise ValueError(f"release_version={release_version!r}: must be one of release_v1..release_v6, "
                         f"release_latest, v1..v6 or vN_vM (e.g. v4_v6)")


def sources(path: str | None, release_version: str) -> list[str]:
    """The files to read: `path` (a folder holding the release's files, or one JSONL file taken whole),
    else $LM_EVAL_NOISE_LIVECODEBENCH_PATH, else the hub's files of `release_version`."""
    check_release(release_version)
    source = path or os.environ.get(ENV_PATH)
    if not source:
        return [f"{HUB_DIR}/{name}" for name in RELEASE_FILES[release_version]]
    source = os.path.expanduser(str(source))
    if os.path.isdir(source):
        return [os.path.join(source, name) for name in RELEASE_FILES[release_version]]
    return [source]


def load_problems(path: str | None = None, release_version: str = DEFAULT_RELEASE, start_date=None,
                 end_date=None, difficulty: str | None = None):
    """The problems (a `datasets.Dataset`) of `release_version` whose contest_date lies in
    [start_date, end_date] (inclusive, either open), optionally of one difficulty."""
    if difficulty is not None and difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty={difficulty!r}: must be one of {', '.join(DIFFICULTIES)}")
    start, end = parse_date(start_date, "start_date"), parse_date(end_date, "end_date")
    if start and end and start > end:
        raise ValueError(f"start_date={start} is after end_date={end}")
    data = load_rows(sources(path, release_version), "LiveCodeBench", PATH_HINT)
    missing = {"question_id", "question_content", "contest_date", "difficulty", "public_test_cases"} - set(
        data.column_names)
    if missing:
        raise DataUnavailable(f"LiveCodeBench data: not the code_generation_lite format (no {sorted(missing)})")
    data = data.filter(lambda date, diff: in_window(date, start, end) and difficulty in (None, diff),
                       input_columns=["contest_date", "difficulty"])
    if len(data) == 0:  # lm-eval would fail on an empty split with an IndexError
        level = f" and difficulty={difficulty!r}" if difficulty else ""
        raise ValueError(f"no LiveCodeBench problems in release_version={release_version!r} with contest_date in "
                         f"[{start or 'any'}, {end or 'any'}]{level}: widen start_date / end_date")
    return data


def in_window(contest_date, start: dt.date | None, end: dt.date | None) -> bool:
    day = parse_date(contest_date, "contest_date")
    if day is None:  # an undated problem cannot be shown to fall after a cut-off: only an open window keeps it
        return start is None and end is None
    return (start is None or day >= start) and (end is None or day <= end)
