"""`python -m lm_eval_noise bench`: the generation benchmark's table and JSON (figures are not asserted)."""

from __future__ import annotations

import json

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
    assert "3 new tokens per sample" in result["note"] and "2 interleaved" in result["note"]
    assert "timed by cpu clock" in result["note"]
    assert "weight (per repeat) bs=1" in capsys.readouterr().out


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
    with pytest.raises(SystemExit, match="--cases: unknown case.s. banana; valid values: embedding, hidden"):
        gen.run(cases=("banana",))
    with pytest.raises(SystemExit, match="--clock: 'sundial' is not valid; valid values: wall, cpu"):
        gen.run(clock="sundial")
    with pytest.raises(SystemExit):
        bench.main(["--tokens", "0"])
    assert "--tokens: expected a positive number" in capsys.readouterr().err
