"""A sample's behaviour signature: what the judge saw it do on the problem's test inputs, as one hash.

The judge (`judge.py`) records, while it scores a sample, each test input it sent and what came back:
  call / check  the decoded return value of each call of the program's function;
  stdio         each test's stdout (as whitespace-separated tokens, the judge's own notion of equal
                output up to layout);
  any kind      an exception raised by the program counts as an output: its type name.
Samples with equal signatures behaved alike on every input they reached; `metrics/behaviour.py`
counts the classes. No second execution: the signature comes from the runs that decide the verdict.

The observations stop where the judge stops: at the first failing test (HumanEval: the check's first
failing assert). A failing sample's signature is its behaviour on the inputs it reached, which already
sets it apart from the samples that went on. A resource verdict (timeout, memory, output_limit) is a
class of its own whatever came before, since how far a program gets before its time is up depends on
the machine's load, not only on the program; so is syntax_error. A sandbox failure is no behaviour of
the program: no signature (None).

Canonical form: tuples and lists alike (as JSON and the APPS comparison treat them), integral floats
as ints (the check's `==` cannot tell them apart; bools stay apart from ints), NaN as one value,
sets and dict items sorted, so that hash randomisation and insertion order do not split a class.
"""

from __future__ import annotations

import hashlib
import math

# verdicts that end a sample's observations and form one class each
RESOURCE_VERDICTS = ("timeout", "memory", "output_limit", "syntax_error")


def canonical(value) -> object:
    """A hashable, order-independent, repr-stable form of decoded plain data."""
    if value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, bool):
        return ("bool", value)  # True is not the answer 1, though == says so
    if isinstance(value, int):
        if value.bit_length() > 12000:  # past repr's digit limit: its bytes' hash stands for it
            body = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
            return ("int", hashlib.blake2b(body, digest_size=16).hexdigest())
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return ("nan",)
        if value.is_integer() and abs(value) < 2 ** 53:
            return int(value)
        return value
    if isinstance(value, complex):
        return ("complex", canonical(value.real), canonical(value.imag))
    if isinstance(value, (list, tuple)):
        return ("seq", *(canonical(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", *sorted((canonical(v) for v in value), key=repr))
    if isinstance(value, dict):
        return ("dict", *sorted(((canonical(k), canonical(v)) for k, v in value.items()), key=repr))
    return ("repr", repr(value))  # not plain data (the judge only hands plain data here)


def exception_name(detail: str) -> str | None:
    """`ValueError` from a program's error report `ValueError: message`, else None."""
    name, sep, _ = detail.partition(":")
    return name if sep and name.isidentifier() else None


class Trace:
    """The (input, output) pairs the judge observed for one sample, in order."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps: list[tuple] = []

    def returned(self, args, value) -> None:
        self.steps.append((canonical(args), canonical(value)))

    def printed(self, stdin: str, stdout: str) -> None:
        self.steps.append((stdin, tuple(stdout.split())))

    def raised(self, args, reason: str, detail: str) -> None:
        """The program did not answer `args`: an exception (its type), or a verdict with no type."""
        name = exception_name(detail) if reason in ("runtime_error", "failed") else None
        self.steps.append((canonical(args), ("raised", name) if name else ("verdict", reason)))

    def signature(self, reason: str) -> str | None:
        """The hash of the sample's behaviour, given its final verdict."""
        if reason == "sandbox_error" or reason in RESOURCE_VERDICTS:
            return verdict_signature(reason)
        return _digest(tuple(self.steps))


def verdict_signature(reason: str) -> str | None:
    """The signature of a sample known only by its verdict (None for a failure of the sandbox)."""
    return None if reason == "sandbox_error" else _digest(("verdict", reason))


def _digest(key: object) -> str:
    return hashlib.blake2b(repr(key).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
