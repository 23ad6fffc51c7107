"""`python -m lm_eval_noise bench`: the generation benchmark's table and JSON (figures are not asserted)."""

from __future__ import annotations

import json

import pytest

from lm_eval_noise import bench
from lm_eval_noise.model import FAST_DECODE_COMPILE


def test_generation_bench_reports_every_case_against_stock_hf(tmp_path, tiny_model, monkeypatch, capsys):
    monkeypatch.setitem(FAST_DECODE_COMPILE, "backend", "eager")  # trace only: no C++ code generation
    output = tmp_path / "bench.json"
    code = bench.main(["--only", "generation", "--batch-sizes", "1,2", "--tokens", "3", "--output", str(output)])
    assert code == 0
    (result,) = json.loads(output.read_text())["results"]
    cases = [row["case"] for row in result["rows"]]
    for noise in ("embedding", "hidden", "lm_head", "activation", "weight"):
        assert f"{noise} bs=1" in cases and f"{noise} bs=2" in cases
    assert "activation fast_decode vs eager bs=2" in cases
    for row in result["rows"]:
        assert row["ours"] > 0 and row["reference"] > 0
        assert row["ratio"] == pytest.approx(row["ours"] / row["reference"])
    agreement = [row for row in result["rows"] if "same samples as eager" in row["case"]]
    assert len(agreement) == 4 and all(row["ratio"] == 1.0 for row in agreement)  # fp32: fast == eager
    assert "3 new tokens per sample" in result["note"]
    assert "weight bs=1" in capsys.readouterr().out


def test_bench_rejects_bad_arguments_naming_the_valid_values(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "generation,speed"])
    assert "valid values: generation, self_bleu, sandbox, sweep, startup" in capsys.readouterr().err
    for bad in ("1,eight", "0,8"):
        with pytest.raises(SystemExit):
            bench.main(["--batch-sizes", bad])
        assert "--batch-sizes: expected comma-separated positive integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--tokens", "0"])
    assert "--tokens: expected a positive number" in capsys.readouterr().err
