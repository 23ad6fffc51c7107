"""The seed-conditioning comparison: noise on dummy tokens (noise=dummy) and random-string prefixes."""

from __future__ import annotations

import logging

import pytest
import torch
from lm_eval.api.instance import Instance
from transformers import AutoModelForCausalLM

from lm_eval_noise.leaderboard.method import describe_method, format_label, normalize_noise
from lm_eval_noise.noise import NoiseConfig, NoiseConfigError, NoiseRuntime, NoiseState
from lm_eval_noise.noise.dummy import DummyLayout, embedding_moments
from lm_eval_noise.random_prefix import SEPARATOR, random_prefixes

logging.getLogger("lm_eval").setLevel(logging.ERROR)
DUMMY = "noise=dummy,noise_scale=1.0,noise_dummy_tokens=3"


@pytest.fixture(scope="module")
def model(tiny_model):
    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()


def _records(results, task="noise_demo"):
    return [r for s in sorted(results["samples"][task], key=lambda s: s["doc_id"])
            for r in s["arguments"][0][1]["noise_samples"]]


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,needle",
    [
        ({"noise": "dummy", "noise_scale": 1, "noise_dummy_tokens": 0}, "noise_dummy_tokens=0 is out of range"),
        ({"noise": "dummy", "noise_scale": 1}, "noise=dummy needs noise_dummy_tokens"),
        ({"noise": "dummy", "noise_scale": 1, "noise_dummy_tokens": 2, "noise_dummy_position": "middle"},
         "valid values: prefix, suffix"),
        ({"noise": "dummy", "noise_scale": 1, "noise_dummy_tokens": 2, "noise_dummy_init": "zeros"},
         "valid values: gaussian, table"),
        ({"noise": "embedding", "noise_scale": 1, "noise_dummy_tokens": 2}, "only apply to noise=dummy"),
        ({"noise_dummy_position": "suffix"}, "only apply to noise=dummy"),
        ({"noise": "dummy", "noise_dummy_tokens": 2}, "needs noise_scale"),
        ({"noise": "dummy", "noise_scale": 1, "noise_dummy_tokens": 2, "noise_schedule": "linear",
          "noise_scale_end": 0}, "noise_schedule does not apply to noise=dummy"),
        ({"random_prefix": 0}, "random_prefix=0 is out of range"),
        ({"random_prefix_alphabet": "AB"}, "only applies with random_prefix"),
        ({"random_prefix": 4, "random_prefix_alphabet": "A"}, "at least two distinct"),
    ],
)
def test_bad_seed_conditioning_args_name_argument_and_values(args, needle):
    with pytest.raises(NoiseConfigError, match=needle):
        NoiseConfig.from_args(**args)


def test_bad_dummy_args_fail_before_weights_load():
    from lm_eval_noise.model import HFNoisyLM

    with pytest.raises(NoiseConfigError, match="noise_dummy_tokens='0' is out of range"):
        HFNoisyLM(pretrained="/nonexistent/model", noise="dummy", noise_scale="1", noise_dummy_tokens="0")


def test_table_dummies_need_no_scale_and_dummies_are_active_at_zero_scale():
    assert NoiseConfig.from_args(noise="dummy", noise_dummy_tokens=2, noise_dummy_init="table").active
    zero = NoiseConfig.from_args(noise="dummy", noise_dummy_tokens=2, noise_scale=0)
    assert zero.active and not zero.perturbs
    assert NoiseConfig.from_args(random_prefix=5).active
    assert not NoiseConfig.from_args(noise="embedding", noise_scale=0).active


def test_model_without_an_embedding_table_is_refused():
    class NoEmbedding(torch.nn.Module):
        def get_input_embeddings(self):
            return None

    config = NoiseConfig.from_args(noise="dummy", noise_scale=1, noise_dummy_tokens=2)
    with pytest.raises(NoiseConfigError, match="noise=dummy needs a model with an input embedding"):
        NoiseRuntime(NoEmbedding(), config)


# -- dummy tokens on the model --------------------------------------------------------------------


@pytest.mark.parametrize("position", ["prefix", "suffix"])
def test_dummy_layout_keeps_left_padding_and_strips_back(position):
    context = torch.tensor([[0, 0, 5, 6], [0, 7, 8, 9], [1, 2, 3, 4]])
    mask = (context != 0).long()
    layout = DummyLayout(mask, 2, position)
    ids = torch.full((3, 2), 99)
    extended, new_mask = layout.extend(context, mask, ids)
    if position == "prefix":
        assert extended.tolist() == [[0, 0, 99, 99, 5, 6], [0, 99, 99, 7, 8, 9], [99, 99, 1, 2, 3, 4]]
    else:
        assert extended.tolist() == [[0, 0, 5, 6, 99, 99], [0, 7, 8, 9, 99, 99], [1, 2, 3, 4, 99, 99]]
    assert new_mask.tolist() == (extended != 0).long().tolist()  # still left-padded, dummies attended
    generated = torch.cat([extended, torch.tensor([[40, 41]] * 3)], dim=1)
    assert layout.strip(generated).tolist() == torch.cat([context, torch.tensor([[40, 41]] * 3)], dim=1).tolist()


