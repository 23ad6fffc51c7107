"""`hf-noisy` through lm-eval's evaluator: seeding, batch invariance, provenance and refusals."""

from __future__ import annotations

import logging
import math

import pytest

from lm_eval_noise.model import FAST_DECODE_COMPILE
from lm_eval_noise.noise import NoiseConfigError

logging.getLogger("lm_eval").setLevel(logging.ERROR)
EMBED = "noise=embedding,noise_scale=0.05"


def _distinct_share(responses: list[list[str]]) -> float:
    """Share of prompts whose K samples are not all identical."""
    return sum(len(set(r)) > 1 for r in responses) / len(responses)


def test_batch_size_1_4_auto_identical(evaluate):
    one, _ = evaluate(EMBED, batch_size=1)
    four, _ = evaluate(EMBED, batch_size=4)
    auto, _ = evaluate(EMBED, batch_size="auto")
    assert one == four == auto
    assert _distinct_share(one["noise_demo"]) >= 0.5  # repeats differ under greedy decoding


def test_task_alone_or_with_another_task(evaluate):
    alone, _ = evaluate(EMBED, tasks=("noise_demo",), batch_size=3)
    together, _ = evaluate(EMBED, tasks=("noise_demo_sampled", "noise_demo"), batch_size=3)
    assert alone["noise_demo"] == together["noise_demo"]


def test_noise_seed_changes_samples(evaluate):
    base, _ = evaluate(EMBED)
    again, _ = evaluate(EMBED)
    other, _ = evaluate(EMBED + ",noise_seed=1")
    assert base == again
    assert base != other


def test_seeded_sampling_is_reproducible_and_batch_invariant(evaluate):
    one, _ = evaluate(EMBED, tasks=("noise_demo_sampled",), batch_size=1)
    four, _ = evaluate(EMBED, tasks=("noise_demo_sampled",), batch_size=4)
    assert one == four
    plain_one, _ = evaluate("", tasks=("noise_demo_sampled",), batch_size=1)
    plain_four, _ = evaluate("", tasks=("noise_demo_sampled",), batch_size=4)
    assert plain_one == plain_four  # temperature baselines are per-sample seeded too
    assert _distinct_share(plain_one["noise_demo_sampled"]) >= 0.5


@pytest.mark.parametrize("noise_args", ["noise=none", "noise=embedding,noise_scale=0"])
def test_no_noise_is_identical_to_hf(evaluate, noise_args):
    ours, _ = evaluate(noise_args, batch_size=2)
    stock, _ = evaluate("", model="hf", batch_size=2)
    assert ours == stock


def test_seeded_sampling_uses_transformers_sampling_defaults(tiny_model):
    from lm_eval_noise.model import HFNoisyLM

    lm = HFNoisyLM(pretrained=tiny_model, device="cpu", dtype="float32")
    settings = lm._sampling_settings({"temperature": 0.8, "top_k": None, "top_p": None, "min_p": None})
    # what stock `hf` sampling applies when neither the task nor the model's config sets them
    assert settings == {"temperature": 0.8, "top_k": 50, "top_p": 1.0, "min_p": None}


def test_unseeded_sampling_matches_hf(evaluate):
    ours, _ = evaluate("noise=none,seeded_sampling=false", tasks=("noise_demo_sampled",))
    stock, _ = evaluate("", model="hf", tasks=("noise_demo_sampled",))
    assert ours == stock


@pytest.mark.parametrize(
    "noise_args",
    [
        "noise=weight,noise_scale=0.2",
        "noise=activation,noise_scale=0.3",
        "noise=hidden,noise_layer=1,noise_scale=0.3",
        "noise=lm_head,noise_scale=0.5",
        "noise=embedding+activation,noise_scale=0.1,noise_scope=per_sequence",
    ],
)
def test_every_noise_type_is_batch_invariant_and_diverse(evaluate, noise_args):
    one, _ = evaluate(noise_args, batch_size=1, limit=3)
    three, _ = evaluate(noise_args, batch_size=3, limit=3)
    assert one == three
    assert _distinct_share(one["noise_demo"]) >= 2 / 3  # the repeats differ on most prompts, not just one


# Every hooked injection point at once, with a schedule so sigma changes at every decode step.
FAST_NOISE = ("noise=embedding+activation+hidden+lm_head,noise_layer=1,noise_scale=0.05,"
              "noise_schedule=linear,noise_scale_end=0.2")


