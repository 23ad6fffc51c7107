"""weight_draw=repeat: one weight draw per (task, repeat index), shared by every doc and every batch."""

from __future__ import annotations

import logging

import pytest
import torch

from lm_eval_noise.noise import NoiseConfig, NoiseConfigError
from lm_eval_noise.seeding import repeat_seed

logging.getLogger("lm_eval").setLevel(logging.ERROR)
WEIGHT = "noise=weight,noise_scale=0.2"
TASK = "bench_task"


def _requests(prompts: list[str], repeats: int, tokens: int = 6):
    """What lm-eval's evaluator sends for `repeats: K`: each doc's Instance K times in a row."""
    from lm_eval.api.instance import Instance

    gen = {"until": [], "max_gen_toks": tokens, "do_sample": False}
    out = []
    for i, prompt in enumerate(prompts):
        inst = Instance("generate_until", {"prompt": prompt}, (prompt, dict(gen)), idx=0, metadata=(TASK, i, repeats))
        out += [inst] * repeats
    return out


@pytest.fixture(scope="module")
def models(tiny_model):
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_noise.model import HFNoisyLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    common = {"pretrained": model, "tokenizer": tokenizer, "device": "cpu"}

    def noisy(batch_size: int, args: str = WEIGHT) -> HFNoisyLM:
        return HFNoisyLM(batch_size=batch_size, **common, **dict(kv.split("=") for kv in args.split(",")))

    return model, HFLM(batch_size=3, **common), noisy


PROMPTS = ["Once upon a time", "The robot said", "In the forest there was a", "1 + 1 ="]


def test_each_repeat_is_the_stock_model_under_that_repeats_draw(models):
    """Reference implementation: perturb the weights with the repeat's draw by hand, generate every doc
    with stock lm-eval hf, restore. hf-noisy's repeat-r samples must be exactly those."""
    model, stock, noisy = models
    lm = noisy(batch_size=3)
    ours = lm.generate_until(_requests(PROMPTS, repeats=2), disable_tqdm=True)
    clean = {k: v.clone() for k, v in model.state_dict().items()}
    for r in range(2):
        with lm.noise.weight.perturbed(repeat_seed(0, TASK, r)):
            reference = stock.generate_until(_requests(PROMPTS, repeats=1), disable_tqdm=True)
        assert ours[r::2] == reference
    assert any(a != b for a, b in zip(ours[0::2], ours[1::2], strict=True))  # two draws, two models
    assert all(torch.equal(v, clean[k]) for k, v in model.state_dict().items())


def test_repeat_draws_are_batch_invariant_logged_and_restored(models):
    model, _, noisy = models
    clean = {k: v.clone() for k, v in model.state_dict().items()}
    requests = _requests(PROMPTS, repeats=3)
    one = noisy(batch_size=1).generate_until(requests, disable_tqdm=True)
    assert all(torch.equal(v, clean[k]) for k, v in model.state_dict().items())  # bit-exact after the call
    requests = _requests(PROMPTS, repeats=3)
    four = noisy(batch_size=4).generate_until(requests, disable_tqdm=True)
    assert one == four
    logged = [rec["weight_draw"] for rec in requests[0].args[1]["noise_samples"]]
    assert logged == [f"{repeat_seed(0, TASK, r):016x}" for r in range(3)]  # one draw per repeat, K of them
    other_doc = [rec["weight_draw"] for rec in requests[3].args[1]["noise_samples"]]
    assert other_doc == logged  # shared by every doc of the repeat


def test_sample_draw_keeps_one_draw_per_sample(models):
    _, _, noisy = models
    requests = _requests(PROMPTS[:2], repeats=2)
    one = noisy(batch_size=1, args=WEIGHT + ",weight_draw=sample").generate_until(requests, disable_tqdm=True)
    two = noisy(batch_size=2, args=WEIGHT + ",weight_draw=sample").generate_until(
        _requests(PROMPTS[:2], repeats=2), disable_tqdm=True)
    assert one == two
    assert all("weight_draw" not in rec for rec in requests[0].args[1]["noise_samples"])


def test_weights_are_restored_when_generation_fails_midway(models, monkeypatch):
    from lm_eval.models.huggingface import HFLM

    model, _, noisy = models
    clean = {k: v.clone() for k, v in model.state_dict().items()}
    lm = noisy(batch_size=4)
    calls = []
    original = HFLM._model_generate

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second repeat's batch: its draw is on
            assert lm.noise.weight.current == repeat_seed(0, TASK, 1)
            raise RuntimeError("boom")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HFLM, "_model_generate", failing)
    with pytest.raises(RuntimeError, match="boom"):
        lm.generate_until(_requests(PROMPTS, repeats=2), disable_tqdm=True)
    assert lm.noise.weight.current is None
    assert all(torch.equal(v, clean[k]) for k, v in model.state_dict().items())


def test_compensation_measures_alpha_against_the_clean_weights(models):
    """Under a held repeat draw, alpha compares the noisy logits with the original model's."""
    _, _, noisy = models
    lm = noisy(batch_size=2, args=WEIGHT + ",temperature_compensation=auto,t_base=0.8")
    requests = _requests(PROMPTS[:2], repeats=2)
    lm.generate_until(requests, disable_tqdm=True)
    alphas = [rec["alpha"] for req in requests[::2] for rec in req.args[1]["noise_samples"]]
    assert all(a > 0 for a in alphas)  # against the noisy weights themselves alpha would be 0


def test_weight_draw_values_are_checked():
    assert NoiseConfig.from_args(noise="weight", noise_scale=0.1).weight_draw == "repeat"
    with pytest.raises(NoiseConfigError, match="weight_draw='banana' is not valid; valid values: repeat, sample"):
        NoiseConfig.from_args(noise="weight", noise_scale=0.1, weight_draw="banana")
    with pytest.raises(NoiseConfigError, match="weight_draw only applies to noise=weight"):
        NoiseConfig.from_args(noise="embedding", noise_scale=0.1, weight_draw="sample")


def test_leaderboard_labels_per_sample_weight_draws():
    from lm_eval_noise.leaderboard.method import format_noise, normalize_noise
    from lm_eval_noise.provenance import provenance

    def label(**args) -> str:
        return format_noise(normalize_noise(provenance(NoiseConfig.from_args(**args), None, True)))

    assert label(noise="weight", noise_scale=0.05) == "weight σ=0.05"
    assert label(noise="weight", noise_scale=0.05, weight_draw="sample") == "weight σ=0.05 [weight_draw=sample]"
