"""Noise injection measured directly on the tiny models: where it lands, how strong, and clean-up."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from scipy import stats

from lm_eval_noise.noise import NoiseConfig, NoiseConfigError, NoiseRuntime, NoiseState, compiled
from lm_eval_noise.noise.base import feature_std
from lm_eval_noise.noise.counter import _unit, mix32, normal, position_hash, position_keys, row_keys, uniform
from lm_eval_noise.noise.embedding import mean_embedding_norm
from lm_eval_noise.noise.state import schedule_sigma
from lm_eval_noise.noise.targets import decoder_layers, is_linear
from lm_eval_noise.tiny import untrained_model

B, T = 4, 48


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def model(request):
    # Where noise lands and how strong it is depend on the architecture, not on training.
    return untrained_model(request.param)


@pytest.fixture(params=["compiled", "tensor ops"])
def cpu_path(request, monkeypatch):
    """Runs a test on both CPU paths: numba's compiled kernels (the `fast` extra, installed by the
    tested set, so a kernel that fails to build fails here) and the tensor code they replace."""
    if request.param == "compiled":
        pytest.importorskip("numba")
        assert compiled.kernels() is not None
    else:
        monkeypatch.setattr(compiled, "_KERNELS", False)
    return request.param


def _ids(model, batch=B, width=T, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(4, model.config.vocab_size, (batch, width), generator=gen)


def _state(config, batch=B, width=T, seeds=None, pads=None):
    mask = torch.ones(batch, width, dtype=torch.long)
    for row, pad in enumerate(pads or []):
        mask[row, :pad] = 0
    seeds = torch.arange(1, batch + 1) * 7919 if seeds is None else seeds
    return NoiseState(config, seeds, mask, max_new_tokens=16)


def _capture(module, pre: bool = False):
    """Record what a module receives (pre) or returns, after the noise hooks ran."""
    seen = []
    if pre:
        handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    else:
        handle = module.register_forward_hook(
            lambda m, i, out: seen.append((out[0] if isinstance(out, tuple) else out).detach().clone())
        )
    return seen, handle


def _altered(model, run=None) -> set[str]:
    """Names of the modules whose input or output a hook changes while `run()` runs (default: one
    forward pass). A first and a last hook around each module's own hooks (torch's public `prepend=`)
    see the values before and after them, so this measures what hooks do, not how torch stores them."""
    altered: set[str] = set()
    handles = []

    def tensors(value) -> list[torch.Tensor]:
        items = value if isinstance(value, tuple) else (value,)
        return [t for t in items if isinstance(t, torch.Tensor)]

    def differs(before: list[torch.Tensor], after: list[torch.Tensor]) -> bool:
        return len(before) != len(after) or any(not torch.equal(a, b) for a, b in zip(before, after))

    for name, module in model.named_modules():
        seen: dict[str, list[torch.Tensor]] = {}

        def first_in(mod, args, seen=seen):
            seen["in"] = [t.clone() for t in tensors(args)]

        def last_in(mod, args, name=name, seen=seen):
            if differs(seen["in"], tensors(args)):
                altered.add(name)

        def first_out(mod, args, out, seen=seen):
            seen["out"] = [t.clone() for t in tensors(out)]

        def last_out(mod, args, out, name=name, seen=seen):
            if differs(seen["out"], tensors(out)):
                altered.add(name)

        handles += [module.register_forward_pre_hook(first_in, prepend=True), module.register_forward_pre_hook(last_in),
                    module.register_forward_hook(first_out, prepend=True), module.register_forward_hook(last_out)]
    try:
        with torch.no_grad():
            (run or (lambda: model(input_ids=_ids(model, batch=2, width=6))))()
    finally:
        for handle in handles:
            handle.remove()
    return altered


def test_counter_hash_matches_pure_python_reference():
    def ref(x):
        m = 0xFFFFFFFF
        x ^= x >> 16
        x = (x * 0x7FEB352D) & m
        x ^= x >> 15
        x = (x * 0x5BD1E995) & m
        return x ^ (x >> 16)

    values = [0, 1, 2, 12345, 0xDEADBEEF, 0xFFFFFFFF]
    assert mix32(torch.tensor(values)).tolist() == [ref(v) for v in values]


@pytest.mark.parametrize("shape, size", [((3, 5), 33), ((7, 40), 1024), ((2,), 70_000), ((), 5), ((0, 3), 7)])
def test_counter_streams_equal_the_int64_formula(shape, size, cpu_path):
    """The int32, in-place and (on CPU) blockwise hashing, tensor ops or compiled, gives exactly the values
    of the plain int64 formula, one hash per value, at every shape and across block boundaries."""
    keys = torch.randint(0, 2**32, shape, dtype=torch.int64, generator=torch.Generator().manual_seed(size))
    hashes = mix32(keys[..., None] ^ mix32(torch.arange(size, dtype=torch.int64) * 2 + 1))
    u = ((hashes >> 9).to(torch.float32) + 0.5) / 2**23
    assert torch.equal(uniform(keys, size), u)
    assert torch.equal(normal(keys, size), torch.erfinv(u * 2.0 - 1.0) * math.sqrt(2.0))
    assert torch.equal(normal(keys, size, "uniform"), (u - 0.5) * math.sqrt(12.0))
    # a per-stream factor (position mask times sigma) is applied in the same pass, to the same values
    factor = (torch.rand(shape, generator=torch.Generator().manual_seed(1)) > 0.3) * 0.05
    assert torch.equal(normal(keys, size, factor=factor), normal(keys, size) * factor[..., None])
    assert torch.equal(normal(keys, size, "uniform", factor), normal(keys, size, "uniform") * factor[..., None])


def test_cpu_noise_runs_as_tensor_ops_without_numba(monkeypatch):
    """Without numba (the `fast` extra is optional) the kernels are reported missing and the CPU noise
    is drawn by the tensor code, with the same values as the compiled hash gives."""
    keys = torch.arange(40, dtype=torch.int64) * 2654435761
    reference = normal(keys, 3000)
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` now raises ImportError
    monkeypatch.delitem(sys.modules, "lm_eval_noise.noise.numba_kernels", raising=False)
    monkeypatch.setattr(compiled, "_KERNELS", None)
    assert compiled.kernels() is None
    assert torch.equal(normal(keys, 3000), reference)


def test_cpu_kernels_stay_off_where_vllm_is_installed(monkeypatch):
    """vLLM's engine start fails once numba's compiler is loaded in the process (it scans every module),
    so with vLLM installed the kernels are never loaded and the tensor code draws the same noise."""
    import importlib.machinery
    import types

    keys = torch.arange(40, dtype=torch.int64) * 2654435761
    reference = normal(keys, 3000)
    vllm = types.ModuleType("vllm")
    vllm.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    monkeypatch.setitem(sys.modules, "vllm", vllm)  # found by importlib.util.find_spec, as an install is
    monkeypatch.setattr(compiled, "_KERNELS", None)
    assert compiled.kernels() is None
    assert torch.equal(normal(keys, 3000), reference)


@pytest.mark.parametrize("width", [64, 512, 1001, 2816])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_feature_std_equals_torch_std_and_ignores_the_batch(width, dtype, cpu_path):
    """The relative-noise std (a float64 two-pass sum on wide CPU rows, compiled or tensor ops) gives
    torch.std's values, and a row's value is the same alone as among 31 others."""
    generator = torch.Generator().manual_seed(width)
    rows = torch.randn(2000, width, generator=generator) * torch.rand(2000, 1, generator=generator) * 5 + 0.3
    x = rows.to(dtype).view(250, 8, width)
    assert torch.equal(feature_std(x), x.std(dim=-1, keepdim=True))
    batch = x[:32, :1]  # [32, 1, width]: a decode step's input
    alone = torch.cat([feature_std(batch[i : i + 1]) for i in range(32)])
    assert torch.equal(feature_std(batch), alone)


def test_counter_noise_is_standard_normal_and_independent():
    keys = position_keys(row_keys(torch.tensor([1, 2, 3, 2**62]), 99), position_hash(torch.arange(64).expand(4, 64)))
    z = normal(keys, 512)
    assert abs(z.mean().item()) < 0.01
    assert abs(z.std().item() - 1) < 0.01
    assert abs((z**4).mean().item() - 3) < 0.05  # Gaussian kurtosis
    for a, b in ((z[:, :, :-1], z[:, :, 1:]), (z[:, :-1], z[:, 1:]), (z[0], z[1])):
        assert abs(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()) < 0.02
    assert stats.kstest(z.flatten().double().numpy(), "norm").pvalue > 1e-3
    u = normal(keys, 512, "uniform")
    assert abs(u.std().item() - 1) < 0.01 and u.abs().max().item() <= math.sqrt(3) + 1e-6


def test_counter_uniforms_stay_inside_the_open_interval():
    """The extreme hashes map to finite noise and finite Gumbel draws (float32 rounds 1 - 2**-25 to 1)."""
    extremes = torch.tensor([0, 2**32 - 1], dtype=torch.int64)
    u = _unit(extremes)
    assert 0 < u[0] < u[1] < 1 and u.sum().item() == 1.0
    z = torch.erfinv(u * 2 - 1) * math.sqrt(2)
    assert torch.isfinite(z).all() and z[0] == -z[1] and 5 < z[1] < 6
    assert torch.isfinite(torch.log(-torch.log(u))).all()


@pytest.mark.parametrize("scope", ["per_token", "per_sequence"])
def test_embedding_noise_has_configured_sigma(model, scope):
    scale = 0.05
    runtime = NoiseRuntime(model, NoiseConfig.from_args(noise="embedding", noise_scale=scale, noise_scope=scope))
    ids = _ids(model)
    embed = model.get_input_embeddings()
    with torch.no_grad(), runtime.attached(_state(runtime.config)):
        seen, handle = _capture(embed)  # registered after the noise hook, so it sees the noisy output
        model(input_ids=ids)
    handle.remove()
    eps = seen[0] - embed(ids)
    reference = embed.weight.detach().norm(dim=-1).mean().item()  # mean ||E(x)|| over the vocabulary
    sigma = scale * reference
    assert runtime.reference_norm == pytest.approx(reference, rel=1e-5)
    if scope == "per_sequence":
        assert torch.allclose(eps[:, :1].expand_as(eps), eps, atol=1e-6)  # one eps per sample, every position
        assert not torch.allclose(eps[0], eps[1])
    else:
        assert not torch.allclose(eps[:, 0], eps[:, 1])
    sample = eps[:, 0] if scope == "per_sequence" else eps
    assert sample.std().item() == pytest.approx(sigma, rel=0.05 if scope == "per_token" else 0.15)
    assert _altered(model) == set()  # every noise hook was removed


def test_vocab_norm_goes_through_the_module():
    class Scaled(torch.nn.Embedding):  # Gemma-style: the module scales its output by sqrt(d)
        def forward(self, ids):
            return super().forward(ids) * self.embedding_dim**0.5

    module = Scaled(100, 16)
    expected = (module.weight.detach().norm(dim=-1) * 4.0).mean().item()
    assert mean_embedding_norm(module, chunk=7) == pytest.approx(expected, rel=1e-6)


def test_embedding_input_norm_uses_each_prompt(model):
    runtime = NoiseRuntime(model, NoiseConfig.from_args(noise="embedding", noise_scale=0.1, embed_norm="input"))
    ids = _ids(model, batch=2, width=256)
    state = _state(runtime.config, batch=2, width=256)
    with torch.no_grad(), runtime.attached(state):
        model(input_ids=ids)
    expected = model.get_input_embeddings()(ids).norm(dim=-1).mean(dim=1)
    assert torch.allclose(state.input_norm, expected, rtol=1e-5)


def test_padding_gets_no_noise_and_rows_match_unpadded(model):
    runtime = NoiseRuntime(model, NoiseConfig.from_args(noise="embedding", noise_scale=0.05))
    ids = _ids(model, batch=2, width=20)
    embed = model.get_input_embeddings()
    seen = []
    with torch.no_grad():
        for state, inputs in (
            (_state(runtime.config, batch=2, width=20, pads=[0, 5]), ids),
            (_state(runtime.config, batch=1, width=15, seeds=torch.tensor([2 * 7919])), ids[1:, 5:]),
        ):
            with runtime.attached(state):
                got, handle = _capture(embed)
                model(input_ids=inputs)
            handle.remove()
            seen += got
    padded_eps = seen[0] - embed(ids)
    alone_eps = seen[1] - embed(ids[1:, 5:])
    assert torch.count_nonzero(padded_eps[1, :5]) == 0
    assert torch.equal(padded_eps[1, 5:], alone_eps[0])


@pytest.mark.parametrize("positions,first_k", [("prompt", None), ("generated", None), ("all", 3)])
def test_structured_injection_positions(model, positions, first_k):
    config = NoiseConfig.from_args(noise="embedding", noise_scale=0.1, noise_positions=positions, noise_first_k=first_k)
    runtime = NoiseRuntime(model, config)
    ids = _ids(model, batch=2, width=6)
    embed = model.get_input_embeddings()
    with torch.no_grad(), runtime.attached(_state(config, batch=2, width=6)):
        seen, handle = _capture(embed)
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    handle.remove()
    prefill_noisy = (seen[0] - embed(ids)).abs().sum(-1) > 0  # [2, 6]
    decode_noisy = [(s - embed(s_ids)).abs().sum().item() > 0 for s, s_ids in zip(seen[1:], _decode_ids(model, seen))]
    if positions == "prompt":
        assert prefill_noisy.all() and not any(decode_noisy)
    elif positions == "generated":
        assert not prefill_noisy.any() and all(decode_noisy)
    else:
        assert prefill_noisy[:, :3].all() and not prefill_noisy[:, 3:].any() and not any(decode_noisy)


@pytest.mark.parametrize("kind", ["activation", "lm_head", "hidden"])
def test_structured_injection_reaches_every_hooked_type(model, kind):
    """The prompt forward is clean under noise_positions=generated and noisy under prompt, also in combinations."""
    ids = _ids(model, batch=2, width=6)
    with torch.no_grad():
        clean = model(input_ids=ids).logits
        for positions in ("generated", "prompt"):
            config = NoiseConfig.from_args(noise=f"embedding+{kind}", noise_scale=0.1, noise_positions=positions,
                                           **({"noise_layer": 1} if kind == "hidden" else {}))
            with NoiseRuntime(model, config).attached(_state(config, batch=2, width=6)):
                noisy = model(input_ids=ids).logits
            assert torch.equal(noisy, clean) == (positions == "generated")
        config = NoiseConfig.from_args(noise=kind, noise_scale=0.1, noise_positions="generated",
                                       **({"noise_layer": 1} if kind == "hidden" else {}))
        with NoiseRuntime(model, config).attached(_state(config, batch=2, width=6)):
            assert torch.equal(model(input_ids=ids).logits, clean)


def _decode_ids(model, seen):
    """Token ids of each decode step, recovered by nearest embedding row (exact for clean rows)."""
    weight = model.get_input_embeddings().weight
    return [torch.cdist(s.reshape(-1, s.shape[-1]), weight).argmin(-1).view(s.shape[:-1]) for s in seen[1:]]


@pytest.mark.parametrize("kind", ["hidden", "lm_head", "activation"])
def test_relative_noise_std_matches_scale(model, kind):
    scale = 0.1
    args = {"noise": kind, "noise_scale": scale}
    if kind == "hidden":
        args["noise_layer"] = 1
    runtime = NoiseRuntime(model, NoiseConfig.from_args(**args))
    ids = _ids(model)
    if kind == "hidden":
        module, pre = decoder_layers(model)[1][0], False
    elif kind == "lm_head":
        module, pre = model.get_output_embeddings(), True
    else:
        module, pre = decoder_layers(model)[1][1].mlp.down_proj, True
    with torch.no_grad():
        seen, handle = _capture(module, pre=pre)
        model(input_ids=ids)
        handle.remove()
        with runtime.attached(_state(runtime.config)):
            noisy, handle = _capture(module, pre=pre)
            model(input_ids=ids)
        handle.remove()
    seen += noisy
    clean, noisy = seen[0], seen[1]
    if kind == "hidden":  # the layer output itself is perturbed; its input was clean
        ratio = (noisy - clean) / (scale * clean.std(dim=-1, keepdim=True))
    else:  # upstream layers were noised too, so compare with the exact noise on this input
        ratio = None
        delta = noisy - clean
        assert delta.abs().sum() > 0
    if ratio is not None:
        assert ratio.std().item() == pytest.approx(1.0, rel=0.05)
    assert _altered(model) == set()  # every noise hook was removed


def test_activation_noise_on_single_linear_is_relative():
    lin = torch.nn.Linear(256, 8)
    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList([torch.nn.Sequential(lin)])
    model.get_output_embeddings = lambda: None
    state_config = NoiseConfig.from_args(noise="activation", noise_scale=0.2)
    runtime = NoiseRuntime(model, state_config)
    x = torch.randn(4, 32, 256) * torch.linspace(0.1, 3, 4)[:, None, None]
    state = _state(state_config, width=32)
    with runtime.attached(state):
        seen, handle = _capture(lin, pre=True)
        state.begin_forward(32)
        lin(x)
    handle.remove()
    ratio = (seen[0] - x) / (0.2 * x.std(dim=-1, keepdim=True))
    for row in range(4):  # std per row, not over the batch: every row gets the same relative strength
        assert ratio[row].std().item() == pytest.approx(1.0, rel=0.05)


def test_activation_noise_drawn_for_all_sites_at_once_equals_site_by_site(model, monkeypatch):
    import lm_eval_noise.noise.activation as activation

    runtime = NoiseRuntime(model, NoiseConfig.from_args(noise="activation", noise_scale=0.2))
    ids = _ids(model, batch=2, width=5)
    outputs = []
    for limit in (activation.ALL_SITES_MAX, 0):  # one call for every layer, then one call per layer
        monkeypatch.setattr(activation, "ALL_SITES_MAX", limit)
        with torch.no_grad(), runtime.attached(_state(runtime.config, batch=2, width=5, pads=[0, 2])):
            outputs.append(model(input_ids=ids).logits)
    assert torch.equal(outputs[0], outputs[1])


def test_activation_hooks_exactly_the_targets(model):
    config = NoiseConfig.from_args(noise="activation", noise_scale=0.1, noise_targets="mlp+early")
    runtime = NoiseRuntime(model, config)
    stack_name, stack = decoder_layers(model)
    expected = {n for n, m in model.named_modules() if is_linear(m) and n.startswith(f"{stack_name}.0.mlp")}
    assert set(runtime.injectors[0].modules) == expected
    with runtime.attached(_state(config, batch=2, width=6)):
        hooked = _altered(model)
    assert hooked == expected
    assert _altered(model) == set()  # every noise hook was removed


def test_default_targets_skip_tied_head_and_take_untied(model):
    runtime = NoiseRuntime(model, NoiseConfig.from_args(noise="activation", noise_scale=0.1))
    names = set(runtime.injectors[0].modules)
    assert "lm_head" in names  # the tiny models have untied heads
    assert len(names) == sum(1 for m in model.modules() if is_linear(m))


def test_weight_noise_statistics_and_exact_restore(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runtime = NoiseRuntime(model, NoiseConfig.from_args(noise="weight", noise_scale=0.05))
    weight = runtime.weight
    name, w = next(iter(weight.params.items()))
    with weight.perturbed(seed=123):
        delta = w.detach() - before[name + ".weight"]
        assert delta.std().item() == pytest.approx(0.05 * before[name + ".weight"].std().item(), rel=0.05)
        first = w.detach().clone()
    with weight.perturbed(seed=123):
        assert torch.equal(w.detach(), first)  # same sample, same draw
    with weight.perturbed(seed=124):
        assert not torch.equal(w.detach(), first)
    with pytest.raises(RuntimeError, match="boom"), weight.perturbed(seed=5):
        raise RuntimeError("boom")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_weight_originals_on_cpu_are_kept_in_a_file_not_in_memory(model, dtype, tmp_path, monkeypatch):
    """On CPU the saved originals cost the process no memory (an unlinked file in the cache folder holds
    exactly the perturbed tensors' bytes) and still restore bit-exactly, in bf16 too."""
    import copy
    import os

    monkeypatch.setenv("LM_EVAL_NOISE_CACHE", str(tmp_path))
    model = copy.deepcopy(model).to(dtype)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weight = NoiseRuntime(model, NoiseConfig.from_args(noise="weight", noise_scale=0.05)).weight
    with weight.perturbed(seed=3):
        assert any(not torch.equal(w, before[n + ".weight"]) for n, w in weight.params.items())
    with weight.perturbed(seed=4):
        pass
    assert weight.host_bytes == 0
    saved = os.fstat(weight._originals.file.fileno()).st_size
    assert saved == sum(w.numel() * w.element_size() for w in weight.params.values())
    assert list(tmp_path.iterdir()) == []  # unlinked: nothing left behind, whatever happens to the process
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_weight_noise_chunks_are_own_streams_whatever_the_thread_count(model, monkeypatch):
    import lm_eval_noise.noise.weight as weight_module

    monkeypatch.setattr(weight_module, "CHUNK", 1000)
    runtime = NoiseRuntime(model, NoiseConfig.from_args(noise="weight", noise_scale=0.05))
    name, w = max(runtime.weight.params.items(), key=lambda item: item[1].numel())
    assert w.numel() >= 8000
    original = w.detach().clone()
    draws = []
    for threads in (1, 2, 3):  # serial, then chunks drawn by a thread pool
        monkeypatch.setattr(torch, "get_num_threads", lambda threads=threads: threads)
        with runtime.weight.perturbed(seed=7):
            draws.append((w.detach() - original).flatten())
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], draws[2])
    chunks = draws[0][:8000].view(8, 1000)
    assert (torch.corrcoef(chunks) - torch.eye(8)).abs().max() < 0.2  # independent, not one stream repeated


