"""Weight noise in vLLM: one draw per repeat index, W + eps * noise_scale * std(W), restored exactly.

A draw cannot differ per request inside one engine batch, so `vllm-noisy` generates the requests of
repeat r together under draw r (all docs of repeat r share it), applied to every worker by
`collective_rpc` between generate calls. Fused projections are perturbed part by part, each with the
std of the Hugging Face tensor it holds and its own stream `weight:<HF name>`; the noise comes from
the counter-based streams (row = output row, index = input column), so it does not depend on the
device. Draws are not hf-noisy's (its per-sample draws come from torch's generator).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lm_eval_noise.noise.counter import normal, position_hash, position_keys, row_keys, site_id
from lm_eval_noise.noise.targets import weight_std

# Output rows drawn at once: bounds the int64 intermediates of the hash.
ROWS = 256


def draw_seed(noise_seed: int, repeat: int) -> int:
    """The seed of draw `repeat` (shared by every doc's repeat `repeat`)."""
    from lm_eval_noise.seeding import sample_seed

    return sample_seed(noise_seed, "weight", "", 0, repeat)


@torch.no_grad()
def perturb(weight: torch.Tensor, seed: int, name: str, scale: float, dist: str) -> None:
    """weight += eps * scale * std(weight), in place, rows in chunks."""
    sigma = scale * weight_std(weight)
    keys = row_keys(torch.tensor([seed], dtype=torch.int64, device=weight.device), site_id(f"weight:{name}"))
    for start in range(0, weight.shape[0], ROWS):
        rows = torch.arange(start, min(start + ROWS, weight.shape[0]), device=weight.device)
        eps = normal(position_keys(keys, position_hash(rows[None]))[0], weight.shape[1], dist)
        weight[start:start + len(rows)] += (eps * sigma).to(weight.dtype)


def _repack(module: nn.Module) -> None:
    """vLLM's CPU build multiplies by a prepacked copy of the weight: pack the changed weight again."""
    if hasattr(module, "cpu_linear") and module.cpu_linear is not torch.nn.functional.linear:
        from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

        dispatch_cpu_unquantized_gemm(module, remove_weight=False)


class WeightDraws:
    """Applies one draw to the chosen Linear weights of a worker's model and restores the originals."""

    def __init__(self, layers: dict[str, nn.Module], parts: dict[str, list[str]]):
        self.layers = layers  # vLLM name -> module (LinearBase or the untied LM head)
        self.parts = parts  # vLLM name -> HF names of its output parts
        self.originals: dict[str, torch.Tensor] = {}

    def apply(self, seed: int, chosen: set[str], scale: float, dist: str) -> int:
        self.restore()
        count = 0
        for name, module in self.layers.items():
            parts = self.parts[name]
            if not any(part in chosen for part in parts):
                continue
            weight = module.weight
            if weight.numel() == 0:
                raise ValueError(f"vllm-noisy: {name}'s weight was released after packing; noise=weight cannot reach it")
            if not weight.is_floating_point():
                raise ValueError(f"vllm-noisy: noise=weight needs floating-point weights; {name} is {weight.dtype}")
            self.originals[name] = weight.detach().clone()
            sizes = getattr(module, "output_partition_sizes", [weight.shape[0]]) if len(parts) > 1 else [weight.shape[0]]
            start = 0
            for part, size in zip(parts, sizes, strict=True):
                if part in chosen:
                    perturb(weight.data[start:start + size], seed, part, scale, dist)
                    count += 1
                start += size
            _repack(module)
        return count

    @torch.no_grad()
    def restore(self) -> None:
        for name, original in self.originals.items():
            self.layers[name].weight.data.copy_(original)
            _repack(self.layers[name])
        self.originals = {}


def worker_apply(worker: Any, seed: int, config: dict) -> int:
    """collective_rpc target: apply draw `seed` of `config` in this worker (returns tensors perturbed)."""
    from lm_eval_noise.vllm_backend.injection import config_from_dict

    injector = worker.model_runner.lm_eval_noise
    noise = config_from_dict(config)
    return injector.weights.apply(seed, injector.weight_names(noise), noise.noise_scale, noise.noise_dist)


def worker_restore(worker: Any) -> None:
    """collective_rpc target: put this worker's original weights back."""
    worker.model_runner.lm_eval_noise.weights.restore()


def worker_checksum(worker: Any) -> float:
    """collective_rpc target: a sum over every Linear weight (tests compare it before and after)."""
    injector = worker.model_runner.lm_eval_noise
    return float(sum(m.weight.double().sum() for m in injector.weights.layers.values()))
