"""MBPP and MBPP+: the fixture's reference solutions pass and wrong ones fail, MBPP+'s extra inputs catch
what MBPP's three asserts miss, the prompt, the test split and data errors, the tasks and `score-code`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from lm_eval_noise import tasks_dir
from lm_eval_noise.code_tasks import mbpp
from lm_eval_noise.code_tasks.data import DataUnavailable
from lm_eval_noise.code_tasks.lm_tasks import doc_to_text_mbpp_chat, run_mbpp
from lm_eval_noise.code_tasks.score import main as score_main

logging.getLogger("lm_eval").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def rows():
    return {r["task_id"]: r for r in mbpp.load_problems(fixture=True)}


@pytest.fixture(scope="module")
def plus_rows():
    return {r["task_id"]: r for r in mbpp.load_plus_problems(fixture=True)}


def test_reference_solutions_pass(sandbox, rows, plus_rows):
    problems = list(rows.values()) + list(plus_rows.values())
    results = sandbox.run_many([mbpp.job(r, r["code"]) for r in problems])
    assert all(r.passed for r in results), [(p["task_id"], r) for p, r in zip(problems, results) if not r.passed]
    for problem, result in zip(problems, results):  # every call of the tests reached the program
        assert result.tests_run >= len(problem["test_list"]) + (2 if "test" in problem else 0)


@pytest.mark.parametrize("task_id, program, reasons", [
    (9001, "def count_capitalized(sentence):\n    return len(sentence.split())\n", {"failed"}),
    (9002, "def second_largest(nums):\n    return sorted(nums)[-2]\n", {"failed", "runtime_error"}),
    (9003, "def merge_sorted(a, b):\n    return sorted(a + b)\n", {"failed"}),  # a list, not a tuple
    (9004, "def circle_area(r):\n    return 3.14 * r * r\n", {"failed"}),  # outside math.isclose
    (9005, "def char_counts(s)\n    return {}\n", {"syntax_error"}),
    (9006, "def is_square(n):\n    raise ValueError(n)\n", {"runtime_error"}),
    (9006, "def other_name(n):\n    return True\n", {"failed", "runtime_error"}),  # the tests' function is missing
    (9001, "import os\ndef count_capitalized(sentence):\n    os._exit(0)\n", {"failed", "runtime_error"}),
])
def test_wrong_solutions_fail(sandbox, rows, task_id, program, reasons):
    result = sandbox.run(mbpp.job(rows[task_id], program))
    assert not result.passed and result.reason in reasons, result


def test_plus_inputs_catch_what_the_base_tests_miss(sandbox, rows, plus_rows):
    """A second_largest that only handles lists with two distinct values passes MBPP's asserts and fails
    MBPP+'s extra inputs ([1], [])."""
    program = ("def second_largest(nums):\n    s = sorted(set(nums))\n"
               "    return None if len(nums) == 2 and len(s) == 1 else s[-2]\n")
    assert sandbox.run(mbpp.job(rows[9002], program)).passed
    result = sandbox.run(mbpp.job(plus_rows[9002], program))
    assert not result.passed and result.reason in {"runtime_error", "failed"}, result


def test_entry_point_and_prompt(rows, plus_rows):
    assert {tid: mbpp.entry_point(r) for tid, r in rows.items()} == {
        9001: "count_capitalized", 9002: "second_largest", 9003: "merge_sorted", 9004: "circle_area",
        9005: "char_counts", 9006: "is_square"}  # 9004's first call is math.isclose, 9006 asserts `not ...`
    assert mbpp.prompt(rows[9001]) == ('"""\nWrite a function to return the number of words in a sentence that '
                                       "start with a capital letter.\nassert count_capitalized('The Cat sat on "
                                       "Mars') == 3\n\"\"\"\n")
    assert mbpp.prompt(plus_rows[9002]).startswith('"""\nWrite a function to find the second largest')
    chat = doc_to_text_mbpp_chat(rows[9001])
    assert chat.endswith(mbpp.prompt(rows[9001]) + "```") and "```python" in chat


def test_task_filter_takes_completions_and_fenced_answers(rows):
    docs = [rows[9001], rows[9003]]
    resps = [[d["code"], f"Sure:\n```python\n{d['code']}```", "def nope(:\n"] for d in docs]
    out = run_mbpp(resps, docs)
    assert [[r["reason"] for r in recs] for recs in out] == [["passed", "passed", "syntax_error"]] * 2