def test_weight_noise_uniform_distribution(model):
    runtime = NoiseRuntime(model, NoiseConfig.from_args(noise="weight", noise_scale=0.05, noise_dist="uniform"))
    name, w = max(runtime.weight.params.items(), key=lambda kv: kv[1].numel())
    original = w.detach().clone()
    with runtime.weight.perturbed(seed=1):
        delta = (w.detach() - original) / (0.05 * original.std())
    assert delta.std().item() == pytest.approx(1.0, rel=0.05)
    assert delta.abs().max().item() <= math.sqrt(3) * 1.01


def test_weight_restore_after_exception_mid_generation(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runtime = NoiseRuntime(model, NoiseConfig.from_args(noise="weight+activation", noise_scale=0.05))
    ids = _ids(model, batch=1, width=5)
    calls = []

    def explode(module, args):
        calls.append(1)
        if len(calls) == 2:  # the first decode step, with weights perturbed and hooks live
            raise RuntimeError("interrupted")

    handle = model.get_output_embeddings().register_forward_pre_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="interrupted"):
            with runtime.weight.perturbed(seed=9), runtime.attached(_state(runtime.config, batch=1, width=5)):
                model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, min_new_tokens=8, do_sample=False)
    finally:
        handle.remove()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert _altered(model) == set()  # every noise hook was removed


