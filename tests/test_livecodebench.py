"""LiveCodeBench: the fixture's reference solutions pass and wrong ones fail in both I/O styles, the
private tests decode without running anything in the data, the release / date window, the prompt, the
lm-eval tasks and `score-code`; and success@k beside pass@k (every code task reports both)."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import os
import pickle
import subprocess
import sys
import zlib

import pytest

from lm_eval_noise import tasks_dir
from lm_eval_noise.code_tasks import livecodebench as lcb
from lm_eval_noise.code_tasks.data import DataUnavailable
from lm_eval_noise.code_tasks.lm_tasks import process_results, run_livecodebench
from lm_eval_noise.code_tasks.score import main as score_main
from lm_eval_noise.code_tasks.score import problem_metrics, summarize
from lm_eval_noise.metrics import pass_at_k, success_at_k
from lm_eval_noise.sandbox.judge import call_outputs_match, exact_outputs_match

logging.getLogger("lm_eval").setLevel(logging.ERROR)
FIXTURE = str(lcb.fixture_path())


@pytest.fixture(scope="module")
def rows():
    return {r["question_id"]: r for r in lcb.load_problems(FIXTURE)}


@pytest.fixture(scope="module")
def solutions():
    with open(lcb.fixture_path().parent / "reference_solutions.json") as f:
        return json.load(f)


# ----------------------------------------------------------------------------------------- the fixture
def test_fixture_is_the_release_format(rows):
    assert len(rows) == 6
    styles = {(r["difficulty"], lcb.func_name(r) is not None) for r in rows.values()}
    assert styles == {(d, s) for d in lcb.DIFFICULTIES for s in (True, False)}  # both styles per difficulty
    encoded = [r for r in rows.values() if not r["private_test_cases"].startswith("[")]
    assert len(encoded) == 5  # one problem keeps plain JSON, which the format also allows
    for r in rows.values():
        for field in ("public_test_cases", "private_test_cases", "metadata"):
            assert isinstance(r[field], str)  # JSON strings, as the release stores them
        tests = lcb.all_tests(r)
        assert len(tests) >= 4 and {t["testtype"] for t in tests} == {"functional" if lcb.func_name(r) else "stdin"}


def test_reference_solutions_pass_and_run_every_test(sandbox, rows, solutions):
    names = [(qid, s) for qid, sols in solutions.items() for s in sols]
    results = sandbox.run_many([lcb.job(rows[qid], s) for qid, s in names])
    failed = [(qid, r) for (qid, _), r in zip(names, results) if not r.passed]
    assert not failed, failed
    for (qid, _), result in zip(names, results):
        assert result.tests_run == len(lcb.all_tests(rows[qid]))


@pytest.mark.parametrize("qid, program, reason", [
    ("lcbfx-001", "print(len(input()))\n", "failed"),                                # stdin, wrong answer
    ("lcbfx-001", "s = input(\n", "syntax_error"),
    ("lcbfx-003", "t = int(input())\nfor _ in range(t):\n    input()\n    print(max(map(int, input().split())))\n",
     "failed"),                                                                       # right on the public test only
    ("lcbfx-005", "raise SystemExit(3)\n", "runtime_error"),
    ("lcbfx-002", "class Solution:\n    def evenIndices(self, nums):\n"
     "        return [i for i, x in enumerate(nums) if x % 2]\n", "failed"),                                                                       # functional, wrong answer
    ("lcbfx-002", "class Solution:\n    def evenIndices(self, nums):\n"
     "        r = [i for i, x in enumerate(nums) if x % 2 == 0]\n        return r[0] if len(r) == 1 else r\n",
     "failed"),  # 0 for [0]: APPS's one-element unwrapping would accept it; LiveCodeBench compares exactly
    ("lcbfx-004", "class Solution:\n    def longestDistinct(self, s):\n        return len(set(s))\n", "failed"),
    ("lcbfx-006", "class Solution:\n    def fewestCoins(self, coins, amount):\n        raise ValueError\n",
     "runtime_error"),
    ("lcbfx-006", "class Solution:\n    def otherName(self, coins, amount):\n        return 0\n", "runtime_error"),
])
def test_wrong_solutions_fail(sandbox, rows, qid, program, reason):
    result = sandbox.run(lcb.job(rows[qid], program))
    assert result.reason == reason, result


def test_functional_answers_compare_exactly_with_tuples_as_lists(sandbox, rows):
    program = ("class Solution:\n    def evenIndices(self, nums):\n"
               "        return tuple(i for i, x in enumerate(nums) if x % 2 == 0)\n")
    assert sandbox.run(lcb.job(rows["lcbfx-002"], program)).passed  # a tuple is not penalised
    assert exact_outputs_match((0, 1), [0, 1]) and not exact_outputs_match(0, [0])
    assert call_outputs_match(0, [0])  # APPS's rule, which LiveCodeBench's tasks do not use


def test_fenced_answers_through_the_task_filter(rows, solutions):
    docs = [rows["lcbfx-001"], rows["lcbfx-002"]]
    resps = [[f"Here it is:\n```python\n{solutions[d['question_id']][0]}```\nDone.", "```python\nprint(\n```"]
             for d in docs]
    out = run_livecodebench(resps, docs)
    assert [[r["reason"] for r in recs] for recs in out] == [["passed", "syntax_error"]] * 2
    metrics = process_results(docs[0], [out[0]])
    assert metrics["pass@1"] == 0.5 and metrics["success@1"] == 1.0  # the first sample passed
    assert "success@5" not in metrics and "pass@5" not in metrics  # only k <= K


# ----------------------------------------------------------------------------------------- decoding
class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _encode(obj) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(obj))).decode()


def test_private_tests_decode_as_the_release_encodes_them():
    tests = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]
    assert lcb.decode_private_tests(lcb.encode_private_tests(tests)) == tests
    assert lcb.decode_private_tests(_encode(json.dumps(tests))) == tests
    assert lcb.decode_private_tests(json.dumps(tests)) == tests  # plain JSON
    assert lcb.decode_private_tests("") == []


def test_a_pickle_that_constructs_anything_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    payload = _encode(_Exploit(marker))
    with pytest.raises(ValueError, match="refused: the data names"):
        lcb.decode_private_tests(payload)
    assert not marker.exists()
    pickle.loads(zlib.decompress(base64.b64decode(payload)))  # what plain pickle.loads would have done
    assert marker.exists()
    for other in (__import__("collections").OrderedDict(a=1), _Exploit, range(3)):  # any global: refused
        with pytest.raises(ValueError, match="refused"):
            lcb.decode_private_tests(_encode(other))
    with pytest.raises(ValueError, match="holds a list, not a string"):  # no find_class, still not a str
        lcb.decode_private_tests(_encode([{"input": "1", "output": "1"}]))
    with pytest.raises(ValueError, match="neither JSON nor base64"):
        lcb.decode_private_tests("not base64 at all!")


# ----------------------------------------------------------------------------------------- which problems
def test_date_window_is_inclusive_and_combines_with_difficulty():
    def ids(**kw):
        return sorted(r["question_id"] for r in lcb.load_problems(FIXTURE, **kw))

    assert ids(start_date="2024-01-20") == ["lcbfx-003", "lcbfx-004", "lcbfx-005", "lcbfx-006"]
    assert ids(end_date="2023-09-03") == ["lcbfx-001", "lcbfx-002"]
    assert ids(start_date="2023-09-04", end_date="2024-06-08") == ["lcbfx-003", "lcbfx-004", "lcbfx-005"]
    assert ids(start_date="2024-01-01", difficulty="hard") == ["lcbfx-005", "lcbfx-006"]
    assert ids(start_date="2024-03-16T12:00:00") == ["lcbfx-004", "lcbfx-005", "lcbfx-006"]  # the day counts


@pytest.mark.parametrize("kwargs, needle", [
    ({"start_date": "2024/01/01"}, "start_date='2024/01/01': must be a date YYYY-MM-DD"),
    ({"end_date": "soon"}, "end_date='soon'"),
    ({"start_date": "2024-05-01", "end_date": "2024-01-01"}, "is after end_date"),
    ({"start_date": "2025-01-01"}, "no LiveCodeBench problems"),
    ({"release_version": "release_v9"}, "release_version='release_v9': must be one of release_v1"),
    ({"difficulty": "expert"}, "difficulty='expert': must be one of easy, medium, hard"),
])
def test_bad_options_are_named(kwargs, needle):
    with pytest.raises(ValueError) as info:
        lcb.load_problems(FIXTURE, **kwargs)
    assert needle in str(info.value)


def test_release_versions_map_to_the_release_files(tmp_path, monkeypatch):
    monkeypatch.delenv(lcb.ENV_PATH, raising=False)
    assert lcb.sources(None, "release_v2") == [f"{lcb.HUB_DIR}/test.jsonl", f"{lcb.HUB_DIR}/test2.jsonl"]
    assert [os.path.basename(s) for s in lcb.sources(str(tmp_path), "v2_v4")] == ["test2.jsonl", "test3.jsonl",
                                                                                 "test4.jsonl"]
    assert lcb.sources(str(tmp_path), "v1") == [str(tmp_path / "test.jsonl")]
    assert len(lcb.sources(None, "release_latest")) == 6
    monkeypatch.setenv(lcb.ENV_PATH, FIXTURE)
    assert lcb.sources(None, "release_v1") == [FIXTURE]  # one file is read whole
    # a folder of release files: release_v1 reads test.jsonl only, release_v2 adds test2.jsonl
    lines = open(FIXTURE).read().splitlines()
    (tmp_path / "test.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (tmp_path / "test2.jsonl").write_text("\n".join(lines[2:]) + "\n")
    assert len(lcb.load_problems(str(tmp_path), "release_v1")) == 2
    assert len(lcb.load_problems(str(tmp_path), "release_v2")) == 6
    assert len(lcb.load_problems(str(tmp_path), "v2")) == 4
    with pytest.raises(DataUnavailable, match="test3.jsonl"):
        lcb.load_problems(str(tmp_path), "release_v3")


def test_prompt_follows_the_problem_style(rows):
    stdin, functional = lcb.prompt(rows["lcbfx-001"]), lcb.prompt(rows["lcbfx-002"])
    assert stdin.startswith("### Question:\nYou are given a string S")
    assert "Read the inputs from stdin" in stdin and "# YOUR CODE HERE" in stdin
    assert "starter code" in functional and "def evenIndices(self, nums: List[int])" in functional
    assert functional.endswith("### Answer: (use the provided format with backticks)\n\n")


# ----------------------------------------------------------------------------------------- lm-eval tasks
def test_tasks_register_and_read_the_window(monkeypatch):
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv(lcb.ENV_PATH, FIXTURE)
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False,
                          metadata={"end_date": "2024-12-31"})
    for name in ("livecodebench", "livecodebench_easy", "livecodebench_medium", "livecodebench_hard",
                 "livecodebench_fixture"):
        assert name in manager.all_tasks, name
    group = next(iter(manager.load_task_or_group(["livecodebench"]).values()))
    sizes = {t.config.task: len(t.eval_docs) for t in group.values()}
    assert sizes == {"livecodebench_easy": 2, "livecodebench_medium": 2, "livecodebench_hard": 2}
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False,
                          metadata={"start_date": "2024-03-01"})
    task = manager.load_task_or_group(["livecodebench_fixture"])["livecodebench_fixture"]
    assert sorted(d["question_id"] for d in task.eval_docs) == ["lcbfx-004", "lcbfx-005", "lcbfx-006"]
    assert task.config.repeats == 10 and task.config.unsafe_code
    assert not task.config.generation_kwargs["do_sample"]


# ----------------------------------------------------------------------------------------- score-code
def _write(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def test_score_code_livecodebench(tmp_path, solutions, capsys):
    samples = []
    for qid, sols in solutions.items():  # wrong first, then right: success@1 = 0, success@2 = 1
        samples += [{"task_id": qid, "completion": "print(0)"},
                    {"task_id": qid, "completion": f"```python\n{sols[0]}```"}]
    _write(tmp_path / "s.jsonl", samples)
    assert score_main(["--dataset", "livecodebench-fixture", str(tmp_path / "s.jsonl"), "--k", "1,2",
                       "--workers", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pass@1"] == 0.5 and printed["pass@2"] == 1.0
    assert printed["success@1"] == 0.0 and printed["success@2"] == 1.0 and printed["n_problems"] == 6
    # the window applies to score-code too: a sample outside it names its task_id
    with pytest.raises(SystemExit):
        score_main(["--dataset", "livecodebench-fixture:hard", "--start-date", "2024-07-01",
                    str(tmp_path / "s.jsonl")])
    assert "lcbfx-001" in capsys.readouterr().err
    for args, needle in [(["--release-version", "v7"], "--release-version 'v7'"),
                         (["--start-date", "May"], "--start-date='May'"),
                         (["--dataset", "livecodebench:expert"], "--dataset")]:
        with pytest.raises(SystemExit):
            score_main(["--dataset", "livecodebench-fixture", *args, str(tmp_path / "s.jsonl")])
        assert needle in capsys.readouterr().err


def test_score_code_livecodebench_offline_is_one_clear_line(tmp_path):
    _write(tmp_path / "s.jsonl", [{"task_id": "1", "completion": "print(1)"}])
    env = {k: v for k, v in os.environ.items() if k != lcb.ENV_PATH}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "lm_eval_noise", "score-code", "--dataset", "livecodebench",
                           "--release-version", "release_v1", str(tmp_path / "s.jsonl")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lcb.ENV_PATH in lines[0] and "--livecodebench-path" in lines[0], proc.stderr[-2000:]


# ----------------------------------------------------------------------------------------- success@k
def test_success_at_k_on_constructed_cases():
    passed = [False, False, True, False]
    assert [success_at_k(passed, k) for k in (1, 2, 3, 4)] == [0.0, 0.0, 1.0, 1.0]
    assert [pass_at_k(4, 1, k) for k in (1, 2, 3, 4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert success_at_k([True] + [False] * 9, 1) == 1.0 and success_at_k([False] * 10, 10) == 0.0
    for bad in (0, 5):
        with pytest.raises(ValueError, match="1 <= k <= n"):
            success_at_k(passed, bad)


def test_pass_at_k_is_success_at_k_averaged_over_sample_orders():
    """pass@k is the expectation of success@k over the order of the n samples: the unbiased estimator."""
    passed = [True, False, False, True, False]
    for k in range(1, 6):
        orders = list(itertools.permutations(passed))
        mean = sum(success_at_k(order, k) for order in orders) / len(orders)
        assert math.isclose(mean, pass_at_k(5, 2, k)), k


def test_success_at_k_in_problem_and_dataset_metrics():
    def recs(flags):
        return [{"passed": f, "reason": "passed" if f else "failed", "behaviour": str(f), "structure": None}
                for f in flags]

    one = problem_metrics(recs([False, True, False]), (1, 2, 5))
    assert one["success@1"] == 0.0 and one["success@2"] == 1.0 and "success@5" not in one
    assert one["pass@1"] == pytest.approx(1 / 3)
    summary = summarize({"a": recs([True, False]), "b": recs([False, False]), "c": recs([False, True])}, [1, 2])
    assert summary["success@1"] == pytest.approx(1 / 3) and summary["success@2"] == pytest.approx(2 / 3)
    assert summary["pass@1"] == pytest.approx(1 / 3) and summary["pass@2"] == pytest.approx(2 / 3)


def test_every_code_task_declares_success_at_k():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    files = [tasks_dir() / "humaneval_pass_at_k" / "humaneval_pass_at_k.yaml",
             tasks_dir() / "apps" / "_apps_template_yaml",
             tasks_dir() / "livecodebench" / "_livecodebench_template_yaml",
             tasks_dir() / "mbpp_pass_at_k" / "mbpp_pass_at_k.yaml"]
    for path in files:
        declared = {m["metric"] for m in yaml.load(path.read_text(), Loader=Loader)["metric_list"]}
        for k in (1, 5, 10, 20, 50, 100):
            assert {f"pass@{k}", f"success@{k}"} <= declared, (path, k)