# ----------------------------------------------------------------------------------------- data
def _write(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def test_the_test_split_is_task_ids_11_to_510(tmp_path, rows):
    base = dict(rows[9001])
    _write(tmp_path / "mbpp.jsonl", [{**base, "task_id": tid} for tid in (1, 10, 11, 12, 510, 511, 974)])
    assert [r["task_id"] for r in mbpp.load_problems(str(tmp_path / "mbpp.jsonl"))] == [11, 12, 510]


def test_missing_data_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv(mbpp.ENV_PLUS_PATH, raising=False)
    with pytest.raises(DataUnavailable, match=mbpp.ENV_PLUS_PATH):
        mbpp.load_plus_problems()
    with pytest.raises(DataUnavailable, match="no such file"):
        mbpp.load_problems(str(tmp_path / "missing.jsonl"))
    _write(tmp_path / "plain.jsonl", [{"task_id": 1, "prompt": "p", "test_list": ["assert f(1) == 1"]}])
    with pytest.raises(DataUnavailable, match=r"MBPP\+ \(evalplus/mbppplus\) data: missing fields \['test'\]"):
        mbpp.load_plus_problems(str(tmp_path / "plain.jsonl"))


def test_tasks_register_and_load(monkeypatch):
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv(mbpp.ENV_PLUS_PATH, str(mbpp.fixture_path(plus=True)))
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False)
    names = ["mbpp_pass_at_k", "mbpp_pass_at_k_chat", "mbpp_plus_pass_at_k", "mbpp_plus_pass_at_k_chat",
             "mbpp_pass_at_k_fixture", "mbpp_plus_pass_at_k_fixture"]
    assert all(n in manager.all_tasks for n in names)
    tasks = manager.load_task_or_group(["mbpp_pass_at_k_fixture", "mbpp_plus_pass_at_k", "mbpp_plus_pass_at_k_chat"])
    assert len(tasks["mbpp_pass_at_k_fixture"].eval_docs) == 6 and len(tasks["mbpp_plus_pass_at_k"].eval_docs) == 3
    for name, fn in [("mbpp_pass_at_k_fixture", "run_mbpp"), ("mbpp_plus_pass_at_k", "run_mbpp_plus"),
                     ("mbpp_plus_pass_at_k_chat", "run_mbpp_plus")]:  # MBPP+ checks get the longer budget
        assert tasks[name].config.filter_list[0]["filter"][0]["filter_fn"].__name__ == fn, name
    chat = tasks["mbpp_plus_pass_at_k_chat"]
    assert chat.doc_to_text(chat.eval_docs[0]).startswith("Write a Python function for this task.")
    config = tasks["mbpp_pass_at_k_fixture"].config
    assert config.repeats == 10 and config.unsafe_code and "\nassert" in config.generation_kwargs["until"]


# ----------------------------------------------------------------------------------------- score-code
def test_score_code_mbpp(tmp_path, rows, plus_rows, capsys):
    samples = [s for r in rows.values() for s in ({"task_id": r["task_id"], "completion": r["code"]},
                                                  {"task_id": r["task_id"], "completion": "def f(x):\n    return x\n"})]
    _write(tmp_path / "s.jsonl", samples)
    assert score_main(["--dataset", "mbpp-fixture", str(tmp_path / "s.jsonl"), "--k", "1,2", "--workers", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pass@1"] == 0.5 and printed["success@1"] == 1.0 and printed["success@2"] == 1.0
    plus = [{"task_id": str(r["task_id"]), "completion": r["code"]} for r in plus_rows.values()]
    _write(tmp_path / "p.jsonl", plus)
    assert score_main(["--dataset", "mbpp-plus", "--mbpp-path", str(mbpp.fixture_path(plus=True)),
                       str(tmp_path / "p.jsonl"), "--k", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pass@1"] == 1.0 and printed["n_problems"] == 3


def test_score_code_mbpp_offline_is_one_clear_line(tmp_path):
    _write(tmp_path / "s.jsonl", [{"task_id": "11", "completion": "x"}])
    env = {k: v for k, v in os.environ.items() if k != mbpp.ENV_PATH}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "lm_eval_noise", "score-code", "--dataset", "mbpp",
                           str(tmp_path / "s.jsonl")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and mbpp.ENV_PATH in lines[0] and "--mbpp-path" in lines[0], proc.stderr[-2000:]
