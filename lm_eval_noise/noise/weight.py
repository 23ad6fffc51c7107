"""Weight noise: W + eps * noise_scale * std(W) for one sample at a time, restored bit-exactly.

A weight draw cannot differ per batch row, so each sample is generated on its own with its own draw
(batch size 1 per sample while weight noise is on). The draw comes from torch's own generator seeded
by (sample, tensor, chunk): one draw per sample needs no per-row streams, and a whole model's worth of noise
is far cheaper from the fused generator than from the counter hash. Originals stay on the accelerator
when they fit in half of its free memory (restoring is then a device copy, ~100x faster than from the
host), else in pinned host memory; beyond that the accelerator holds one chunk of noise at a time.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import nn

from lm_eval_noise.noise.config import NoiseConfig, NoiseConfigError
from lm_eval_noise.noise.counter import index_hash, mix32, row_keys, site_id
from lm_eval_noise.noise.targets import optional_module, select_linear, weight_std

# Elements of noise generated at once: bounds extra accelerator memory to a few tens of MB.
CHUNK = 1 << 21


class WeightNoise:
    """Applies and exactly restores per-sample weight perturbations of the targeted Linear layers."""

    def __init__(self, model: nn.Module, config: NoiseConfig):
        self.config = config
        self.params: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        embedding = optional_module(model, "get_input_embeddings")
        for name, module in select_linear(model, config.noise_targets).items():
            weight = module.weight
            if embedding is not None and weight is embedding.weight:
                raise NoiseConfigError(
                    f"noise=weight on {name} would also perturb the input embeddings (the weights are tied); "
                    "use noise=lm_head for noise at the head, or noise=embedding"
                )
            if weight.device.type == "meta":
                raise NoiseConfigError(f"noise=weight cannot perturb {name}: its weight is offloaded (meta device)")
            if not weight.is_floating_point():
                raise NoiseConfigError(
                    f"noise=weight needs floating-point weights; {name} is {weight.dtype} (quantized models are "
                    "not supported: use noise=activation instead)"
                )
            if id(weight) not in seen:  # tied weights are perturbed once
                seen.add(id(weight))
                self.params[name] = weight
        self.stds = {name: weight_std(w) for name, w in self.params.items()}
        self.site_ids = torch.tensor([site_id(f"weight:{name}") for name in self.params], dtype=torch.int64)
        self._originals: dict[str, torch.Tensor] | None = None

    def _backup_devices(self) -> dict[torch.device, torch.device]:
        """Where each parameter device's originals go: itself if they take at most half its free memory."""
        need: dict[torch.device, int] = {}
        for w in self.params.values():
            need[w.device] = need.get(w.device, 0) + w.numel() * w.element_size()
        where = {}
        for device, size in need.items():
            keep = device.type == "cpu" or (device.type == "cuda" and size <= torch.cuda.mem_get_info(device)[0] // 2)
            where[device] = device if keep else torch.device("cpu")
        return where

    def _save_originals(self) -> None:
        if self._originals is None:
            where = self._backup_devices()
            self._originals = {}
            for name, w in self.params.items():
                target = where[w.device]
                copy = torch.empty(w.shape, dtype=w.dtype, device=target, pin_memory=w.is_cuda and target.type == "cpu")
                copy.copy_(w.detach())
                self._originals[name] = copy

    @torch.no_grad()
    def apply(self, seed: int) -> None:
        """Perturb every targeted weight with the draw of sample `seed` (64-bit)."""
        self._save_originals()
        keys = row_keys(torch.tensor([seed], dtype=torch.int64), self.site_ids)
        chunks = []
        for (name, w), key in zip(self.params.items(), keys, strict=True):
            starts = range(0, w.numel(), CHUNK)
            # 32-bit stream keys: torch's CPU generator (mt19937) ignores higher seed bits.
            streams = mix32(key ^ index_hash(len(starts), key.device)).tolist()
            scale = self.config.noise_scale * self.stds[name]
            chunks += [(w.data.view(-1), start, stream, scale) for start, stream in zip(starts, streams, strict=True)]
        if all(flat.device.type == "cpu" for flat, *_ in chunks) and torch.get_num_threads() > 1:
            # torch's CPU generator is serial: draw chunks on every core (each chunk has its own stream).
            with ThreadPoolExecutor(torch.get_num_threads()) as pool:
                list(pool.map(lambda chunk: self._perturb(*chunk), chunks))
        else:
            for chunk in chunks:
                self._perturb(*chunk)

    def _perturb(self, flat: torch.Tensor, start: int, key: int, scale: float) -> None:
        """Add the noise of one chunk (its own generator stream, seeded by sample, tensor and chunk)."""
        generator = torch.Generator(device=flat.device).manual_seed(key)
        count = min(CHUNK, flat.numel() - start)
        if self.config.noise_dist == "uniform":
            eps = (torch.rand(count, generator=generator, device=flat.device) - 0.5) * math.sqrt(12.0)
        else:
            eps = torch.randn(count, generator=generator, device=flat.device)
        flat[start : start + count].add_(eps.mul_(scale).to(flat.dtype))

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the saved originals back (bit-identical)."""
        if self._originals is not None:
            for name, w in self.params.items():
                w.data.copy_(self._originals[name], non_blocking=False)

    @contextlib.contextmanager
    def perturbed(self, seed: int) -> Iterator[None]:
        """Weights carry sample `seed`'s draw inside the block and are restored however it exits."""
        try:
            self.apply(seed)
            yield
        finally:
            self.restore()