@pytest.fixture
def fresh_compile():
    """Fresh torch.compile state (public API), also afterwards."""
    import torch

    torch.compiler.reset()
    yield
    torch.compiler.reset()


def _cache_tensors() -> set[int]:
    """Storage addresses of every tensor held by a live transformers KV cache (found by walking the
    cache objects, so the check does not depend on how a transformers release names their fields)."""
    import gc
    import weakref

    import torch
    from transformers import Cache

    found: set[int] = set()
    seen: set[int] = set()

    def walk(obj, depth: int) -> None:
        if depth > 8 or id(obj) in seen or type(obj) in weakref.ProxyTypes:
            return
        seen.add(id(obj))
        if issubclass(type(obj), torch.Tensor):
            found.add(obj.untyped_storage().data_ptr())
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item, depth + 1)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item, depth + 1)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            for item in vars(obj).values():
                walk(item, depth + 1)

    for obj in gc.get_objects():
        if issubclass(type(obj), Cache):  # type(), not isinstance: a dead weak proxy raises on isinstance
            walk(obj, 0)
    return found


def _mutated_inputs(graph, example_inputs) -> list:
    """The graph inputs that an in-place op (a name ending in one underscore, e.g. index_copy_) writes to."""
    placeholders = [n for n in graph.graph.nodes if n.op == "placeholder"]
    by_name = dict(zip((n.name for n in placeholders), example_inputs))
    mutated = []
    for node in graph.graph.nodes:
        target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
        if node.op in ("call_method", "call_function") and target.endswith("_") and not target.startswith("_"):
            written = node.args[0] if node.args else None
            if getattr(written, "op", None) == "placeholder":
                mutated.append(by_name[written.name])
    return mutated


def _no_fallback(caplog) -> bool:
    return not any("fast_decode is unavailable" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("noise", "task", "batch_size"), [
    (FAST_NOISE, "noise_demo", 3),
    (FAST_NOISE, "noise_demo_sampled", 1),
    (EMBED + ",noise_first_k=3", "noise_demo_sampled", 3),
    ("noise=weight,noise_scale=0.05,noise_targets=mlp", "noise_demo", 3),  # one batch shape per repeat
    ("noise=dummy+embedding,noise_scale=0.05,noise_dummy_tokens=2", "noise_demo", 3),
])
def test_fast_decode_traces_noise_into_the_decode_graph(evaluate, fresh_compile, monkeypatch, caplog, noise, task,
                                                        batch_size):
    """Dynamo traces the decode step with the hooks inside: no graph break (fullgraph), no recompile per
    token (a recompile raises), no input written in place but the KV cache (so CUDA graphs stay
    possible), and the eager samples. The graphs run as traced, without C++ code generation."""
    mutated_cache, mutated_other, compiles = [], [], []

    def record(graph, example_inputs, **_):
        compiles.append(graph)
        cache = _cache_tensors()
        for tensor in _mutated_inputs(graph, example_inputs):
            in_cache = tensor.untyped_storage().data_ptr() in cache
            (mutated_cache if in_cache else mutated_other).append(tuple(tensor.shape))
        return graph.forward

    monkeypatch.setitem(FAST_DECODE_COMPILE, "backend", record)
    monkeypatch.setitem(FAST_DECODE_COMPILE, "fullgraph", True)  # a graph break raises -> fallback -> fails
    eager, _ = evaluate(noise, tasks=(task,), batch_size=batch_size, limit=3)
    fast, _ = evaluate(noise + ",fast_decode=true", tasks=(task,), batch_size=batch_size, limit=3)
    assert fast == eager
    assert _no_fallback(caplog)
    # One graph for the decode step and one for the pre-forward hook; a recompile per token would be dozens.
    assert len(compiles) <= 3, f"{len(compiles)} compiles"
    assert mutated_cache, "the decode step should write its KV cache in place"
    assert mutated_other == []