def _embedded(model, config, context, mask, seeds):
    """What the decoder receives from the embedding layer, with the dummies in."""
    runtime = NoiseRuntime(model, config)
    layout = runtime.dummy.layout(mask)
    extended, new_mask = layout.extend(context, mask, runtime.dummy.ids(seeds))
    state = NoiseState(config, seeds, new_mask, max_new_tokens=4, dummy_columns=layout.columns)
    seen = []
    with torch.no_grad(), runtime.attached(state):
        # registered after the injector's hook, so it sees the injector's output
        handle = model.get_input_embeddings().register_forward_hook(lambda m, i, out: seen.append(out.clone()))
        try:
            positions = (new_mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=extended, attention_mask=new_mask, position_ids=positions).logits
        finally:
            handle.remove()
    return seen[0], layout, extended, logits


def test_gaussian_dummies_follow_the_table_statistics(model):
    module = model.get_input_embeddings()
    mean, std = embedding_moments(module)
    assert torch.allclose(mean, module.weight.mean(0), atol=1e-5)
    assert torch.allclose(std, module.weight.std(0), atol=1e-4)
    k, seeds = 64, torch.tensor([11, 12])
    context = torch.randint(4, model.config.vocab_size, (2, 5))
    mask = torch.ones_like(context)
    config = NoiseConfig.from_args(noise="dummy", noise_scale=0.5, noise_dummy_tokens=k)
    out, layout, extended, _ = _embedded(model, config, context, mask, seeds)
    dummies = out[layout.columns].view(2, k, -1)
    z = (dummies - mean) / (0.5 * std)
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1.0) < 0.05
    assert not torch.equal(dummies[0], dummies[1])  # per-sample streams
    real = out[~layout.columns].view(2, 5, -1)
    assert torch.equal(real, module.weight[context])  # the prompt's own embeddings are untouched
    zero = NoiseConfig.from_args(noise="dummy", noise_scale=0, noise_dummy_tokens=k)
    out0, layout0, _, _ = _embedded(model, zero, context, mask, seeds)
    assert torch.allclose(out0[layout0.columns].view(2, k, -1), mean.expand(2, k, -1))


def test_dummies_are_batch_invariant_and_positioned_like_tokens(model):
    config = NoiseConfig.from_args(noise="dummy", noise_scale=1.0, noise_dummy_tokens=3)
    context = torch.tensor([[0, 0, 9, 10, 11], [12, 13, 14, 15, 16]])
    mask = (context != 0).long()
    seeds = torch.tensor([101, 202])
    _, layout, _, logits = _embedded(model, config, context, mask, seeds)
    alone_ctx = torch.tensor([[9, 10, 11]])
    _, _, _, alone = _embedded(model, config, alone_ctx, torch.ones_like(alone_ctx), seeds[:1])
    # the padded row alone, unpadded: its dummies and positions are its own
    assert torch.allclose(logits[0, -1], alone[0, -1], atol=1e-5)


def test_table_dummies_are_seeded_vocabulary_rows(model):
    config = NoiseConfig.from_args(noise="dummy", noise_dummy_tokens=16, noise_dummy_init="table")
    runtime = NoiseRuntime(model, config)
    ids = runtime.dummy.ids(torch.tensor([1, 2, 1]))
    assert ids.min() >= 0 and ids.max() < model.get_input_embeddings().weight.shape[0]
    assert torch.equal(ids[0], ids[2]) and not torch.equal(ids[0], ids[1])
    assert len(set(ids[0].tolist())) > 8


def test_dummy_tokens_are_real_positions_at_zero_scale(model):
    context = torch.randint(4, model.config.vocab_size, (1, 6))
    mask = torch.ones_like(context)
    clean = model(input_ids=context, attention_mask=mask).logits[0, -1]
    zero = NoiseConfig.from_args(noise="dummy", noise_scale=0, noise_dummy_tokens=2)
    *_, logits = _embedded(model, zero, context, mask, torch.tensor([3]))
    assert not torch.allclose(clean, logits[0, -1], atol=1e-3)  # the prompt attends to the dummies


# -- through lm-eval ------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    DUMMY,
    DUMMY + ",noise_dummy_position=suffix",
    "noise=dummy,noise_dummy_tokens=2,noise_dummy_init=table",
    "noise=dummy+embedding,noise_scale=0.05,noise_dummy_tokens=3",
    "noise=dummy+weight,noise_scale=0.2,noise_dummy_tokens=2,noise_dummy_position=suffix",  # one sample at a time
])
def test_dummy_noise_is_batch_invariant_and_diverse(evaluate, args):
    one, _ = evaluate(args, batch_size=1)  # noise_demo's first four prompts differ in length
    four, _ = evaluate(args, batch_size=4)
    assert one == four
    assert any(len(set(r)) > 1 for r in one["noise_demo"])  # greedy repeats differ


