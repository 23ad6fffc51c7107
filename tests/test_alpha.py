"""The alpha / T* analysis tool on the tiny model: measurement, hand-checked lm_head alpha, CLI outputs, errors."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_noise.analysis.alpha import main
from lm_eval_noise.analysis.measure import Measurement, Setting, draw_seed, last_logits, measure, prepare
from lm_eval_noise.analysis.prompts import read_prompts
from lm_eval_noise.analysis.report import summarize
from lm_eval_noise.noise import NOISE_TYPES, NoiseRuntime, NoiseState
from lm_eval_noise.noise.counter import normal, position_hash, position_keys, row_keys, site_id

PROMPTS = ["Once upon a time the cat", "Question: What is 3 plus 4? Answer:"]
POSITIONS = 6
DRAWS = 2


@pytest.fixture(scope="module")
def loaded(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def cases(loaded):
    model, tokenizer = loaded
    return [prepare(model, tokenizer, prompt, POSITIONS) for prompt in PROMPTS]


def _setting(kind: str, scale: float) -> Setting:
    return Setting(kind, scale, 1 if kind == "hidden" else None)


@pytest.mark.parametrize("kind", NOISE_TYPES)
def test_alpha_is_zero_at_scale_zero_and_grows_with_scale(loaded, cases, kind):
    scales = [0.0, 0.003, 0.03, 0.3]
    results = measure(loaded[0], cases, [_setting(kind, s) for s in scales], DRAWS)
    assert np.all(results[0].alphas == 0.0)
    last_means = [m.last.mean() for m in results]
    assert all(a < b for a, b in zip(last_means, last_means[1:])), last_means
    curve_means = [m.alphas.mean() for m in results]
    assert all(a < b for a, b in zip(curve_means, curve_means[1:])), curve_means


def test_lm_head_alpha_matches_hand_computation(loaded, cases):
    model, _ = loaded
    scale = 0.05
    [result] = measure(model, cases, [Setting("lm_head", scale)], DRAWS, noise_seed=7)
    case = cases[1]
    # Built here, not by the tool: position 0 must be the last prompt token.
    ids = torch.cat([case.prompt_ids, case.continuation[: POSITIONS - 1]])[None]
    captured = []
    head = model.get_output_embeddings()
    handle = head.register_forward_pre_hook(lambda m, args: captured.append(args[0].detach()))
    with torch.no_grad():
        model(input_ids=ids)
    handle.remove()
    hidden = captured[0][0, -POSITIONS:]  # [N, d]: final hidden states at the measured positions
    seeds = torch.tensor([draw_seed(7, case.prompt, 1, d) for d in range(DRAWS)])
    positions = torch.arange(ids.shape[1] - POSITIONS, ids.shape[1]).expand(DRAWS, -1)
    eps = normal(position_keys(row_keys(seeds, site_id("lm_head")), position_hash(positions)), hidden.shape[-1])
    noisy_hidden = hidden + eps * scale * hidden.std(dim=-1, keepdim=True)
    with torch.no_grad():
        clean, noisy = head(hidden).double(), head(noisy_hidden).double()
    def variance(x):
        return ((x - x.mean(-1, keepdim=True)) ** 2).sum(-1) / (x.shape[-1] - 1)

    expected = variance(noisy - clean) / variance(clean)
    assert expected.shape == (DRAWS, POSITIONS)
    assert np.allclose(result.alphas[1], expected.numpy(), rtol=1e-4, atol=0)


def test_position_alpha_matches_a_forward_over_the_prefix_alone(loaded, cases):
    """Teacher forcing in one forward: alpha at position t equals alpha of the prompt + t tokens run alone."""
    model, _ = loaded
    setting = Setting("embedding", 0.05)
    [result] = measure(model, cases, [setting], DRAWS)
    case = cases[0]
    runtime = NoiseRuntime(model, setting.config(0))
    seeds = torch.tensor([draw_seed(0, case.prompt, 0, d) for d in range(DRAWS)])
    for t in (0, 3, POSITIONS - 1):
        prefix = torch.cat([case.prompt_ids, case.continuation[:t]]).expand(DRAWS, -1)
        clean = last_logits(model, prefix, 1)[:, 0].double()
        with runtime.attached(NoiseState(runtime.config, seeds, torch.ones_like(prefix), 1)):
            noisy = last_logits(model, prefix, 1)[:, 0].double()
        expected = (noisy - clean).var(-1) / clean.var(-1)
        assert np.allclose(result.alphas[0, :, t], expected.numpy(), rtol=1e-3)


def test_per_position_alpha_has_the_right_length_and_is_finite(loaded, cases):
    model, tokenizer = loaded
    assert all(len(case.continuation) == POSITIONS for case in cases)
    ids = tokenizer(PROMPTS[0], return_tensors="pt").input_ids
    with torch.no_grad():
        for _ in range(POSITIONS):  # greedy by hand
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(ids[0, -POSITIONS:], cases[0].continuation)
    results = measure(model, cases, [_setting(kind, 0.05) for kind in NOISE_TYPES], DRAWS)
    for result in results:
        assert result.alphas.shape == (len(PROMPTS), DRAWS, POSITIONS)
        row = summarize(result, t_base=0.8)
        for key in ("alpha_mean", "alpha_std", "t_star"):
            assert len(row["positions"][key]) == POSITIONS
            assert all(math.isfinite(v) for v in row["positions"][key])
        assert all(v > 0 for v in row["positions"]["alpha_mean"])


def test_t_star_formula_and_summary_statistics():
    alphas = np.array([[[0.1, 0.5, 0.2], [0.3, 0.4, 0.0]], [[0.6, 0.1, 0.1], [0.2, 0.2, 0.3]]])
    row = summarize(Measurement(Setting("weight", 0.1), alphas), t_base=0.7)
    last = [0.1, 0.3, 0.6, 0.2]
    mean = sum(last) / 4
    assert row["alpha_mean"] == pytest.approx(mean)
    assert row["alpha_std"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in last) / 3))
    assert row["t_star"] == pytest.approx(0.7 * math.sqrt(1 + mean))
    assert row["alpha_per_prompt"] == pytest.approx([0.2, 0.4])
    assert row["positions"]["alpha_mean"] == pytest.approx([0.3, 0.3, 0.15])
    assert row["positions"]["t_star"] == pytest.approx([0.7 * math.sqrt(1 + a) for a in (0.3, 0.3, 0.15)])
    assert row["alpha_last_position"] == pytest.approx(0.15)
    assert row["n"] == 4


def test_cli_writes_json_csv_png_and_prints_table(tmp_path, tiny_model, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": p, "id": i}) for i, p in enumerate(PROMPTS)) + "\n")
    out = tmp_path / "out"
    code = main([
        "--model_args", "pretrained=tiny,device=cpu,dtype=float32", "--prompts", str(prompts),
        "--noise", "embedding,hidden,lm_head", "--scales", "0,0.05", "--draws", "2", "--positions", "5",
        "--noise-layer", "2", "--t-base", "0.7", "--output-dir", str(out),
    ])
    assert code == 0
    printed = capsys.readouterr().out
    for needle in ("α mean", "T*", "embedding", "hidden @2", "lm_head"):
        assert needle in printed
    payload = json.loads((out / "alpha.json").read_text())
    assert payload["model_args"]["pretrained"] == tiny_model
    assert [p["prompt"] for p in payload["prompts"]] == PROMPTS
    rows = payload["results"]
    assert [(r["noise"], r["scale"], r["noise_layer"]) for r in rows] == [
        ("embedding", 0.0, None), ("embedding", 0.05, None), ("hidden", 0.0, 2), ("hidden", 0.05, 2),
        ("lm_head", 0.0, None), ("lm_head", 0.05, None),
    ]
    for row in rows:
        assert len(row["positions"]["alpha_mean"]) == 5
        assert row["t_star"] == pytest.approx(0.7 * math.sqrt(1 + row["alpha_mean"]))
        assert (row["alpha_mean"] == 0) == (row["scale"] == 0)
    with (out / "alpha.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert [(r["noise"], float(r["scale"])) for r in table] == [(r["noise"], r["scale"]) for r in rows]
    assert [float(r["alpha_mean"]) for r in table] == pytest.approx([r["alpha_mean"] for r in rows])
    png = (out / "alpha_positions.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


@pytest.mark.parametrize(
    "extra,prompt_text,needle",
    [
        (["--prompts", "/nonexistent/prompts.txt"], None, "--prompts: file '/nonexistent/prompts.txt' does not exist"),
        (["--noise", "embedding,gaussian"], "a\n", "valid values: embedding, weight, activation, hidden, lm_head"),
        (["--scales", "0.01,-0.1"], "a\n", "argument --scales: '-0.1' is out of range"),
        (["--scales", "small"], "a\n", "argument --scales: 'small' is not a number"),
        (["--draws", "0"], "a\n", "argument --draws"),
        (["--model_args", "pretrained=tiny,batch_size=4"], "a\n", "valid keys: pretrained, dtype, device"),
        (["--model_args", "pretrained=tiny,dtype=int8"], "a\n", "valid values: auto, float32, float16, bfloat16"),
        ([], '{"text": "no prompt field"}\n', "no non-empty string field 'prompt'"),
        ([], "\n\n", "holds no prompts"),
        (["--noise", "embedding", "--noise-layer", "1"], "a\n", "--noise-layer is only used with hidden noise"),
        (["--noise", "hidden", "--noise-layer", "9"], "a\n", "valid values: 0..2"),
    ],
)
def test_bad_inputs_give_clear_errors(tmp_path, capsys, extra, prompt_text, needle):
    argv = ["--model_args", "pretrained=tiny,device=cpu", "--prompts", str(tmp_path / "p.txt")]
    if prompt_text is not None:
        (tmp_path / "p.txt").write_text(prompt_text)
    argv += ["--output-dir", str(tmp_path / "out"), "--positions", "2", "--draws", "1", *extra]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_prompt_files_text_and_jsonl(tmp_path):
    text = tmp_path / "p.txt"
    text.write_text("first prompt\n\n  second prompt\n")
    assert read_prompts(text) == ["first prompt", "  second prompt"]
    jsonl = tmp_path / "p.data"  # detected by content, not only by extension
    jsonl.write_text('{"prompt": "a"}\n\n{"prompt": "b\\nc", "other": 1}\n')
    assert read_prompts(jsonl) == ["a", "b\nc"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_prompts(bad)