@pytest.mark.parametrize(
    "schedule,expected",
    [
        ("linear", [1.0, 0.75, 0.5, 0.25, 0.0]),
        ("cosine", [1.0, (1 + math.cos(math.pi / 4)) / 2, 0.5, (1 + math.cos(3 * math.pi / 4)) / 2, 0.0]),
        ("constant", [1.0] * 5),
    ],
)
def test_schedules(schedule, expected):
    end = 0.0 if schedule != "constant" else None
    config = NoiseConfig.from_args(noise="embedding", noise_scale=0.2, noise_schedule=schedule, noise_scale_end=end)
    got = [float(schedule_sigma(config, step, horizon=5)) for step in range(5)]
    assert got == pytest.approx([0.2 * e for e in expected])


def test_exp_schedule_is_geometric():
    config = NoiseConfig.from_args(noise="embedding", noise_scale=0.1, noise_schedule="exp", noise_scale_end=0.001)
    sigmas = [float(schedule_sigma(config, s, horizon=3)) for s in range(3)]
    assert sigmas == pytest.approx([0.1, 0.01, 0.001])


def test_schedule_can_ramp_up_from_zero():
    config = NoiseConfig.from_args(noise="embedding", noise_scale=0.0, noise_schedule="linear", noise_scale_end=0.4)
    assert config.active
    assert [float(schedule_sigma(config, s, horizon=3)) for s in range(3)] == pytest.approx([0.0, 0.2, 0.4])