@pytest.mark.slow
def test_fast_decode_compiled_gives_the_eager_samples(evaluate, fresh_compile, monkeypatch, tmp_path, caplog):
    """The real compile (inductor) of the noisy decode step samples exactly what eager decoding does (fp32)."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # inductor's documented cache location
    eager, _ = evaluate(FAST_NOISE, tasks=("noise_demo_sampled",), batch_size=2, limit=2)
    fast, _ = evaluate(FAST_NOISE + ",fast_decode=true", tasks=("noise_demo_sampled",), batch_size=2, limit=2)
    clean, _ = evaluate("", tasks=("noise_demo_sampled",), batch_size=2, limit=2)
    assert fast == eager != clean
    assert any(tmp_path.rglob("*.py")), "inductor wrote no generated code: nothing was compiled"
    assert _no_fallback(caplog)


def test_fast_decode_falls_back_to_eager_with_one_warning(evaluate, fresh_compile, monkeypatch, caplog):
    monkeypatch.setitem(FAST_DECODE_COMPILE, "backend", "no_such_backend")
    eager, _ = evaluate(EMBED, batch_size=2, limit=2)
    with caplog.at_level(logging.WARNING):
        fast, _ = evaluate(EMBED + ",fast_decode=true", batch_size=2, limit=2)
    assert fast == eager
    warnings = [r.getMessage() for r in caplog.records if "fast_decode is unavailable" in r.getMessage()]
    assert len(warnings) == 1 and "no_such_backend" in warnings[0]


def test_fast_decode_out_of_memory_is_raised_not_a_silent_fallback(evaluate, fresh_compile, monkeypatch, caplog):
    import torch

    def out_of_memory(graph, example_inputs, **_):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setitem(FAST_DECODE_COMPILE, "backend", out_of_memory)
    with pytest.raises(Exception) as raised:
        evaluate(EMBED + ",fast_decode=true", batch_size=2, limit=1)
    assert "out of memory" in str(raised.value)
    assert _no_fallback(caplog)


def test_provenance_and_per_sample_records(evaluate):
    _, results = evaluate(EMBED + ",noise_seed=7")
    block = results["config"]["noise"]
    assert block["noise"] == ["embedding"] and block["noise_scale"] == 0.05 and block["noise_seed"] == 7
    assert block["embed_norm"] == "vocab" and block["embed_norm_value"] > 0
    assert set(block["versions"]) == {"lm_eval", "transformers", "torch", "lm_eval_noise"}
    for sample in results["samples"]["noise_demo"]:
        records = sample["arguments"][0][1]["noise_samples"]
        assert [r["repeat"] for r in records] == [0, 1, 2, 3]
        assert len({r["seed"] for r in records}) == 4


def test_temperature_compensation_records_alpha_and_t_star(evaluate):
    samples, results = evaluate(
        "noise=embedding,noise_scale=0.1,temperature_compensation=auto", tasks=("noise_demo_sampled",), limit=2
    )
    for sample in results["samples"]["noise_demo_sampled"]:
        for record in sample["arguments"][0][1]["noise_samples"]:
            assert record["alpha"] > 0
            assert record["t_star"] == pytest.approx(0.8 * math.sqrt(1 + record["alpha"]))
    again, _ = evaluate(
        "noise=embedding,noise_scale=0.1,temperature_compensation=auto",
        tasks=("noise_demo_sampled",), limit=2, batch_size=2,
    )
    assert samples == again


@pytest.mark.parametrize("noise_args", [EMBED, "noise=none"])
def test_clean_perplexity_is_logged(evaluate, noise_args):
    _, results = evaluate(noise_args + ",clean_ppl=true", limit=2)
    for sample in results["samples"]["noise_demo"]:
        for record, text in zip(sample["arguments"][0][1]["noise_samples"], sample["resps"][0]):
            assert (record["clean_ppl"] is None) == (text == "")
            assert record["clean_ppl"] is None or record["clean_ppl"] >= 1.0


def test_use_cache_is_refused_with_noise(evaluate, tmp_path):
    with pytest.raises(NoiseConfigError, match="--use_cache cannot be combined with noise"):
        evaluate(EMBED, use_cache=str(tmp_path / "cache"))


def test_quantization_without_bitsandbytes_says_how_to_install(monkeypatch):
    import sys

    from lm_eval_noise.model import HFNoisyLM

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import fails as if not installed
    with pytest.raises(NoiseConfigError, match=r"pip install 'lm-eval-noise\[quant\]'"):
        HFNoisyLM(pretrained="/nonexistent/model", load_in_8bit="true")


def test_quantization_builds_a_bitsandbytes_config(monkeypatch):
    import sys
    import types

    import torch

    from lm_eval_noise.model import _bnb_config

    monkeypatch.setitem(sys.modules, "bitsandbytes", types.ModuleType("bitsandbytes"))
    kwargs = {"bnb_4bit_compute_dtype": "bfloat16", "bnb_4bit_quant_type": "nf4", "device_map": "auto"}
    config = _bnb_config(False, True, kwargs)
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_compute_dtype == torch.bfloat16 and config.bnb_4bit_quant_type == "nf4"
    assert kwargs == {"device_map": "auto"}  # the bnb options moved into the config
    assert _bnb_config(True, False, {}).load_in_8bit


def test_doc_keys_are_stable_for_docs_json_cannot_hold():
    import numpy as np

    from lm_eval_noise.seeding import doc_key

    doc = {"question": "q", "image": np.arange(6, dtype=np.uint8)}
    same = {"question": "q", "image": np.arange(6, dtype=np.uint8)}  # another object, same content
    other = {"question": "q", "image": np.arange(1, 7, dtype=np.uint8)}
    assert doc_key(doc, "ctx") == doc_key(same, "ctx") != doc_key(other, "ctx")


def test_switching_noise_on_under_a_cache_is_refused(tiny_model, tmp_path):
    from lm_eval.api.model import CachingLM

    from lm_eval_noise.model import HFNoisyLM

    lm = HFNoisyLM(pretrained=tiny_model, device="cpu", dtype="float32")
    CachingLM(lm, str(tmp_path / "cache.db"))
    with pytest.raises(NoiseConfigError, match="--use_cache cannot be combined with noise"):
        lm.set_noise(noise="embedding", noise_scale=0.1)


def test_switching_to_compensation_without_seeded_sampling_is_refused(tiny_model):
    from lm_eval_noise.model import HFNoisyLM

    lm = HFNoisyLM(pretrained=tiny_model, device="cpu", dtype="float32", seeded_sampling=False)
    with pytest.raises(NoiseConfigError, match="needs seeded_sampling=true"):
        lm.set_noise(noise="embedding", noise_scale=0.1, temperature_compensation="auto")


def test_temperature_alone_samples_from_seeded_streams(tiny_model):
    """lm-eval samples when a request sets only temperature > 0; those draws are seeded and batch-invariant too."""
    import torch
    from lm_eval.api.instance import Instance

    from lm_eval_noise.model import HFNoisyLM

    prompts = ["Once upon a time", "The robot", "A cat sat", "In the garden"]

    def run(batch_size: int, global_seed: int) -> list[str]:
        torch.manual_seed(global_seed)  # must not matter
        lm = HFNoisyLM(pretrained=tiny_model, device="cpu", dtype="float32", batch_size=batch_size)
        requests = [
            Instance("generate_until", {"prompt": p}, (p, {"until": ["\n"], "max_gen_toks": 12, "temperature": 1.0}),
                     0, metadata=("t", i, 2))
            for i, p in enumerate(prompts) for _ in range(2)
        ]
        return lm.generate_until(requests, disable_tqdm=True)

    one, three = run(1, 0), run(3, 1)
    assert one == three
    assert any(one[2 * i] != one[2 * i + 1] for i in range(len(prompts)))  # the two repeats are two draws


@pytest.mark.parametrize("noise_args", [{"noise": "embedding", "noise_scale": "0.05"}, {"clean_ppl": "true"}])
def test_requests_generated_again_give_the_same_samples_and_fresh_records(tiny_model, noise_args):
    """A request list used twice (a notebook, a second model run on the same requests) generates the same
    samples again, and its records are the latest call's K, not a list growing with every call."""
    from lm_eval.api.instance import Instance

    from lm_eval_noise.model import HFNoisyLM
    from lm_eval_noise.results.samples import doc_records

    lm = HFNoisyLM(pretrained=tiny_model, device="cpu", dtype="float32", batch_size=2, **noise_args)
    requests = []
    for i, prompt in enumerate(["Once upon a time", "The robot"]):  # the evaluator passes one object K times
        requests += [Instance("generate_until", {"prompt": prompt}, (prompt, {"until": ["\n"], "max_gen_toks": 6}),
                              0, metadata=("t", i, 3))] * 3
    first = lm.generate_until(requests, disable_tqdm=True)
    again = lm.generate_until(requests, disable_tqdm=True)
    assert again == first
    for request in requests[::3]:
        records = doc_records({"arguments": [request.args]})
        assert len(records) == 3
        if "noise" in noise_args:
            assert [r.repeat for r in records] == [0, 1, 2]


