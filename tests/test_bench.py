"""`python -m lm_eval_noise bench`: the generation benchmark's table and JSON (figures are not asserted)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lm_eval_noise import bench
from lm_eval_noise.model import FAST_DECODE_COMPILE

gen = bench.load_benchmark("generation")


def test_generation_bench_reports_every_case_against_stock_hf(tmp_path, tiny_model, monkeypatch, capsys):
    monkeypatch.setitem(FAST_DECODE_COMPILE, "backend", "eager")  # trace only: no C++ code generation
    output = tmp_path / "bench.json"
    code = bench.main(["--only", "generation", "--batch-sizes", "1,2", "--tokens", "3", "--pairs", "2",
                       "--repeat-docs", "3", "--clock", "cpu", "--output", str(output)])
    assert code == 0
    (result,) = json.loads(output.read_text())["results"]
    rows = {row["case"]: row for row in result["rows"]}
    for noise in ("embedding", "hidden", "lm_head", "activation", "weight (per repeat)", "weight (per sample)"):
        assert f"{noise} bs=1" in rows and f"{noise} bs=2" in rows
    assert "activation fast_decode vs eager bs=2" in rows
    assert json.loads(output.read_text())["complete"] is True
    # stock hf against itself: the machine's own spread, which the noise rows' verdicts are read against
    assert rows["hf vs hf bs=1"]["target"] is None and rows["hf vs hf bs=2"]["pairs"] == 2
    timed = [row for row in result["rows"] if row["unit"] == "tokens/s"]
    for row in timed:
        assert row["ours"] > 0 and row["reference"] > 0 and row["pairs"] == 2
        low, high = row["range"]
        assert low <= row["ratio"] <= high  # the median pair ratio lies inside the pairs' range
        assert row["verdict"] == gen.verdict(low, high, row["target"])
    assert rows["weight (per repeat) bs=2"]["target"] == 0.95
    # the tiny model's own targets: 0.9 for the hooks, none for activation noise (llama-mid's 0.97 / 0.85)
    assert rows["embedding bs=2"]["target"] == 0.9 and rows["activation bs=2"]["target"] is None
    assert gen.TARGETS["embedding"] == 0.97 and gen.TARGETS["activation"] == 0.85
    # per-repeat rows time a whole repeat of --repeat-docs docs (batches of 2 and 1 here); other rows one batch
    assert rows["weight (per repeat) bs=2"]["docs"] == 3 and "docs" not in rows["activation bs=2"]
    agreement = [row for row in result["rows"] if "same samples as eager" in row["case"]]
    assert len(agreement) == 4 and all(row["ratio"] == 1.0 for row in agreement)  # fp32: fast == eager
    (memory,) = [row for row in result["rows"] if row["case"].startswith("peak RSS, weight noise")]
    assert memory["ours"] > 0 and memory["reference"] > 0
    assert rows["weight draw + restore"]["ours"] > 0
    assert sum(row["case"] == "weight draw + restore" for row in result["rows"]) == 1  # once per run
    assert "3 new tokens per sample" in result["note"] and "2 interleaved" in result["note"]
    assert "timed by cpu clock" in result["note"]
    assert "weight (per repeat) bs=1" in capsys.readouterr().out


@pytest.mark.parametrize("stop", ["time_pairs", "_agreement"])
def test_a_run_stopped_early_keeps_the_rows_it_measured(tmp_path, tiny_model, monkeypatch, stop):
    monkeypatch.setitem(FAST_DECODE_COMPILE, "backend", "eager")
    original = getattr(gen, stop)
    calls = []

    def stop_on_the_third_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3 or stop == "_agreement":
            raise KeyboardInterrupt  # a time limit, a crash: what ran before must stay on disk
        return original(*args, **kwargs)

    monkeypatch.setattr(gen, stop, stop_on_the_third_call)
    output = tmp_path / "bench.json"
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--only", "generation", "--batch-sizes", "1", "--tokens", "2", "--pairs", "1", "--cases",
                    "hf vs hf,embedding,embedding fast_decode,lm_head", "--output", str(output)])
    saved = json.loads(output.read_text())
    assert saved["complete"] is False
    (result,) = saved["results"]
    measured = ["hf vs hf bs=1", "embedding bs=1"]
    if stop == "_agreement":  # the fast_decode timing survives a failure in the step after it
        measured += ["embedding fast_decode bs=1", "embedding fast_decode vs eager bs=1"]
    assert [row["case"] for row in result["rows"]] == measured
    assert all(row["ours"] > 0 for row in result["rows"])


def test_cases_run_at_their_own_batch_sizes_and_a_spent_budget_starts_no_more(tiny_model, monkeypatch):
    timed = []
    monkeypatch.setattr(gen, "time_pairs", lambda stock, noisy, batch, *a, **k: timed.append(batch) or {
        "ours": 1.0, "reference": 1.0, "ratio": 1.0, "range": [1.0, 1.0], "pairs": 1})
    result = gen.run(batches=(1, 2), tokens=2, cases=("hf vs hf@2", "embedding", "lm_head @ 1",
                                                       "weight (per repeat)@2"), memory=False)
    assert [row["case"] for row in result["rows"]] == ["embedding bs=1", "lm_head bs=1", "hf vs hf bs=2",
                                                       "embedding bs=2", "weight (per repeat) bs=2",
                                                       "weight draw + restore"]
    assert result["not_run"] == [] and "not run" not in result["note"]
    saved = []
    result = gen.run(batches=(1, 2), tokens=2, cases=("embedding", "lm_head@1"), memory=False, budget=1e-9,
                     progress=lambda rows, not_run: saved.append(list(not_run)))
    assert saved[-1] == ["embedding bs=1", "lm_head bs=1", "embedding bs=2"]  # on disk before the memory rows
    assert result["rows"] == []
    assert result["not_run"] == ["embedding bs=1", "lm_head bs=1", "embedding bs=2"]
    assert "not run: embedding bs=1, lm_head bs=1, embedding bs=2." in result["note"]


@pytest.mark.parametrize("cases,needle", [
    (("embedding@1", "embedding@8"), "'embedding' is given twice; give it once with all its batch sizes, e.g. 'embedding@1+8'"),
    (("embedding@",), "in 'embedding@', @ must be followed by batch sizes joined by +"),
    (("embedding@1+",), "in 'embedding@1+', @ must be followed"),
    (("embedding@x",), "@ must be followed by batch sizes joined by +, e.g. 'embedding@1+8'"),
    (("hidden@64",), "--cases: 'hidden@64' names batch sizes not in --batch-sizes (1,8)"),
    (("banana",), "--cases: unknown case 'banana'; valid values: embedding, hidden"),
])
def test_bad_cases_name_the_argument_and_what_is_valid(cases, needle):
    with pytest.raises(SystemExit, match=re.escape(needle)):
        gen.parse_cases(cases, (1, 8))


def test_cases_parse_with_spaces_and_repeated_sizes():
    assert gen.parse_cases(("hf vs hf", " lm_head @ 8+1+8 "), (1, 8)) == {"hf vs hf": (1, 8), "lm_head": (8, 1)}


def test_the_gpu_checks_plan_is_valid_for_its_batch_sizes():
    script = (Path(bench.__file__).parents[1] / "benchmarks" / "gpu_check.sh").read_text()
    plan = ",".join(re.findall(r'^plan="(?:\$plan,)?([^"]*)"', script, re.M))
    batches = tuple(int(b) for b in re.search(r'BATCHES:-([0-9,]+)', script).group(1).split(","))
    at = gen.parse_cases(tuple(plan.split(",")), batches)
    assert at["embedding fast_decode"] == batches and at["weight (per sample)"] == (1,)
    assert all(case in at for case in gen.CASE_ARGS)  # every case of the benchmark, somewhere


def test_the_results_file_is_complete_before_the_table_and_never_half_written(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setattr(gen, "time_pairs", lambda *a, **k: {
        "ours": 1.0, "reference": 1.0, "ratio": 1.0, "range": [1.0, 1.0], "pairs": 1})
    monkeypatch.setattr(bench, "_print_table", lambda results: (_ for _ in ()).throw(RuntimeError("no terminal")))
    output = tmp_path / "bench.json"
    args = ["--only", "generation", "--batch-sizes", "1", "--tokens", "2", "--cases", "embedding,lm_head",
            "--output", str(output)]
    with pytest.raises(RuntimeError, match="no terminal"):
        bench.main(args)
    assert json.loads(output.read_text())["complete"] is True
    replace, calls = bench.os.replace, []

    def fail_the_second_rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError("disk full")
        replace(src, dst)

    monkeypatch.setattr(bench.os, "replace", fail_the_second_rename)
    with pytest.raises(OSError, match="disk full"):
        bench.main(args)
    saved = json.loads(output.read_text())  # the first write, whole: a failed write never truncates it
    assert saved["complete"] is False and [r["case"] for r in saved["results"][0]["rows"]] == ["embedding bs=1"]


def test_a_target_is_met_only_when_the_whole_range_clears_it():
    assert gen.verdict(0.96, 1.02, 0.95) == "met"
    assert gen.verdict(0.90, 1.02, 0.95) == "undecided"
    assert gen.verdict(0.80, 0.94, 0.95) == "not met"
    assert gen.verdict(0.80, 0.94, None) is None


def test_bench_rejects_bad_arguments_naming_the_valid_values(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "generation,speed"])
    assert "valid values: generation, self_bleu, sandbox, sweep, startup" in capsys.readouterr().err
    for bad in ("1,eight", "0,8"):
        with pytest.raises(SystemExit):
            bench.main(["--batch-sizes", bad])
        assert "--batch-sizes: expected comma-separated positive integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--pairs", "0"])
    assert "--pairs: expected a positive number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--repeat-docs", "0"])
    assert "--repeat-docs: expected a positive number of docs" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--cases: unknown case 'banana'; valid values: embedding, hidden"):
        gen.run(cases=("banana",))
    for budget in (0, float("nan")):
        with pytest.raises(SystemExit, match="--budget: expected a positive number of seconds"):
            gen.run(budget=budget)
    with pytest.raises(SystemExit, match="--budget: expected a positive number"):
        bench.main(["--only", "startup,generation", "--budget", "-1"])
    assert "running startup" not in capsys.readouterr().out  # checked before the first benchmark runs
    with pytest.raises(SystemExit, match="--clock: 'sundial' is not valid; valid values: wall, cpu"):
        gen.run(clock="sundial")
    with pytest.raises(SystemExit):
        bench.main(["--tokens", "0"])
    assert "--tokens: expected a positive number" in capsys.readouterr().err