def test_schedule_sigma_reaches_decode_steps(model):
    config = NoiseConfig.from_args(noise="embedding", noise_scale=0.2, noise_schedule="linear", noise_scale_end=0.0)
    runtime = NoiseRuntime(model, config)
    ids = _ids(model, batch=1, width=4)
    state = _state(config, batch=1, width=4)
    scales = []
    handle = model.get_input_embeddings().register_forward_hook(lambda m, i, o: scales.append(float(state.scale[0])))
    with torch.no_grad(), runtime.attached(state):
        state.max_new_tokens = 5
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, min_new_tokens=5, do_sample=False)
    handle.remove()
    assert scales == pytest.approx([0.2, 0.15, 0.1, 0.05, 0.0])


@pytest.mark.parametrize(
    "args,needle",
    [
        ({"noise": "gaussian"}, "valid values: embedding, weight, activation, hidden, lm_head"),
        ({"noise": "embedding", "noise_scale": -1}, "noise_scale"),
        ({"noise": "embedding", "noise_scale": "big"}, "noise_scale"),
        ({"noise": "embedding", "noise_scope": "global"}, "per_token, per_sequence"),
        ({"noise": "embedding", "noise_first_k": -2}, "noise_first_k"),
        ({"noise": "hidden"}, "noise_layer"),
        ({"noise": "embedding", "noise_schedule": "linear"}, "noise_scale_end"),
        ({"noise": "embedding", "embed_norm": "row"}, "vocab, input"),
        ({"noise": "activation", "noise_targets": "attn"}, "valid groups"),
        ({"noise": "embedding", "t_base": 0.7}, "temperature_compensation=auto"),
        ({"noise": "weight", "noise_positions": "prompt"}, "embedding, activation, hidden, lm_head"),
        ({"noise": "activation", "noise_scope": "per_sequence"}, "noise_scope applies to noise=embedding"),
    ],
)
def test_bad_config_names_argument_and_valid_values(args, needle):
    with pytest.raises(NoiseConfigError, match=needle):
        NoiseConfig.from_args(**args)