def test_dummies_combine_with_temperature_compensation(evaluate):
    args = DUMMY + ",temperature_compensation=auto,t_base=0.7"
    one, results = evaluate(args, limit=2, batch_size=1)
    two, _ = evaluate(args, limit=2, batch_size=2)
    assert one == two
    assert all(r["alpha"] > 0 for r in _records(results))  # alpha against the prompt without dummies
    block = results["config"]["noise"]  # provenance, and the label the leaderboard derives from it
    assert block["noise"] == ["dummy"] and block["noise_dummy_tokens"] == 3 and block["active"]
    assert describe_method(results).label == "dummy σ=1.0 k=3 prefix [temperature_compensation=auto, t_base=0.7]"


def test_zero_scale_dummies_change_outputs_and_absent_ones_do_not(evaluate):
    greedy, _ = evaluate("noise=none", limit=4)
    dummies, _ = evaluate("noise=dummy,noise_scale=0,noise_dummy_tokens=4,noise_dummy_position=suffix", limit=4)
    assert dummies != greedy
    without, _ = evaluate("noise=embedding,noise_scale=0", limit=4)
    assert without == greedy


def test_random_prefix_is_logged_reproducible_and_batch_invariant(evaluate):
    one, results = evaluate("random_prefix=6", batch_size=1)
    four, again = evaluate("random_prefix=6", batch_size=4)
    assert one == four
    records = _records(results)
    assert records == _records(again)
    expected = random_prefixes([int(r["seed"], 16) for r in records], 6, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert [r["random_prefix"] for r in records] == expected
    assert all(len(p) == 6 and p.isupper() for p in expected) and len(set(expected)) > 1
    assert any(len(set(r)) > 1 for r in one["noise_demo"])  # greedy decoding, diverse through the prefix
    assert results["config"]["noise"]["random_prefix"] == 6
    assert describe_method(results).label == "random prefix k=6"
    _, binary = evaluate("random_prefix=6,random_prefix_alphabet=xo", batch_size=1)
    assert {c for r in _records(binary) for c in r["random_prefix"]} == {"x", "o"}
    with pytest.raises(NoiseConfigError, match="arrived as a number"):
        evaluate("random_prefix=6,random_prefix_alphabet=01")


def test_random_prefix_goes_into_the_chat_user_turn(tiny_model):
    from lm_eval_noise.model import HFNoisyLM

    lm = HFNoisyLM(pretrained=tiny_model, device="cpu", dtype="float32", random_prefix="5", batch_size=2)
    lm.tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] | trim }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Once upon a time"}]
    rendered = lm.apply_chat_template(history)
    assert rendered == "<|system|>Be brief.\n<|user|>Once upon a time\n<|assistant|>"
    seen: list[str] = []
    original = lm.tok_batch_encode

    def spy(strings, *args, **kwargs):
        seen.extend(strings)
        return original(strings, *args, **kwargs)

    lm.tok_batch_encode = spy
    requests = [Instance("generate_until", {"prompt": "p"}, (rendered, {"until": ["\n"], "max_gen_toks": 4}), 0,
                         metadata=("t", 0, 2)) for _ in range(2)]
    lm.generate_until(requests, disable_tqdm=True)
    prefixes = [req.args[1]["noise_samples"][0]["random_prefix"] for req in requests]
    expected = {f"<|system|>Be brief.\n<|user|>{p}{SEPARATOR}Once upon a time\n<|assistant|>" for p in prefixes}
    assert set(seen) == expected and len(expected) == 2


def test_leaderboard_labels_for_seed_conditioning_methods():
    def label(**args):
        config = NoiseConfig.from_args(**args)
        return format_label(normalize_noise({**config.as_dict(), "active": config.active}), {})

    assert label(noise="dummy", noise_scale=1.0, noise_dummy_tokens=4) == "dummy σ=1.0 k=4 prefix"
    assert label(noise="dummy", noise_dummy_tokens=2, noise_dummy_init="table", noise_dummy_position="suffix") \
        == "dummy k=2 suffix table"
    assert label(random_prefix=8) == "random prefix k=8"
    assert label(noise="embedding", noise_scale=0.002, random_prefix=8, random_prefix_alphabet="01") \
        == "embedding σ=0.002 + random prefix k=8 alphabet=01"
    # from model_args alone (no provenance block)
    assert normalize_noise({"random_prefix": "8"})["random_prefix"] == 8


def test_fitting_max_gen_toks_leaves_room_for_the_dummies(evaluate):
    def room(args):
        _, results = evaluate(args + ",max_length=48", toks=48, limit=1)
        return results["samples"]["noise_demo"][0]["arguments"][0][1]["max_gen_toks"]

    assert room("noise=embedding,noise_scale=0.05") - room(DUMMY) == 3