@pytest.mark.parametrize(
    "model_args,needle",
    [
        ("noise=banana", "valid values: embedding, weight, activation, hidden, lm_head"),
        ("noise=embedding,noise_scale=-0.1", "noise_scale"),
        ("noise=embedding,noise_scale=abc", "noise_scale"),
        ("noise=embedding,noise_scope=wide", "per_token, per_sequence"),
        ("noise=embedding,noise_scael=0.1", "did you mean noise_scale"),
        ("noise=embedding,temperature_compensaton=auto", "did you mean temperature_compensation"),
        ("noise=embedding,noise_scale=0.1,temperature_compensation=auto,seeded_sampling=false", "needs seeded_sampling=true"),
        ("load_in_8bit=true,load_in_4bit=true", "exclusive"),
        ("bnb_4bit_quant_type=nf4", "need load_in_4bit=true or load_in_8bit=true"),
        ("noise=embedding", "noise=embedding needs noise_scale=SIGMA"),
        ("noise=activation+lm_head,noise_seed=3", "noise=activation\\+lm_head needs noise_scale"),
    ],
)
def test_bad_input_fails_before_weights_load(model_args, needle):
    from lm_eval_noise.model import HFNoisyLM

    args = dict(kv.split("=") for kv in model_args.split(","))
    with pytest.raises(NoiseConfigError, match=needle):
        HFNoisyLM(pretrained="/nonexistent/model", **args)  # a load attempt would raise OSError instead