def test_model_dependent_errors(model):
    depth = len(decoder_layers(model)[1])
    with pytest.raises(NoiseConfigError, match=f"valid values: 0..{depth}"):
        NoiseRuntime(model, NoiseConfig.from_args(noise="hidden", noise_layer=depth + 1, noise_scale=0.1))
    with pytest.raises(NoiseConfigError, match="matches no Linear"):
        NoiseRuntime(model, NoiseConfig.from_args(noise="activation", noise_scale=0.1, noise_targets="*.nothing"))


def test_zero_scale_attaches_nothing(model):
    runtime = NoiseRuntime(model, NoiseConfig.from_args(noise="embedding+activation", noise_scale=0.0))
    assert runtime.injectors == [] and runtime.weight is None


def _decode_logits(model, runtime: NoiseRuntime, ids: torch.Tensor, mask: torch.Tensor, tokens: int):
    """Greedy logits of `tokens` decode steps under the runtime's noise (seeds 11, 22, 33) and the state."""
    state = NoiseState(runtime.config, torch.tensor([11, 22, 33]), mask, max_new_tokens=tokens)
    with torch.no_grad(), runtime.attached(state):
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens,
                             do_sample=False, output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    return torch.stack(out.logits), state


@pytest.mark.parametrize("args", [
    {"noise": "embedding", "noise_scale": 0.3},
    {"noise": "embedding", "noise_scale": 0.3, "noise_scope": "per_sequence", "embed_norm": "input", "noise_first_k": 9},
    {"noise": "hidden", "noise_layer": 1, "noise_scale": 0.2, "noise_schedule": "linear", "noise_scale_end": 0.6},
    {"noise": "lm_head", "noise_scale": 0.4, "noise_positions": "generated"},
    {"noise": "activation", "noise_scale": 0.2, "noise_schedule": "cosine", "noise_scale_end": 0.05},
    {"noise": "activation", "noise_scale": 0.2, "noise_positions": "generated"},  # sigma folded into the tables
    {"noise": "hidden", "noise_layer": 1, "noise_scale": 0.3, "noise_first_k": 12},
])
def test_decode_noise_drawn_ahead_equals_the_per_step_draw(model, monkeypatch, args):
    """Eager decode steps read their noise from lookahead tables: the logits of every step must be
    exactly those of drawing at each step (tables disabled), across table boundaries and left padding,
    with tables hashed in blocks and refilled in the spent table's memory (a short last table included)."""
    import lm_eval_noise.noise.counter as counter
    import lm_eval_noise.noise.state as state_module

    monkeypatch.setattr(counter, "_CPU_BLOCK", 256)  # blocks of a few rows, as a large model's tables are

    config = NoiseConfig.from_args(**args)
    runtime = NoiseRuntime(model, config)
    ids = _ids(model, batch=3, width=6)
    mask = torch.ones_like(ids)
    mask[1, :2] = mask[2, :4] = 0
    logits = []
    for lookahead, limit in ((4, state_module.LOOKAHEAD_MAX), (4, 0)):  # tables of 4 steps, then none
        monkeypatch.setattr(state_module, "LOOKAHEAD", lookahead)
        monkeypatch.setattr(state_module, "LOOKAHEAD_MAX", limit)
        step_logits, state = _decode_logits(model, runtime, ids, mask, 10)
        logits.append(step_logits)
        assert (state._tables != {}) == (limit > 0)
    assert torch.equal(logits[0], logits[1])


def test_activation_decode_step_draws_per_step_when_one_group_gets_no_table(model, monkeypatch):
    """Each input width sizes its own lookahead table: when a narrow group gets one and a wide group
    does not, the step draws per step, with the same logits as drawing per step throughout."""
    import lm_eval_noise.noise.state as state_module

    config = NoiseConfig.from_args(noise="activation", noise_scale=0.2,
                                   noise_targets="*.layers.0.self_attn.q_proj+*.down_proj")
    runtime = NoiseRuntime(model, config)
    (narrow, _, _), (wide, wide_names, _) = runtime.injectors[0].groups
    assert narrow < wide and len(wide_names) > 1
    ids = _ids(model, batch=3, width=6)
    mask = torch.ones_like(ids)
    logits = []
    for limit in (3 * narrow * 2, 0):  # the narrow group's table only, then no tables
        monkeypatch.setattr(state_module, "LOOKAHEAD_MAX", limit)
        step_logits, state = _decode_logits(model, runtime, ids, mask, 6)
        logits.append(step_logits)
        assert (state._tables != {}) == (limit > 0)
    assert torch.equal(logits[0], logits[1])