def test_zero_noise_scale_stays_the_explicit_control():
    from lm_eval_noise.noise import NoiseConfig

    assert not NoiseConfig.from_args(noise="embedding", noise_scale=0).active
    assert not NoiseConfig.from_args(noise="embedding", noise_scale="0").active


@pytest.mark.parametrize("path", ["/path/that/does/not/exist", "./no/such/model", "~/no-such-model-folder"])
def test_missing_local_model_folder_is_named_before_loading(path):
    from lm_eval_noise.model import HFNoisyLM

    with pytest.raises(NoiseConfigError, match="no such local folder"):
        HFNoisyLM(pretrained=path)


def test_max_gen_toks_beyond_the_context_is_fitted_with_one_warning(evaluate, caplog):
    """lm-eval stops with an assertion when max_gen_toks >= the model's length; hf-noisy generates what fits."""
    with caplog.at_level(logging.WARNING):
        samples, results = evaluate(EMBED + ",max_length=48", toks=48, limit=1)
    warnings = [r.getMessage() for r in caplog.records if "does not fit the model's maximum length" in r.getMessage()]
    assert len(warnings) == 1 and "max_gen_toks=48" in warnings[0] and "(48 tokens)" in warnings[0]
    sample = results["samples"]["noise_demo"][0]
    room = sample["arguments"][0][1]["max_gen_toks"]  # the fitted value is the one logged
    assert 0 < room < 48
    assert len(samples["noise_demo"][0]) == 4


def test_prompt_that_fills_the_context_is_an_error_naming_max_gen_toks(evaluate):
    with pytest.raises(NoiseConfigError, match=r"max_gen_toks=8 does not fit: the model's maximum length is 3"):
        evaluate(EMBED + ",max_length=3", toks=8, limit=1)


def test_compensation_on_a_greedy_task_needs_t_base(evaluate):
    """Never label an uncompensated run as compensated: greedy + auto without t_base is refused."""
    args = "noise=embedding,noise_scale=0.1,temperature_compensation=auto"
    with pytest.raises(NoiseConfigError, match="on a greedy task needs t_base=T"):
        evaluate(args, tasks=("noise_demo",), limit=1)
    _, results = evaluate(args + ",t_base=0.7", tasks=("noise_demo",), limit=1)
    for record in results["samples"]["noise_demo"][0]["arguments"][0][1]["noise_samples"]:
        assert record["t_star"] == pytest.approx(0.7 * math.sqrt(1 + record["alpha"]))
